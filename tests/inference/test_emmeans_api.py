"""Marginal means beyond the R goldens: invariants, bootstrap intervals, printing, plots, report,
and bad input (error class and words)."""
from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.errors import DataWarning, ModelSpecError
from lmmjax.simulate.bootstrap import BootstrapResult

matplotlib.use("Agg")
_FITS: dict = {}


def fit(formula: str, data: str = "cake"):
    if formula not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[formula] = lmm.lmer(formula, lmm.datasets.load(data))
    return _FITS[formula]


INTER = "angle ~ recipe * temperature + (1 | recipe:replicate)"
COVAR = "angle ~ recipe * temp + (1 | recipe:replicate)"
QUAD = "angle ~ recipe * temp + I(temp^2) + (1 | recipe:replicate)"


def quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return f(*args, **kwargs)


# ---- invariants -------------------------------------------------------------------------------
def test_means_are_cell_means_of_a_saturated_model():
    """In a balanced saturated model, each mean is the average of its cells' fitted fixed parts."""
    m = fit(INTER)
    df = m.model.frame.data
    em = m.emmeans("recipe", by="temperature")
    cells = df.assign(mu=m.model.X @ m.fixef.to_numpy()).groupby(["temperature", "recipe"], observed=True)["mu"].mean()
    for _, row in em.table.iterrows():
        assert row.emmean == pytest.approx(cells[(row.temperature, row.recipe)], rel=1e-12)
    marginal = quiet(m.emmeans, "recipe")
    assert np.allclose(marginal["emmean"], em.table.groupby("recipe", observed=True)["emmean"].mean(), rtol=1e-12)


def test_proportional_weights_follow_the_data():
    """weights='proportional' averages over temperature with its marginal counts (unbalanced data)."""
    data = lmm.datasets.load("cake")
    data = data.drop(index=data.index[(data.recipe == "C") & (data.temperature.isin(["175", "185"]))][:10])
    m = quiet(lmm.lmer, "angle ~ recipe + temperature + (1 | recipe:replicate)", data)
    counts = m.model.frame.data["temperature"].value_counts().reindex(["175", "185", "195", "205", "215", "225"])
    by_temp = m.emmeans("recipe", by="temperature")
    prop = m.emmeans("recipe", weights="proportional")
    eq = m.emmeans("recipe")
    for recipe in ["A", "B", "C"]:
        sub = by_temp.table[by_temp.table.recipe == recipe]
        w = counts.to_numpy(float)
        expect = float(np.sum(w * sub.emmean.to_numpy()) / w.sum())
        assert float(prop.table.loc[prop.table.recipe == recipe, "emmean"].iloc[0]) == pytest.approx(expect, rel=1e-12)
        assert float(eq.table.loc[eq.table.recipe == recipe, "emmean"].iloc[0]) == pytest.approx(sub.emmean.mean(), rel=1e-12)
    assert not np.allclose(prop["emmean"], eq["emmean"])


def test_trends_are_exact_derivatives():
    m = fit(COVAR)
    b = m.fixef
    tr = m.emtrends("recipe", var="temp")
    expect = [b["temp"], b["temp"] + b["recipe[T.B]:temp"], b["temp"] + b["recipe[T.C]:temp"]]
    np.testing.assert_allclose(tr["temp_trend"], expect, rtol=1e-9)
    mq = fit(QUAD)
    trq = mq.emtrends("recipe", var="temp", at={"temp": 190.0})
    name = [c for c in mq.fixef.index if "temp" in c and "I(" in c][0]
    expect_q = mq.fixef["temp"] + 2 * mq.fixef[name] * 190.0
    assert trq.table.temp_trend.iloc[0] == pytest.approx(expect_q, rel=1e-8)
    # their pairs are differences of slopes
    pr = tr.pairs(adjust="none")
    assert pr.table.estimate.iloc[0] == pytest.approx(expect[0] - expect[1], rel=1e-9)


def test_residual_and_normal_df():
    m = fit(INTER)
    res = quiet(m.emmeans, "recipe", ddf="residual")
    assert np.all(res["df"] == m.nobs - len(m.fixef))
    z = quiet(m.emmeans, "recipe", ddf="normal")
    assert np.all(np.isinf(z["df"]))
    pr = z.pairs(adjust="none")
    from scipy import stats

    np.testing.assert_allclose(pr["p_value"], 2 * stats.norm.sf(np.abs(pr["t_ratio"])), rtol=1e-12)
    assert "asymp.LCL" in str(z) and "z.ratio" in str(pr)


def test_kenward_roger_uses_the_adjusted_covariance():
    m = fit(INTER)
    em = quiet(m.emmeans, "temperature", ddf="kenward-roger")
    from lmmjax.inference.tables import kenward_roger

    L = em.L[:, em.basis.kept]
    np.testing.assert_allclose(em["std_error"], np.sqrt(np.einsum("ij,jk,ik->i", L, kenward_roger(m).vcov_adj, L)),
                               rtol=1e-12)


def test_table_passthrough_and_printing():
    m = fit(INTER)
    em = m.emmeans("recipe", by="temperature")
    assert em["emmean"].shape == (18,) and len(em) == 18
    assert em.emmean.iloc[0] == em.table["emmean"].iloc[0]
    assert isinstance(em.loc[0], pd.Series)
    text = str(em)
    assert "temperature = 175:" in text and "lower.CL" in text and "Degrees-of-freedom method: satterthwaite" in text
    pr = em.pairs()
    assert "P value adjustment: tukey method for comparing a family of 3 estimates" in str(pr)
    assert list(pr["contrast"][:3]) == ["A - B", "A - C", "B - C"]
    assert list(em.pairs(reverse=True)["contrast"][:3]) == ["B - A", "C - A", "C - B"]
    assert "<table" in em._repr_html_()


def test_non_estimable_means_warn_and_print_nonest():
    data = lmm.datasets.load("cake")
    data = data[~((data.recipe == "C") & (data.temperature == "225"))]
    m = quiet(lmm.lmer, INTER, data)
    with pytest.warns(DataWarning, match="not estimable.*recipe=C temperature=225"):
        em = m.emmeans("recipe", by="temperature")
    assert np.isnan(em.table.emmean.iloc[-1]) and np.isfinite(em.table.emmean.iloc[-2])
    assert "nonEst" in str(em)
    # a difference of two estimable means at 225 is estimable, one involving C is not
    pr = em.pairs(adjust="none").table
    at225 = pr[pr.temperature == "225"]
    assert np.isfinite(at225.estimate.iloc[0]) and np.isnan(at225.estimate.iloc[1])


def test_interaction_warning_words():
    m = fit(INTER)
    with pytest.warns(DataWarning, match="misleading due to involvement in interactions.*recipe:temperature"):
        m.emmeans("recipe")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        m.emmeans("recipe", by="temperature")  # nothing averaged over: no warning


def test_contrast_and_tukey_on_custom_contrasts():
    m = fit(INTER)
    em = quiet(m.emmeans, "recipe")
    con = em.contrast({"C vs A+B": [-0.5, -0.5, 1], "A - B": [1, -1, 0]}, adjust="tukey")
    assert set(con.used.values()) == {"sidak"}  # emmeans: Tukey is for pairwise comparisons only
    p_raw = em.contrast({"C vs A+B": [-0.5, -0.5, 1], "A - B": [1, -1, 0]})["p_value"].to_numpy()
    np.testing.assert_allclose(con["p_value"], 1 - (1 - p_raw) ** 2, rtol=1e-12)


def test_bootstrap_intervals_are_percentiles_of_the_replicates():
    m = fit(INTER)
    em = quiet(m.emmeans, "recipe")
    rng = np.random.default_rng(1)
    beta = m.fixef.to_numpy()
    draws = beta + rng.normal(size=(400, beta.size)) @ np.linalg.cholesky(m.vcov.to_numpy()).T
    reps = pd.DataFrame(draws, columns=m.fixef.index).assign(converged=True, singular=False)
    boot = BootstrapResult(replicates=reps, original=m.fixef.copy(), n=400, seed=1, reml=True, use_u=False,
                           theta=np.zeros((400, 1)), deviance=np.zeros(400), n_iter=np.zeros(400),
                           message=np.array([""] * 400))
    ci = em.ci(method="bootstrap", boot=boot)
    values = draws @ em.L[:, em.basis.kept].T
    np.testing.assert_allclose(ci["lower"], np.quantile(values, 0.025, axis=0), rtol=1e-12)
    np.testing.assert_allclose(ci["upper"], np.quantile(values, 0.975, axis=0), rtol=1e-12)
    pci = em.pairs().ci(method="bootstrap", boot=boot, level=0.9)
    diffs = values[:, 0] - values[:, 1]
    assert pci["lower"].iloc[0] == pytest.approx(np.quantile(diffs, 0.05), rel=1e-12)
    other = BootstrapResult(replicates=reps, original=m.fixef + 1.0, n=400, seed=1, reml=True, use_u=False,
                            theta=np.zeros((400, 1)), deviance=np.zeros(400), n_iter=np.zeros(400),
                            message=np.array([""] * 400))
    with pytest.raises(ModelSpecError, match="not a bootstrap of this fit"):
        em.ci(method="bootstrap", boot=other)
    with pytest.raises(ModelSpecError, match="needs boot="):
        em.ci(method="bootstrap")


def test_plot_draws_one_line_per_level():
    m = fit(INTER)
    fig = m.emmeans("recipe", by="temperature").plot()
    ax = fig.axes[0]
    assert len(ax.get_lines()) >= 6  # six temperatures (plus error-bar artists)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_report_includes_pairs():
    m = fit("strength ~ cask + (1 | batch) + (1 | sample)", "pastes")
    pr = m.emmeans("cask").pairs()
    text = m.report(pairs=pr, width=10_000)
    assert "Pairwise comparisons of the estimated marginal means of cask" in text
    assert "Tukey-adjusted p-values" in text and "a - b" in text and "Satterthwaite" in text
    md = m.report(format="markdown", pairs=[pr])
    assert "a - c" in md
    with pytest.raises(ModelSpecError, match="pairs must be the result of em.pairs"):
        m.report(pairs=pr.table)


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call,words", [
    (lambda m: m.emmeans("Diet"), r"'Diet' is not a variable of the model's fixed part.*recipe"),
    (lambda m: m.emmeans("recipe", by="Time"), r"by: 'Time' is not a variable"),
    (lambda m: m.emmeans("recipe", at={"temperature": ["175", "999"]}), r"'999' is not a level of the factor 'temperature'"),
    (lambda m: m.emmeans("recipe", at={"Diet": 1}), r"at: \['Diet'\] are not variables"),
    (lambda m: m.emmeans("recipe", weights="cell"), r"Unknown weights 'cell'"),
    (lambda m: m.emmeans("recipe", ddf="exact"), r"Unknown ddf 'exact'"),
    (lambda m: m.emmeans("recipe", level=95), r"level must be between 0 and 1, not 95"),
    (lambda m: m.emmeans([]), r"name at least one variable"),
    (lambda m: m.emmeans("recipe").pairs(adjust="scheffe"), r"Unknown adjust 'scheffe'"),
    (lambda m: m.emmeans("recipe").pairs(adjust="mvt"), r"'mvt' \(multivariate t\) is not available"),
    (lambda m: m.emmeans("recipe").contrast({"bad": [1, -1]}), r"Contrast 'bad' has 2 coefficients but there are 3 means"),
    (lambda m: m.emmeans("recipe").contrast([1, -1, 0]), r"contrasts must be a non-empty dict"),
    (lambda m: m.emmeans("recipe").ci(method="profile"), r"Unknown interval method 'profile'"),
    (lambda m: m.emtrends("recipe", var="temperature"), r"'temperature' is a factor; emtrends needs a numeric covariate"),
    (lambda m: m.emtrends("recipe", var="Time"), r"var: 'Time' is not a variable"),
])
def test_bad_input(call, words):
    m = fit(INTER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(ModelSpecError, match=words):
            call(m)


def test_bad_covariate_values():
    m = fit(COVAR)
    with pytest.raises(ModelSpecError, match="values for the covariate 'temp' must be numbers"):
        quiet(m.emmeans, "recipe", at={"temp": ["hot"]})
    with pytest.raises(ModelSpecError, match="must be finite numbers"):
        quiet(m.emmeans, "recipe", at={"temp": [np.nan]})



def test_r_style_specs():
    m = fit(INTER)
    a = m.emmeans("~ recipe | temperature")
    b = m.emmeans("recipe", by="temperature")
    pd.testing.assert_frame_equal(a.table, b.table)
    c = m.emmeans("recipe * temperature")
    assert list(c.table.columns[:2]) == ["recipe", "temperature"] and len(c) == 18
    with pytest.raises(ModelSpecError, match="left-hand side"):
        m.emmeans("pairwise ~ recipe")
