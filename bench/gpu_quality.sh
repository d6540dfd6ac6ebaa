#!/usr/bin/env bash
# Issue 22 on one GPU, in at most 8 minutes: the GPU recipe on six or more textures, their it/s, seconds and
# scores, and one contact sheet (target, 1,024 steps, 4,096 steps a row). Writes $OUT (or /tmp):
# gpu_quality.md (the table) and contact_sheet.png. Usage: bench/gpu_quality.sh [TEXTURES...]
# (default: the bundled models' targets). QUALITY_TIMEOUT (seconds) bounds the run.
source "$(dirname "$0")/gpu_env.sh"
timeout "${QUALITY_TIMEOUT:-470}" "$py" bench/gpu_quality.py --out "$out" "$@" 2>&1 | tee "$out/gpu_quality.md"
