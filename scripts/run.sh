#!/usr/bin/env bash
# Builds nezha and runs a pipeline file (default: the bundled pipeline.toml).
#   scripts/run.sh [pipeline.toml] [nezha run options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --quiet --bin nezha
exec target/release/nezha run "${@:-pipeline.toml}"
