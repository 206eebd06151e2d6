"""Result objects of :func:`lmmjax.inference.emmeans`: marginal means, contrasts, joint tests.

Each behaves as its ``table`` (a tidy DataFrame: ``em["emmean"]``,
``em.loc[...]``, ``em.to_csv(...)`` all pass through) and prints like R's
emmeans, with ``by`` groups as separate blocks and the notes underneath.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..validate import check_bool, check_fraction
from . import emm_adjust, emm_infer, emm_plot

DDF_NAMES = {"satterthwaite": "satterthwaite", "kenward-roger": "kenward-roger",
             "residual": "residual (n - p)", "normal": "asymptotic"}


class TableResult:
    """Passes attribute and item access through to ``self.table``."""

    table: pd.DataFrame

    def __getitem__(self, key):
        return self.table[key]

    def __getattr__(self, name):
        if name.startswith("__") or name == "table":
            raise AttributeError(name)
        return getattr(self.table, name)

    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self):
        return iter(self.table)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return self.format()

    def _repr_html_(self) -> str:
        notes = "".join(f"<br>{line}" for line in self.footer())
        return self.table.to_html(na_rep="nonEst", float_format=lambda v: f"{v:.4g}") + f"<p>{notes[4:]}</p>"

    def footer(self) -> list:
        return []

    def format(self) -> str:
        raise NotImplementedError


# ---- text formatting ------------------------------------------------------------------------------
def _decimals(se: np.ndarray) -> int:
    se = np.abs(se[np.isfinite(se) & (se > 0)])
    if se.size == 0:
        return 4
    return int(np.clip(2 - np.floor(np.log10(np.median(se))), 0, 8))


def _fmt_col(values, kind: str, decimals: int) -> list:
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
        elif v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("nonEst" if kind == "est" else "NA" if kind != "p" else "NA")
        elif kind == "df":
            out.append("Inf" if not np.isfinite(v) else f"{v:.3g}" if v < 1000 else f"{v:.0f}")
        elif kind == "p":
            out.append("<.0001" if v < 1e-4 else f"{v:.4f}")
        elif kind == "t":
            out.append(f"{v:.3f}")
        elif kind == "int":
            out.append(f"{int(v)}")
        else:
            out.append(f"{v:.{decimals}f}")
    return out


def format_blocks(table: pd.DataFrame, by: list, columns: list, decimals: int | None = None) -> str:
    """emmeans-style text: one block per ``by`` group; ``columns`` = [(column, header, kind)]."""
    dec = decimals if decimals is not None else (
        _decimals(table["std_error"].to_numpy(float)) if "std_error" in table else 4)
    groups = [((), table)] if not by else list(table.groupby(by, sort=False, observed=True))
    blocks = []
    for key, sub in groups:
        cells = []
        for col, header, kind in columns:
            vals = sub[col].tolist()
            if kind == "label":
                vals = [str(v) for v in vals]
            cells.append([header] + _fmt_col(vals, kind, dec))
        widths = [max(len(c) for c in col) for col in cells]
        lines = []
        for i in range(len(sub) + 1):
            row = []
            for (col, header, kind), colcells, w in zip(columns, cells, widths):
                row.append(colcells[i].ljust(w) if kind == "label" else colcells[i].rjust(w))
            lines.append(" " + " ".join(row))
        if by:
            key = key if isinstance(key, tuple) else (key,)
            head = ", ".join(f"{b} = {k}" for b, k in zip(by, key)) + ":"
            lines.insert(0, head)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---- bootstrap intervals --------------------------------------------------------------------------
def bootstrap_limits(fit, L: np.ndarray, est: np.ndarray, boot, level: float, interval: str):
    """Percentile (or basic/normal/shortest) limits of each row's L·β over the bootstrap replicates."""
    if boot is None:
        raise ModelSpecError("method='bootstrap' needs boot=fit.bootstrap(...) (a BootstrapResult of this fit).")
    names = list(fit.model.frame.fixed_names)
    reps = getattr(boot, "replicates", None)
    if not isinstance(reps, pd.DataFrame):
        raise ModelSpecError(f"boot must be a BootstrapResult from fit.bootstrap(), not {type(boot).__name__}.")
    missing = [n for n in names if n not in reps.columns]
    original = boot.original.reindex(names).to_numpy(float) if not missing else None
    if missing or not np.allclose(original, fit.fixef.to_numpy(), rtol=1e-8, atol=1e-10):
        raise ModelSpecError("boot is not a bootstrap of this fit: its fixed effects "
                             f"{'lack ' + str(missing) if missing else 'differ from fit.fixef'}.")
    values = reps[names].to_numpy(float) @ np.where(np.isfinite(L), L, np.nan).T
    cols = [f"row{i}" for i in range(L.shape[0])]
    frame = pd.DataFrame(values, columns=cols)
    frame["converged"] = reps["converged"].to_numpy()
    frame["singular"] = reps["singular"].to_numpy()
    sub = replace(boot, replicates=frame, original=pd.Series(est, index=cols))
    ci = sub.ci(level=level, method=interval)
    return ci["lower"].to_numpy(float), ci["upper"].to_numpy(float)


# ---- marginal means -------------------------------------------------------------------------------
class EmmResult(TableResult):
    """Estimated marginal means (or trends): ``table`` has the factor columns, then the estimate
    (``emmean`` or ``<var>_trend``), ``std_error``, ``df``, ``lower``, ``upper``.

    Examples
    --------
    >>> em = fit.emmeans("recipe")  # doctest: +SKIP
    >>> em["emmean"]  # doctest: +SKIP
    >>> em.pairs(adjust="holm")  # doctest: +SKIP
    """

    def __init__(self, fit, table, L, basis, method, level, pri, by, est_name, notes, averaged_over,
                 trend=None):
        self.fit = fit
        self.table = table
        self.L = L
        self.basis = basis
        self.method = method
        self.level = level
        self.pri = list(pri)
        self.by = list(by)
        self.est_name = est_name
        self.notes = list(notes)
        self.averaged_over = list(averaged_over)
        self.trend = trend

    # ---- families (one per by group) -------------------------------------------------------------
    def _groups(self, by) -> list:
        if not by:
            return [np.arange(len(self.table))]
        keys = self.table[by].astype(str).agg("\x1f".join, axis=1).to_numpy()
        return [np.flatnonzero(keys == k) for k in dict.fromkeys(keys)]

    def _family_contrasts(self, coefficients, adjust: str, pairwise: bool, by, name: str):
        by = self.by if by is None else list(by)
        for b in by:
            if b not in self.pri + self.by:
                raise ModelSpecError(f"by: {b!r} is not a variable of these means ({self.pri + self.by}).")
        pri = [v for v in self.pri + self.by if v not in by]
        rows, names_all, Ls, fams = [], [], [], []
        for g, idx in enumerate(self._groups(by)):
            labels = emm_infer.row_labels(self.table.iloc[idx], pri)
            names, C = coefficients(labels)
            Lc = C @ np.where(np.isfinite(self.L[idx]), self.L[idx], np.nan)
            Ls.append(Lc)
            names_all += names
            rows += [idx[0]] * len(names)
            fams += [(g, len(idx))] * len(names)
        L = np.vstack(Ls)
        est, se, df = emm_infer.row_inference(self.fit, L, self.basis, self.method)
        return ContrastResult(self, L, names_all, np.array(rows), fams, est, se, df,
                              emm_adjust.adjust_method(adjust), pairwise, by, name)

    def pairs(self, adjust: str = "tukey", reverse: bool = False, by=None) -> "ContrastResult":
        """All pairwise differences within each ``by`` group ("A - B", emmeans' order and labels).

        Parameters
        ----------
        adjust : {"tukey", "holm", "bonferroni", "sidak", "BH", "none"}
            Multiplicity adjustment per ``by`` group; emmeans' default is Tukey.
        reverse : bool
            "B - A" instead of "A - B" (emmeans' ``revpairwise``).
        by : list, optional
            Grouping variables (default: those of the means).
        """
        reverse = check_bool(reverse, "reverse")
        return self._family_contrasts(lambda labels: emm_infer.pairwise_coefficients(labels, reverse),
                                      adjust, True, by, "pairs")

    def contrast(self, contrasts: dict, adjust: str = "none", by=None) -> "ContrastResult":
        """Custom contrasts ``{name: coefficients}``, one coefficient per mean of a ``by`` group.

        Examples
        --------
        >>> em.contrast({"C vs A+B": [-0.5, -0.5, 1]})  # doctest: +SKIP
        """
        return self._family_contrasts(lambda labels: emm_infer.custom_coefficients(contrasts, labels),
                                      adjust, False, by, "contrast")

    def ci(self, method: str = "wald", boot=None, level: float | None = None,
           interval: str = "percentile") -> pd.DataFrame:
        """Confidence limits: ``"wald"`` (t with the chosen df) or ``"bootstrap"`` from
        ``boot=fit.bootstrap(...)`` (L·β per replicate; ``interval`` as in ``BootstrapResult.ci``)."""
        level = self.level if level is None else check_fraction(level, "level")
        out = self.table[self.pri + self.by + [self.est_name]].copy()
        if method == "wald":
            est, se, df = (self.table[c].to_numpy(float) for c in (self.est_name, "std_error", "df"))
            out["lower"], out["upper"] = emm_infer.confidence_limits(est, se, df, level)
        elif method == "bootstrap":
            out["lower"], out["upper"] = bootstrap_limits(
                self.fit, self.L[:, self.basis.kept], self.table[self.est_name].to_numpy(float), boot, level,
                interval)
        else:
            raise ModelSpecError(f"Unknown interval method {method!r}; use 'wald' or 'bootstrap'.")
        return out

    def plot(self, ax=None, **kwargs):
        """Means with confidence intervals; an interaction plot (one line per level) with ``by``."""
        return emm_plot.plot_means(self, ax=ax, **kwargs)

    # ---- printing ---------------------------------------------------------------------------------
    def footer(self) -> list:
        lines = []
        avg = [v for v in self.averaged_over if v not in self.pri + self.by]
        if avg:
            lines.append("Results are averaged over the levels of: " + ", ".join(avg))
        lines.append(f"Degrees-of-freedom method: {DDF_NAMES[self.method]}")
        lines.append(f"Confidence level used: {self.level:g}")
        return lines + [f"NOTE: {n}" for n in self.notes]

    def format(self) -> str:
        z = self.method == "normal"
        cols = [(c, c, "label") for c in self.pri]
        cols += [(self.est_name, self.est_name.replace("_trend", ".trend"), "est"), ("std_error", "SE", "num"),
                 ("df", "df", "df"), ("lower", "asymp.LCL" if z else "lower.CL", "num"),
                 ("upper", "asymp.UCL" if z else "upper.CL", "num")]
        return format_blocks(self.table, self.by, cols) + "\n\n" + "\n".join(self.footer())


# ---- contrasts ------------------------------------------------------------------------------------
class ContrastResult(TableResult):
    """Contrasts of marginal means: ``table`` has ``contrast``, the ``by`` columns, ``estimate``,
    ``std_error``, ``df``, ``t_ratio``, ``p_value`` (adjusted per ``by`` group)."""

    def __init__(self, means: EmmResult, L, names, first_rows, families, est, se, df, adjust, pairwise, by,
                 kind):
        self.means = means
        self.fit = means.fit
        self.L = L
        self.method = means.method
        self.level = means.level
        self.by = list(by)
        self.adjust = adjust
        self.pairwise = pairwise
        self.kind = kind
        self.families = families
        table = pd.DataFrame({"contrast": names})
        for b in self.by:
            table[b] = means.table[b].iloc[first_rows].to_numpy()
        table["estimate"], table["std_error"], table["df"] = est, se, df
        t = np.full(len(est), np.nan)
        p = np.full(len(est), np.nan)
        self.used = {}
        for g, idx in self._family_index().items():
            n_means = families[idx[0]][1]
            t[idx], p[idx], used = emm_infer.family_tests(est[idx], se[idx], df[idx], adjust, n_means, pairwise)
            self.used[g] = used
        table["t_ratio"], table["p_value"] = t, p
        self.table = table

    def _family_index(self) -> dict:
        out: dict = {}
        for i, (g, _) in enumerate(self.families):
            out.setdefault(g, []).append(i)
        return {g: np.array(idx) for g, idx in out.items()}

    def confint(self, level: float | None = None, adjust: str | None = None) -> pd.DataFrame:
        """Confidence limits of the contrasts, adjusted as the p-values (or by ``adjust``)."""
        level = self.level if level is None else check_fraction(level, "level")
        adjust = self.adjust if adjust is None else emm_adjust.adjust_method(adjust)
        out = self.table[["contrast"] + self.by + ["estimate", "std_error", "df"]].copy()
        lo = np.full(len(out), np.nan)
        hi = np.full(len(out), np.nan)
        for g, idx in self._family_index().items():
            n_means = self.families[idx[0]][1]
            lo[idx], hi[idx], _ = emm_infer.family_limits(
                out["estimate"].to_numpy(float)[idx], out["std_error"].to_numpy(float)[idx],
                out["df"].to_numpy(float)[idx], adjust, n_means, self.pairwise, level)
        out["lower"], out["upper"] = lo, hi
        return out

    def ci(self, method: str = "wald", boot=None, level: float | None = None, adjust: str | None = None,
           interval: str = "percentile") -> pd.DataFrame:
        """``"wald"``: :meth:`confint`; ``"bootstrap"``: limits from ``boot=fit.bootstrap(...)``
        (unadjusted for multiplicity)."""
        if method == "wald":
            return self.confint(level=level, adjust=adjust)
        if method != "bootstrap":
            raise ModelSpecError(f"Unknown interval method {method!r}; use 'wald' or 'bootstrap'.")
        level = self.level if level is None else check_fraction(level, "level")
        out = self.table[["contrast"] + self.by + ["estimate"]].copy()
        out["lower"], out["upper"] = bootstrap_limits(
            self.fit, self.L[:, self.means.basis.kept], self.table["estimate"].to_numpy(float), boot, level,
            interval)
        return out

    def footer(self) -> list:
        lines = []
        avg = [v for v in self.means.averaged_over if v not in self.means.pri + self.means.by]
        if avg:
            lines.append("Results are averaged over the levels of: " + ", ".join(avg))
        lines.append(f"Degrees-of-freedom method: {DDF_NAMES[self.method]}")
        used = list(self.used.values())
        if used and used[0] != "none":
            idx = next(iter(self._family_index().values()))
            line = emm_adjust.describe(used[0], len(idx), self.families[idx[0]][1])
            if used[0] != self.adjust:
                line += f" ({self.adjust!r} changed: it applies to one set of pairwise comparisons only)"
            lines.append(line)
        return lines

    def format(self) -> str:
        z = self.method == "normal"
        cols = [("contrast", "contrast", "label"), ("estimate", "estimate", "est"), ("std_error", "SE", "num"),
                ("df", "df", "df"), ("t_ratio", "z.ratio" if z else "t.ratio", "t"), ("p_value", "p.value", "p")]
        return format_blocks(self.table, self.by, cols) + "\n\n" + "\n".join(self.footer())


# ---- joint tests ----------------------------------------------------------------------------------
class JointTestsResult(TableResult):
    """emmeans' ``joint_tests``: ``table`` indexed by model term, columns ``df1, df2, f_ratio, p_value``
    (and ``note``: ``e`` where only the estimable part of a hypothesis was tested, ``d`` where its
    rows were linearly dependent)."""

    def __init__(self, table: pd.DataFrame, method: str, hypotheses: dict):
        self.table = table
        self.method = method
        self.hypotheses = hypotheses

    def footer(self) -> list:
        lines = [f"Degrees-of-freedom method: {DDF_NAMES[self.method]}"]
        if "note" in self.table and any("e" in n for n in self.table["note"]):
            lines.append("e: df1 reduced due to non-estimability")
        if "note" in self.table and any("d" in n for n in self.table["note"]):
            lines.append("d: df1 reduced due to linear dependence")
        return lines

    def format(self) -> str:
        t = self.table.reset_index()
        cols = [("model term", "model term", "label"), ("df1", "df1", "int"), ("df2", "df2", "num"),
                ("f_ratio", "F.ratio", "t"), ("p_value", "p.value", "p")]
        if "note" in t:
            cols.append(("note", "note", "label"))
        text = format_blocks(t, [], cols, decimals=2)
        return text + "\n\n" + "\n".join(self.footer())
