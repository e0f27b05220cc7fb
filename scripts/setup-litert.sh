#!/usr/bin/env bash
# LiteRT for the `litert` backend (cargo feature `litert`): installs PyPI's ai-edge-litert
# 2.3.0 wheel (no dependencies; its libLiteRt.so, LiteRT's C API with the XNNPACK CPU
# accelerator built in, is all the backend loads) into the project-local, git-ignored virtual
# environment .venv. The backend opens the library at run time (libloading; nothing is
# downloaded by the build). Idempotent. Prints the environment:  eval "$(scripts/setup-litert.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
LITERT=2.3.0

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
info=$("$VENV/bin/pip" show ai-edge-litert 2>/dev/null || true)
if ! grep -q "^Version: $LITERT\$" <<<"$info"; then
    echo "installing ai-edge-litert==$LITERT (no dependencies) into $VENV" >&2
    "$VENV/bin/pip" install --quiet --no-deps "ai-edge-litert==$LITERT" >&2
fi
site=$(cd "$VENV/lib"/python3*/site-packages && pwd)
lib="$site/ai_edge_litert/libLiteRt.so"
[ -f "$lib" ] || { echo "error: $lib missing" >&2; exit 1; }
# Read by the backend at run time, and by its build script as the default baked into binaries;
# the version is the wheel's (the library does not report its own).
echo "export LITERT_LIB_PATH=$lib"
echo "export LITERT_VERSION=$LITERT"
