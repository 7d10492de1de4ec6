//! The `tf.train.Example` messages (`tensorflow/core/example/example.proto`
//! and `feature.proto`), declared with prost's derive so that building needs
//! no `protoc`. Field numbers are those of the TensorFlow protos.
//!
//! `Features.feature` is a `BTreeMap`: protobuf leaves map order free
//! (TensorFlow's C++ writer even varies it per record), and a sorted map
//! makes our own bytes deterministic.

use std::collections::BTreeMap;

use prost::Message;

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Message)]
pub struct Example {
    #[prost(message, optional, tag = "1")]
    pub features: Option<Features>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Features {
    #[prost(btree_map = "string, message", tag = "1")]
    pub feature: BTreeMap<String, Feature>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Feature {
    #[prost(oneof = "feature::Kind", tags = "1, 2, 3")]
    pub kind: Option<feature::Kind>,
}

pub mod feature {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        BytesList(super::BytesList),
        #[prost(message, tag = "2")]
        FloatList(super::FloatList),
        #[prost(message, tag = "3")]
        Int64List(super::Int64List),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `[packed = true]` in the proto; prost packs repeated numbers by default.
#[derive(Clone, PartialEq, Message)]
pub struct FloatList {
    #[prost(float, repeated, tag = "1")]
    pub value: Vec<f32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    pub value: Vec<i64>,
}

/// The values of one feature, whatever its type: what tests and tools
/// compare, since the bytes of equal examples may differ in map order.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureValues {
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Bytes(Vec<Vec<u8>>),
}

impl FeatureValues {
    /// The proto's name for the list type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            FeatureValues::Int64(_) => "int64_list",
            FeatureValues::Float(_) => "float_list",
            FeatureValues::Bytes(_) => "bytes_list",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            FeatureValues::Int64(v) => v.len(),
            FeatureValues::Float(v) => v.len(),
            FeatureValues::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<FeatureValues> for Feature {
    fn from(values: FeatureValues) -> Feature {
        let kind = match values {
            FeatureValues::Int64(value) => feature::Kind::Int64List(Int64List { value }),
            FeatureValues::Float(value) => feature::Kind::FloatList(FloatList { value }),
            FeatureValues::Bytes(value) => feature::Kind::BytesList(BytesList { value }),
        };
        Feature { kind: Some(kind) }
    }
}

impl Example {
    /// An example holding these features.
    pub fn from_features(features: BTreeMap<String, FeatureValues>) -> Example {
        let feature = features.into_iter().map(|(k, v)| (k, v.into())).collect();
        Example {
            features: Some(Features { feature }),
        }
    }
}

/// Parses a serialized `tf.train.Example` into its features by name.
///
/// An example without a `features` field parses as no features, as
/// TensorFlow reads it. A feature with none of the three lists set is an
/// error: TensorFlow's parser cannot give it a type either.
pub fn parse_features(bytes: &[u8]) -> Result<BTreeMap<String, FeatureValues>> {
    let example = Example::decode(bytes).map_err(|e| {
        Error::data(format!(
            "not a tf.train.Example ({} bytes): {e}",
            bytes.len()
        ))
    })?;
    let Some(features) = example.features else {
        return Ok(BTreeMap::new());
    };
    features
        .feature
        .into_iter()
        .map(|(name, feature)| {
            let values = match feature.kind {
                Some(feature::Kind::Int64List(l)) => FeatureValues::Int64(l.value),
                Some(feature::Kind::FloatList(l)) => FeatureValues::Float(l.value),
                Some(feature::Kind::BytesList(l)) => FeatureValues::Bytes(l.value),
                None => {
                    return Err(Error::data(format!(
                        "feature {name:?} has no value list (none of bytes_list, float_list, int64_list is set)"
                    )))
                }
            };
            Ok((name, values))
        })
        .collect()
}
