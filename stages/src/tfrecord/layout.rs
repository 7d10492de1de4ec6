//! The reference pretraining example (`write_instance_to_example_files` in
//! `create_pretraining_data.py`): int64 `input_ids`, `input_mask`,
//! `segment_ids` of `max_seq_length` values, int64 `masked_lm_positions`,
//! `masked_lm_ids` and float `masked_lm_weights` of `max_predictions_per_seq`
//! values, all zero-padded, and int64 `next_sentence_labels` of one value.

use std::collections::BTreeMap;

use prost::encoding::encoded_len_varint;

use super::example::{parse_features, FeatureValues};
use crate::data::Instance;
use crate::error::{Error, Result};

/// The seven features in the order the reference builds them.
pub const FEATURE_NAMES: [&str; 7] = [
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
];

/// Protobuf keys (field number << 3 | wire type 2, length-delimited) that
/// the encoder writes. Every message here is field 1 of its parent except
/// the map entry's value and the feature's list.
const KEY_FIELD_1: u8 = 0x0a;
const KEY_MAP_VALUE: u8 = 0x12;
const KEY_FLOAT_LIST: u8 = 0x12;
const KEY_INT64_LIST: u8 = 0x1a;

/// `1.0f32` little-endian, as a packed float.
const ONE_F32: [u8; 4] = 1.0f32.to_le_bytes();

/// Appends the serialized `tf.train.Example` of `inst` to `buf`.
///
/// The bytes are those prost writes for the same
/// [`Example`](super::example::Example) (features in name order), but
/// written directly: sizes first, then one pass over the values, with no
/// message built. This runs once per record of the whole corpus.
///
/// Fails, writing nothing, when the instance does not fit the layout: more
/// tokens or predictions than the maximum, `segment_a_len` past the tokens,
/// masked positions and labels of different counts, or masked positions not
/// increasing inside the tokens.
pub fn encode_instance(
    inst: &Instance,
    max_seq_length: usize,
    max_predictions_per_seq: usize,
    buf: &mut Vec<u8>,
) -> Result<()> {
    check_encodable(inst, max_seq_length, max_predictions_per_seq)?;
    let n = inst.tokens.len();
    let m = inst.masked_positions.len();
    let seq = max_seq_length;
    let preds = max_predictions_per_seq;

    // Packed payload sizes in name order. Padding zeros and the 0/1 values
    // are one byte each.
    let payloads = [
        varints_len(&inst.tokens) + (seq - n),             // input_ids
        seq,                                               // input_mask
        varints_len(&inst.masked_labels) + (preds - m),    // masked_lm_ids
        varints_len(&inst.masked_positions) + (preds - m), // masked_lm_positions
        4 * preds,                                         // masked_lm_weights
        1,                                                 // next_sentence_labels
        seq,                                               // segment_ids
    ];
    let mut features_len = 0;
    for (name, &payload) in SORTED_NAMES.iter().zip(&payloads) {
        let (_, _, entry) = entry_sizes(name, payload);
        features_len += 1 + encoded_len_varint(entry as u64) + entry;
    }
    let total = 1 + encoded_len_varint(features_len as u64) + features_len;

    // Zero-fill the whole example once: the padding, which is most of a
    // short instance, is then written by skipping over it.
    let start = buf.len();
    buf.resize(start + total, 0);
    let mut w = Cursor {
        out: &mut buf[start..],
        pos: 0,
    };
    w.byte(KEY_FIELD_1);
    w.varint(features_len as u64);

    let int64 = KEY_INT64_LIST;
    w.entry_header(SORTED_NAMES[0], int64, payloads[0]);
    w.varints(&inst.tokens);
    w.skip(seq - n);

    w.entry_header(SORTED_NAMES[1], int64, payloads[1]);
    w.fill(n, 1);
    w.skip(seq - n);

    w.entry_header(SORTED_NAMES[2], int64, payloads[2]);
    w.varints(&inst.masked_labels);
    w.skip(preds - m);

    w.entry_header(SORTED_NAMES[3], int64, payloads[3]);
    w.varints(&inst.masked_positions);
    w.skip(preds - m);

    w.entry_header(SORTED_NAMES[4], KEY_FLOAT_LIST, payloads[4]);
    for _ in 0..m {
        w.bytes(&ONE_F32);
    }
    w.skip(4 * (preds - m));

    w.entry_header(SORTED_NAMES[5], int64, payloads[5]);
    w.byte(inst.is_random_next as u8);

    w.entry_header(SORTED_NAMES[6], int64, payloads[6]);
    let a = inst.segment_a_len as usize;
    w.skip(a);
    w.fill(n - a, 1);
    w.skip(seq - n);
    debug_assert_eq!(w.pos, total, "computed and written sizes differ");
    Ok(())
}

/// The feature names in the byte order of `String`s, which is the order of a
/// `BTreeMap` and so of prost's encoding.
const SORTED_NAMES: [&str; 7] = [
    "input_ids",
    "input_mask",
    "masked_lm_ids",
    "masked_lm_positions",
    "masked_lm_weights",
    "next_sentence_labels",
    "segment_ids",
];

fn check_encodable(inst: &Instance, seq: usize, preds: usize) -> Result<()> {
    let n = inst.tokens.len();
    let m = inst.masked_positions.len();
    if n > seq {
        return Err(Error::data(format!(
            "instance has {n} tokens, more than max_seq_length {seq}"
        )));
    }
    if m > preds {
        return Err(Error::data(format!(
            "instance has {m} masked positions, more than max_predictions_per_seq {preds}"
        )));
    }
    if inst.masked_labels.len() != m {
        return Err(Error::data(format!(
            "instance has {m} masked positions but {} masked labels",
            inst.masked_labels.len()
        )));
    }
    if inst.segment_a_len as usize > n {
        return Err(Error::data(format!(
            "instance segment_a_len {} exceeds its {n} tokens",
            inst.segment_a_len
        )));
    }
    let mut prev: Option<u32> = None;
    for (j, &p) in inst.masked_positions.iter().enumerate() {
        if p as usize >= n || prev.is_some_and(|q| p <= q) {
            return Err(Error::data(format!(
                "instance masked_positions[{j}] = {p}: positions must increase and lie inside the {n} tokens"
            )));
        }
        prev = Some(p);
    }
    Ok(())
}

/// Sizes of the list message, the `Feature` message and the map entry of a
/// feature whose packed values take `payload` bytes. prost writes no packed
/// field at all for an empty list, so its list message is then empty.
fn entry_sizes(name: &str, payload: usize) -> (usize, usize, usize) {
    let list = if payload == 0 {
        0
    } else {
        1 + encoded_len_varint(payload as u64) + payload
    };
    let feature = 1 + encoded_len_varint(list as u64) + list;
    let entry = 1
        + encoded_len_varint(name.len() as u64)
        + name.len()
        + 1
        + encoded_len_varint(feature as u64)
        + feature;
    (list, feature, entry)
}

fn varints_len(values: &[u32]) -> usize {
    values.iter().map(|&v| encoded_len_varint(v as u64)).sum()
}

/// Writes into the zero-filled, exactly sized space of one example; writing
/// by index there is much faster than pushing byte by byte.
struct Cursor<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.out[self.pos] = b;
        self.pos += 1;
    }

    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    fn varints(&mut self, values: &[u32]) {
        for &v in values {
            self.varint(v as u64);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.out[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    fn fill(&mut self, n: usize, b: u8) {
        self.out[self.pos..self.pos + n].fill(b);
        self.pos += n;
    }

    /// Leaves `n` zero bytes.
    fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    /// Writes everything of a map entry up to its packed values.
    fn entry_header(&mut self, name: &str, list_key: u8, payload: usize) {
        let (list, feature, entry) = entry_sizes(name, payload);
        self.byte(KEY_FIELD_1);
        self.varint(entry as u64);
        self.byte(KEY_FIELD_1);
        self.varint(name.len() as u64);
        self.bytes(name.as_bytes());
        self.byte(KEY_MAP_VALUE);
        self.varint(feature as u64);
        self.byte(list_key);
        self.varint(list as u64);
        if payload > 0 {
            self.byte(KEY_FIELD_1);
            self.varint(payload as u64);
        }
    }
}

/// Parses a serialized reference pretraining example back into the
/// [`Instance`] it was written from, checking everything the layout
/// promises: exactly the seven features, each of its type and length; masks
/// and weights of 1s then 0s; segment ids of 0s then 1s over the real
/// tokens; zeros in all padding; ids that fit a `u32`; masked positions
/// increasing inside the real tokens; a 0 or 1 next-sentence label.
/// Errors name the feature, and the index of a bad value.
pub fn decode_instance(
    bytes: &[u8],
    max_seq_length: usize,
    max_predictions_per_seq: usize,
) -> Result<Instance> {
    let mut features = parse_features(bytes)?;
    if let Some(name) = features
        .keys()
        .find(|k| !FEATURE_NAMES.contains(&k.as_str()))
    {
        return Err(Error::data(format!(
            "unexpected feature {name:?}; a pretraining example has exactly {}",
            FEATURE_NAMES.join(", ")
        )));
    }
    let seq = (max_seq_length, "max_seq_length");
    let preds = (max_predictions_per_seq, "max_predictions_per_seq");
    let ids = take_int64(&mut features, "input_ids", seq)?;
    let mask = take_int64(&mut features, "input_mask", seq)?;
    let segments = take_int64(&mut features, "segment_ids", seq)?;
    let positions = take_int64(&mut features, "masked_lm_positions", preds)?;
    let labels = take_int64(&mut features, "masked_lm_ids", preds)?;
    let weights = take_float(&mut features, "masked_lm_weights", preds)?;
    let next = take_int64(&mut features, "next_sentence_labels", (1, "one value"))?;

    let n = ones_then_zeros(&mask, "input_mask")?;
    let tokens = ids_then_zeros(&ids, n, "input_ids", "input_mask")?;
    check_zero_padding(&segments, n, "segment_ids")?;
    let segment_a_len = segments[..n].iter().take_while(|&&s| s == 0).count();
    if let Some(i) = (segment_a_len..n).find(|&i| segments[i] != 1) {
        return Err(Error::data(format!(
            "segment_ids[{i}] is {} inside segment B (which starts at {segment_a_len}); expected 1",
            segments[i]
        )));
    }

    let m = weights.iter().take_while(|&&w| w == 1.0).count();
    if let Some(j) = (m..weights.len()).find(|&j| weights[j] != 0.0) {
        return Err(Error::data(format!(
            "masked_lm_weights[{j}] is {}; expected 1.0 for the first predictions and 0.0 after",
            weights[j]
        )));
    }
    let masked_labels = ids_then_zeros(&labels, m, "masked_lm_ids", "masked_lm_weights")?;
    let masked_positions =
        ids_then_zeros(&positions, m, "masked_lm_positions", "masked_lm_weights")?;
    for (j, &p) in masked_positions.iter().enumerate() {
        if p as usize >= n {
            return Err(Error::data(format!(
                "masked_lm_positions[{j}] is {p}, outside the {n} real tokens"
            )));
        }
        if j > 0 && p <= masked_positions[j - 1] {
            return Err(Error::data(format!(
                "masked_lm_positions[{j}] is {p}, not after masked_lm_positions[{}] = {}; positions must increase",
                j - 1,
                masked_positions[j - 1]
            )));
        }
    }
    let is_random_next = match next[0] {
        0 => false,
        1 => true,
        v => {
            return Err(Error::data(format!(
                "next_sentence_labels[0] is {v}; expected 0 or 1"
            )))
        }
    };
    Ok(Instance {
        tokens,
        segment_a_len: segment_a_len as u32,
        is_random_next,
        masked_positions,
        masked_labels,
    })
}

fn take(
    features: &mut BTreeMap<String, FeatureValues>,
    name: &str,
    (len, what): (usize, &str),
) -> Result<FeatureValues> {
    let values = features
        .remove(name)
        .ok_or_else(|| Error::data(format!("missing feature {name}")))?;
    if values.len() != len {
        return Err(Error::data(format!(
            "feature {name} has {} values, expected {len} ({what})",
            values.len()
        )));
    }
    Ok(values)
}

fn take_int64(
    features: &mut BTreeMap<String, FeatureValues>,
    name: &str,
    len: (usize, &str),
) -> Result<Vec<i64>> {
    match take(features, name, len)? {
        FeatureValues::Int64(v) => Ok(v),
        other => Err(wrong_type(name, "int64_list", &other)),
    }
}

fn take_float(
    features: &mut BTreeMap<String, FeatureValues>,
    name: &str,
    len: (usize, &str),
) -> Result<Vec<f32>> {
    match take(features, name, len)? {
        FeatureValues::Float(v) => Ok(v),
        other => Err(wrong_type(name, "float_list", &other)),
    }
}

fn wrong_type(name: &str, expected: &str, found: &FeatureValues) -> Error {
    Error::data(format!(
        "feature {name} is a {}, expected a {expected}",
        found.type_name()
    ))
}

/// Length of the leading run of 1s, after checking the rest is 0s.
fn ones_then_zeros(values: &[i64], name: &str) -> Result<usize> {
    let n = values.iter().take_while(|&&v| v == 1).count();
    if let Some(i) = (n..values.len()).find(|&i| values[i] != 0) {
        return Err(Error::data(format!(
            "{name}[{i}] is {}; expected 1s then 0s (padding began at {n})",
            values[i]
        )));
    }
    Ok(n)
}

/// The first `n` values as `u32` ids; the rest, padding, must be 0.
fn ids_then_zeros(values: &[i64], n: usize, name: &str, mask_name: &str) -> Result<Vec<u32>> {
    let ids = values[..n]
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u32::try_from(v).map_err(|_| {
                Error::data(format!(
                    "{name}[{i}] is {v}, not a valid id (0 to {})",
                    u32::MAX
                ))
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    if let Some(i) = (n..values.len()).find(|&i| values[i] != 0) {
        return Err(Error::data(format!(
            "{name}[{i}] is {} where {mask_name} marks padding; expected 0",
            values[i]
        )));
    }
    Ok(ids)
}

fn check_zero_padding(values: &[i64], n: usize, name: &str) -> Result<()> {
    if let Some(i) = (n..values.len()).find(|&i| values[i] != 0) {
        return Err(Error::data(format!(
            "{name}[{i}] is {} where input_mask marks padding; expected 0",
            values[i]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_names_are_the_feature_names_in_string_order() {
        let mut names = FEATURE_NAMES;
        names.sort();
        assert_eq!(names, SORTED_NAMES);
    }
}
