"""A model-comparison table for several fits: AIC, BIC and likelihood-ratio tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..inference import anova_models
from ..lmer import ml_fit
from .report import fmt_num, fmt_p, md_row


def compare(*fits, names=None, refit: bool = True) -> pd.DataFrame:
    """Compare fits to the same data: information criteria and LR tests.

    REML fits are refitted by ML first (``refit=True``): REML likelihoods of
    models with different fixed effects are not comparable. Models are
    ordered by number of parameters; each row's likelihood-ratio test
    compares it with the row above (via :func:`lmmjax.anova` when the models
    are nested; NaN otherwise — compare non-nested models by AIC/BIC).

    Returns
    -------
    DataFrame, one row per model, columns ``formula, npar, aic, bic, loglik,
    deviance, delta_aic, aic_weight, chisq, df, p_value``. ``aic_weight`` are
    Akaike weights, exp(−ΔAIC/2) normalised; ``attrs["notes"]`` holds caveats
    (refits, tests on the boundary).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> from lmmjax.diagnostics import compare
    >>> df = lmm.datasets.load("sleepstudy")
    >>> m0 = lmm.lmer("Reaction ~ Days + (1 | Subject)", df)
    >>> m1 = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    >>> compare(m0, m1).index.tolist()
    ['m0', 'm1']
    """
    if len(fits) < 2:
        raise ModelSpecError("compare() needs at least two fits.")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(fits))]
    if len(names) != len(fits):
        raise ModelSpecError(f"{len(names)} names for {len(fits)} fits.")
    nobs = {f.nobs for f in fits}
    if len(nobs) > 1:
        raise ModelSpecError(f"The fits use different numbers of observations {sorted(nobs)}; "
                             "models can only be compared on the same rows.")
    notes = []
    formulas = dict(zip(names, [f.formula for f in fits]))
    if refit and any(f.reml for f in fits):
        notes.append("REML fits were refitted by ML for the comparison.")
        ml = [ml_fit(f) for f in fits]
    else:
        ml = list(fits)
    order = np.argsort([f.n_params for f in ml], kind="stable")
    ml = [ml[i] for i in order]
    names = [names[i] for i in order]
    table = pd.DataFrame({
        "formula": [formulas[n] for n in names],
        "npar": [f.n_params for f in ml],
        "aic": [f.aic for f in ml],
        "bic": [f.bic for f in ml],
        "loglik": [f.loglik for f in ml],
        "deviance": [-2.0 * f.loglik for f in ml],
    }, index=pd.Index(names, name="model"))
    table["delta_aic"] = table["aic"] - table["aic"].min()
    w = np.exp(-0.5 * table["delta_aic"].to_numpy())
    table["aic_weight"] = w / w.sum()
    lrt = None
    try:
        lrt = anova_models(*ml, names=names, refit=False)
        notes += list(lrt.attrs.get("notes", []))
        lrt = lrt.reindex(names)[["chisq", "df", "p_value"]]
    except ModelSpecError as exc:
        lrt = pd.DataFrame(np.nan, index=names, columns=["chisq", "df", "p_value"])
        notes.append(f"No likelihood-ratio tests: {exc}")
    table = table.join(lrt)
    table.attrs["notes"] = notes
    return table


def format_comparison(table: pd.DataFrame, format: str = "text") -> str:
    """The comparison table as aligned text or a Markdown table."""
    cols = ["npar", "aic", "bic", "loglik", "delta_aic", "aic_weight", "chisq", "df", "p_value"]
    heads = ["npar", "AIC", "BIC", "logLik", "ΔAIC", "weight", "χ²", "df", "p"]

    def cell(c, v):
        if pd.isna(v):
            return ""
        if c in ("npar", "df"):
            return str(int(v))
        if c == "p_value":
            return fmt_p(v).replace("p ", "").replace("= ", "")
        if c == "aic_weight":
            return f"{v:.3f}"
        return fmt_num(v, 6) if c in ("aic", "bic", "loglik") else f"{v:.2f}"

    rows = [[str(name), table.loc[name, "formula"]] + [cell(c, table.loc[name, c]) for c in cols]
            for name in table.index]
    header = ["model", "formula"] + heads
    notes = table.attrs.get("notes", [])
    if format == "markdown":
        lines = [md_row(header), "|---|---|" + "---:|" * len(heads)]
        lines += [md_row([r[0], f"`{r[1]}`"] + r[2:]) for r in rows]
        return "\n".join(lines + [""] + [f"*{n}*" for n in notes])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    return "\n".join(lines + notes)
