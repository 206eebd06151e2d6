#!/usr/bin/env Rscript
## Reference fixtures for lmmjax inference (lmerTest / pbkrtest / lme4 confint).
##
## Run from the repository root:
##     Rscript tests/reference/make_inference_reference.R
##
## Writes tests/reference/fixtures/inference/<id>.json for sleep, sleep_missing,
## cake, cake_unbalanced, penicillin (all REML) and dyestuff2 (singular; coefficient
## tables and confidence intervals only).
## Models are fitted with the same tight optimizer settings as make_reference.R.
##
## Tables are stored column-wise: {"term": [...], "estimate": [...], ...}.
##   coef_*:   estimate, se, df, t, p              (summary(m, ddf=...)$coefficients)
##   anova3_*: SumSq, MeanSq, NumDF, DenDF, F, p   (anova(m, type=3, ddf=...))
##   anova1_*: the same for type I (sequential) tests (anova(m, type=1, ddf=...))
##   contest1d: t test of L = e_p (last fixed effect), contest1D(m, L, ddf=...)
##   contest_f: joint F test of all non-intercept coefficients, contest(m, L, ddf=...)
##   vcov_kr:  pbkrtest::vcovAdj(m), the Kenward-Roger adjusted covariance of beta
##   confint_profile / confint_wald: lme4 confint(m, method=..., oldNames=FALSE),
##             names as R gives them; null = NA (Wald has no intervals for
##             variance parameters).
## Extra pieces (added for the inference tests):
##   sleep: coef_satterthwaite_ml (ML fit), profile_trace (lme4 profile(m):
##          focal parameter name, its value and zeta at every profile point),
##          lrt (anova(m0, m1), a variance component tested).
##   cake:  lrt (anova(additive, interaction), fixed effects tested).
##   cake_unbalanced: cake with responses removed (cells unequal), the full
##          inference fixture (type I and III tests then differ).
## Shared helpers, which also attach lme4 and jsonlite: fixture_helpers.R next to
## this script, found via Rscript's --file= (fallback: run from the repo root).
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
suppressPackageStartupMessages({
  library(lmerTest)
  library(pbkrtest)
})
outdir <- fixture_dir("inference")

## ---- helpers ---------------------------------------------------------------------
## Tight fit returned as an lmerModLmerTest object (lmerTest::lmer).
tight_fit <- function(formula, data, reml = TRUE) {
  m1 <- collect(lmerTest::lmer(formula, data = data, REML = reml, control = ctrl_bobyqa))$value
  m2 <- collect(lmerTest::lmer(formula, data = data, REML = reml, control = ctrl_nlopt,
                               start = list(theta = getME(m1, "theta"))))$value
  if (crit(m2) < crit(m1)) m2 else m1
}

## Table (data frame / matrix) -> {term: [...], <newname>: [...], ...}.
table_cols <- function(tab, map) {
  tab <- as.data.frame(tab, check.names = FALSE)
  out <- list(term = I(rownames(tab)))
  for (new in names(map)) out[[new]] <- I(unname(as.numeric(tab[[map[[new]]]])))
  out
}
COEF_MAP <- c(estimate = "Estimate", se = "Std. Error", df = "df", t = "t value", p = "Pr(>|t|)")
ANOVA_MAP <- c(SumSq = "Sum Sq", MeanSq = "Mean Sq", NumDF = "NumDF", DenDF = "DenDF",
               F = "F value", p = "Pr(>F)")

confint_cols <- function(ci) {
  list(names = I(rownames(ci)), lower = I(unname(ci[, 1])), upper = I(unname(ci[, 2])),
       level = 0.95)
}

inference_fixture <- function(id, formula_str, data, dataset, extra = list()) {
  t0 <- proc.time()[[3]]
  fml <- as.formula(formula_str)
  m <- tight_fit(fml, data, reml = TRUE)
  fn <- names(fixef(m))
  p <- length(fn)
  res <- c(list(id = id, dataset = dataset, formula = formula_str, reml = TRUE), extra,
           list(fixef_names = I(fn), fixef = I(unname(fixef(m))),
                theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
                loglik = as.numeric(logLik(m)), deviance = crit(m)))
  ## summary coefficient tables
  res$coef_satterthwaite <- table_cols(summary(m, ddf = "Satterthwaite")$coefficients, COEF_MAP)
  res$coef_kenward_roger <- table_cols(summary(m, ddf = "Kenward-Roger")$coefficients, COEF_MAP)
  ## type III anova (empty when the model has only an intercept)
  res$anova3_satterthwaite <- table_cols(anova(m, type = 3, ddf = "Satterthwaite"), ANOVA_MAP)
  res$anova3_kenward_roger <- table_cols(anova(m, type = 3, ddf = "Kenward-Roger"), ANOVA_MAP)
  res$anova1_satterthwaite <- table_cols(anova(m, type = 1, ddf = "Satterthwaite"), ANOVA_MAP)
  res$anova1_kenward_roger <- table_cols(anova(m, type = 1, ddf = "Kenward-Roger"), ANOVA_MAP)
  ## contrasts
  L1 <- as.numeric(seq_len(p) == p)
  res$contest1d <- list(
    L = I(L1),
    satterthwaite = as.list(table_cols(contest1D(m, L1, ddf = "Satterthwaite"), COEF_MAP))[-1],
    kenward_roger = as.list(table_cols(contest1D(m, L1, ddf = "Kenward-Roger"), COEF_MAP))[-1])
  if (p > 1) {
    LF <- diag(p)[-1, , drop = FALSE]
    res$contest_f <- list(
      L = rows(LF),
      satterthwaite = as.list(table_cols(contest(m, LF, joint = TRUE, ddf = "Satterthwaite"), ANOVA_MAP))[-1],
      kenward_roger = as.list(table_cols(contest(m, LF, joint = TRUE, ddf = "Kenward-Roger"), ANOVA_MAP))[-1])
  } else {
    res$contest_f <- NULL
    res["contest_f"] <- list(NULL)
  }
  ## Kenward-Roger adjusted covariance (pbkrtest) and the unadjusted one
  res$vcov <- rows(as.matrix(vcov(m)))
  res$vcov_kr <- rows(as.matrix(pbkrtest::vcovAdj(as(m, "lmerMod"))))
  ## confidence intervals
  cp <- collect(confint(m, method = "profile", oldNames = FALSE))
  res$confint_profile <- c(confint_cols(cp$value), list(warnings = I(cp$warnings)))
  res$confint_profile_note <- "lme4 confint.merMod(method='profile', oldNames=FALSE) on the REML fit; lme4 profiles the ML deviance (devfun2 calls refitML)"
  res$confint_wald <- confint_cols(confint(m, method = "Wald", oldNames = FALSE))
  res$optimizer_settings <- OPT_SETTINGS
  res$generated_by <- sprintf("tests/reference/make_inference_reference.R; R %s.%s, lme4 %s, lmerTest %s, pbkrtest %s",
                              R.version$major, R.version$minor,
                              packageVersion("lme4"), packageVersion("lmerTest"), packageVersion("pbkrtest"))
  res
}

lrt_fixture <- function(m0, m1, f0, f1, note) {
  lrt <- collect(anova(as(m0, "lmerMod"), as(m1, "lmerMod")))  # lme4's anova; refits REML fits by ML
  tab <- as.data.frame(lrt$value, check.names = FALSE)
  list(formula_m0 = f0, formula_m1 = f1, note = note, model = I(c("m0", "m1")),
       npar = I(unname(as.numeric(tab$npar))),
       AIC = I(unname(tab$AIC)), BIC = I(unname(tab$BIC)),
       logLik = I(unname(tab$logLik)), deviance = I(unname(tab$deviance)),
       Chisq = I(unname(tab$Chisq)), Df = I(unname(as.numeric(tab$Df))),
       p = I(unname(tab[["Pr(>Chisq)"]])),
       messages = I(lrt$messages))
}

## ---- data ------------------------------------------------------------------------------
na_rows_1based <- c(3, 17, 18, 40, 41, 42, 77, 100, 101, 150, 151, 152, 153, 178)
sleep_na <- sleepstudy
sleep_na$Reaction[na_rows_1based] <- NA
cake_u <- cake
cake_u$temperature <- factor(cake_u$temperature, ordered = FALSE)
cake_na_rows_1based <- c(4, 9, 23, 31, 47, 52, 66, 88, 97, 110, 129, 133, 158, 171, 190, 204, 219, 236, 251, 262)
cake_na <- cake_u
cake_na$angle <- as.numeric(cake_na$angle)
cake_na$angle[cake_na_rows_1based] <- NA

## ---- fixtures --------------------------------------------------------------------------
t_all <- system.time({

## sleep, plus the likelihood-ratio test m0 vs m1
res <- inference_fixture("sleep", "Reaction ~ Days + (Days | Subject)", sleepstudy, "sleepstudy")
m1 <- tight_fit(Reaction ~ Days + (Days | Subject), sleepstudy, TRUE)
m0 <- tight_fit(Reaction ~ Days + (1 | Subject), sleepstudy, TRUE)
res$lrt <- lrt_fixture(m0, m1, "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)",
                       "anova(m0, m1) with both fitted by REML; lme4 refits both by ML (refit = TRUE)")
m_ml <- tight_fit(Reaction ~ Days + (Days | Subject), sleepstudy, FALSE)
res$coef_satterthwaite_ml <- table_cols(summary(m_ml, ddf = "Satterthwaite")$coefficients, COEF_MAP)
pr <- as.data.frame(profile(as(m1, "lmerMod"), signames = FALSE))
pr_value <- vapply(seq_len(nrow(pr)), function(i) pr[i, as.character(pr$.par[i])], numeric(1))
res$profile_trace <- list(note = "lme4 profile(m) of the REML fit (ML profile): focal parameter, its value, zeta",
                          par = I(as.character(pr$.par)), value = I(unname(pr_value)),
                          zeta = I(unname(pr$.zeta)))
write_fixture(res, file.path(outdir, "sleep.json"))
cat("sleep done\n")

res <- inference_fixture("sleep_missing", "Reaction ~ Days + (Days | Subject)", sleep_na, "sleepstudy",
                         extra = list(na_rows = I(na_rows_1based - 1), na_column = "Reaction"))
write_fixture(res, file.path(outdir, "sleep_missing.json"))
cat("sleep_missing done\n")

res <- inference_fixture("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", cake_u, "cake",
                         extra = list(data_transform = "temperature converted to an unordered factor (treatment contrasts)"))
m0 <- tight_fit(angle ~ recipe + temperature + (1 | recipe:replicate), cake_u, TRUE)
m1 <- tight_fit(angle ~ recipe * temperature + (1 | recipe:replicate), cake_u, TRUE)
res$lrt <- lrt_fixture(m0, m1, "angle ~ recipe + temperature + (1 | recipe:replicate)",
                       "angle ~ recipe * temperature + (1 | recipe:replicate)",
                       "anova(m0, m1) with both fitted by REML; lme4 refits both by ML (refit = TRUE); fixed effects tested")
write_fixture(res, file.path(outdir, "cake.json"))
cat("cake done\n")

res <- inference_fixture("cake_unbalanced", "angle ~ recipe * temperature + (1 | recipe:replicate)", cake_na, "cake",
                         extra = list(data_transform = "temperature converted to an unordered factor (treatment contrasts)",
                                      na_rows = I(cake_na_rows_1based - 1), na_column = "angle"))
write_fixture(res, file.path(outdir, "cake_unbalanced.json"))
cat("cake_unbalanced done\n")

res <- inference_fixture("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", Penicillin, "penicillin")
write_fixture(res, file.path(outdir, "penicillin.json"))
cat("penicillin done\n")

## singular fit: coefficient tables, profile and Wald intervals
m <- tight_fit(Yield ~ 1 + (1 | Batch), Dyestuff2, TRUE)
cp <- collect(confint(m, method = "profile", oldNames = FALSE))
res <- list(id = "dyestuff2", dataset = "dyestuff2", formula = "Yield ~ 1 + (1 | Batch)", reml = TRUE,
            fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
            theta = I(unname(getME(m, "theta"))), sigma = sigma(m), singular = isSingular(m),
            coef_satterthwaite = table_cols(summary(m, ddf = "Satterthwaite")$coefficients, COEF_MAP),
            coef_kenward_roger = table_cols(summary(m, ddf = "Kenward-Roger")$coefficients, COEF_MAP),
            confint_profile = c(confint_cols(cp$value), list(warnings = I(cp$warnings))),
            confint_profile_note = "lme4 confint.merMod(method='profile', oldNames=FALSE) on the REML fit; lme4 profiles the ML deviance (devfun2 calls refitML)",
            confint_wald = confint_cols(confint(m, method = "Wald", oldNames = FALSE)),
            optimizer_settings = OPT_SETTINGS)
write_fixture(res, file.path(outdir, "dyestuff2.json"))
cat("dyestuff2 done\n")
})
cat(sprintf("total elapsed: %.1f s\n", t_all[["elapsed"]]))
