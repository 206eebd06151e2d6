"""The immutable result of a fit: :class:`LmerFit`, a record with lme4's accessors.

This module sits at the ``results`` stage of the pipeline and imports
nothing downstream. The analysis methods of a fit (``summary``,
``coef_table``, ``confint``, ``simulate``, ``bootstrap``, ``check``,
``report``, ``refit``, ...) need the inference, simulation and diagnostics
packages, which themselves take fits as input; they are attached to this
class by the top-floor module :mod:`lmmjax.methods` (imported by
``import lmmjax``), so imports run one way only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..fitting.record import OptSummary
from ..fitting.reparam import boundary_theta
from ..memo import memoized
from ..model import Model
from ..objective.residual import natural_params
from .estimates import PointEstimates, conditional_modes, conditional_variances
from .fit_accessors import FitAccessors
from .predict import predict
from .varcorr import sdcor_vector, varcorr_table

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the diagonal of Λ


@dataclass(frozen=True, eq=False)
class LmerFit(FitAccessors):
    """A fitted linear mixed model (see ``lmmjax.lmer``).

    Attributes follow lme4: ``fixef``, ``vcov``, ``theta``, ``sigma``,
    ``varcorr``, ``ranef``, ``loglik``, ``deviance``, ``aic``, ``bic``,
    ``nobs``, ``ngroups``, ``converged``, ``singular``; ``optsummary``
    records the optimisation. Derived values are memoized in the fit
    (:mod:`lmmjax.memo`); the fit itself never changes.

    The methods that run inference, simulation or diagnostics (``summary``,
    ``coef_table``, ``contrast``, ``anova``, ``confint``, ``profile``,
    ``emmeans``, ``emtrends``, ``joint_tests``, ``simulate``, ``bootstrap``,
    ``refit_many``, ``check``, ``report``, ``plot_diagnostics``, ``refit``)
    and ``str(fit)`` come from
    :mod:`lmmjax.methods`.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> round(fit.fixef["Days"], 3)
    10.467
    """

    model: Model
    estimates: PointEstimates
    optsummary: OptSummary
    formula: str

    # ---- basic attributes -------------------------------------------------
    @property
    def reml(self) -> bool:
        """Whether the criterion was REML (else ML)."""
        return self.model.reml

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ̂ (lme4's ``sigma``)."""
        return self.estimates.sigma

    @property
    @memoized
    def vcov(self) -> pd.DataFrame:
        names = self.model.frame.fixed_names
        return pd.DataFrame(self.sigma ** 2 * self.estimates.vcov_unscaled, index=names, columns=names)

    @property
    @memoized
    def varcorr(self) -> pd.DataFrame:
        return varcorr_table(self.model, self.estimates.theta, self.sigma)

    @property
    @memoized
    def sdcor(self) -> pd.Series:
        """Standard deviations, correlations and σ, named as in ``confint``."""
        return sdcor_vector(self.model, self.estimates.theta, self.sigma)

    @property
    @memoized
    def residual_params(self) -> pd.Series:
        """Residual-structure parameters on their natural scale: ``phi`` (AR1/CAR1) and
        ``sd_ratio[<level>]`` per non-reference level (VarIdent); empty without a structure.

        ``fit.theta`` holds them on the optimizer's unconstrained scale after the T entries.
        """
        rows = self.model.residual
        if rows is None:
            return pd.Series([], dtype=float, name="estimate")
        values = natural_params(self.estimates.theta, self.model.dims.residual)
        return pd.Series(values, index=rows.names, name="estimate")

    @property
    def deviance(self) -> float:
        return self.estimates.deviance

    @property
    def loglik(self) -> float:
        return -0.5 * self.estimates.deviance

    @property
    def n_params(self) -> int:
        """Fixed effects + covariance parameters + σ (lme4's ``df`` of logLik)."""
        return self.model.dims.p + self.model.layout.size + 1

    @property
    def singular(self) -> bool:
        """lme4's test (a diagonal entry of T below 1e-4), made in the centred and scaled
        parametrisation where a random-effect column is badly scaled
        (:func:`lmmjax.fitting.reparam.boundary_theta`)."""
        diag = self.model.layout.diagonal
        return bool(np.any(boundary_theta(self.model, self.estimates.theta)[diag] < SINGULAR_TOL))

    # ---- random effects ---------------------------------------------------
    @property
    @memoized
    def _modes(self) -> list:
        return conditional_modes(self.model, self.estimates)

    @property
    @memoized
    def _condvar(self) -> list:
        return conditional_variances(self.model, self.estimates)

    # ---- fitted values and residuals -------------------------------------
    @property
    @memoized
    def fitted(self) -> np.ndarray:
        return self.model.offset + self.model.X @ self.estimates.beta + self.model.z_times(self._modes)

    def residuals(self, kind: str = "response", scaled: bool = False) -> np.ndarray:
        """Conditional residuals y − ŷ.

        Parameters
        ----------
        kind : {"response", "pearson", "normalized"}
            Pearson residuals are √wᵢ (yᵢ − ŷᵢ) / σ̂ (wᵢ the prior weights),
            divided by the row's SD ratio with ``variance=VarIdent(...)``
            (nlme's ``type="pearson"``; not decorrelated under AR(1)).
            Normalized residuals are the Pearson residuals pre-multiplied by
            the inverse Cholesky factor of the within-group residual
            correlation (nlme's ``type="normalized"``): under AR(1)/CAR(1), in
            time order within a group, ``(eₜ − ρₜ eₜ₋₁) / √(1 − ρₜ²)`` with
            ``ρₜ = φ^Δt`` (a group's first row unchanged), about independent
            N(0, 1) when the model holds. Without a residual correlation they
            equal the Pearson residuals.
        scaled : bool
            Same as ``kind="pearson"`` (lme4's ``resid(m, scaled=TRUE)``).

        Examples
        --------
        >>> fit = lmm.lmer("weight ~ Time * Diet + (Time | Rat)", bw, correlation=lmm.AR1(group="Rat"))  # doctest: +SKIP
        >>> e = fit.residuals("normalized")  # doctest: +SKIP
        """
        r = self.model.y - self.fitted
        if kind == "normalized" and not scaled:
            return self.model.whitening(self.theta) @ r / self.sigma  # P Σ Pᵀ = σ² I (I·√w without a structure)
        if kind == "pearson" or scaled:
            w = self.model.weights
            rows = self.model.residual
            if rows is not None and rows.variance is not None:
                ratios = np.concatenate([[1.0], self.residual_params.to_numpy()[-(len(rows.var_levels) - 1):]])
                w = w / ratios[rows.var_codes] ** 2
            return r * np.sqrt(w) / self.sigma
        if kind != "response":
            raise ModelSpecError(f"Unknown residual kind {kind!r}; use 'response', 'pearson' or 'normalized'.")
        return r

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None) -> np.ndarray:
        """Predictions, with or without the random effects.

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the data the model was fitted to.
        re_form : None, "~0" or a formula with bars
            ``None`` includes all random effects; ``"~0"`` (or ``"0"``, ``NA``)
            none; a formula such as ``"~(1|Subject)"`` only the groups it names.
            Levels of a grouping factor not seen in the fit get random effects
            of zero.

        Returns
        -------
        ndarray
            One value per row of ``newdata`` (or, without ``newdata``, per row
            of the DataFrame the model was fitted to), in its order, as pandas
            does: a row that cannot be predicted (a missing value in a column
            the prediction needs, or a row the fit dropped for missing values)
            gets NaN, so ``pd.Series(fit.predict(df), index=df.index)`` lines
            up with ``df``. ``fit.fitted`` has the rows used only.

        Notes
        -----
        Levels are matched by value, the way pandas users expect: ``308``,
        ``308.0`` and ``"308"`` are one level (numbers and text that reads as
        a number compare as numbers). Where two levels of the fit compare
        equal this way (the strings ``"1"`` and ``"01"``) only exact text
        matches them. A level of a fixed-effect factor (or of a factor in a
        random-effect term) that the fit did not see raises
        :class:`~lmmjax.ModelSpecError` naming the column and the level, as
        lme4 does; stateful transforms (``scale``, ``center``, ``poly``)
        reuse the fit's centring, scaling and polynomial coefficients.

        Examples
        --------
        >>> fit.predict(re_form="~0")[:3]  # doctest: +SKIP
        """
        return predict(self, newdata, re_form)

    # ---- printing ---------------------------------------------------------
    def __repr__(self) -> str:
        method = "REML" if self.reml else "ML"
        return (f"<LmerFit {self.formula!r} by {method}: nobs={self.nobs}, "
                f"loglik={self.loglik:.4f}, converged={self.converged}, singular={self.singular}>")
