"""lmm.power on small runs: statistics equal single fits, bookkeeping, seeds, errors."""

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.errors import ModelSpecError
from lmmjax.powersim import PowerResult, clopper_pearson, crossed, repeated_measures
from lmmjax.powersim.parameters import Truth
from lmmjax.powersim.responses import simulate_responses

FORMULA = "Reaction ~ Days + (Days | Subject)"
# Sleepstudy runs use chunks of 1,000 simulations, as test_power_reference.py: one
# compilation per structure serves every test (compiling dominates a small run).
N = 1000
RM_FORMULA = "y ~ Time + group + (1 | Subject)"  # also in test_curve.py: shares compiled code


def _simulated_data(fit, fixef, nsim, seed):
    truth = Truth(pd.Series({**fit.fixef.to_dict(), **fixef}), fit.theta, fit.sigma)
    Y = simulate_responses(fit.model, truth, np.arange(nsim), seed=seed)
    data = fit.model.frame.data.copy()
    for y in Y:
        data["Reaction"] = y
        yield data.copy()


def test_lrt_statistics_equal_anova_of_two_ml_fits(sleep_fit):
    res = lmm.power(sleep_fit, "Days", "lrt", fixef={"Days": 2}, nsim=N, seed=11, progress=False)
    assert isinstance(res, PowerResult) and res.nsim == N and res.method == "lrt"
    for i, data in enumerate(_simulated_data(sleep_fit, {"Days": 2}, 3, 11)):
        f1 = lmm.lmer(FORMULA, data, reml=False)
        f0 = lmm.lmer("Reaction ~ 1 + (Days | Subject)", data, reml=False)
        row = res.simulations.iloc[i]
        assert row["deviance_h1"] == pytest.approx(f1.deviance, rel=1e-8)
        assert row["deviance_h0"] == pytest.approx(f0.deviance, rel=1e-8)
        chisq = lmm.anova(f0, f1)["chisq"].iloc[-1]
        assert row["statistic"] == pytest.approx(chisq, rel=1e-5, abs=1e-6)
        assert row["Days"] == pytest.approx(f1.fixef["Days"], rel=1e-6)


def test_wald_statistics_equal_coef_table_normal(sleep_fit):
    res = lmm.power(sleep_fit, "Days", "wald", fixef={"Days": 2}, nsim=N, seed=2, progress=False)
    for i, data in enumerate(_simulated_data(sleep_fit, {"Days": 2}, 3, 2)):
        ct = lmm.lmer(FORMULA, data).coef_table("normal").loc["Days"]
        row = res.simulations.iloc[i]
        assert row["statistic"] == pytest.approx(ct["t_value"], rel=1e-5)
        assert row["std_error"] == pytest.approx(ct["std_error"], rel=1e-5)
        assert row["p_value"] == pytest.approx(ct["p_value"], rel=1e-4)


def test_result_bookkeeping_and_seed_reproducibility(sleep_fit):
    kw = dict(fixef={"Days": 3}, seed=5, progress=False)
    b = lmm.power(sleep_fit, "Days", "wald", nsim=1200, batch_size=N, **kw)  # two chunks, the last padded
    a = lmm.power(sleep_fit, "Days", "wald", nsim=N, **kw)
    pd.testing.assert_frame_equal(b.simulations.iloc[:N], a.simulations, rtol=1e-10)
    # with the fit's own parameters, simulation i refits fit.simulate(n, seed)[i]
    own = lmm.power(sleep_fit, "Days", "wald", nsim=N, seed=5, progress=False)
    Y = sleep_fit.simulate(4, seed=5)
    data = sleep_fit.model.frame.data.copy()
    data["Reaction"] = Y[3]
    assert own.simulations["Days"].iloc[3] == pytest.approx(lmm.lmer(FORMULA, data).fixef["Days"], rel=1e-6)
    sims = a.simulations
    assert list(sims.columns[:6]) == ["sim", "Days", "std_error", "statistic", "df", "p_value"]
    assert a.n_significant == int(sims["significant"].sum())
    assert a.power == pytest.approx(a.n_significant / (a.nsim - a.n_failed))
    assert a.ci == clopper_pearson(a.n_significant, a.nsim - a.n_failed)
    assert a.n_singular == int(sims["singular"].sum())
    assert a.parameters["fixef"]["Days"] == 3
    assert a.nobs == 180 and a.ngroups == {"Subject": 18}
    text = str(a)
    assert "Clopper-Pearson" in text and "Power for Days" in text
    assert "PowerResult" in repr(a)


def test_clopper_pearson_matches_r_binom_test():
    # R 4.2: binom.test(868, 1000)$conf.int, binom.test(0, 20), binom.test(3, 7)
    assert clopper_pearson(868, 1000) == pytest.approx((0.8454345534, 0.8883719870), abs=1e-9)
    assert clopper_pearson(0, 20) == pytest.approx((0.0, 0.168433471), abs=1e-9)
    assert clopper_pearson(3, 7) == pytest.approx((0.09898827844, 0.81594843236), abs=1e-9)
    assert clopper_pearson(20, 20)[1] == 1.0


def test_from_scratch_crossed_design_lrt_of_a_factor():
    d = crossed(12, 10, within={"cond": ["A", "B", "C"]})
    res = lmm.power(d, "cond", "lrt", formula="y ~ cond + (1 | Subject) + (1 | Item)",
                    fixef={"Intercept": 10, "cond[T.B]": 0.5, "cond[T.C]": 1.0},
                    varcorr={"Subject": 1.0, "Item": 0.5}, sigma=1.0, nsim=4, seed=0, progress=False)
    assert res.test == ("cond[T.B]", "cond[T.C]") and res.ngroups == {"Subject": 12, "Item": 10}
    sims = res.simulations
    assert (sims["df"] == 2).all() and (sims["statistic"] > 0).all()
    assert res.power == 1.0  # a strong effect on 120 rows: every simulation rejects


def test_joint_wald_chisq():
    from lmmjax.powersim.hypotheses import Hypothesis, wald_statistics

    hyp = Hypothesis(columns=("a", "b"), index=(1, 2), label="f")
    beta = np.array([[9.0, 1.0, 2.0]])
    V = np.array([[[9.0, 0, 0], [0, 0.5, 0.1], [0, 0.1, 0.25]]])
    out = wald_statistics(beta, V, hyp)
    S = V[0][1:, 1:]
    expected = beta[0, 1:] @ np.linalg.solve(S, beta[0, 1:])
    assert out["statistic"][0] == pytest.approx(expected)
    assert out["df"][0] == 2
    from scipy import stats
    assert out["p_value"][0] == pytest.approx(stats.chi2.sf(expected, 2))


def test_satterthwaite_f_test_of_a_between_subject_factor():
    d = repeated_measures(12, times=4, between={"group": ["a", "b", "c"]})
    res = lmm.power(d, "group", "satterthwaite", formula=RM_FORMULA,
                    fixef={"group[T.b]": 0.0, "group[T.c]": 0.0}, varcorr={"Subject": 1.0},
                    sigma=1.0, nsim=4, seed=0, progress=False)
    sims = res.simulations
    assert {"statistic", "df", "ddf", "p_value"} <= set(sims.columns)
    # between-subject contrast with balanced groups: ddf = subjects - groups = 9
    assert (sims["df"] == 2).all()
    np.testing.assert_allclose(sims["ddf"], 9.0, rtol=1e-4)


def test_errors(sleep_fit):
    with pytest.raises(ModelSpecError, match="ML"):
        lmm.power(sleep_fit, "Days", "lrt", reml=True, nsim=2)
    with pytest.raises(ModelSpecError, match="Unknown test method"):
        lmm.power(sleep_fit, "Days", "anova", nsim=2)
    with pytest.raises(ModelSpecError, match="Cannot test 'Dayz'"):
        lmm.power(sleep_fit, "Dayz", nsim=2)
    with pytest.raises(ModelSpecError, match="formula"):
        lmm.power(lmm.datasets.load("sleepstudy"), "Days", nsim=2)
    with pytest.raises(ModelSpecError, match="from the design"):
        lmm.power(sleep_fit, "Days", formula="Reaction ~ Days + (1 | Subject)", nsim=2)
    with pytest.raises(ModelSpecError, match="nsim"):
        lmm.power(sleep_fit, "Days", nsim=0)
