#!/usr/bin/env Rscript
## Reference fixtures for the lmmjax core engine, computed with lme4.
##
## Run from the repository root:
##     Rscript tests/reference/make_reference.R
##
## Writes one JSON per fitted model to tests/reference/fixtures/core/<id>.json
## (doubles written with up to 17 significant digits so they round-trip exactly).
## Data are taken from lme4 itself (not from the bundled CSV files).
##
## Optimisation: every model is fitted twice with tight settings and the fit
## with the smaller objective is kept:
##   1. bobyqa (minqa):  rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e6
##   2. nloptwrap NLOPT_LN_BOBYQA started at the bobyqa optimum:
##        xtol_abs = ftol_abs = 1e-14, xtol_rel = ftol_rel = 0, maxeval = 1e6
## A fit with lme4's default lmerControl() is also done, and the script stops
## if the tight fit's objective exceeds the default fit's by more than 1e-9.
##
## Reproducibility: with this R/lme4/BLAS build, the objective at a given theta
## can differ in the last bits between R processes (memory-alignment dependent
## floating point), so re-running may move theta by ~1e-7 relative (the optimum
## is flat: the objective changes by ~1e-12 relative).  Compare theta/sigma/
## variance components with rtol ~1e-6 and the objective with rtol ~1e-10.
## Shared helpers, which also attach lme4 and jsonlite: fixture_helpers.R next to
## this script, found via Rscript's --file= (fallback: run from the repo root).
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
outdir <- fixture_dir("core")

## ---- one model ----------------------------------------------------------------
run_model <- function(id, formula_str, data, dataset, reml, extra = list()) {
  fml <- as.formula(formula_str)
  t0 <- proc.time()[[3]]
  tf <- tight_fit(fml, data, reml)
  elapsed <- proc.time()[[3]] - t0
  m <- tf$fit
  def <- collect(lmer(fml, data = data, REML = reml))
  dcrit <- crit(def$value)
  if (crit(m) > dcrit + 1e-9)
    stop(sprintf("%s: tight fit objective %.15g > default %.15g", id, crit(m), dcrit))

  ll <- logLik(m)
  V <- as.matrix(vcov(m))
  X <- getME(m, "X")
  dropped <- attr(X, "col.dropped")
  theta <- getME(m, "theta")
  lower <- getME(m, "lower")

  ## objective function evaluated directly at two other theta points
  dd <- suppressMessages(lmer(fml, data = data, REML = reml, devFunOnly = TRUE))
  stopifnot(abs(dd(unname(theta)) - crit(m)) < 1e-8 * max(1, abs(crit(m))))
  pts <- list(pmax(theta * 0.5, lower), pmax(theta * 1.5 + 0.1, lower))
  dev_at <- lapply(pts, function(th) list(theta = I(unname(th)), value = dd(unname(th))))

  res <- list(
    id = id,
    dataset = dataset,
    formula = formula_str,
    reml = reml)
  res <- c(res, extra)
  res <- c(res, list(
    nobs = nobs(m),
    ngroups = as.list(ngrps(m)),
    fixef_names = I(names(fixef(m))),
    fixef = I(unname(fixef(m))),
    se = I(unname(sqrt(diag(V)))),
    vcov = rows(V),
    dropped = I(if (is.null(dropped)) character(0) else names(dropped)),
    theta = I(unname(theta)),
    theta_names = I(names(theta)),
    theta_lower = I(unname(lower)),
    singular = isSingular(m),
    sigma = sigma(m),
    loglik = as.numeric(ll),
    deviance = crit(m),
    ml_deviance = if (reml) deviance(m, REML = FALSE) else deviance(m),
    ml_deviance_note = "deviance(m, REML=FALSE): ML deviance (sigma profiled by ML) at the fitted theta and beta; equals 'deviance' for ML fits",
    aic = AIC(m),
    bic = BIC(m),
    df = attr(ll, "df"),
    varcorr = varcorr_records(m),
    ranef = ranef_list(m),
    fitted = I(unname(head(fitted(m), 20))),
    residuals = I(unname(head(residuals(m), 20))),
    deviance_at_theta = dev_at,
    optimizer_settings = OPT_SETTINGS,
    optimizer_used = tf$which,
    optimizer_check = list(
      objective_bobyqa = tf$c1,
      objective_nloptwrap_polish = tf$c2,
      objective_default_control = dcrit,
      theta_default_control = I(unname(getME(def$value, "theta")))),
    fit_warnings = I(tf$w$warnings),
    fit_messages = I(tf$w$messages),
    generated_by = sprintf("tests/reference/make_reference.R; R %s.%s, lme4 %s",
                           R.version$major, R.version$minor,
                           as.character(packageVersion("lme4")))
  ))
  write_fixture(res, file.path(outdir, paste0(id, ".json")))
  cat(sprintf("%-18s crit=%.12f (default %.12f, diff %.2e) theta=[%s] sigma=%.8g  %.1fs\n",
              id, crit(m), dcrit, crit(m) - dcrit,
              paste(sprintf("%.8g", theta), collapse = ", "), sigma(m), elapsed))
  invisible(m)
}

both <- function(id, formula_str, data, dataset, extra = list()) {
  run_model(paste0(id, "_reml"), formula_str, data, dataset, TRUE, extra)
  run_model(paste0(id, "_ml"), formula_str, data, dataset, FALSE, extra)
}

## ---- data ----------------------------------------------------------------------
na_rows_1based <- c(3, 17, 18, 40, 41, 42, 77, 100, 101, 150, 151, 152, 153, 178)
sleep_na <- sleepstudy
sleep_na$Reaction[na_rows_1based] <- NA

sleep_rd <- sleepstudy
sleep_rd$Days2 <- 2 * sleep_rd$Days
sleep_rd$grp <- factor(ifelse(as.integer(sleep_rd$Subject) <= 9, "a", "b"))

cake_u <- cake
cake_u$temperature <- factor(cake_u$temperature, ordered = FALSE)

## ---- models ----------------------------------------------------------------------
t_all <- system.time({
both("dyestuff", "Yield ~ 1 + (1 | Batch)", Dyestuff, "dyestuff")
both("dyestuff2", "Yield ~ 1 + (1 | Batch)", Dyestuff2, "dyestuff2")
both("sleep", "Reaction ~ Days + (Days | Subject)", sleepstudy, "sleepstudy")
both("sleep_diag", "Reaction ~ Days + (Days || Subject)", sleepstudy, "sleepstudy")
both("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", Penicillin, "penicillin")
both("pastes", "strength ~ 1 + (1 | batch/cask)", Pastes, "pastes")
both("sleep_missing", "Reaction ~ Days + (Days | Subject)", sleep_na, "sleepstudy",
     extra = list(na_rows = I(na_rows_1based - 1), na_column = "Reaction",
                  data_transform = "Reaction set to NA at the 0-based rows na_rows; rows with NA dropped (na.omit); fitted/residuals refer to the remaining rows"))
both("rankdef", "Reaction ~ Days + Days2 + grp + (1 | Subject)", sleep_rd, "sleepstudy",
     extra = list(data_transform = "Days2 = 2*Days; grp = factor(ifelse(as.integer(Subject) <= 9, 'a', 'b')) (levels a, b; Subject levels 1-9 in R order -> 'a')"))
both("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", cake_u, "cake",
     extra = list(data_transform = "temperature converted to an unordered factor (treatment contrasts)"))
both("cake_catslope", "angle ~ temperature + (recipe | replicate)", cake_u, "cake",
     extra = list(data_transform = "temperature converted to an unordered factor (treatment contrasts)"))
both("cake_catslope0", "angle ~ temperature + (0 + recipe | replicate)", cake_u, "cake",
     extra = list(data_transform = "temperature converted to an unordered factor (treatment contrasts)"))
run_model("insteval_ml", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", InstEval, "insteval", FALSE)
})
cat(sprintf("total elapsed: %.1f s\n", t_all[["elapsed"]]))
