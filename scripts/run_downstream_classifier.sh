#!/usr/bin/env bash
# Sentence classification as the reference's scripts/run_clf.sh, through
# `nezha finetune classify` (seq 128, batch 32, lr 3e-5 unless set, and
# run_classifier.py's 3 epochs, or run_clf.sh's 5 for TASK_NAME=lcqmc).
# TASK_NAME picks the file layout as the reference's --task_name:
# xnli, lcqmc, chnsenti (text_clf), or tsv (the default: train.tsv,
# dev.tsv and optionally test.tsv with a header naming the columns —
# label, text_a, and text_b for pairs: set TEXT_B=text_b; the sentiment
# example writes such files) or jsonl.
#
#   DATA_DIR=... VOCAB_FILE=... INIT_CHECKPOINT=... OUTPUT_DIR=... \
#       scripts/run_downstream_classifier.sh [more nezha finetune classify flags]
#
# NEZHA names the binary (default: build and use target/release/nezha).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/downstream.sh
downstream_setup "train.tsv, dev.tsv, test.tsv"
extra=("${init[@]}")
[[ -n "${TEXT_B:-}" ]] && extra+=(--text_b "$TEXT_B")
[[ -n "${TASK_NAME:-}" ]] && extra+=(--task_name "$TASK_NAME")
# run_clf.sh trains LCQMC for 5 epochs; run_classifier.py's flag says 3.
epochs=3
[[ "${TASK_NAME:-}" == lcqmc ]] && epochs=5
exec "$NEZHA" finetune classify \
    --data_dir "$DATA_DIR" \
    --vocab_file "$VOCAB_FILE" \
    --output_dir "$OUTPUT_DIR" \
    --max_seq_length "${MAX_SEQ_LENGTH:-128}" \
    --train_batch_size "${TRAIN_BATCH_SIZE:-32}" \
    --learning_rate "${LEARNING_RATE:-3e-5}" \
    --num_train_epochs "${NUM_TRAIN_EPOCHS:-$epochs}" \
    "${extra[@]}" "$@"
