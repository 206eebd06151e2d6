#!/usr/bin/env Rscript
## Reference fits with residual covariance structures (nlme::lme), for
## tests/test_residual_structures.py (lmm.AR1 / lmm.CAR1 / lmm.VarIdent).
##
## Run from the repository root:
##     Rscript tests/reference/make_residual_reference.R
##
## Every case is fitted by REML and ML with tight lmeControl settings; the
## JSON holds logLik, fixed effects and their SEs, sigma, phi (natural scale)
## and the varIdent SD ratios by level name, the random-effect SDs, the rows
## used (1-based, for the cases that drop rows) and any derived time column.
## Fit times (median of 5 runs) are recorded for Ovary and BodyWeight.
args <- commandArgs(trailingOnly = FALSE)
here <- dirname(sub("^--file=", "", grep("^--file=", args, value = TRUE)[1]))
if (is.na(here) || !file.exists(file.path(here, "fixture_helpers.R"))) here <- file.path("tests", "reference")
source(file.path(here, "fixture_helpers.R"))
suppressPackageStartupMessages(library(nlme))

out_dir <- fixture_dir("residual")
ctrl <- nlme_ctrl_tight()

data(Ovary, BodyWeight, package = "nlme")
ovary <- as.data.frame(Ovary)
bw <- as.data.frame(BodyWeight)
ss <- as.data.frame(lme4::sleepstudy)

## Irregular sleepstudy: every 7th row dropped, times shifted by 0, 0.25 or 0.5 days.
keep <- which(seq_len(nrow(ss)) %% 7 != 3)
ss_irr <- ss[keep, ]
ss_irr$Time <- ss_irr$Days + c(0, 0.25, 0.5)[(keep %% 3) + 1]

summarise_fit <- function(m) {
  vc <- VarCorr(m)
  re_sd <- suppressWarnings(as.numeric(vc[, "StdDev"]))
  names(re_sd) <- rownames(vc)
  cs <- m$modelStruct$corStruct
  vs <- m$modelStruct$varStruct
  ratios <- if (is.null(vs)) list() else as.list(coef(vs, unconstrained = FALSE, allCoef = TRUE))
  list(
    loglik = as.numeric(logLik(m)),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(vcov(m)))),
    sigma = m$sigma,
    phi = if (is.null(cs)) NULL else as.numeric(coef(cs, unconstrained = FALSE)),
    sd_ratio = ratios,
    re_sd = as.list(re_sd[!is.na(re_sd)]),
    n_par = attr(logLik(m), "df")
  )
}

fit_both <- function(name, fixed, data, random, correlation = NULL, weights = NULL, timed = FALSE,
                     rows = NULL, extra = list()) {
  res <- list(name = name)
  for (method in c("REML", "ML")) {
    call_fit <- function() lme(fixed, data = data, random = random, correlation = correlation,
                               weights = weights, method = method, control = ctrl)
    m <- call_fit()
    res[[method]] <- summarise_fit(m)
    if (timed) {
      times <- sapply(1:5, function(i) system.time(call_fit())[["elapsed"]])
      res[[method]]$seconds <- median(times)
    }
  }
  if (!is.null(rows)) res$rows <- as.integer(rows)
  res <- c(res, extra)
  res$nlme_version <- as.character(packageVersion("nlme"))
  write_fixture(res, file.path(out_dir, paste0(name, ".json")))
  cat(name, ": REML logLik", res$REML$loglik, " ML logLik", res$ML$loglik, "\n")
}

fit_both("ovary_ar1", follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), ovary,
         random = list(Mare = pdDiag(~ sin(2 * pi * Time))),
         correlation = corAR1(form = ~ 1 | Mare), timed = TRUE)
fit_both("bodyweight_ar1", weight ~ Time * Diet, bw, random = ~ Time | Rat,
         correlation = corAR1(form = ~ 1 | Rat), timed = TRUE)
fit_both("sleepstudy_ar1", Reaction ~ Days, ss, random = ~ Days | Subject,
         correlation = corAR1(form = ~ Days | Subject))
fit_both("sleepstudy_ar1_gaps", Reaction ~ Days, ss_irr, random = ~ 1 | Subject,
         correlation = corAR1(form = ~ Days | Subject), rows = keep)
fit_both("sleepstudy_car1", Reaction ~ Days, ss_irr, random = ~ 1 | Subject,
         correlation = corCAR1(form = ~ Time | Subject), rows = keep,
         extra = list(time = I(ss_irr$Time)))
fit_both("bodyweight_varident", weight ~ Time * Diet, bw, random = ~ 1 | Rat,
         weights = varIdent(form = ~ 1 | Diet))
fit_both("bodyweight_ar1_varident", weight ~ Time * Diet, bw, random = ~ 1 | Rat,
         correlation = corAR1(form = ~ 1 | Rat), weights = varIdent(form = ~ 1 | Diet))
## without a residual structure: nlme's REML/ML logLik against lme4's (same definition)
fit_both("sleepstudy_plain", Reaction ~ Days, ss, random = ~ Days | Subject)
