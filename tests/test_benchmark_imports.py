"""Every lmmjax name the benchmark scripts import exists (also inside the code they run in subprocesses).

The benchmarks are run by hand, not by the suite, so a renamed module
(``inference._cache`` became :mod:`lmmjax.memo`) would otherwise only show
up when someone runs them.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
IMPORT = re.compile(r"^\s*from (lmmjax[\w.]*) import ([\w, ]+)$", re.MULTILINE)


def imported_names():
    for path in sorted(BENCHMARKS.glob("*.py")):
        for module, names in IMPORT.findall(path.read_text()):
            for name in names.split(","):
                yield pytest.param(module, name.strip(), id=f"{path.name}:{module}.{name.strip()}")


@pytest.mark.parametrize("module, name", list(imported_names()))
def test_benchmark_import_exists(module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
        f"{module} has no {name}")


def test_the_scan_sees_the_benchmarks():
    assert len(list(imported_names())) >= 3
