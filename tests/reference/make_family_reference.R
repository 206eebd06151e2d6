#!/usr/bin/env Rscript
## Reference values of R's GLM families for lmmjax.families (tests/test_families.py).
##
## Run from the repository root:
##     Rscript tests/reference/make_family_reference.R
## Writes tests/reference/fixtures/families/families.json with, for each
## family/link: linkfun on a grid of mu, linkinv and mu.eta on a grid of eta
## (tails included, where R clips), variance, dev.resids and the per-row
## log-likelihood -aic/2 on (y, mu, wt) rows, and the starting mu of initialize.
args <- commandArgs(trailingOnly = FALSE)
here <- dirname(sub("^--file=", "", args[grep("^--file=", args)]))
source(if (length(here) && file.exists(file.path(here, "fixture_helpers.R")))
  file.path(here, "fixture_helpers.R") else file.path("tests", "reference", "fixture_helpers.R"))

eta <- c(-800, -40, -30.5, -30, -12, -8.5, -8, -3, -1, -1e-3, 0, 0.25, 1, 2.5, 7.9, 8.2,
         12, 29.9, 30.5, 40, 650, 710, 800)
mu_bin <- c(1e-12, 1e-6, 0.01, 0.2, 0.5, 0.7, 0.99, 1 - 1e-9)
mu_pois <- c(1e-10, 0.01, 0.5, 1, 3.7, 250)

## (y, mu, wt) rows: y proportion, wt trials (binomial); y count, wt case weight (poisson).
bin_rows <- data.frame(
  y  = c(0, 1, 0, 1, 0.25, 0.5, 1, 0, 3/7, 1, 0.4, 0),
  mu = c(0.3, 0.3, 1e-10, 1 - 1e-10, 0.6, 0.5, 0.02, 0.98, 0.4, 0.75, 0.123, 0.5),
  wt = c(1, 1, 1, 1, 4, 10, 3, 5, 7, 2, 5, 0))
pois_rows <- data.frame(
  y  = c(0, 1, 2, 5, 0, 17, 3, 40, 1),
  mu = c(0.5, 1, 1, 2.5, 1e-8, 15.2, 0.01, 38.5, 2),
  wt = c(1, 1, 1, 1, 1, 1, 2, 1, 0.5))

one_link <- function(fam, mu_grid, rows, family_name) {
  if (fam$link == "log") eta <- eta[eta < 700]  # exp() overflows to Inf beyond

  dev <- fam$dev.resids(rows$y, rows$mu, rows$wt)
  ## R's binomial aic uses m = wt when every n == 1 (proportion + weights), as glm.
  ll <- vapply(seq_len(nrow(rows)), function(i)
    -0.5 * fam$aic(rows$y[i], 1, rows$mu[i], rows$wt[i], dev[i]), 0)
  mustart <- if (family_name == "binomial")
    (rows$wt * rows$y + 0.5) / (rows$wt + 1) else rows$y + 0.1
  ## R's own initialize expression, evaluated as glm does (checks the formula above).
  env <- new.env()
  assign("y", rows$y, env); assign("weights", rows$wt, env); assign("nobs", nrow(rows), env)
  eval(fam$initialize, env)
  stopifnot(isTRUE(all.equal(get("mustart", env), mustart)))
  list(family = family_name, link = fam$link,
       eta = I(eta), linkinv = I(fam$linkinv(eta)), mu_eta = I(fam$mu.eta(eta)),
       mu = I(mu_grid), linkfun = I(fam$linkfun(mu_grid)),
       ## R's cloglog linkfun, log(-log(1 - mu)), loses digits for tiny mu; lmmjax uses log1p.
       linkfun_log1p = if (fam$link == "cloglog") I(log(-log1p(-mu_grid))) else NULL, variance = I(fam$variance(mu_grid)),
       rows = list(y = I(rows$y), mu = I(rows$mu), wt = I(rows$wt)),
       dev_resids = I(dev), loglik_rows = I(ll), initialize = I(mustart))
}

out <- list(
  source = sprintf("R %s stats families, tests/reference/make_family_reference.R",
                   paste(R.version$major, R.version$minor, sep = ".")),
  families = list(
    one_link(binomial("logit"), mu_bin, bin_rows, "binomial"),
    one_link(binomial("probit"), mu_bin, bin_rows, "binomial"),
    one_link(binomial("cloglog"), mu_bin, bin_rows, "binomial"),
    one_link(poisson("log"), mu_pois, pois_rows, "poisson")))
write_fixture(out, file.path(fixture_dir("families"), "families.json"))
cat("wrote", file.path(fixture_dir("families"), "families.json"), "\n")
