"""``import lmmjax``, a fit and its summary load only what they need (first-call latency)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Modules a fit and its summary must not import (each costs 0.1–0.5 s on first use).
HEAVY = ("matplotlib", "scipy.stats", "IPython", "lmmjax.simulate", "lmmjax.diagnostics",
         "lmmjax.powersim", "lmmjax.plot", "lmmjax.warmup")
#: Not at import either (a fit loads it only once it has run for a second, to show a bar).
AT_IMPORT = HEAVY + ("tqdm",)

CODE = """
import json, sys, warnings
warnings.simplefilter("ignore")
import lmmjax as lmm
after_import = set(sys.modules)
fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
str(fit.summary())
heavy, at_import = %r, %r
print(json.dumps(dict(import_=[m for m in at_import if m in after_import],
                      inference_at_import="lmmjax.inference" in after_import,
                      session=[m for m in heavy if m in sys.modules])))
""" % (HEAVY, AT_IMPORT)


def test_import_fit_and_summary_leave_heavy_modules_unloaded():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["import_"] == [] and not out["inference_at_import"]
    assert out["session"] == []


def test_lazy_attributes_still_resolve():
    import lmmjax as lmm

    assert callable(lmm.power) and callable(lmm.power_curve)
    assert lmm.inference.coef_table is not None and lmm.simulate is not None
