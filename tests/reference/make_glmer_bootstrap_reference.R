#!/usr/bin/env Rscript
## Reference fixtures for the GLMM parametric bootstrap and binary-outcome power (issue 11).
##
## Run from the repository root:
##     Rscript tests/reference/make_glmer_bootstrap_reference.R [bootstrap] [power]
##
## bootstrap -> tests/reference/fixtures/glmer/bootstrap/cbpp_bootmer.json
##   m = glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
##   (lme4's default glmerControl(), what users run and what the timing refers to);
##   bootMer(m, FUN, nsim = NSIM_BOOT, seed = 20261203, use.u = FALSE, type = "parametric")
##   with FUN = c(fixef(x), theta = getME(x, "theta")) (for a GLMM theta is the sd).
##   Stored: the replicate matrix, the original estimates, 95% percentile
##   intervals (quantile type 7), the count of replicates with warnings, the time.
##   The replicates cannot be reproduced outside R (R's RNG): compare intervals
##   with a Monte Carlo tolerance.
##
## power -> tests/reference/fixtures/glmer/bootstrap/binary_power.json
##   simr-style simulation (hand-written; simr is not installed here): design 40
##   groups x 10 rows, x alternating 0/1 within each group (stored in "data");
##   truth logit P(y = 1) = -0.5 + effect * x + b_g, b_g ~ N(0, 0.8^2);
##   effect = 0.5 and 0 (type I error), NSIM_POWER data sets each, seeded.
##   Tests at alpha = 0.05: LRT (H1 y ~ x + (1 | g) vs H0 y ~ 1 + (1 | g), ML,
##   chisq on 1 df) and Wald z of x from H1's summary; default glmerControl().
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
outdir <- fixture_dir(file.path("glmer", "bootstrap"))
what <- commandArgs(trailingOnly = TRUE)
if (!length(what)) what <- c("bootstrap", "power")

NSIM_BOOT <- 1000L
NSIM_POWER <- 500L
generated_by <- sprintf("tests/reference/make_glmer_bootstrap_reference.R; R %s.%s, lme4 %s",
                        R.version$major, R.version$minor, as.character(packageVersion("lme4")))

if ("bootstrap" %in% what) {
  m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
  FUN <- function(x) c(fixef(x), theta = getME(x, "theta"))
  n_warn <- 0L
  elapsed <- system.time(
    b <- withCallingHandlers(
      bootMer(m, FUN = FUN, nsim = NSIM_BOOT, seed = 20261203L, use.u = FALSE, type = "parametric"),
      warning = function(w) { n_warn <<- n_warn + 1L; invokeRestart("muffleWarning") },
      message = function(w) invokeRestart("muffleMessage")))[["elapsed"]]
  R <- b$t
  q <- apply(R, 2, quantile, probs = c(0.025, 0.975), type = 7, na.rm = TRUE)
  write_fixture(list(
    model = "cbind(incidence, size - incidence) ~ period + (1 | herd)", dataset = "cbpp",
    family = "binomial", link = "logit", nsim = NSIM_BOOT, seed = 20261203L, use_u = FALSE,
    replicate_names = I(colnames(R)), original = I(unname(b$t0)),
    replicates = rows(R), percentile_lower = I(unname(q[1, ])), percentile_upper = I(unname(q[2, ])),
    replicate_sd = I(unname(apply(R, 2, sd, na.rm = TRUE))),
    n_failed = sum(!stats::complete.cases(R)), n_warnings = n_warn,
    r_seconds = elapsed, generated_by = generated_by),
    file.path(outdir, "cbpp_bootmer.json"))
  cat(sprintf("bootstrap: %d replicates in %.1f s (%d warnings)\n", NSIM_BOOT, elapsed, n_warn))
}

if ("power" %in% what) {
  ng <- 40L; per <- 10L
  design <- data.frame(g = factor(sprintf("g%02d", rep(seq_len(ng), each = per))),
                       x = rep(c(0, 1), ng * per / 2))
  beta0 <- -0.5; sd_g <- 0.8
  run_effect <- function(effect, seed) {
    set.seed(seed)
    lrt_p <- wald_p <- rep(NA_real_, NSIM_POWER); n_warn <- 0L; n_sing <- 0L
    t0 <- proc.time()[["elapsed"]]
    for (i in seq_len(NSIM_POWER)) {
      b <- rnorm(ng, 0, sd_g)
      eta <- beta0 + effect * design$x + b[as.integer(design$g)]
      d <- transform(design, y = rbinom(nrow(design), 1, plogis(eta)))
      f1 <- collect(glmer(y ~ x + (1 | g), d, binomial), unique = FALSE)
      f0 <- collect(glmer(y ~ 1 + (1 | g), d, binomial), unique = FALSE)
      n_warn <- n_warn + (length(f1$warnings) + length(f0$warnings) > 0)
      n_sing <- n_sing + isSingular(f1$value)
      chisq <- as.numeric(-2 * (logLik(f0$value) - logLik(f1$value)))
      lrt_p[i] <- pchisq(max(chisq, 0), 1, lower.tail = FALSE)
      wald_p[i] <- coef(summary(f1$value))["x", "Pr(>|z|)"]
    }
    el <- proc.time()[["elapsed"]] - t0
    pw <- c(lrt = mean(lrt_p < 0.05), wald = mean(wald_p < 0.05))
    cat(sprintf("power effect %.2f: LRT %.3f, Wald %.3f (%d sims, %.1f s)\n", effect, pw[1], pw[2], NSIM_POWER, el))
    list(effect = effect, seed = seed, nsim = NSIM_POWER,
         power_lrt = pw[["lrt"]], power_wald = pw[["wald"]],
         mc_se_lrt = sqrt(pw[["lrt"]] * (1 - pw[["lrt"]]) / NSIM_POWER),
         mc_se_wald = sqrt(pw[["wald"]] * (1 - pw[["wald"]]) / NSIM_POWER),
         n_fits_with_warnings = n_warn, n_singular_h1 = n_sing, r_seconds = el)
  }
  res <- list(run_effect(0.5, 101L), run_effect(0, 202L))
  write_fixture(list(
    design_note = "40 groups g01..g40 x 10 rows; x = 0,1,0,1,... within each group (columns in 'data')",
    data = list(g = I(as.character(design$g)), x = I(design$x)),
    formula_h1 = "y ~ x + (1 | g)", formula_h0 = "y ~ 1 + (1 | g)", family = "binomial", link = "logit",
    truth = list(intercept = beta0, sd_g = sd_g), alpha = 0.05, results = res,
    generated_by = generated_by),
    file.path(outdir, "binary_power.json"))
}
