#!/usr/bin/env Rscript
## nlme's Pearson and normalized residuals of fits with residual structures, for
## tests/results/test_normalized_residuals.py (fit.residuals(kind="normalized")).
##
## Run from the repository root:
##     Rscript tests/reference/make_normalized_residuals_reference.R
##
## Each case is fitted by REML with tight lmeControl settings (the models of
## make_residual_reference.R); the JSON holds, in data order, the innermost-level
## residuals of type "pearson" and "normalized" (the Pearson residuals
## pre-multiplied by the inverse Cholesky factor of the within-group correlation),
## with phi, the varIdent SD ratios and the rows used (1-based).
args <- commandArgs(trailingOnly = FALSE)
here <- dirname(sub("^--file=", "", grep("^--file=", args, value = TRUE)[1]))
if (is.na(here) || !file.exists(file.path(here, "fixture_helpers.R"))) here <- file.path("tests", "reference")
source(file.path(here, "fixture_helpers.R"))
suppressPackageStartupMessages(library(nlme))

out_dir <- fixture_dir("residual")
ctrl <- nlme_ctrl_tight()

data(Ovary, BodyWeight, package = "nlme")
## Mare and Rat as plain factors with levels in data order: with nlme's ordered factors
## (levels "4", "2", "11", ...) the fit is the same but residuals(type = "normalized") come
## back misaligned with the data rows (16 of Ovary's 308 rows differ by up to 2.4 from the
## within-group recursion, which the plain factors reproduce to 1e-15).
ovary <- as.data.frame(Ovary)
ovary$Mare <- factor(as.integer(as.character(ovary$Mare)))
bw <- as.data.frame(BodyWeight)
bw$Rat <- factor(as.integer(as.character(bw$Rat)))
ss <- as.data.frame(lme4::sleepstudy)
keep <- which(seq_len(nrow(ss)) %% 7 != 3)
ss_irr <- ss[keep, ]
ss_irr$Time <- ss_irr$Days + c(0, 0.25, 0.5)[(keep %% 3) + 1]

one <- function(fixed, data, random, correlation, weights = NULL, rows = NULL) {
  m <- lme(fixed, data = data, random = random, correlation = correlation, weights = weights,
           method = "REML", control = ctrl)
  vs <- m$modelStruct$varStruct
  list(
    loglik = as.numeric(logLik(m)),
    phi = as.numeric(coef(m$modelStruct$corStruct, unconstrained = FALSE)),
    sd_ratio = if (is.null(vs)) list() else as.list(coef(vs, unconstrained = FALSE, allCoef = TRUE)),
    sigma = m$sigma,
    pearson = I(as.numeric(residuals(m, type = "pearson"))),
    normalized = I(as.numeric(residuals(m, type = "normalized"))),
    rows = if (is.null(rows)) NULL else I(as.integer(rows))
  )
}

res <- list(
  ovary_ar1 = one(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), ovary,
                  random = list(Mare = pdDiag(~ sin(2 * pi * Time))), correlation = corAR1(form = ~ 1 | Mare)),
  bodyweight_ar1_varident = one(weight ~ Time * Diet, bw, random = ~ 1 | Rat,
                                correlation = corAR1(form = ~ 1 | Rat), weights = varIdent(form = ~ 1 | Diet)),
  sleepstudy_car1 = one(Reaction ~ Days, ss_irr, random = ~ 1 | Subject,
                        correlation = corCAR1(form = ~ Time | Subject), rows = keep),
  nlme_version = as.character(packageVersion("nlme"))
)
res$sleepstudy_car1$time <- I(ss_irr$Time)
write_fixture(res, file.path(out_dir, "normalized_residuals.json"))
for (k in c("ovary_ar1", "bodyweight_ar1_varident", "sleepstudy_car1"))
  cat(k, ": REML logLik", res[[k]]$loglik, " phi", res[[k]]$phi, "\n")
