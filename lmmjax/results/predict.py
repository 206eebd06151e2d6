"""Predictions on new data, with chosen random effects."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..formula.bars import bar_content, expand_groups, plain_message, split_top
from ..formula.levels import MISSING, NEW, column_levels, is_categorical, level_label, match_levels
from ..formula.model_frame import evaluate_offset


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
    for piece in split_top(text, "+"):
        bar = bar_content(piece)
        if bar is None:
            raise ModelSpecError(f"re_form {re_form!r}: expected terms like '(1 | g)' or '~0'.")
        groups |= {":".join(f) for f in expand_groups(bar[1], piece)}
    return groups


def _new_levels_message(column: str, values: list) -> str:
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:5]) + (f" (and {len(values) - 5} more)" if len(values) > 5 else "")
    return (f"newdata has level(s) {shown} of {column!r} that the fit did not see; a fixed effect "
            "has no estimate for a new level (lme4 refuses them too).")


def _aligned(newdata: pd.DataFrame, mf, needed: list, fixed_cols: set):
    """newdata's model columns in the training representation, and the rows that are complete.

    Categorical columns are matched to the fit's levels by value
    (:func:`lmmjax.formula.levels.match_levels`). A new level is an error
    in a column the fixed part or a random-effect term uses; in a column
    used only for grouping it is kept as "new" (code -1, random effect 0).
    """
    frame, complete, new_level = {}, np.ones(len(newdata), bool), {}
    for col in needed:
        train = mf.data[col]
        values = newdata[col]
        if not (is_categorical(train) or col not in fixed_cols):
            frame[col] = values.to_numpy()
            complete &= ~pd.isna(values).to_numpy()
            continue
        levels = column_levels(train)
        idx = match_levels(values, levels)
        complete &= idx != MISSING
        unseen = idx == NEW
        if unseen.any() and col in fixed_cols:
            raise ModelSpecError(_new_levels_message(col, list(pd.unique(values[unseen]))))
        new_level[col] = unseen
        if col in fixed_cols:  # rows with a missing value get NaN later; evaluate them on a placeholder
            idx = np.where(idx == MISSING, 0, idx)
        if isinstance(train.dtype, pd.CategoricalDtype):
            frame[col] = pd.Categorical.from_codes(np.where(idx >= 0, idx, -1), dtype=train.dtype)
        else:
            taken = np.asarray(levels, dtype=object)[np.where(idx >= 0, idx, 0)]
            frame[col] = np.where(idx >= 0, taken, None)
    return pd.DataFrame(frame, index=newdata.index), complete, new_level


def _matrix(spec, frame: pd.DataFrame, what: str) -> np.ndarray:
    """Evaluate a stored model spec on new data; a new level of a transformed factor is an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mm = spec.get_model_matrix(frame, na_action="ignore")
        except Exception as exc:
            raise ModelSpecError(f"Cannot build {what} for newdata: {plain_message(exc)}") from None
    for w in caught:
        text = str(w.message)
        if "categories outside of the nominated levels" in text:
            found = re.search(r"\{.*?\}", text)
            levels = found.group(0) if found else ""
            factors = [str(f) for f, (kind, _) in spec.encoder_state.items() if kind.value == "categorical"]
            raise ModelSpecError(
                f"newdata has level(s) {levels} of {' or '.join(factors)} in {what} that the fit did "
                "not see; a fixed effect has no estimate for a new level (lme4 refuses them too).")
    return mm


def _codes_for(frame: pd.DataFrame, factors: tuple, levels: list) -> np.ndarray:
    """Index of each row's group in ``levels`` (-1: a level the fit did not see)."""
    labels = pd.Series([":".join(map(level_label, row)) for row in zip(*(frame[f] for f in factors))])
    lookup = {lab: i for i, lab in enumerate(levels)}
    return labels.map(lookup).fillna(-1).to_numpy(dtype=np.int64)


def _on_source_rows(values: np.ndarray, mf) -> np.ndarray:
    """Predictions for the rows used, placed on the rows of the data the model was built from."""
    if mf.positions is None or len(mf.positions) == len(mf.source_index):
        return values
    out = np.full(len(mf.source_index), np.nan)
    out[mf.positions] = values
    return out


def predict(fit, newdata=None, re_form=None) -> np.ndarray:
    """Predictions on the fitted data or on ``newdata`` (see :meth:`LmerFit.predict`)."""
    model = fit.model
    mf = model.frame
    groups = _groups_in(re_form)
    known = {b.group for b in model.blocks}
    if groups is not None and not groups <= known:
        raise ModelSpecError(f"re_form names group(s) {sorted(groups - known)} not in the model {sorted(known)}.")
    blocks = [(blk, b) for blk, b in zip(model.blocks, fit._modes) if groups is None or blk.group in groups]
    offset = mf.offset if mf.offset is not None else 0.0
    if newdata is None:
        out = model.X @ fit.estimates.beta + model.offset  # formula offset() and offset= together
        for blk, b in blocks:
            out = out + np.einsum("ip,ip->i", blk.Z, b[blk.codes])
        return _on_source_rows(out, mf)
    if not isinstance(newdata, pd.DataFrame):
        raise ModelSpecError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}.")
    parsed = mf.formula
    terms = [mf.terms[t] for blk, _ in blocks for t, _ in blk.term_slices]
    fixed_cols = set(parsed.fixed_variables) | {v for tm in terms for v in tm.term.variables}
    group_cols = {f for tm in terms for f in tm.term.factors}
    needed = [c for c in mf.data.columns if c in fixed_cols or c in group_cols]
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        hint = "; use re_form='~0' to leave the random effects out" if set(missing) <= group_cols - fixed_cols else ""
        raise ModelSpecError(f"newdata lacks column(s) {missing} used by the model{hint}.")
    frame, complete, _ = _aligned(newdata, mf, needed, fixed_cols)
    X = np.asarray(_matrix(mf.fixed_spec, frame, "the fixed effects")[mf.fixed_names], dtype=float)
    if np.any(model.offset != offset):
        raise ModelSpecError("The model was fitted with offset= given as an argument, which cannot be "
                             "evaluated on newdata; write it in the formula as offset(column) instead.")
    out = X @ fit.estimates.beta + (evaluate_offset(parsed, frame, check=False) if parsed.offsets else 0.0)
    for blk, b in blocks:
        factors = mf.terms[blk.term_slices[0][0]].term.factors
        codes = _codes_for(frame, factors, blk.levels)
        Z = np.column_stack([
            np.asarray(_matrix(mf.terms[t].spec, frame, f"random-effect term {mf.terms[t].term.source!r}"), dtype=float)
            for t, _ in blk.term_slices])
        contrib = np.einsum("ip,ip->i", Z, b[np.maximum(codes, 0)])
        out = out + np.where(codes >= 0, contrib, 0.0)
    return np.where(complete, out, np.nan)
