"""Fixtures, fits and name mapping for the inference tests (fits come from the suite's model cache)."""
from __future__ import annotations

import re

import numpy as np

from tests.conftest import fit_once
from tests.reference_data import load_fixture, r_name

# fixtures with coefficient tables, F tests and KR covariances
TABLE_IDS = ["sleep", "sleep_missing", "cake", "cake_unbalanced", "penicillin"]


def ref(fid: str) -> dict:
    return load_fixture("inference", fid)


def fitted(fid: str, formula: str | None = None, reml: bool = True):
    """The lmmjax fit of a fixture's model (or another formula on its data), from the model cache."""
    return fit_once(formula or ref(fid)["formula"], ("inference", fid), reml=reml)


def r_param(name: str) -> str:
    """lmmjax parameter name -> lme4's confint(oldNames=FALSE) name."""
    m = re.match(r"sd\((.*)\|(.*)\)$", name)
    if m:
        return f"sd_{r_name(m.group(1))}|{m.group(2)}"
    m = re.match(r"cor\((.*),(.*)\|(.*)\)$", name)
    if m:  # lme4 names cor(a, b) as cor_b.a
        return f"cor_{r_name(m.group(2))}.{r_name(m.group(1))}|{m.group(3)}"
    return r_name(name)


def r_interval(r: dict, key: str) -> dict:
    ci = r[key]
    return {n: (lo, hi) for n, lo, hi in zip(ci["names"], ci["lower"], ci["upper"])}


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))
