"""Warm batched work of today's code against an older checkout, in the same run on this machine.

Benchmark sections written on another day may come from another machine (the
shared machine's CPU changed between runs), so a regression check compares two
source trees here and now: each case runs in a fresh interpreter per tree, and
the warm time is the median of three calls after a first (compiling) one.

Usage::

    git worktree add --detach /tmp/old <commit>
    python benchmarks/engine_ab.py --old-tree /tmp/old     # writes its section of RESULTS.md
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, run_python, write_section  # noqa: E402

HERE = Path(__file__).resolve().parents[1]

SETUP = {
    "sleepstudy": 'fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))',
    "sleepstudy_ml": 'fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"), reml=False)',
    "penicillin": 'fit = lmm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", lmm.datasets.load("Penicillin"))',
    "insteval": ('fit = lmm.lmer("y ~ service + (1|s) + (1|d) + (1|dept)", lmm.datasets.load("InstEval"), '
                 'reml=False)'),
}
CASES = [  # (label, setup, call)
    ("sleepstudy bootstrap, 10,000 replicates", "sleepstudy", "fit.bootstrap(10000, seed=S, progress=False)"),
    ("Penicillin bootstrap, 2,000 replicates", "penicillin", "fit.bootstrap(2000, seed=S, progress=False)"),
    ("sleepstudy power, LRT, 1,000 simulations", "sleepstudy_ml",
     'lmm.power(fit, "Days", "lrt", fixef={"Days": 5}, nsim=1000, seed=S, progress=False)'),
    ("InstEval bootstrap, 24 replicates", "insteval", "fit.bootstrap(24, seed=S, progress=False)"),
    ("sleepstudy fit", "sleepstudy",
     'lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))'),
    ("InstEval fit (ML)", "insteval",
     'lmm.lmer("y ~ service + (1|s) + (1|d) + (1|dept)", lmm.datasets.load("InstEval"), reml=False)'),
]


def case_code(setup: str, call: str) -> str:
    return f"""
import os, statistics, time, warnings
os.environ["LMMJAX_PROGRESS"] = "0"
warnings.simplefilter("ignore")
import lmmjax as lmm
{SETUP[setup]}
S = 1
{call}
times = []
for S in (2, 3, 4):
    t = time.perf_counter(); {call}; times.append(time.perf_counter() - t)
RESULT = dict(warm=statistics.median(times), where=lmm.__file__)
"""


def commit_of(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h (%ad)", "--date=short"],
                         capture_output=True, text=True)
    return out.stdout.strip() or str(tree)


def timed(tree: Path, setup: str, call: str) -> float:
    res = run_python(case_code(setup, call), cwd=tree)
    assert res["where"].startswith(str(tree)), res["where"]
    return res["warm"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-tree", required=True, type=Path, help="a checkout of the older commit")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    old_tree, new_tree = args.old_tree.resolve(), HERE
    rows = []
    for label, setup, call in CASES:
        t_old, t_new = timed(old_tree, setup, call), timed(new_tree, setup, call)
        rows.append([label, f"{t_old:.3f}", f"{t_new:.3f}", f"{t_new / t_old:.2f}"])
        print(rows[-1], flush=True)
    load = os.getloadavg()
    md = "\n".join([
        "## Warm batched work: today's code against an older commit (`benchmarks/engine_ab.py`)",
        "",
        markdown_table(["case (warm, median of 3)", f"old {commit_of(old_tree)} s", f"new {commit_of(new_tree)} s",
                        "new / old"], rows),
        "",
        "Both trees run in the same session on this machine, each case in a fresh interpreter "
        "(first call excluded). Sections of this file written on other days may come from another "
        f"CPU, so this table is the regression check. Load average after the run: {load[0]:.2f}.",
    ])
    print(md)
    if not args.no_write:
        write_section("engine_ab", md)


if __name__ == "__main__":
    main()
