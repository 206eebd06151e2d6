"""lmmjax.lazy: a module named now, imported on first attribute access."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmmjax.lazy import LazyModule, lazy_module

ROOT = Path(__file__).resolve().parents[1]


def test_lazy_module_imports_on_first_attribute_access():
    code = ("import sys, lmmjax\n"
            "from lmmjax.lazy import lazy_module\n"
            "m = lazy_module('lmmjax.powersim')\n"
            "before = 'lmmjax.powersim' in sys.modules\n"
            "f = m.power\n"
            "print(before, 'lmmjax.powersim' in sys.modules, f is sys.modules['lmmjax.powersim'].power)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True", "True"]


def test_lazy_module_is_only_for_lmmjax_modules():
    with pytest.raises(ValueError, match="lmmjax's own modules"):
        lazy_module("numpy")
    m = lazy_module("lmmjax.memo")
    assert isinstance(m, LazyModule) and repr(m) == "<lazy module 'lmmjax.memo'>"
    assert m.load() is sys.modules["lmmjax.memo"] and callable(m.cached)


def test_a_missing_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        lazy_module("lmmjax.memo").no_such_name
