#!/usr/bin/env python3
"""TensorBoard event files: the reference bytes, and a reader check.

    ~/.cache/nezha/hf/bin/pip install tensorboard==2.21.0
    ~/.cache/nezha/hf/bin/python train/scripts/tensorboard_fixture.py          # regenerate the fixture
    ~/.cache/nezha/hf/bin/python train/scripts/tensorboard_fixture.py --read RUN_DIR/tensorboard

Without arguments, writes train/tests/fixtures/tensorboard/golden.tfevents:
TensorBoard's own protos (event_pb2, summary_pb2) and its RecordWriter
framing for a fixed list of events, which train/tests/tensorboard.rs
reproduces byte for byte with our writer. With --read, loads every event file
in the directory with TensorBoard's EventAccumulator (what `tensorboard
--logdir` uses) and prints each scalar tag's steps and last value, failing if
none is found.
"""
import io
import os
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tensorboard", "golden.tfevents")

# (wall_time, step, [(tag, value)]) — mirrored in train/tests/tensorboard.rs
EVENTS = [
    (1700000000.25, 1, [("train/loss", 10.5), ("train/lr", 0.0)]),
    (1700000001.5, 2, [("train/loss", 9.75), ("train/lr", 1.5e-5), ("perf/seq_per_s", 123.456)]),
    (1700000002.75, 300, [("train/mlm_acc", 0.0625)]),
]


def golden():
    buf = io.BytesIO()
    w = RecordWriter(buf)
    w.write(event_pb2.Event(wall_time=1700000000.0, file_version="brain.Event:2").SerializeToString())
    for wall, step, scalars in EVENTS:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in scalars])
        w.write(event_pb2.Event(wall_time=wall, step=step, summary=summary).SerializeToString())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(buf.getvalue())
    print("written", OUT, len(buf.getvalue()), "bytes")


def read(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(directory, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if not tags:
        sys.exit(f"no scalars found in {directory}")
    for tag in sorted(tags):
        ev = acc.Scalars(tag)
        print(f"{tag}: {len(ev)} points, steps {ev[0].step}..{ev[-1].step}, last {ev[-1].value:.6g}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        read(sys.argv[2])
    else:
        golden()
