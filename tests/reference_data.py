"""Helpers to read the R fixtures and map R's names onto lmmjax's."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

import lmmjax as lmm

FIXTURES = Path(__file__).parent / "reference" / "fixtures"


def load_fixture(kind: str, name: str) -> dict:
    return json.loads((FIXTURES / kind / f"{name}.json").read_text())


def fixture_ids(kind: str) -> list:
    return sorted(p.stem for p in (FIXTURES / kind).glob("*.json"))


def r_name(name: str) -> str:
    """lmmjax/formulaic column name -> R's: 'f[T.b]' -> 'fb', 'Intercept' -> '(Intercept)'."""
    name = re.sub(r"([\w.]+)\[(?:T\.)?([^\]]+)\]", r"\1\2", name)
    return "(Intercept)" if name == "Intercept" else name


def group_key(group: str) -> frozenset:
    """R names the inner factor of a/b 'b:a'; lmmjax 'a:b'. Compare as sets."""
    return frozenset(group.split(":"))


def fixture_data(ref: dict) -> pd.DataFrame:
    """The data set a fixture was made from, with its modifications redone."""
    df = lmm.datasets.load(ref["dataset"])
    if ref.get("na_rows"):
        df[ref["na_column"]] = df[ref["na_column"]].astype(float)
        df.loc[ref["na_rows"], ref["na_column"]] = np.nan
    if ref["id"].startswith("rankdef"):
        df["Days2"] = 2 * df["Days"]
        codes = df["Subject"].cat.codes
        df["grp"] = pd.Categorical(np.where(codes < 9, "a", "b"))
    return df


def lmm_formula(ref: dict) -> str:
    return ref["formula"]


def theta_in_lmm_order(fit, ref: dict) -> np.ndarray:
    """R's θ (lme4 order, lme4 names) rearranged into lmmjax's layout order."""
    ours = {}
    for i, name in enumerate(fit.model.layout.names):
        group, cols = name.split(": ")
        ours[(group_key(group), tuple(r_name(c) for c in cols.split(",")))] = i
    theta = np.full(len(ours), np.nan)
    for value, rname in zip(ref["theta"], ref["theta_names"]):
        for group in sorted({k[0] for k in ours}, key=len, reverse=True):
            gname = ":".join(sorted(group))
            for candidate in {":".join(p) for p in _perms(group)}:
                if rname.startswith(candidate + "."):
                    cols = tuple(rname[len(candidate) + 1:].split("."))
                    if (group, cols) in ours:
                        theta[ours[(group, cols)]] = value
                        break
            del gname
    assert not np.isnan(theta).any(), (ref["theta_names"], fit.model.layout.names)
    return theta


def _perms(group):
    import itertools

    return itertools.permutations(sorted(group))
