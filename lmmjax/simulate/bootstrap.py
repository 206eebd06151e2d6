"""Parametric bootstrap: :func:`bootstrap` and its immutable :class:`BootstrapResult`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelSpecError
from ..validate import check_bool, check_count, check_fraction, check_optional_count, check_seed
from .batched import fit_simulated
from .draw import parameters_from_fit
from .tables import estimates_frame, sdcor_names

CI_METHODS = ("percentile", "basic", "normal", "shortest")


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Replicate estimates of a parametric bootstrap (see :func:`bootstrap`).

    Attributes
    ----------
    replicates : DataFrame
        One row per replicate: the fixed effects, ``sd(...)``/``cor(...)``
        (names as in ``fit.confint``), ``sigma``, then ``converged`` and
        ``singular``. Non-converged and singular replicates are kept.
    original : Series
        The fitted model's estimates under the same names.
    n, seed : int
    reml : bool
        Refits by REML (True) or ML, as the original fit.
    use_u : bool
        Whether the random effects were kept at their fitted values.
    theta : ndarray (n, n_theta)
        Each replicate's θ.
    deviance : ndarray (n,)
    n_iter : ndarray (n,)
        Optimiser iterations per replicate.
    message : ndarray (n,) of str
        Why each replicate's optimiser stopped.
    seconds : float
        Wall time of the batched simulation and refits (on the first call for
        a model structure and chunk size, including JIT compilation).
    """

    replicates: pd.DataFrame
    original: pd.Series
    n: int
    seed: int
    reml: bool
    use_u: bool
    theta: np.ndarray = field(repr=False)
    deviance: np.ndarray = field(repr=False)
    n_iter: np.ndarray = field(repr=False)
    message: np.ndarray = field(repr=False)
    seconds: float = float("nan")
    formula: str = ""

    # ---- counts ----------------------------------------------------------
    @property
    def parameters(self) -> list:
        """Parameter names (the replicate columns other than the flags)."""
        return [c for c in self.replicates.columns if c not in ("converged", "singular")]

    @property
    def n_converged(self) -> int:
        return int(self.replicates["converged"].sum())

    @property
    def n_singular(self) -> int:
        return int(self.replicates["singular"].sum())

    # ---- intervals -------------------------------------------------------
    def ci(self, level: float = 0.95, method: str = "percentile", converged_only: bool = False) -> pd.DataFrame:
        """Bootstrap confidence intervals, one row per parameter.

        Parameters
        ----------
        level : float
            Coverage, e.g. 0.95.
        method : {"percentile", "basic", "normal", "shortest"}
            ``percentile``: quantiles of the replicates (linear interpolation,
            R's type 7); ``basic``: 2·estimate − those quantiles, reversed;
            ``normal``: estimate − bias ∓ z·SD of the replicates (boot's
            ``norm.ci``); ``shortest``: the narrowest interval holding
            ⌈level·n⌉ replicates. Lower limits of standard deviations and σ
            are kept ≥ 0 and correlations within [−1, 1].
        converged_only : bool, default False
            Use only replicates whose refit converged. By default every
            replicate with a finite estimate counts (non-convergence is
            counted in ``str(result)``); a correlation is undefined (NaN) in
            replicates where one of its standard deviations is 0.

        Returns
        -------
        DataFrame with columns ``lower``, ``upper`` (and the row index of
        ``fit.confint``).

        Examples
        --------
        >>> boot = fit.bootstrap(2000, seed=1)  # doctest: +SKIP
        >>> boot.ci(method="basic")  # doctest: +SKIP
        """
        level = check_fraction(level, "level")
        if method not in CI_METHODS:
            raise ModelSpecError(f"Unknown bootstrap interval method {method!r}; use one of {CI_METHODS}.")
        rows = self.replicates
        if converged_only:
            rows = rows[rows["converged"]]
        alpha = 1.0 - level
        out = []
        for name in self.parameters:
            x = rows[name].to_numpy(float)
            x = np.sort(x[np.isfinite(x)])
            est = float(self.original.get(name, np.nan))
            out.append(_interval(x, est, level, alpha, method))
        ci = pd.DataFrame(out, index=pd.Index(self.parameters), columns=["lower", "upper"])
        return _clip(ci)

    def summary(self) -> pd.DataFrame:
        """Original estimate, bootstrap mean, bias and standard error per parameter."""
        reps = self.replicates[self.parameters]
        mean = reps.mean(skipna=True)
        return pd.DataFrame({
            "original": self.original.reindex(self.parameters),
            "mean": mean,
            "bias": mean - self.original.reindex(self.parameters),
            "std_error": reps.std(ddof=1, skipna=True),
        })

    # ---- printing --------------------------------------------------------
    def _header(self) -> list:
        method = "REML" if self.reml else "ML"
        re = "fitted random effects kept (use_u=True)" if self.use_u else "new random effects (use_u=False)"
        not_conv = self.n - self.n_converged
        lines = [
            f"Parametric bootstrap: {self.n} replicates, seed {self.seed}, {method} refits, {re}",
            f"  model: {self.formula}" if self.formula else None,
            f"  converged: {self.n_converged} of {self.n}"
            + (f"; {not_conv} did not converge (kept, flagged in replicates['converged'])" if not_conv else ""),
            f"  singular fits: {self.n_singular}"
            + (" (kept, flagged in replicates['singular'])" if self.n_singular else ""),
        ]
        if np.isfinite(self.seconds):
            lines.append(f"  time: {self.seconds:.2f} s ({1e3 * self.seconds / max(self.n, 1):.3f} ms per replicate; "
                         "a first call for a model structure includes JIT compilation)")
        return [line for line in lines if line is not None]

    def __str__(self) -> str:
        table = self.summary().join(self.ci())
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            body = table.to_string(float_format=lambda v: f"{v:.4g}")
        return "\n".join(self._header() + ["", body, "(95% percentile intervals)"])

    def __repr__(self) -> str:
        return (f"<BootstrapResult n={self.n} seed={self.seed} converged={self.n_converged} "
                f"singular={self.n_singular}>")

    def _repr_html_(self) -> str:
        table = self.summary().join(self.ci())
        head = "<br>".join(self._header())
        return f"<p>{head}</p>" + table.to_html(float_format=lambda v: f"{v:.4g}") + "<p>(95% percentile intervals)</p>"


def _interval(x: np.ndarray, est: float, level: float, alpha: float, method: str):
    if x.size == 0:
        return (np.nan, np.nan)
    if method == "percentile":
        lo, hi = np.quantile(x, [alpha / 2, 1 - alpha / 2])
        return (lo, hi)
    if method == "basic":
        lo, hi = np.quantile(x, [alpha / 2, 1 - alpha / 2])
        return (2 * est - hi, 2 * est - lo)
    if method == "normal":
        z = stats.norm.ppf(1 - alpha / 2)
        sd = np.std(x, ddof=1) if x.size > 1 else np.nan
        centre = 2 * est - np.mean(x)  # est − bias
        return (centre - z * sd, centre + z * sd)
    m = min(x.size, int(np.ceil(level * x.size)))
    widths = x[m - 1:] - x[: x.size - m + 1]
    i = int(np.argmin(widths))
    return (x[i], x[i + m - 1])


def _clip(ci: pd.DataFrame) -> pd.DataFrame:
    ci = ci.copy()
    for name in ci.index:
        if name.startswith("sd(") or name == "sigma":
            ci.loc[name] = ci.loc[name].clip(lower=0.0)
        elif name.startswith("cor("):
            ci.loc[name] = ci.loc[name].clip(-1.0, 1.0)
    return ci


def bootstrap(fit, n: int = 1000, seed: int = 0, *, use_u: bool = False, batch_size: int | None = None,
              progress: bool | None = None, options=None, devices=None) -> BootstrapResult:
    """Parametric bootstrap by batched refits.

    Draws ``n`` responses from the fitted model (new random effects, as
    lme4's ``bootMer(use.u = FALSE)``; ``use_u=True`` keeps the fitted ones)
    and refits the same model (REML or ML, as fitted) to every one, warm
    started at the fitted θ, in one compiled computation sharded over
    ``jax.devices()``. Replicate i is ``fit.simulate(n, seed)[i]`` refitted:
    the same seed gives the same replicates whatever the batch size or the
    number of devices.

    Parameters
    ----------
    fit : LmerFit
    n : int
        Number of replicates.
    seed : int
    use_u : bool, default False
    batch_size : int, optional
        Replicates per compiled chunk (memory bound); default from the
        model size.
    progress : bool, optional
        tqdm progress bar (default: shown when the call takes more than a
        second, with "compiling…" while a new structure compiles); False: none.
    options : dict, optional
        Optimiser settings (:class:`lmmjax.simulate.newton.NewtonOptions`).
    devices : list, optional
        Devices to shard replicates over (default all).

    Returns
    -------
    BootstrapResult
        The replicates (one row each, with converged/singular flags) and their intervals.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> boot = fit.bootstrap(500, seed=1)
    >>> list(boot.ci().columns)
    ['lower', 'upper']
    """
    n = check_count(n, "n")
    seed = check_seed(seed)
    use_u = check_bool(use_u, "use_u")
    batch_size = check_optional_count(batch_size, "batch_size")
    params = parameters_from_fit(fit, None, use_u)
    t0 = time.perf_counter()
    res = fit_simulated(fit.model, params, n, seed=seed, theta0=fit.theta, batch_size=batch_size,
                        progress=progress, options=options, devices=devices)
    seconds = time.perf_counter() - t0
    names = sdcor_names(fit.model, fit.theta, fit.sigma)
    reps = estimates_frame(fit.model, res, names)
    reps["converged"] = res["converged"]
    reps["singular"] = res["singular"]
    original = pd.concat([fit.fixef.rename(None), fit.sdcor.rename(None)])
    original.index = list(reps.columns[:-2])
    return BootstrapResult(
        replicates=reps, original=original, n=n, seed=int(seed), reml=fit.reml, use_u=bool(use_u),
        theta=res["theta"], deviance=res["deviance"], n_iter=res["n_iter"], message=res["message"],
        seconds=seconds, formula=fit.formula,
    )
