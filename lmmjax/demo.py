"""`make demo`: a short real analysis of the sleepstudy data.

Run with ``python -m lmmjax.demo``.
"""
from __future__ import annotations

import time

import lmmjax as lmm


def main() -> None:
    df = lmm.datasets.load("sleepstudy")
    print("sleepstudy:", df.shape[0], "rows; reaction time by days of sleep deprivation, 18 subjects\n")
    t0 = time.perf_counter()
    fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    print(f"[fitted in {time.perf_counter() - t0:.2f} s, including compilation]\n")
    print(fit.summary())
    print("\nParametric bootstrap (all refits in one compiled, vmapped computation):")
    boot = fit.bootstrap(1000, seed=1)
    print(boot)


if __name__ == "__main__":
    main()
