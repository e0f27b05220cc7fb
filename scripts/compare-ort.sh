#!/usr/bin/env bash
# Native backend vs ONNX Runtime, side by side (see scripts/compare_ort.py for what is measured).
# Creates the project-local virtual environment .venv (git-ignored) with onnxruntime, onnx and
# numpy when missing, builds the harness, and passes its arguments on, e.g.
#   scripts/compare-ort.sh --models mobileone-s0 --threads 1 2 --budget-s 3
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, onnx, numpy" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "onnxruntime==1.32.0" "onnx==1.23.2" numpy
fi
cargo build --quiet -p harness
exec "$VENV/bin/python" scripts/compare_ort.py --harness target/debug/harness "$@"
