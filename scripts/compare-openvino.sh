#!/usr/bin/env bash
# Native backend vs OpenVINO at fp32, bf16 and fp16, side by side (see scripts/compare_openvino.py).
# Installs openvino (and what compare_ort.py's ONNX writer needs) into the project-local,
# git-ignored virtual environment .venv when missing, builds the harness, and passes
# its arguments on, e.g.
#   scripts/compare-openvino.sh --models mobileone-s1 mobileone-s4 --threads 1 2 --budget-s 2
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import openvino, onnxruntime, onnx, numpy" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "openvino==2026.4.1" "onnxruntime==1.32.0" "onnx==1.23.2" numpy
fi
cargo build --quiet -p harness
exec "$VENV/bin/python" scripts/compare_openvino.py --harness target/debug/harness "$@"
