#!/usr/bin/env Rscript
## Reference fixture for the parametric bootstrap (lme4::bootMer).
##
## Run from the repository root:
##     Rscript tests/reference/make_bootstrap_reference.R
##
## Writes tests/reference/fixtures/bootstrap/sleep_bootmer.json:
##   model Reaction ~ Days + (Days | Subject), sleepstudy, REML, lme4's default
##   lmerControl() (what users run, and what the timing refers to);
##   bootMer(m, FUN, nsim = 2000, seed = 20240611, use.u = FALSE, type = "parametric")
##   with FUN = c(fixef(x), sigma = sigma(x), theta = getME(x, "theta")).
## Stored: the replicate matrix (rows = replicates, "replicate_names" = columns),
## the original estimates, derived per-replicate sd/cor
##   sd_int = sigma*theta1, sd_days = sigma*sqrt(theta2^2+theta3^2),
##   cor = theta2/sqrt(theta2^2+theta3^2),
## 95% percentile intervals computed two ways (quantile(type = 7), and
## boot::boot.ci(type = "perc") as used by confint(<bootMer>)), and the elapsed
## time of the bootMer call.  The replicates cannot be reproduced outside R
## (R's RNG stream); compare distributions / intervals with a Monte Carlo tolerance.
## Shared helpers, which also attach lme4 and jsonlite: fixture_helpers.R next to
## this script, found via Rscript's --file= (fallback: run from the repo root).
.this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(if (length(.this) == 1) dirname(.this) else "tests/reference", "fixture_helpers.R"))
suppressPackageStartupMessages(library(boot))
outdir <- fixture_dir("bootstrap")

## ---- fit and bootstrap --------------------------------------------------------------
NSIM <- 2000L
SEED <- 20240611L
m <- lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)
FUN <- function(x) c(fixef(x), sigma = sigma(x), theta = getME(x, "theta"))

warns <- character(0)
elapsed <- system.time(
  b <- withCallingHandlers(
    bootMer(m, FUN = FUN, nsim = NSIM, seed = SEED, use.u = FALSE, type = "parametric"),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleMessage") })
)[["elapsed"]]

derive <- function(v) {
  s <- v[["sigma"]]
  t1 <- v[["theta.Subject.(Intercept)"]]
  t2 <- v[["theta.Subject.Days.(Intercept)"]]
  t3 <- v[["theta.Subject.Days"]]
  c(`(Intercept)` = v[["(Intercept)"]], Days = v[["Days"]], sigma = s,
    sd_intercept = s * t1, sd_days = s * sqrt(t2^2 + t3^2),
    cor = t2 / sqrt(t2^2 + t3^2))
}
tt <- b$t
colnames(tt) <- names(b$t0)
dt <- t(apply(tt, 1, derive))
d0 <- derive(b$t0)

## percentile intervals
ok <- stats::complete.cases(dt)
q7 <- apply(dt[ok, , drop = FALSE], 2, quantile, probs = c(0.025, 0.975), type = 7, names = FALSE)
b2 <- b
b2$t <- dt
b2$t0 <- d0
bc <- vapply(seq_along(d0), function(j) {
  ci <- boot.ci(b2, type = "perc", index = j, conf = 0.95)
  ci$percent[1, 4:5]
}, numeric(2))

n_singular <- sum(abs(tt[, "theta.Subject.(Intercept)"]) < 1e-4 |
                  abs(tt[, "theta.Subject.Days"]) < 1e-4, na.rm = TRUE)

res <- list(
  id = "sleep_bootmer",
  dataset = "sleepstudy",
  formula = "Reaction ~ Days + (Days | Subject)",
  reml = TRUE,
  optimizer_settings = "lme4 default lmerControl() (fit and refits)",
  call = sprintf("bootMer(m, FUN = function(x) c(fixef(x), sigma = sigma(x), theta = getME(x, 'theta')), nsim = %d, seed = %d, use.u = FALSE, type = 'parametric')", NSIM, SEED),
  nsim = NSIM,
  seed = SEED,
  use_u = FALSE,
  type = "parametric",
  replicate_names = I(names(b$t0)),
  original = I(unname(b$t0)),
  replicates = rows(tt),
  n_failed = sum(!stats::complete.cases(tt)),
  n_near_singular = n_singular,
  near_singular_rule = "theta1 < 1e-4 or theta3 < 1e-4",
  derived_names = I(names(d0)),
  derived_original = I(unname(d0)),
  derived_formulas = "sd_intercept = sigma*theta1; sd_days = sigma*sqrt(theta2^2+theta3^2); cor = theta2/sqrt(theta2^2+theta3^2)",
  derived_replicates = rows(dt),
  derived_mean = I(unname(colMeans(dt, na.rm = TRUE))),
  derived_sd = I(unname(apply(dt, 2, sd, na.rm = TRUE))),
  percentile_95_quantile7 = list(names = I(names(d0)), lower = I(unname(q7[1, ])), upper = I(unname(q7[2, ]))),
  percentile_95_bootci = list(names = I(names(d0)), lower = I(unname(bc[1, ])), upper = I(unname(bc[2, ])),
                              note = "boot::boot.ci(type='perc') (order-statistic interpolation on the normal quantile scale), as confint(<bootMer>, type='perc')"),
  warnings = I(unique(warns)),
  boot_fail = as.integer(attr(b, "bootFail")),
  boot_msgs = lapply(attr(b, "boot.all.msgs"), function(tab)
    list(message = I(as.character(names(tab))), count = I(as.integer(tab)))),
  n_warnings = length(warns),
  elapsed_s = elapsed,
  generated_by = sprintf("tests/reference/make_bootstrap_reference.R; R %s.%s, lme4 %s",
                         R.version$major, R.version$minor, packageVersion("lme4"))
)
write_fixture(res, file.path(outdir, "sleep_bootmer.json"))
cat(sprintf("bootMer: nsim=%d elapsed=%.1fs warnings=%d failed=%d\n", NSIM, elapsed, length(warns), res$n_failed))
print(rbind(original = d0, lower = q7[1, ], upper = q7[2, ], bootci_lower = bc[1, ], bootci_upper = bc[2, ]))
