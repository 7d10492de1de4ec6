//! The reference pretraining feature layout: encoding, decoding, validation.

use std::collections::BTreeMap;

use nezha_stages::tfrecord::{
    decode_instance, encode_instance, parse_features, Example, FeatureValues,
};
use nezha_stages::Instance;
use prost::Message;

const SEQ: usize = 32;
const PREDS: usize = 5;

/// The features the reference writes for `inst`, built the slow, obvious
/// way, as `write_instance_to_example_files` does.
fn reference_features(
    inst: &Instance,
    seq: usize,
    preds: usize,
) -> BTreeMap<String, FeatureValues> {
    let n = inst.tokens.len();
    let pad = |mut v: Vec<i64>, len: usize| {
        v.resize(len, 0);
        v
    };
    let mut f = BTreeMap::new();
    let ints = |v: Vec<i64>| FeatureValues::Int64(v);
    f.insert(
        "input_ids".into(),
        ints(pad(inst.tokens.iter().map(|&t| t as i64).collect(), seq)),
    );
    f.insert("input_mask".into(), ints(pad(vec![1; n], seq)));
    let a = inst.segment_a_len as usize;
    let segments = (0..n).map(|i| (i >= a) as i64).collect();
    f.insert("segment_ids".into(), ints(pad(segments, seq)));
    let positions = inst.masked_positions.iter().map(|&p| p as i64).collect();
    f.insert("masked_lm_positions".into(), ints(pad(positions, preds)));
    let labels = inst.masked_labels.iter().map(|&p| p as i64).collect();
    f.insert("masked_lm_ids".into(), ints(pad(labels, preds)));
    let mut weights = vec![1.0f32; inst.masked_positions.len()];
    weights.resize(preds, 0.0);
    f.insert("masked_lm_weights".into(), FeatureValues::Float(weights));
    f.insert(
        "next_sentence_labels".into(),
        ints(vec![inst.is_random_next as i64]),
    );
    f
}

/// A small deterministic generator, so that the instances vary in length,
/// id size (1- to 5-byte varints) and masking without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_instance(rng: &mut SplitMix, seq: usize, preds: usize) -> Instance {
    let n = rng.below(seq as u64 + 1) as usize;
    let id_bits = [7, 14, 16, 21, 28, 32][rng.below(6) as usize];
    let tokens: Vec<u32> = (0..n)
        .map(|_| (rng.next() & ((1u64 << id_bits) - 1)) as u32)
        .collect();
    let mut positions: Vec<u32> = (0..n as u32).filter(|_| rng.below(4) == 0).collect();
    positions.truncate(preds);
    let labels = positions
        .iter()
        .map(|_| rng.next() as u32 >> rng.below(32))
        .collect();
    Instance {
        segment_a_len: rng.below(n as u64 + 1) as u32,
        is_random_next: rng.below(2) == 1,
        masked_positions: positions,
        masked_labels: labels,
        tokens,
    }
}

fn sample_instance() -> Instance {
    Instance {
        tokens: vec![101, 2769, 103, 704, 1744, 102, 20000, 1921, 103, 102],
        segment_a_len: 6,
        is_random_next: true,
        masked_positions: vec![2, 8],
        masked_labels: vec![4263, 21127],
    }
}

fn encode(inst: &Instance, seq: usize, preds: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_instance(inst, seq, preds, &mut buf).unwrap();
    buf
}

#[test]
fn encoding_is_byte_identical_to_the_prost_message() {
    let mut rng = SplitMix(7);
    let mut shapes = vec![
        (SEQ, PREDS),
        (128, 20),
        (512, 80),
        (1, 0),
        (0, 0),
        (200, 130),
    ];
    shapes.extend((0..20).map(|_| (rng.below(300) as usize, rng.below(200) as usize)));
    for (seq, preds) in shapes {
        for _ in 0..50 {
            let inst = random_instance(&mut rng, seq, preds);
            let expected =
                Example::from_features(reference_features(&inst, seq, preds)).encode_to_vec();
            assert_eq!(
                encode(&inst, seq, preds),
                expected,
                "seq {seq} preds {preds} {inst:?}"
            );
        }
    }
}

#[test]
fn encoding_appends_to_the_buffer() {
    let inst = sample_instance();
    let alone = encode(&inst, SEQ, PREDS);
    let mut buf = b"kept".to_vec();
    encode_instance(&inst, SEQ, PREDS, &mut buf).unwrap();
    assert_eq!(&buf[..4], b"kept");
    assert_eq!(&buf[4..], alone.as_slice());
}

#[test]
fn encode_decode_round_trip() {
    let mut rng = SplitMix(11);
    for _ in 0..2000 {
        let inst = random_instance(&mut rng, SEQ, PREDS);
        let bytes = encode(&inst, SEQ, PREDS);
        assert_eq!(decode_instance(&bytes, SEQ, PREDS).unwrap(), inst);
        assert_eq!(
            parse_features(&bytes).unwrap(),
            reference_features(&inst, SEQ, PREDS)
        );
    }
    let inst = sample_instance();
    assert_eq!(
        decode_instance(&encode(&inst, 128, 20), 128, 20).unwrap(),
        inst
    );
}

fn decode_err(features: BTreeMap<String, FeatureValues>) -> String {
    let bytes = Example::from_features(features).encode_to_vec();
    decode_instance(&bytes, SEQ, PREDS).unwrap_err().to_string()
}

fn sample_features() -> BTreeMap<String, FeatureValues> {
    reference_features(&sample_instance(), SEQ, PREDS)
}

#[test]
fn wrong_length_names_feature_expected_and_actual() {
    let inst = sample_instance();
    let bytes = encode(&inst, 30, PREDS);
    let err = decode_instance(&bytes, SEQ, PREDS).unwrap_err().to_string();
    assert!(
        err.contains("feature input_ids has 30 values, expected 32 (max_seq_length)"),
        "{err}"
    );
    let bytes = encode(&inst, SEQ, 4);
    let err = decode_instance(&bytes, SEQ, PREDS).unwrap_err().to_string();
    assert!(
        err.contains("has 4 values, expected 5 (max_predictions_per_seq)"),
        "{err}"
    );
    let mut f = sample_features();
    f.insert(
        "next_sentence_labels".into(),
        FeatureValues::Int64(vec![0, 1]),
    );
    let err = decode_err(f);
    assert!(
        err.contains("feature next_sentence_labels has 2 values, expected 1"),
        "{err}"
    );
}

#[test]
fn missing_extra_and_mistyped_features_are_named() {
    let mut f = sample_features();
    f.remove("segment_ids");
    assert!(decode_err(f).contains("missing feature segment_ids"));

    let mut f = sample_features();
    f.insert("label_ids".into(), FeatureValues::Int64(vec![1]));
    assert!(decode_err(f).contains("unexpected feature \"label_ids\""));

    let mut f = sample_features();
    f.insert(
        "masked_lm_weights".into(),
        FeatureValues::Int64(vec![1, 1, 0, 0, 0]),
    );
    let err = decode_err(f);
    assert!(
        err.contains("feature masked_lm_weights is a int64_list, expected a float_list"),
        "{err}"
    );

    let mut f = sample_features();
    f.insert("input_mask".into(), FeatureValues::Float(vec![1.0; SEQ]));
    let err = decode_err(f);
    assert!(
        err.contains("feature input_mask is a float_list, expected a int64_list"),
        "{err}"
    );
}

fn with_value(name: &str, index: usize, value: f64) -> String {
    let mut f = sample_features();
    match f.get_mut(name).unwrap() {
        FeatureValues::Int64(v) => v[index] = value as i64,
        FeatureValues::Float(v) => v[index] = value as f32,
        FeatureValues::Bytes(_) => unreachable!(),
    }
    decode_err(f)
}

#[test]
fn inconsistent_values_are_named_with_their_index() {
    let cases: [(&str, usize, f64, &str); 11] = [
        (
            "input_mask",
            3,
            0.0,
            "input_mask[4] is 1; expected 1s then 0s (padding began at 3)",
        ),
        ("input_mask", 12, 2.0, "input_mask[12] is 2"),
        (
            "input_ids",
            20,
            5.0,
            "input_ids[20] is 5 where input_mask marks padding",
        ),
        ("input_ids", 1, -1.0, "input_ids[1] is -1, not a valid id"),
        (
            "segment_ids",
            7,
            0.0,
            "segment_ids[7] is 0 inside segment B (which starts at 6)",
        ),
        (
            "segment_ids",
            31,
            1.0,
            "segment_ids[31] is 1 where input_mask marks padding",
        ),
        ("masked_lm_weights", 3, 0.5, "masked_lm_weights[3] is 0.5"),
        (
            "masked_lm_ids",
            4,
            9.0,
            "masked_lm_ids[4] is 9 where masked_lm_weights marks padding",
        ),
        (
            "masked_lm_positions",
            1,
            10.0,
            "masked_lm_positions[1] is 10, outside the 10 real tokens",
        ),
        (
            "masked_lm_positions",
            1,
            2.0,
            "masked_lm_positions[1] is 2, not after masked_lm_positions[0] = 2",
        ),
        (
            "next_sentence_labels",
            0,
            2.0,
            "next_sentence_labels[0] is 2; expected 0 or 1",
        ),
    ];
    for (name, index, value, expected) in cases {
        let err = with_value(name, index, value);
        assert!(err.contains(expected), "{name}[{index}] = {value}: {err}");
    }
}

#[test]
fn garbage_is_not_an_example() {
    let err = parse_features(&[0x0a, 0x05, 0x01]).unwrap_err().to_string();
    assert!(err.contains("not a tf.train.Example (3 bytes)"), "{err}");
}

#[test]
fn feature_without_a_list_is_an_error() {
    let mut example = Example::from_features(sample_features());
    let features = example.features.as_mut().unwrap();
    features.feature.get_mut("input_ids").unwrap().kind = None;
    let err = parse_features(&example.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("feature \"input_ids\" has no value list"),
        "{err}"
    );
}

#[test]
fn bytes_features_parse() {
    let mut f = BTreeMap::new();
    f.insert(
        "text".to_string(),
        FeatureValues::Bytes(vec![b"ab".to_vec(), vec![]]),
    );
    let bytes = Example::from_features(f.clone()).encode_to_vec();
    assert_eq!(parse_features(&bytes).unwrap(), f);
    assert!(
        parse_features(&[]).unwrap().is_empty(),
        "an empty Example has no features"
    );
}

#[test]
fn instances_that_do_not_fit_are_refused_without_writing() {
    let inst = sample_instance();
    let cases = [
        (
            Instance { ..inst.clone() },
            9,
            PREDS,
            "10 tokens, more than max_seq_length 9",
        ),
        (
            inst.clone(),
            SEQ,
            1,
            "2 masked positions, more than max_predictions_per_seq 1",
        ),
        (
            Instance {
                masked_labels: vec![1],
                ..inst.clone()
            },
            SEQ,
            PREDS,
            "2 masked positions but 1 masked labels",
        ),
        (
            Instance {
                segment_a_len: 11,
                ..inst.clone()
            },
            SEQ,
            PREDS,
            "segment_a_len 11 exceeds its 10 tokens",
        ),
        (
            Instance {
                masked_positions: vec![8, 2],
                ..inst.clone()
            },
            SEQ,
            PREDS,
            "masked_positions[1] = 2",
        ),
        (
            Instance {
                masked_positions: vec![2, 10],
                ..inst.clone()
            },
            SEQ,
            PREDS,
            "masked_positions[1] = 10",
        ),
    ];
    for (inst, seq, preds, expected) in cases {
        let mut buf = vec![1, 2, 3];
        let err = encode_instance(&inst, seq, preds, &mut buf)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert_eq!(buf, [1, 2, 3]);
    }
}
