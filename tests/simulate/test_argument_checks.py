"""Public-API arguments: types, ranges and whole counts give a clear ModelSpecError (issue 10)."""
import numpy as np
import pytest

import lmmjax as lmm


@pytest.mark.parametrize("reml, shown", [
    ("False", "the string 'False'"), ("no", "the string 'no'"), ("ML", "the string 'ML'"),
    (None, "None"), (0, "0"), (1.0, "1"),
])
def test_reml_must_be_a_bool(sleep_data, reml, shown):
    with pytest.raises(lmm.ModelSpecError, match=rf"^reml must be True or False, not {shown}\.$"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep_data, reml=reml)


def test_numpy_bool_is_a_bool(sleep_data):
    fit = lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep_data, reml=np.bool_(False))
    assert fit.reml is False


@pytest.mark.parametrize("call", ["refit", "refit_many"])
@pytest.mark.parametrize("reml", ["False", "ML", 0])
def test_refit_reml_must_be_a_bool_or_none(sleep_fit, call, reml):
    with pytest.raises(lmm.ModelSpecError, match=r"reml must be True or False"):
        if call == "refit":
            sleep_fit.refit(reml=reml)
        else:
            sleep_fit.refit_many(sleep_fit.simulate(2).T, reml=reml)


@pytest.mark.parametrize("n, message", [
    (2.7, "n must be a whole number, not 2.7."),
    (None, "n must be a whole number, not None."),
    ("100", "n must be a whole number, not the string '100'."),
    (0, "n must be at least 1, not 0."),
    (-5, "n must be at least 1, not -5."),
    (True, "n must be a whole number, not True."),
    (np.inf, "n must be a whole number, not inf."),
])
@pytest.mark.parametrize("method", ["bootstrap", "simulate"])
def test_counts(sleep_fit, method, n, message):
    with pytest.raises(lmm.ModelSpecError) as info:
        getattr(sleep_fit, method)(n)
    assert str(info.value) == message


def test_whole_float_counts_pass(sleep_fit):
    assert sleep_fit.simulate(3.0, seed=1).shape == (3, sleep_fit.nobs)
    np.testing.assert_array_equal(sleep_fit.simulate(3.0, seed=1), sleep_fit.simulate(3, seed=1))


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), "seed must be at least 0, not -1."),
    (dict(seed=1.5), "seed must be a whole number, not 1.5."),
    (dict(use_u="yes"), "use_u must be True or False, not the string 'yes'."),
    (dict(batch_size=0), "batch_size must be at least 1, not 0."),
])
def test_bootstrap_other_arguments(sleep_fit, kwargs, message):
    with pytest.raises(lmm.ModelSpecError) as info:
        sleep_fit.bootstrap(10, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("kwargs, message", [
    (dict(nsim=0), "nsim must be at least 1, not 0."),
    (dict(nsim=2.5), "nsim must be a whole number, not 2.5."),
    (dict(nsim=None), "nsim must be a whole number, not None."),
    (dict(nsim=10, alpha=1.5), "alpha must be between 0 and 1, not 1.5."),
    (dict(nsim=10, alpha="0.05"), "alpha must be between 0 and 1, not the string '0.05'."),
    (dict(nsim=10, seed=-3), "seed must be at least 0, not -3."),
    (dict(nsim=10, reml="ML"), "reml must be True or False, not the string 'ML'."),
    (dict(nsim=10, level=95), "level must be between 0 and 1, not 95."),
])
def test_power_arguments(sleep_fit, kwargs, message):
    with pytest.raises(lmm.ModelSpecError) as info:
        lmm.power(sleep_fit, test="Days", progress=False, **kwargs)
    assert str(info.value) == message


def test_power_curve_arguments(sleep_fit):
    with pytest.raises(lmm.ModelSpecError, match=r"^nsim must be at least 1, not 0\.$"):
        lmm.power_curve(sleep_fit, along="Subject", sizes=[5, 10], test="Days", nsim=0, progress=False)
    with pytest.raises(lmm.ModelSpecError, match=r"^each of sizes must be a whole number, not 7.5\.$"):
        lmm.power_curve(sleep_fit, along="Subject", sizes=[5, 7.5], test="Days", nsim=10, progress=False)


# ---- refit with an unusable response ---------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda y: np.where(np.arange(y.size) == 3, np.nan, y), "y cannot be fitted: 1 missing (NaN) or infinite value(s)."),
    (lambda y: np.where(np.arange(y.size) < 2, np.inf, y), "y cannot be fitted: 2 missing (NaN) or infinite value(s)."),
    (lambda y: np.full_like(y, 7.0), "y cannot be fitted: constant response (every value the same)."),
    (lambda y: y[:-1], "y must have one value per observation the fit used (180); got shape (179,)."),
    (lambda y: np.column_stack([y, y]), "y must have one value per observation the fit used (180); got shape (180, 2)."),
    (lambda y: ["a"] * y.size, "y must be numeric (one value per observation)."),
])
def test_refit_with_unusable_response(sleep_fit, change, message):
    with pytest.raises(lmm.ModelSpecError) as info:
        sleep_fit.refit(y=change(sleep_fit.model.y.copy()))
    assert str(info.value) == message


def test_refit_accepts_a_column_vector(sleep_fit):
    y = sleep_fit.simulate(1, seed=4)[0]
    a, b = sleep_fit.refit(y=y), sleep_fit.refit(y=y[:, None])
    assert a.loglik == b.loglik


@pytest.mark.parametrize("refit", ["False", None, 0])
def test_anova_refit_must_be_a_bool(sleep_data, sleep_fit, refit):
    m0 = lmm.lmer("Reaction ~ Days + (1 | Subject)", sleep_data)
    with pytest.raises(lmm.ModelSpecError, match=r"^refit must be True or False"):
        lmm.anova(m0, sleep_fit, refit=refit)


@pytest.mark.parametrize("level, shown", [("0.95", "the string '0.95'"), (95, "95"), (None, "None")])
def test_interval_levels(sleep_fit, sleep_boot, level, shown):
    with pytest.raises(lmm.ModelSpecError, match=rf"^level must be between 0 and 1, not {shown}\.$"):
        sleep_fit.confint(level=level)
    with pytest.raises(lmm.ModelSpecError, match=rf"^level must be between 0 and 1, not {shown}\.$"):
        sleep_boot.ci(level=level)
