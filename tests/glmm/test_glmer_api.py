"""glmer's accessors, methods and input checks on the cbpp fit (values against lme4 where R gives them)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.errors import ModelSpecError
from lmmjax.glmer import refit_glmm

from .test_glmer_golden import fitted


@pytest.fixture(scope="module")
def cbpp_fit():
    return fitted("cbpp_agg")


def test_accessors_follow_lme4(cbpp_fit):
    fit, ref = cbpp_fit
    assert isinstance(fit, lmm.GlmerFit)
    assert not hasattr(fit, "sigma")
    assert fit.family.name == "binomial" and fit.family.link == "logit"
    assert fit.ngroups == ref["ngroups"]
    assert fit.bic == pytest.approx(ref["bic"], abs=1e-4)
    assert not fit.singular
    assert list(fit.varcorr.columns) == ["group", "term1", "term2", "vcov", "sdcor"]
    assert fit.varcorr.vcov.iloc[0] == pytest.approx(ref["varcorr"][0]["vcov"], rel=1e-5)


def test_coef_table_and_wald_intervals(cbpp_fit):
    fit, ref = cbpp_fit
    ct = fit.coef_table()
    assert list(ct.columns) == ["estimate", "std_error", "z_value", "p_value"]
    np.testing.assert_allclose(ct.z_value, np.asarray(ref["fixef"]) / np.asarray(ref["se"]), rtol=1e-3)
    ci = fit.confint()
    z = 1.959963984540054
    np.testing.assert_allclose(ci.lower.iloc[:4], ct.estimate - z * ct.std_error, rtol=1e-12)
    assert ci.index[-1] == "sd(Intercept|herd)" and np.isnan(ci.lower.iloc[-1])
    with pytest.raises(ModelSpecError, match="wald"):
        fit.confint(method="nonsense")


def test_summary_prints_like_lme4(cbpp_fit):
    fit, _ = cbpp_fit
    text = str(fit.summary())
    assert "Laplace Approximation" in text and "Family: binomial  ( logit )" in text
    assert "z value" in text and "Pr(>|z|)" in text and "herd" in text


def test_predict_newdata_and_new_levels(cbpp_fit):
    fit, _ = cbpp_fit
    new = pd.DataFrame({"period": ["1", "4"], "herd": ["1", "unseen"]})
    eta = fit.predict(new)
    b = fit.ranef["herd"].iloc[0, 0]
    assert eta[0] == pytest.approx(fit.fixef.iloc[0] + b)
    assert eta[1] == pytest.approx(fit.fixef.iloc[0] + fit.fixef.iloc[3])  # a new herd: random effect 0
    p = fit.predict(new, type="response")
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-eta)))
    with pytest.raises(ModelSpecError, match="type"):
        fit.predict(type="probability")


def test_lrt_of_two_glmer_fits(cbpp_fit):
    fit, _ = cbpp_fit
    fit0 = lmm.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", lmm.datasets.load("cbpp"))
    table = lmm.anova(fit0, fit)
    assert table.loc["m1", "df"] == 3
    assert table.loc["m1", "chisq"] == pytest.approx(2 * (fit.loglik - fit0.loglik))
    assert table.loc["m1", "chisq"] == pytest.approx(25.609938, abs=2e-4)  # lme4 1.1.31 (default control): 25.609938


def test_refit_with_the_same_response_reproduces_the_fit(cbpp_fit):
    fit, _ = cbpp_fit
    again = refit_glmm(fit, fit.model.y)
    assert again.loglik == pytest.approx(fit.loglik, abs=1e-8)
    np.testing.assert_allclose(again.fixef, fit.fixef, rtol=1e-6)


def test_quadrature_needs_a_single_scalar_term():
    ticks = lmm.datasets.load("grouseticks")
    with pytest.raises(ModelSpecError, match="single scalar random-effect term"):
        lmm.glmer("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", ticks, family="poisson", nAGQ=5)
    with pytest.raises(ModelSpecError, match="nAGQ"):
        lmm.glmer("TICKS ~ YEAR + (1 | BROOD)", ticks, family="poisson", nAGQ=-1)


def test_the_fit_reports_each_evaluation_with_its_stage(cbpp_fit, monkeypatch):
    """glmer's progress bar (forced on) names the stage, the evaluation and the deviance."""
    from lmmjax import progress as pg

    fit, ref = cbpp_fit
    monkeypatch.delenv(pg.ENV, raising=False)
    monkeypatch.setattr(pg, "mode", lambda progress: "on")
    notes = []
    note = pg.Progress.note
    monkeypatch.setattr(pg.Progress, "note", lambda self, text: (notes.append(text), note(self, text)))
    again = lmm.glmer(fit.formula, lmm.datasets.load("cbpp"), family="binomial")
    assert again.loglik == pytest.approx(fit.loglik, abs=1e-8)
    stages = [t.split(",")[0] for t in notes]
    k = stages.index("stage 2")
    assert k > 0 and set(stages[:k]) == {"stage 1"} and set(stages[k:]) == {"stage 2"}
    assert [t.split(", ")[1] for t in notes] == [f"evaluation {i}" for i in range(1, len(notes) + 1)]
    assert len(notes) >= again.optsummary.n_evaluations
    stage2 = [float(t.rsplit(" ", 1)[1]) for t in notes[k:]]
    assert all(t.split(", ")[2].startswith("deviance ") for t in notes)
    assert min(stage2) == pytest.approx(-2 * again.loglik, abs=0.006)
