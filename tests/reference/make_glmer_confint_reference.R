#!/usr/bin/env Rscript
## Profile-likelihood intervals of glmer fits (lme4's confint.merMod(method = "profile")),
## for lmmjax's GlmerFit.confint(method = "profile").
##
## Run from the repository root:
##     Rscript tests/reference/make_glmer_confint_reference.R [id ...]
##
## Writes tests/reference/fixtures/glmer/confint/<id>.json, doubles with up to 17
## significant digits. Each model is fitted with the tight settings of
## make_glmer_reference.R (bobyqa, rhoend = 1e-10, tolPwrss = 1e-10); then
##   confint_profile = confint(profile(m, signames = FALSE)) at level 0.95, which is
##                     confint(m, method = "profile", oldNames = FALSE)
##                     (names "sd_(Intercept)|herd", "(Intercept)", ...; lme4's row
##                     order: the sds first, then the fixed effects);
##   profile_trace   = as.data.frame(profile(m, signames = FALSE)): the focal parameter,
##                     its value and zeta at every profile point (lme4 interpolates
##                     these points with splines to get the interval ends);
##   loglik, theta, fixef of the fit, and the seconds confint took (this machine).
## Models:
##   cbpp_agg     cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp
##   grouseticks  TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), Poisson
##   binary_slope y ~ x + (x | g), Bernoulli, data stored in fixtures/glmer/binary_slope.json
##                (a correlation is profiled too)
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
outdir <- fixture_dir(file.path("glmer", "confint"))
only <- commandArgs(trailingOnly = TRUE)

ctrl_tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10),
                           tolPwrss = 1e-10)

confint_cols <- function(ci) {
  list(names = I(rownames(ci)), lower = I(unname(ci[, 1])), upper = I(unname(ci[, 2])), level = 0.95)
}

run_confint <- function(id, formula_str, data, dataset, family, extra = list()) {
  if (length(only) && !(id %in% only)) return(invisible(NULL))
  m <- glmer(as.formula(formula_str), data = data, family = family, control = ctrl_tight)
  ## confint(m, method = "profile") is confint() of profile(m, signames = FALSE): profiled once here
  t0 <- proc.time()[[3]]
  pr <- collect(profile(m, signames = FALSE))
  ci <- collect(confint(pr$value))
  t_ci <- proc.time()[[3]] - t0
  ci$warnings <- unique(c(pr$warnings, ci$warnings))
  prd <- as.data.frame(pr$value)
  pr_value <- vapply(seq_len(nrow(prd)), function(i) prd[i, as.character(prd$.par[i])], numeric(1))
  res <- c(list(id = id, dataset = dataset, formula = formula_str, family = family$family,
                link = family$link, nAGQ = 1L), extra)
  res <- c(res, list(
    loglik = as.numeric(logLik(m)),
    theta = I(unname(getME(m, "theta"))),
    fixef_names = I(names(fixef(m))),
    fixef = I(unname(fixef(m))),
    confint_profile = c(confint_cols(ci$value), list(warnings = I(ci$warnings))),
    confint_note = "lme4 confint.merMod(method = 'profile', oldNames = FALSE), level 0.95; ends from spline interpolation of the profile",
    profile_trace = list(note = "as.data.frame(profile(m, signames = FALSE)): focal parameter, its value, zeta",
                         par = I(as.character(prd$.par)), value = I(unname(pr_value)),
                         zeta = I(unname(prd$.zeta))),
    r_seconds_confint = t_ci,
    optimizer_settings = "glmerControl(optimizer='bobyqa', optCtrl=list(maxfun=1e5, rhoend=1e-10), tolPwrss=1e-10)",
    generated_by = sprintf("tests/reference/make_glmer_confint_reference.R; R %s.%s, lme4 %s",
                           R.version$major, R.version$minor, as.character(packageVersion("lme4")))))
  write_fixture(res, file.path(outdir, paste0(id, ".json")))
  cat(sprintf("%-14s confint %.1fs, %d warnings\n", id, t_ci, length(ci$warnings)))
  print(ci$value)
  invisible(m)
}

run_confint("cbpp_agg", "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, "cbpp", binomial())
run_confint("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
            grouseticks, "grouseticks", poisson())
slope <- jsonlite::fromJSON(file.path("tests", "reference", "fixtures", "glmer", "binary_slope.json"))$data
slope <- data.frame(y = as.numeric(slope$y), x = as.numeric(slope$x), g = factor(slope$g))
run_confint("binary_slope", "y ~ x + (x | g)", slope, "simulated", binomial(),
            extra = list(data_transform = "the data of fixtures/glmer/binary_slope.json ('data')"))
