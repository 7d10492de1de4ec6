#!/usr/bin/env python3
"""Masked-LM accuracies a model reaches without reading context, on
pretraining TFRecords, to put a run's held-out accuracy in perspective:

- most frequent: always the token most frequent among the labels;
- most frequent + copy: the input token where masking kept it (10% of the
  masked positions keep their token, 10% get a random one), else the most
  frequent token.

A model that beats the second uses the context. Standard library only:
    python3 scripts/mlm_baselines.py FILE.tfrecord [--vocab data/vocab.txt]
"""
import argparse
import collections
import struct


def records(path):
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if not head:
                return
            (length,) = struct.unpack("<Q", head[:8])
            data = f.read(length)
            f.read(4)
            yield data


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf):
    """(field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def values(feature):
    """The values of a tf.train.Feature: float_list (2) or int64_list (3)."""
    out = []
    for number, _, value in fields(feature):
        for n, wire, v in fields(value):
            if n != 1:
                continue
            if number == 2:
                out.extend(struct.unpack(f"<{len(v) // 4}f", v))
            elif number == 3 and wire == 2:
                j = 0
                while j < len(v):
                    x, j = varint(v, j)
                    out.append(x)
            elif number == 3:
                out.append(v)
    return out


def example(data):
    """tf.train.Example -> {name: [values]}."""
    features = {}
    for number, _, value in fields(data):
        if number != 1:
            continue
        for n, _, entry in fields(value):
            if n != 1:
                continue
            name, feature = None, None
            for k, _, v in fields(entry):
                if k == 1:
                    name = v.decode()
                elif k == 2:
                    feature = v
            features[name] = values(feature)
    return features


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tfrecords", nargs="+")
    ap.add_argument("--vocab")
    args = ap.parse_args()
    labels = collections.Counter()
    kept = total = 0
    masked = []
    for path in args.tfrecords:
        for data in records(path):
            ex = example(data)
            ids = ex["input_ids"]
            for pos, label, weight in zip(
                ex["masked_lm_positions"], ex["masked_lm_ids"], ex["masked_lm_weights"]
            ):
                if weight == 0:
                    continue
                labels[label] += 1
                total += 1
                masked.append((ids[pos], label))
    top, top_count = labels.most_common(1)[0]
    copy = sum(1 for given, label in masked if given == label)
    copy_or_top = sum(
        1 for given, label in masked if given == label or label == top
    )
    name = str(top)
    if args.vocab:
        vocab = open(args.vocab, encoding="utf-8").read().split("\n")
        name = f"{vocab[top]} ({top})"
    print(f"masked positions: {total}")
    print(f"most frequent label: {name}")
    print(f"most frequent: {top_count / total:.4f}")
    print(f"input token kept: {copy / total:.4f} of positions")
    print(f"most frequent + copy: {copy_or_top / total:.4f}")


if __name__ == "__main__":
    main()
