"""Shared bootstrap runs for the simulation tests; fits come from the suite's model cache
(tests/conftest.py: ``sleep_fit``, ``penicillin_fit``)."""
import warnings

import pytest

import lmmjax as lmm
from tests.conftest import dataset

SLEEP = "Reaction ~ Days + (Days | Subject)"
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"


def quiet_lmer(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(formula, data, reml=reml)


@pytest.fixture(scope="session")
def sleep_data():
    return dataset("sleepstudy")


@pytest.fixture(scope="session")
def sleep_boot(sleep_fit):
    """2,000 replicates in chunks of 1,000: the bootMer comparison and the batch-size test share it."""
    return sleep_fit.bootstrap(2000, seed=1, batch_size=1000, progress=False)
