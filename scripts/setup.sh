#!/usr/bin/env bash
# Installs what building and running nezha needs, idempotently, and exports
# the build environment. Source it: `source scripts/setup.sh`.
#
# - libtorch from the PyPI wheel torch==2.13.0, in a venv under the user's
#   cache folder (scripts/libtorch.sh), shared by every clone on the machine.
# Rust crates come from crates.io through cargo itself.

_nezha_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: cargo not found; nezha needs a Rust toolchain (rustup)" >&2
    return 1 2>/dev/null || exit 1
fi
# shellcheck source=libtorch.sh
source "$_nezha_root/scripts/libtorch.sh" || { return 1 2>/dev/null || exit 1; }
unset _nezha_root
