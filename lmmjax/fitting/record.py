"""The optimizer record shared by single fits and batches (cf. MixedModels.jl's OptSummary)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# status codes (a single fit, or per replicate of a batch)
STOP_GRADIENT = 0  # projected gradient below the stopping tolerance
STOP_STEP = 1  # steps too small to continue, or the decrease left is below rounding
STOP_LINESEARCH = 2  # no decrease found along the step
STOP_MAXITER = 3  # iteration limit
STOP_NONFINITE = 4  # the deviance is not finite at the start (bad response)
STATUS_TEXT = {
    STOP_GRADIENT: "gradient", STOP_STEP: "small step", STOP_LINESEARCH: "line search failed",
    STOP_MAXITER: "iteration limit", STOP_NONFINITE: "non-finite deviance",
}


@dataclass(frozen=True)
class OptSummary:
    """Record of an optimisation: scalars for one fit, arrays (first axis = replicate) for a batch.

    Attributes
    ----------
    theta_start, theta : starting and final θ
    deviance : ML deviance or REML criterion at θ
    n_evaluations, n_iterations : objective evaluations and iterations
    optimizer : which method
    message : the optimizer's stopping message (text per replicate for a batch)
    projected_gradient : largest |projected gradient| component at θ
    success : converged (the gradient check passed)
    status : a code of :data:`STATUS_TEXT`
    seconds : wall time
    snapped : indices of θ set to their bound at the end (single fits)
    """

    theta_start: np.ndarray
    theta: np.ndarray
    deviance: float
    n_evaluations: int
    n_iterations: int
    optimizer: str
    message: str
    projected_gradient: float
    success: bool
    seconds: float
    snapped: tuple = field(default=())
    status: int = STOP_GRADIENT

    @property
    def converged(self):
        return self.success
