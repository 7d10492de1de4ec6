#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with cargo-fuzz (libFuzzer): each
# target in turn for RUNS executions or SECONDS seconds, whichever comes
# first, then prints per target the executions, exec/s, seconds and whether
# it crashed. The targets and their seeds, dictionaries: fuzz/.
#
#   bash benches/fuzz.sh                                # every target, 10,000,000 runs or 1800 s each
#   RUNS=1000000 SECONDS_PER_TARGET=300 bash benches/fuzz.sh
#   TARGETS="tfrecord vocab" bash benches/fuzz.sh
#
# libFuzzer needs nightly Rust: the script installs cargo-fuzz if missing
# and runs `cargo +nightly fuzz`; the project itself builds and tests on
# stable and never builds fuzz/. A crash leaves its input in
# fuzz/artifacts/TARGET/; make it a test in tests/fuzz_regressions.rs.
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-10000000}"
seconds="${SECONDS_PER_TARGET:-1800}"
targets="${TARGETS:-tfrecord vocab pipeline_toml jsonl command_answer}"
logs="${FUZZ_LOGS:-fuzz/logs}"
mkdir -p "$logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# The dictionary a target has, by name; the JSON one serves both JSON readers.
dict_for() {
    case "$1" in
        tfrecord) echo fuzz/dicts/tfrecord.dict ;;
        pipeline_toml) echo fuzz/dicts/pipeline_toml.dict ;;
        jsonl | command_answer) echo fuzz/dicts/json.dict ;;
        *) echo "" ;;
    esac
}

(cd fuzz && cargo +nightly fuzz build -O) || exit 1

results=()
status=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    dict="$(dict_for "$t")"
    args=(-runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    [ -n "$dict" ] && args+=(-dict="$PWD/$dict")
    echo "== $t: ${runs} runs or ${seconds} s" >&2
    # The growing corpus first (new inputs are written there), seeds second.
    # The targets' scratch files (jsonl's input file, pipeline_toml's vocab)
    # outlive them, statics being never dropped: in memory, removed here.
    tmp="$(mktemp -d "$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/nezha-fuzz.XXXXXX")"
    (cd fuzz && TMPDIR="$tmp" cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- "${args[@]}") >"$logs/$t.log" 2>&1
    rc=$?
    rm -rf "$tmp"
    execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$logs/$t.log" | tail -1 | awk '{print $2}')
    rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$logs/$t.log" | tail -1 | awk '{print $2}')
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$t.log" | tail -1 | awk '{print $5}')
    if [ "$rc" -eq 0 ]; then verdict=ok; else verdict="CRASH (exit $rc, see $logs/$t.log and fuzz/artifacts/$t/)"; status=1; fi
    results+=("$(printf '%-16s %12s runs %8s exec/s %6s s  %s' "$t" "${execs:-?}" "${rate:-?}" "${secs:-?}" "$verdict")")
done
printf '%s\n' "${results[@]}"
exit "$status"
