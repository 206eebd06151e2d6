"""Progress bars (lmmjax.progress): shown only for work longer than a second,
"compiling…" while a new program compiles, off with progress=False or LMMJAX_PROGRESS=0."""
import time

import jax
import jax.numpy as jnp
import pytest

from lmmjax import progress as pg


@pytest.fixture
def fast_delay(monkeypatch):
    monkeypatch.setattr(pg, "DELAY", 0.05)
    monkeypatch.setattr(pg, "TICK", 0.02)
    monkeypatch.delenv(pg.ENV, raising=False)


def test_quick_work_prints_nothing(capsys, monkeypatch):
    monkeypatch.delenv(pg.ENV, raising=False)
    with pg.Progress(total=10, desc="quick", unit="fit") as bar:
        bar.update(10)
    assert bar.bar is None
    assert capsys.readouterr().err == ""


def test_long_work_shows_the_bar_after_the_delay(capsys, fast_delay):
    with pg.Progress(total=4, desc="refits", unit="fit") as bar:
        time.sleep(0.3)
        bar.update(2)
        bar.update(2)
        assert bar.bar is not None and bar.bar.n == 4
    err = capsys.readouterr().err
    assert "refits" in err and "0/4" in err


def test_progress_false_and_the_environment_turn_it_off(capsys, fast_delay, monkeypatch):
    with pg.Progress(total=4, desc="off", progress=False) as bar:
        time.sleep(0.2)
        bar.update(4)
    assert bar.bar is None and bar._thread is None
    monkeypatch.setenv(pg.ENV, "0")
    with pg.Progress(total=4, desc="off", progress=True) as bar:
        time.sleep(0.2)
        bar.update(4)
    assert bar.bar is None and bar._thread is None
    assert capsys.readouterr().err == ""


def test_progress_true_shows_at_once(capsys, monkeypatch):
    monkeypatch.delenv(pg.ENV, raising=False)
    with pg.Progress(total=2, desc="now", progress=True) as bar:
        assert bar.bar is not None
        bar.update(2)
    assert "now" in capsys.readouterr().err


def test_compiling_is_shown_while_jax_compiles_then_cleared(capsys, fast_delay):
    @jax.jit
    def slow_to_compile(x):
        for i in range(150):
            x = jnp.sin(x) @ x + i
        return x

    with pg.Progress(total=1, desc="first", unit="fit", compiling=pg.first_use(("test", id(slow_to_compile)))) as bar:
        slow_to_compile(jnp.ones((8, 8))).block_until_ready()
        shown = bar.bar.postfix if bar.bar is not None else None
        bar.update(1)
        after = bar.bar.postfix
    err = capsys.readouterr().err
    assert "compiling…" in err
    assert shown in ("compiling…", "running…") and not after
    assert not pg.first_use(("test", id(slow_to_compile)))  # the second call compiles nothing


def test_a_timer_without_total(capsys, fast_delay):
    with pg.Progress(desc="lmer", unit="s", compiling=True):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "lmer 00:00" in err and "it/s" not in err


def test_evaluation_reporter_text_and_off_switch(monkeypatch):
    monkeypatch.delenv(pg.ENV, raising=False)
    with pg.Progress(desc="glmer", unit="s") as bar:
        report = pg.evaluation_reporter(bar, "deviance")
        report(1834.5249)
        report(1830.0, "stage 2")
        assert bar.text == "stage 2, evaluation 2, deviance 1830.00"
        assert not bar.compiling  # a result has come: no longer "compiling…"
    with pg.Progress(desc="lmer", unit="s", progress=False) as bar:
        assert pg.evaluation_reporter(bar, "deviance") is None  # a fit with the bar off pays nothing
    monkeypatch.setenv(pg.ENV, "0")
    with pg.Progress(desc="lmer", unit="s") as bar:
        assert pg.evaluation_reporter(bar, "deviance") is None


def test_an_lmer_fit_shows_its_evaluations_and_criterion(capsys, monkeypatch, sleep_fit):
    """The bar of an lmer fit (forced on: a warm sleepstudy fit is too quick to show it) reads
    ``evaluation n, REML criterion <value>``, one note per evaluation of the search."""
    import lmmjax as lmm

    monkeypatch.delenv(pg.ENV, raising=False)
    monkeypatch.setattr(pg, "mode", lambda progress: "on")
    notes = []
    note = pg.Progress.note
    monkeypatch.setattr(pg.Progress, "note", lambda self, text: (notes.append(text), note(self, text)))
    fit = lmm.lmer(sleep_fit.formula, lmm.datasets.load("sleepstudy"))
    err = capsys.readouterr().err
    assert "lmer 00:0" in err and "evaluation 1, REML criterion " in err  # drawn on stderr
    assert [t.split(",")[0] for t in notes] == [f"evaluation {i}" for i in range(1, len(notes) + 1)]
    values = [float(t.rsplit(" ", 1)[1]) for t in notes]
    assert min(values) == pytest.approx(fit.optsummary.deviance, abs=0.006)
    assert min(values) == pytest.approx(1743.63, abs=0.006)  # lme4: REML criterion at convergence 1743.6


def test_minimize_deviance_reports_every_evaluation(sleep_fit):
    from lmmjax.fitting.optimize import minimize_deviance

    m, values = sleep_fit.model, []
    opt = minimize_deviance(m.fit_arrays, m.fit_dims, m.layout, theta0=sleep_fit.optsummary.theta_start,
                            on_evaluation=values.append)
    # the record adds len(θ) and, when L-BFGS-B did not end at θ̂, the final check's own evaluation
    assert opt.n_evaluations - len(opt.theta) - len(values) in (0, 1)
    assert all(isinstance(v, float) for v in values) and values[0] > opt.deviance + 1.0  # starts away from θ̂
    assert min(values) == pytest.approx(opt.deviance, abs=1e-8 * opt.deviance)
