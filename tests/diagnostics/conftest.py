"""Shared fits and data for the diagnostics tests (matplotlib on Agg)."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

import lmmjax as lmm  # noqa: E402

from .helpers import quiet_fit  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _agg_backend():
    import matplotlib

    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def sleep_df():
    return lmm.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def sleep_fit(sleep_df):
    return quiet_fit("Reaction ~ Days + (Days | Subject)", sleep_df)


@pytest.fixture(scope="session")
def sleep_unbalanced_df(sleep_df):
    """sleepstudy without every 7th row: unbalanced, so β̂ depends on θ."""
    return sleep_df.drop(index=sleep_df.index[::7]).reset_index(drop=True)


@pytest.fixture(scope="session")
def sleep_unbalanced_fit(sleep_unbalanced_df):
    return quiet_fit("Reaction ~ Days + (Days | Subject)", sleep_unbalanced_df)


@pytest.fixture(scope="session")
def penicillin_fit():
    return quiet_fit("diameter ~ 1 + (1 | plate) + (1 | sample)", lmm.datasets.load("penicillin"))


@pytest.fixture(scope="session")
def pastes_crossed_fit():
    return quiet_fit("strength ~ 1 + (1 | batch) + (1 | cask)", lmm.datasets.load("pastes"))


@pytest.fixture(scope="session")
def pastes_nested_fit():
    return quiet_fit("strength ~ 1 + (1 | batch/cask)", lmm.datasets.load("pastes"))
