"""Power runs sharded over several (forced CPU) devices give the single-device numbers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE = r"""
import json, warnings
warnings.simplefilter("ignore")
import jax
import lmmjax as lmm
from lmmjax.powersim import repeated_measures
d = repeated_measures(12, times=4, between={"group": ["a", "b", "c"]})
kw = dict(formula="y ~ Time + group + (1 | Subject)", fixef={"group[T.b]": 0.5, "group[T.c]": 1.0},
          varcorr={"Subject": 1.0}, sigma=1.0, nsim=6, seed=3, progress=False)
many = lmm.power(d, "group", "lrt", **kw)
one = lmm.power(d, "group", "lrt", devices=jax.devices()[:1], **kw)
print(json.dumps(dict(n_devices=len(jax.devices()), many=many.simulations["statistic"].tolist(),
                      one=one.simulations["statistic"].tolist())))
"""


@pytest.mark.slow  # sharding: a fresh process on 4 host devices
def test_sharded_over_four_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, cwd=root,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n_devices"] == 4
    assert len(res["many"]) == 6  # 6 simulations in a chunk of 8 (a multiple of 4), padding dropped
    for a, b in zip(res["many"], res["one"]):
        assert abs(a - b) <= 1e-6 * max(1.0, abs(b))
