#!/usr/bin/env bash
# Sets up libtorch for `tch = "0.26"` (which expects PyTorch 2.13.0) and exports
# the environment the build needs.
#
#   source scripts/libtorch.sh     # install if missing, then export into this shell
#   bash scripts/libtorch.sh       # install if missing, print the exports
#
# libtorch comes from the PyPI wheel `torch==2.13.0` installed into a private
# venv, because PyPI is the only place the build machines can fetch it from.
# A marker file written after a successful install makes the second run take
# well under a second. The binaries get an rpath to `$LIBTORCH/lib` from the
# crates' build.rs, so LD_LIBRARY_PATH is not needed to run them.

_nezha_libtorch_setup() (
    set -euo pipefail
    local venv="$1" marker="$1/.nezha-torch-2.13.0-installed"
    if [ -f "$marker" ]; then
        exit 0
    fi
    # Debian packages: a C++ compiler for torch-sys's shim, python3 with venv.
    local missing=()
    for pkg in g++ python3 python3-venv; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "libtorch.sh: missing Debian packages ${missing[*]} and not root" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q torch==2.13.0
    # The marker is only written once torch imports at the expected version.
    "$venv/bin/python" -W ignore - <<'EOF'
import torch, sys
v = torch.__version__.split("+")[0]
if v != "2.13.0":
    sys.exit(f"libtorch.sh: venv has torch {torch.__version__}, expected 2.13.0")
EOF
    touch "$marker"
)

NEZHA_TORCH_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/nezha/torch-2.13.0"
if _nezha_libtorch_setup "$NEZHA_TORCH_VENV"; then
    # The site-packages path depends on the venv's python minor version.
    for _nezha_sp in "$NEZHA_TORCH_VENV"/lib/python3*/site-packages/torch; do
        export LIBTORCH="$_nezha_sp"
    done
    unset _nezha_sp
    export NEZHA_TORCH_VENV
    # Keep torch-sys from asking a python which torch it has: LIBTORCH wins.
    unset LIBTORCH_USE_PYTORCH
    if [ "${BASH_SOURCE[0]}" = "$0" ]; then
        echo "export NEZHA_TORCH_VENV=$NEZHA_TORCH_VENV"
        echo "export LIBTORCH=$LIBTORCH"
    fi
else
    echo "libtorch.sh: setting up $NEZHA_TORCH_VENV failed" >&2
    # `return` when sourced, `exit` when run.
    return 1 2>/dev/null || exit 1
fi
