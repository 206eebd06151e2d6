"""Per-group tables of random effects (modes, conditional SDs) shared by LMM and GLMM fits."""
from __future__ import annotations

import numpy as np
import pandas as pd


def group_order(blocks) -> list:
    """Blocks in the order their terms appear in the formula (lme4's order of ``ranef``)."""
    return sorted(blocks, key=lambda b: min(t for t, _ in b.term_slices))


def ranef_frames(blocks, values) -> dict:
    """``{group: DataFrame(levels × columns)}`` from per-block (nlevels, p) arrays, in formula order.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> b = SimpleNamespace(group="g", levels=["a", "b"], columns=["(Intercept)"], term_slices=[(0, None)])
    >>> ranef_frames([b], [np.array([[1.0], [2.0]])])["g"].shape
    (2, 1)
    """
    by_group = {blk.group: pd.DataFrame(np.asarray(v), index=pd.Index(blk.levels, name=blk.group),
                                        columns=blk.columns) for blk, v in zip(blocks, values)}
    return {b.group: by_group[b.group] for b in group_order(blocks)}


def condvar_sd_frames(blocks, condvar) -> dict:
    """Conditional SDs (square roots of the diagonals of lme4's condVar) per group, in formula order."""
    return ranef_frames(blocks, [np.sqrt(np.maximum(np.diagonal(cv, axis1=1, axis2=2), 0.0)) for cv in condvar])
