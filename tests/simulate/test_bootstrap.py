"""Parametric bootstrap: agreement with lme4's bootMer, reproducibility, intervals."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lmmjax.simulate import BootstrapResult
from tests.reference_data import load_fixture

from .conftest import SLEEP, quiet_lmer

ROOT = Path(__file__).resolve().parents[2]


def derived(beta, sigma, theta):
    """The fixture's per-replicate quantities, computed the way the R script does."""
    t1, t2, t3 = theta[:, 0], theta[:, 1], theta[:, 2]
    r = np.sqrt(t2 ** 2 + t3 ** 2)
    return np.column_stack([beta[:, 0], beta[:, 1], sigma, sigma * t1, sigma * r, t2 / r])


def quantile_se(x, p):
    """Distribution-free standard error of the empirical p-quantile of x.

    The order statistics at ranks N·p ± sqrt(N·p(1−p)) lie one binomial
    standard deviation either side of the quantile's rank, so half the
    distance between them estimates sqrt(p(1−p)/N) / f(q_p) without a
    density estimate.
    """
    x = np.sort(x[np.isfinite(x)])
    n = x.size
    half = np.sqrt(n * p * (1 - p))
    lo = int(np.clip(np.floor(n * p - half), 0, n - 1))
    hi = int(np.clip(np.ceil(n * p + half), 0, n - 1))
    return 0.5 * (x[hi] - x[lo])


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_percentile_intervals_agree_with_bootmer(sleep_boot):
    """95% percentile intervals vs lme4's bootMer (2,000 replicates each, the fixture's
    replicates themselves).

    The two runs use different random streams, so their interval limits differ by
    Monte Carlo error only. Each limit is an empirical quantile with standard error
    se = sqrt(p(1−p)/N)/f(q) (estimated from order statistics, :func:`quantile_se`,
    separately for each run); the difference of two independent estimates has
    standard error sqrt(se_R² + se_lmmjax²), and we allow 4 of them (a false alarm
    rate of 6e-5 per limit, 12 limits). The whole distributions are also compared
    with a two-sample Kolmogorov–Smirnov test (p > 0.001).
    """
    ref = load_fixture("bootstrap", "sleep_bootmer")
    assert ref["formula"] == SLEEP and ref["reml"] and not ref["use_u"]
    R = np.asarray(ref["derived_replicates"], float)
    assert R.shape == (ref["nsim"], 6)
    reps = sleep_boot.replicates
    ours = derived(reps[["Intercept", "Days"]].to_numpy(), reps["sigma"].to_numpy(), sleep_boot.theta)
    # the fixture's own intervals are type-7 quantiles of its replicates
    np.testing.assert_allclose(np.quantile(R, [0.025, 0.975], axis=0),
                               [ref["percentile_95_quantile7"]["lower"], ref["percentile_95_quantile7"]["upper"]],
                               rtol=1e-12)
    for j, name in enumerate(ref["derived_names"]):
        for p in (0.025, 0.975):
            q_r, q_o = np.quantile(R[:, j], p), np.quantile(ours[:, j], p)
            tol = 4 * np.hypot(quantile_se(R[:, j], p), quantile_se(ours[:, j], p))
            assert abs(q_o - q_r) < tol, (name, p, q_o, q_r, tol)
        assert stats.ks_2samp(R[:, j], ours[:, j]).pvalue > 1e-3, name
    # and our own ci() reports the same numbers for the parameters both define
    ci = sleep_boot.ci()
    for j, col in [(0, "Intercept"), (1, "Days"), (2, "sigma"), (3, "sd(Intercept|Subject)"),
                   (4, "sd(Days|Subject)")]:
        np.testing.assert_allclose(ci.loc[col].to_numpy(), np.quantile(ours[:, j], [0.025, 0.975]), rtol=1e-12)


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_replicates_equal_standalone_fits(sleep_fit, sleep_data, sleep_boot):
    """Replicate i is fit.simulate(n, seed)[i] refitted: equal to lmer on it to 1e-6.

    Where the standalone L-BFGS-B fit stops at a worse point (replicate 1999:
    θ = (0.001, 0.149, 0), REML criterion 1755.38 against 1748.91 here) the
    batched refit must be the better one; elsewhere they agree.
    """
    Y = sleep_fit.simulate(sleep_boot.n, seed=sleep_boot.seed)
    reps = sleep_boot.replicates
    better = 0
    for i in [0, 1, 250, 777, 1234, 1999]:
        ref = quiet_lmer(SLEEP, sleep_data.assign(Reaction=Y[i]))
        assert sleep_boot.deviance[i] <= ref.deviance + 1e-9 * abs(ref.deviance)
        if sleep_boot.deviance[i] < ref.deviance - 1e-6:
            better += 1
            continue
        np.testing.assert_allclose(sleep_boot.theta[i], ref.theta, rtol=1e-6, atol=1e-6)
        expected = pd.concat([ref.fixef, ref.sdcor]).to_numpy()
        np.testing.assert_allclose(reps.iloc[i, :-2].to_numpy(float), expected, rtol=1e-6, atol=1e-6)
        assert reps["singular"].iloc[i] == ref.singular
    assert better <= 1


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_same_replicates_whatever_the_batch_size(sleep_fit, sleep_boot):
    """Batch sizes 1, 7 and 1000 (the shared run) give identical replicates: every
    replicate runs in a vmapped group of the same width (see batched.LANE)."""
    n = 20
    for bs in (1, 7):
        b = sleep_fit.bootstrap(n, seed=sleep_boot.seed, batch_size=bs, progress=False)
        np.testing.assert_array_equal(b.theta, sleep_boot.theta[:n])
        pd.testing.assert_frame_equal(b.replicates, sleep_boot.replicates.iloc[:n])


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_same_replicates_on_four_devices(sleep_boot):
    """Sharded over 4 (forced host) devices in a subprocess: the same replicates.

    XLA compiles the per-device program for the 4-device layout separately, so
    sums may be ordered differently: equal to rounding (relative 1e-9), not bitwise.
    """
    script = textwrap.dedent(f"""
        import os, json
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import warnings, numpy as np, jax
        import lmmjax as lmm
        assert jax.device_count() == 4, jax.devices()
        warnings.simplefilter("ignore")
        fit = lmm.lmer({SLEEP!r}, lmm.datasets.load("sleepstudy"))
        b = fit.bootstrap(64, seed={sleep_boot.seed}, batch_size=64, progress=False)
        print(json.dumps(dict(theta=b.theta.tolist(), reps=b.replicates.iloc[:, :-2].to_numpy().tolist(),
                              conv=b.replicates["converged"].tolist())))
    """)
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["theta"], sleep_boot.theta[:64], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["reps"], sleep_boot.replicates.iloc[:64, :-2].to_numpy(float),
                               rtol=1e-9, atol=1e-12)
    assert got["conv"] == sleep_boot.replicates["converged"].iloc[:64].tolist()


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_interval_methods(sleep_fit, sleep_boot):
    reps, orig = sleep_boot.replicates, sleep_boot.original
    names = list(sleep_fit.fixef.index) + list(sleep_fit.sdcor.index)
    assert list(reps.columns) == names + ["converged", "singular"]
    assert list(orig.index) == names
    pct = sleep_boot.ci()
    assert list(pct.index) == names and list(pct.columns) == ["lower", "upper"]
    x = reps["Days"].to_numpy()
    q = np.quantile(x, [0.025, 0.975])
    np.testing.assert_allclose(pct.loc["Days"], q)
    np.testing.assert_allclose(sleep_boot.ci(method="basic").loc["Days"], 2 * orig["Days"] - q[::-1])
    z = stats.norm.ppf(0.975)
    centre = 2 * orig["Days"] - x.mean()
    np.testing.assert_allclose(sleep_boot.ci(method="normal").loc["Days"],
                               [centre - z * x.std(ddof=1), centre + z * x.std(ddof=1)])
    short = sleep_boot.ci(method="shortest")
    for name in names:
        v = reps[name].to_numpy(float)
        v = v[np.isfinite(v)]
        lo, hi = short.loc[name]
        assert np.mean((v >= lo) & (v <= hi)) >= 0.95
        assert hi - lo <= pct.loc[name, "upper"] - pct.loc[name, "lower"] + 1e-12
    narrow = sleep_boot.ci(level=0.5)
    assert ((narrow["upper"] - narrow["lower"]) < (pct["upper"] - pct["lower"])).all()
    for method in ("basic", "normal"):  # limits kept in the parameter space
        ci = sleep_boot.ci(method=method)
        assert ci.loc["cor(Intercept,Days|Subject)"].between(-1, 1).all()
        assert (ci.filter(like="sd(", axis=0)["lower"] >= 0).all()
    with pytest.raises(ValueError):
        sleep_boot.ci(method="bca")
    with pytest.raises(ValueError):
        sleep_boot.ci(level=95)


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_printing_counts_flagged_replicates(sleep_boot):
    reps = sleep_boot.replicates.iloc[:10].copy()
    reps["converged"] = [False, False, False] + [True] * 7
    reps["singular"] = [True, True] + [False] * 8
    res = BootstrapResult(
        replicates=reps, original=sleep_boot.original, n=10, seed=0, reml=True, use_u=False,
        theta=sleep_boot.theta[:10], deviance=sleep_boot.deviance[:10], n_iter=sleep_boot.n_iter[:10],
        message=sleep_boot.message[:10])
    text = str(res)
    assert "converged: 7 of 10; 3 did not converge" in text
    assert "singular fits: 2" in text
    assert len(res.ci(converged_only=True)) == len(res.parameters)
    assert "n=10" in repr(res) and "<table" in res._repr_html_()
    assert f"converged: {sleep_boot.n_converged} of 2000" in str(sleep_boot)
    assert sleep_boot.n_singular == int(sleep_boot.replicates["singular"].sum()) > 0


@pytest.mark.slow  # 2,000 bootstrap replicates
def test_confint_bootstrap(sleep_fit, sleep_boot):
    pytest.importorskip("lmmjax.inference")
    ci = sleep_fit.confint(method="bootstrap", n=2000, seed=sleep_boot.seed, batch_size=1000, progress=False)
    pd.testing.assert_frame_equal(ci[["lower", "upper"]], sleep_boot.ci(), check_names=False)
