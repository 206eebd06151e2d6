"""scipy's OpenBLAS: one thread from import on (unless the environment says otherwise), and inside L-BFGS-B."""
import os
import subprocess
import sys

import pytest

from lmmjax.blas_threads import _scipy_openblas, single_threaded_scipy_blas


def test_one_thread_inside_and_the_count_restored_after():
    funcs = _scipy_openblas()
    if funcs is None:
        pytest.skip("scipy's BLAS is not a bundled OpenBLAS here")
    get, set_ = funcs
    before = get()
    set_(2)
    try:
        with single_threaded_scipy_blas():
            assert get() == 1
        assert get() == 2
        with pytest.raises(RuntimeError):
            with single_threaded_scipy_blas():
                raise RuntimeError("restored even so")
        assert get() == 2
    finally:
        set_(before)


def test_import_sets_one_thread_unless_the_environment_says_otherwise():
    """lmmjax.config.blas_thread_count: 1 by default, $LMMJAX_BLAS_THREADS wins, OPENBLAS_NUM_THREADS alone is left alone."""
    from lmmjax.config import blas_thread_count as blas_threads

    assert blas_threads({}) == 1
    assert blas_threads({"LMMJAX_BLAS_THREADS": "3"}) == 3
    for bad in ("x", "2.5", "0"):
        with pytest.warns(UserWarning, match=f"LMMJAX_BLAS_THREADS='{bad}' is not a whole number"):
            assert blas_threads({"LMMJAX_BLAS_THREADS": bad}) == 1
    assert blas_threads({"OPENBLAS_NUM_THREADS": "4"}) is None
    assert blas_threads({"OPENBLAS_NUM_THREADS": "4", "LMMJAX_BLAS_THREADS": "2"}) == 2
    if _scipy_openblas() is None:
        pytest.skip("scipy's BLAS is not a bundled OpenBLAS here")
    code = ("import lmmjax; from lmmjax.blas_threads import _scipy_openblas; "
            "print(_scipy_openblas()[0]())")
    for env, expected in (({}, "1"), ({"LMMJAX_BLAS_THREADS": "2"}, "2")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**{k: v for k, v in os.environ.items()
                                     if k not in ("OPENBLAS_NUM_THREADS", "LMMJAX_BLAS_THREADS")}, **env})
        assert out.stdout.strip() == expected
