#!/usr/bin/env bash
# Pretraining on the eight devices of one machine, as the NEZHA seed's
# run_8p.sh: one process per device through `nezha launch` (rank r on
# cuda:r, gradients averaged with NCCL). Build with `--features cuda,nccl`
# (docs/distributed.md). For several machines run this on each with
# NNODES, NODE_RANK and MASTER_ADDR set.
#
#   [PIPELINE=...] [NPROC_PER_NODE=8] [NNODES=1 NODE_RANK=0 MASTER_ADDR=...] \
#       [RESUME=1] scripts/run_8p.sh [nezha launch options]
set -euo pipefail
cd "$(dirname "$0")/.."

PIPELINE="${PIPELINE:-pipelines/nezha-large.toml}"   # the recipe (batch 64 per device)
NPROC_PER_NODE="${NPROC_PER_NODE:-8}"                # devices (processes) on this machine
NNODES="${NNODES:-1}"                                # machines taking part
NODE_RANK="${NODE_RANK:-0}"                          # this machine's index among them
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"              # the machine of node rank 0
MASTER_PORT="${MASTER_PORT:-29500}"                  # its rendezvous port
RESUME="${RESUME:-}"                                 # non-empty: continue from the newest checkpoint
NEZHA="${NEZHA:-}"                                   # the binary (default: build target/release/nezha)

if [[ -z "$NEZHA" ]]; then
    source scripts/setup.sh
    cargo build --release --quiet --features cuda,nccl --bin nezha
    NEZHA=target/release/nezha
fi
args=(launch --nproc-per-node "$NPROC_PER_NODE" --nnodes "$NNODES" --node-rank "$NODE_RANK"
      --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")
[[ -n "$RESUME" ]] && args+=(--resume)
exec "$NEZHA" "${args[@]}" "$@" "$PIPELINE"
