#!/usr/bin/env bash
# GPU check: large crossed fits on one GPU, checked against the CPU backend (issue 13, item 7).
#
# For a machine with one NVIDIA GPU (written for an H200, 16 CPU cores, 128 GiB RAM, no internet
# beyond a pip cache). From the repository root:
#
#     bash benchmarks/gpu_check.sh                      # the whole check, ~9 minutes at most
#     GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh    # tiny sizes on the CPU, no install (~2 min)
#
# What it does, every stage under `timeout` and all of it within GPU_CHECK_BUDGET seconds (default
# 540, counted from the start, set-up included; a stage that would start with less than 30 s left
# is skipped and says so):
#   1. Set-up: reuses or creates the venv benchmarks/out/venv-gpu (an ignored folder) and installs
#      the CUDA extra quietly (pip install -e '.[cuda12]'; its log is printed only if it fails);
#      prints jax.devices() and nvidia-smi's line. GPU_CHECK_PYTHON=/path/to/python skips the venv.
#   2. MovieLens-shaped fits of rating ~ 1 + (1 | user) + (1 | item) by REML, each in a fresh
#      process (benchmarks/gpu_check.py `fit`; data from large_crossed.movielens_like with the same
#      seed on both backends), in two chains that run side by side:
#        GPU chain (JAX_PLATFORMS=cuda, pinned to cores 0-3):
#          gpu1e6   1,000,000 rows, 20,000 users × 2,000 items              (timeout 120 s)
#          gpu1e7   10,000,000 rows, 200,000 × 10,000                       (timeout 150 s)
#          gpu32m   32,000,204 rows, 200,948 × 84,432 (the ml-32m shape)    (timeout 330 s)
#        CPU chain (JAX_PLATFORMS=cpu, pinned to the other 12 cores):
#          cpu1e6, cpu1e7: the same two fits on the CPU backend, for the logLik agreement
#                                                                  (timeouts 120 s, 300 s)
#      The chains are pinned to disjoint cores (taskset) so that neither takes the other's CPU
#      time; the GPU chain's host work (simulating the data, building the model, scipy's
#      optimizer) is single-threaded. GPU_CHECK_PARALLEL=0 runs the chains one after the other
#      (GPU first), each stage on all cores.
#      The CPU fit of the ml-32m shape is not run: at 1e7 rows the CPU fit takes ~100 s on 2 cores
#      and the ml-32m shape has 3.2 times the rows and 8 times the items, past the budget here.
#      Each fit prints one JSON line: data/fit/optimizer/summary() seconds, evaluations, the block
#      kind, logLik, the device's peak memory (memory_stats()['peak_bytes_in_use']) and host RSS.
#   3. Report: a markdown block on stdout, ready to paste into benchmarks/RESULTS.md: times, device
#      peak memory, block kind, and the logLik and estimate differences of each GPU fit against the
#      CPU fit of the same size. GPU_CHECK_WRITE=1 also writes it into RESULTS.md (section
#      gpu_check). When $OUT is set (the device tool's output folder) the JSON records, the stage
#      logs and the markdown are copied there.
#
# Settings (environment): GPU_CHECK_SMOKE=1 (20,000-100,000 rows, every stage on the CPU, no
# install: checks the script itself); GPU_CHECK_BUDGET (seconds); GPU_CHECK_STAGES (a
# comma-separated subset of gpu1e6,gpu1e7,gpu32m,cpu1e6,cpu1e7; "setup" installs and prints the
# devices only); GPU_CHECK_PARALLEL; GPU_CHECK_PYTHON; GPU_CHECK_KIND (force the block kind of every
# fit: "tiled", "iterative", ...; default "auto", lmer's choice: lmmjax.structure.kinds.choose_kind keeps the
# exact kinds on a GPU up to 1,000 times the CPU's work limit, while six q2 × q2 matrices fit in its memory, so
# 1e7 (q2 = 10,000) is fitted exactly and the ml-32m shape (q2 = 84,432: 342 GB) by the iterative kind;
# GPU_CHECK_KIND=iterative times the iterative kind at 1e7 too). JAX's GPU memory is not preallocated
# (XLA_PYTHON_CLIENT_PREALLOCATE=false: the peak it reports is what the fit used) and its limit is
# 95% of the device (XLA_PYTHON_CLIENT_MEM_FRACTION, default here 0.95: one dense 84,432² matrix
# is 57 GB); progress bars are off (LMMJAX_PROGRESS=0); each fit gets an empty compilation cache
# of its own (its time includes compiling, as a first fit's does).
set -uo pipefail
shopt -s nullglob

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SMOKE="${GPU_CHECK_SMOKE:-0}"
BUDGET="${GPU_CHECK_BUDGET:-540}"
DEADLINE=$(( $(date +%s) + BUDGET ))
STAGES="${GPU_CHECK_STAGES:-gpu1e6,gpu1e7,gpu32m,cpu1e6,cpu1e7}"
PARALLEL="${GPU_CHECK_PARALLEL:-1}"
WORK="$ROOT/benchmarks/out/gpu_check"
VENV="$ROOT/benchmarks/out/venv-gpu"
rm -rf "$WORK" && mkdir -p "$WORK"
NOTES="$WORK/notes.txt"
: > "$NOTES"
export LMMJAX_PROGRESS=0 XLA_PYTHON_CLIENT_PREALLOCATE=false
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

left() { echo $(( DEADLINE - $(date +%s) )); }

# ---- 1. set-up ---------------------------------------------------------------------------------
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
    PY="$GPU_CHECK_PYTHON"
elif [ "$SMOKE" = 1 ]; then
    PY="$(command -v python3)"
    [ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
else
    PY="$VENV/bin/python"
    if ! "$PY" -c "import jax; assert any(d.platform == 'gpu' for d in jax.devices())" >/dev/null 2>&1; then
        echo "set-up: installing lmmjax with the CUDA extra into $VENV (quiet; log in $WORK/pip.log)"
        [ -x "$PY" ] || python3 -m venv "$VENV" || { echo "set-up failed: python3 -m venv" >&2; exit 1; }
        if ! timeout 300 "$PY" -m pip install -q -e '.[cuda12]' > "$WORK/pip.log" 2>&1; then
            cat "$WORK/pip.log"
            echo "set-up failed: pip install -e '.[cuda12]' (log above)" >&2
            exit 1
        fi
    fi
fi
echo "python: $PY; set-up took $(( BUDGET - $(left) )) s"
timeout 120 "$PY" -c "import jax; print('jax', jax.__version__, 'devices:', jax.devices())" || {
    echo "jax.devices() failed" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 2. fits -----------------------------------------------------------------------------------
if [ "$SMOKE" = 1 ]; then
    GPU_PLATFORM=cpu
    SIZE_1e6="20000 400 100"; SIZE_1e7="50000 1000 200"; SIZE_32m="100000 2000 500"
    echo "Smoke run (GPU_CHECK_SMOKE=1): tiny sizes, every \"gpu\" stage on the CPU." >> "$NOTES"
else
    GPU_PLATFORM=cuda
    SIZE_1e6="1000000 20000 2000"; SIZE_1e7="10000000 200000 10000"; SIZE_32m="32000204 200948 84432"
fi
GPU_CORES=""; CPU_CORES=""
NCORES=$(nproc)
if [ "$PARALLEL" = 1 ] && command -v taskset >/dev/null && { [ "$NCORES" -ge 8 ] || [ "$SMOKE" = 1 ]; }; then
    if [ "$NCORES" -ge 8 ]; then GPU_CORES="0-3"; CPU_CORES="4-$(( NCORES - 1 ))"
    else GPU_CORES="0"; CPU_CORES="$(( NCORES - 1 ))"; fi  # a smoke run on a small machine: the mechanics only
    echo "GPU and CPU fits ran side by side: the GPU fits' processes on cores $GPU_CORES, the CPU fits' on cores $CPU_CORES." >> "$NOTES"
else
    PARALLEL=0  # asked for, or too few cores to split (or no taskset)
fi

run_fit() {  # run_fit NAME PLATFORM CORES LABEL MAX_SECONDS ROWS USERS ITEMS
    local name=$1 platform=$2 cores=$3 label=$4 max=$5 rows=$6 users=$7 items=$8 role=${1:0:3}
    case ",$STAGES," in *",$name,"*) ;; *) return ;; esac
    local limit; limit=$(left)
    if [ "$limit" -lt 30 ]; then
        echo "$name: skipped, ${limit} s of the ${BUDGET} s budget left"
        echo "$name ($label on $platform): not run, the time budget was spent." >> "$NOTES"
        return
    fi
    [ "$limit" -gt "$max" ] && limit=$max
    local pin=()
    [ -n "$cores" ] && pin=(taskset -c "$cores")
    echo "$name: $rows rows, $users × $items on $platform${cores:+ (cores $cores)}; timeout ${limit} s"
    JAX_PLATFORMS=$platform LMMJAX_CACHE_DIR="$WORK/cache-$name" timeout -k 10 "$limit" "${pin[@]}" \
        "$PY" benchmarks/gpu_check.py fit --label "$label" --role "$role" --rows "$rows" --users "$users" \
        --items "$items" --kind "${GPU_CHECK_KIND:-auto}" --out "$WORK/$name.json" > "$WORK/$name.log" 2>&1
    local rc=$?
    echo "$name: $(tail -n 1 "$WORK/$name.log")"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "$name ($label on $platform): timed out after ${limit} s." >> "$NOTES"
    elif [ $rc -ne 0 ]; then
        tail -n 15 "$WORK/$name.log" | sed "s/^/$name: /"
        echo "$name ($label on $platform): failed (exit $rc): $(tail -n 1 "$WORK/$name.log" | cut -c1-200)" >> "$NOTES"
    fi
}

# shellcheck disable=SC2086  # each size is three words
gpu_chain() {
    run_fit gpu1e6 "$GPU_PLATFORM" "$GPU_CORES" 1e6 120 $SIZE_1e6
    run_fit gpu1e7 "$GPU_PLATFORM" "$GPU_CORES" 1e7 150 $SIZE_1e7
    run_fit gpu32m "$GPU_PLATFORM" "$GPU_CORES" "ml-32m shape" 330 $SIZE_32m
}
# shellcheck disable=SC2086
cpu_chain() {
    run_fit cpu1e6 cpu "$CPU_CORES" 1e6 120 $SIZE_1e6
    run_fit cpu1e7 cpu "$CPU_CORES" 1e7 300 $SIZE_1e7
}
if [ "$PARALLEL" = 1 ]; then
    cpu_chain &
    CPU_PID=$!
    gpu_chain
    wait "$CPU_PID"
else
    gpu_chain
    cpu_chain
fi
echo "The CPU fit of the ml-32m shape is not run (past the time budget: the 1e7 CPU fit alone takes minutes)." >> "$NOTES"

# ---- 3. report ---------------------------------------------------------------------------------
write=()
[ "${GPU_CHECK_WRITE:-0}" = 1 ] && write=(--write)
echo
echo "----- markdown for benchmarks/RESULTS.md -----"
"$PY" benchmarks/gpu_check.py report "${write[@]}" --notes-file "$NOTES" "$WORK"/*.json | tee "$WORK/gpu_check.md"
echo "----- total $(( BUDGET - $(left) )) s -----"
if [ -n "${OUT:-}" ]; then
    cp "$WORK"/*.json "$WORK"/*.log "$WORK"/*.md "$WORK"/notes.txt "$OUT"/ 2>/dev/null || true
fi
