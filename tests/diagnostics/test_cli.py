"""``python -m lmmjax fit DATA.csv FORMULA --out DIR`` in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import lmmjax as lmm

ROOT = Path(__file__).resolve().parents[2]


def run(args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lmmjax", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_fit_writes_summary_flags_report_and_plots(tmp_path):
    csv = tmp_path / "sleep.csv"
    lmm.datasets.load("sleepstudy").to_csv(csv, index=False)
    out = tmp_path / "diag"
    res = run(["fit", str(csv), "Reaction ~ Days + (Days | Subject)", "--ml", "--out", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "Linear mixed model fit by maximum likelihood" in text
    assert "== Red flags ==" in text and "No red flags." in text
    assert "== Report ==" in text and "maximum likelihood (ML)" in text
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"diagnostics.png", "qq.png", "residuals_fitted.png", "scale_location.png", "caterpillar.png",
            "cooks_distance.png", "ranef_qq.png"} <= set(pngs)
    assert all((out / p).stat().st_size > 1000 for p in pngs)
    assert (out / "report.md").read_text().startswith("**Methods.**")


def test_cli_errors(tmp_path):
    res = run(["fit", str(tmp_path / "missing.csv"), "y ~ 1 + (1|g)"], tmp_path)
    assert res.returncode == 2 and "no such file" in res.stderr
    csv = tmp_path / "d.csv"
    lmm.datasets.load("dyestuff").to_csv(csv, index=False)
    res = run(["fit", str(csv), "Yield ~ 1 + (1 | Nope)"], tmp_path)
    assert res.returncode == 2 and "Nope" in res.stderr
    res = run(["--help"], tmp_path)
    assert res.returncode == 0 and "fit" in res.stdout


def test_cli_in_process_with_bootstrap(tmp_path, capsys):
    from lmmjax.__main__ import main

    csv = tmp_path / "sleep.csv"
    lmm.datasets.load("sleepstudy").to_csv(csv, index=False)
    assert main(["fit", str(csv), "Reaction ~ Days + (Days | Subject)", "--bootstrap", "50", "--seed", "3",
                 "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "**Methods.**" in out
    assert ("Parametric bootstrap: 50 replicates, seed 3" in out and "parametric bootstrap percentile" in out) \
        or "bootstrap not available" in out
