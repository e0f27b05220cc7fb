#!/usr/bin/env bash
# Installs what the GPU backend's tests need on a Linux machine without a GPU: Mesa's lavapipe,
# a software Vulkan device (Debian's mesa-vulkan-drivers, with the Vulkan loader libvulkan1),
# on which wgpu runs our WGSL kernels. For the macOS type check it also adds the Rust
# aarch64-apple-darwin target (when rustup can fetch it) and clang, which compiles the one C
# dependency (psm's assembly, through the .npy reader) for that target. Idempotent. Afterwards:
#   cargo test --workspace --features harness/gpu
#   CC_aarch64_apple_darwin=clang cargo check --workspace --target aarch64-apple-darwin --features harness/gpu
set -euo pipefail
missing=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ] \
    || missing+=(mesa-vulkan-drivers)
ldconfig -p | grep -q 'libvulkan.so.1 ' || missing+=(libvulkan1)
command -v clang >/dev/null || missing+=(clang)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx aarch64-apple-darwin; then
    rustup target add aarch64-apple-darwin || echo "rustup could not add aarch64-apple-darwin: the macOS type check will be skipped"
fi
echo "lavapipe (software Vulkan) ready"
