#!/usr/bin/env bash
# What the nezha-c10d crate (c10d/) needs beyond scripts/libtorch.sh.
#
#   bash scripts/setup-dist.sh          # Gloo's headers (Debian libgloo-dev)
#   source scripts/setup-dist.sh --nccl # also the CUDA headers for the `nccl`
#                                       # feature, and export NEZHA_CUDA_HEADERS
#
# The torch wheel ships libtorch with Gloo and NCCL compiled in but not the
# headers that ProcessGroupGloo.hpp / ProcessGroupNCCL.hpp include. Gloo's come
# from Debian; for NCCL, the wheel's own nvidia-* dependencies provide CUDA
# runtime and NCCL headers, and two more PyPI packages (pinned to the CUDA 13.0
# of torch 2.13.0's nvidia-cuda-runtime) provide nv/target and crt/host_config.h,
# installed into a private venv. Both steps do nothing when already done.

_nezha_c10d_setup() (
    set -euo pipefail
    if ! dpkg -s libgloo-dev >/dev/null 2>&1; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "setup-dist.sh: Debian package libgloo-dev missing and not root" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgloo-dev
    fi
    if [ "${1:-}" = "--nccl" ]; then
        local venv="$2" marker="$2/.nezha-cuda-headers-installed"
        if [ ! -f "$marker" ]; then
            [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
            "$venv/bin/python" -m pip install -q nvidia-cuda-cccl==13.0.85 nvidia-cuda-crt==13.0.88
            touch "$marker"
        fi
    fi
)

NEZHA_CUDA_HEADERS_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/nezha/cuda-headers-13.0"
if _nezha_c10d_setup "${1:-}" "$NEZHA_CUDA_HEADERS_VENV"; then
    if [ "${1:-}" = "--nccl" ]; then
        for _nezha_inc in "$NEZHA_CUDA_HEADERS_VENV"/lib/python3*/site-packages/nvidia/cu13/include; do
            export NEZHA_CUDA_HEADERS="$_nezha_inc"
        done
        unset _nezha_inc
        if [ "${BASH_SOURCE[0]}" = "$0" ]; then
            echo "export NEZHA_CUDA_HEADERS=$NEZHA_CUDA_HEADERS"
        fi
    fi
else
    echo "setup-dist.sh: set-up failed" >&2
    return 1 2>/dev/null || exit 1
fi
