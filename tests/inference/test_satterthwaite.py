"""Satterthwaite t tests against lmerTest's summary (df and p within 1e-3 relative)."""
import numpy as np
import pytest

from tests.inference._helpers import TABLE_IDS, fitted, ref, rel
from tests.reference_data import r_name

COLS = {"estimate": "estimate", "std_error": "se", "df": "df", "t_value": "t", "p_value": "p"}


def check_table(ct, r, rtol_df=1e-3, rtol_p=1e-3):
    assert [r_name(n) for n in ct.index] == r["term"]
    assert list(ct.columns) == ["estimate", "std_error", "df", "t_value", "p_value"]
    np.testing.assert_allclose(ct.estimate, r["estimate"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(ct.std_error, r["se"], rtol=1e-4)
    np.testing.assert_allclose(ct.t_value, r["t"], rtol=1e-4, atol=1e-6)
    assert rel(ct.df, r["df"]) < rtol_df
    assert rel(ct.p_value, r["p"]) < rtol_p


@pytest.mark.parametrize("fid", TABLE_IDS + ["dyestuff2"])
def test_coef_table_matches_lmertest(fid):
    fit = fitted(fid)
    check_table(fit.coef_table(), ref(fid)["coef_satterthwaite"])


def test_ml_fit_uses_ml_deviance():
    r = ref("sleep")
    fit = fitted("sleep", reml=False)
    check_table(fit.coef_table("satterthwaite"), r["coef_satterthwaite_ml"])


@pytest.mark.parametrize("fid", ["sleep_missing", "penicillin"])
def test_exact_derivatives_agree_with_finite_differences(fid):
    """The JAX Hessian/Jacobian are what lmerTest approximates numerically."""
    import jax

    from lmmjax.inference.satterthwaite import covbeta, varpar_deviance
    from lmmjax.inference.tables import satterthwaite

    covbeta = jax.jit(covbeta, static_argnums=2)
    varpar_deviance = jax.jit(varpar_deviance, static_argnums=2)

    fit = fitted(fid)
    info = satterthwaite(fit)
    vp = info.varpar
    m = fit.model
    h = 1e-4 * np.maximum(np.abs(vp), 1.0)
    e = np.eye(len(vp))
    jac_fd = np.stack([(np.asarray(covbeta(vp + h[k] * e[k], m.arrays, m.dims))
                        - np.asarray(covbeta(vp - h[k] * e[k], m.arrays, m.dims))) / (2 * h[k]) for k in range(len(vp))])
    np.testing.assert_allclose(info.jacobian, jac_fd, rtol=1e-5, atol=1e-8 * np.max(np.abs(jac_fd)))
    f = lambda v: float(varpar_deviance(v, m.arrays, m.dims))
    H_fd = np.array([[(f(vp + h[i] * e[i] + h[j] * e[j]) - f(vp + h[i] * e[i] - h[j] * e[j])
                       - f(vp - h[i] * e[i] + h[j] * e[j]) + f(vp - h[i] * e[i] - h[j] * e[j])) / (4 * h[i] * h[j])
                      for j in range(len(vp))] for i in range(len(vp))])
    np.testing.assert_allclose(info.hessian, H_fd, rtol=1e-4, atol=1e-4 * np.max(np.abs(H_fd)))


def test_residual_and_normal_ddf():
    from scipy import stats

    fit = fitted("sleep")
    res = fit.coef_table("residual")
    assert np.all(res.df == fit.nobs - 2)
    np.testing.assert_allclose(res.p_value, 2 * stats.t.sf(np.abs(res.t_value), fit.nobs - 2))
    z = fit.coef_table("normal")
    assert np.all(np.isinf(z.df))
    np.testing.assert_allclose(z.p_value, 2 * stats.norm.sf(np.abs(z.t_value)))
    np.testing.assert_allclose(z.std_error, np.sqrt(np.diag(fit.vcov)))


def test_unknown_ddf_raises():
    import lmmjax as lmm

    with pytest.raises(lmm.ModelSpecError, match="ddf"):
        fitted("sleep").coef_table("containment")


def test_summary_shows_df_and_p():
    fit = fitted("sleep")
    s = fit.summary()
    assert {"df", "p_value"} <= set(s.coefficients.columns)
    text = str(s)
    assert "Pr(>|t|)" in text and "Satterthwaite" in text
