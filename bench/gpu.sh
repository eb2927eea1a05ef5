#!/usr/bin/env bash
# The GPU-relevant benchmarks on a CUDA machine, as JSON files for `python -m bench.run_all --gpu-json DIR`.
#
#   bash bench/gpu.sh [DIR]          # DIR defaults to bench/gpu_results; run from anywhere in the repo
#   PYTHON=/path/to/python bash bench/gpu.sh DIR
#
# Writes DIR/ssim_peers.json (kit vs peers on CUDA), DIR/train_step.json (PSPL / L1 in fp32 and in
# bf16 autocast + channels_last, plus iterations/s of 300 consecutive PSPL steps), DIR/loader.json (loader
# with 4 workers vs model) and DIR/cost_growth.json (step time and peak memory vs patch and batch). Needs torch
# with CUDA and the kit's imports (numpy, scipy, scikit-image, pandas, pillow, tqdm, pooch); the peer
# libraries (kornia, pytorch-msssim, piq) are optional: a missing one becomes a "cannot run" row.
# About 3 minutes on one H100. A script that fails is reported at the end; the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."  # the repository root: `python -m bench.<name>` finds bench/ and pspl_nb/ here
OUT=${1:-bench/gpu_results}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # and so does every child process, without installing
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" || exit 1
failed=()
run() {  # run NAME ARGS...: the module bench.NAME, its JSON into $OUT/NAME.json
  local name=$1; shift
  echo "== $name"
  "$PY" -m "bench.$name" --device cuda --json "$OUT/$name.json" "$@" || failed+=("$name")
}
run ssim_peers
run train_step --throughput 300
run cost_growth
run loader --workers 4
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "wrote $OUT/*.json; render with: python -m bench.run_all --gpu-json $OUT"
