#!/usr/bin/env bash
# OpenVINO for the `openvino` backend (cargo feature `openvino`): installs PyPI's openvino
# 2026.4.1 wheel (no dependencies; its C library and CPU plugin are all the backend loads) into
# the project-local, git-ignored virtual environment .venv, which the comparison scripts also
# use. The backend opens libopenvino_c at run time (openvino-rs's runtime linking; nothing is
# downloaded by the build). Idempotent. Prints the environment:  eval "$(scripts/setup-openvino.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
OPENVINO=2026.4.1

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
info=$("$VENV/bin/pip" show openvino 2>/dev/null || true)
if ! grep -q "^Version: $OPENVINO\$" <<<"$info"; then
    echo "installing openvino==$OPENVINO (no dependencies) into $VENV" >&2
    "$VENV/bin/pip" install --quiet --no-deps "openvino==$OPENVINO" >&2
fi
site=$(cd "$VENV/lib"/python3*/site-packages && pwd)
lib=$(ls "$site"/openvino/libs/libopenvino_c.so.* 2>/dev/null | head -1)
[ -n "$lib" ] && [ -f "$lib" ] || { echo "error: libopenvino_c.so.* missing under $site/openvino/libs" >&2; exit 1; }
# Read by the backend at run time, and by its build script as the default baked into binaries.
echo "export OPENVINO_LIB_PATH=$lib"
