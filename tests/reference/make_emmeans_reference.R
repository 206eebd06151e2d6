#!/usr/bin/env Rscript
## Reference fixtures for lmmjax's estimated marginal means (R's emmeans on lmerTest fits).
##
## Run from the repository root:
##     Rscript tests/reference/make_emmeans_reference.R
##
## Writes tests/reference/fixtures/emmeans/<id>.json for
##   pastes_one_factor   strength ~ cask + (1 | batch) + (1 | sample)           (one factor)
##   cake_interaction    angle ~ recipe * temperature + (1 | recipe:replicate)  (two factors, interaction)
##   cake_covariate      angle ~ recipe * temp + (1 | recipe:replicate)         (factor x covariate, emtrends)
##   insteval_crossed    y ~ service * lectage + (1 | s) + (1 | d), InstEval rows of dept "1" (crossed)
##   cake_missing_cells  cake without the cell recipe C x temperature 225 and without some other rows
##                       (unbalanced, a missing cell): interaction model (non-estimable means) and
##                       additive model (equal and proportional weights)
## Every model is fitted by REML with tight_fit() of fixture_helpers.R (lmerTest attached); every
## case is computed with lmer.df = "satterthwaite" and "kenward-roger"
## (emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6): no switch to asymptotic df).
## Factors use treatment contrasts (cake's and InstEval's ordered factors are made unordered),
## as lmmjax does; means do not depend on the coding, joint_tests' df2 does (emmeans takes the
## smallest df over an orthonormal basis of the hypothesis).
##
## Layout of a fixture:
##   id, dataset, formula, fixef_names, fixef, theta, sigma, and how the data were changed
##   (na_rows/na_column: 0-based rows whose response is set to NA; subset: {column: [values]})
##   cases: list of {kind ("emmeans"|"emtrends"), specs, by, at, weights, var, ddf,
##          table:    {<factor columns>, estimate, SE, df, lower, upper}  (null = nonEst),
##          messages: emmeans' notes (e.g. "involvement in interactions"),
##          pairs:    {<adjust>: {contrast, <by columns>, estimate, SE, df, t, p}},
##          pairs_ci: {tukey: {lower, upper}}  (confint(pairs(em)), Tukey-adjusted),
##          contrasts: {coef: {name: vector}, table: {...}} (custom contrasts, adjust = "none")}
##   joint_tests: {<ddf>: {term, df1, df2, F, p}}  (df1, df2 rounded to 2 decimals and F to 3 by emmeans)
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
suppressPackageStartupMessages({
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)
outdir <- fixture_dir("emmeans")
DDFS <- c("satterthwaite", "kenward-roger")

## summary table -> column lists; factor columns as strings, numbers as doubles (NA -> null)
table_list <- function(s, est_name) {
  s <- as.data.frame(s)
  out <- list()
  num <- c(est_name, "SE", "df", "lower.CL", "upper.CL", "t.ratio", "p.value")
  for (nm in names(s)) {
    if (nm %in% num) next
    out[[nm]] <- I(as.character(s[[nm]]))
  }
  map <- c(estimate = est_name, SE = "SE", df = "df", lower = "lower.CL", upper = "upper.CL",
           t = "t.ratio", p = "p.value")
  for (new in names(map)) if (map[[new]] %in% names(s)) out[[new]] <- I(as.numeric(s[[map[[new]]]]))
  out
}

case <- function(m, kind, specs, ddf, by = NULL, at = NULL, weights = "equal", var = NULL,
                 adjusts = c("tukey", "holm"), contrasts = NULL) {
  args <- list(m, specs, by = by, lmer.df = ddf)
  if (!is.null(at)) args$at <- at
  if (kind == "emmeans") {
    args$weights <- weights
    r <- collect(do.call(emmeans, args))
  } else {
    args$var <- var
    r <- collect(do.call(emtrends, args))
  }
  em <- r$value
  est_name <- if (kind == "emmeans") "emmean" else paste0(var, ".trend")
  res <- list(kind = kind, specs = I(specs), by = if (is.null(by)) NULL else I(by),
              at = at, weights = weights, var = var, ddf = ddf,
              table = table_list(summary(em, infer = c(TRUE, FALSE)), est_name),
              messages = I(r$messages))
  res$pairs <- list()
  for (adj in adjusts) {
    res$pairs[[adj]] <- table_list(summary(pairs(em), adjust = adj, infer = c(FALSE, TRUE)), "estimate")
  }
  res$pairs_ci <- list(tukey = table_list(confint(pairs(em), adjust = "tukey"), "estimate"))
  if (!is.null(contrasts)) {
    res$contrasts <- list(coef = lapply(contrasts, I),
                          table = table_list(summary(contrast(em, contrasts), infer = c(TRUE, TRUE)),
                                             "estimate"))
  }
  res
}

joint <- function(m) {
  out <- list()
  for (ddf in DDFS) {
    jt <- as.data.frame(joint_tests(m, lmer.df = ddf))
    out[[ddf]] <- list(term = I(as.character(jt[["model term"]])), df1 = I(as.numeric(jt$df1)),
                       df2 = I(as.numeric(jt$df2)), F = I(as.numeric(jt$F.ratio)),
                       p = I(as.numeric(jt$p.value)),
                       note = if (is.null(jt$note)) NULL else I(as.character(jt$note)))
  }
  out
}

model_info <- function(id, dataset, formula_str, m, extra = list()) {
  c(list(id = id, dataset = dataset, formula = formula_str, reml = TRUE), extra,
    list(fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
         theta = I(unname(getME(m, "theta"))), sigma = sigma(m), deviance = crit(m)))
}

finish <- function(res, name) {
  res$optimizer_settings <- OPT_SETTINGS
  res$generated_by <- sprintf(
    "tests/reference/make_emmeans_reference.R; R %s.%s, lme4 %s, lmerTest %s, pbkrtest %s, emmeans %s",
    R.version$major, R.version$minor, packageVersion("lme4"), packageVersion("lmerTest"),
    packageVersion("pbkrtest"), packageVersion("emmeans"))
  write_fixture(res, file.path(outdir, paste0(name, ".json")))
  cat(name, "done\n")
}

## ---- data ------------------------------------------------------------------------------
cake_u <- cake
cake_u$temperature <- factor(cake_u$temperature, ordered = FALSE)
cake_u$angle <- as.numeric(cake_u$angle)
## missing cells: the whole cell recipe C x temperature 225 and every 7th other row
cell <- which(cake_u$recipe == "C" & cake_u$temperature == "225")
cake_missing_rows <- sort(union(cell, seq(3, nrow(cake_u), by = 7)))
cake_m <- cake_u
cake_m$angle[cake_missing_rows] <- NA

ie <- InstEval
ie$lectage <- factor(ie$lectage, ordered = FALSE)
ie$studage <- factor(ie$studage, ordered = FALSE)
ie_sub <- droplevels(ie[ie$dept == "1", ])

t_all <- system.time({

## ---- one factor -------------------------------------------------------------------------
f <- "strength ~ cask + (1 | batch) + (1 | sample)"
m <- tight_fit(as.formula(f), Pastes, reml = TRUE)$fit
res <- model_info("pastes_one_factor", "pastes", f, m)
res$cases <- list()
for (ddf in DDFS) {
  res$cases[[length(res$cases) + 1]] <- case(
    m, "emmeans", "cask", ddf, adjusts = c("tukey", "holm", "bonferroni", "sidak", "none"),
    contrasts = list("a vs b+c" = c(1, -0.5, -0.5), "c - b" = c(0, -1, 1)))
}
res$joint_tests <- joint(m)
finish(res, "pastes_one_factor")

## ---- two factors with their interaction ----------------------------------------------------
f <- "angle ~ recipe * temperature + (1 | recipe:replicate)"
m <- tight_fit(as.formula(f), cake_u, reml = TRUE)$fit
res <- model_info("cake_interaction", "cake", f, m,
                  list(data_transform = "temperature converted to an unordered factor"))
res$cases <- list()
for (ddf in DDFS) {
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "recipe", ddf,
                                             contrasts = list("C vs A+B" = c(-0.5, -0.5, 1)))
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "temperature", ddf)
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "recipe", ddf, by = "temperature")
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", c("recipe", "temperature"), ddf,
                                             adjusts = "tukey")
}
res$joint_tests <- joint(m)
finish(res, "cake_interaction")

## ---- factor x covariate (emtrends) ---------------------------------------------------------
f <- "angle ~ recipe * temp + (1 | recipe:replicate)"
m <- tight_fit(as.formula(f), cake_u, reml = TRUE)$fit
res <- model_info("cake_covariate", "cake", f, m)
res$cases <- list()
for (ddf in DDFS) {
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "recipe", ddf)
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "recipe", ddf, by = "temp",
                                             at = list(temp = c(180, 220)))
  res$cases[[length(res$cases) + 1]] <- case(m, "emtrends", "recipe", ddf, var = "temp")
}
res$joint_tests <- joint(m)
finish(res, "cake_covariate")

## ---- crossed random effects -----------------------------------------------------------------
f <- "y ~ service * lectage + (1 | s) + (1 | d)"
m <- tight_fit(as.formula(f), ie_sub, reml = TRUE)$fit
res <- model_info("insteval_crossed", "insteval", f, m,
                  list(subset = list(dept = I("1")),
                       data_transform = "rows of dept 1, unused levels dropped; lectage unordered"))
res$cases <- list()
for (ddf in DDFS) {
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "lectage", ddf, by = "service")
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "service", ddf)
}
res$joint_tests <- joint(m)
finish(res, "insteval_crossed")

## ---- unbalanced, with a missing cell ----------------------------------------------------------
f <- "angle ~ recipe * temperature + (1 | recipe:replicate)"
m <- tight_fit(as.formula(f), cake_m, reml = TRUE)$fit
fa <- "angle ~ recipe + temperature + (1 | recipe:replicate)"
ma <- tight_fit(as.formula(fa), cake_m, reml = TRUE)$fit
res <- model_info("cake_missing_cells", "cake", f, m,
                  list(na_rows = I(cake_missing_rows - 1), na_column = "angle",
                       data_transform = "temperature converted to an unordered factor",
                       additive = model_info("cake_missing_cells_additive", "cake", fa, ma)))
res$cases <- list()
for (ddf in DDFS) {
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "recipe", ddf, by = "temperature")
  res$cases[[length(res$cases) + 1]] <- case(m, "emmeans", "temperature", ddf)
}
res$joint_tests <- joint(m)
res$additive_cases <- list()
for (ddf in DDFS) {
  for (w in c("equal", "proportional")) {
    res$additive_cases[[length(res$additive_cases) + 1]] <- case(ma, "emmeans", "recipe", ddf, weights = w)
    res$additive_cases[[length(res$additive_cases) + 1]] <- case(ma, "emmeans", "temperature", ddf,
                                                                 weights = w)
  }
}
res$additive_joint_tests <- joint(ma)
finish(res, "cake_missing_cells")
})
cat(sprintf("total elapsed: %.1f s\n", t_all[["elapsed"]]))
