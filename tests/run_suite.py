"""Run the whole suite as several pytest processes (``make test``).

jax 0.10.2 on CPU was seen to crash inside XLA (a segmentation fault) late
in a long single process that had compiled many hundreds of programs, so the
suite runs in groups of test folders, each in a fresh process. One group
(``None`` in :data:`GROUPS`) takes every test the others do not name, so no
test is left out.

Two groups run at a time (``LMMJAX_TEST_JOBS`` to change; at most the number
of cores): much of a group's time is single-threaded compilation, so two
processes fill two cores. Each group's output is printed whole when it ends.

One persistent compilation cache serves all groups (a temporary directory,
removed at the end), so a program compiled by one group is loaded by the
next (``LMMJAX_TEST_SHARED_CACHE=0`` turns it off; a cache location or
switch the caller set is kept). XLA's backend optimisation level 0 was tried
and dropped: it cut compile time by ~30% but changed the last bits of the
results enough to send two fragile fits (BodyWeight AR(1), a slope scaled by
1e4) to other optima.

Each group's line reports its wall time and its own CPU time (which does not
depend on what else the machine runs).

Usage: ``python tests/run_suite.py [extra pytest arguments]``; exits non-zero
when any group fails.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# Longest first (alone on 2 cores with another group beside: diagnostics ~440 s, powersim ~300 s,
# the rest ~220 s, the others 110-200 s). Small groups: a process that has compiled many hundreds
# of programs was seen to crash inside XLA (see the conftest's map limit).
GROUPS = [
    ["diagnostics"],
    ["powersim"],
    None,  # every test folder and file not named here
    ["formula", "structure"],
    ["objective", "fitting"],
    ["results"],
    ["inference"],
    ["glmm"],
    ["simulate"],
]

CACHE_SWITCHES = ("LMMJAX_CACHE_DIR", "LMMJAX_NO_COMPILATION_CACHE", "LMMJAX_COMPILATION_CACHE",
                  "JAX_COMPILATION_CACHE_DIR")


def commands(extra: list) -> list:
    """One pytest command line per group; the ``None`` group runs everything else."""
    named = [d for group in GROUPS if group for d in group]
    rest = ["tests", *(f"--ignore=tests/{d}" for d in named)]
    return [[sys.executable, "-m", "pytest", "-q", *extra, *(rest if group is None else
             [f"tests/{d}" for d in group])] for group in GROUPS]


def run_group(cmd: list, env: dict) -> tuple:
    """Run one pytest command; (its name, exit code, seconds, CPU seconds, output)."""
    shown = " ".join(c for c in cmd[3:] if not c.startswith("--ignore")) or "tests"
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=TESTS.parent, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time, whatever else runs
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    return shown, rc, time.perf_counter() - start, usage.ru_utime + usage.ru_stime, text


def main(extra: list) -> int:
    jobs = max(1, min(int(os.environ.get("LMMJAX_TEST_JOBS", "2")), os.cpu_count() or 1))
    failed = []
    env = dict(os.environ)
    shared = None
    if os.environ.get("LMMJAX_TEST_SHARED_CACHE", "1") != "0" and not any(os.environ.get(k) for k in CACHE_SWITCHES):
        shared = tempfile.mkdtemp(prefix="lmmjax-suite-cache-")
        env["LMMJAX_CACHE_DIR"] = shared
    with ThreadPoolExecutor(jobs) as pool:
        for done in as_completed([pool.submit(run_group, cmd, env) for cmd in commands(extra)]):
            shown, rc, seconds, cpu, text = done.result()
            print(f"\n== pytest {shown}\n{text.rstrip()}\n== {seconds:.0f} s ({cpu:.0f} s CPU), exit {rc}",
                  flush=True)
            if rc not in (0, 5):  # 5: no tests collected
                failed.append(shown)
    if shared is not None:
        shutil.rmtree(shared, ignore_errors=True)
    if failed:
        print("\nFailed groups: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
