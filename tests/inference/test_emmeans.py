"""Estimated marginal means, pairs, contrasts, trends and joint tests against R's emmeans.

Fixtures: tests/reference/make_emmeans_reference.R (emmeans 1.8 on lmerTest fits with
tight optimizer settings). Tolerances: means, SE and confidence limits 1e-6 relative;
df 1e-4 relative; p-values 1e-4 relative (lmerTest's Satterthwaite df come from
numerical derivatives, good to about 1e-9; R's ptukey and scipy's studentized range agree
to about 1e-6 at moderate p, so tiny p-values are compared with an absolute floor of 1e-9).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.errors import DataWarning, ModelSpecError
from lmmjax.inference.emm_adjust import tukey_sf
from tests.reference_data import fixture_data, fixture_ids, load_fixture

FIXTURES = fixture_ids("emmeans")
_FITS: dict = {}

REL_EST, REL_DF, REL_P, ABS_P = 1e-6, 1e-4, 1e-4, 1e-9


def data_for(ref: dict) -> pd.DataFrame:
    df = fixture_data(ref)
    for col, values in (ref.get("subset") or {}).items():
        values = values if isinstance(values, list) else [values]
        df = df[df[col].astype(str).isin(values)].copy()
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].cat.remove_unused_categories()
    return df


def fit_for(fid: str, additive: bool = False):
    key = (fid, additive)
    if key not in _FITS:
        ref = load_fixture("emmeans", fid)
        formula = ref["additive"]["formula"] if additive else ref["formula"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = lmm.lmer(formula, data_for(ref))
    return _FITS[key]


def cases(key: str = "cases"):
    out = []
    for fid in FIXTURES:
        ref = load_fixture("emmeans", fid)
        for i, c in enumerate(ref.get(key) or []):
            label = f"{fid}-{c['kind']}-{'x'.join(c['specs'])}" + (f"-by-{'x'.join(c['by'])}" if c.get("by") else "")
            label += f"-{c['weights']}-{c['ddf']}" + (f"-at{i}" if c.get("at") else "")
            out.append(pytest.param(fid, key, i, id=label))
    return out


def compute(fit, c: dict):
    kwargs = dict(by=c.get("by"), at=c.get("at"), ddf=c["ddf"], weights=c["weights"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if c["kind"] == "emmeans":
            em = fit.emmeans(c["specs"], **kwargs)
        else:
            em = fit.emtrends(c["specs"], var=c["var"], **kwargs)
    return em, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def close(ours, theirs, rtol, atol=0.0, what=""):
    ours = np.asarray(ours, float)
    theirs = np.array([np.nan if v is None else v for v in theirs], float)
    assert ours.shape == theirs.shape, what
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{what}: nonEst rows differ")
    ok = ~np.isnan(theirs)
    np.testing.assert_allclose(ours[ok], theirs[ok], rtol=rtol, atol=atol, err_msg=what)


def check_table(table: pd.DataFrame, r: dict, est_col: str, labels: list):
    for col in labels:
        assert [str(v) for v in table[col]] == r[col], col
    close(table[est_col], r["estimate"], REL_EST, 1e-10, "estimate")
    close(table["std_error"], r["SE"], REL_EST, what="SE")
    close(table["df"], r["df"], REL_DF, what="df")
    if "lower" in table:
        close_limits(table, r, est_col)
    if "t" in r:
        close(table["t_ratio"], r["t"], REL_EST, 1e-9, "t ratio")
    if "p" in r:
        close(table["p_value"], r["p"], REL_P, ABS_P, "p value")


def close_limits(table: pd.DataFrame, r: dict, est_col: str = "estimate"):
    """Limits within 1e-6 of the scale of estimate ± half-width (limits near 0 have no relative precision)."""
    scale = np.abs(table[est_col].to_numpy(float)) + 3 * table["std_error"].to_numpy(float)
    for side in ("lower", "upper"):
        theirs = np.array([np.nan if v is None else v for v in r[side]], float)
        ours = table[side].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=side)
        ok = ~np.isnan(theirs)
        assert np.all(np.abs(ours[ok] - theirs[ok]) <= REL_EST * scale[ok]), (side, ours, theirs)


def check_tukey_with_non_estimable(pr, r: dict, em):
    """emmeans sets the df of non-estimable contrasts to Inf and then zapsmall()s the family's df
    before ptukey, which rounds every df to an integer. lmmjax keeps the df: its p-values equal
    emmeans' once the df are rounded, and differ from them by little."""
    check_table(pr.table, {k: v for k, v in r.items() if k != "p"}, "estimate", em.by)
    k = len(em.table) // max(len(pr.table.groupby(em.by, observed=True)) if em.by else 1, 1)
    rounded = tukey_sf(np.sqrt(2.0) * np.abs(pr["t_ratio"].to_numpy()), k, np.round(pr["df"].to_numpy()))
    close(rounded, r["p"], REL_P, ABS_P, "Tukey p with emmeans' rounded df")
    close(pr["p_value"], r["p"], 5e-3, ABS_P, "Tukey p")


@pytest.mark.parametrize("fid,key,i", cases("cases") + cases("additive_cases"))
def test_means_pairs_and_contrasts(fid, key, i):
    ref = load_fixture("emmeans", fid)
    c = ref[key][i]
    em, notes = compute(fit_for(fid, additive=key == "additive_cases"), c)
    est_col = "emmean" if c["kind"] == "emmeans" else f"{c['var']}_trend"
    labels = c["specs"] + (c.get("by") or [])
    assert list(em.table.columns) == labels + [est_col, "std_error", "df", "lower", "upper"]
    check_table(em.table, c["table"], est_col, labels)
    # emmeans' note about interactions <-> our DataWarning
    r_note = any("involvement in interactions" in m for m in c["messages"])
    assert any("involvement in interactions" in n for n in notes) == r_note
    for adjust, r in c["pairs"].items():
        pr = em.pairs(adjust=adjust)
        assert list(pr.table.columns) == ["contrast"] + (c.get("by") or []) + [
            "estimate", "std_error", "df", "t_ratio", "p_value"]
        assert list(pr["contrast"]) == r["contrast"]
        if adjust == "tukey" and None in r["p"]:
            check_tukey_with_non_estimable(pr, r, em)
            continue
        check_table(pr.table, r, "estimate", c.get("by") or [])
    # Tukey intervals: R's qtukey is accurate to about 4 decimals (its documentation), so the
    # critical values (limits − estimate) / SE are compared to 1e-4
    ci = em.pairs(adjust="tukey").confint()
    r = c["pairs_ci"]["tukey"]
    est, se = np.array(r["estimate"], dtype=float), np.array(r["SE"], dtype=float)
    for side in ("lower", "upper"):
        close((ci[side] - ci["estimate"]) / ci["std_error"], (np.array(r[side], dtype=float) - est) / se,
              0.0, 1e-4, f"Tukey critical value ({side})")
    if c.get("contrasts"):
        con = em.contrast(c["contrasts"]["coef"])
        assert list(con["contrast"]) == c["contrasts"]["table"]["contrast"]
        check_table(con.table, c["contrasts"]["table"], "estimate", [])
        close_limits(con.confint(), c["contrasts"]["table"])


def joint_cases():
    out = []
    for fid in FIXTURES:
        ref = load_fixture("emmeans", fid)
        for key in ("joint_tests", "additive_joint_tests"):
            for ddf in (ref.get(key) or {}):
                out.append(pytest.param(fid, key, ddf, id=f"{fid}-{key}-{ddf}"))
    return out


@pytest.mark.parametrize("fid,key,ddf", joint_cases())
def test_joint_tests(fid, key, ddf):
    """emmeans rounds df1/df2 to 2 decimals and F to 3; p-values are unrounded."""
    r = load_fixture("emmeans", fid)[key][ddf]
    jt = fit_for(fid, additive=key.startswith("additive")).joint_tests(ddf=ddf)
    assert list(jt.index) == r["term"]
    np.testing.assert_array_equal(jt["df1"], r["df1"])
    terms = [t != "(confounded)" for t in r["term"]]
    np.testing.assert_allclose(jt["df2"], r["df2"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(jt["f_ratio"][terms], np.array(r["F"])[terms], atol=0.0005 + 1e-9)
    # emmeans computes the confounded row's F from the rounded F values of the others
    np.testing.assert_allclose(jt["f_ratio"], r["F"], rtol=1e-3, atol=0.0005)
    np.testing.assert_allclose(jt["p_value"][terms], np.array(r["p"])[terms], rtol=REL_P, atol=ABS_P)
    if r.get("note"):
        assert [n.strip() for n in r["note"]] == [" ".join(n) for n in jt["note"]]
