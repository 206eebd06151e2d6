#!/usr/bin/env Rscript
## Export lme4's example data sets into lmmjax/datasets/data/.
##
## Run from the repository root:
##     Rscript tests/reference/export_datasets.R
##
## For each data set <name> this writes
##   <name>.csv (or <name>.csv.gz for InstEval)  -- the data, doubles written with
##        the shortest decimal representation that round-trips exactly (<= 17
##        significant digits); integer-valued R integer columns as integers.
##   <name>.json -- {"factors": {col: [levels in R order]}, "ordered": [cols],
##                   "dtypes": {col: "factor"|"double"|"integer"}, "nrow": n,
##                   "source": "..."}
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

outdir <- file.path("lmmjax", "datasets", "data")
dir.create(outdir, recursive = TRUE, showWarnings = FALSE)

## Shortest "%.Ng" representation (N = 15, 16 or 17) that parses back to x exactly.
fmt_double <- function(x) {
  out <- sprintf("%.15g", x)
  for (d in 16:17) {
    bad <- !is.na(x) & as.numeric(out) != x
    if (!any(bad)) break
    out[bad] <- sprintf(paste0("%.", d, "g"), x[bad])
  }
  stopifnot(all(is.na(x) | as.numeric(out) == x))
  out[is.na(x)] <- "NA"
  out
}

export_one <- function(rname, fname, gz = FALSE, pkg = "lme4") {
  env <- new.env()
  utils::data(list = rname, package = pkg, envir = env)
  d <- get(rname, envir = env)
  d <- as.data.frame(d)
  factors <- list()
  ordered <- character(0)
  dtypes <- list()
  out <- data.frame(row.names = seq_len(nrow(d)))
  quote_cols <- integer(0)
  for (j in seq_along(d)) {
    col <- names(d)[j]
    x <- d[[j]]
    if (is.factor(x)) {
      factors[[col]] <- levels(x)
      if (is.ordered(x)) ordered <- c(ordered, col)
      dtypes[[col]] <- "factor"
      out[[col]] <- as.character(x)
      quote_cols <- c(quote_cols, j)
    } else if (is.integer(x)) {
      dtypes[[col]] <- "integer"
      out[[col]] <- ifelse(is.na(x), "NA", as.character(x))
    } else if (is.double(x)) {
      dtypes[[col]] <- "double"
      out[[col]] <- fmt_double(x)
    } else {
      stop("unsupported column type in ", rname, "$", col)
    }
  }
  csvname <- paste0(fname, if (gz) ".csv.gz" else ".csv")
  con <- if (gz) gzfile(file.path(outdir, csvname), "w") else file(file.path(outdir, csvname), "w")
  write.csv(out, con, row.names = FALSE, quote = quote_cols, na = "NA")
  close(con)
  meta <- list(
    name = rname,
    file = csvname,
    nrow = nrow(d),
    columns = names(d),
    dtypes = dtypes,
    factors = if (length(factors)) factors else structure(list(), names = character(0)),
    ordered = I(ordered),
    source = sprintf("%s %s (R %s), exported by tests/reference/export_datasets.R", pkg,
                     as.character(packageVersion(pkg)),
                     paste(R.version$major, R.version$minor, sep = "."))
  )
  write_json(meta, file.path(outdir, paste0(fname, ".json")),
             auto_unbox = TRUE, pretty = TRUE, digits = NA)

  ## Round-trip check.
  back <- read.csv(file.path(outdir, csvname), colClasses = "character")
  for (col in names(d)) {
    x <- d[[col]]
    if (is.factor(x)) stopifnot(identical(back[[col]], as.character(x)))
    else stopifnot(identical(as.numeric(back[[col]]), as.numeric(x)))
  }
  cat(sprintf("%-11s -> %s (%d rows, %d cols)\n", rname, csvname, nrow(d), ncol(d)))
}

export_one("sleepstudy", "sleepstudy")
export_one("Dyestuff", "dyestuff")
export_one("Dyestuff2", "dyestuff2")
export_one("Penicillin", "penicillin")
export_one("Pastes", "pastes")
export_one("InstEval", "insteval", gz = TRUE)
export_one("cake", "cake")
## GLMM examples (issue 11): binomial (cbpp, VerbAgg) and Poisson (grouseticks) responses.
export_one("cbpp", "cbpp")
export_one("grouseticks", "grouseticks")
export_one("VerbAgg", "verbagg", gz = TRUE)
## nlme's data for the residual-structure fixtures (make_residual_reference.R)
export_one("Ovary", "ovary", pkg = "nlme")
export_one("BodyWeight", "bodyweight", pkg = "nlme")
