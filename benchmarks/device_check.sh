#!/usr/bin/env bash
# The GPU path, measured: the ground-truth, AtP, search and scoring benchmarks on a GPU and on this machine's CPU,
# each GPU time as a ratio to the same benchmark's CPU time in this run, written to a small report.
#
#   benchmarks/device_check.sh [--cpu-only] [OUT_DIR]
#
# OUT_DIR (default: a fresh /tmp/advdla-device-check-XXXX) receives DEVICE.json (pytest-benchmark's timings),
# DEVICE.ratios.json (advdla's in-run ratios, e.g. the truth's fraction of the matmul limit) and DEVICE.log, and the
# report, device_check.md and device_check.json, whose path is printed last. --cpu-only runs the CPU half alone
# (a dry run on a machine without a GPU). Environment: ADVDLA_BENCH_MODEL (default smollm2-135m; planted-erasure
# for a quick pass), ADVDLA_BENCH_DEVICE (default cuda), ADVDLA_BENCH_EXAMPLES, PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

cpu_only=0
if [[ "${1:-}" == "--cpu-only" ]]; then cpu_only=1; shift; fi
out="${1:-$(mktemp -d /tmp/advdla-device-check-XXXX)}"
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || python=python3
device="${ADVDLA_BENCH_DEVICE:-cuda}"
export ADVDLA_BENCH_MODEL="${ADVDLA_BENCH_MODEL:-smollm2-135m}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"

if [[ $cpu_only == 0 ]] && ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "device_check: no CUDA GPU visible to torch; run with --cpu-only for the CPU half alone" >&2
    exit 2
fi

# ground truth (exact patching), AtP, the search's evaluator, scoring vs truth, the truth against the matmul limit,
# and the bf16 screens against fp32 (search candidates/s, natural-scan windows/s, share of the bf16 torch.mm rate)
benches=(benchmarks/test_bench_patching.py benchmarks/test_bench_methods.py benchmarks/test_bench_search.py
         benchmarks/test_bench_methods_v2.py benchmarks/test_bench_limit.py benchmarks/test_bench_precision.py)

run() {  # run DEVICE: the benchmarks on one device, timings and ratios into $out/DEVICE.json
    echo "device_check: $1 (model $ADVDLA_BENCH_MODEL) ..." >&2
    ADVDLA_BENCH_DEVICE="$1" ADVDLA_BENCH_JSON="$out/$1.ratios.json" "$python" -m pytest "${benches[@]}" \
        -p no:randomly -p no:cacheprovider --benchmark-only -q --benchmark-json="$out/$1.json" >"$out/$1.log" 2>&1 \
        || { echo "device_check: the $1 benchmarks failed; see $out/$1.log" >&2; tail -20 "$out/$1.log" >&2; exit 1; }
}

run cpu
devices=(cpu)
if [[ $cpu_only == 0 ]]; then run "$device"; devices+=("$device"); fi
"$python" benchmarks/device_report.py "$out" "${devices[@]}"
