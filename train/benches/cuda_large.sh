#!/usr/bin/env bash
# NEZHA-large pretraining throughput and MFU on one CUDA GPU: sequence 128,
# batch 64, bf16 (f32 master weights, LAMB). Needs an NVIDIA GPU and driver;
# libtorch is the CUDA build that scripts/libtorch.sh installs from PyPI.
#
#   bash train/benches/cuda_large.sh [extra cuda_throughput args, e.g. --peak-tflops 312 for an A100]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/libtorch.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-train}"
cargo run -q -p nezha-train --release --features cuda --example cuda_throughput -- \
    --config large --batch 64 --seq 128 --precision bf16 --steps 20 "$@"
