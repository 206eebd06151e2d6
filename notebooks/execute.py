"""Run the notebooks in this folder in-process and store their outputs.

    python notebooks/execute.py                 # every notebook, outputs written back
    python notebooks/execute.py 02_power.ipynb  # one of them

The code cells run in order in one fresh namespace, as a Jupyter kernel runs
them, with no Jupyter machinery (no nbclient, no kernel subprocess; the
notebooks use no IPython magics). Each cell's outputs are what Jupyter shows:
printed text (``stream``), warnings (``stderr``, as ``Category: message``), the value of the last
expression unless the cell ends with ``;`` (``execute_result``, with its
``_repr_html_`` and ``repr``) and every matplotlib figure the cell left open
(``display_data``, PNG). Progress bars are turned off (``LMMJAX_PROGRESS=0``).

Cells tagged ``requires-<module>`` are skipped (outputs left empty) when
``lmmjax.<module>`` cannot be imported. The test suite
(``tests/diagnostics/test_notebooks.py``) re-executes the notebooks with
:func:`run_notebook` and ``store=False``.
"""
from __future__ import annotations

import ast
import base64
import contextlib
import importlib.util
import io
import json
import os
import re
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(f"lmmjax.{module}") is not None
    except ImportError:
        return False


def _lines(text: str) -> list:
    return text.splitlines(keepends=True)


def _figures() -> list:
    """PNG display outputs of the open matplotlib figures (then closed)."""
    import matplotlib.pyplot as plt

    outputs = []
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        w, h = fig.get_size_inches() * fig.dpi
        outputs.append({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                                 "text/plain": [f"<Figure size {w:g}x{h:g} with {len(fig.axes)} Axes>"]}})
    plt.close("all")
    return outputs


def _result(value, count: int) -> dict | None:
    from matplotlib.figure import Figure

    if value is None or isinstance(value, Figure):  # a figure is shown as display_data
        return None
    data = {"text/plain": _lines(repr(value))}
    html = getattr(value, "_repr_html_", None)
    if callable(html):
        rendered = html()
        if rendered:
            data["text/html"] = _lines(rendered)
    return {"output_type": "execute_result", "execution_count": count, "metadata": {}, "data": data}


def run_cell(source: str, namespace: dict, label: str, count: int) -> list:
    """Execute one cell's source in ``namespace``; return its Jupyter outputs."""
    tree = ast.parse(source, filename=label)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        exec(compile(tree, label, "exec"), namespace)
        value = eval(compile(last, label, "eval"), namespace) if last is not None else None
        result = None if source.rstrip().endswith(";") else _result(value, count)
    for w in caught:  # as Jupyter shows them, without this machine's file paths
        err.write(f"{w.category.__name__}: {w.message}\n")
    outputs = []
    if out.getvalue():
        outputs.append({"output_type": "stream", "name": "stdout", "text": _lines(out.getvalue())})
    if err.getvalue():
        outputs.append({"output_type": "stream", "name": "stderr", "text": _lines(err.getvalue())})
    if result is not None:
        outputs.append(result)
    return outputs + _figures()


def cap_replicates(source: str, cap: int) -> str:
    """``source`` with literal replicate counts (``nsim=500``, ``.bootstrap(500``) lowered to ``cap``."""
    def lower(m):
        return m.group(1) + str(min(int(m.group(2)), cap))
    return re.sub(r"(\bnsim\s*=\s*|\.bootstrap\(\s*)(\d+)", lower, source)


def run_notebook(path: Path, store: bool = True, replicates: int | None = None) -> list:
    """Execute the code cells of ``path`` in order; with ``store`` write their
    outputs back into the file. Returns the (cell index, reason) of skipped cells.

    ``replicates`` caps the literal simulation and bootstrap counts (the test
    suite checks that the notebooks run, with fewer replicates; not with ``store``)."""
    if store and replicates is not None:
        raise ValueError("replicates= is for checking that a notebook runs, not for storing its outputs")
    import matplotlib

    matplotlib.use("Agg")
    before = os.environ.get("LMMJAX_PROGRESS")
    os.environ["LMMJAX_PROGRESS"] = "0"
    try:
        return _run(Path(path), store, replicates)
    finally:
        if before is None:
            os.environ.pop("LMMJAX_PROGRESS", None)
        else:
            os.environ["LMMJAX_PROGRESS"] = before


def _run(path: Path, store: bool, replicates: int | None = None) -> list:
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4 and isinstance(nb["cells"], list)
    namespace = {"__name__": "__main__"}
    skipped, count = [], 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        missing = [t for t in tags if t.startswith("requires-") and not _available(t[len("requires-"):])]
        cell["outputs"], cell["execution_count"] = [], None
        if missing:
            skipped.append((i, missing))
            continue
        source = "".join(cell["source"])
        if replicates is not None:
            source = cap_replicates(source, replicates)
        if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
            raise ValueError(f"{path.name} cell {i}: IPython magics are not supported")
        count += 1
        try:
            outputs = run_cell(source, namespace, f"{path.name}[cell {i}]", count)
        except ImportError as exc:
            if not any(t.startswith("requires-") for t in tags):
                raise
            skipped.append((i, f"{tags}: {exc}"))
            _figures()
            continue
        cell["outputs"], cell["execution_count"] = outputs, count
    if store:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return skipped


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or sorted(p.name for p in HERE.glob("*.ipynb"))
    for name in names:
        path = HERE / name if not Path(name).exists() else Path(name)
        skipped = run_notebook(path)
        print(f"{path.name}: executed" + (f", skipped cells {skipped}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
