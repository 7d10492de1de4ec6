//! TFRecord files of `tf.train.Example`s, as the reference
//! `create_pretraining_data.py` writes them and `run_pretraining.py` reads
//! them.
//!
//! - [`framing`]: the record framing with its masked CRC32C checks.
//! - [`files`]: opening and creating record files, plain or gzip-compressed.
//! - [`example`]: the `tf.train.Example` protobuf messages and a generic
//!   feature parser.
//! - [`layout`]: the reference pretraining feature layout, with a fast
//!   encoder for [`Instance`](crate::data::Instance)s and a validating
//!   decoder.
//! - [`inspect`]: counts, checks and prints the records of a file.

pub mod example;
pub mod files;
pub mod framing;
pub mod inspect;
pub mod layout;

pub use example::{parse_features, Example, Feature, FeatureValues, Features};
pub use files::{create_records, open_records, Compression, RecordFileWriter};
pub use framing::{masked_crc32c, RecordReader, RecordWriter};
pub use inspect::{inspect, InspectSummary};
pub use layout::{decode_instance, encode_instance, FEATURE_NAMES};
