"""First-call latency: fresh Python processes with a cold and with a warm compilation cache, lme4 beside.

Each scenario runs in a fresh interpreter twice with the same persistent
compilation cache directory (``LMMJAX_CACHE_DIR``): first with the directory
empty ("cold": every program is compiled), then again ("warm": the programs
are loaded from the cache; best of ``--warm-runs`` processes).

Scenarios
---------
* analyst session: ``import lmmjax``; the first sleepstudy fit
  ``Reaction ~ Days + (Days | Subject)`` (REML); a second formula
  ``Reaction ~ Days + (Days || Subject)``; ``summary()`` of the first fit
  (Satterthwaite df); a 2,000-replicate parametric bootstrap of it.
* ``lmm.power`` on sleepstudy (Days effect 5, LRT, 1,000 simulations), after a fit.
* InstEval by ML, ``y ~ 1 + service + (1|s) + (1|d) + (1|dept)`` (data loading not timed).

lme4 (Rscript, one process): ``library(lme4)``, the first ``lmer`` fit, the
second formula, and the summary with Satterthwaite df (``library(lmerTest)``,
``as_lmerModLmerTest`` and ``summary``).

Run: ``python benchmarks/latency.py [--warm-runs 2] [--no-r]`` (writes its section of RESULTS.md).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

FORMULA = "Reaction ~ Days + (Days | Subject)"
SECOND = "Reaction ~ Days + (Days || Subject)"
INSTEVAL = "y ~ 1 + service + (1|s) + (1|d) + (1|dept)"

TIMER = """
import time
class Step:
    \"\"\"Wall and CPU seconds (all threads) of a block, recorded under a name in TIMES.\"\"\"
    def __init__(self, name):
        self.name = name
    def __enter__(self):
        self.t = (time.perf_counter(), time.process_time())
    def __exit__(self, *exc):
        TIMES[self.name] = time.perf_counter() - self.t[0]
        TIMES[self.name + "_cpu"] = time.process_time() - self.t[1]
TIMES = {}
"""

SESSION = TIMER + f"""
with Step("import_s"):
    import lmmjax as lmm
import warnings
warnings.simplefilter("ignore")
df = lmm.datasets.load("sleepstudy")
with Step("fit_s"):
    fit = lmm.lmer({FORMULA!r}, df)
with Step("second_s"):
    fit2 = lmm.lmer({SECOND!r}, df)
with Step("summary_s"):
    text = str(fit.summary())
with Step("bootstrap_s"):
    boot = fit.bootstrap(2000, seed=1, progress=False)
RESULT = dict(TIMES, sleep_loglik=fit.loglik, satterthwaite="Satterthwaite" in text,
              boot_converged=int(boot.n_converged))
"""

POWER = TIMER + f"""
import warnings
import lmmjax as lmm
warnings.simplefilter("ignore")
fit = lmm.lmer({FORMULA!r}, lmm.datasets.load("sleepstudy"))
with Step("power_s"):
    res = lmm.power(fit, "Days", "lrt", fixef={{"Days": 5}}, nsim=1000, seed=1, progress=False)
RESULT = dict(TIMES, power=res.power)
"""

INSTEVAL_FIT = TIMER + f"""
import warnings
import lmmjax as lmm
warnings.simplefilter("ignore")
df = lmm.datasets.load("insteval")
with Step("insteval_s"):
    fit = lmm.lmer({INSTEVAL!r}, df, reml=False)
RESULT = dict(TIMES, insteval_loglik=fit.loglik)
"""

R_SESSION = f"""
t <- proc.time()[["elapsed"]]
suppressMessages(library(lme4))
t_load <- proc.time()[["elapsed"]] - t
data(sleepstudy, package = "lme4")
t_fit <- system.time(m1 <- lmer({FORMULA}, sleepstudy))[["elapsed"]]
t_second <- system.time(m2 <- lmer({SECOND}, sleepstudy))[["elapsed"]]
t_summary <- system.time({{
  suppressMessages(library(lmerTest))
  s <- summary(as_lmerModLmerTest(m1))
}})[["elapsed"]]
cat(jsonlite::toJSON(list(import_s = t_load, fit_s = t_fit, second_s = t_second, summary_s = t_summary,
    loglik = as.numeric(logLik(m1)), df = unname(s$coefficients[, "df"])), auto_unbox = TRUE, digits = NA), "\\n")
"""

#: (row label, result key, scenario) in table order
ROWS = [
    ("`import lmmjax` / `library(lme4)`", "import_s", "session"),
    (f"first fit, sleepstudy `{FORMULA}` (REML)", "fit_s", "session"),
    (f"second formula `{SECOND}`", "second_s", "session"),
    ("`summary()` with Satterthwaite df (lme4: `library(lmerTest)` + `summary`)", "summary_s", "session"),
    ("parametric bootstrap, 2,000 replicates", "bootstrap_s", "session"),
    ("`lmm.power`, sleepstudy, LRT, 1,000 simulations", "power_s", "power"),
    ("InstEval ML fit (73,421 rows)", "insteval_s", "insteval"),
]

SCENARIOS = {"session": SESSION, "power": POWER, "insteval": INSTEVAL_FIT}


def cache_entries(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def measure(code: str, warm_runs: int) -> tuple[dict, dict, int]:
    """Cold run in an empty cache directory, then the best of ``warm_runs`` runs on the filled one."""
    with tempfile.TemporaryDirectory(prefix="lmmjax-latency-") as d:
        cold = run_python(code, cache_dir=d)
        entries = cache_entries(Path(d))
        runs = [run_python(code, cache_dir=d) for _ in range(warm_runs)]
    best = min(runs, key=lambda r: sum(v for k, v in r.items() if k.endswith("_s")))
    return cold, best, entries


def targets(cold: dict, warm: dict) -> list:
    """The acceptance targets of issue 9 against the measured seconds."""
    def row(name, value, limit):
        return [name, f"{value:.2f}", f"≤ {limit}", "met" if value <= limit else "**missed**"]

    return [
        row("warm: import + first sleepstudy fit + summary", warm["import_s"] + warm["fit_s"] + warm["summary_s"], 1.0),
        row("warm: a new small-model formula", warm["second_s"], 0.05),
        row("warm: 2,000-replicate bootstrap", warm["bootstrap_s"], 0.8),
        row("warm: lmm.power (1,000 simulations, LRT)", warm["power_s"], 2.0),
        row("warm: InstEval ML fit", warm["insteval_s"], 2.5),
        row("cold: first sleepstudy fit + summary (after import)", cold["fit_s"] + cold["summary_s"], 2.5),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm-runs", type=int, default=2, help="warm processes per scenario (best is shown)")
    ap.add_argument("--no-r", action="store_true", help="skip lme4")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    cold, warm, entries = {}, {}, {}
    for name, code in SCENARIOS.items():
        c, w, n = measure(code, args.warm_runs)
        cold.update(c), warm.update(w)
        entries[name] = n
        print(name, "cold:", c, "\n", name, "warm:", w, f"\n {n} cache entries", flush=True)
    ref = None if args.no_r else run_r(R_SESSION)
    print("lme4:", ref, flush=True)
    load_after = os.getloadavg()[0]

    def s(x):
        return f"{x:.3f}" if x < 1 else f"{x:.2f}"

    rows = []
    for label, key, _ in ROWS:
        r = ref.get(key) if ref else None
        rows.append([label, s(cold[key]), s(warm[key]), s(warm[key + "_cpu"]), s(r) if r is not None else "",
                     f"{warm[key] / r:.1f}×" if r else ""])
    table = markdown_table(["step (fresh process)", "lmmjax cold cache s", "lmmjax warm cache s",
                            "lmmjax warm cache CPU s", "lme4 s", "lmmjax warm / lme4"], rows)
    goal = markdown_table(["target (issue 9)", "measured s", "target s", ""], targets(cold, warm))
    agree = ""
    if ref:
        agree = f" sleepstudy REML logLik lmmjax − lme4: {warm['sleep_loglik'] - ref['loglik']:+.1e}."
    text = (
        "## First-call latency (`benchmarks/latency.py`)\n\n" + table + "\n\n" + goal + "\n\n"
        "Each scenario (the session rows 1–5 in one process; power and InstEval each in their own) runs in a "
        "fresh Python process twice over the same persistent compilation cache directory: cold = the "
        f"directory empty, every program compiled (it then holds {entries['session']}, {entries['power']} and "
        f"{entries['insteval']} compiled programs); warm = the programs loaded from it (best of "
        f"{args.warm_runs} processes; CPU = process time of all threads, less sensitive to other load than wall "
        "time). Import is timed inside the process (interpreter start-up not included). "
        "lme4 runs in one Rscript process: `library(lme4)`, `lmer`, the second formula, and "
        "`library(lmerTest)` + `summary(as_lmerModLmerTest(m))` for Satterthwaite df." + agree + " "
        f"1-minute load average {load_before:.1f} before the run, {load_after:.1f} after: on a shared "
        "machine these wall times are noisy."
    )
    print(text)
    write_section("latency", text)


if __name__ == "__main__":
    main()
