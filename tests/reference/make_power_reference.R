#!/usr/bin/env Rscript
## Reference fixture for simulation-based power analysis.
##
## Run from the repository root:
##     Rscript tests/reference/make_power_reference.R
##
## Writes tests/reference/fixtures/power/sleep_power.json.
##
## Design: the sleepstudy design (18 subjects x Days 0..9, 180 rows).
## Truth: the REML fit of Reaction ~ Days + (Days | Subject) (lme4 default
## control): intercept beta0, random-effect covariance Sigma_b =
## sigma^2 * Lambda Lambda' (Lambda lower-triangular from theta), residual sd sigma;
## the Days effect is set to 5, 2 and 0 (type I error).
## For each of NSIM = 1000 data sets per effect (hand-written simulation):
##   b_i ~ N(0, Sigma_b) per subject, e ~ N(0, sigma^2),
##   y = beta0 + effect*Days + b_i0 + b_i1*Days + e,
##   H1: y ~ Days + (Days | Subject), H0: y ~ 1 + (Days | Subject), both ML
##   (REML = FALSE), lme4 default lmerControl() -- what users run;
##   LRT chisq = deviance(H0) - deviance(H1) on 1 df; significant if p < 0.05.
## Warnings, messages and singular fits are counted (not suppressed from the count).
## Shared helpers, which also attach lme4 and jsonlite: fixture_helpers.R next to
## this script, found via Rscript's --file= (fallback: run from the repo root).
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
outdir <- fixture_dir("power")

NSIM <- 1000L
ALPHA <- 0.05
SEED <- 20240612L
EFFECTS <- c(5, 2, 0)

fit0 <- lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)
beta0 <- unname(fixef(fit0)[1])
sigma0 <- sigma(fit0)
theta0 <- unname(getME(fit0, "theta"))
Lambda <- matrix(c(theta0[1], theta0[2], 0, theta0[3]), 2, 2)   # lower triangular
Sigma_b <- sigma0^2 * Lambda %*% t(Lambda)
Lchol <- sigma0 * Lambda                                          # Sigma_b = Lchol Lchol'

design <- sleepstudy[, c("Days", "Subject")]
subj <- as.integer(design$Subject)
nsubj <- nlevels(design$Subject)
n <- nrow(design)

simulate_one <- function(effect) {
  z <- matrix(rnorm(2 * nsubj), 2, nsubj)
  b <- t(Lchol %*% z)                                             # nsubj x 2
  beta0 + effect * design$Days + b[subj, 1] + b[subj, 2] * design$Days + rnorm(n, 0, sigma0)
}

run_effect <- function(effect) {
  chisq <- pval <- numeric(NSIM)
  n_warn_fits <- 0L; n_sing_h1 <- 0L; n_sing_h0 <- 0L; n_msg_fits <- 0L
  all_warn <- character(0)
  d <- design
  t0 <- proc.time()[["elapsed"]]
  for (i in seq_len(NSIM)) {
    d$Reaction <- simulate_one(effect)
    f1 <- collect(lmer(Reaction ~ Days + (Days | Subject), data = d, REML = FALSE), unique = FALSE)
    f0 <- collect(lmer(Reaction ~ 1 + (Days | Subject), data = d, REML = FALSE), unique = FALSE)
    n_warn_fits <- n_warn_fits + (length(f1$warnings) > 0) + (length(f0$warnings) > 0)
    n_msg_fits <- n_msg_fits + (length(f1$messages) > 0) + (length(f0$messages) > 0)
    all_warn <- c(all_warn, f1$warnings, f0$warnings)
    n_sing_h1 <- n_sing_h1 + isSingular(f1$value)
    n_sing_h0 <- n_sing_h0 + isSingular(f0$value)
    chisq[i] <- max(0, deviance(f0$value) - deviance(f1$value))
    pval[i] <- pchisq(chisq[i], df = 1, lower.tail = FALSE)
  }
  elapsed <- proc.time()[["elapsed"]] - t0
  nsig <- sum(pval < ALPHA)
  pw <- nsig / NSIM
  cat(sprintf("effect %g: %d/%d significant, power %.3f, %.1fs, warn fits %d, singular H1 %d H0 %d\n",
              effect, nsig, NSIM, pw, elapsed, n_warn_fits, n_sing_h1, n_sing_h0))
  wt <- table(sub(" with max\\|grad\\| = [0-9.e-]+.*$", " with max|grad| = ...", all_warn))
  list(effect = effect, nsim = NSIM, n_significant = nsig, power = pw,
       mc_se = sqrt(pw * (1 - pw) / NSIM),
       n_fits_with_warnings = n_warn_fits, n_fits_with_messages = n_msg_fits,
       n_singular_h1 = n_sing_h1, n_singular_h0 = n_sing_h0,
       warning_summary = list(message = I(as.character(names(wt))), count = I(as.integer(wt))),
       chisq = I(chisq), p_values = I(pval),
       elapsed_s = elapsed)
}

set.seed(SEED)
t_all <- system.time(results <- lapply(EFFECTS, run_effect))[["elapsed"]]

res <- list(
  id = "sleep_power",
  dataset = "sleepstudy",
  design = "sleepstudy design: 18 subjects x Days 0..9 (180 rows)",
  formula_h1 = "Reaction ~ Days + (Days | Subject)",
  formula_h0 = "Reaction ~ 1 + (Days | Subject)",
  reml = FALSE,
  test = "LRT, chisq = deviance(H0) - deviance(H1), 1 df",
  alpha = ALPHA,
  seed = SEED,
  rng = "set.seed(seed) once (R default Mersenne-Twister / Inversion), then effects in order 5, 2, 0; per data set: rnorm(2*18) for b (column-major 2 x 18, b_i = Lchol %*% z_i), then rnorm(180, 0, sigma) for e",
  optimizer_settings = "lme4 default lmerControl()",
  truth = list(
    source = "REML fit of Reaction ~ Days + (Days | Subject) on sleepstudy, lme4 default lmerControl()",
    intercept = beta0,
    fitted_days_effect = unname(fixef(fit0)[2]),
    sigma = sigma0,
    theta = I(theta0),
    Sigma_b = rows(Sigma_b),
    sd_intercept = sqrt(Sigma_b[1, 1]),
    sd_days = sqrt(Sigma_b[2, 2]),
    cor = Sigma_b[1, 2] / sqrt(Sigma_b[1, 1] * Sigma_b[2, 2])),
  results = results,
  total_elapsed_s = t_all,
  generated_by = sprintf("tests/reference/make_power_reference.R; R %s.%s, lme4 %s",
                         R.version$major, R.version$minor, packageVersion("lme4"))
)
write_fixture(res, file.path(outdir, "sleep_power.json"))
cat(sprintf("total elapsed: %.1f s\n", t_all))
