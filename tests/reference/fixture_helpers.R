## Helpers shared by the reference-fixture scripts in tests/reference/
## (make_reference.R, make_inference_reference.R, make_bootstrap_reference.R,
## make_power_reference.R).  Not run on its own: each script sources it,
## locating it next to itself via Rscript's --file= argument (falling back to
## tests/reference/ relative to the working directory), then attaches its other
## packages.
##
## Scripts are run from the repository root (Rscript tests/reference/<script>.R);
## fixtures are written under tests/reference/fixtures/ relative to it.

## Attached here because the helpers use them (toJSON(), lmerControl(), ...).
## A script attaches its other packages (lmerTest, pbkrtest, boot) after this.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

## tests/reference/fixtures/<name> (relative to the repo root), created if needed.
fixture_dir <- function(name) {
  d <- file.path("tests", "reference", "fixtures", name)
  dir.create(d, recursive = TRUE, showWarnings = FALSE)
  d
}

## ---- JSON output with exact doubles --------------------------------------------
## jsonlite caps numbers at 15 significant digits, so doubles are pre-formatted
## with the shortest "%.15g"/"%.16g"/"%.17g" representation that parses back to
## exactly the same double, and inserted verbatim.  A double vector becomes a
## JSON array if it is wrapped in I() or has length != 1, else a scalar.
fmt_num <- function(x) {
  out <- sprintf("%.15g", x)
  for (d in 16:17) {
    bad <- is.finite(x) & suppressWarnings(as.numeric(out)) != x
    if (!any(bad)) break
    out[bad] <- sprintf(paste0("%.", d, "g"), x[bad])
  }
  out[!is.finite(x)] <- "null"
  out
}
exact_doubles <- function(x) {
  if (is.list(x) && !is.data.frame(x)) {
    a <- attributes(x); x <- lapply(x, exact_doubles); attributes(x) <- a
    return(x)
  }
  if (is.double(x) && is.null(dim(x))) {
    s <- fmt_num(as.vector(x))
    s <- if (inherits(x, "AsIs") || length(x) != 1) paste0("[", paste(s, collapse = ", "), "]") else s
    return(structure(s, class = "json"))
  }
  x
}
write_fixture <- function(obj, path) {
  txt <- toJSON(exact_doubles(obj), auto_unbox = TRUE, pretty = TRUE,
                null = "null", na = "null", json_verbatim = TRUE)
  writeLines(txt, path)
}

## Matrix -> list of rows, each an I()-wrapped double vector (a JSON array).
rows <- function(M) {
  M <- as.matrix(M)
  lapply(seq_len(nrow(M)), function(i) I(unname(as.numeric(M[i, ]))))
}

## Evaluate expr, collecting warnings and messages instead of printing them.
## With unique = TRUE (the default) repeated warnings/messages are kept once;
## unique = FALSE keeps every occurrence (make_power_reference.R counts them).
collect <- function(expr, unique = TRUE) {
  warns <- character(0); msgs <- character(0)
  val <- withCallingHandlers(expr,
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  if (unique) { warns <- base::unique(warns); msgs <- base::unique(msgs) }
  list(value = val, warnings = warns, messages = msgs)
}

## ---- tight optimizer settings (make_reference.R, make_inference_reference.R) ----
## Every model is fitted with bobyqa, then polished with nloptwrap from bobyqa's
## theta; the fit with the smaller objective (crit) is kept.
ctrl_bobyqa <- lmerControl(optimizer = "bobyqa",
                           optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e6))
ctrl_nlopt <- lmerControl(optimizer = "nloptwrap",
                          optCtrl = list(algorithm = "NLOPT_LN_BOBYQA",
                                         xtol_abs = 1e-14, ftol_abs = 1e-14,
                                         xtol_rel = 0, ftol_rel = 0, maxeval = 1e6))
OPT_SETTINGS <- paste(
  "best (lowest objective) of: [1] lmerControl(optimizer='bobyqa',",
  "optCtrl=list(rhobeg=2e-3, rhoend=1e-12, maxfun=1e6)); [2] polish from [1]'s theta with",
  "lmerControl(optimizer='nloptwrap', optCtrl=list(algorithm='NLOPT_LN_BOBYQA',",
  "xtol_abs=1e-14, ftol_abs=1e-14, xtol_rel=0, ftol_rel=0, maxeval=1e6))")
## nlme::lme settings of the residual-structure fixtures (make_residual*_reference.R): tight, nlminb.
nlme_ctrl_tight <- function() nlme::lmeControl(maxIter = 500, msMaxIter = 1000, niterEM = 100, tolerance = 1e-10,
                                               msTol = 1e-12, msMaxEval = 5000, opt = "nlminb", returnObject = TRUE)

## The optimised objective: REML criterion for REML fits, deviance for ML fits.
crit <- function(m) if (isREML(m)) REMLcrit(m) else deviance(m)

## Fit with bobyqa, polish with nloptwrap from its theta; keep the lower objective.
tight_fit <- function(formula, data, reml) {
  f1 <- collect(lmer(formula, data = data, REML = reml, control = ctrl_bobyqa))
  m1 <- f1$value
  f2 <- collect(lmer(formula, data = data, REML = reml, control = ctrl_nlopt,
                     start = list(theta = getME(m1, "theta"))))
  m2 <- f2$value
  if (crit(m2) < crit(m1)) list(fit = m2, which = "nloptwrap-polish", w = f2, c1 = crit(m1), c2 = crit(m2))
  else list(fit = m1, which = "bobyqa", w = f1, c1 = crit(m1), c2 = crit(m2))
}

## ---- variance components and random effects (make_reference.R, make_glmer_reference.R) ----
varcorr_records <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  lapply(seq_len(nrow(vc)), function(i) list(
    grp = vc$grp[i],
    var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
    var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i],
    vcov = vc$vcov[i],
    sdcor = vc$sdcor[i]))
}

ranef_list <- function(m) {
  re <- ranef(m, condVar = TRUE)
  out <- list()
  for (g in names(re)) {
    df <- re[[g]]
    pv <- attr(df, "postVar")
    nlev <- nrow(df)
    ## postVar is a k x k x nlev array, or (several terms for one grouping
    ## factor, e.g. (x || g)) a list of such arrays, one per term.
    pvl <- if (is.list(pv)) pv else list(pv)
    condsd <- t(vapply(seq_len(nlev), function(i)
      unlist(lapply(pvl, function(a) sqrt(diag(as.matrix(a[, , i]))))), numeric(ncol(df))))
    if (ncol(df) == 1) condsd <- matrix(condsd, ncol = 1)
    out[[g]] <- list(levels = I(rownames(df)), columns = I(names(df)),
                     values = rows(as.matrix(df)), condsd = rows(condsd))
  }
  out
}
