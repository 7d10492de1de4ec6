#!/usr/bin/env bash
# Peak memory of a streaming run (the bundled pipeline's stages into the
# `check` sink) on pathological inputs: one document of SIZE_MB (default
# 1024) MB without a blank line, one line of LINE_MB (default 100) MB, and
# DOCS (default 10,000,000) one-line documents. Prints each run's wall
# time and peak RSS (GNU time's maximum resident set size); the goal is
# under 1 GB each. The inputs are written under BENCH_DIR and kept.
#
#   bash benches/memory.sh
#   SIZE_MB=256 DOCS=1000000 bash benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${SIZE_MB:-1024}"
line_mb="${LINE_MB:-100}"
docs="${DOCS:-10000000}"
dir="${BENCH_DIR:-/tmp/nezha-memory}"
mkdir -p "$dir"
source scripts/setup.sh >/dev/null
cargo build --release --quiet --bin nezha
bin="$PWD/target/release/nezha"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

# The bundled corpus without its blank lines, repeated: one document.
big="$dir/one-document-${size_mb}mb.txt"
if [[ ! -f "$big" ]]; then
    grep -v '^$' data/sanguo.txt >"$dir/para.txt"
    : >"$big.tmp"
    while (($(stat -c %s "$big.tmp") < size_mb * 1024 * 1024)); do cat "$dir/para.txt" >>"$big.tmp"; done
    mv "$big.tmp" "$big"
fi
# The same paragraphs joined into one line.
line="$dir/one-line-${line_mb}mb.txt"
if [[ ! -f "$line" ]]; then
    tr -d '\n' <"$dir/para.txt" >"$dir/para-line.txt"
    : >"$line.tmp"
    while (($(stat -c %s "$line.tmp") < line_mb * 1024 * 1024)); do cat "$dir/para-line.txt" >>"$line.tmp"; done
    echo >>"$line.tmp"
    mv "$line.tmp" "$line"
fi
# DOCS documents of one short sentence each.
tiny="$dir/tiny-${docs}.txt"
if [[ ! -f "$tiny" ]]; then
    awk -v n="$docs" 'BEGIN { for (i = 0; i < n; i++) printf "第%d回，曹操引兵至此。\n\n", i }' >"$tiny.tmp"
    mv "$tiny.tmp" "$tiny"
fi

run() { # run NAME INPUT
    cat >"$dir/$1.toml" <<TOML
seed = 1
workers = 2
[ingest]
input = "$2"
[sentences]
kind = "punct"
[wordpiece]
vocab = "$PWD/data/vocab.txt"
[instances]
max_seq_length = 128
dupe_factor = 1
[masking]
max_predictions_per_seq = 20
[batching]
batch_size = 32
[sink]
kind = "check"
TOML
    /usr/bin/time -f "%e %M" -o "$dir/$1.time" "$bin" run "$dir/$1.toml" >"$dir/$1.log" 2>&1
    read -r wall rss <"$dir/$1.time"
    printf '%-28s %8.1f s  peak RSS %6.0f MB  (%s)\n' "$1" "$wall" "$((rss / 1024))" \
        "$(grep -E 'sequences' "$dir/$1.log" | tail -1)"
}
run "one document ${size_mb} MB" "$big"
run "one line ${line_mb} MB" "$line"
run "${docs} documents" "$tiny"
