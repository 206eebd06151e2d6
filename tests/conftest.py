"""Suite-wide settings, applied before any test module imports lmmjax.

The suite keeps JAX's persistent compilation cache in a temporary directory of
its own (removed at the end), so that running the tests never writes into the
user's ~/.cache/lmmjax. A cache location or switch the caller set is kept.
"""
import atexit
import os
import shutil
import tempfile

if not any(os.environ.get(k) for k in ("LMMJAX_CACHE_DIR", "LMMJAX_NO_COMPILATION_CACHE",
                                       "LMMJAX_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")):
    _suite_cache = tempfile.mkdtemp(prefix="lmmjax-test-jax-cache-")
    os.environ["LMMJAX_CACHE_DIR"] = _suite_cache
    atexit.register(shutil.rmtree, _suite_cache, ignore_errors=True)
