#!/usr/bin/env bash
# Data-parallel scaling on one CUDA machine: NEZHA-large, sequence 128,
# batch 64 per GPU, bf16, streaming from the bundled corpus, trained by one
# process on one GPU and by `nezha launch --nproc-per-node N` on all N GPUs
# (NCCL). Prints each run's sequences per second (median over the steps after
# the first WARMUP; with several processes it is the global figure rank 0
# logs) and the scaling efficiency rate(N) / (N × rate(1)). The goal on 8 GPUs
# is at least 95%.
#
#   bash benches/cuda_scaling.sh                # STEPS=60 WARMUP=10, every GPU
#   NGPU=4 bash benches/cuda_scaling.sh
#
# Needs an NVIDIA driver, the CUDA libtorch that scripts/libtorch.sh installs
# and the NCCL headers of `source scripts/setup-dist.sh --nccl`.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-60}"
warmup="${WARMUP:-10}"
ngpu="${NGPU:-$(nvidia-smi -L | grep -c '^GPU')}"
dir="${BENCH_DIR:-/tmp/nezha-cuda-scaling}"
rm -rf "$dir"
mkdir -p "$dir"
source scripts/libtorch.sh >/dev/null
source scripts/setup-dist.sh --nccl >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --features cuda,nccl --bin nezha
bin="$CARGO_TARGET_DIR/release/nezha"

# Enough text that every rank's share outlasts the run: data/sanguo.txt
# (1.8 MB) 40 times, about 1.4 M sequences at length 128.
corpus="$dir/corpus.txt"
for _ in $(seq 40); do cat data/sanguo.txt; echo; done >"$corpus"

pipeline() { # pipeline NAME -> path
    cat >"$dir/$1.toml" <<TOML
seed = 12345
workers = 4
[ingest]
input = "$corpus"
[sentences]
kind = "punct"
[wordpiece]
vocab = "$PWD/data/vocab.txt"
[instances]
max_seq_length = 128
dupe_factor = 5
[masking]
max_predictions_per_seq = 20
[batching]
batch_size = 64
[sink]
kind = "train"
[train]
model = "large"
output_dir = "$dir/$1"
steps = $steps
warmup_steps = 5
learning_rate = 1e-4
device = "cuda"
precision = "bf16"
save_every = 1000000
tensorboard = false
plot = false
TOML
    echo "$dir/$1.toml"
}

median_rate() { # median_rate OUTPUT_DIR
    python3 - "$1/metrics.jsonl" "$warmup" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rates = [r["seq_per_s"] for r in rows[int(sys.argv[2]):]]
print(f"{statistics.median(rates):.1f}")
PY
}

echo "NEZHA-large, sequence 128, batch 64 per GPU, bf16, $steps steps; $ngpu GPU(s):"
nvidia-smi -L | head -n "$ngpu"
CUDA_VISIBLE_DEVICES=0 "$bin" run "$(pipeline one)" >"$dir/one.log" 2>&1
"$bin" launch --nproc-per-node "$ngpu" --master-port "${PORT:-29511}" "$(pipeline all)" \
    >"$dir/all.log" 2>&1
r1="$(median_rate "$dir/one")"
rn="$(median_rate "$dir/all")"
python3 - "$r1" "$rn" "$ngpu" <<'PY'
import sys
r1, rn, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"1 GPU: {r1:.1f} sequences/s")
print(f"{n} GPUs: {rn:.1f} sequences/s")
print(f"speed-up {rn / r1:.2f}x of {n}x: scaling efficiency {rn / (n * r1):.1%} (goal 95%)")
PY
