//! TensorBoard event files: `Event` protos (the few fields scalars need,
//! declared with prost derive) framed as TFRecords, which is what
//! TensorBoard's event reader expects.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

/// `tensorflow.Event` (fields 1, 2, 3, 5 of tensorflow/core/util/event.proto).
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with only the scalar case of its oneof.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(oneof = "Value", tags = "2")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// TFRecord's masked CRC-32C.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, payload, the payload's masked CRC.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
    out
}

pub struct EventWriter<W: Write> {
    out: W,
}

impl<W: Write> EventWriter<W> {
    /// Starts an event stream with the `brain.Event:2` version record.
    pub fn new(out: W, wall_time: f64) -> Result<EventWriter<W>> {
        let mut w = EventWriter { out };
        w.write(&Event {
            wall_time,
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(w)
    }

    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.out.write_all(&frame(&event.encode_to_vec()))?;
        self.out.flush()?;
        Ok(())
    }

    /// One event holding all `scalars` for `step`.
    pub fn scalars(&mut self, step: i64, wall_time: f64, scalars: &[(&str, f64)]) -> Result<()> {
        let value = scalars
            .iter()
            .map(|(tag, v)| SummaryValue {
                tag: tag.to_string(),
                value: Some(Value::SimpleValue(*v as f32)),
            })
            .collect();
        self.write(&Event {
            wall_time,
            step,
            what: Some(What::Summary(Summary { value })),
        })
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A new `events.out.tfevents.<time>.<host>.<pid>` file in `dir`.
pub fn create(dir: &Path) -> Result<(PathBuf, EventWriter<BufWriter<File>>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".into());
    let t = now();
    let path = dir.join(format!(
        "events.out.tfevents.{}.{host}.{}",
        t as u64,
        std::process::id()
    ));
    let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let w = EventWriter::new(BufWriter::new(f), t)?;
    Ok((path, w))
}
