"""Fit speed: lmmjax vs lme4 side by side, same machine, same run.

Models
------
* InstEval, ``y ~ 1 + service + (1|s) + (1|d) + (1|dept)`` by ML (73,421 rows).
* A simulated crossed design: 60,000 rows, 3,000 subjects × 400 items (each
  subject sees 20 items), ``y ~ x + (x | subj) + (1 | item)`` by ML.

For lmmjax each model runs in a fresh interpreter: the first call includes
JIT compilation; "warm" is the best of two further calls (model building +
optimisation, data already in memory). lme4 (default lmerControl) runs via
Rscript when R is installed. Peak memory is the process's maximum RSS.

Run: ``python benchmarks/fit_speed.py`` (writes its section of RESULTS.md).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

INSTEVAL = "y ~ 1 + service + (1|s) + (1|d) + (1|dept)"
CROSSED = "y ~ x + (x | subj) + (1 | item)"


def crossed_data(path: Path, seed: int = 1) -> None:
    """3,000 subjects × 20 of 400 items; correlated random slope on subjects."""
    rng = np.random.default_rng(seed)
    n_subj, n_item, per = 3000, 400, 20
    subj = np.repeat(np.arange(n_subj), per)
    item = np.concatenate([rng.choice(n_item, per, replace=False) for _ in range(n_subj)])
    x = rng.choice([-0.5, 0.5], size=subj.size)
    L = np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 0.5]]))
    b = rng.normal(size=(n_subj, 2)) @ L.T
    c = rng.normal(scale=0.7, size=n_item)
    y = 2.0 + 0.4 * x + b[subj, 0] + b[subj, 1] * x + c[item] + rng.normal(size=subj.size)
    pd.DataFrame({"y": y, "x": x, "subj": [f"s{v}" for v in subj], "item": [f"i{v}" for v in item]}).to_csv(path, index=False)


def lmmjax_code(load: str, formula: str) -> str:
    return f"""
import time, warnings
import pandas as pd, lmmjax as lmm
warnings.simplefilter("ignore")
df = {load}
t = time.perf_counter(); fit = lmm.lmer({formula!r}, df, reml=False); first = time.perf_counter() - t
warm = []
for _ in range(2):
    t = time.perf_counter(); fit = lmm.lmer({formula!r}, df, reml=False); warm.append(time.perf_counter() - t)
RESULT = dict(first=first, warm=min(warm), opt=fit.optsummary.seconds, evals=fit.optsummary.n_evaluations,
              loglik=fit.loglik, converged=fit.converged)
"""


def r_code(load: str, formula: str) -> str:
    return f"""
suppressMessages(library(lme4))
{load}
t <- system.time(m <- lmer({formula}, d, REML = FALSE))[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, evals = m@optinfo$feval, loglik = as.numeric(logLik(m))),
    auto_unbox = TRUE, digits = NA), "\\n")
"""


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    csv = tmp / "crossed.csv"
    crossed_data(csv)
    cases = [
        ("InstEval (73,421 rows; 2,972 + 1,128 + 14 levels)", INSTEVAL,
         'lmm.datasets.load("insteval")', "data(InstEval, package = 'lme4'); d <- InstEval"),
        ("Crossed 60,000 rows (3,000 × 400, correlated slope)", CROSSED,
         f'pd.read_csv({str(csv)!r})', f"d <- read.csv({str(csv)!r})"),
    ]
    rows = []
    for label, formula, py_load, r_load in cases:
        ours = run_python(lmmjax_code(py_load, formula))
        print(label, "lmmjax:", ours, flush=True)
        ref = run_r(r_code(r_load, formula))
        print(label, "lme4:", ref, flush=True)
        if ref:
            rows.append([label, f"{ours['first']:.2f}", f"{ours['warm']:.2f}", f"{ref['time']:.2f}",
                         f"{ref['time'] / ours['first']:.1f}×", f"{ref['time'] / ours['warm']:.1f}×",
                         f"{ours['evals']} / {ref['evals']}", f"{ours['peak_mb']:.0f} / {ref.get('peak_mb', float('nan')):.0f}",
                         f"{ours['loglik'] - ref['loglik']:+.2e}"])
        else:
            rows.append([label, f"{ours['first']:.2f}", f"{ours['warm']:.2f}", "R absent", "", "",
                         f"{ours['evals']}", f"{ours['peak_mb']:.0f}", ""])
    header = ["model (ML)", "lmmjax first call s", "lmmjax warm s", "lme4 s", "speed-up first", "speed-up warm",
              "evaluations lmmjax / lme4", "peak MB lmmjax / lme4", "loglik lmmjax − lme4"]
    table = markdown_table(header, rows)
    print(table)
    write_section("fit_speed", "## Fit speed (`benchmarks/fit_speed.py`)\n\n" + table + "\n\n"
                  "First call includes JIT compilation in a fresh process; warm = best of two further calls "
                  "(model building + optimisation). lme4 uses its default lmerControl (BOBYQA via nloptwrap). "
                  "Timings on a shared 2-core machine are noisy; the ratios are what count.")


if __name__ == "__main__":
    main()
