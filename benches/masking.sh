#!/usr/bin/env bash
# Masking benchmarks (issue 6): sequences per second of the streaming
# pipeline into the checking consumer, with whole-word masking off, on ## pieces
# and on Jieba words, and with dynamic masking on 1 and 2 workers. The README
# ("Whole-word and dynamic masking") records the figures.
#
#   benches/masking.sh
#
# The corpus is data/sanguo.txt ten times (17 MB) in $BENCH_DIR (default
# /tmp/nezha-bench); `punct` sentences, sequence 128, dupe_factor 5, batches
# of 64. Each configuration runs once; the check sink prints its rate and the
# masked-token rates.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BENCH_DIR:-/tmp/nezha-bench}"
mkdir -p "$dir"
source scripts/setup.sh
cargo build --release --quiet --bin nezha
bin="$PWD/target/release/nezha"

corpus="$dir/sanguo-x10.txt"
if [ ! -f "$corpus" ]; then
    for _ in $(seq 10); do cat data/sanguo.txt; echo; done >"$corpus.tmp"
    mv "$corpus.tmp" "$corpus"
fi

run() { # run LABEL WORKERS MASKING-LINES
    local toml="$dir/masking.toml"
    cat >"$toml" <<TOML
seed = 1
workers = $2
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
$3
[batching]
batch_size = 64
[sink]
kind = "check"
TOML
    echo "== $1, $2 worker(s)"
    "$bin" run "$toml" | tail -2
}

run "static, token masking" 2 'kind = "static"'
run "static, whole_word = wordpiece" 2 $'kind = "static"\nwhole_word = "wordpiece"'
run "static, whole_word = jieba" 2 $'kind = "static"\nwhole_word = "jieba"'
run "dynamic, whole_word = jieba" 1 $'kind = "dynamic"\nwhole_word = "jieba"'
run "dynamic, whole_word = jieba" 2 $'kind = "dynamic"\nwhole_word = "jieba"'
