"""GLM families for ``glmer``: binomial (logit, probit, cloglog) and Poisson (log).

Each family is an immutable record of pure, JAX-traceable functions with R's
``family`` semantics (``stats::binomial()``, ``stats::poisson()``), including
R's clipping of the mean away from 0 and 1 so that the working weights stay
finite. As in ``glm``, a binomial response ``y`` is the proportion of
successes and the prior weight ``wt`` the number of trials.

Examples
--------
>>> from lmmjax.families import Binomial, get_family
>>> fam = Binomial(link="probit")
>>> fam.name, fam.link
('binomial', 'probit')
>>> float(fam.linkinv(0.0))
0.5
>>> get_family("poisson").link
'log'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
from jax.scipy.special import gammaln, ndtr, ndtri

from .errors import ModelSpecError

__all__ = ["Family", "Binomial", "Poisson", "get_family", "FAMILY_LINKS"]

#: R's .Machine$double.eps.
EPS = 2.220446049250313e-16
#: logit threshold of R's C code (family.c: THRESH = 30, MTHRESH = -30).
_LOGIT_THRESH = 30.0
#: probit threshold of R's binomial(link = "probit"): -qnorm(.Machine$double.eps).
_PROBIT_THRESH = 8.125890664701906


# ---- links (R's make.link and family.c) ---------------------------------------------------


def _logit_linkfun(mu):
    return jnp.log(mu / (1.0 - mu))


def _logit_linkinv(eta):
    tmp = jnp.where(eta < -_LOGIT_THRESH, EPS,
                    jnp.where(eta > _LOGIT_THRESH, 1.0 / EPS, jnp.exp(jnp.clip(eta, -_LOGIT_THRESH, _LOGIT_THRESH))))
    return tmp / (1.0 + tmp)


def _logit_mu_eta(eta):
    e = jnp.exp(jnp.clip(eta, -_LOGIT_THRESH, _LOGIT_THRESH))
    inside = e / ((1.0 + e) * (1.0 + e))
    return jnp.where((eta > _LOGIT_THRESH) | (eta < -_LOGIT_THRESH), EPS, inside)


def _probit_linkfun(mu):
    return ndtri(mu)


def _probit_linkinv(eta):
    return ndtr(jnp.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH))


def _probit_mu_eta(eta):
    return jnp.maximum(jnp.exp(-0.5 * eta * eta) / jnp.sqrt(2.0 * jnp.pi), EPS)


def _cloglog_linkfun(mu):
    return jnp.log(-jnp.log1p(-mu))


def _cloglog_linkinv(eta):
    # eta capped at 700 (mu is 1 - eps long before) so that exp() and its gradient stay finite
    return jnp.clip(-jnp.expm1(-jnp.exp(jnp.minimum(eta, 700.0))), EPS, 1.0 - EPS)


def _cloglog_mu_eta(eta):
    e = jnp.minimum(eta, 700.0)
    return jnp.maximum(jnp.exp(e) * jnp.exp(-jnp.exp(e)), EPS)


def _log_linkfun(mu):
    return jnp.log(mu)


def _log_linkinv(eta):
    return jnp.maximum(jnp.exp(eta), EPS)


_LINKS = {
    "logit": (_logit_linkfun, _logit_linkinv, _logit_mu_eta),
    "probit": (_probit_linkfun, _probit_linkinv, _probit_mu_eta),
    "cloglog": (_cloglog_linkfun, _cloglog_linkinv, _cloglog_mu_eta),
    "log": (_log_linkfun, _log_linkinv, _log_linkinv),  # d exp(eta)/d eta = exp(eta)
}

#: The links each family accepts; the first is the default (canonical) one.
FAMILY_LINKS = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}


# ---- binomial ------------------------------------------------------------------------------


def _ylogy_ratio(y, mu):
    """``y * log(y / mu)``, 0 where ``y == 0`` (R's ``y_log_y``), with finite gradients."""
    pos = y > 0
    safe_y = jnp.where(pos, y, 1.0)
    return jnp.where(pos, y * jnp.log(safe_y / mu), 0.0)


def _binomial_variance(mu):
    return mu * (1.0 - mu)


def _binomial_dev_resids(y, mu, wt):
    return 2.0 * wt * (_ylogy_ratio(y, mu) + _ylogy_ratio(1.0 - y, 1.0 - mu))


def _binomial_loglik_rows(y, mu, wt):
    """Row log-likelihood ``log dbinom(round(wt*y), round(wt), mu)`` (R's ``binomial()$aic``)."""
    m = jnp.round(wt)
    k = jnp.round(wt * y)
    lchoose = gammaln(m + 1.0) - gammaln(k + 1.0) - gammaln(m - k + 1.0)
    k_log_mu = jnp.where(k > 0, k * jnp.log(mu), 0.0)
    rest_log = jnp.where(m - k > 0, (m - k) * jnp.log1p(-mu), 0.0)
    return jnp.where(m > 0, lchoose + k_log_mu + rest_log, 0.0)


def _binomial_initialize(y, wt):
    return (wt * y + 0.5) / (wt + 1.0)


# ---- Poisson -------------------------------------------------------------------------------


def _poisson_variance(mu):
    return mu


def _poisson_dev_resids(y, mu, wt):
    return 2.0 * wt * (_ylogy_ratio(y, mu) - (y - mu))


def _poisson_loglik_rows(y, mu, wt):
    """Row log-likelihood ``wt * log dpois(y, mu)`` (R's ``poisson()$aic``)."""
    y_log_mu = jnp.where(y > 0, y * jnp.log(mu), 0.0)
    return wt * (y_log_mu - mu - gammaln(y + 1.0))


def _poisson_initialize(y, wt):
    return y + 0.1


# ---- the record ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A GLM family with one link: R's ``family`` object as pure JAX functions.

    Attributes
    ----------
    name, link : str
        ``"binomial"``/``"poisson"`` and the link's name.
    linkfun, linkinv, mu_eta : callable
        η = g(μ), μ = g⁻¹(η) and dμ/dη.
    variance : callable
        V(μ).
    dev_resids : callable
        ``(y, mu, wt) ->`` per-row unit deviance times ``wt`` (R's ``dev.resids``).
    loglik_rows : callable
        ``(y, mu, wt) ->`` per-row conditional log-likelihood, with the binomial
        constant ``lchoose(n, k)``; its sum is ``-aic/2`` of R's family.
    initialize : callable
        ``(y, wt) ->`` R's starting μ.

    Examples
    --------
    >>> from lmmjax.families import Poisson
    >>> round(float(Poisson().dev_resids(2.0, 1.0, 1.0)), 6)
    0.772589
    """

    name: str
    link: str
    linkfun: Callable
    linkinv: Callable
    mu_eta: Callable
    variance: Callable
    dev_resids: Callable
    loglik_rows: Callable
    initialize: Callable

    def __repr__(self) -> str:
        return f"{self.name.capitalize()}(link={self.link!r})"


def _check_link(family: str, link) -> str:
    allowed = FAMILY_LINKS[family]
    if not isinstance(link, str) or link not in allowed:
        raise ModelSpecError(
            f"unknown link {link!r} for the {family} family; available: {', '.join(allowed)}")
    return link


def Binomial(link: str = "logit") -> Family:
    """The binomial family (y = proportion of successes, prior weight = trials).

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}

    Examples
    --------
    >>> round(float(Binomial().linkinv(1.0)), 6)
    0.731059
    """
    link = _check_link("binomial", link)
    return Family("binomial", link, *_LINKS[link], _binomial_variance, _binomial_dev_resids,
                  _binomial_loglik_rows, _binomial_initialize)


def Poisson(link: str = "log") -> Family:
    """The Poisson family for counts.

    Parameters
    ----------
    link : {"log"}

    Examples
    --------
    >>> float(Poisson().linkinv(0.0))
    1.0
    """
    link = _check_link("poisson", link)
    return Family("poisson", link, *_LINKS[link], _poisson_variance, _poisson_dev_resids,
                  _poisson_loglik_rows, _poisson_initialize)


_CONSTRUCTORS = {"binomial": Binomial, "poisson": Poisson}


def get_family(family) -> Family:
    """A :class:`Family` from a name (``"binomial"``, ``"poisson"``) or a Family itself.

    Raises
    ------
    ModelSpecError
        For an unknown family name.

    Examples
    --------
    >>> get_family("Binomial")
    Binomial(link='logit')
    """
    if isinstance(family, Family):
        return family
    key = family.strip().lower() if isinstance(family, str) else None
    if key not in _CONSTRUCTORS:
        raise ModelSpecError(
            f"unknown family {family!r}; glmer supports: {', '.join(_CONSTRUCTORS)} "
            "(or an object from lmm.families, e.g. lmm.families.Binomial(link='probit'))")
    return _CONSTRUCTORS[key]()
