#!/usr/bin/env bash
# Installs what building and running nezha needs, idempotently, and exports
# the build environment. Source it: `source scripts/setup.sh`.
#
# - Debian packages: libgloo-dev (Gloo's headers, for the c10d shim in
#   c10d/; the torch wheel does not ship them).
# - libtorch from the PyPI wheel torch==2.13.0, in a venv under the user's
#   cache folder (scripts/libtorch.sh), shared by every clone on the machine.
# Rust crates come from crates.io through cargo itself.

_nezha_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: cargo not found; nezha needs a Rust toolchain (rustup)" >&2
    return 1 2>/dev/null || exit 1
fi
_nezha_missing=()
for _nezha_pkg in libgloo-dev; do
    dpkg -s "$_nezha_pkg" >/dev/null 2>&1 || _nezha_missing+=("$_nezha_pkg")
done
if [ "${#_nezha_missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: missing Debian packages ${_nezha_missing[*]}; install them as root" >&2
        return 1 2>/dev/null || exit 1
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${_nezha_missing[@]}"; } >&2 \
        || { echo "setup.sh: apt-get install ${_nezha_missing[*]} failed" >&2; return 1 2>/dev/null || exit 1; }
fi
unset _nezha_missing _nezha_pkg
# shellcheck source=libtorch.sh
source "$_nezha_root/scripts/libtorch.sh" || { return 1 2>/dev/null || exit 1; }
unset _nezha_root
