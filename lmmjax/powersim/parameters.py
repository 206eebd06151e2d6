"""The parameters assumed for a power simulation: β, the variance components and σ.

Users name parameters the way they read them (simr's ``fixef<-``,
``VarCorr<-``, ``sigma<-``); this module turns them into lme4's
parameterisation for a given :class:`~lmmjax.model.Model`: β in model-matrix
order, θ (per term the lower triangle of the relative Cholesky factor T,
column-major, terms in formula order; Σ_term = σ² T Tᵀ) and σ.

Random-effect variances are *absolute*: changing ``sigma`` alone keeps the
random-effect standard deviations where they were (θ is rescaled), and
``varcorr`` is given in the response's units, not relative to σ. Only
``theta=`` is in lme4's relative units.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..results.varcorr import term_covariances, varcorr_table


@dataclass(frozen=True)
class Truth:
    """Parameter values that responses are simulated from.

    Attributes
    ----------
    fixef : pandas.Series
        β by fixed-effect name (model-matrix order).
    theta : ndarray
        Relative covariance factor, lme4's θ in the model's layout order.
    sigma : float
        Residual standard deviation.
    """

    fixef: pd.Series
    theta: np.ndarray
    sigma: float

    def varcorr(self, model) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr())`` layout of these values."""
        return varcorr_table(model, self.theta, self.sigma)


# ---- fixed effects -----------------------------------------------------------
def _fixef_vector(names: list, base: pd.Series | None, fixef) -> pd.Series:
    beta = pd.Series(0.0, index=list(names), name="fixef")
    if base is not None:
        common = [n for n in names if n in base.index]
        beta[common] = base[common].to_numpy(dtype=float)
    if fixef is None:
        return beta
    if isinstance(fixef, pd.Series):
        fixef = fixef.to_dict()
    if not isinstance(fixef, dict):
        values = np.asarray(fixef, dtype=float).ravel()
        if values.size != len(names):
            raise ModelSpecError(
                f"fixef has {values.size} values but the model has {len(names)} fixed effects "
                f"{list(names)}; pass a dict by name to set only some of them."
            )
        return pd.Series(values, index=list(names), name="fixef")
    for key, value in fixef.items():
        name = "Intercept" if key == "(Intercept)" else str(key)
        if name not in beta.index:
            raise ModelSpecError(
                f"Unknown fixed effect {key!r} in fixef; the model's fixed effects are {list(names)}."
            )
        beta[name] = float(value)
    return beta


# ---- variance components -------------------------------------------------------
def _term_groups(model) -> dict:
    """Grouping factor -> list of (term position, columns) in formula order."""
    out: dict = {}
    for t, tm in enumerate(model.frame.terms):
        out.setdefault(tm.group, []).append((t, list(tm.columns)))
    return out


def _as_cor_matrix(cor, p: int, group: str) -> np.ndarray:
    if cor is None:
        return np.eye(p)
    cor = np.asarray(cor, dtype=float)
    if cor.ndim == 0:
        if p == 1:
            raise ModelSpecError(f"varcorr for {group!r}: a correlation needs at least two columns.")
        R = np.full((p, p), float(cor))
        np.fill_diagonal(R, 1.0)
        return R
    if cor.ndim == 1:  # lower triangle, column-major (the order of fit.varcorr's rows)
        if cor.size != p * (p - 1) // 2:
            raise ModelSpecError(
                f"varcorr for {group!r}: {cor.size} correlations given, {p * (p - 1) // 2} expected "
                "(the lower triangle, column by column)."
            )
        R = np.eye(p)
        k = 0
        for j in range(p):
            for i in range(j + 1, p):
                R[i, j] = R[j, i] = cor[k]
                k += 1
        return R
    if cor.shape != (p, p):
        raise ModelSpecError(f"varcorr for {group!r}: correlation matrix must be {p}×{p}.")
    return cor


def _group_covariance(spec, columns: list, group: str) -> np.ndarray:
    """A group's covariance matrix over ``columns`` from one user spec."""
    p = len(columns)
    if isinstance(spec, pd.DataFrame):
        missing = [c for c in columns if c not in spec.index or c not in spec.columns]
        if missing:
            raise ModelSpecError(f"varcorr for {group!r}: covariance matrix lacks {missing}.")
        return spec.loc[columns, columns].to_numpy(dtype=float)
    if isinstance(spec, dict):
        unknown = set(spec) - {"sd", "cor", "var", "cov"}
        if unknown:
            raise ModelSpecError(
                f"varcorr for {group!r}: unknown keys {sorted(unknown)}; use 'sd' (or 'var') and "
                "'cor', or 'cov' for a covariance matrix."
            )
        if "cov" in spec:
            return _group_covariance(np.asarray(spec["cov"], float), columns, group)
        if "sd" in spec:
            sd = spec["sd"]
        elif "var" in spec:
            sd = np.sqrt(np.asarray(spec["var"], float))
        else:
            raise ModelSpecError(f"varcorr for {group!r}: give 'sd' (or 'var').")
        if isinstance(sd, dict):
            missing = [c for c in columns if c not in sd]
            if missing:
                raise ModelSpecError(f"varcorr for {group!r}: no sd for {missing}.")
            sd = [sd[c] for c in columns]
        sd = np.atleast_1d(np.asarray(sd, dtype=float))
        if sd.size != p:
            raise ModelSpecError(
                f"varcorr for {group!r}: {sd.size} standard deviation(s) given for its {p} "
                f"column(s) {columns}."
            )
        R = _as_cor_matrix(spec.get("cor"), p, group)
        return sd[:, None] * R * sd[None, :]
    arr = np.asarray(spec, dtype=float)
    if arr.ndim == 0 or (arr.ndim == 1 and arr.size == 1):
        if p != 1:
            raise ModelSpecError(
                f"varcorr for {group!r}: a single number is a standard deviation for a group with "
                f"one column, but {group!r} has {columns}; use {{'sd': [...], 'cor': ...}}."
            )
        return np.array([[float(arr.ravel()[0]) ** 2]])
    if arr.ndim == 1:
        return _group_covariance({"sd": arr}, columns, group)
    if arr.shape != (p, p):
        raise ModelSpecError(f"varcorr for {group!r}: covariance matrix must be {p}×{p} ({columns}).")
    return arr


_SD = re.compile(r"^sd\((.+)\|(.+)\)$")
_COR = re.compile(r"^cor\((.+)\|(.+)\)$")


def _named_entries(model) -> dict:
    """``sd(col|group)`` / ``cor(a,b|group)`` -> (term, i, j) for every entry of the model."""
    out = {}
    for t, tm in enumerate(model.frame.terms):
        cols = tm.columns
        for i, c in enumerate(cols):
            out[f"sd({c}|{tm.group})"] = (t, i, i)
        for j in range(len(cols)):
            for i in range(j + 1, len(cols)):
                out[f"cor({cols[j]},{cols[i]}|{tm.group})"] = (t, i, j)
    return out


def _from_varcorr_frame(df: pd.DataFrame) -> dict:
    """fit.varcorr-style table -> {parameter name: sd or cor}."""
    out = {}
    for row in df.itertuples(index=False):
        if row.group == "Residual":
            out["sigma"] = float(row.sdcor)
        elif row.term2 is None or (isinstance(row.term2, float) and np.isnan(row.term2)):
            out[f"sd({row.term1}|{row.group})"] = float(row.sdcor)
        else:
            out[f"cor({row.term1},{row.term2}|{row.group})"] = float(row.sdcor)
    return out


def _apply_named(covs: list, named: dict, model) -> list:
    entries = _named_entries(model)
    sds = [np.sqrt(np.clip(np.diag(S), 0, None)) for S in covs]
    cors = [np.where(np.outer(sd, sd) > 0, S / np.where(np.outer(sd, sd) > 0, np.outer(sd, sd), 1), 0.0)
            for S, sd in zip(covs, sds)]
    for c in cors:
        np.fill_diagonal(c, 1.0)
    for key, value in named.items():
        if key not in entries:
            raise ModelSpecError(
                f"Unknown variance parameter {key!r}; the model's are {sorted(entries)}."
            )
        t, i, j = entries[key]
        if i == j:
            sds[t][i] = float(value)
        else:
            cors[t][i, j] = cors[t][j, i] = float(value)
    return [sd[:, None] * c * sd[None, :] for sd, c in zip(sds, cors)]


def _is_named(varcorr) -> bool:
    keys = varcorr.index if isinstance(varcorr, pd.Series) else varcorr.keys()
    return any(isinstance(k, str) and (_SD.match(k) or _COR.match(k) or k == "sigma") for k in keys)


def psd_cholesky(S: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Lower-triangular L with L Lᵀ = S for a positive semi-definite S.

    Zero pivots (a variance of 0, a correlation of ±1) give zero columns,
    which lme4's θ represents exactly (a boundary value).
    """
    S = 0.5 * (np.asarray(S, float) + np.asarray(S, float).T)
    p = S.shape[0]
    scale = max(float(np.max(np.abs(np.diag(S)), initial=0.0)), 1e-300)
    if np.linalg.eigvalsh(S).min() < -1e-8 * scale:
        raise ModelSpecError(
            "The random-effect covariance matrix is not positive semi-definite: check that the "
            f"correlations are consistent (|cor| ≤ 1 and jointly possible):\n{S}"
        )
    L = np.zeros((p, p))
    for j in range(p):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d <= tol * scale:
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (S[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


def covariances_to_theta(model, covs: list, sigma: float) -> np.ndarray:
    """θ in layout order from absolute per-term covariance matrices and σ."""
    layout = model.layout
    theta = np.zeros(layout.size)
    for t, S in enumerate(covs):
        T = psd_cholesky(np.asarray(S, float)) / sigma
        idx = np.nonzero(layout.term_of == t)[0]
        theta[idx] = T[layout.row[idx], layout.col[idx]]
    return theta


def _term_covariances_from_spec(model, varcorr, base_covs: list | None) -> list:
    terms = model.frame.terms
    if varcorr is None:
        if base_covs is None:
            groups = sorted({tm.group for tm in terms})
            raise ModelSpecError(
                "Variance components are needed to simulate from scratch: pass varcorr= for the "
                f"grouping factor(s) {groups}, e.g. varcorr={{'{groups[0]}': {{'sd': [...], 'cor': 0.0}}}} "
                "(or theta=)."
            )
        return base_covs
    if isinstance(varcorr, pd.DataFrame) and {"group", "term1", "term2", "sdcor"} <= set(varcorr.columns):
        varcorr = _from_varcorr_frame(varcorr)
    if isinstance(varcorr, (dict, pd.Series)) and _is_named(varcorr):
        named = {k: v for k, v in dict(varcorr).items() if k != "sigma"}
        if base_covs is None:
            base = [np.full((len(tm.columns),) * 2, np.nan) for tm in terms]
            covs = _apply_named(base, named, model)
            bad = [f"({' + '.join(tm.columns)} | {tm.group})" for tm, S in zip(terms, covs)
                   if np.isnan(np.diag(S)).any()]
            if bad:
                raise ModelSpecError(f"varcorr does not give every standard deviation of {bad}.")
            # unspecified correlations are 0
            return [np.where(np.isnan(S), 0.0, S) for S in covs]
        return _apply_named(base_covs, named, model)
    if not isinstance(varcorr, dict):
        raise ModelSpecError(
            "varcorr must be a dict by grouping factor (e.g. {'Subject': {'sd': [24, 6], 'cor': 0.1}}), "
            "a dict/Series by parameter name (e.g. {'sd(Days|Subject)': 6}) or a fit's varcorr table."
        )
    groups = _term_groups(model)
    unknown = [g for g in varcorr if g not in groups]
    if unknown:
        raise ModelSpecError(f"varcorr names unknown grouping factor(s) {unknown}; the model has {list(groups)}.")
    covs = list(base_covs) if base_covs is not None else [None] * len(terms)
    for group, members in groups.items():
        if group not in varcorr:
            continue
        columns = [c for _, cols in members for c in cols]
        S = _group_covariance(varcorr[group], columns, group)
        start = 0
        for k, (t, cols) in enumerate(members):
            sl = slice(start, start + len(cols))
            rest = np.delete(np.arange(len(columns)), np.arange(sl.start, sl.stop))
            if len(members) > 1 and np.any(np.abs(S[sl][:, rest]) > 0):
                raise ModelSpecError(
                    f"varcorr for {group!r}: the formula makes {cols} uncorrelated with the group's "
                    "other columns (separate terms or '||'), so those correlations must be 0."
                )
            covs[t] = S[sl, sl]
            start = sl.stop
    missing = [terms[t].group for t, S in enumerate(covs) if S is None]
    if missing:
        raise ModelSpecError(f"varcorr gives no variance components for grouping factor(s) {sorted(set(missing))}.")
    return covs


def resolve_truth(model, base: Truth | None = None, base_model=None, fixef=None, varcorr=None,
                  sigma=None, theta=None) -> Truth:
    """The parameter values for ``model`` from a starting point and overrides.

    Parameters
    ----------
    model : Model
        The model structure responses will be simulated for.
    base : Truth, optional
        Values to start from (e.g. a fit's estimates); ``base_model`` is the
        model whose layout ``base.theta`` follows (same formula).
    fixef : dict or Series or sequence, optional
        Fixed effects by name (unnamed ones keep their base value, or 0).
    varcorr : optional
        Random-effect standard deviations and correlations, in one of the
        forms accepted by :func:`lmmjax.power`.
    sigma : float, optional
        Residual standard deviation.
    theta : array, optional
        lme4's θ (relative to σ) directly; excludes ``varcorr``.

    Returns
    -------
    Truth

    Examples
    --------
    >>> truth = resolve_truth(model, fixef={"Days": 5},
    ...                       varcorr={"Subject": {"sd": [24.7, 5.9], "cor": 0.07}}, sigma=25.6)  # doctest: +SKIP
    """
    names = model.frame.fixed_names
    beta = _fixef_vector(names, None if base is None else base.fixef, fixef)
    if varcorr is not None and theta is not None:
        raise ModelSpecError("Give either varcorr= or theta=, not both.")
    named_sigma = None
    if isinstance(varcorr, pd.DataFrame) and "group" in varcorr.columns:
        named_sigma = _from_varcorr_frame(varcorr).get("sigma")
    elif isinstance(varcorr, (dict, pd.Series)) and "sigma" in varcorr:
        named_sigma = float(varcorr["sigma"])
    if sigma is None:
        sigma = named_sigma if named_sigma is not None else (None if base is None else base.sigma)
    if sigma is None:
        raise ModelSpecError("The residual standard deviation is needed to simulate from scratch: pass sigma=.")
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ModelSpecError(f"sigma must be a positive number, not {sigma!r}.")
    if theta is not None:
        theta = np.asarray(theta, dtype=float).ravel()
        if theta.size != model.layout.size:
            raise ModelSpecError(
                f"theta has {theta.size} entries; the model's layout has {model.layout.size} "
                f"({model.layout.names})."
            )
        return Truth(beta, theta, sigma)
    base_covs = None
    if base is not None:
        base_covs = [S for _, S in term_covariances(base_model if base_model is not None else model,
                                                    base.theta, base.sigma)]
    covs = _term_covariances_from_spec(model, varcorr, base_covs)
    return Truth(beta, covariances_to_theta(model, covs, sigma), sigma)
