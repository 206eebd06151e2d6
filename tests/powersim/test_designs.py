"""Design builders and simr-style extend."""
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.errors import ModelSpecError
from lmmjax.powersim import crossed, extend, nested, repeated_measures


def test_repeated_measures_layout_and_between_balance():
    d = repeated_measures(6, times=[0, 1, 2, 4], between={"group": ["control", "treated"]},
                          within={"cond": ["a", "b"]})
    assert d.shape == (6 * 4 * 2, 5)
    assert list(d["Subject"].cat.categories) == [f"S{i}" for i in range(1, 7)]
    assert sorted(d["Time"].unique()) == [0.0, 1.0, 2.0, 4.0]
    # between: constant within subject, balanced over subjects; within: every subject sees each level
    per_subject = d.groupby("Subject", observed=True)["group"].nunique()
    assert (per_subject == 1).all()
    assert d.drop_duplicates("Subject")["group"].value_counts().tolist() == [3, 3]
    assert (d.groupby("Subject", observed=True)["cond"].nunique() == 2).all()
    assert list(d["group"].cat.categories) == ["control", "treated"]
    assert (d["y"] == 0).all()


def test_crossed_latin_square_counterbalancing():
    d = crossed(8, 6, within={"cond": ["A", "B"]}, item_predictors={"freq": ["hi", "lo"]},
                subject_predictors={"age": ["young", "old"]})
    assert d.shape == (48, 6)
    # every subject sees both conditions equally often; every item appears in both
    tab = d.groupby(["Subject", "cond"], observed=True).size().unstack()
    assert (tab == 3).all().all()
    assert (d.groupby("Item", observed=True)["cond"].nunique() == 2).all()
    assert (d.groupby("Item", observed=True)["freq"].nunique() == 1).all()
    assert (d.groupby("Subject", observed=True)["age"].nunique() == 1).all()
    assert crossed(3, 2, replicates=4).shape[0] == 24


def test_nested_unique_labels_and_level_predictors():
    d = nested(4, 3, 5, predictors={"school": {"sector": ["public", "private"]}, "student": {"sex": ["F", "M"]}})
    assert d.shape == (60, 6)
    assert d["class"].nunique() == 12 and d["student"].nunique() == 60
    assert (d.groupby("class", observed=True)["school"].nunique() == 1).all()
    assert (d.groupby("school", observed=True)["sector"].nunique() == 1).all()
    two = nested(20, 8, names=("clinic", "patient"))
    assert list(two.columns) == ["clinic", "patient", "y"] and len(two) == 160
    with pytest.raises(ModelSpecError, match="names"):
        nested(2, 3, names=("a",))
    with pytest.raises(ModelSpecError, match="unknown level"):
        nested(2, 3, predictors={"school": {"x": [1, 2]}})


def test_extend_along_grouping_factor_copies_structure():
    sleep = lmm.datasets.load("sleepstudy")
    big = extend(sleep, along="Subject", n=30)
    assert big["Subject"].nunique() == 30 and len(big) == 300
    assert isinstance(big["Subject"].dtype, pd.CategoricalDtype)
    new = big["Subject"].cat.categories[18:]
    assert list(new) == [str(v) for v in range(373, 385)]  # numbers continue after 372
    # same within-subject structure as the subject copied
    assert (big.groupby("Subject", observed=True)["Days"].apply(lambda s: tuple(sorted(s))).nunique() == 1)
    small = extend(sleep, along="Subject", n=5)
    assert small["Subject"].nunique() == 5 and list(small["Subject"].cat.categories) == ["308", "309", "310", "330", "331"]


def test_extend_relabels_nested_units():
    d = nested(3, 2, 4)
    e = extend(d, along="school", n=5)
    assert e["school"].nunique() == 5
    assert e["class"].nunique() == 10 and e["student"].nunique() == 40
    assert (e.groupby("class", observed=True)["school"].nunique() == 1).all()
    assert "S5.C2" in set(e["class"])


def test_extend_values_and_within():
    sleep = lmm.datasets.load("sleepstudy")
    e = extend(sleep, along="Days", values=range(15))
    assert sorted(e["Days"].unique()) == list(range(15)) and e["Days"].dtype == float
    assert len(e) == 15 * 18
    w = extend(sleep, within="Subject", n=20)
    assert (w.groupby("Subject", observed=True).size() == 20).all()
    w2 = extend(sleep, within="Subject+Days", n=2)
    assert len(w2) == 360
    with pytest.raises(ModelSpecError):
        extend(sleep, along="Subject")
    with pytest.raises(ModelSpecError, match="unknown column"):
        extend(sleep, along="Nope", n=3)
