# Sourced by the GPU scripts: strict mode, the repo root as working folder, $out for their files ($OUT, else /tmp),
# unbuffered Python, and $py (GPU images often have python3 only).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-/tmp}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py="$(command -v python3 || command -v python)"
