"""Cross-products with rows split over 4 (forced CPU) devices give the one-device fit, bit for bit.

A fresh process with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
fits the same crossed model with the rows sharded and on one device, for
the dense (pairs), tiled and iterative block kinds. Both take their sums in the
same fixed row blocks (as every model from ``ROW_SHARD_MIN`` rows does;
lowered here to 0 so that a 6,000-row model does): every cross-product,
θ̂, β̂, σ̂ and the log-likelihood are identical.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE = r"""
import json, warnings
from dataclasses import replace
warnings.simplefilter("ignore")
import jax, numpy as np, pandas as pd
import lmmjax.objective.sharded_rows as sr
from lmmjax.lmer import fit_model
from lmmjax.model import build_model
from lmmjax.structure.crossprod import build_structure
from lmmjax.structure.iterative import IterativeLaterBlocks
from lmmjax.structure.kinds import TiledLaterBlocks

rng = np.random.default_rng(4)
n = 6000
a, b = rng.integers(0, 300, n), rng.choice(80, n, p=np.arange(1, 81) ** -1.0 / np.sum(np.arange(1, 81) ** -1.0))
x = rng.normal(size=n)
y = 1 + 0.3 * x + rng.normal(0, 0.7, 300)[a] + rng.normal(0, 0.9, 80)[b] + rng.normal(size=n)
d = pd.DataFrame(dict(y=y + 50, x=x * 3 + 7, g=rng.choice(list("pqr"), n), a=a.astype(str), b=b.astype(str),
                      w=rng.uniform(0.5, 2, n), off=rng.normal(0, 0.1, n)))
formula = "y ~ x + g + (1 + x | a) + (1 | b)"
out = dict(n_devices=len(jax.devices()), cases=[])
for kind in ("pairs", TiledLaterBlocks(head=20, chunk=32), IterativeLaterBlocks()):
    base = build_model(formula, d, weights="w", offset="off")
    st = build_structure(base.blocks, base.X, base.reml, base.layout.size, schur=kind)
    base = replace(base, structure=st)
    sr.ROW_SHARD_MIN = 0
    sr.DEVICES = jax.devices()[:1]
    assert type(sr.row_sums_for(base.pattern.n_rows)).__name__ == "RowBlocks"
    one = replace(base, arrays=base.values())
    sr.DEVICES = None
    sums = sr.row_sums_for(base.pattern.n_rows)
    assert isinstance(sums, sr.ShardedRowBlocks)
    many = replace(base, arrays=base.values())
    differ = sorted(k for k in one.arrays if not np.array_equal(np.asarray(one.arrays[k]), np.asarray(many.arrays[k])))
    f1, f4 = fit_model(one, formula), fit_model(many, formula)
    out["cases"].append(dict(kind=str(kind), differ=differ, devices=sums.mesh.size,
                             one=[*f1.theta, *f1.fixef, f1.sigma, f1.loglik],
                             many=[*f4.theta, *f4.fixef, f4.sigma, f4.loglik]))
print(json.dumps(out))
"""


@pytest.mark.slow  # sharding: a fresh process on 4 host devices
def test_rows_sharded_over_four_devices_equal_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               LMMJAX_PROGRESS="0")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, cwd=root,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n_devices"] == 4
    assert len(res["cases"]) == 3
    for case in res["cases"]:
        assert case["devices"] == 4, case
        assert case["differ"] == [], case
        assert case["many"] == case["one"], case  # θ̂, β̂, σ̂, log-likelihood: identical floats
