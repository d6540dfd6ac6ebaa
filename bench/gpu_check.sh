#!/usr/bin/env bash
# Issue 6 on one GPU, in about 5-8 minutes: the fast paths' correctness on CUDA, then the speed table
# (lesson vs ours, CUDA graphs, torch.compile, and the two targets: 5,000 steps/s growing a 256x256
# texture canvas, training 5x the lesson). Usage: bench/gpu_check.sh [extra speed.py flags, e.g. --quick]
# The outputs are also written to $OUT (or /tmp): gpu_tests.txt and speed_cuda.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
mkdir -p "$out"
python - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
status=0
# Correctness: the CUDA tests (CUDA graphs, torch.compile, the fused update) and the CPU ones beside them.
timeout 300 python -m pytest tests/test_speed_paths.py -q 2>&1 | tee "$out/gpu_tests.txt" || status=1
# The table, run even when a test failed so the numbers are not lost.
timeout 480 python bench/speed.py --device cuda "$@" 2>&1 | tee "$out/speed_cuda.md" || status=1
exit $status
