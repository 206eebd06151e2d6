"""Suite-wide settings, applied before any test module imports lmmjax.

It also holds the suite's one model cache (:func:`fit_once`, the ``fitted``
fixture, and the shared ``sleep_fit``/``penicillin_fit`` fixtures).

Run alone (plain ``pytest``), a test process keeps the persistent compilation
cache off and points it at a temporary directory of its own, so that running
the tests never writes into the user's ~/.cache/lmmjax. Under ``make test``
(tests/run_suite.py) the groups share one temporary cache directory, given in
``LMMJAX_CACHE_DIR``, which is kept, as is any cache location or switch the
caller set.

Hypothesis keeps no example database and writes its other files into a
temporary directory (unless HYPOTHESIS_STORAGE_DIRECTORY is set): a failing
example found in one run is reported (with the seed to reproduce it) but not
stored in ``.hypothesis/``, so it cannot make every later run of a checkout fail.
"""
import atexit
import os
import shutil
import tempfile

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

if not any(os.environ.get(k) for k in ("LMMJAX_CACHE_DIR", "LMMJAX_NO_COMPILATION_CACHE",
                                       "LMMJAX_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")):
    _suite_cache = tempfile.mkdtemp(prefix="lmmjax-test-jax-cache-")
    os.environ["LMMJAX_CACHE_DIR"] = _suite_cache
    atexit.register(shutil.rmtree, _suite_cache, ignore_errors=True)
    # A lone test process writes no persistent compilation cache: twice, after several
    # hundred compiled programs, jax 0.10.2 (CPU) crashed with a segmentation fault inside
    # executable.serialize() while writing a cache entry (most likely the memory-map limit that
    # release_programs() below now guards; run_suite's groups write a shared cache). The cache is tested in fresh
    # subprocesses (tests/test_compilation_cache.py, test_program_cache.py, test_warmup.py),
    # which get the directory above and the cache switched on.
    os.environ["LMMJAX_NO_COMPILATION_CACHE"] = "1"

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    _hypothesis_home = tempfile.mkdtemp(prefix="lmmjax-test-hypothesis-")
    set_hypothesis_home_dir(_hypothesis_home)
    atexit.register(shutil.rmtree, _hypothesis_home, ignore_errors=True)
settings.register_profile("lmmjax", database=None)
settings.load_profile("lmmjax")  # pytest's --hypothesis-profile / --hypothesis-seed still apply


# ---- one model cache for the whole suite -----------------------------------------------------
# Fits are immutable, so every test that needs "sleepstudy, Reaction ~ Days + (Days | Subject),
# REML" can share one object (and whatever it has memoized). Tests that check what lmer does
# (warnings, errors, timing) call lmm.lmer themselves.
import warnings  # noqa: E402

import pytest  # noqa: E402

import lmmjax as lmm  # noqa: E402
from lmmjax.program_cache import release_programs  # noqa: E402
from tests.reference_data import fixture_data, load_fixture  # noqa: E402

SLEEP = "Reaction ~ Days + (Days | Subject)"
_DATA: dict = {}
_FITS: dict = {}


def _sleepstudy_unbalanced():
    """sleepstudy without every 7th row: unbalanced, so β̂ depends on θ."""
    df = lmm.datasets.load("sleepstudy")
    return df.drop(index=df.index[::7]).reset_index(drop=True)


DERIVED_DATA = {"sleepstudy_unbalanced": _sleepstudy_unbalanced}


def dataset(name):
    """The data behind a cache key (a fresh copy, so a test may modify it).

    ``name``: a data set of :func:`lmmjax.datasets.load`, a key of
    :data:`DERIVED_DATA`, or ``("kind", "fixture id")`` for the data an R
    fixture was made from (:func:`tests.reference_data.fixture_data`).
    """
    if name not in _DATA:
        if isinstance(name, tuple):
            _DATA[name] = fixture_data(load_fixture(*name))
        elif name in DERIVED_DATA:
            _DATA[name] = DERIVED_DATA[name]()
        else:
            _DATA[name] = lmm.datasets.load(name)
    return _DATA[name].copy()


def fit_once(formula: str = SLEEP, data="sleepstudy", reml: bool = True):
    """``lmm.lmer(formula, dataset(data), reml=reml)``, fitted once per session (warnings silenced).

    Examples
    --------
    >>> fit = fit_once()                                               # sleepstudy, REML
    >>> ml = fit_once("Reaction ~ Days + (1 | Subject)", reml=False)
    >>> cake = fit_once(data=("inference", "cake"), formula=...)       # an R fixture's data
    """
    key = (formula, data, bool(reml))
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = lmm.lmer(formula, dataset(data), reml=reml)
    return _FITS[key]


@pytest.fixture(scope="session")
def fitted():
    """The suite's model cache: ``fitted(formula, data="sleepstudy", reml=True)`` (see :func:`fit_once`)."""
    return fit_once


@pytest.fixture(scope="session")
def sleep_df():
    return dataset("sleepstudy")


@pytest.fixture(scope="session")
def sleep_fit():
    """sleepstudy, ``Reaction ~ Days + (Days | Subject)``, REML."""
    return fit_once(SLEEP, "sleepstudy")


@pytest.fixture(scope="session")
def penicillin_fit():
    return fit_once("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin")


# ---- memory maps of compiled programs ---------------------------------------------------------
# Every XLA CPU executable holds a few memory maps. A long pytest process compiles thousands of
# programs; at the kernel's vm.max_map_count (65,530 by default) it crashed with a segmentation
# fault. After a test module, past MAPS_LIMIT maps, the compiled programs are released (they are
# recompiled on their next use).
MAPS_LIMIT = int(os.environ.get("LMMJAX_TEST_MAPS_LIMIT", "40000"))


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_programs_past_the_map_limit():
    yield
    if _memory_maps() > MAPS_LIMIT:
        release_programs()
