"""lmmjax.families against R's stats::binomial()/poisson() (fixtures/families/families.json)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.families import Binomial, Family, Poisson, get_family

from .reference_data import load_fixture

REF = load_fixture("families", "families")["families"]
IDS = [f"{r['family']}-{r['link']}" for r in REF]


def family_of(ref) -> Family:
    return get_family(ref["family"]) if ref["link"] in ("logit", "log") else Binomial(link=ref["link"])


def arr(x):
    return np.asarray(x, dtype=float)


@pytest.mark.parametrize("ref", REF, ids=IDS)
def test_link_functions_match_r_including_clipped_tails(ref):
    fam = family_of(ref)
    assert (fam.name, fam.link) == (ref["family"], ref["link"])
    eta, mu = arr(ref["eta"]), arr(ref["mu"])
    np.testing.assert_allclose(fam.linkinv(jnp.asarray(eta)), arr(ref["linkinv"]), rtol=1e-13, atol=0)
    np.testing.assert_allclose(fam.mu_eta(jnp.asarray(eta)), arr(ref["mu_eta"]), rtol=1e-12, atol=0)
    # R's cloglog linkfun log(-log(1 - mu)) loses digits for tiny mu: ours matches log1p's version
    linkfun = arr(ref.get("linkfun_log1p") or ref["linkfun"])
    np.testing.assert_allclose(fam.linkfun(jnp.asarray(mu)), linkfun, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fam.linkfun(jnp.asarray(mu)), arr(ref["linkfun"]), rtol=1e-6)
    np.testing.assert_allclose(fam.variance(jnp.asarray(mu)), arr(ref["variance"]), rtol=1e-14)


@pytest.mark.parametrize("ref", REF, ids=IDS)
def test_deviance_loglik_and_start_match_r(ref):
    fam = family_of(ref)
    y, mu, wt = (jnp.asarray(arr(ref["rows"][k])) for k in ("y", "mu", "wt"))
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt), arr(ref["dev_resids"]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fam.loglik_rows(y, mu, wt), arr(ref["loglik_rows"]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fam.initialize(y, wt), arr(ref["initialize"]), rtol=1e-15)


@pytest.mark.parametrize("ref", REF, ids=IDS)
def test_functions_trace_under_jit_and_give_finite_gradients_in_the_tails(ref):
    fam = family_of(ref)
    eta = jnp.asarray(arr(ref["eta"]))
    mu = jax.jit(fam.linkinv)(eta)
    assert np.all(np.isfinite(mu)) and np.all(np.asarray(mu) > 0)
    y, wt = jnp.asarray(arr(ref["rows"]["y"])), jnp.asarray(arr(ref["rows"]["wt"]))
    mu_rows = jnp.asarray(arr(ref["rows"]["mu"]))
    grad_dev = jax.grad(lambda m: fam.dev_resids(y, m, wt).sum())(mu_rows)
    grad_ll = jax.grad(lambda m: fam.loglik_rows(y, m, wt).sum())(mu_rows)
    assert np.all(np.isfinite(grad_dev)) and np.all(np.isfinite(grad_ll))
    # the deviance is -2 x (loglik - saturated loglik): same derivative in mu up to -2
    np.testing.assert_allclose(grad_dev, -2.0 * np.asarray(grad_ll), rtol=1e-9, atol=1e-9)
    grad_inv = jax.vmap(jax.grad(fam.linkinv))(eta)
    assert np.all(np.isfinite(grad_inv))


def test_mu_eta_is_the_derivative_of_linkinv_inside_the_clipping():
    eta = jnp.linspace(-3.0, 3.0, 25)  # cloglog's mu is clipped at 1 - eps from eta ~ 3.6 on
    for fam in (Binomial("logit"), Binomial("probit"), Binomial("cloglog"), Poisson()):
        np.testing.assert_allclose(jax.vmap(jax.grad(fam.linkinv))(eta), fam.mu_eta(eta), rtol=1e-7)
        np.testing.assert_allclose(fam.linkfun(fam.linkinv(eta)), eta, rtol=1e-9, atol=1e-9)


def test_get_family_accepts_names_and_objects_and_families_compare_equal():
    assert get_family("binomial") == Binomial() == Binomial("logit")
    assert get_family(" Poisson ") == Poisson()
    probit = Binomial(link="probit")
    assert get_family(probit) is probit and probit != Binomial()
    assert hash(Binomial("cloglog")) == hash(Binomial("cloglog"))
    assert repr(probit) == "Binomial(link='probit')"
    assert lmm.families.Poisson is Poisson


@pytest.mark.parametrize("call, words", [
    (lambda: get_family("gamma"), ["unknown family 'gamma'", "binomial", "poisson"]),
    (lambda: get_family(None), ["unknown family None"]),
    (lambda: Binomial(link="log"), ["unknown link 'log'", "binomial", "logit, probit, cloglog"]),
    (lambda: Poisson(link="identity"), ["unknown link 'identity'", "poisson"]),
])
def test_unknown_family_or_link_is_a_model_spec_error_naming_it(call, words):
    with pytest.raises(lmm.ModelSpecError) as err:
        call()
    for w in words:
        assert w in str(err.value)
