#!/usr/bin/env bash
# Data-parallel scaling on the CPU: the bundled pipeline (tiny NEZHA,
# sequence 128, streaming from data/sanguo.txt) trained for STEPS steps by
# one process and by `nezha launch --nproc-per-node 2`, at the same global
# batch (32 = 1 × 32 = 2 × 16) and the same number of data workers in all
# (2), each process's libtorch given cores / processes threads; the two
# processes again with the gradient all-reduce after backward instead of
# overlapping it (`overlap_all_reduce = false`); and, as a control, one
# process whose libtorch has one thread. Prints the sequences
# per second of each (median over the steps after the first WARMUP), the
# speed-up and the load average around each run (other work on the machine
# distorts the figures).
#
#   benches/dist_scaling_cpu.sh            # STEPS=40 WARMUP=5 by default
#
# On a machine with only 2 cores, both runs are bound by the same 2 cores;
# see README for what was measured.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-40}"
warmup="${WARMUP:-5}"
dir="${BENCH_DIR:-/tmp/nezha-c10d-bench}"
rm -rf "$dir"
mkdir -p "$dir"
source scripts/setup.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet --bin nezha
bin="$CARGO_TARGET_DIR/release/nezha"
cores="$(nproc)"

pipeline() { # pipeline NAME WORKERS BATCH [EXTRA [train] LINE] -> path
    local p="$dir/$1.toml"
    sed -e "s|^workers = 2 |workers = $2 |" \
        -e "s|^input = \"data/sanguo.txt\"|input = \"$PWD/data/sanguo.txt\"|" \
        -e "s|^vocab = \"data/vocab.txt\"|vocab = \"$PWD/data/vocab.txt\"|" \
        -e "s|^batch_size = 32|batch_size = $3|" \
        -e "s|^output_dir = \"out/tiny\"|output_dir = \"$dir/$1\"|" \
        -e "s|^steps = 300|steps = $steps|" \
        -e "s|^warmup_steps = 30|warmup_steps = 2|" \
        -e "s|^save_every = 100|save_every = 100000|" \
        pipeline.toml >"$p"
    [ -z "${4:-}" ] || echo "$4" >>"$p"
    grep -q "batch_size = $3" "$p" && grep -q "steps = $steps" "$p" \
        || { echo "pipeline.toml changed: the substitutions no longer apply" >&2; exit 1; }
    echo "$p"
}

median_rate() { # median_rate OUTPUT_DIR
    python3 - "$1/metrics.jsonl" "$warmup" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rates = [r["seq_per_s"] for r in rows[int(sys.argv[2]):]]
print(f"{statistics.median(rates):.1f}")
PY
}

one="$(pipeline one 2 32)"
one1="$(pipeline one1 2 32 'threads = 1')"
two="$(pipeline two 1 16)"
two_after="$(pipeline two_after 1 16 'overlap_all_reduce = false')"
load() { cut -d' ' -f1 /proc/loadavg; }
echo "cores: $cores; $steps steps, global batch 32, sequence 128, tiny model"
l0=$(load); t0=$(date +%s.%N)
"$bin" run "$one" >"$dir/one.log" 2>&1
l1=$(load); t1=$(date +%s.%N)
"$bin" launch --nproc-per-node 2 --master-port "${PORT:-29533}" "$two" >"$dir/two.log" 2>&1
l2=$(load); t2=$(date +%s.%N)
"$bin" run "$one1" >"$dir/one1.log" 2>&1
l3=$(load); t3=$(date +%s.%N)
"$bin" launch --nproc-per-node 2 --master-port "${PORT:-29533}" "$two_after" >"$dir/two_after.log" 2>&1
l4=$(load); t4=$(date +%s.%N)
r1="$(median_rate "$dir/one")"
r2="$(median_rate "$dir/two")"
r11="$(median_rate "$dir/one1")"
r2a="$(median_rate "$dir/two_after")"
python3 - "$r1" "$r2" "$r11" "$r2a" "$t0" "$t1" "$t2" "$t3" "$t4" "$l0" "$l1" "$l2" "$l3" "$l4" <<'PY'
import sys
r1, r2, r11, r2a, t0, t1, t2, t3, t4 = map(float, sys.argv[1:10])
l0, l1, l2, l3, l4 = sys.argv[10:]
print("| processes | sequences/s (median) | wall s (incl. start) | load average before, after |")
print("|---|---|---|---|")
print(f"| 1 (libtorch's 2 threads, 2 data workers) | {r1:.1f} | {t1 - t0:.1f} | {l0}, {l1} |")
print(f"| 2 (1 thread, 1 data worker each) | {r2:.1f} | {t2 - t1:.1f} | {l1}, {l2} |")
print(f"| 1 (1 thread, 2 data workers; control) | {r11:.1f} | {t3 - t2:.1f} | {l2}, {l3} |")
print(f"| 2, all-reduce after backward (no overlap) | {r2a:.1f} | {t4 - t3:.1f} | {l3}, {l4} |")
print(f"2 processes vs 1: {r2 / r1:.2f}x (vs the 1-thread control: {r2 / r11:.2f}x); "
      f"overlap vs after backward: {r2 / r2a:.2f}x")
PY
