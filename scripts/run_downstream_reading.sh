#!/usr/bin/env bash
# Reading comprehension as the reference's scripts/run_reading.sh, through
# `nezha finetune mrc` (CMRC 2018 / SQuAD JSON: train.json, dev.json and
# optionally test.json in DATA_DIR, or TRAIN_FILE / PREDICT_FILE; seq 512,
# stride 128, batch 4, 1 epoch, lr 3e-5 and cased unless set, the values
# run_reading.sh passes to run_squad.py).
#
#   DATA_DIR=... VOCAB_FILE=... INIT_CHECKPOINT=... OUTPUT_DIR=... \
#       scripts/run_downstream_reading.sh [more nezha finetune mrc flags]
#
# NEZHA names the binary (default: build and use target/release/nezha).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/downstream.sh
downstream_setup "train.json, dev.json, test.json"
files=()
[[ -n "${TRAIN_FILE:-}" ]] && files+=(--train_file "$TRAIN_FILE")
[[ -n "${PREDICT_FILE:-}" ]] && files+=(--predict_file "$PREDICT_FILE")
exec "$NEZHA" finetune mrc \
    --data_dir "$DATA_DIR" \
    --vocab_file "$VOCAB_FILE" \
    --output_dir "$OUTPUT_DIR" \
    --max_seq_length "${MAX_SEQ_LENGTH:-512}" \
    --doc_stride "${DOC_STRIDE:-128}" \
    --train_batch_size "${TRAIN_BATCH_SIZE:-4}" \
    --learning_rate "${LEARNING_RATE:-3e-5}" \
    --num_train_epochs "${NUM_TRAIN_EPOCHS:-1.0}" \
    --do_lower_case "${DO_LOWER_CASE:-false}" \
    "${files[@]}" "${init[@]}" "$@"
