"""``cached_jit``: lowered programs kept on disk, keyed safely, with a plain-jit fallback."""
import subprocess
import sys
import os
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from lmmjax import program_cache
from lmmjax.program_cache import cached_jit, describe_static

ROOT = Path(__file__).resolve().parents[1]


class Opts(NamedTuple):
    scale: float
    name: str


def affine(x, y, opts):
    return {"z": opts.scale * jnp.sin(x) @ y, "n": jnp.sum(x)}


def scaled(x, y, k=2.0, shift=False):
    return x * k + (1.0 if shift else 0.0) + y


def test_defaults_and_keywords_bind_like_a_plain_call(cache):
    f = cached_jit(scaled, static_argnums=(2, 3))
    x = np.ones(2)
    np.testing.assert_array_equal(f(x, x), [3.0, 3.0])
    np.testing.assert_array_equal(f(x, x, 2.0), [3.0, 3.0])  # the same program
    np.testing.assert_array_equal(f(x, y=x, shift=True), [4.0, 4.0])
    assert len(stored(cache)) == 2


def test_the_call_signature_tells_shapes_dtypes_and_weak_types_apart(cache):
    """numpy and JAX arrays of one shape and dtype share a program; another dtype, shape or a
    weakly typed Python scalar does not (the per-leaf signature of the hot path)."""
    f = cached_jit(scaled, static_argnums=(2, 3))
    f(np.ones(2), np.ones(2))
    f(jnp.ones(2), jnp.ones(2))
    assert len(f._programs) == 1
    f(np.ones(2, np.float32), np.ones(2, np.float32))
    f(np.ones(3), np.ones(3))
    out = f(np.ones(2), 1.0)
    assert len(f._programs) == 4 and len(stored(cache)) == 4
    np.testing.assert_array_equal(out, [3.0, 3.0])


def affine_len(x, k):
    return x * len(k)


def stored(cache):
    return sorted((cache / "lmmjax-programs").glob("*.pkl"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "compilation_cache_dir", lambda: tmp_path)
    return tmp_path


def test_results_equal_plain_jit_and_a_new_instance_loads_the_stored_program(cache):
    x, y = np.linspace(0, 1, 6).reshape(2, 3), np.arange(3.0)
    first = cached_jit(affine, static_argnums=2)(x, y, Opts(2.0, "a"))
    files = stored(cache)
    assert len(files) == 1
    again = cached_jit(affine, static_argnums=2)  # empty in-process memo: reads the file
    out = again(x, y, Opts(2.0, "a"))
    assert stored(cache) == files
    ref = {"z": 2.0 * np.sin(x) @ y, "n": x.sum()}
    for r in (first, out):
        np.testing.assert_allclose(r["z"], ref["z"], rtol=1e-14)
        np.testing.assert_allclose(r["n"], ref["n"], rtol=1e-14)


def test_static_values_shapes_and_sources_each_make_their_own_program(cache, monkeypatch):
    f = cached_jit(affine, static_argnums=2)
    x, y = np.ones((2, 3)), np.ones(3)
    f(x, y, Opts(2.0, "a"))
    f(x, y, Opts(3.0, "a"))
    assert float(f(x, y, Opts(3.0, "a"))["z"][0]) == pytest.approx(3 * 3 * np.sin(1.0))
    f(np.ones((4, 3)), y, Opts(2.0, "a"))
    assert len(stored(cache)) == 3 and f._cache_size() == 3
    f(np.ones((4, 3)), y, Opts(2.0, "a"))
    assert f._cache_size() == 3
    program_cache.source_hash.cache_clear()
    monkeypatch.setattr(program_cache, "source_hash", lambda: "edited sources")
    cached_jit(affine, static_argnums=2)(x, y, Opts(2.0, "a"))
    assert len(stored(cache)) == 4


def test_a_static_without_a_reliable_description_is_never_stored(cache):
    with pytest.raises(ValueError, match="no reliable description"):
        describe_static(object())
    out = cached_jit(affine_len, static_argnums=1)(np.ones(2), frozenset({1, 2}))
    np.testing.assert_array_equal(out, [2.0, 2.0])
    assert stored(cache) == []


def test_a_closure_is_stored_only_under_a_key(cache):
    def make(k):
        return lambda x: x * k

    np.testing.assert_array_equal(cached_jit(make(2.0))(np.ones(2)), [2.0, 2.0])
    assert stored(cache) == []
    assert float(cached_jit(make(2.0), key=("times", 2.0))(np.ones(()))) == 2.0
    assert float(cached_jit(make(3.0), key=("times", 3.0))(np.ones(()))) == 3.0
    assert len(stored(cache)) == 2
    assert float(cached_jit(make(3.0), key=("times", 3.0))(np.ones(()))) == 3.0  # loaded
    assert len(stored(cache)) == 2


def test_an_unreadable_file_is_replaced(cache):
    f = cached_jit(affine, static_argnums=2)
    x, y = np.ones((2, 3)), np.ones(3)
    f(x, y, Opts(1.0, "b"))
    (path,) = stored(cache)
    path.write_bytes(b"not a pickle")
    out = cached_jit(affine, static_argnums=2)(x, y, Opts(1.0, "b"))
    assert float(out["n"]) == 6.0 and path.read_bytes() != b"not a pickle"


def test_without_the_compilation_cache_nothing_is_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "compilation_cache_dir", lambda: None)
    out = cached_jit(affine, static_argnums=2)(np.ones((2, 3)), np.ones(3), Opts(1.0, "c"))
    assert float(out["n"]) == 6.0
    assert not (tmp_path / "lmmjax-programs").exists()


def test_a_second_process_summary_skips_tracing(tmp_path):
    code = ("import warnings; warnings.simplefilter('ignore'); import lmmjax as lmm; "
            "f = lmm.lmer('Reaction ~ Days + (Days | Subject)', lmm.datasets.load('sleepstudy')); "
            "print(f.coef_table()['df'].tolist())")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMMJAX_", "JAX_"))}
    env.update(PYTHONPATH=str(ROOT), LMMJAX_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=dict(env, JAX_LOG_COMPILES="1"),
                           capture_output=True, text=True, timeout=600) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-3000:]
    assert "Finished tracing with_statics" in runs[0].stderr
    assert "Finished tracing with_statics" not in runs[1].stderr and "Finished tracing theta_pieces" not in runs[1].stderr
    assert runs[0].stdout == runs[1].stdout  # identical df
