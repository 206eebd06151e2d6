"""The GPU check's Python side (run by ``benchmarks/gpu_check.sh``; see that script's header).

Two commands:

``fit``
    One MovieLens-shaped fit (:func:`large_crossed.movielens_like`, the same
    seed on every backend, so the CPU and GPU fit the same data) of
    ``rating ~ 1 + (1 | user) + (1 | item)`` by REML on the backend that
    ``JAX_PLATFORMS`` selects; writes one JSON file: data, fit and
    ``summary()`` seconds, evaluations, the block kind, log-likelihood, θ̂
    and β̂, the device's peak memory (``memory_stats()['peak_bytes_in_use']``
    after the fit and after ``summary()``; the CPU backend reports none, so
    its figure is the process's peak RSS) and the host's peak RSS.

``report``
    Reads the JSON files of a run and prints a markdown block (a table of
    the fits, with the log-likelihood and estimate differences of each GPU
    fit against the CPU fit of the same size) for ``benchmarks/RESULTS.md``;
    ``--write`` puts it there as the ``gpu_check`` section
    (``common.write_section``).

Examples
--------
    JAX_PLATFORMS=cpu python benchmarks/gpu_check.py fit --label 1e6 --role cpu --rows 1e6 --users 2e4 \\
        --items 2e3 --out /tmp/cpu_1e6.json
    python benchmarks/gpu_check.py report /tmp/*.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, write_section  # noqa: E402
from large_crossed import FORMULA, movielens_like, short_kind  # noqa: E402


def _device_peak(device) -> int | None:
    """Peak bytes in use on ``device`` since the process started (None where the backend keeps no count)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return None if not stats else stats.get("peak_bytes_in_use")


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def fit_once(label: str, role: str, rows: int, users: int, items: int, kind: str = "auto") -> dict:
    """The record of one fit (see the module docstring); ``kind`` forces the block kind
    (``"tiled"``, ``"iterative"``...; "auto": lmer's own choice)."""
    import warnings

    import jax
    import numpy as np

    import lmmjax as lmm
    from lmmjax.lmer import fit_model
    from lmmjax.model import build_model

    device = jax.devices()[0]
    t = time.perf_counter()
    data = movielens_like(rows, users, items)
    t_data = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        fit = (lmm.lmer(FORMULA, data) if kind == "auto" else
               fit_model(build_model(FORMULA, data).with_schur(kind), FORMULA))
        t_fit = time.perf_counter() - t
        peak_fit = _device_peak(device)
        t = time.perf_counter()
        str(fit.summary())
        t_summary = time.perf_counter() - t
    peak_all = _device_peak(device)
    return dict(label=label, role=role, rows=rows, users=int(data["user"].nunique()), items=int(data["item"].nunique()),
                platform=device.platform, device=str(getattr(device, "device_kind", device)),
                n_devices=len(jax.devices()), seconds_data=t_data, seconds_fit=t_fit,
                seconds_optimizer=float(fit.optsummary.seconds), seconds_summary=t_summary,
                evaluations=int(fit.optsummary.n_evaluations), kind=short_kind(repr(fit.model.dims.kind)),
                converged=bool(fit.converged), loglik=float(fit.loglik),
                theta=np.asarray(fit.theta, float).tolist(), beta=np.asarray(fit.fixef, float).tolist(),
                sigma=float(fit.sigma), device_peak_fit=peak_fit, device_peak_all=peak_all,
                host_peak=_rss_bytes(), jax=jax.__version__)


def _gb(x) -> str:
    return "–" if x is None else f"{x / 2**30:.2f}"


def report(records: list, notes: list) -> str:
    """The markdown block: one row per fit, each ``gpu`` fit compared with the ``cpu`` fit of the same label."""
    cpu = {r["label"]: r for r in records if r["role"] == "cpu"}
    rows = []
    for r in sorted(records, key=lambda r: (r["rows"], r["role"] != "gpu")):
        ref = cpu.get(r["label"]) if r["role"] == "gpu" else None
        rows.append([
            r["label"], f"{r['rows']:,} rows; {r['users']:,} × {r['items']:,}", r["role"],
            f"{r['platform']} ({r['device']})", r["kind"], f"{r['seconds_fit']:.1f}",
            f"{r['seconds_optimizer']:.1f}", r["evaluations"], f"{r['seconds_summary']:.1f}",
            "–" if r["device_peak_all"] is None else f"{_gb(r['device_peak_fit'])} / {_gb(r['device_peak_all'])}",
            _gb(r["host_peak"]), f"{r['loglik']:.4f}", "yes" if r["converged"] else "NO",
            "–" if ref is None else f"{r['loglik'] - ref['loglik']:+.1e}",
            "–" if ref is None else
            f"{max(abs(a - b) for a, b in zip(r['theta'] + r['beta'], ref['theta'] + ref['beta'])):.1e}",
        ])
    header = ["size", "rows; users × items", "run", "backend", "kind", "fit (s)", "optimizer (s)", "evals",
              "summary() (s)", "device peak: fit / with summary (GB)", "host peak RSS (GB)", "loglik", "converged",
              "loglik − CPU", "max |Δθ̂, Δβ̂| vs CPU"]
    devices = sorted({f"{r['n_devices']} × {r['device']} ({r['platform']})" for r in records})
    text = ("## GPU check (`benchmarks/gpu_check.sh`)\n\n"
            f"`{FORMULA}` by REML on MovieLens-shaped data (`large_crossed.movielens_like`, the same data on "
            "each backend), each fit in a fresh process: \"fit\" is the whole `lmer` call including "
            "compilation and building the model, \"optimizer\" its search alone; device peak from "
            "`memory_stats()['peak_bytes_in_use']`. Devices: " + "; ".join(devices) + ".\n\n"
            + markdown_table(header, rows))
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="one fit on the backend JAX_PLATFORMS selects; writes JSON")
    f.add_argument("--label", required=True, help="the size's name; a gpu fit is compared with the cpu fit of it")
    f.add_argument("--role", choices=("gpu", "cpu"), required=True)
    f.add_argument("--rows", type=float, required=True)
    f.add_argument("--users", type=float, required=True)
    f.add_argument("--items", type=float, required=True)
    f.add_argument("--kind", default="auto", help='force the block kind ("pairs", "matmul", "tiled", "iterative")')
    f.add_argument("--out", required=True)
    r = sub.add_parser("report", help="markdown block from the JSON files of a run")
    r.add_argument("files", nargs="*")
    r.add_argument("--note", action="append", default=[], help="a line under the table (repeatable)")
    r.add_argument("--notes-file", help="more lines under the table, one a line")
    r.add_argument("--write", action="store_true", help="write it into benchmarks/RESULTS.md (section gpu_check)")
    args = ap.parse_args()
    if args.command == "fit":
        rec = fit_once(args.label, args.role, int(args.rows), int(args.users), int(args.items), args.kind)
        Path(args.out).write_text(json.dumps(rec, indent=1))
        print(json.dumps({k: v for k, v in rec.items() if k not in ("theta", "beta")}), flush=True)
        return
    records = [json.loads(Path(p).read_text()) for p in args.files if os.path.getsize(p) > 0]
    notes = list(args.note)
    if args.notes_file and os.path.exists(args.notes_file):
        notes += [line.strip() for line in Path(args.notes_file).read_text().splitlines() if line.strip()]
    text = report(records, notes)
    print(text)
    if args.write:
        write_section("gpu_check", text)


if __name__ == "__main__":
    main()
