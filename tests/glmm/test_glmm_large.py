"""The large-data route of a GLMM fit (1e6-row crossed Bernoulli fits) against the default route.

The route is taken from :data:`lmmjax.objective.glmm.LARGE_ROWS` padded rows;
here its pieces run on grouseticks (Poisson, three crossed random intercepts,
403 rows) and must give the default route's answers: the chord PIRLS
(:func:`~lmmjax.objective.glmm.pirls_chord`) the same modes, and forward
differences (``glmm_vcov(large=True)``) the same standard errors within 5e-4
(forward differences with relative step 1e-4: 1.2e-4 seen here).
"""
import jax
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.families import get_family
from lmmjax.fitting.glmm import glmm_data, glmm_vcov
from lmmjax.model import build_model
from lmmjax.objective.glmm import pirls, pirls_chord

FORMULA = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"


@pytest.fixture(scope="module")
def grouse():
    family = get_family("poisson")
    model = build_model(FORMULA, lmm.datasets.load("grouseticks"), reml=False, family=family)
    return model, family, jax.device_put(glmm_data(model))


@pytest.mark.parametrize("joint", [True, False])
def test_chord_pirls_finds_the_same_modes(grouse, joint):
    model, family, data = grouse
    d = model.dims
    q = d.l1 * d.p1 + d.q2
    theta, beta = np.array([0.5, 0.8, 0.3]), np.zeros(d.p)
    run = {name: jax.jit(f, static_argnums=(5, 6, 9)) for name, f in (("plain", pirls), ("chord", pirls_chord))}
    cold = {k: f(theta, beta, np.zeros(q), beta, data, d, family, joint, np.bool_(True)) for k, f in run.items()}
    for out in cold.values():
        assert bool(out[4])
    np.testing.assert_allclose(cold["chord"][0], cold["plain"][0], atol=1e-8)
    np.testing.assert_allclose(cold["chord"][1], cold["plain"][1], atol=1e-8)
    # warm, from the modes at a nearby θ: the kept factor serves, same answer
    u, b = cold["plain"][0], cold["plain"][1]
    warm = {k: f(theta * 1.05, b, u, b, data, d, family, joint, np.bool_(False)) for k, f in run.items()}
    assert bool(warm["chord"][4])
    np.testing.assert_allclose(warm["chord"][0], warm["plain"][0], atol=1e-8)
    assert abs(float(warm["chord"][2]) - float(warm["plain"][2])) <= 1e-9 * abs(float(warm["plain"][2]))


def test_forward_difference_vcov_matches_the_central_one(grouse):
    model, family, data = grouse
    fit = lmm.glmer(FORMULA, lmm.datasets.load("grouseticks"), family="poisson")
    args = (data, model.dims, family, 1, fit.theta, fit.estimates.beta, fit.estimates.u)
    se = {large: np.sqrt(np.diag(glmm_vcov(*args, large=large)[0])) for large in (False, True)}
    np.testing.assert_allclose(se[True], se[False], rtol=5e-4)
    np.testing.assert_allclose(se[False], np.sqrt(np.diag(fit.vcov.values)), rtol=1e-12)
