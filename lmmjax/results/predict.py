"""Predictions on new data, with chosen random effects."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..formula.bars import _bar_content, _split_top, _expand_groups


def _groups_in(re_form) -> set | None:
    """None: all groups; empty set: none; else the group names named."""
    if re_form is None:
        return None
    if isinstance(re_form, float) and np.isnan(re_form):
        return set()
    text = str(re_form).strip().lstrip("~").strip()
    if text in ("0", "", "NA", "-1"):
        return set()
    groups = set()
    for piece in _split_top(text, "+"):
        bar = _bar_content(piece)
        if bar is None:
            raise ModelSpecError(f"re_form {re_form!r}: expected terms like '(1 | g)' or '~0'.")
        groups |= {":".join(f) for f in _expand_groups(bar[1], piece)}
    return groups


def _codes_for(frame: pd.DataFrame, factors: tuple, levels: list) -> np.ndarray:
    labels = frame[list(factors)].astype(str).agg(":".join, axis=1).to_numpy()
    lookup = {lab: i for i, lab in enumerate(levels)}
    return np.array([lookup.get(lab, -1) for lab in labels], dtype=np.int64)


def predict(fit, newdata=None, re_form=None) -> np.ndarray:
    model = fit.model
    groups = _groups_in(re_form)
    known = {b.group for b in model.blocks}
    if groups is not None and not groups <= known:
        raise ModelSpecError(f"re_form names group(s) {sorted(groups - known)} not in the model {sorted(known)}.")
    if newdata is None:
        out = model.X @ fit.estimates.beta
        for blk, b in zip(model.blocks, fit._modes):
            if groups is None or blk.group in groups:
                out = out + np.einsum("ip,ip->i", blk.Z, b[blk.codes])
        return out
    if not isinstance(newdata, pd.DataFrame):
        raise ModelSpecError("newdata must be a pandas DataFrame.")
    mf = model.frame
    try:
        Xfull = mf.fixed_spec.get_model_matrix(newdata, na_action="ignore")
    except Exception as exc:
        raise ModelSpecError(f"Cannot build the fixed effects for newdata: {exc}") from None
    X = np.asarray(Xfull[mf.fixed_names], dtype=float)
    out = X @ fit.estimates.beta
    for blk, b in zip(model.blocks, fit._modes):
        if groups is not None and blk.group not in groups:
            continue
        factors = mf.terms[blk.term_slices[0][0]].term.factors
        missing = [c for c in factors if c not in newdata.columns]
        if missing:
            raise ModelSpecError(f"newdata lacks grouping column(s) {missing}; use re_form='~0' to leave them out.")
        codes = _codes_for(newdata, factors, blk.levels)
        zs = []
        for t, sl in blk.term_slices:
            zs.append(np.asarray(mf.terms[t].spec.get_model_matrix(newdata, na_action="ignore"), dtype=float))
        Z = np.column_stack(zs)
        contrib = np.einsum("ip,ip->i", Z, b[np.maximum(codes, 0)])
        out = out + np.where(codes >= 0, contrib, 0.0)
    return out
