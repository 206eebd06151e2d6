"""lmm.power_curve: table, smallest size, plot."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import lmmjax as lmm  # noqa: E402
from lmmjax.errors import ModelSpecError  # noqa: E402
from lmmjax.powersim import PowerCurve, repeated_measures  # noqa: E402
from lmmjax.powersim.curve import power_curve  # noqa: E402
from lmmjax.powersim.result import PowerResult, clopper_pearson  # noqa: E402


@pytest.fixture(scope="module")
def curve():
    # the structure of test_power's Satterthwaite test at 12 subjects: compiled code is shared
    d = repeated_measures(12, times=4, between={"group": ["a", "b", "c"]})
    return lmm.power_curve(d, along="Subject", sizes=[12, 6], test="group", method="wald",
                           formula="y ~ Time + group + (1 | Subject)",
                           fixef={"group[T.b]": 3.0, "group[T.c]": 3.0},
                           varcorr={"Subject": 1.0}, sigma=1.0, nsim=4, seed=0, progress=False)


def test_curve_table(curve):
    assert isinstance(curve, PowerCurve)
    t = curve.table
    assert list(t["size"]) == [6, 12]  # sorted
    assert list(t["nobs"]) == [24, 48]
    assert {"power", "lower", "upper", "nsim", "n_failed", "n_singular", "seconds"} <= set(t.columns)
    assert all(isinstance(r, PowerResult) for r in curve.results)
    assert curve.results[1].ngroups == {"Subject": 12}
    assert curve.results[0].simulations["df"].eq(2).all()
    assert "PowerCurve" in repr(curve)


def _fake_curve(powers, sizes=(10, 20, 30)):
    rows = []
    for s, p in zip(sizes, powers):
        k = int(round(p * 100))
        lo, hi = clopper_pearson(k, 100)
        rows.append(dict(size=s, nobs=10 * s, power=k / 100, lower=lo, upper=hi, nsim=100))
    res = PowerResult(power=0.5, ci=(0, 1), level=0.95, nsim=100, n_significant=50, n_failed=0,
                      n_not_converged=0, n_singular=0, alpha=0.05, method="lrt", test=("x",),
                      formula="y ~ x + (1|g)", parameters={}, simulations=pd.DataFrame())
    return PowerCurve(table=pd.DataFrame(rows), results=[res], along="g")


def test_smallest():
    c = _fake_curve([0.5, 0.82, 0.95])
    assert c.smallest(0.8) == 20
    assert c.smallest(0.8, conservative=True) == 30
    assert c.smallest(0.99) is None


def test_plot_returns_figure_with_band_and_target_line():
    import matplotlib.pyplot as plt

    fig = _fake_curve([0.5, 0.82, 0.95]).plot()
    ax = fig.axes[0]
    assert ax.get_ylabel() == "power" and "g" in ax.get_xlabel()
    ys = [tuple(l.get_ydata()) for l in ax.get_lines()]
    assert (0.8, 0.8) in ys  # the target line
    assert len(ax.collections) >= 1  # the confidence band
    fig2, ax2 = plt.subplots()
    assert _fake_curve([0.1, 0.2, 0.3]).plot(ax=ax2) is fig2
    plt.close("all")


def test_curve_from_fit_along_and_within_errors():
    sleep = lmm.datasets.load("sleepstudy")
    with pytest.raises(ModelSpecError, match="exactly one"):
        power_curve(sleep, sizes=[5], formula="Reaction ~ Days + (1|Subject)")
    with pytest.raises(ModelSpecError, match="sizes"):
        power_curve(sleep, along="Subject", formula="Reaction ~ Days + (1|Subject)")


def test_shared_shapes_fit_exactly_the_smaller_design():
    """A size run on the largest design's shapes (rows deleted) = the smaller design itself."""
    from lmmjax.powersim import extend
    from lmmjax.powersim.curve import ROW_TAG, _deleted_rows
    from lmmjax.powersim.engine import _fit_many
    from tests.powersim.reference_loop import fit_loop
    from lmmjax.powersim.hypotheses import null_model
    from lmmjax.powersim.responses import simulate_responses
    from lmmjax.powersim.run import prepare, shared_shapes

    kw = dict(formula="y ~ Time + group + (1 | Subject)", fixef={"group[T.b]": 1.0, "group[T.c]": 2.0},
              varcorr={"Subject": 1.0}, sigma=1.0)
    big = repeated_measures(12, times=4, between={"group": ["a", "b", "c"]})
    big[ROW_TAG] = np.arange(len(big))
    bm, bt, bh, _, _ = prepare(big, "group", "wald", **kw)
    small = extend(big, along="Subject", n=6)
    sm, _, sh, _, _ = prepare(small, "group", "wald", **kw)
    deleted = _deleted_rows(bm, small)
    assert len(deleted) == 24 and sm.n_rows == 24
    shapes = shared_shapes(bm, bh, "lrt", deleted)
    assert shapes.model.dims == bm.dims  # the big design's compiled code serves
    Y = simulate_responses(bm, bt, np.arange(4), seed=2)
    Ys = Y[:, np.setdiff1d(np.arange(bm.n_rows), deleted)]
    a, b = _fit_many(shapes.model, Y, bt.theta), _fit_many(sm, Ys, bt.theta)
    np.testing.assert_allclose(a.deviance, b.deviance, rtol=1e-10)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-8)
    # the null model (ML), through the single-fit reference loop
    n0 = fit_loop(shapes.null.with_reml(False), Y[:2], bt.theta)
    s0 = fit_loop(null_model(sm, sh).with_reml(False), Ys[:2], bt.theta)
    np.testing.assert_allclose(n0.deviance, s0.deviance, rtol=1e-9)


def test_curve_progress_bar_counts_all_simulations(curve, capsys):
    capsys.readouterr()
    d = repeated_measures(12, times=4, between={"group": ["a", "b", "c"]})
    again = lmm.power_curve(d, along="Subject", sizes=[12, 6], test="group", method="wald",
                            formula="y ~ Time + group + (1 | Subject)",
                            fixef={"group[T.b]": 3.0, "group[T.c]": 3.0},
                            varcorr={"Subject": 1.0}, sigma=1.0, nsim=4, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "power curve:" in err and "/8" in err and "sim/s" in err
    pd.testing.assert_frame_equal(again.table.drop(columns="seconds"), curve.table.drop(columns="seconds"))
