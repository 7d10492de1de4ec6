#!/usr/bin/env bash
# Runs the whole test suite offline against the committed fixtures, after
# installing what the build needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --release "$@"
