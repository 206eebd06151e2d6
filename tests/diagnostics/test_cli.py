"""``python -m lmmjax fit DATA.csv FORMULA --out DIR`` in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def _fit_in_process(args, capsys):
    from lmmjax.__main__ import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code, out, err, *words):
    assert code == 2
    assert out == ""  # the error comes before any analysis output
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_cli_empty_csv_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _one_line_error(*_fit_in_process(["fit", str(empty), "y ~ 1 + (1 | g)"], capsys), "empty.csv is empty")
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n  \n")
    _one_line_error(*_fit_in_process(["fit", str(blank), "y ~ 1 + (1 | g)"], capsys), "blank.csv is empty")
    header = tmp_path / "header.csv"
    header.write_text("y,g\n")
    _one_line_error(*_fit_in_process(["fit", str(header), "y ~ 1 + (1 | g)"], capsys),
                    "header.csv has a header row but no data rows")


def test_cli_binary_and_undecodable_files_are_one_line_errors(tmp_path, capsys):
    png = tmp_path / "plot.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    _one_line_error(*_fit_in_process(["fit", str(png), "y ~ 1 + (1 | g)"], capsys),
                    "plot.csv is a binary file, not a CSV text file")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("y,g\n1,\xe9t\xe9\n2,b\n".encode("latin-1"))
    _one_line_error(*_fit_in_process(["fit", str(latin), "y ~ 1 + (1 | g)"], capsys), "not UTF-8 text")
    _one_line_error(*_fit_in_process(["fit", str(tmp_path), "y ~ 1 + (1 | g)"], capsys), "is a directory")


def test_cli_out_path_that_is_a_file_fails_before_the_fit(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    lmm.datasets.load("dyestuff").to_csv(csv, index=False)
    taken = tmp_path / "report.txt"
    taken.write_text("keep me")
    _one_line_error(*_fit_in_process(["fit", str(csv), "Yield ~ 1 + (1 | Batch)", "--out", str(taken)], capsys),
                    "--out", "is an existing file")
    assert taken.read_text() == "keep me"
    below = taken / "sub"
    _one_line_error(*_fit_in_process(["fit", str(csv), "Yield ~ 1 + (1 | Batch)", "--out", str(below)], capsys),
                    "cannot create the --out directory")


def test_cli_negative_bootstrap_is_a_usage_error(tmp_path):
    csv = tmp_path / "d.csv"
    lmm.datasets.load("dyestuff").to_csv(csv, index=False)
    res = run(["fit", str(csv), "Yield ~ 1 + (1 | Batch)", "--bootstrap", "-5"], tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert "-5 is negative" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("args, words", [
    (["--bootstrap", "2.7"], "'2.7' is not a whole number"),
    (["--bootstrap", "10", "--seed", "-1"], "-1 is negative; a seed is a whole number"),
])
def test_cli_bad_counts_are_usage_errors_before_any_output(tmp_path, args, words):
    csv = tmp_path / "d.csv"
    lmm.datasets.load("dyestuff").to_csv(csv, index=False)
    res = run(["fit", str(csv), "Yield ~ 1 + (1 | Batch)", *args], tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert words in res.stderr and "Traceback" not in res.stderr


def test_cli_exit_code_is_non_zero_on_input_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = run(["fit", str(empty), "y ~ 1 + (1 | g)"], tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == f"error: {empty} is empty; it needs a header row and data rows"
