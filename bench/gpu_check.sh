#!/usr/bin/env bash
# Issue 6 on one GPU, in about 4 minutes (3.7 on an H200): the fast paths' correctness on CUDA, then the speed table
# (lesson vs ours, CUDA graphs, torch.compile, and the three targets: 5,000 steps/s growing a 256x256
# texture canvas, training 5x the lesson, the GPU recipe at 100 it/s as one CUDA graph an iteration). Usage: bench/gpu_check.sh [extra speed.py flags, e.g. --quick]
# The outputs are also written to $OUT (or /tmp): gpu_tests.txt and speed_cuda.md (each row also on stderr as soon as
# it is measured). TEST_TIMEOUT and SPEED_TIMEOUT (seconds) bound the two parts.
source "$(dirname "$0")/gpu_env.sh"
"$py" - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
status=0
# Correctness: the CUDA tests (CUDA graphs of growth and of the whole training iteration, torch.compile, the fused
# update) and the CPU ones beside them.
timeout "${TEST_TIMEOUT:-300}" "$py" -m pytest tests/test_speed_paths.py tests/test_graph_step.py -q -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.txt" || status=1
# The table, run even when a test failed so the numbers are not lost.
timeout "${SPEED_TIMEOUT:-480}" "$py" bench/speed.py --device cuda "$@" 2>&1 | tee "$out/speed_cuda.md" || status=1
exit $status
