"""The persistent compilation cache: on by default, per user, movable and switchable by environment."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmmjax import config

ROOT = Path(__file__).resolve().parents[1]

FIT_SLEEPSTUDY = """
import json, time, warnings
warnings.simplefilter("ignore")
import lmmjax as lmm
df = lmm.datasets.load("sleepstudy")
t = time.perf_counter()
fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
print(json.dumps(dict(seconds=time.perf_counter() - t, loglik=fit.loglik,
                      cache=str(lmm.config.compilation_cache_dir()))))
"""


def run_python(code: str, **env):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("LMMJAX_") and k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_LOG_COMPILES")}
    res = subprocess.run([sys.executable, "-c", code], env=dict(base, PYTHONPATH=str(ROOT), **env),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def cache_files(path: Path) -> set:
    return {p.relative_to(path) for p in path.rglob("*") if p.is_file()}


def test_default_dir_follows_lmmjax_cache_dir_then_xdg_then_home():
    assert config.default_cache_dir({"LMMJAX_CACHE_DIR": "/x/y", "XDG_CACHE_HOME": "/c"}) == Path("/x/y")
    assert config.default_cache_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/lmmjax/jax")
    assert config.default_cache_dir({}) == Path.home() / ".cache" / "lmmjax" / "jax"


@pytest.mark.parametrize("env, off", [
    ({}, False),
    ({"LMMJAX_NO_COMPILATION_CACHE": "1"}, True),
    ({"LMMJAX_NO_COMPILATION_CACHE": "0"}, False),
    ({"LMMJAX_COMPILATION_CACHE": "0"}, True),
    ({"LMMJAX_COMPILATION_CACHE": "off"}, True),
    ({"LMMJAX_COMPILATION_CACHE": "1"}, False),
])
def test_environment_switch(env, off):
    assert config.cache_disabled(env) is off


def test_second_process_loads_compiled_programs_from_the_cache(tmp_path):
    cache = tmp_path / "jax"
    first, _ = run_python(FIT_SLEEPSTUDY, LMMJAX_CACHE_DIR=str(cache))
    assert first["cache"] == str(cache)
    written = cache_files(cache)
    assert len(written) >= 2  # at least the deviance and the factorization programs
    second, log = run_python(FIT_SLEEPSTUDY, LMMJAX_CACHE_DIR=str(cache), JAX_LOG_COMPILES="1")
    assert log.count("Persistent compilation cache hit") >= 2  # the deviance and the factorization
    assert cache_files(cache) == written  # nothing compiled afresh
    assert second["loglik"] == pytest.approx(first["loglik"], rel=1e-12)


def test_switched_off_by_environment(tmp_path):
    cache = tmp_path / "jax"
    out, _ = run_python(FIT_SLEEPSTUDY, LMMJAX_CACHE_DIR=str(cache), LMMJAX_NO_COMPILATION_CACHE="1")
    assert out["cache"] == "None"
    assert not cache.exists()


def test_a_cache_dir_the_user_gave_jax_is_kept(tmp_path):
    code = "import json, jax, lmmjax; print(json.dumps(dict(d=jax.config.jax_compilation_cache_dir)))"
    out, _ = run_python(code, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"),
                        LMMJAX_CACHE_DIR=str(tmp_path / "lmmjax"))
    assert out["d"] == str(tmp_path / "mine")
    assert not (tmp_path / "lmmjax").exists()


def test_the_suite_does_not_write_into_the_users_cache():
    assert config.compilation_cache_dir() != config.default_cache_dir({})
