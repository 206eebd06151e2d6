"""The GLMM example data (cbpp, grouseticks, VerbAgg) load as lme4 has them."""
import numpy as np
import pytest

from lmmjax import datasets


def test_glmm_data_sets_are_listed_and_load_case_insensitively():
    assert {"cbpp", "grouseticks", "verbagg"} <= set(datasets.available())
    assert datasets.load("VerbAgg").shape == (7584, 9)


def test_cbpp_matches_lme4():
    df = datasets.load("cbpp")
    assert df.shape == (56, 4) and list(df.columns) == ["herd", "incidence", "size", "period"]
    assert list(df["period"].cat.categories) == ["1", "2", "3", "4"]
    assert len(df["herd"].cat.categories) == 15
    assert df["incidence"].sum() == 99 and df["size"].sum() == 842  # R: sum(cbpp$incidence), sum(size)
    assert (df["incidence"] <= df["size"]).all()


def test_grouseticks_matches_lme4_with_centred_height():
    df = datasets.load("grouseticks")
    assert list(df.columns) == ["INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT"]
    assert df.shape == (403, 7) and df["TICKS"].sum() == 2567
    assert list(df["YEAR"].cat.categories) == ["95", "96", "97"]
    assert [len(df[c].cat.categories) for c in ("INDEX", "BROOD", "LOCATION")] == [403, 118, 63]
    np.testing.assert_allclose(df["cHEIGHT"], df["HEIGHT"] - df["HEIGHT"].mean(), atol=1e-12)


def test_verbagg_matches_lme4():
    df = datasets.load("verbagg")
    assert list(df.columns) == ["Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"]
    assert df["Anger"].dtype == np.int64 and df["Anger"].sum() == 151704
    assert list(df["r2"].cat.categories) == ["N", "Y"]  # first level = failure in a binomial GLMM
    assert df["r2"].value_counts().to_dict() == {"N": 3973, "Y": 3611}
    assert list(df["resp"].cat.categories) == ["no", "perhaps", "yes"] and not df["resp"].cat.ordered
    assert list(df["btype"].cat.categories) == ["curse", "scold", "shout"]
    assert list(df["mode"].cat.categories) == ["want", "do"]
    assert len(df["id"].cat.categories) == 316 and len(df["item"].cat.categories) == 24


@pytest.mark.parametrize("name", ["cbpp", "grouseticks", "verbagg"])
def test_metadata_records_lme4_as_source(name):
    assert datasets.metadata(name)["source"].startswith("lme4 ")
