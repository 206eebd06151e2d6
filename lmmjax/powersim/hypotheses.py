"""What is tested: fixed-effect columns, the null model, and the test statistics per simulation.

A test names fixed-effect columns (``"Days"``, ``"recipe[T.B]"``) or terms
of the fixed formula (``"recipe"`` = all its columns, ``"recipe:temperature"``);
a list combines them. The null hypothesis is that all those coefficients
are 0.

Statistics, one row per simulation:

- ``"wald"``: z = β̂/SE(β̂) against N(0, 1) for one column; for several,
  the Wald χ² = β̂ᵀ cov(β̂)⁻¹ β̂ on as many df. Anti-conservative with few
  groups (it ignores the uncertainty of the variance components).
- ``"satterthwaite"``: t = β̂/SE against t with Satterthwaite df (lmerTest's
  method, exact derivatives) for one column; F with Satterthwaite
  denominator df (lmerTest's ``contestMD``) for several.
- ``"lrt"``: χ² = deviance(H0) − deviance(H1) of ML fits of both models to
  the same response, on (number of columns) df.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import ModelSpecError
from ..inference.satterthwaite import EIGEN_TOL, SatterthwaiteInfo, f_test, t_test

METHODS = {"lrt": "lrt", "likelihood-ratio": "lrt", "lr": "lrt",
           "wald": "wald", "z": "wald", "wald-z": "wald",
           "satterthwaite": "satterthwaite", "t": "satterthwaite"}

METHOD_LABEL = {"lrt": "likelihood-ratio test", "wald": "Wald test (normal reference)",
                "satterthwaite": "t/F test with Satterthwaite df"}


@dataclass(frozen=True)
class Hypothesis:
    """Fixed-effect columns set to 0 under H0.

    Attributes
    ----------
    columns : tuple of str
        Fixed-effect names tested.
    index : tuple of int
        Their positions in the model matrix.
    label : str
        What the user asked for, for display.
    """

    columns: tuple
    index: tuple
    label: str


def _term_columns(model) -> dict:
    """Fixed-formula term -> its kept column names (e.g. 'recipe' -> ['recipe[T.B]', 'recipe[T.C]'])."""
    spec = model.frame.fixed_spec
    all_names = list(spec.column_names)
    kept = set(model.frame.fixed_names)
    out = {}
    for term, sl in spec.term_slices.items():
        name = str(term)
        cols = [c for c in all_names[sl] if c in kept]
        out[name] = cols
    return out


def resolve_hypothesis(model, test) -> Hypothesis:
    """The columns named by ``test`` (a name or a list of names).

    Examples
    --------
    >>> resolve_hypothesis(model, "Days").columns  # doctest: +SKIP
    ('Days',)
    """
    names = list(model.frame.fixed_names)
    terms = _term_columns(model)
    if test is None:
        candidates = [t for t, cols in terms.items() if t != "1" and cols]
        if len(candidates) != 1:
            raise ModelSpecError(
                f"Say which fixed effect to test: test= one of the columns {names} or terms "
                f"{[t for t in terms if t != '1']} (or a list of them)."
            )
        test = candidates[0]
    items = [test] if isinstance(test, str) else list(test)
    chosen = []
    for item in items:
        item = "Intercept" if item in ("(Intercept)", "1") else str(item)
        if item in names:
            cols = [item]
        else:
            key = frozenset(item.replace(" ", "").split(":"))
            match = [t for t in terms if frozenset(t.replace(" ", "").split(":")) == key]
            if not match:
                raise ModelSpecError(
                    f"Cannot test {item!r}: it is neither a fixed-effect column {names} nor a term "
                    f"of the fixed formula {[t for t in terms if t != '1']}."
                )
            cols = terms[match[0]]
            if not cols:
                raise ModelSpecError(f"Term {item!r} has no columns left in the model (aliased).")
        chosen += [c for c in cols if c not in chosen]
    index = tuple(names.index(c) for c in chosen)
    label = test if isinstance(test, str) else " + ".join(map(str, items))
    return Hypothesis(columns=tuple(chosen), index=index, label=label)


def null_model(model, hyp: Hypothesis):
    """The model without the tested columns (same random part, same rows)."""
    return model.with_fixed_columns([j for j in range(model.dims.p) if j not in hyp.index])


# ---- statistics ---------------------------------------------------------------------
def wald_statistics(beta: np.ndarray, vcov: np.ndarray, hyp: Hypothesis) -> dict:
    """z (one column) or χ² (several) per simulation, with p-values."""
    idx = list(hyp.index)
    b = beta[:, idx]
    V = vcov[:, idx][:, :, idx]
    if len(idx) == 1:
        se = np.sqrt(V[:, 0, 0])
        z = b[:, 0] / se
        return dict(std_error=se, statistic=z, df=np.full(len(z), np.nan),
                    p_value=2.0 * stats.norm.sf(np.abs(z)))
    chisq = np.full(len(b), np.nan)
    for i in range(len(b)):
        try:
            chisq[i] = float(b[i] @ np.linalg.solve(V[i], b[i]))
        except np.linalg.LinAlgError:
            pass
    df = float(len(idx))
    return dict(statistic=chisq, df=np.full(len(b), df), p_value=stats.chi2.sf(chisq, df))


def satterthwaite_statistics(beta: np.ndarray, H: np.ndarray, C: np.ndarray, J: np.ndarray,
                             hyp: Hypothesis) -> dict:
    """t with Satterthwaite df (one column) or F with Satterthwaite ddf, per simulation.

    The df come from :mod:`lmmjax.inference.satterthwaite` (``t_test``,
    ``f_test``) applied to each simulation's exact Hessian and Jacobian.
    """
    B, p = beta.shape
    L = np.zeros((len(hyp.index), p))
    L[np.arange(len(hyp.index)), list(hyp.index)] = 1.0
    stat = np.full(B, np.nan)
    df = np.full(B, np.nan)
    se = np.full(B, np.nan)
    for i in range(B):
        if not (np.all(np.isfinite(H[i])) and np.all(np.isfinite(C[i])) and np.all(np.isfinite(J[i]))):
            continue
        Hs = 0.5 * (H[i] + H[i].T)
        evals, evecs = np.linalg.eigh(Hs)
        pos = evals > EIGEN_TOL
        A = 2.0 * (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
        info = SatterthwaiteInfo(varpar=None, hessian=Hs, vcov_varpar=A, vcov_beta=C[i],
                                 jacobian=J[i], notes=())
        if len(hyp.index) == 1:
            est, se[i], df[i] = t_test(info, beta[i], L[0])
            stat[i] = est / se[i]
        else:
            stat[i], _, df[i] = f_test(info, beta[i], L)
    if len(hyp.index) == 1:
        p_value = 2.0 * stats.t.sf(np.abs(stat), df)
        return dict(std_error=se, statistic=stat, df=df, p_value=p_value)
    num = float(len(hyp.index))
    return dict(statistic=stat, df=np.full(B, num), ddf=df, p_value=stats.f.sf(stat, num, df))


def lrt_statistics(dev1: np.ndarray, dev0: np.ndarray, hyp: Hypothesis) -> dict:
    """χ² = deviance(H0) − deviance(H1) (ML), floored at 0.

    A slightly negative difference can only come from an optimiser stopping
    short; the floor is what the R reference loop does (``max(0, …)``).
    """
    chisq = np.maximum(dev0 - dev1, 0.0)
    df = float(len(hyp.index))
    return dict(statistic=chisq, df=np.full(len(chisq), df), p_value=stats.chi2.sf(chisq, df))
