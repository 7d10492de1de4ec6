//! Reads a whole record file, checking every frame and every example, and
//! prints the first few examples for a person to look at.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::example::{parse_features, FeatureValues};
use super::files::open_records;
use crate::error::{Error, Result};
use crate::vocab::Vocab;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InspectSummary {
    pub records: u64,
    /// Serialized example bytes, framing excluded.
    pub payload_bytes: u64,
    /// Framed bytes: the file size, or for a gzip file its decompressed size.
    pub stream_bytes: u64,
}

/// Reads every record of `path` (plain or gzip), checking both CRCs of each
/// and that each parses as a `tf.train.Example`, and prints the features of
/// the first `show` records to `out`. With a vocab it also prints
/// `input_ids` as tokens (the real ones, where `input_mask` is 1) and the
/// masked predictions as `position:token`. Ends with a summary line.
pub fn inspect(
    path: &Path,
    vocab: Option<&Vocab>,
    show: usize,
    out: &mut dyn Write,
) -> Result<InspectSummary> {
    let mut reader = open_records(path)?;
    let mut summary = InspectSummary::default();
    let mut buf = Vec::new();
    let write_err = |e| Error::data(format!("writing the inspection of {}: {e}", path.display()));
    loop {
        let offset = reader.offset();
        if !reader.read_record(&mut buf)? {
            break;
        }
        let features = parse_features(&buf).map_err(|e| {
            Error::data(format!(
                "{}: record {} at byte offset {offset}: {e}",
                path.display(),
                summary.records
            ))
        })?;
        if (summary.records as usize) < show {
            print_example(out, summary.records, offset, buf.len(), &features, vocab)
                .map_err(write_err)?;
        }
        summary.records += 1;
        summary.payload_bytes += buf.len() as u64;
    }
    summary.stream_bytes = reader.offset();
    writeln!(
        out,
        "{}: {} records, {} example bytes, {} framed bytes",
        path.display(),
        summary.records,
        summary.payload_bytes,
        summary.stream_bytes
    )
    .map_err(write_err)?;
    Ok(summary)
}

fn print_example(
    out: &mut dyn Write,
    record: u64,
    offset: u64,
    len: usize,
    features: &BTreeMap<String, FeatureValues>,
    vocab: Option<&Vocab>,
) -> std::io::Result<()> {
    writeln!(
        out,
        "record {record} at byte offset {offset} ({len} bytes):"
    )?;
    for (name, values) in features {
        write!(out, "  {name} ({}, {}):", values.type_name(), values.len())?;
        match values {
            FeatureValues::Int64(v) => v.iter().try_for_each(|x| write!(out, " {x}"))?,
            FeatureValues::Float(v) => v.iter().try_for_each(|x| write!(out, " {x}"))?,
            FeatureValues::Bytes(v) => v
                .iter()
                .try_for_each(|x| write!(out, " {:?}", String::from_utf8_lossy(x)))?,
        }
        writeln!(out)?;
    }
    let Some(vocab) = vocab else {
        return Ok(());
    };
    let int64 = |name: &str| match features.get(name) {
        Some(FeatureValues::Int64(v)) => Some(v.as_slice()),
        _ => None,
    };
    if let Some(ids) = int64("input_ids") {
        let real = match int64("input_mask") {
            Some(mask) => mask.iter().take_while(|&&m| m == 1).count().min(ids.len()),
            None => ids.len(),
        };
        write!(out, "  tokens:")?;
        for &id in &ids[..real] {
            write!(out, " {}", token_text(vocab, id))?;
        }
        writeln!(out)?;
    }
    if let (Some(positions), Some(labels)) = (int64("masked_lm_positions"), int64("masked_lm_ids"))
    {
        let weights = match features.get("masked_lm_weights") {
            Some(FeatureValues::Float(w)) => w.as_slice(),
            _ => &[],
        };
        write!(out, "  masked labels:")?;
        for (j, (&p, &id)) in positions.iter().zip(labels).enumerate() {
            // Without weights every slot is shown; padded slots have weight 0.
            if weights.get(j).is_none_or(|&w| w > 0.0) {
                write!(out, " {p}:{}", token_text(vocab, id))?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The vocab token of `id`, or a visible marker when the id has none.
fn token_text(vocab: &Vocab, id: i64) -> String {
    u32::try_from(id)
        .ok()
        .and_then(|id| vocab.token(id))
        .map(str::to_string)
        .unwrap_or_else(|| format!("<id {id} not in vocab>"))
}
