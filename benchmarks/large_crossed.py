"""Large crossed fits: lmmjax vs lme4 on MovieLens-shaped and uniform crossed data.

Model: ``rating ~ 1 + (1 | user) + (1 | item)`` by REML (lme4's default).

Data
----
* :func:`movielens_like` — MovieLens-shaped ratings: item popularity is
  Zipf-like (the item of a rating is drawn with probability ∝ rank^-s), the
  number of ratings per user is long-tailed (log-normal activity, every user
  at least ``min_per_user`` ratings), ratings on MovieLens' half-star scale
  0.5–5. Rows, users and items are parameters.
* :func:`uniform_crossed` — issue 13's 1e6-row case: ``user`` and ``item``
  drawn uniformly (20,000 × 2,000).

Measured (each tool in a fresh process, the data read from one CSV file):

* lmmjax: the first fit (includes compilation), a warm fit (the same call
  again), ``summary()`` after it (Satterthwaite df), the process's peak RSS
  after the fits and after ``summary()``; the block kind chosen.
* lme4: ``lmer`` time and peak RSS (``/usr/bin/time``), and lmerTest's
  ``summary()`` (Satterthwaite) when ``--lmertest`` is given; runs under a
  time-out (``--r-timeout`` seconds; reported as such when it passes).

Run: ``python benchmarks/large_crossed.py [--rows 1e6 ...]``; without
arguments it runs the two 1e6-row cases and writes its section of
RESULTS.md. Long runs: wrap in ``timeout``; the machine load average is
recorded beside the figures.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

FORMULA = "rating ~ 1 + (1 | user) + (1 | item)"


def movielens_like(n_rows: int, n_users: int, n_items: int, *, zipf_s: float = 1.1, activity_sd: float = 1.2,
                   min_per_user: int = 5, seed: int = 1) -> pd.DataFrame:
    """MovieLens-shaped ratings (see the module docstring).

    Examples
    --------
    >>> d = movielens_like(10_000, 500, 200)
    >>> len(d), d["rating"].between(0.5, 5).all()
    (10000, True)
    """
    rng = np.random.default_rng(seed)
    if n_rows < n_users * min_per_user:
        raise ValueError(f"{n_rows} rows cannot give {n_users} users {min_per_user} ratings each")
    activity = rng.lognormal(0.0, activity_sd, n_users)
    extra = rng.multinomial(n_rows - n_users * min_per_user, activity / activity.sum())
    per_user = extra + min_per_user
    user = np.repeat(np.arange(n_users), per_user)
    popularity = np.arange(1, n_items + 1, dtype=float) ** -zipf_s
    item = rng.permutation(n_items)[rng.choice(n_items, n_rows, p=popularity / popularity.sum())]
    b_user = rng.normal(0.0, 0.45, n_users)
    b_item = rng.normal(0.0, 0.55, n_items)
    raw = 3.5 + b_user[user] + b_item[item] + rng.normal(0.0, 0.85, n_rows)
    rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    order = rng.permutation(n_rows)
    return pd.DataFrame({"rating": rating[order], "user": user[order], "item": item[order]})


def uniform_crossed(n_rows: int, n_users: int, n_items: int, seed: int = 1) -> pd.DataFrame:
    """Users and items drawn uniformly: issue 13's 1e6-row 20,000 × 2,000 case."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n_rows)
    item = rng.integers(0, n_items, n_rows)
    y = 3.0 + rng.normal(0, 0.5, n_users)[user] + rng.normal(0, 0.7, n_items)[item] + rng.normal(0, 1.0, n_rows)
    return pd.DataFrame({"rating": y, "user": user, "item": item})


def lmmjax_code(csv: str, warm: bool, summary: bool, kind: str) -> str:
    return f"""
import time, resource, warnings
import pandas as pd, lmmjax as lmm
warnings.simplefilter("ignore")
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
df = pd.read_csv({csv!r}, dtype={{"user": str, "item": str}})
rss_data = rss()
from lmmjax.lmer import fit_model
from lmmjax.model import build_model
def fit_it():  # a forced kind: the model rebuilt with it (lmer has no option for it)
    if {kind!r} == "auto":
        return lmm.lmer({FORMULA!r}, df)
    return fit_model(build_model({FORMULA!r}, df).with_schur({kind!r}), {FORMULA!r})
t = time.perf_counter(); fit = fit_it(); first = time.perf_counter() - t
warm = None
if {warm}:  # the first fit let go first: the peak is one fit's, as a user refitting would see
    del fit; import gc; gc.collect()
    t = time.perf_counter(); fit = fit_it(); warm = time.perf_counter() - t
rss_fit = rss()
t_summary = None
if {summary}:
    t = time.perf_counter(); text = str(fit.summary()); t_summary = time.perf_counter() - t
from lmmjax.structure.crossprod import Dims
m = fit.model if hasattr(fit, "model") else None
kind_name = repr(m.dims.kind) if m is not None else "?"
RESULT = dict(first=first, warm=warm, summary=t_summary, evals=fit.optsummary.n_evaluations,
              loglik=float(fit.loglik), rss_data=rss_data, rss_fit=rss_fit, rss_all=rss(), kind=kind_name,
              converged=bool(fit.converged))
"""


def r_code(csv: str, lmertest: bool) -> str:
    pkg = "lmerTest" if lmertest else "lme4"
    summ = ("t2 <- system.time(s <- summary(m))[['elapsed']]" if lmertest else "t2 <- NA")
    return f"""
suppressMessages(library({pkg}))
d <- as.data.frame(data.table::fread({csv!r}, colClasses = c(user = "character", item = "character")))
d$user <- factor(d$user); d$item <- factor(d$item)
t <- system.time(m <- lmer({FORMULA}, d))[["elapsed"]]
{summ}
cat(jsonlite::toJSON(list(time = t, summary = t2, evals = m@optinfo$feval, loglik = as.numeric(logLik(m))),
    auto_unbox = TRUE, digits = NA, na = "null"), "\\n")
"""


def schur_plan(data: pd.DataFrame, speedup: float = 50.0) -> list:
    """Rows of a table: for heads of H most-rated items, the tail pairs and head multiply-adds per evaluation.

    This is what the tiled kind trades (:func:`lmmjax.structure.kinds.tiled_kind`):
    pairs are stored (about 16 bytes each on the device, as many on the
    host) and scattered; the head costs H²·l1 multiply-adds per evaluation.
    """
    _, u = np.unique(data["user"].to_numpy(), return_inverse=True)
    counts_item = data["item"].value_counts()
    rank_of = pd.Series(np.arange(len(counts_item)), index=counts_item.index)
    r_row = rank_of.loc[data["item"].to_numpy()].to_numpy()
    q2, l1 = len(counts_item), int(u.max()) + 1
    keys = np.unique(u.astype(np.int64) * q2 + r_row)
    lev, r = keys // q2, keys % q2
    n_all = np.bincount(lev, minlength=l1).astype(np.int64)
    rows = []
    for H in sorted({0, q2} | {h for h in (256, 1024, 2048, 4096, 8192) if h < q2}):
        h = np.bincount(lev[r < H], minlength=l1).astype(np.int64)
        tail = int(np.sum(n_all * (n_all + 1) // 2 - h * (h + 1) // 2))
        rows.append([f"{len(data):,}", f"{l1:,} × {q2:,}", f"{len(keys):,}", f"{H:,}", f"{tail:.3g}",
                     f"{32 * tail / 1e9:.1f}", f"{H * H * l1:.3g}", f"{8 * q2 * q2 / 1e9:.2f}"])
    return rows


PLAN_HEADER = ["rows", "users × items", "entries of Z₂ᵀZ₁", "head H", "tail pairs", "pair memory (GB, device + host)",
               "head multiply-adds / evaluation", "one q2 × q2 matrix (GB)"]


def short_kind(kind: str) -> str:
    """``TiledLaterBlocks(schur='tiled', head=64, chunk=…, stream=(…))`` → ``tiled, head 64, streamed``."""
    if kind.startswith("IterativeLaterBlocks"):
        return "iterative (CG, stochastic Lanczos)"
    if not kind.startswith("TiledLaterBlocks"):
        return kind.replace("DenseLaterBlocks(schur='pairs')", "dense, pairs").replace(
            "DenseLaterBlocks(schur='matmul')", "dense, matmul")
    head = re.search(r"head=(\d+)", kind).group(1)
    return f"tiled, head {head}" + (", streamed" if "stream=((" in kind else "")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_case(label: str, data: pd.DataFrame, args) -> list:
    """Time lmmjax (and lme4 unless ``--no-r``) on one data set; one table row."""
    tmp = Path(tempfile.mkdtemp(prefix="lmmjax-large-"))
    csv = str(tmp / "ratings.csv")
    data.to_csv(csv, index=False)
    sizes = f"{len(data):,} rows; {data['user'].nunique():,} users × {data['item'].nunique():,} items"
    top = data["item"].value_counts().to_numpy()
    share = top[: min(len(top), 1000)].sum() / len(data)
    print(f"{label}: {sizes}; top 1,000 items hold {share:.1%} of rows; load {load_average()}", flush=True)
    j = run_python(lmmjax_code(csv, not args.no_warm, not args.no_summary, args.kind), timeout=args.py_timeout)
    print("lmmjax", j, flush=True)
    r = None
    if args.r_known:
        r = args.r_known
    elif not args.no_r:
        try:
            r = run_r(r_code(csv, args.lmertest), timeout=args.r_timeout)
        except subprocess.TimeoutExpired:
            r = "timeout"
        except RuntimeError as e:
            r = f"failed: {str(e)[-200:]}"
        print("lme4", r, flush=True)
    fit_t = j["warm"] if j["warm"] is not None else j["first"]
    row = [label, sizes, short_kind(j["kind"]), f"{j['first']:.1f}", "–" if j["warm"] is None else f"{j['warm']:.1f}",
           j["evals"], "–" if j["summary"] is None else f"{j['summary']:.1f}",
           f"{j['rss_fit'] / 1024:.2f}", f"{j['rss_all'] / 1024:.2f}"]
    if isinstance(r, dict):
        row += [f"{r['time']:.1f}", "–" if r.get("summary") is None else f"{r['summary']:.1f}",
                f"{r.get('peak_mb', float('nan')) / 1024:.2f}", f"{j['loglik'] - r['loglik']:+.1e}",
                f"{r['time'] / fit_t:.1f}×"]
    elif r is None:
        row += ["not run"] * 5
    else:
        row += [f"{r} ({args.r_timeout} s)" if r == "timeout" else r, "–", "–", "–", "–"]  # a time-out, failure or --r-known
    row.append(load_average())
    return row


HEADER = ["case", "size", "kind", "lmmjax first fit (s)", "warm fit (s)", "evals", "summary() (s)",
          "peak after fit (GB)", "peak with summary (GB)", "lme4 fit (s)", "lmerTest summary (s)",
          "lme4 peak (GB)", "loglik − lme4", "speed-up", "load avg after"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, nargs="*", default=[1e6], help="MovieLens-shaped row counts")
    ap.add_argument("--users", type=float, default=None, help="users (default rows / 50)")
    ap.add_argument("--items", type=float, default=None, help="items (default rows / 1000, at least 2,000)")
    ap.add_argument("--no-uniform", action="store_true", help="skip the 1e6-row 20,000 × 2,000 uniform case")
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--lmertest", action="store_true", help="also time lmerTest's summary()")
    ap.add_argument("--no-warm", action="store_true", help="one fit only (large runs)")
    ap.add_argument("--no-summary", action="store_true")
    ap.add_argument("--kind", default="auto", help='force the block kind ("pairs", "matmul", "tiled", "iterative")')
    ap.add_argument("--r-timeout", type=int, default=1800)
    ap.add_argument("--r-known", default="", help="lme4's outcome from an earlier run of the same data, written in "
                    "its column instead of running R again (e.g. \"timeout (1800 s) at 12:52 UTC\")")
    ap.add_argument("--py-timeout", type=int, default=3600)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--section", default="large_crossed", help="RESULTS.md section to write")
    ap.add_argument("--note", default="", help="a sentence added under the section's heading")
    ap.add_argument("--plan", type=float, nargs=3, action="append", metavar=("ROWS", "USERS", "ITEMS"),
                    help="only tabulate the tiled kind's trade-off for a MovieLens-shaped size (no fits)")
    args = ap.parse_args()
    if args.plan:
        plan = []
        for n, users, items in args.plan:
            plan += schur_plan(movielens_like(int(n), int(users), int(items)))
        table = markdown_table(PLAN_HEADER, plan)
        print(table)
        if not args.no_write:
            write_section("large_crossed_plan", "## Large crossed fits: the Schur update's size "
                          "(`benchmarks/large_crossed.py --plan`)\n\nMovieLens-shaped data; per head size H "
                          "(most-rated items), the pairs the tiled kind's tail scatters and the dense "
                          "multiply-adds of its head per evaluation. No fits.\n\n" + table)
        return
    rows = []
    if not args.no_uniform:
        rows.append(run_case("uniform crossed", uniform_crossed(1_000_000, 20_000, 2_000), args))
    for n in args.rows:
        n = int(n)
        users = int(args.users or n // 50)
        items = int(args.items or max(2_000, n // 1000))
        rows.append(run_case("MovieLens-shaped", movielens_like(n, users, items), args))
    table = markdown_table(HEADER, rows)
    print(table)
    if not args.no_write:
        write_section(args.section, f"## Large crossed fits (`benchmarks/large_crossed.py`{', ' + args.section if args.section != 'large_crossed' else ''})\n\n"
                      + (args.note + "\n\n" if args.note else "") +
                      f"`{FORMULA}` by REML. lmmjax: fresh process; \"first\" includes compilation, \"warm\" is "
                      "the same call again; summary() computes Satterthwaite df. lme4 in the same run via Rscript "
                      "(peak = max RSS from /usr/bin/time). Loads are the 1-, 5-, 15-minute averages of a shared "
                      "2-core machine."
                      + (" With --lmertest the R fit is lmerTest's lmer, which also prepares the derivatives "
                         "its summary() uses (hence the short lmerTest summary time)." if args.lmertest else "")
                      + "\n\n" + table)


if __name__ == "__main__":
    main()
