#!/usr/bin/env bash
# Native int8 vs ONNX Runtime's and OpenVINO's own int8 quantization (quantize_static, NNCF),
# side by side (see scripts/compare_int8.py). Installs onnxruntime, openvino, nncf, onnx and
# numpy into the project-local, git-ignored virtual environment .venv when missing, builds the
# harness, and passes its arguments on, e.g.
#   scripts/compare-int8.sh --models mobileone-s1 --threads 1 2 --budget-s 2
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime.quantization, openvino, nncf, onnx, numpy" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "onnxruntime==1.32.0" "openvino==2026.4.1" "nncf==3.4.0" "onnx==1.23.2" numpy
fi
cargo build --quiet --release -p harness
exec "$VENV/bin/python" scripts/compare_int8.py --harness target/release/harness "$@"
