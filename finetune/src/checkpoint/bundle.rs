//! TensorFlow's checkpoint format, the TensorBundle (`tensor_bundle.proto`):
//! `<prefix>.index`, a table mapping each variable name to a
//! `BundleEntryProto` (dtype, shape, shard, offset, size, CRC-32C) with a
//! `BundleHeaderProto` under the empty key, and the raw little-endian tensor
//! bytes in `<prefix>.data-NNNNN-of-MMMMM`.
//!
//! The protos are declared here with prost's derive (field numbers from
//! `tensor_bundle.proto`, `tensor_shape.proto`, `tensor_slice.proto`,
//! `versions.proto`), so nothing is generated or downloaded at build time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use nezha_stages::atomic_file;
use prost::Message;
use tch::{Kind, Tensor};

use super::sstable;

#[derive(Clone, PartialEq, Message)]
pub struct VersionDef {
    #[prost(int32, tag = "1")]
    pub producer: i32,
    #[prost(int32, tag = "2")]
    pub min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    pub bad_consumers: Vec<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    /// 0 = little-endian, 1 = big-endian.
    #[prost(int32, tag = "2")]
    pub endianness: i32,
    #[prost(message, optional, tag = "3")]
    pub version: Option<VersionDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
    #[prost(string, tag = "2")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Extent {
    #[prost(int64, tag = "1")]
    pub start: i64,
    #[prost(int64, optional, tag = "2")]
    pub length: Option<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorSliceProto {
    #[prost(message, repeated, tag = "1")]
    pub extent: Vec<Extent>,
}

#[derive(Clone, PartialEq, Message)]
pub struct BundleEntryProto {
    /// A `DataType` enum value (see [`DType`]).
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub size: i64,
    /// Masked CRC-32C of the tensor's bytes.
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    /// Non-empty only for partitioned variables.
    #[prost(message, repeated, tag = "7")]
    pub slices: Vec<TensorSliceProto>,
}

/// The `DataType` values a numeric checkpoint variable can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    Float,
    Double,
    Int32,
    Int64,
    BFloat16,
    Half,
}

impl DType {
    pub fn from_proto(v: i32) -> Option<DType> {
        Some(match v {
            1 => DType::Float,
            2 => DType::Double,
            3 => DType::Int32,
            9 => DType::Int64,
            14 => DType::BFloat16,
            19 => DType::Half,
            _ => return None,
        })
    }

    pub fn to_proto(self) -> i32 {
        match self {
            DType::Float => 1,
            DType::Double => 2,
            DType::Int32 => 3,
            DType::Int64 => 9,
            DType::BFloat16 => 14,
            DType::Half => 19,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            DType::Float => Kind::Float,
            DType::Double => Kind::Double,
            DType::Int32 => Kind::Int,
            DType::Int64 => Kind::Int64,
            DType::BFloat16 => Kind::BFloat16,
            DType::Half => Kind::Half,
        }
    }

    pub fn from_kind(kind: Kind) -> Result<DType> {
        Ok(match kind {
            Kind::Float => DType::Float,
            Kind::Double => DType::Double,
            Kind::Int => DType::Int32,
            Kind::Int64 => DType::Int64,
            Kind::BFloat16 => DType::BFloat16,
            Kind::Half => DType::Half,
            other => bail!("tensors of kind {other:?} cannot be written to a TF checkpoint"),
        })
    }
}

/// One variable's index entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub proto: BundleEntryProto,
}

impl Entry {
    /// `None` for a shape of unknown rank.
    pub fn shape(&self) -> Option<Vec<i64>> {
        let s = self.proto.shape.as_ref()?;
        (!s.unknown_rank).then(|| s.dim.iter().map(|d| d.size).collect())
    }

    pub fn dtype(&self) -> Option<DType> {
        DType::from_proto(self.proto.dtype)
    }
}

/// An opened checkpoint: its index, and where its data shards are.
pub struct Bundle {
    pub prefix: PathBuf,
    pub header: BundleHeaderProto,
    /// In key (name) order.
    pub entries: Vec<Entry>,
}

/// `<prefix>.index`, or `prefix` itself if it names the index file.
fn normalise_prefix(path: &Path) -> PathBuf {
    match path.to_str().and_then(|s| s.strip_suffix(".index")) {
        Some(p) => PathBuf::from(p),
        None => path.to_path_buf(),
    }
}

pub fn index_path(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(".index");
    PathBuf::from(s)
}

pub fn data_path(prefix: &Path, shard: i32, num_shards: i32) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(format!(".data-{shard:05}-of-{num_shards:05}"));
    PathBuf::from(s)
}

impl Bundle {
    /// Opens `prefix` (`…/model.ckpt`, `…/model.ckpt.index` also accepted)
    /// and reads its index; tensor data is read on demand.
    pub fn open(path: &Path) -> Result<Bundle> {
        let prefix = normalise_prefix(path);
        let index = index_path(&prefix);
        let bytes = std::fs::read(&index).with_context(|| {
            format!(
                "reading TF checkpoint index {} (give the checkpoint prefix, e.g. …/model.ckpt)",
                index.display()
            )
        })?;
        let table =
            sstable::read_table(&bytes).with_context(|| format!("reading {}", index.display()))?;
        let mut header = None;
        let mut entries = Vec::with_capacity(table.len());
        for (key, value) in table {
            if key.is_empty() {
                header = Some(
                    BundleHeaderProto::decode(value.as_slice()).with_context(|| {
                        format!("{}: unreadable BundleHeaderProto", index.display())
                    })?,
                );
                continue;
            }
            let name = String::from_utf8(key)
                .with_context(|| format!("{}: a variable name is not UTF-8", index.display()))?;
            let proto = BundleEntryProto::decode(value.as_slice()).with_context(|| {
                format!(
                    "{}: unreadable BundleEntryProto for {name}",
                    index.display()
                )
            })?;
            entries.push(Entry { name, proto });
        }
        let header = header.with_context(|| {
            format!(
                "{} has no bundle header (empty key): not a TensorBundle index",
                index.display()
            )
        })?;
        ensure!(
            header.endianness == 0,
            "{}: big-endian checkpoints are not supported",
            index.display()
        );
        ensure!(
            header.num_shards >= 1,
            "{}: bundle header says {} shards",
            index.display(),
            header.num_shards
        );
        Ok(Bundle {
            prefix,
            header,
            entries,
        })
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Reads one variable's bytes from its shard, checking size and CRC.
    pub fn read_bytes(&self, entry: &Entry) -> Result<Vec<u8>> {
        let p = &entry.proto;
        ensure!(
            p.slices.is_empty(),
            "variable {} is partitioned into slices, which is not supported",
            entry.name
        );
        ensure!(
            (0..self.header.num_shards).contains(&p.shard_id),
            "variable {} is in shard {} of {}",
            entry.name,
            p.shard_id,
            self.header.num_shards
        );
        let path = data_path(&self.prefix, p.shard_id, self.header.num_shards);
        let mut f = File::open(&path)
            .with_context(|| format!("opening TF checkpoint data {}", path.display()))?;
        let (offset, size) = (u64::try_from(p.offset)?, usize::try_from(p.size)?);
        let mut buf = vec![0u8; size];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut buf).with_context(|| {
            format!(
                "{}: variable {} ({size} bytes at offset {offset}) lies past the end of the file",
                path.display(),
                entry.name
            )
        })?;
        let crc = sstable::mask_crc(crc32c::crc32c(&buf));
        ensure!(
            crc == p.crc32c,
            "{}: variable {} fails its CRC-32C check (the data file is corrupt or belongs to another index)",
            path.display(),
            entry.name
        );
        Ok(buf)
    }

    /// Reads a numeric variable as a tensor of its own kind.
    pub fn read_tensor(&self, entry: &Entry) -> Result<Tensor> {
        let dtype = entry.dtype().with_context(|| {
            format!(
                "variable {} has TF DataType {}, which is not a supported numeric type",
                entry.name, entry.proto.dtype
            )
        })?;
        let shape = entry
            .shape()
            .with_context(|| format!("variable {} has a shape of unknown rank", entry.name))?;
        let numel: i64 = shape.iter().product();
        let want = numel as usize * dtype.kind().elt_size_in_bytes();
        ensure!(
            entry.proto.size as usize == want,
            "variable {}: {} bytes stored for shape {shape:?} of {dtype:?} ({want} expected)",
            entry.name,
            entry.proto.size
        );
        let bytes = self.read_bytes(entry)?;
        Tensor::f_from_data_size(&bytes, &shape, dtype.kind())
            .with_context(|| format!("variable {}", entry.name))
    }
}

/// Writes `tensors` as a single-shard bundle at `prefix` the way TensorFlow's
/// `BundleWriter` does: data in the given order, index in name order. Both
/// files are written under temporary names and renamed when complete.
pub fn write(prefix: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut data = Vec::new();
    let mut index: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(tensors.len() + 1);
    for (name, t) in tensors {
        ensure!(!name.is_empty(), "a TF variable name cannot be empty");
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let dtype = DType::from_kind(t.kind()).with_context(|| format!("variable {name}"))?;
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, t.numel())?;
        let proto = BundleEntryProto {
            dtype: dtype.to_proto(),
            shape: Some(TensorShapeProto {
                dim: t
                    .size()
                    .iter()
                    .map(|&size| Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            }),
            shard_id: 0,
            offset: data.len() as i64,
            size: bytes.len() as i64,
            crc32c: sstable::mask_crc(crc32c::crc32c(&bytes)),
            slices: Vec::new(),
        };
        data.extend_from_slice(&bytes);
        index.push((name.as_bytes().to_vec(), proto.encode_to_vec()));
    }
    let header = BundleHeaderProto {
        num_shards: 1,
        endianness: 0,
        version: Some(VersionDef {
            producer: 1,
            min_consumer: 0,
            bad_consumers: Vec::new(),
        }),
    };
    index.push((Vec::new(), header.encode_to_vec()));
    index.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in index.windows(2) {
        ensure!(
            pair[0].0 != pair[1].0,
            "variable {} given twice",
            String::from_utf8_lossy(&pair[0].0)
        );
    }
    let table = sstable::write_table(&index)?;
    // Data first: an index is only ever visible next to complete data.
    atomic_file::write_file(&data_path(prefix, 0, 1), &data)?;
    Ok(atomic_file::write_file(&index_path(prefix), &table)?)
}
