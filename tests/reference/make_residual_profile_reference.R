#!/usr/bin/env Rscript
## Profile-likelihood intervals for fits with a residual structure, for
## tests/inference/test_residual_profile.py (fit.confint(method="profile") with
## lmm.AR1 / lmm.VarIdent).
##
## Run from the repository root:
##     Rscript tests/reference/make_residual_profile_reference.R
##
## nlme has no profile intervals, so they are computed here independently, with
## lme4's definition: the ML deviance dev(w) minimised over all other
## parameters with one parameter held at w, zeta(w) = sign(w - w_hat) *
## sqrt(dev(w) - dev_hat), the 95% ends where zeta = -/+ qnorm(0.975), found by
## stepping out from the estimate and uniroot (tol 1e-10). The parameter is held
## with nlme's own means:
##   - phi:        corAR1(value = phi0, fixed = TRUE)
##   - sd ratio:   varIdent(fixed = c(<level> = r0))
##   - a fixed effect beta_j = b: response y - b x_j, column x_j dropped
##     (nlme's lme has no offset; the same model)
##   - the random-intercept SD tau and sigma (nlme cannot hold a pdMat
##     parameter, and its logLik with lmeControl(sigma = s0) is on another
##     basis): a dense marginal likelihood written here (V = tau^2 J +
##     sigma^2 AR1(phi) per group, beta by GLS), minimised by nlminb over the
##     other two of (log tau, log sigma, atanh phi); it is checked against
##     nlme's logLik at the ML estimate and at a point of the phi profile.
## All fits by ML with tight lmeControl settings. JSON: per case the ML logLik and
## estimates, and per profiled parameter (lmmjax name) [lower, upper].
args <- commandArgs(trailingOnly = FALSE)
here <- dirname(sub("^--file=", "", grep("^--file=", args, value = TRUE)[1]))
if (is.na(here) || !file.exists(file.path(here, "fixture_helpers.R"))) here <- file.path("tests", "reference")
source(file.path(here, "fixture_helpers.R"))
suppressPackageStartupMessages(library(nlme))

out_dir <- fixture_dir("residual")
ctrl <- nlme_ctrl_tight()
Z <- qnorm(0.975)

data(Ovary, BodyWeight, package = "nlme")
ovary <- as.data.frame(Ovary)
ovary$s <- sin(2 * pi * ovary$Time)
ovary$c <- cos(2 * pi * ovary$Time)
bw <- as.data.frame(BodyWeight)

ml <- function(fixed, data, random, correlation = NULL, weights = NULL) {
  lme(fixed, data = data, random = random, correlation = correlation, weights = weights,
      method = "ML", control = ctrl)
}
dev_of <- function(m) -2 * as.numeric(logLik(m))

## w with zeta(w) = -/+ Z: step out from the estimate (doubling), then uniroot;
## the end of the range when zeta never gets there.
profile_end <- function(dev, est, dev_hat, step, direction, lo = -Inf, hi = Inf, edge = 1e-6) {
  zeta <- function(v) sign(v - est) * sqrt(max(dev(v) - dev_hat, 0))
  target <- direction * Z
  a <- est
  b <- est + direction * step
  for (i in 1:60) {
    at_limit <- FALSE
    if (direction > 0 && b >= hi) { b <- hi - edge; at_limit <- TRUE }
    if (direction < 0 && b <= lo) { b <- lo + edge; at_limit <- TRUE }
    if ((zeta(b) - target) * direction >= 0) break
    if (at_limit) return(if (direction > 0) hi else lo)
    a <- b
    step <- 2 * step
    b <- b + direction * step
  }
  uniroot(function(v) zeta(v) - target, sort(c(a, b)), tol = 1e-10)$root
}
interval <- function(dev, est, dev_hat, step, lo = -Inf, hi = Inf) {
  c(profile_end(dev, est, dev_hat, step, -1, lo, hi), profile_end(dev, est, dev_hat, step, 1, lo, hi))
}

## ---- Ovary: random intercept per Mare, AR(1) in row order within Mare ----------------------------
ov_cor <- function(...) corAR1(form = ~ 1 | Mare, ...)
m_ov <- ml(follicles ~ s + c, ovary, ~ 1 | Mare, ov_cor())
ov_dev <- dev_of(m_ov)
ov_phi <- as.numeric(coef(m_ov$modelStruct$corStruct, unconstrained = FALSE))
ov_sigma <- m_ov$sigma
ov_tau <- as.numeric(VarCorr(m_ov)[1, "StdDev"])
ov_beta <- fixef(m_ov)

## dense ML deviance (beta by GLS) at (tau, sigma, phi)
X_ov <- cbind(1, ovary$s, ovary$c)
groups_ov <- split(seq_len(nrow(ovary)), as.character(ovary$Mare))
dense_dev <- function(tau, sigma, phi) {
  p <- ncol(X_ov)
  XVX <- matrix(0, p, p); XVy <- numeric(p); yVy <- 0; logdet <- 0
  for (g in groups_ov) {
    n <- length(g)
    V <- tau^2 + sigma^2 * phi^abs(outer(seq_len(n), seq_len(n), "-"))
    U <- chol(V)
    Xt <- backsolve(U, X_ov[g, , drop = FALSE], transpose = TRUE)
    yt <- backsolve(U, ovary$follicles[g], transpose = TRUE)
    XVX <- XVX + crossprod(Xt); XVy <- XVy + drop(crossprod(Xt, yt)); yVy <- yVy + sum(yt^2)
    logdet <- logdet + 2 * sum(log(diag(U)))
  }
  beta <- solve(XVX, XVy)
  nrow(X_ov) * log(2 * pi) + logdet + yVy - sum(beta * XVy)
}
dense_at_mle <- dense_dev(ov_tau, ov_sigma, ov_phi)
stopifnot(abs(dense_at_mle - ov_dev) < 1e-6)
## (tau, sigma, phi) from the two free ones on the unconstrained scale and the held one
dense_profile <- function(held, start) function(v) {
  f <- function(u) {
    par <- append(u, NA, after = held - 1)
    par[held] <- NA
    nat <- c(exp(par[1]), exp(par[2]), tanh(par[3]))
    nat[held] <- v
    dense_dev(nat[1], nat[2], nat[3])
  }
  r <- nlminb(start[-held], f, control = list(rel.tol = 1e-15, x.tol = 1e-13, eval.max = 5000, iter.max = 2000))
  r$objective
}
u_hat <- c(log(ov_tau), log(ov_sigma), atanh(ov_phi))
tau_dev <- dense_profile(1, u_hat)
sigma_dev <- dense_profile(2, u_hat)
phi_dev <- function(v) dev_of(ml(follicles ~ s + c, ovary, ~ 1 | Mare, ov_cor(value = v, fixed = TRUE)))
stopifnot(abs(dense_profile(3, u_hat)(0.5) - phi_dev(0.5)) < 1e-6)
sin_dev <- function(b) {
  d <- ovary
  d$y_off <- d$follicles - b * d$s
  dev_of(ml(y_off ~ c, d, ~ 1 | Mare, ov_cor()))
}
## each way of holding a parameter gives the ML deviance back at the estimate
stopifnot(abs(phi_dev(ov_phi) - ov_dev) < 1e-6, abs(sigma_dev(ov_sigma) - ov_dev) < 1e-6,
          abs(sin_dev(ov_beta[["s"]]) - ov_dev) < 1e-6, abs(tau_dev(ov_tau) - ov_dev) < 1e-6)
se_ov <- sqrt(diag(vcov(m_ov)))
ovary_res <- list(
  name = "ovary_int_ar1",
  loglik = -ov_dev / 2,
  dense_deviance_at_mle = dense_at_mle,
  fixef = as.list(ov_beta), sigma = ov_sigma, phi = ov_phi, sd_mare = ov_tau,
  profile = list(
    "phi" = I(interval(phi_dev, ov_phi, ov_dev, 0.1, -1, 1)),
    "np.sin(2 * np.pi * Time)" = I(interval(sin_dev, ov_beta[["s"]], ov_dev, se_ov[["s"]])),
    "sigma" = I(interval(sigma_dev, ov_sigma, ov_dev, 0.1 * ov_sigma, 0, Inf)),
    "sd(Intercept|Mare)" = I(interval(tau_dev, ov_tau, ov_dev, 0.2 * ov_tau, 0, Inf))
  ),
  nlme_version = as.character(packageVersion("nlme"))
)
write_fixture(ovary_res, file.path(out_dir, "ovary_int_ar1_profile.json"))
print(ovary_res$profile)

## beta_j = b: response y - b x_j, the other columns of the model matrix as variables
fixed_dev <- function(fixed, data, j, ...) {
  X <- model.matrix(fixed, data)
  y <- model.response(model.frame(fixed, data))
  others <- X[, -c(1, j), drop = FALSE]
  colnames(others) <- paste0("x", seq_len(ncol(others)))
  d <- cbind(data, others)
  f <- as.formula(paste("y_off ~", paste(colnames(others), collapse = " + ")))
  function(b) {
    d$y_off <- y - b * X[, j]
    dev_of(ml(f, d, ...))
  }
}

## ---- BodyWeight: random intercept per Rat, one residual SD per Diet ---------------------------------
bw_var <- function(...) varIdent(form = ~ 1 | Diet, ...)
m_bw <- ml(weight ~ Time * Diet, bw, ~ 1 | Rat, weights = bw_var())
bw_dev <- dev_of(m_bw)
bw_ratio <- coef(m_bw$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
bw_ratio_dev <- function(v) dev_of(ml(weight ~ Time * Diet, bw, ~ 1 | Rat, weights = bw_var(fixed = c("2" = v))))
bw_time_dev <- fixed_dev(weight ~ Time * Diet, bw, 2, random = ~ 1 | Rat, weights = bw_var())
stopifnot(abs(bw_ratio_dev(bw_ratio[["2"]]) - bw_dev) < 1e-6, abs(bw_time_dev(fixef(m_bw)[["Time"]]) - bw_dev) < 1e-6)
bw_res <- list(
  name = "bodyweight_int_varident",
  loglik = -bw_dev / 2,
  fixef = as.list(fixef(m_bw)), sigma = m_bw$sigma, sd_ratio = as.list(bw_ratio),
  profile = list(
    "Time" = I(interval(bw_time_dev, fixef(m_bw)[["Time"]], bw_dev, sqrt(vcov(m_bw)["Time", "Time"]))),
    "sd_ratio[2]" = I(interval(bw_ratio_dev, bw_ratio[["2"]], bw_dev, 0.2, 0, Inf))
  ),
  nlme_version = as.character(packageVersion("nlme"))
)
write_fixture(bw_res, file.path(out_dir, "bodyweight_int_varident_profile.json"))
print(bw_res$profile)

## ---- BodyWeight: random intercept per Rat, AR(1) within Rat and one residual SD per Diet ----------
## The ML likelihood has two modes: nlme's fit stops at the lower one (logLik -568.409, phi 0.906,
## sd(Rat) 31.4); the maximum (logLik -567.846) has phi 0.986 and sd(Rat) -> 0. The maximum is found
## here over phi with phi held (optimize), and phi is profiled from it.
bw_ar_phi_dev <- function(v) dev_of(ml(weight ~ Time * Diet, bw, ~ 1 | Rat, corAR1(value = v, form = ~ 1 | Rat, fixed = TRUE),
                                       bw_var()))
m_bw_ar <- ml(weight ~ Time * Diet, bw, ~ 1 | Rat, corAR1(form = ~ 1 | Rat), bw_var())
top <- optimize(bw_ar_phi_dev, c(0.95, 0.999), tol = 1e-10)
stopifnot(top$objective < dev_of(m_bw_ar) - 1)
bw_ar_res <- list(
  name = "bodyweight_int_ar1_varident",
  loglik = -top$objective / 2, phi = top$minimum,
  nlme_fit = list(loglik = as.numeric(logLik(m_bw_ar)),
                  phi = as.numeric(coef(m_bw_ar$modelStruct$corStruct, unconstrained = FALSE))),
  profile = list("phi" = I(interval(bw_ar_phi_dev, top$minimum, top$objective, 0.005, -1, 1))),
  nlme_version = as.character(packageVersion("nlme"))
)
write_fixture(bw_ar_res, file.path(out_dir, "bodyweight_int_ar1_varident_profile.json"))
print(bw_ar_res$profile)

## ---- sleepstudy with irregular times: random intercept, CAR(1) in continuous time ------------------
ss <- as.data.frame(lme4::sleepstudy)
keep <- which(seq_len(nrow(ss)) %% 7 != 3)  # as make_residual_reference.R
ss_irr <- ss[keep, ]
ss_irr$Time <- ss_irr$Days + c(0, 0.25, 0.5)[(keep %% 3) + 1]
car <- function(...) corCAR1(form = ~ Time | Subject, ...)
m_ss <- ml(Reaction ~ Days, ss_irr, ~ 1 | Subject, car())
ss_dev <- dev_of(m_ss)
ss_phi <- as.numeric(coef(m_ss$modelStruct$corStruct, unconstrained = FALSE))
ss_phi_dev <- function(v) dev_of(ml(Reaction ~ Days, ss_irr, ~ 1 | Subject, car(value = v, fixed = TRUE)))
stopifnot(abs(ss_phi_dev(ss_phi) - ss_dev) < 1e-6)
ss_res <- list(
  name = "sleepstudy_car1",
  loglik = -ss_dev / 2, fixef = as.list(fixef(m_ss)), sigma = m_ss$sigma, phi = ss_phi,
  profile = list("phi" = I(interval(ss_phi_dev, ss_phi, ss_dev, 0.1, 0, 1))),
  nlme_version = as.character(packageVersion("nlme"))
)
write_fixture(ss_res, file.path(out_dir, "sleepstudy_car1_profile.json"))
print(ss_res$profile)
