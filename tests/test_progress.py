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
