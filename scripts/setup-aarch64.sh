#!/usr/bin/env bash
# Installs what running the native backend's tests for aarch64 (NEON) under emulation needs:
# the Rust aarch64-unknown-linux-gnu target, an aarch64 cross linker and C library, and
# qemu-user. Idempotent. Afterwards, run the tests with:
#   export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
#   export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
#   export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
#   cargo test -p backends --target aarch64-unknown-linux-gnu --test ops --test native_plan
set -euo pipefail
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-dev-arm64-cross)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "aarch64 cross toolchain and qemu-user ready"
