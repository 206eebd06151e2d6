"""Suite-wide settings, applied before any test module imports lmmjax.

The suite keeps JAX's persistent compilation cache in a temporary directory of
its own (removed at the end), so that running the tests never writes into the
user's ~/.cache/lmmjax. A cache location or switch the caller set is kept.

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

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    _hypothesis_home = tempfile.mkdtemp(prefix="lmmjax-test-hypothesis-")
    set_hypothesis_home_dir(_hypothesis_home)
    atexit.register(shutil.rmtree, _hypothesis_home, ignore_errors=True)
settings.register_profile("lmmjax", database=None)
settings.load_profile("lmmjax")  # pytest's --hypothesis-profile / --hypothesis-seed still apply
