#!/usr/bin/env bash
# Regenerates harness/tests/fixtures/preprocess/*.npy, the Pillow reference tensors the
# classify preprocessing is tested against (see scripts/preprocess_fixtures.py). Creates the
# project-local, git-ignored .venv with numpy and Pillow when missing. The fixtures are
# committed; tests never run this.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import numpy, PIL" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet numpy "pillow==13.0.0"
fi
"$VENV/bin/python" -c "import PIL; print('Pillow', PIL.__version__)"
exec "$VENV/bin/python" scripts/preprocess_fixtures.py harness/tests/fixtures/preprocess
