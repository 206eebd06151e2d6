"""Case-deletion influence: exact refits against fitting the reduced data by hand."""
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.diagnostics import cooks_distance, influence
from lmmjax.diagnostics.deletion import deletion_weights
from lmmjax.lmer import fit_model
from lmmjax.model import build_model
from lmmjax.objective.deviance import deviance_jit
from lmmjax.results.estimates import point_estimates

from .helpers import quiet_fit

FORM = "Reaction ~ Days + (Days | Subject)"


def by_hand(formula, data, start):
    """Fit the reduced data from scratch (new model, new cross-products)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_model(build_model(formula, data), formula, theta0=start, warn=False)


def cook(fit, beta):
    d = fit.fixef.to_numpy() - beta
    return float(d @ np.linalg.solve(fit.vcov.to_numpy(), d) / len(d))


def deleted_estimates(model, rows, theta):
    """Estimates at θ with ``rows`` given weight 0."""
    return point_estimates(model.with_weights(deletion_weights(model, [rows])[0]), theta)


def test_no_deletion_reproduces_the_arrays(penicillin_fit, sleep_fit, pastes_nested_fit):
    for fit in (penicillin_fit, sleep_fit, pastes_nested_fit):
        arrays = fit.model.with_weights(deletion_weights(fit.model, [np.array([], dtype=int)])[0]).arrays
        for key, value in fit.model.arrays.items():
            np.testing.assert_allclose(np.asarray(arrays[key], float), np.asarray(value, float), atol=1e-12)


@pytest.mark.parametrize("data, form, column, level", [
    ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "sample", "C"),
    ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "plate", "a"),
    ("pastes", "strength ~ 1 + (1 | batch/cask)", "batch", "B"),
    ("sleepstudy", FORM, "Subject", "309"),
])
def test_zero_weights_equal_the_reduced_data(data, form, column, level):
    """Weight 0 on a level's rows gives the deviance of the data without them, at any θ."""
    df = lmm.datasets.load(data)
    model = build_model(form, df)
    rows = np.nonzero((df[column].astype(str) == level).to_numpy())[0]
    reduced = df[df[column].astype(str) != level].copy()
    reduced[column] = reduced[column].cat.remove_unused_categories()
    small = build_model(form, reduced)
    deleted = model.with_weights(deletion_weights(model, [rows])[0])
    rng = np.random.default_rng(3)
    for _ in range(3):
        theta = np.where(model.layout.diagonal, rng.uniform(0.2, 2, model.layout.size),
                         rng.normal(0, 0.3, model.layout.size))
        np.testing.assert_allclose(float(deviance_jit(theta, deleted.arrays, deleted.dims)),
                                   float(deviance_jit(theta, small.arrays, small.dims)), rtol=1e-11)


def test_exact_group_deletion_equals_refit_by_hand(sleep_unbalanced_fit, sleep_unbalanced_df):
    fit, df = sleep_unbalanced_fit, sleep_unbalanced_df
    infl = influence(fit, group="Subject")
    assert infl.method == "exact" and infl.converged.all()
    for subject in ["308", "309", "332", "350"]:
        reduced = df[df.Subject != subject].copy()
        reduced["Subject"] = reduced["Subject"].cat.remove_unused_categories()
        ref = by_hand(FORM, reduced, fit.theta)
        np.testing.assert_allclose(infl.fixef.loc[subject].to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(infl.cooks_distance[subject], cook(fit, ref.fixef.to_numpy()), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(infl.sdcor.loc[subject].to_numpy(), ref.sdcor.to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(infl.vcov[list(infl.cases).index(subject)], ref.vcov.to_numpy(), rtol=1e-5)
        assert infl.table.loc[subject, "n_obs"] == (df.Subject == subject).sum()


def test_exact_group_deletion_with_lmer_by_hand(sleep_unbalanced_fit, sleep_unbalanced_df):
    """The same against plain lmm.lmer (default start) where it finds the same optimum."""
    fit, df = sleep_unbalanced_fit, sleep_unbalanced_df
    infl = influence(fit, group="Subject")
    subject = "332"
    reduced = df[df.Subject != subject]
    ref = quiet_fit(FORM, reduced)
    assert infl.sdcor.loc[subject, "sigma"] == pytest.approx(ref.sigma, rel=1e-5)
    assert infl.cooks_distance[subject] == pytest.approx(cook(fit, ref.fixef.to_numpy()), rel=1e-6)


def test_group_deletion_crossed_design(penicillin_fit):
    """Deleting a level of the second (dense) block: sample 'C' of Penicillin."""
    fit = penicillin_fit
    df = lmm.datasets.load("penicillin")
    infl = influence(fit, group="sample")
    reduced = df[df["sample"] != "C"].copy()
    reduced["sample"] = reduced["sample"].cat.remove_unused_categories()
    ref = by_hand("diameter ~ 1 + (1 | plate) + (1 | sample)", reduced, fit.theta)
    np.testing.assert_allclose(infl.fixef.loc["C"].to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(infl.sdcor.loc["C"].to_numpy(), ref.sdcor.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(infl.cooks_distance["C"], cook(fit, ref.fixef.to_numpy()), rtol=1e-6)


def test_group_deletion_nested_design(pastes_nested_fit):
    """Nested random effects (batch/cask): delete one batch, and one batch:cask."""
    fit = pastes_nested_fit
    df = lmm.datasets.load("pastes")
    form = "strength ~ 1 + (1 | batch/cask)"
    for group, label, keep in [("batch", "B", df["batch"] != "B"),
                               ("batch:cask", "C:b", ~((df["batch"] == "C") & (df["cask"] == "b")))]:
        infl = influence(fit, group=group)
        reduced = df[keep].copy()
        for col in ("batch", "cask"):
            reduced[col] = reduced[col].cat.remove_unused_categories()
        ref = by_hand(form, reduced, fit.theta)
        np.testing.assert_allclose(infl.fixef.loc[label].to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(infl.sdcor.loc[label].to_numpy(), ref.sdcor.to_numpy(), rtol=1e-5, atol=1e-7)
    approx = influence(fit, group="batch", method="approximate")
    est = deleted_estimates(fit.model, np.nonzero((df["batch"] == "B").to_numpy())[0], fit.theta)
    np.testing.assert_allclose(approx.fixef.loc["B"].to_numpy(), est.beta, rtol=1e-9)


def test_exact_observation_deletion(sleep_unbalanced_fit, sleep_unbalanced_df):
    fit, df = sleep_unbalanced_fit, sleep_unbalanced_df
    infl = influence(fit, level="observation", method="exact")
    assert len(infl.cases) == fit.nobs and infl.converged.all()
    for row in [0, 50]:
        ref = by_hand(FORM, df.drop(index=row), fit.theta)
        np.testing.assert_allclose(infl.fixef.loc[row].to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(infl.sdcor.loc[row].to_numpy(), ref.sdcor.to_numpy(), rtol=1e-5)


def test_approximation_is_exact_at_fixed_theta(sleep_unbalanced_fit):
    """One-step deletion = refit with θ held at θ̂ (β̂, σ̂, cov β̂)."""
    fit = sleep_unbalanced_fit
    model = fit.model
    for level, group in [("observation", None), ("group", "Subject")]:
        infl = influence(fit, level=level, group=group, method="approximate")
        assert infl.method == "approximate"
        labels = list(infl.cases)
        for i in [0, 7]:
            if level == "observation":
                rows = [i]
            else:
                rows = np.nonzero(model.blocks[0].codes == model.blocks[0].levels.index(labels[i]))[0]
            est = deleted_estimates(model, rows, fit.theta)
            np.testing.assert_allclose(infl.fixef.iloc[i].to_numpy(), est.beta, rtol=1e-9)
            np.testing.assert_allclose(infl.sdcor.iloc[i]["sigma"], est.sigma, rtol=1e-9)
            np.testing.assert_allclose(infl.vcov[i], est.sigma ** 2 * est.vcov_unscaled, rtol=1e-8)
        assert infl.sdcor.drop(columns="sigma").isna().all().all()


def test_approximation_close_to_exact(sleep_unbalanced_fit):
    fit = sleep_unbalanced_fit
    exact = influence(fit, group="Subject", method="exact").cooks_distance
    approx = influence(fit, group="Subject", method="approximate").cooks_distance
    assert np.corrcoef(exact, approx)[0, 1] > 0.99
    np.testing.assert_allclose(approx, exact, rtol=0.15, atol=0.005)


def test_auto_method_and_note(sleep_fit):
    infl = influence(sleep_fit, level="observation", max_refits=50)
    assert infl.method == "approximate" and "max_refits=50" in infl.note
    infl = influence(sleep_fit, group="Subject")
    assert infl.method == "exact" and "18 groups" in infl.note
    d = cooks_distance(sleep_fit, group="Subject")
    assert d.index.name == "Subject" and len(d) == 18 and (d >= 0).all()
    assert set(infl.table.columns) >= {"n_obs", "cooks_distance", "covratio", "max_abs_dfbetas", "change sigma"}
    assert infl.top(3).index[0] == d.idxmax()
    assert "Exact deletion" in str(infl)


def test_influence_by_a_data_column():
    """Delete the levels of a column of the model's data that is not itself a
    grouping factor: cake's replicate (the model groups by recipe:replicate)."""
    df = lmm.datasets.load("cake")
    form = "angle ~ recipe + temperature + (1 | recipe:replicate)"
    fit = quiet_fit(form, df)
    infl = influence(fit, group="replicate")
    assert infl.group == "replicate" and len(infl.cases) == df["replicate"].nunique()
    label = infl.cases[3]
    reduced = df[df["replicate"].astype(str) != label]
    ref = by_hand(form, reduced, fit.theta)
    np.testing.assert_allclose(infl.fixef.loc[label].to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)


def test_unestimable_case_gives_nan():
    """Deleting every row of a fixed-effect level leaves it unestimable."""
    rng = np.random.default_rng(2)
    n = 120
    df = pd.DataFrame({
        "g": np.repeat([f"s{i}" for i in range(12)], 10),
        "site": np.repeat(["A", "B", "C"], 40),
        "x": rng.normal(size=n),
    })
    df["y"] = 1 + 0.5 * df.x + rng.normal(0, 0.5, 12)[np.repeat(np.arange(12), 10)] + rng.normal(0, 1, n)
    fit = quiet_fit("y ~ x + site + (1 | g)", df)
    infl = influence(fit, group="site")
    assert list(infl.cases) == ["A", "B", "C"]
    assert infl.fixef.isna().all().all() and infl.cooks_distance.isna().all()
    assert "not estimable" in infl.note


def test_bad_arguments(sleep_fit):
    with pytest.raises(lmm.ModelSpecError):
        influence(sleep_fit, group="nope")
    with pytest.raises(lmm.ModelSpecError):
        influence(sleep_fit, level="cluster")
    with pytest.raises(lmm.ModelSpecError):
        influence(sleep_fit, method="jackknife")
