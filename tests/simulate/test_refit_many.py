"""fit.refit_many: one design, many responses."""
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.simulate import fit_batch

N = 64  # the chunk shape shared with test_fit_batch


@pytest.fixture(scope="module")
def outcomes(sleep_fit):
    Y = sleep_fit.simulate(N, seed=21).T  # nobs × responses
    return pd.DataFrame(Y, columns=[f"gene{i}" for i in range(N)], index=sleep_fit.model.frame.rows)


def test_wide_table(sleep_fit, outcomes):
    table = sleep_fit.refit_many(outcomes, batch_size=N)
    assert list(table.index) == list(outcomes.columns) and table.index.name == "response"
    expected = list(sleep_fit.fixef.index) + list(sleep_fit.sdcor.index) + [
        "loglik", "deviance", "converged", "singular", "n_iter", "problem"]
    assert list(table.columns) == expected
    res = fit_batch(sleep_fit.model, outcomes.to_numpy().T, theta0=sleep_fit.theta, batch_size=N)
    np.testing.assert_array_equal(table[list(sleep_fit.fixef.index)].to_numpy(), res["beta"])
    np.testing.assert_array_equal(table["deviance"].to_numpy(), res["deviance"])
    np.testing.assert_allclose(table["loglik"], -0.5 * res["deviance"])
    # one response as a standalone fit
    ref = sleep_fit.refit(y=outcomes["gene5"].to_numpy())
    np.testing.assert_allclose(table.loc["gene5", "sigma"], ref.sigma, rtol=1e-6)
    np.testing.assert_allclose(table.loc["gene5", "loglik"], ref.loglik, rtol=1e-10)
    # a plain array (columns = responses) gives the same numbers
    arr = sleep_fit.refit_many(outcomes.to_numpy(), batch_size=N)
    np.testing.assert_array_equal(arr.to_numpy(), table.to_numpy())
    assert arr.index[0] == "y0"


def test_long_table_and_missing_response(sleep_fit, outcomes):
    Y = outcomes.copy()
    Y.iloc[4, 2] = np.nan
    long = sleep_fit.refit_many(Y, format="long", batch_size=N)
    n_par = len(sleep_fit.fixef) + len(sleep_fit.sdcor)
    assert len(long) == N * n_par
    assert list(long.columns) == ["response", "term", "estimate", "std_error", "converged", "singular", "problem"]
    bad = long[long.response == "gene2"]
    assert not bad.converged.any() and bad.estimate.isna().all()
    assert (bad.problem == "1 missing (NaN) or infinite value(s)").all()
    good = long[(long.response == "gene3") & (long.term == "Days")].iloc[0]
    ref = sleep_fit.refit(y=outcomes["gene3"].to_numpy())
    np.testing.assert_allclose(good.estimate, ref.fixef["Days"], rtol=1e-6)
    np.testing.assert_allclose(good.std_error, np.sqrt(ref.vcov.loc["Days", "Days"]), rtol=1e-5)
    assert long[long.response != "gene2"].converged.all()


def test_alignment_and_errors(sleep_fit, outcomes):
    # extra rows (e.g. the full data frame) are aligned on the rows the fit used
    padded = pd.concat([outcomes, outcomes.iloc[:3].set_axis([10_001, 10_002, 10_003])])
    a = sleep_fit.refit_many(padded.iloc[::-1], batch_size=N)
    b = sleep_fit.refit_many(outcomes, batch_size=N)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(lmm.ModelSpecError):
        sleep_fit.refit_many(np.zeros((10, 3)))
    with pytest.raises(lmm.ModelSpecError):
        sleep_fit.refit_many(outcomes, format="tall")
    with pytest.raises(lmm.ModelSpecError, match=r"column\(s\) \['label'\] are not numeric"):
        sleep_fit.refit_many(outcomes.assign(label="x"))
    with pytest.raises(lmm.ModelSpecError, match=r"must be a numeric array"):
        sleep_fit.refit_many([["a"] * 3] * sleep_fit.nobs)


@pytest.mark.parametrize("value, problem", [
    (np.nan, "1 missing (NaN) or infinite value(s)"),
    (np.inf, "1 missing (NaN) or infinite value(s)"),
    (-np.inf, "1 missing (NaN) or infinite value(s)"),
    ("constant", "constant response (every value the same)"),
])
def test_unusable_response_is_a_flagged_failed_row(sleep_fit, outcomes, value, problem):
    Y = outcomes.copy()
    if value == "constant":
        Y["gene7"] = 250.0
    else:
        Y.iloc[11, 7] = value
    table = sleep_fit.refit_many(Y, batch_size=N)
    failed = table.loc["gene7"]
    assert failed["problem"] == problem and not failed["converged"] and not failed["singular"]
    numeric = list(sleep_fit.fixef.index) + list(sleep_fit.sdcor.index) + ["loglik", "deviance"]
    assert failed[numeric].isna().all()
    others = table.drop(index="gene7")
    assert (others["problem"] == "").all() and others["converged"].all()
    clean = sleep_fit.refit_many(outcomes, batch_size=N).drop(index="gene7")
    np.testing.assert_allclose(others[numeric].to_numpy(float), clean[numeric].to_numpy(float), rtol=1e-12)
