#!/usr/bin/env bash
# libtorch for the `tch` backend (cargo feature `tch`): installs the PyPI torch 2.13.0 wheel
# (the version tch 0.26 expects) into the project-local, git-ignored virtual environment
# .venv-libtorch, without its CUDA dependency set, plus the only two CUDA libraries that
# libtorch's shared objects need to load on a CPU-only machine (the versions torch 2.13.0 pins
# through cuda-toolkit 13.0.3). Idempotent: a second run checks and does nothing.
# Prints the environment to use; source its output, or run:  eval "$(scripts/setup-libtorch.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-libtorch
TORCH=2.13.0
CUDA_RUNTIME=13.0.96
CUDA_CUPTI=13.0.85

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
# (pip's output is read whole first: `grep -q` closing the pipe early fails under pipefail)
have() { local info; info=$("$VENV/bin/pip" show "$1" 2>/dev/null) && grep -q "^Version: $2" <<<"$info"; }
if ! have torch "$TORCH"; then
    echo "installing torch==$TORCH (no dependencies) into $VENV" >&2
    "$VENV/bin/pip" install --quiet --no-deps "torch==$TORCH" >&2
fi
if ! have nvidia-cuda-runtime "$CUDA_RUNTIME" || ! have nvidia-cuda-cupti "$CUDA_CUPTI"; then
    echo "installing nvidia-cuda-runtime==$CUDA_RUNTIME.* nvidia-cuda-cupti==$CUDA_CUPTI.*" >&2
    "$VENV/bin/pip" install --quiet --no-deps \
        "nvidia-cuda-runtime==$CUDA_RUNTIME.*" "nvidia-cuda-cupti==$CUDA_CUPTI.*" >&2
fi

site=$(cd "$VENV/lib"/python3*/site-packages && pwd)
libtorch="$site/torch"
[ -f "$libtorch/lib/libtorch_cpu.so" ] || { echo "error: $libtorch/lib/libtorch_cpu.so missing" >&2; exit 1; }
# libtorch's libraries find the CUDA runtime through their own rpath ($ORIGIN/../../nvidia/...);
# the build scripts put $LIBTORCH/lib into our binaries' rpath, so no LD_LIBRARY_PATH is needed.
echo "export LIBTORCH=$libtorch"
