"""Every plot function runs and writes a non-empty PNG; ``ax`` is honoured."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import lmmjax as lmm  # noqa: E402
from lmmjax.diagnostics import influence  # noqa: E402


def save(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=60)
    plt.close(fig)
    assert path.stat().st_size > 1000
    return path


@pytest.mark.parametrize("name", ["residuals_fitted", "qq", "scale_location", "ranef_qq",
                                  "ranef_density", "caterpillar", "cooks_distance", "diagnostics"])
def test_plot_functions_write_png(name, sleep_fit, tmp_path):
    fig = getattr(lmm.plot, name)(sleep_fit)
    assert isinstance(fig, matplotlib.figure.Figure)
    save(fig, tmp_path, name)


def test_spaghetti(sleep_df, tmp_path):
    fig = lmm.plot.spaghetti(sleep_df, "Days", "Reaction", "Subject")
    assert len(fig.axes[0].lines) == 18 + 1  # one per subject and the mean
    save(fig, tmp_path, "spaghetti")
    with pytest.raises(lmm.ModelSpecError):
        lmm.plot.spaghetti(sleep_df, "Days", "Reaction", "Nope")


def test_plots_draw_into_given_axes(sleep_fit, penicillin_fit, tmp_path):
    fig, axes = plt.subplots(2, 3)
    assert lmm.plot.qq(sleep_fit, ax=axes[0, 0]) is fig
    assert lmm.plot.residuals_fitted(sleep_fit, ax=axes[0, 1], type="marginal") is fig
    assert lmm.plot.caterpillar(sleep_fit, term="Days", ax=axes[0, 2]) is fig
    assert lmm.plot.ranef_qq(penicillin_fit, ax=axes[1, :2]) is fig
    infl = influence(penicillin_fit, level="observation", method="approximate")
    assert lmm.plot.cooks_distance(infl, ax=axes[1, 2]) is fig
    assert len(fig.axes) == 6
    save(fig, tmp_path, "grid")


def test_plots_on_crossed_model(penicillin_fit, tmp_path):
    fig = penicillin_fit.plot_diagnostics()
    save(fig, tmp_path, "penicillin_panel")
    fig = lmm.plot.caterpillar(penicillin_fit, group="plate")
    save(fig, tmp_path, "penicillin_caterpillar")


def test_profile_zeta(sleep_fit, tmp_path):
    try:
        prof = sleep_fit.profile(parm=["sigma", "Days"])
    except ImportError:
        pytest.skip("lmmjax.inference (profiles) not installed")
    fig = lmm.plot.profile_zeta(prof)
    assert len(fig.axes) == 2
    save(fig, tmp_path, "zeta")
    fig = lmm.plot.profile_zeta(sleep_fit, parm="sigma")
    save(fig, tmp_path, "zeta_fit")


def test_smoother_follows_a_line():
    import numpy as np

    x = np.linspace(0, 10, 200)
    gx, gy = lmm.plot.smooth(x, 2 * x + 1)
    np.testing.assert_allclose(gy, 2 * gx + 1, atol=1e-9)
