"""The glmer fixtures (tests/reference/make_glmer_reference.R) and the data each was fitted to."""
from __future__ import annotations

import numpy as np
import pandas as pd

import lmmjax as lmm

from .reference_data import fixture_ids, load_fixture

GLMER_IDS = fixture_ids("glmer")


def glmer_fixture(name: str) -> dict:
    return load_fixture("glmer", name)


def cbpp_bernoulli() -> pd.DataFrame:
    """cbpp as Bernoulli rows, in the R script's order (per cbpp row: the 1s, then the 0s)."""
    cbpp = lmm.datasets.load("cbpp")
    reps = np.column_stack([cbpp["incidence"], cbpp["size"] - cbpp["incidence"]]).astype(int)
    idx = np.repeat(np.arange(len(cbpp)), reps.sum(axis=1))
    y = np.concatenate([[1.0] * k + [0.0] * (n - k) for k, n in zip(reps[:, 0], reps.sum(axis=1))])
    return pd.DataFrame({"herd": cbpp["herd"].to_numpy()[idx], "period": cbpp["period"].to_numpy()[idx], "y": y})


def glmer_data(ref: dict) -> pd.DataFrame:
    """The data frame the fixture's model was fitted to (see its ``data_transform``)."""
    if ref.get("data"):
        df = pd.DataFrame(ref["data"])
        for col, values in ref["data"].items():
            if values and isinstance(values[0], str):
                df[col] = pd.Categorical(values, categories=sorted(set(values)))
        return df
    if ref["id"].startswith("cbpp_bernoulli"):
        return cbpp_bernoulli()
    df = lmm.datasets.load(ref["dataset"])
    if ref["id"] == "cbpp_prop_weights":
        df["prop"] = df["incidence"] / df["size"]
    return df


def response_and_trials(ref: dict, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(y as a proportion or count, prior weights) of the fixture's model, as glm defines them."""
    if ref["id"].startswith("cbpp_agg") or ref["id"] == "cbpp_prop_weights":
        n = df["size"].to_numpy(float)
        return df["incidence"].to_numpy(float) / n, n
    lhs = ref["formula"].split("~")[0].strip()
    y = df[lhs]
    y = (y.cat.codes.to_numpy() == 1).astype(float) if hasattr(y, "cat") else y.to_numpy(float)
    return y, np.ones(len(y))
