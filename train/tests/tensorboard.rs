//! Our event writer against TensorBoard's own protos and record framing:
//! train/tests/fixtures/tensorboard/golden.tfevents was written by
//! train/scripts/tensorboard_fixture.py with tensorboard 2.21.0 for the same
//! events. (The same script's `--read` mode loads a run's event files with
//! TensorBoard's EventAccumulator.)

use nezha_train::trainer::tensorboard::EventWriter;

#[test]
fn events_are_byte_identical_to_tensorboards() {
    let golden = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tensorboard/golden.tfevents"
    ))
    .unwrap();
    let mut w = EventWriter::new(Vec::new(), 1700000000.0).unwrap();
    w.scalars(1, 1700000000.25, &[("train/loss", 10.5), ("train/lr", 0.0)])
        .unwrap();
    w.scalars(
        2,
        1700000001.5,
        &[
            ("train/loss", 9.75),
            ("train/lr", 1.5e-5),
            ("perf/seq_per_s", 123.456),
        ],
    )
    .unwrap();
    w.scalars(300, 1700000002.75, &[("train/mlm_acc", 0.0625)])
        .unwrap();
    let ours = w.into_inner();
    assert_eq!(ours.len(), golden.len());
    assert!(ours == golden, "event bytes differ from TensorBoard's");
}
