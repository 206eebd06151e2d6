"""The methods-and-results report and the model-comparison table."""
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.diagnostics import compare, format_comparison, report, variance_component_uncertainty
from lmmjax.diagnostics.report import fmt_cor, fmt_num, fmt_p

from .gfm_tables import split_row, tables as gfm_tables
from .helpers import quiet_fit


@pytest.fixture(scope="module")
def sleep_report(sleep_fit):
    return sleep_fit.report()


def test_report_contains_the_numbers_of_the_fit(sleep_fit, sleep_report):
    text = " ".join(sleep_report.split())  # undo the line wrapping
    fit = sleep_fit
    for name, value in fit.fixef.items():
        assert f"{name} {fmt_num(value)}" in text
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    for s in se:
        assert f"SE {fmt_num(s)}" in text
    for name, value in fit.sdcor.items():
        assert (fmt_cor(value) if name.startswith("cor(") else fmt_num(value)) in text
    assert "24.74" in text and "5.922" in text and "25.59" in text and "10.47" in text
    assert "180 observations" in text and "18 levels of Subject" in text
    assert "restricted maximum likelihood (REML)" in text
    assert f"lmmjax {lmm.__version__}" in text
    assert "unstructured 2 × 2 covariance matrix" in text
    assert "treated as random because" in text
    assert "95% CI" in text
    assert "raised no red flags" in text
    assert f"REML criterion {fmt_num(fit.deviance, 6)}" in text


def test_report_inference_parts(sleep_fit, sleep_report):
    text = " ".join(sleep_report.split())
    try:
        ct = sleep_fit.coef_table()
    except ImportError:  # lmmjax.inference not installed: Wald intervals, no p-values
        assert "Wald 95% confidence intervals" in text
        return
    row = ct.loc["Days"]
    assert f"t({fmt_num(row.df, 3)}) = {row.t_value:.2f}, {fmt_p(row.p_value)}" in text
    assert "Satterthwaite" in text
    assert "profile-likelihood intervals" in text


def test_report_paragraphs_and_markdown(sleep_fit, sleep_report):
    paragraphs = sleep_report.split("\n\n")
    assert len(paragraphs) == 3
    assert all(len(line) <= 88 for line in sleep_report.splitlines())
    md = report(sleep_fit, format="markdown", vc_ci="wald")
    assert md.startswith("**Methods.**")
    assert "`Reaction ~ Days + (Days | Subject)`" in md
    fixed, random = gfm_tables(md)
    assert fixed[0] == ["", "estimate", "std_error", "lower", "upper", "df", "t_value", "p_value"]
    assert [row[:2] for row in fixed[1:]] == [["Intercept", "251.4"], ["Days", "10.47"]]
    assert random[0] == ["", "estimate", "lower", "upper"]
    # '|' in the names of variance components is escaped, so no row shifts a column
    assert [row[0] for row in random[1:]] == list(sleep_fit.sdcor.index)
    assert [row[1] for row in random[1:]] == [fmt_num(v) for v in sleep_fit.sdcor]
    assert all(row[2] and row[3] for row in random[1:])
    assert "approximate Wald intervals" in md
    with pytest.raises(lmm.ModelSpecError):
        report(sleep_fit, format="html")


def test_report_names_red_flags_nesting_and_icc(pastes_crossed_fit, penicillin_fit):
    text = " ".join(report(pastes_crossed_fit, vc_ci="wald").split())
    assert "red flags" in text and "recur in every level of 'batch'" in text
    assert "fewer than five levels" in text
    pen = " ".join(report(penicillin_fit, vc_ci="wald").split())
    assert "plate and sample are crossed" in pen
    assert "intraclass correlation" in pen



def test_report_describes_nesting(pastes_nested_fit, sleep_unbalanced_fit):
    from lmmjax.diagnostics.report import _describe_random

    text = _describe_random(pastes_nested_fit)
    assert "batch:cask is nested within batch" in text
    assert "For batch:cask (30 levels, 2.00 observations per level on average)" in text
    assert "In the data" not in _describe_random(sleep_unbalanced_fit)


def test_report_for_categorical_and_uncorrelated_terms(sleep_df):
    fit = quiet_fit("Reaction ~ Days + (Days || Subject)", sleep_df)
    text = " ".join(report(fit, vc_ci="wald").split())
    assert "uncorrelated with each other" in text
    cake = quiet_fit("angle ~ recipe + temperature + (1 | recipe:replicate)", lmm.datasets.load("cake"))
    text = " ".join(report(cake, vc_ci="wald").split())
    assert "reference level 'A' for recipe" in text


def test_variance_component_uncertainty(sleep_fit):
    unc = variance_component_uncertainty(sleep_fit)
    assert list(unc.index) == list(sleep_fit.sdcor.index)
    # Close to lme4's profile intervals (REML curvature, Wald on the log scale).
    lo, hi = unc.loc["sd(Intercept|Subject)", ["lower", "upper"]]
    assert 13 < lo < 17 and 36 < hi < 41
    assert (unc.lower < unc.estimate).all() and (unc.estimate < unc.upper).all()


def test_comparison_table(sleep_df, sleep_fit):
    m0 = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep_df)
    m1 = quiet_fit("Reaction ~ Days + (Days || Subject)", sleep_df)
    table = compare(sleep_fit, m0, m1, names=["full", "int", "uncor"])
    assert list(table.index) == ["int", "uncor", "full"]  # ordered by parameters
    assert list(table.npar) == [4, 5, 6]
    ml = [f.refit(reml=False) for f in (m0, m1, sleep_fit)]
    np.testing.assert_allclose(table.aic, [f.aic for f in ml], rtol=1e-8)
    np.testing.assert_allclose(table.bic, [f.bic for f in ml], rtol=1e-8)
    assert table.aic_weight.sum() == pytest.approx(1.0)
    assert table.delta_aic.min() == 0
    chisq = 2 * (ml[1].loglik - ml[0].loglik)
    assert table.loc["uncor", "chisq"] == pytest.approx(chisq, rel=1e-6)
    assert table.loc["uncor", "df"] == 1 and table.loc["uncor", "p_value"] < 1e-6
    assert any("REML" in n for n in table.attrs["notes"])
    text = format_comparison(table)
    assert "uncor" in text and "AIC" in text
    md = format_comparison(table, "markdown")
    assert md.startswith("| model | formula |")
    (rendered,) = gfm_tables(md)
    assert rendered[0][:3] == ["model", "formula", "npar"]
    # The formulas' bars are escaped, also inside the code span
    assert [row[1] for row in rendered[1:]] == [f"`{f}`" for f in table.formula]
    assert [row[2] for row in rendered[1:]] == ["4", "5", "6"]
    with pytest.raises(lmm.ModelSpecError):
        compare(sleep_fit)


def test_gfm_reader_splits_on_unescaped_pipes_only():
    # The reader the tests use must itself behave like a GFM renderer.
    assert split_row("| a | b\\|c | `x \\| y` |") == ["a", "b|c", "`x | y`"]
    assert split_row("a | b") == ["a", "b"]
    (t,) = gfm_tables("| h1 | h2 |\n|---|--:|\n| sd(a|b) | 1 | 2 |\n| x |\n\nafter")
    assert t == [["h1", "h2"], ["sd(a", "b)"], ["x", ""]]  # an unescaped pipe shifts the row
