#!/usr/bin/env bash
# ONNX Runtime for the `ort` backend (cargo feature `ort`): installs PyPI's onnxruntime 1.32.0
# wheel (no dependencies; its libonnxruntime.so is all the backend loads) into the project-local,
# git-ignored virtual environment .venv, which the comparison scripts also use. The backend opens
# the library at run time (the `ort` crate's dynamic loading; nothing is downloaded by the build).
# Idempotent. Prints the environment to use:  eval "$(scripts/setup-onnxruntime.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
ORT=1.32.0

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
info=$("$VENV/bin/pip" show onnxruntime 2>/dev/null || true)
if ! grep -q "^Version: $ORT\$" <<<"$info"; then
    echo "installing onnxruntime==$ORT (no dependencies) into $VENV" >&2
    "$VENV/bin/pip" install --quiet --no-deps "onnxruntime==$ORT" >&2
fi
site=$(cd "$VENV/lib"/python3*/site-packages && pwd)
lib="$site/onnxruntime/capi/libonnxruntime.so.$ORT"
[ -f "$lib" ] || { echo "error: $lib missing" >&2; exit 1; }
# Read by the backend at run time, and by its build script as the default baked into binaries.
echo "export ORT_DYLIB_PATH=$lib"
