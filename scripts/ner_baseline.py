"""The trivial NER baseline of the README: every character of the test file
gets the tag it carries most often in the training file (O for characters
never seen), scored with seqeval's entity-level F1 in its default mode on the
BMES tags as they are, as `nezha finetune ner` scores (PyPI seqeval==1.2.2).

    python scripts/ner_baseline.py DATA_DIR   # train.txt and test.txt, "char TAG" lines
"""
import collections
import sys
import warnings

from seqeval.metrics import f1_score, precision_score, recall_score


def sentences(path):
    text = open(path, encoding="utf-8").read()
    for block in text.split("\n\n"):
        pairs = [line.split(" ") for line in block.split("\n") if line.strip()]
        if pairs:
            yield [p[0] for p in pairs], [p[1] for p in pairs]


def main(data_dir):
    # seqeval's default mode reads M- as a tag it does not know, and says so per tag.
    warnings.filterwarnings("ignore", message=".* seems not to be NE tag")
    counts = collections.defaultdict(collections.Counter)
    for chars, tags in sentences(f"{data_dir}/train.txt"):
        for c, t in zip(chars, tags):
            counts[c][t] += 1
    best = {c: n.most_common(1)[0][0] for c, n in counts.items()}
    gold, pred = [], []
    for chars, tags in sentences(f"{data_dir}/test.txt"):
        gold.append(tags)
        pred.append([best.get(c, "O") for c in chars])
    print(f"per-character most frequent tag: entity P {precision_score(gold, pred):.4f} "
          f"R {recall_score(gold, pred):.4f} F1 {f1_score(gold, pred):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
