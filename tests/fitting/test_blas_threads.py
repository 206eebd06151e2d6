"""scipy's OpenBLAS runs L-BFGS-B on one thread and gets its thread count back afterwards."""
import pytest

from lmmjax.fitting.blas_threads import _scipy_openblas, single_threaded_scipy_blas


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
