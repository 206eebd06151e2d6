"""The notebooks in notebooks/ run from top to bottom without errors, and are
committed with their outputs.

They are executed with ``notebooks/execute.py`` (the script that stores their
outputs), in this process and without writing: code cells run in order in one
fresh namespace, as a Jupyter kernel would run them. This needs no Jupyter
machinery and shares compiled JAX code with the other tests. Cells tagged
``requires-<module>`` are skipped, with a warning, when ``lmmjax.<module>``
is not installed or not complete yet; every other cell must run.
"""
import importlib.util
import json
import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def _executor():
    spec = importlib.util.spec_from_file_location("notebook_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert ALL and all(f"notebooks/{name}" in readme for name in ALL)


@pytest.mark.parametrize("name", ALL)
def test_notebook_is_committed_with_its_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code if c["execution_count"] is not None]
    assert counts == list(range(1, len(counts) + 1)), "run notebooks/execute.py: cells executed in order"
    assert len(counts) == len(code), "run notebooks/execute.py: every cell executed"
    assert all(o["output_type"] != "error" for c in code for o in c["outputs"])
    shown = sum(bool(c["outputs"]) for c in code)
    assert shown >= len(code) - 1, "most cells show something"
    plotting = [c for c in code if re.search(r"\.plot\b|\bplot_\w+\(", "".join(c["source"]))]
    assert plotting, "each notebook shows plots"
    for cell in plotting:
        assert any("image/png" in o.get("data", {}) for o in cell["outputs"]), "plots are stored"


REPLICATES = 20  # the cap on nsim= and .bootstrap(n) when the suite executes the notebooks


def test_replicate_counts_are_capped_for_the_suite():
    cap = _executor().cap_replicates
    assert cap("fit.bootstrap(500, seed=1); power(p, nsim=300)", 40) == "fit.bootstrap(40, seed=1); power(p, nsim=40)"
    assert cap("nsim = 20", 40) == "nsim = 20"


@pytest.mark.slow  # executes the notebooks
@pytest.mark.parametrize("name", ALL)
def test_notebook_runs(name, monkeypatch):
    monkeypatch.setenv("LMMJAX_NOTEBOOK_ROWS", "20000")  # 03's simulated data: 20,000 rows, not 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # fewer simulations and bootstrap replicates than the stored outputs show: this checks that it runs
        skipped = _executor().run_notebook(NOTEBOOKS / name, store=False, replicates=REPLICATES)
    if skipped:
        warnings.warn(f"{name}: cells skipped for missing modules: {skipped}")


def test_executor_output_kinds(tmp_path):
    cells = [
        "import warnings\nimport matplotlib.pyplot as plt\nprint('hello')\n1 + 1",
        "warnings.warn('careful')\nfig, ax = plt.subplots()\nax.plot([1, 2]);",
        "x = 3\nx;",
    ]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
                    for s in cells] + [{"cell_type": "markdown", "metadata": {}, "source": "# t"}]}
    path = tmp_path / "t.ipynb"
    path.write_text(json.dumps(nb))
    assert _executor().run_notebook(path) == []
    a, b, c = [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    assert a["outputs"][0] == {"output_type": "stream", "name": "stdout", "text": ["hello\n"]}
    assert a["outputs"][1]["data"]["text/plain"] == ["2"] and a["execution_count"] == 1
    kinds = [o["output_type"] for o in b["outputs"]]
    assert kinds == ["stream", "display_data"] and b["outputs"][0]["text"] == ["UserWarning: careful\n"]
    assert b["outputs"][1]["data"]["image/png"].startswith("iVBOR")  # a PNG, base64
    assert c["outputs"] == [] and c["execution_count"] == 3  # a trailing ';' shows nothing
