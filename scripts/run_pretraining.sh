#!/usr/bin/env bash
# Pretraining on one device, as the NEZHA seed's run_pretraining.sh: the
# variables below, then one `nezha run` of the recipe's pipeline file.
#
#   [PIPELINE=...] [DEVICE_ID=0] [RESUME=1] scripts/run_pretraining.sh [nezha run options]
#
# Started by hand once per device with RANK_ID, DEVICE_ID, WORLD_SIZE (or
# RANK_SIZE) and MASTER_ADDR / MASTER_PORT set, each process joins the same
# run as rank RANK_ID on cuda:DEVICE_ID, as the seed's own scripts do; for
# the devices of one machine scripts/run_8p.sh does it for you.
set -euo pipefail
cd "$(dirname "$0")/.."

PIPELINE="${PIPELINE:-pipelines/nezha-large.toml}"   # the recipe (model, data, steps)
export DEVICE_ID="${DEVICE_ID:-0}"                   # the device this process uses
RESUME="${RESUME:-}"                                 # non-empty: continue from the newest checkpoint
NEZHA="${NEZHA:-}"                                   # the binary (default: build target/release/nezha)

if [[ -z "$NEZHA" ]]; then
    source scripts/setup.sh
    cargo build --release --quiet --bin nezha
    NEZHA=target/release/nezha
fi
args=(run "$PIPELINE")
[[ -n "$RESUME" ]] && args+=(--resume)
exec "$NEZHA" "${args[@]}" "$@"
