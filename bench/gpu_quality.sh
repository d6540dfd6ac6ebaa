#!/usr/bin/env bash
# Issue 22 on one GPU, in at most 8 minutes: the GPU recipe on six or more textures, their it/s, seconds and
# scores, and one contact sheet (target, 1,024 steps, 4,096 steps a row). Writes $OUT (or /tmp):
# gpu_quality.md (the table) and contact_sheet.png. Usage: bench/gpu_quality.sh [TEXTURES...]
# (default: the bundled models' targets). QUALITY_TIMEOUT (seconds) bounds the run.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py="$(command -v python3 || command -v python)"  # GPU images often have python3 only
timeout "${QUALITY_TIMEOUT:-470}" "$py" bench/gpu_quality.py --out "$out" "$@" 2>&1 | tee "$out/gpu_quality.md"
