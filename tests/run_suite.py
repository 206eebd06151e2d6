"""Run the whole suite as several pytest processes (``make test``).

jax 0.10.2 on CPU was seen to crash inside XLA (a segmentation fault) late
in a long single process that had compiled many hundreds of programs, so the
suite runs in groups of test folders, each in a fresh process. The last
group takes every test the others do not name, so no test is left out.

Usage: ``python tests/run_suite.py [extra pytest arguments]``; exits non-zero
when any group fails.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
GROUPS = [
    ["diagnostics", "formula", "objective"],
    ["inference"],
    ["results"],
    ["glmm", "fitting", "structure"],
    ["simulate", "powersim"],
]


def commands(extra: list) -> list:
    """One pytest command line per group; the last one runs everything else."""
    named = [d for group in GROUPS for d in group]
    out = [[sys.executable, "-m", "pytest", "-q", *extra, *(f"tests/{d}" for d in group)] for group in GROUPS]
    out.append([sys.executable, "-m", "pytest", "-q", *extra, "tests",
                *(f"--ignore=tests/{d}" for d in named)])
    return out


def main(extra: list) -> int:
    failed = []
    for cmd in commands(extra):
        shown = " ".join(c for c in cmd[3:] if not c.startswith("--ignore")) or "tests"
        print(f"\n== pytest {shown}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=TESTS.parent)
        print(f"== {time.perf_counter() - start:.0f} s, exit {rc}", flush=True)
        if rc not in (0, 5):  # 5: no tests collected
            failed.append(shown)
    if failed:
        print("\nFailed groups: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
