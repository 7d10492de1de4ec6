#!/usr/bin/env bash
# Preprocessing benchmarks (issue: streaming dataflow), side by side with the
# reference script where there is one. Prints a table; the README records it.
#
#   benches/preprocess.sh [speed|memory|dedup|all]   (WWM=jieba for whole-word masking)
#
# speed:  reference mode, one thread, vs bert-tensorflow 1.0.4's
#         create_pretraining_data.py on the same corpus (5.4 MB) and flags; then
#         streaming mode on 2 workers into the bounded channel.
# memory: streaming mode on ~100 MB and ~1 GB of text: peak RSS of each.
# dedup:  the same with [dedup] on (and whole-word masking when
#         WWM=jieba|wordpiece is set), on corpora whose repeated copies are
#         made distinct (each chapter of copy k starts with a line naming k),
#         plus a copy of every 10th chapter, which dedup must drop.
#         (What dedup holds per distinct document: cargo bench -p nezha-stages
#         --bench dedup.)
#
# Corpora are built in $BENCH_DIR (default /tmp/nezha-bench) by repeating
# data/sanguo.txt (三国演义, 1.8 MB), so every size has the same text mix.
# The reference needs a venv with tensorflow-cpu==2.21.0, bert-tensorflow==1.0.4
# and six; it is created under the user's cache folder when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
dir="${BENCH_DIR:-/tmp/nezha-bench}"
mkdir -p "$dir"
source scripts/setup.sh
cargo build --release --quiet --bin nezha
bin="$PWD/target/release/nezha"

corpus() { # corpus NAME COPIES
    local f="$dir/$1.txt"
    if [ ! -f "$f" ]; then
        for _ in $(seq "$2"); do cat data/sanguo.txt; echo; done >"$f.tmp"
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}

# Peak RSS (KB) and wall seconds of a command, via GNU time.
measure() { # measure LOG -- CMD...
    local log="$1"; shift
    /usr/bin/time -f "%M %e" -o "$log.time" "$@" >"$log" 2>&1
    cat "$log.time"
}

# A corpus of COPIES distinct copies of data/sanguo.txt (chapter lines
# prefixed by the copy's number), with every 10th chapter of each copy
# repeated at its end: exact duplicates.
distinct_corpus() { # distinct_corpus NAME COPIES
    local f="$dir/$1.txt"
    if [ ! -f "$f" ]; then
        python3 - "$2" "$PWD/data/sanguo.txt" >"$f.tmp" <<'PY'
import sys
copies, src = int(sys.argv[1]), sys.argv[2]
chapters = [c.strip("\n") for c in open(src, encoding="utf-8").read().split("\n\n") if c.strip()]
out = sys.stdout
for k in range(copies):
    marked = [f"第{k}遍。\n{c}" for c in chapters]
    for c in marked + marked[::10]:
        out.write(c + "\n\n")
PY
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}

pipeline() { # pipeline INPUT WORKERS [EXTRA-TOML] -> path of a streaming pipeline file into the check sink
    local p="$dir/stream-$2${3:+-x}.toml"
    local wwm_line=""
    if [ -n "${WWM:-}" ]; then wwm_line="whole_word = \"$WWM\""; fi
    cat >"$p" <<TOML
seed = 12345
workers = $2
${3:-}
[ingest]
input = "$1"
[sentences]
kind = "punct"
[wordpiece]
vocab = "$PWD/data/vocab.txt"
[instances]
max_seq_length = 128
dupe_factor = 5
[masking]
masked_lm_prob = 0.15
max_predictions_per_seq = 20
$wwm_line
[batching]
batch_size = 64
[sink]
kind = "check"
TOML
    echo "$p"
}

if [ "$what" = speed ] || [ "$what" = all ]; then
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/nezha/reference-tools"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q tensorflow-cpu==2.21.0 bert-tensorflow==1.0.4 six
    fi
    # data/sanguo.txt three times (5.4 MB), the size of the reference's
    # quoted figure (5.5 MB of news text).
    small=$(corpus c5 3)
    flags=(--input_file="$small" --vocab_file="$PWD/data/vocab.txt" --do_lower_case=True
           --max_seq_length=128 --max_predictions_per_seq=20 --random_seed=12345
           --dupe_factor=10 --masked_lm_prob=0.15 --short_seq_prob=0.1)
    echo "== reference mode vs reference script: $(du -h "$small" | cut -f1) (data/sanguo.txt x3), seq 128, dupe 10"
    read -r ref_kb ref_s < <(measure "$dir/ref.log" "$venv/bin/python" -c '
import sys, tensorflow.compat.v1 as tf
sys.modules["tensorflow"] = tf
from bert import create_pretraining_data as c
tf.app.run(main=c.main, argv=sys.argv)' "${flags[@]}" --output_file="$dir/ref.tfrecord")
    read -r our_kb our_s < <(measure "$dir/ours.log" "$bin" create_pretraining_data "${flags[@]}" --output_file="$dir/ours.tfrecord")
    n=$("$bin" inspect "$dir/ours.tfrecord" --show 0 | tail -1 | awk '{print $2}')
    nref=$("$bin" inspect "$dir/ref.tfrecord" --show 0 | tail -1 | awk '{print $2}')
    cmp_records=$(python3 -c "print('same count' if $n == $nref else 'COUNT DIFFERS')")
    python3 - "$n" "$ref_s" "$ref_kb" "$our_s" "$our_kb" "$cmp_records" <<'PY'
import sys
n, rs, rk, os_, ok, same = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f"| tool | instances | wall s | instances/s | peak RSS MB |")
print(f"|---|---|---|---|---|")
print(f"| reference script (python, TF 2.21) | {n} | {rs:.2f} | {n/rs:,.0f} | {rk/1024:.0f} |")
print(f"| nezha create_pretraining_data | {n} | {os_:.2f} | {n/os_:,.0f} | {ok/1024:.0f} |")
print(f"speed-up: {rs/os_:.1f}x ({same})")
PY
    big=$(corpus c100 56)
    echo "== streaming, 2 workers, into the bounded channel: $(du -h "$big" | cut -f1) corpus, seq 128, dupe 5"
    read -r kb s < <(measure "$dir/stream.log" "$bin" run "$(pipeline "$big" 2)")
    grep checked "$dir/stream.log"
    echo "wall ${s}s, peak RSS $((kb / 1024)) MB"
fi

if [ "$what" = memory ] || [ "$what" = all ]; then
    echo "== streaming memory: peak RSS on ~100 MB and ~1 GB (2 workers, seq 128, dupe 5)"
    for spec in "c100 56" "c1000 560"; do
        set -- $spec
        f=$(corpus "$1" "$2")
        read -r kb s < <(measure "$dir/mem-$1.log" "$bin" run "$(pipeline "$f" 2)")
        echo "| $(du -h "$f" | cut -f1) | $(grep -o 'checked [0-9]* batches: [0-9]* sequences' "$dir/mem-$1.log") | ${s}s | $((kb / 1024)) MB |"
    done
fi

if [ "$what" = dedup ] || [ "$what" = all ]; then
    echo "== streaming with [dedup]${WWM:+ and whole_word = $WWM}: 2 workers, seq 128, dupe 5"
    echo "| corpus | documents kept / dropped | sequences | wall s | sequences/s | peak RSS |"
    echo "|---|---|---|---|---|---|"
    # The first row is the baseline: the same corpus without [dedup].
    for spec in "u100 50 off" "u100 50 on" "u1000 500 on"; do
        set -- $spec
        f=$(distinct_corpus "$1" "$2")
        extra=""
        if [ "$3" = on ]; then extra="[dedup]"; fi
        log="$dir/dedup-$1-$3.log"
        read -r kb s < <(measure "$log" "$bin" run "$(pipeline "$f" 2 "$extra")")
        kept=$(grep -o 'kept [0-9]* documents, dropped [0-9]*' "$log" | awk '{print $2 " / " $5}' || true)
        n=$(grep -o 'checked [0-9]* batches: [0-9]* sequences' "$log" | awk '{print $4}')
        python3 -c "print(f'| $(du -h "$f" | cut -f1) | ${kept:-no dedup} | {$n:,} | $s | {$n/$s:,.0f} | {$kb//1024} MB |')"
    done
fi

