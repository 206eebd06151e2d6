#!/usr/bin/env Rscript
## Reference fixtures for formulas as lme4 users type them (issue 10):
## powers inside I(), columns named like transforms (Treatment, Type), scale(),
## poly() with predictions on new data (makepredictcall), R functions without
## np. (log, exp, sqrt, abs, sin, cos, pi, factor, as.numeric), offset().
##
## Run from the repository root:
##     Rscript tests/reference/make_formula_reference.R
##
## Writes tests/reference/fixtures/formula/<case>.json with: the data (columns
## as JSON arrays, so the test needs no R data set), the R formula and the one
## lmmjax is given (they differ only where R has no such function: center()),
## REML flag, fixed effects (R's names), theta, sigma, logLik, the model frame's
## offset, and predictions on "newdata" (re.form = NA and NULL) where given.
## Fits: tight_fit() of fixture_helpers.R (bobyqa, then nloptwrap polish).
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
outdir <- fixture_dir("formula")

columns_of <- function(df) {
  out <- list()
  for (nm in names(df)) {
    x <- df[[nm]]
    out[[nm]] <- if (is.factor(x)) as.character(x) else if (is.double(x)) I(x) else x
  }
  out
}

write_case <- function(name, formula, data, reml = TRUE, formula_py = formula, newdata = NULL,
                       note = "") {
  tf <- tight_fit(as.formula(formula), data, reml)
  m <- tf$fit
  off <- model.offset(model.frame(m))
  out <- list(
    case = name, note = note, formula = formula, formula_py = formula_py, reml = reml,
    data = columns_of(data),
    fixef_names = names(fixef(m)), fixef = I(unname(fixef(m))),
    theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
    loglik = as.numeric(logLik(m)),
    offset = if (is.null(off)) NULL else I(as.numeric(off)),
    fit_settings = OPT_SETTINGS, fit_used = tf$which, warnings = tf$w$warnings
  )
  if (!is.null(newdata)) {
    out$newdata <- columns_of(newdata)
    out$predict_fixed <- I(unname(predict(m, newdata = newdata, re.form = NA)))
    out$predict_full <- I(unname(predict(m, newdata = newdata, allow.new.levels = TRUE)))
  }
  write_fixture(out, file.path(outdir, paste0(name, ".json")))
  cat(name, ": logLik", format(out$loglik, digits = 12), "\n")
}

sleep <- as.data.frame(sleepstudy)
sleep$Subject <- as.character(sleep$Subject)
new_sleep <- data.frame(Days = c(0.5, 3.5, 10, 12), Subject = c("308", "309", "370", "999"))

## ---- ^ means power inside I() (Loblolly growth curves) --------------------------
lob <- as.data.frame(Loblolly)
lob$Seed <- as.character(lob$Seed)
lob$age <- as.integer(lob$age)  # integer column: formulaic would compute age XOR 2
write_case("loblolly_power", "height ~ age + I(age^2) + (1 | Seed)", lob, reml = FALSE,
           note = "age is an integer column; ^ must be a power, not XOR")
write_case("loblolly_power_slope", "height ~ age + I(age^2) + (age | Seed)", lob, reml = FALSE,
           note = "the issue's exact case (loglik off by 75 with XOR)")

## ---- columns named like formulaic transforms and contrasts (CO2) ----------------
co2 <- as.data.frame(CO2)
co2$Plant <- as.character(co2$Plant)
co2$Type <- as.character(co2$Type)
co2$Treatment <- as.character(co2$Treatment)
write_case("co2_treatment", "uptake ~ Type * Treatment * log(conc) + (1 | Plant)", co2,
           note = "Treatment and Type are data columns, not contrast names")

## ---- scale(), centring, poly() -----------------------------------------------------
write_case("sleep_scale", "Reaction ~ scale(Days) + (scale(Days) | Subject)", sleep)
write_case("sleep_center", "Reaction ~ I(Days - mean(Days)) + (1 | Subject)", sleep,
           formula_py = "Reaction ~ center(Days) + (1 | Subject)",
           note = "R has no center(); lmmjax's center(x) is x - mean(x)")
write_case("sleep_poly", "Reaction ~ poly(Days, 2) + (1 | Subject)", sleep, newdata = new_sleep,
           note = "orthogonal polynomials; predictions on new data reuse the training coefficients")
write_case("sleep_poly_raw", "Reaction ~ poly(Days, 3, raw = TRUE) + (Days | Subject)", sleep)

## ---- R function names ----------------------------------------------------------------
write_case("sleep_rfunctions",
           "log(Reaction) ~ sqrt(Days) + abs(Days - 4.5) + sin(Days) + cos(pi * Days / 9) + exp(-Days / 10) + (1 | Subject)",
           sleep)
sleep_f <- sleep
sleep_f$period <- factor(ifelse(sleep$Days < 3, "early", ifelse(sleep$Days < 7, "middle", "late")),
                         levels = c("early", "middle", "late"))
sleep_f$period <- as.character(sleep_f$period)
write_case("sleep_factor", "Reaction ~ factor(Days %/% 3) + (1 | Subject)", sleep_f)
write_case("sleep_as_numeric", "Reaction ~ as.numeric(factor(period, levels = c('early', 'middle', 'late'))) + (1 | Subject)",
           sleep_f, note = "as.numeric of a factor is its level index 1..k, as in R")

## ---- offset() -------------------------------------------------------------------------
write_case("sleep_offset", "Reaction ~ Days + offset(2 * Days) + (1 | Subject)", sleep)

## ---- transforms see all rows, as R's model.frame evaluates them before na.omit ----------
sleep_na <- sleep
sleep_na$Reaction[c(1, 18, 34, 101, 150)] <- NA
sleep_na$Days[c(60, 61)] <- NA
write_case("sleep_scale_missing", "Reaction ~ scale(Days) + (scale(Days) | Subject)", sleep_na,
           note = "scale() uses every non-missing Days, also in rows dropped for a missing Reaction")
sleep_na2 <- sleep
sleep_na2$Reaction[c(1, 18, 34, 101, 150)] <- NA
write_case("sleep_poly_missing", "Reaction ~ poly(Days, 2) + (1 | Subject)", sleep_na2,
           note = "poly() coefficients from all 180 rows (R's poly refuses missing x)")

## ---- rows where an expression is NaN are dropped (model.frame's na.omit) ---------------
sleep_z <- sleep
sleep_z$z <- sleep$Days - 2.5
write_case("sleep_log_nan", "Reaction ~ log(z) + (1 | Subject)", sleep_z,
           note = "log(z) is NaN for z < 0: R drops those 54 rows (warning 'NaNs produced')")
