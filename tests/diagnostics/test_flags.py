"""Red flags: each one triggered by a constructed data set; clean fits raise none."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.diagnostics import FlagList, RedFlag, check
from lmmjax.diagnostics.flags import numeric_code_columns
from lmmjax.results.estimates import point_estimates
from lmmjax.results.fit import LmerFit

from .helpers import oneway, quiet_fit


def codes(fit):
    return check(fit).codes


def note_codes(fit):
    return [n.code for n in check(fit).notes]


# ---- clean examples ----------------------------------------------------------------------------
def test_sleepstudy_is_clean(sleep_fit):
    flags = check(sleep_fit)
    assert flags == [] and flags.notes == []
    assert str(flags) == "No red flags."
    assert sleep_fit.check() == []


def test_penicillin_is_clean(penicillin_fit):
    flags = check(penicillin_fit)
    assert flags == []
    # Only the soft note: sample has 6 levels.
    assert [n.code for n in flags.notes] == ["few_levels"]
    assert all(n.severity == "note" for n in flags.notes)


def test_pastes_nested_has_no_nesting_flag(pastes_nested_fit):
    assert "implicit_nesting" not in codes(pastes_nested_fit)


# ---- each flag ----------------------------------------------------------------------------------
def test_singular_fit():
    # Between-group mean square below the within-group one: σ̂_b² = 0 exactly.
    fit = quiet_fit("y ~ 1 + (1 | g)", oneway(30, 20, s2g=0.03))
    assert fit.singular
    flags = check(fit)
    assert "singular_fit" in flags.codes
    flag = flags[flags.codes.index("singular_fit")]
    assert "'Intercept' for 'g'" in flag.message and "'||'" not in flag.advice


def test_correlation_boundary():
    rng = np.random.default_rng(3)
    k = 30
    x = np.tile(np.arange(8), k)
    g = np.repeat(np.arange(k), 8)
    u = rng.normal(0, 3, k)
    y = 10 + 2 * x + u[g] * (1 + 0.5 * x) + rng.normal(0, 1, len(x))  # slope ∝ intercept
    fit = quiet_fit("y ~ x + (x | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}))
    flags = check(fit)
    assert "correlation_boundary" in flags.codes
    assert "'||'" in flags[flags.codes.index("correlation_boundary")].advice


def test_tiny_variance():
    # σ̂_b² = 0.055 − 1/20 = 0.005: 0.5% of σ̂² = 1.
    fit = quiet_fit("y ~ 1 + (1 | g)", oneway(30, 20, s2g=0.055))
    assert fit.varcorr.vcov[0] == pytest.approx(0.005, rel=1e-4)
    assert "tiny_variance" in codes(fit) and "singular_fit" not in codes(fit)


def test_few_levels_flag_and_note():
    fit3 = quiet_fit("y ~ 1 + (1 | g)", oneway(3, 20, s2g=1.0))
    assert "few_levels" in codes(fit3)
    fit7 = quiet_fit("y ~ 1 + (1 | g)", oneway(7, 20, s2g=1.0))
    assert "few_levels" not in codes(fit7) and "few_levels" in note_codes(fit7)
    fit12 = quiet_fit("y ~ 1 + (1 | g)", oneway(12, 20, s2g=1.0))
    assert codes(fit12) == [] and note_codes(fit12) == []


def test_imprecise_variance():
    # 6 groups, σ̂_b² = 0.135 − 0.05 = 0.085: SE of σ̂_b above half the estimate.
    fit = quiet_fit("y ~ 1 + (1 | g)", oneway(6, 20, s2g=0.135))
    assert "imprecise_variance" in codes(fit)


def _fit_at(fit, theta, success):
    """The same fit with θ moved away from the optimum (what a failed
    optimisation would leave behind)."""
    est = point_estimates(fit.model, np.asarray(theta, float))
    opt = replace(fit.optsummary, theta=np.asarray(theta, float), success=success, projected_gradient=12.0)
    return LmerFit(model=fit.model, estimates=est, optsummary=opt, formula=fit.formula)


def test_convergence_flags(sleep_fit):
    # Stopped short of the optimum: convergence check failed, large relative gradient.
    moved = _fit_at(sleep_fit, sleep_fit.theta * np.array([1.3, 1.0, 0.8]), success=False)
    c = codes(moved)
    assert "not_converged" in c and "large_gradient" in c
    # A point where the deviance is not convex in θ: Hessian not positive definite.
    saddle = _fit_at(sleep_fit, [0.1, 1.0, 0.1], success=True)
    assert "hessian_not_pd" in codes(saddle)


def test_implicit_nesting_trap_on_pastes(pastes_crossed_fit):
    flags = check(pastes_crossed_fit)
    assert "implicit_nesting" in flags.codes
    flag = flags[flags.codes.index("implicit_nesting")]
    assert "(1 | batch/cask)" in flag.advice and "'cask'" in flag.message


def test_implicit_nesting_not_flagged_for_crossed_single_observations(penicillin_fit):
    assert "implicit_nesting" not in codes(penicillin_fit)


def test_numeric_codes():
    rng = np.random.default_rng(5)
    n = 240
    df = pd.DataFrame({
        "subject": np.repeat([f"p{i}" for i in range(24)], 10),
        "treatment": np.repeat(np.tile([1, 2, 3], 8), 10),  # codes for three arms
        "Days": np.tile(np.arange(10), 24),  # a quantity: never flagged
        "x": rng.integers(1, 5, n),  # neutral name, 4 values: a note
        "dose": rng.choice([0, 1, 2, 4], n),  # quantity-like name: not flagged
    })
    df["y"] = 5 + df.Days + 0.3 * df.dose + rng.normal(0, 1, 24)[np.repeat(np.arange(24), 10)] + rng.normal(0, 1, n)
    fit = quiet_fit("y ~ treatment + Days + x + dose + (1 | subject)", df)
    flags, notes = numeric_code_columns(fit)
    assert [f.message.split("'")[1] for f in flags] == ["treatment"]
    assert [f.message.split("'")[1] for f in notes] == ["x"]
    assert "C(treatment)" in flags[0].advice
    # Written as a category, it is fine.
    fit_c = quiet_fit("y ~ C(treatment) + Days + (1 | subject)", df)
    assert "numeric_codes" not in codes(fit_c)


def test_heteroscedasticity():
    rng = np.random.default_rng(4)
    k = 20
    x = np.tile(np.arange(10), k)
    g = np.repeat(np.arange(k), 10)
    mu = 20 + 5 * x + rng.normal(0, 4, k)[g]
    y = mu * np.exp(rng.normal(0, 0.25, len(x)))  # spread grows with the mean
    fit = quiet_fit("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}))
    flags = check(fit)
    assert "heteroscedasticity" in flags.codes
    assert "grows" in flags[flags.codes.index("heteroscedasticity")].message
    # On the log scale the spread is constant.
    fit_log = quiet_fit("np.log(y) ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}))
    assert "heteroscedasticity" not in codes(fit_log)


def test_red_flag_objects():
    flag = RedFlag("singular_fit", "The fit is singular.", "Simplify.")
    assert flag.severity == "warning"
    assert str(flag).startswith("Red flag [singular_fit]: The fit is singular.")
    assert "What to do: Simplify." in str(flag)
    with pytest.raises(Exception):
        flag.code = "other"  # frozen
    flags = FlagList([flag], notes=[RedFlag("few_levels", "m", "a", "note")])
    assert isinstance(flags, list) and flags.codes == ["singular_fit"]
    assert "Note [few_levels]" in str(flags) and "<li>" in flags._repr_html_()


def test_numeric_codes_in_a_column_named_like_a_contrast():
    """A column 'Treatment' (formulaic's name for treatment contrasts) is still a data column."""
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"subject": np.repeat([f"p{i}" for i in range(24)], 10),
                       "Treatment": np.repeat(np.tile([1, 2, 3], 8), 10), "Days": np.tile(np.arange(10), 24)})
    df["y"] = 5 + df.Days + rng.normal(0, 1, 240)
    flags, _ = numeric_code_columns(quiet_fit("y ~ Treatment + Days + (1 | subject)", df))
    assert [f.message.split("'")[1] for f in flags] == ["Treatment"]
    flags, _ = numeric_code_columns(quiet_fit("y ~ factor(Treatment) + Days + (1 | subject)", df))
    assert flags == []
