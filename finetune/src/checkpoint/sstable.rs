//! The LevelDB table format that TensorFlow's checkpoint `.index` files use
//! (`tensorflow/core/lib/io/table*`): prefix-compressed key/value blocks, an
//! index block of block handles, and a fixed 48-byte footer.
//!
//! Only what a checkpoint index needs is supported: uncompressed blocks (the
//! bundle writer never compresses) read in full, and a writer that produces
//! tables TensorFlow reads back.

use anyhow::{bail, ensure, Context, Result};

/// `kTableMagicNumber`, little-endian in the last 8 bytes of the file.
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;
/// Compression byte + masked CRC-32C after every block.
const TRAILER_LEN: usize = 5;
const NO_COMPRESSION: u8 = 0;

/// LevelDB's CRC mask: stored CRCs are rotated and offset so that a CRC of
/// data that itself contains CRCs is not trivially related to them.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = buf.get(*pos) else {
            bail!("truncated varint at byte {}", *pos);
        };
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("varint longer than 10 bytes at byte {}", *pos)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Where a block lives in the file (its trailer follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockHandle {
    offset: u64,
    size: u64,
}

impl BlockHandle {
    fn decode(buf: &[u8], pos: &mut usize) -> Result<BlockHandle> {
        Ok(BlockHandle {
            offset: read_varint(buf, pos)?,
            size: read_varint(buf, pos)?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.size);
    }
}

/// The contents of a block after checking its trailer.
fn read_block(file: &[u8], handle: BlockHandle) -> Result<&[u8]> {
    let start = usize::try_from(handle.offset)?;
    let size = usize::try_from(handle.size)?;
    let end = start
        .checked_add(size)
        .and_then(|e| e.checked_add(TRAILER_LEN))
        .filter(|&e| e <= file.len())
        .with_context(|| {
            format!(
                "block at offset {start} of size {size} runs past the end of the file ({} bytes)",
                file.len()
            )
        })?;
    let contents = &file[start..start + size];
    let trailer = &file[start + size..end];
    let stored = u32::from_le_bytes(trailer[1..5].try_into().unwrap());
    let actual = mask_crc(crc32c::crc32c_append(
        crc32c::crc32c(contents),
        &trailer[..1],
    ));
    ensure!(
        stored == actual,
        "block at offset {start}: CRC-32C mismatch (stored {stored:#010x}, computed {actual:#010x}); the file is corrupt"
    );
    if trailer[0] != NO_COMPRESSION {
        bail!(
            "block at offset {start} is compressed (type {}); only uncompressed tables (as TensorFlow's bundle writer makes) are supported",
            trailer[0]
        );
    }
    Ok(contents)
}

/// Every key/value of one block, keys expanded from their shared prefixes.
fn block_entries(block: &[u8]) -> Result<Vec<(Vec<u8>, &[u8])>> {
    ensure!(
        block.len() >= 4,
        "block of {} bytes is too short",
        block.len()
    );
    let num_restarts = u32::from_le_bytes(block[block.len() - 4..].try_into().unwrap()) as usize;
    let restarts_len = num_restarts
        .checked_add(1)
        .and_then(|n| n.checked_mul(4))
        .filter(|&n| n <= block.len())
        .with_context(|| format!("block claims {num_restarts} restart points"))?;
    let data = &block[..block.len() - restarts_len];
    let mut entries: Vec<(Vec<u8>, &[u8])> = Vec::new();
    let mut pos = 0;
    let mut key: Vec<u8> = Vec::new();
    while pos < data.len() {
        let shared = read_varint(data, &mut pos)? as usize;
        let non_shared = read_varint(data, &mut pos)? as usize;
        let value_len = read_varint(data, &mut pos)? as usize;
        ensure!(
            shared <= key.len(),
            "entry at block byte {pos} shares {shared} bytes of a {}-byte key",
            key.len()
        );
        let end = pos
            .checked_add(non_shared)
            .and_then(|e| e.checked_add(value_len))
            .filter(|&e| e <= data.len())
            .with_context(|| format!("entry at block byte {pos} runs past its block"))?;
        key.truncate(shared);
        key.extend_from_slice(&data[pos..pos + non_shared]);
        entries.push((key.clone(), &data[pos + non_shared..end]));
        pos = end;
    }
    Ok(entries)
}

/// All key/value pairs of a table file, in key order.
pub fn read_table(file: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    ensure!(
        file.len() >= FOOTER_LEN,
        "{} bytes is too short for a table (the footer alone is {FOOTER_LEN})",
        file.len()
    );
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..].try_into().unwrap());
    ensure!(
        magic == MAGIC,
        "bad table magic number {magic:#018x} (expected {MAGIC:#018x}): not a TensorFlow checkpoint index"
    );
    let mut pos = 0;
    let _metaindex = BlockHandle::decode(footer, &mut pos)?;
    let index = BlockHandle::decode(footer, &mut pos)?;
    let mut out = Vec::new();
    for (_, handle_bytes) in block_entries(read_block(file, index).context("index block")?)? {
        let handle = BlockHandle::decode(handle_bytes, &mut 0)?;
        let block = read_block(file, handle)?;
        for (k, v) in block_entries(block)? {
            out.push((k, v.to_vec()));
        }
    }
    for pair in out.windows(2) {
        ensure!(
            pair[0].0 < pair[1].0,
            "table keys out of order: {:?} before {:?}",
            String::from_utf8_lossy(&pair[0].0),
            String::from_utf8_lossy(&pair[1].0)
        );
    }
    Ok(out)
}

/// LevelDB's `FindShortestSeparator` for the bytewise comparator: a short key
/// `k` with `start <= k < limit`, used as a block's index key.
fn shortest_separator(start: &[u8], limit: &[u8]) -> Vec<u8> {
    let common = start.iter().zip(limit).take_while(|(a, b)| a == b).count();
    if common < start.len().min(limit.len()) {
        let byte = start[common];
        if byte < 0xff && byte + 1 < limit[common] {
            let mut k = start[..=common].to_vec();
            k[common] += 1;
            return k;
        }
    }
    start.to_vec()
}

/// LevelDB's `FindShortSuccessor`: a short key `>= key`, for the last block.
fn short_successor(key: &[u8]) -> Vec<u8> {
    match key.iter().position(|&b| b != 0xff) {
        Some(i) => {
            let mut k = key[..=i].to_vec();
            k[i] += 1;
            k
        }
        None => key.to_vec(),
    }
}

/// One block under construction (LevelDB's `BlockBuilder`).
struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    fn new(interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            interval,
            last_key: Vec::new(),
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.counter < self.interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key = key.to_vec();
        self.counter += 1;
    }

    fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    fn finish(mut self) -> Vec<u8> {
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.buf
    }
}

/// Appends a block and its trailer; returns its handle.
fn emit_block(file: &mut Vec<u8>, contents: &[u8]) -> BlockHandle {
    let handle = BlockHandle {
        offset: file.len() as u64,
        size: contents.len() as u64,
    };
    file.extend_from_slice(contents);
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[NO_COMPRESSION]);
    file.push(NO_COMPRESSION);
    file.extend_from_slice(&mask_crc(crc).to_le_bytes());
    handle
}

/// Builds a table as TensorFlow's `TableBuilder` does with the bundle
/// writer's options (256 KiB blocks, restart interval 16, no compression, no
/// filter), so that the bytes equal TensorFlow's for the same entries.
/// Keys must be strictly increasing.
pub fn write_table(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>> {
    const BLOCK_SIZE: usize = 262_144;
    const RESTART_INTERVAL: usize = 16;
    for pair in entries.windows(2) {
        ensure!(
            pair[0].0 < pair[1].0,
            "table keys must be strictly increasing: {:?} then {:?}",
            String::from_utf8_lossy(&pair[0].0),
            String::from_utf8_lossy(&pair[1].0)
        );
    }
    let mut file = Vec::new();
    // Index entries use restart interval 1, as LevelDB's.
    let mut index = BlockBuilder::new(1);
    let mut block = BlockBuilder::new(RESTART_INTERVAL);
    // A flushed block's index entry waits for the next key, so that its key
    // can be a short separator between the two blocks.
    let mut pending: Option<BlockHandle> = None;
    let add_index = |index: &mut BlockBuilder, key: &[u8], handle: BlockHandle| {
        let mut h = Vec::new();
        handle.encode(&mut h);
        index.add(key, &h);
    };
    let mut last_key: Vec<u8> = Vec::new();
    for (k, v) in entries {
        if let Some(handle) = pending.take() {
            add_index(&mut index, &shortest_separator(&last_key, k), handle);
        }
        block.add(k, v);
        last_key.clone_from(k);
        if block.estimated_size() >= BLOCK_SIZE {
            let full = std::mem::replace(&mut block, BlockBuilder::new(RESTART_INTERVAL));
            pending = Some(emit_block(&mut file, &full.finish()));
        }
    }
    if !block.buf.is_empty() {
        pending = Some(emit_block(&mut file, &block.finish()));
    }
    let metaindex = emit_block(&mut file, &BlockBuilder::new(RESTART_INTERVAL).finish());
    if let Some(handle) = pending.take() {
        add_index(&mut index, &short_successor(&last_key), handle);
    }
    let index = emit_block(&mut file, &index.finish());
    let mut footer = Vec::with_capacity(FOOTER_LEN);
    metaindex.encode(&mut footer);
    index.encode(&mut footer);
    footer.resize(40, 0);
    footer.extend_from_slice(&MAGIC.to_le_bytes());
    file.extend_from_slice(&footer);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tables_read_back_across_blocks_and_restarts() {
        // Enough long shared-prefix keys for several blocks and restarts.
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..6000)
            .map(|i| {
                (
                    format!("bert/encoder/layer_{i:04}/kernel").into_bytes(),
                    vec![i as u8; 1 + i % 230],
                )
            })
            .collect();
        let bytes = write_table(&entries).unwrap();
        assert!(
            bytes.len() > 2 * 262_144,
            "the test should span several blocks"
        );
        assert_eq!(read_table(&bytes).unwrap(), entries);
    }

    #[test]
    fn corruption_is_detected() {
        let entries = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ];
        let mut bytes = write_table(&entries).unwrap();
        bytes[3] ^= 1;
        let err = read_table(&bytes).unwrap_err().to_string();
        assert!(err.contains("CRC-32C mismatch"), "{err}");
        let mut bytes = write_table(&entries).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        let err = read_table(&bytes).unwrap_err().to_string();
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn separators_are_short_and_between() {
        assert_eq!(shortest_separator(b"abcd", b"abzz"), b"abd".to_vec());
        assert_eq!(shortest_separator(b"abc", b"abd"), b"abc".to_vec());
        assert_eq!(shortest_separator(b"ab", b"abc"), b"ab".to_vec());
        assert_eq!(short_successor(b"abc"), b"b".to_vec());
        assert_eq!(short_successor(&[0xff, 0xff]), vec![0xff, 0xff]);
    }

    #[test]
    fn unordered_keys_are_refused() {
        let entries = vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])];
        assert!(write_table(&entries).is_err());
    }
}
