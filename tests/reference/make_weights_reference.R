#!/usr/bin/env Rscript
## Reference fixtures for prior weights and offsets in lmer, computed with lme4
## (plus lmerTest's Satterthwaite and pbkrtest's Kenward-Roger df).
##
## Run from the repository root:
##     Rscript tests/reference/make_weights_reference.R
##
## Writes tests/reference/fixtures/weights/<id>.json. Each fixture carries the
## weight and offset vectors it used (generated here with set.seed), so the
## tests need only the bundled data set. Fits use the tight settings of
## fixture_helpers.R (bobyqa, then an nloptwrap polish; the lower objective kept).
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
suppressPackageStartupMessages({ library(lmerTest); library(pbkrtest) })
outdir <- fixture_dir("weights")

## weights / offset: column names of data (NULL for none), passed to lmer as
## the bare column names so that model.frame finds them in data.
tight <- function(formula, data, reml, weights = NULL, offset = NULL) {
  call1 <- bquote(lmerTest::lmer(formula, data = data, REML = reml, control = ctrl_bobyqa))
  if (!is.null(weights)) call1$weights <- as.name(weights)
  if (!is.null(offset)) call1$offset <- as.name(offset)
  m1 <- suppressWarnings(suppressMessages(eval(call1)))
  call2 <- call1
  call2$control <- quote(ctrl_nlopt)
  call2$start <- list(theta = getME(m1, "theta"))
  m2 <- suppressWarnings(suppressMessages(eval(call2)))
  if (crit(m2) < crit(m1)) m2 else m1
}

## pbkrtest builds V = sum theta_k G_k + sigma^2 I and so ignores prior weights.
## The weighted model equals an unweighted one on rows scaled by sqrt(w)
## (y, X and Z all multiplied by sqrt(w_i), the offset subtracted first); its
## Kenward-Roger df are the weighted model's. `kr_formula` is that model.
kr_scaled <- function(kr_formula, data) {
  m <- suppressWarnings(suppressMessages(lmerTest::lmer(as.formula(kr_formula), data = data, REML = TRUE,
                                                         control = ctrl_bobyqa)))
  summary(m, ddf = "Kenward-Roger")$coefficients
}

record <- function(id, dataset, formula, reml, m, w = NULL, o = NULL, o_arg = FALSE, note = "",
                   kr_formula = NULL, kr_data = NULL) {
  V <- as.matrix(vcov(m))
  ll <- logLik(m)
  res <- list(id = id, dataset = dataset, formula = formula, reml = reml, note = note,
              weights = if (is.null(w)) NULL else I(w),
              offset = if (is.null(o)) NULL else I(o), offset_argument = o_arg,
              nobs = nobs(m), fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
              se = I(unname(sqrt(diag(V)))), theta = I(unname(getME(m, "theta"))),
              sigma = sigma(m), loglik = as.numeric(ll), deviance = crit(m),
              aic = AIC(m), bic = BIC(m),
              ranef = lapply(ranef(m), function(d) rows(as.matrix(d))),
              fitted = I(unname(fitted(m))), residuals = I(unname(residuals(m))),
              pearson = I(unname(residuals(m, type = "pearson", scaled = TRUE))),
              generated_by = sprintf("tests/reference/make_weights_reference.R; R %s.%s, lme4 %s, lmerTest %s, pbkrtest %s",
                                     R.version$major, R.version$minor, packageVersion("lme4"),
                                     packageVersion("lmerTest"), packageVersion("pbkrtest")))
  if (reml) {
    mt <- m  # fitted by lmerTest::lmer
    st <- summary(mt, ddf = "Satterthwaite")$coefficients
    kr <- summary(mt, ddf = "Kenward-Roger")$coefficients
    res$satterthwaite_df <- I(unname(st[, "df"]))
    res$satterthwaite_p <- I(unname(st[, "Pr(>|t|)"]))
    res$kr_df <- I(unname(kr[, "df"]))
    res$kr_se <- I(unname(kr[, "Std. Error"]))
    res$kr_p <- I(unname(kr[, "Pr(>|t|)"]))
    res$kr_note <- "kr_*: pbkrtest on the weighted fit, which ignores prior weights (V = ... + sigma^2 I)"
    if (!is.null(kr_formula)) {
      krs <- kr_scaled(kr_formula, kr_data)
      res$kr_scaled_formula <- kr_formula
      res$kr_scaled_df <- I(unname(krs[, "df"]))
      res$kr_scaled_se <- I(unname(krs[, "Std. Error"]))
      res$kr_scaled_p <- I(unname(krs[, "Pr(>|t|)"]))
    }
  }
  write_fixture(res, file.path(outdir, paste0(id, ".json")))
  cat(sprintf("%-24s loglik=%.10f\n", id, as.numeric(ll)))
}

sleep <- sleepstudy
set.seed(20261202)
w_sleep <- round(runif(nrow(sleep), 0.3, 3), 3)
o_sleep <- round(2 * sleep$Days + rnorm(nrow(sleep), 0, 5), 3)
sleep$w <- w_sleep
sleep$o <- o_sleep

sleep$sw <- sqrt(sleep$w)
sleep$swDays <- sleep$sw * sleep$Days
sleep$swReaction <- sleep$sw * sleep$Reaction
sleep$swReaction_o <- sleep$sw * (sleep$Reaction - sleep$o)
KR_SLEEP <- "swReaction ~ 0 + sw + swDays + (0 + sw + swDays | Subject)"
KR_SLEEP_O <- "swReaction_o ~ 0 + sw + swDays + (0 + sw + swDays | Subject)"

pen <- Penicillin
set.seed(7)
w_pen <- round(runif(nrow(pen), 0.5, 2), 3)
pen$w <- w_pen
pen$sw <- sqrt(pen$w)
pen$swdiameter <- pen$sw * pen$diameter
KR_PEN <- "swdiameter ~ 0 + sw + (0 + sw | plate) + (0 + sw | sample)"

for (reml in c(TRUE, FALSE)) {
  tag <- if (reml) "reml" else "ml"
  f <- "Reaction ~ Days + (Days | Subject)"
  record(paste0("sleep_weights_", tag), "sleepstudy", f, reml,
         tight(as.formula(f), sleep, reml, weights = "w"), w = w_sleep, kr_formula = KR_SLEEP, kr_data = sleep)
  f <- "diameter ~ 1 + (1 | plate) + (1 | sample)"
  record(paste0("penicillin_weights_", tag), "penicillin", f, reml,
         tight(as.formula(f), pen, reml, weights = "w"), w = w_pen, kr_formula = KR_PEN, kr_data = pen)
  f <- "Reaction ~ Days + (1 | Subject)"
  record(paste0("sleep_offset_", tag), "sleepstudy", f, reml,
         tight(as.formula(f), sleep, reml, offset = "o"), o = o_sleep, o_arg = TRUE)
  f <- "Reaction ~ Days + (Days | Subject)"
  record(paste0("sleep_weights_offset_", tag), "sleepstudy", f, reml,
         tight(as.formula(f), sleep, reml, weights = "w", offset = "o"), w = w_sleep, o = o_sleep, o_arg = TRUE,
         kr_formula = KR_SLEEP_O, kr_data = sleep)
}
## offset() inside the formula, same numbers as the argument
f <- "Reaction ~ Days + offset(o) + (Days | Subject)"
record("sleep_formula_offset_ml", "sleepstudy", f, FALSE,
       tight(as.formula(f), sleep, FALSE, weights = "w"), w = w_sleep, o = o_sleep, o_arg = FALSE,
       note = "offset given as offset(o) in the formula; weights as the argument")
## a zero weight: lme4 gives logLik -Inf; the reference is the fit without that row
sleep0 <- sleep[-c(5, 77), ]
w0 <- w_sleep; w0[c(5, 77)] <- 0
f <- "Reaction ~ Days + (Days | Subject)"
record("sleep_zero_weights_ml", "sleepstudy", f, FALSE, tight(as.formula(f), sleep0, FALSE, weights = "w"),
       w = w0, note = "weights 0 at 0-based rows 4 and 76: reference fitted to the data without those rows")
