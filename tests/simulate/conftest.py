"""Shared fits and bootstrap runs for the simulation tests (compiled once per session)."""
import warnings

import pytest

import lmmjax as lmm

SLEEP = "Reaction ~ Days + (Days | Subject)"
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"


def quiet_lmer(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(formula, data, reml=reml)


@pytest.fixture(scope="session")
def sleep_data():
    return lmm.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def sleep_fit(sleep_data):
    return quiet_lmer(SLEEP, sleep_data)


@pytest.fixture(scope="session")
def sleep_boot(sleep_fit):
    """2,000 replicates in chunks of 1,000: the bootMer comparison and the batch-size test share it."""
    return sleep_fit.bootstrap(2000, seed=1, batch_size=1000, progress=False)


@pytest.fixture(scope="session")
def penicillin_fit():
    return quiet_lmer(PENICILLIN, lmm.datasets.load("penicillin"))
