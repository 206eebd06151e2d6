"""Shared helpers for the benchmark scripts: machine description, R runs, RESULTS.md sections."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line describing this machine and the software versions."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    import jax

    dev = ", ".join(sorted({d.platform for d in jax.devices()}))
    r = r_version()
    return (f"{os.cpu_count()} cores ({cpu}){mem}; Python {platform.python_version()}, "
            f"jax {jax.__version__} on {dev}" + (f"; {r}" if r else "; R not found"))


def r_version() -> str | None:
    if not shutil.which("Rscript"):
        return None
    out = subprocess.run(["Rscript", "-e", "cat(R.version.string, 'lme4', as.character(packageVersion('lme4')))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


def run_killing_group(cmd: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` in its own process group, the whole group killed on time-out.

    ``subprocess.run(timeout=)`` kills only the direct child: under
    ``/usr/bin/time`` the R process it starts kept running after a time-out
    (and took a core from the next timings).
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_r(code: str, timeout: int = 1200) -> dict | None:
    """Run R code that prints one JSON object on its last line; None without R.

    Peak memory comes from /usr/bin/time when available.
    """
    if not shutil.which("Rscript"):
        return None
    cmd = ["Rscript", "-e", code]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer:
        cmd = [timer, "-f", "MAXRSS_KB=%M"] + cmd
    out = run_killing_group(cmd, timeout)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"R failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    m = re.search(r"MAXRSS_KB=(\d+)", out.stderr)
    if m:
        result["peak_mb"] = int(m.group(1)) / 1024
    return result


def run_python(code: str, timeout: int = 1200, cache_dir: str | os.PathLike | None = None,
               cwd: str | os.PathLike | None = None) -> dict:
    """Run Python code in a fresh interpreter; last stdout line is JSON.

    The persistent compilation cache lives in ``cache_dir``; by default in a new
    empty directory, so that a "first call" includes its compilation. ``cwd``:
    where it runs (a source tree there is the ``lmmjax`` it imports).
    """
    wrapper = code + (
        "\nimport resource, json as _j\n"
        "print(_j.dumps(dict(RESULT, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))\n"
    )
    with tempfile.TemporaryDirectory(prefix="lmmjax-bench-cache-") as fresh:
        env = {k: v for k, v in os.environ.items()
               if k not in ("LMMJAX_NO_COMPILATION_CACHE", "LMMJAX_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")}
        env["LMMJAX_CACHE_DIR"] = str(cache_dir or fresh)
        out = run_killing_group([sys.executable, "-c", wrapper], timeout, env=env, cwd=cwd)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"Python benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between <!-- name:start --> and <!-- name:end -->."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n\n_Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}._\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section is written by the script named in it.\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
