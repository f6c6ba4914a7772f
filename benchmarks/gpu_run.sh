#!/usr/bin/env bash
# The one command of an NVIDIA host (README, "On an NVIDIA host"): benchmarks/gpu_run.py with the output kept in
# $OUT/run.log too. Arguments go to gpu_run.py (--backend vulkan rehearses it on Mesa's llvmpipe).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/build/gpu-out}"
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1
"${PYTHON:-python3}" benchmarks/gpu_run.py "$@" 2>&1 | tee "$OUT/run.log"
exit "${PIPESTATUS[0]}"
