"""``python -m lmmjax warmup`` fills the persistent compilation cache for the everyday models."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmmjax.warmup import SMALL_MODELS, stamp_name, warmup

ROOT = Path(__file__).resolve().parents[1]


def test_warmup_fits_each_model_by_reml_and_ml(capsys):
    steps = warmup(models=[("dyestuff", "Yield ~ 1 + (1 | Batch)")], bootstrap_sizes=())
    assert [s.name for s in steps] == ["dyestuff: Yield ~ 1 + (1 | Batch) (REML) + summary",
                                       "dyestuff: Yield ~ 1 + (1 | Batch) (ML) + summary"]
    assert all(s.seconds > 0 for s in steps)
    assert "(REML) + summary" in capsys.readouterr().out


def test_warmup_covers_the_common_small_model_shapes():
    formulas = {f for _, f in SMALL_MODELS}
    assert {"Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (Days || Subject)",
            "Reaction ~ Days + (1 | Subject)", "diameter ~ 1 + (1 | plate) + (1 | sample)"} <= formulas


@pytest.mark.slow
def test_after_the_cli_warmup_a_fresh_process_compiles_nothing_for_sleepstudy(tmp_path):
    cache = tmp_path / "jax"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMMJAX_", "JAX_"))}
    env.update(PYTHONPATH=str(ROOT), LMMJAX_CACHE_DIR=str(cache))
    res = subprocess.run([sys.executable, "-m", "lmmjax", "warmup", "--quiet"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0 and res.stdout == "", res.stderr[-3000:]
    files = {p.name for p in cache.iterdir()}
    assert len(files) > 10
    code = ("import warnings; warnings.simplefilter('ignore'); import lmmjax as lmm; "
            "f = lmm.lmer('Reaction ~ Days + (Days | Subject)', lmm.datasets.load('sleepstudy')); "
            "str(f.summary()); f.bootstrap(2000, progress=False)")
    res = subprocess.run([sys.executable, "-c", code], env=dict(env, JAX_LOG_COMPILES="1"),
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {p.name for p in cache.iterdir()} == files  # every program came from the cache
    assert res.stderr.count("Persistent compilation cache hit") >= 3
    assert (cache / stamp_name()).exists()
    res = subprocess.run([sys.executable, "-m", "lmmjax", "warmup", "--if-cold"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0 and "already warm" in res.stdout, res.stderr[-3000:]
