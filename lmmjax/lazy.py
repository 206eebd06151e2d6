"""Modules loaded on first use: the one place where lmmjax defers an import.

Why: a user's first minutes are ``import lmmjax``, a fit and its summary
(issue 9, first-call latency). Simulation, diagnostics, plots and power are
not needed for that, and importing them costs time (scipy.stats, tqdm,
matplotlib's helpers), so the top floor (``lmmjax/__init__``,
:mod:`lmmjax.methods`, the command line) and ``inference.confint``'s
bootstrap intervals name them with :func:`lazy_module` instead of importing
them. A :class:`LazyModule` is a module-level name, declared next to the
imports, so the dependency stays visible: the structure tests
(tests/test_structure_rules.py) count it as an import edge for the
one-way pipeline and the cycle checks. Nothing else in the package
imports inside a function.

Examples
--------
>>> simulate = lazy_module("lmmjax.simulate")
>>> simulate                                    # not imported yet
<lazy module 'lmmjax.simulate'>
>>> callable(simulate.bootstrap)                # imported now
True
"""
from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """A module, imported on first attribute access (then as fast as the module itself).

    Parameters
    ----------
    name : str
        Absolute module name, e.g. ``"lmmjax.diagnostics"``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def load(self) -> ModuleType:
        """The module itself (imported now if it was not yet)."""
        return importlib.import_module(self.name)

    def __getattr__(self, attr: str):
        return getattr(self.load(), attr)

    def __dir__(self) -> list:
        return dir(self.load())

    def __repr__(self) -> str:
        return f"<lazy module {self.name!r}>"


def lazy_module(name: str) -> LazyModule:
    """``name`` as a :class:`LazyModule` (see the module docstring for when to use one)."""
    if not name.startswith("lmmjax."):
        raise ValueError(f"lazy_module is for lmmjax's own modules, not {name!r}")
    return LazyModule(name)
