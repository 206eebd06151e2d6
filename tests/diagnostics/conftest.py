"""Shared fits and data for the diagnostics tests (matplotlib on Agg); fits come from the
suite's model cache (tests/conftest.py), which also gives ``sleep_df``, ``sleep_fit`` and
``penicillin_fit``."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from tests.conftest import dataset, fit_once  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _agg_backend():
    import matplotlib

    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def sleep_unbalanced_df():
    """sleepstudy without every 7th row: unbalanced, so β̂ depends on θ."""
    return dataset("sleepstudy_unbalanced")


@pytest.fixture(scope="session")
def sleep_unbalanced_fit():
    return fit_once("Reaction ~ Days + (Days | Subject)", "sleepstudy_unbalanced")


@pytest.fixture(scope="session")
def pastes_crossed_fit():
    return fit_once("strength ~ 1 + (1 | batch) + (1 | cask)", "pastes")


@pytest.fixture(scope="session")
def pastes_nested_fit():
    return fit_once("strength ~ 1 + (1 | batch/cask)", "pastes")
