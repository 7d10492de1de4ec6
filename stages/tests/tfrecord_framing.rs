//! TFRecord framing: round trips, CRC checks, truncation, gzip.

use std::io::Write;
use std::path::Path;

use nezha_stages::tfrecord::{
    create_records, masked_crc32c, open_records, Compression, RecordReader, RecordWriter,
};

fn frame(records: &[&[u8]]) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new());
    for r in records {
        w.write_record(r).unwrap();
    }
    w.into_inner()
}

fn read_all(bytes: &[u8]) -> Vec<nezha_stages::error::Result<Vec<u8>>> {
    RecordReader::new(bytes, "test.tfrecord").collect()
}

const RECORDS: [&[u8]; 4] = [b"first", b"", b"third record, longer", &[0u8, 255, 1, 254]];

#[test]
fn framing_round_trip() {
    let bytes = frame(&RECORDS);
    let expected_len: usize = RECORDS.iter().map(|r| 16 + r.len()).sum();
    assert_eq!(bytes.len(), expected_len);
    let back: Vec<Vec<u8>> = read_all(&bytes).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(back, RECORDS.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
}

#[test]
fn writer_counts_records_and_framed_bytes() {
    let mut w = RecordWriter::new(Vec::new());
    w.write_record(b"abc").unwrap();
    w.write_record(b"de").unwrap();
    assert_eq!(w.records_written(), 2);
    assert_eq!(w.bytes_written(), 19 + 18);
    assert_eq!(w.into_inner().len(), 37);
}

#[test]
fn reader_reports_offsets_and_counts() {
    let bytes = frame(&RECORDS);
    let mut r = RecordReader::new(bytes.as_slice(), "x");
    let mut buf = Vec::new();
    assert!(r.read_record(&mut buf).unwrap());
    assert_eq!((r.records_read(), r.offset()), (1, 21));
    assert!(r.read_record(&mut buf).unwrap());
    assert!(buf.is_empty());
    assert_eq!((r.records_read(), r.offset()), (2, 37));
    while r.read_record(&mut buf).unwrap() {}
    assert_eq!(r.records_read(), 4);
    assert_eq!(r.offset(), bytes.len() as u64);
}

/// Offset of record `n`'s start in `frame(&RECORDS)`.
fn start_of(n: usize) -> usize {
    RECORDS[..n].iter().map(|r| 16 + r.len()).sum()
}

#[test]
fn corrupt_data_is_reported_with_record_and_offset() {
    let mut bytes = frame(&RECORDS);
    let at = start_of(2) + 12 + 3;
    bytes[at] ^= 0x40;
    let results = read_all(&bytes);
    assert_eq!(results.len(), 3, "reading stops at the first error");
    assert_eq!(results[0].as_ref().unwrap(), b"first");
    let err = results[2].as_ref().unwrap_err().to_string();
    let start = start_of(2);
    assert!(err.contains("test.tfrecord"), "{err}");
    assert!(
        err.contains(&format!("record 2 at byte offset {start}")),
        "{err}"
    );
    assert!(err.contains("bad data CRC"), "{err}");
    let crc_at = start + 12 + RECORDS[2].len();
    assert!(
        err.contains(&format!("byte offset {crc_at}, computed")),
        "{err}"
    );
}

#[test]
fn corrupt_data_crc_itself_is_detected() {
    let mut bytes = frame(&RECORDS);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = read_all(&bytes).pop().unwrap().unwrap_err().to_string();
    assert!(
        err.contains(&format!("record 3 at byte offset {}", start_of(3))),
        "{err}"
    );
    assert!(err.contains("bad data CRC"), "{err}");
}

#[test]
fn corrupt_length_is_reported_as_bad_length_crc() {
    let mut bytes = frame(&RECORDS);
    bytes[start_of(1)] = 7;
    let results = read_all(&bytes);
    assert_eq!(results.len(), 2);
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains(&format!("record 1 at byte offset {}", start_of(1))),
        "{err}"
    );
    assert!(err.contains("bad length CRC"), "{err}");
}

#[test]
fn truncation_is_detected_in_header_data_and_footer() {
    let bytes = frame(&RECORDS);
    let start = start_of(2);
    let cases = [
        (start + 5, "5 bytes into the 12-byte record header"),
        (start + 12 + 4, "after 4 of the record's 20 data bytes"),
        (start + 12 + 20 + 3, "3 bytes into the 4-byte data CRC"),
    ];
    for (cut, what) in cases {
        let results = read_all(&bytes[..cut]);
        assert_eq!(results.len(), 3, "cut at {cut}");
        assert!(results[1].is_ok());
        let err = results[2].as_ref().unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(
            err.contains(&format!("record 2 at byte offset {start}")),
            "{err}"
        );
    }
    // A cut exactly between records is a clean, shorter file.
    assert_eq!(read_all(&bytes[..start]).len(), 2);
}

#[test]
fn writer_output_has_the_masked_crcs_tensorflow_expects() {
    // The bytes tf.io.TFRecordWriter (TensorFlow 2.21) writes for the one
    // record b"a".
    let tf_framed: [u8; 17] = [
        1, 0, 0, 0, 0, 0, 0, 0, 1, 117, 222, 65, 97, 120, 110, 228, 40,
    ];
    assert_eq!(frame(&[b"a"]), tf_framed);
    assert_eq!(masked_crc32c(b"a").to_le_bytes(), [120, 110, 228, 40]);
}

fn write_file(path: &Path, compression: Compression) {
    let mut w = create_records(path, compression).unwrap();
    for r in RECORDS {
        w.write_record(r).unwrap();
    }
    assert_eq!(w.finish().unwrap(), RECORDS.len() as u64);
}

fn read_file(path: &Path) -> Vec<Vec<u8>> {
    open_records(path).unwrap().map(|r| r.unwrap()).collect()
}

#[test]
fn plain_and_gzip_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<Vec<u8>> = RECORDS.iter().map(|r| r.to_vec()).collect();
    for (name, compression) in [
        ("a.tfrecord", Compression::None),
        ("a.tfrecord.gz", Compression::Gzip),
    ] {
        let path = dir.path().join(name);
        write_file(&path, compression);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes.starts_with(&[0x1f, 0x8b]),
            compression == Compression::Gzip,
            "{name}"
        );
        assert_eq!(read_file(&path), expected, "{name}");
    }
}

#[test]
fn gzip_is_detected_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<Vec<u8>> = RECORDS.iter().map(|r| r.to_vec()).collect();
    let gz_named_plain = dir.path().join("plain.gz");
    write_file(&gz_named_plain, Compression::None);
    assert_eq!(read_file(&gz_named_plain), expected);
    let plain_named_gz = dir.path().join("compressed.tfrecord");
    write_file(&plain_named_gz, Compression::Gzip);
    assert_eq!(read_file(&plain_named_gz), expected);
}

#[test]
fn plain_file_whose_length_looks_like_gzip_magic_is_read_plain() {
    // A record of 0x08_8b1f bytes starts with the bytes 1f 8b 08.
    let big = vec![7u8; 0x08_8b1f];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.tfrecord");
    let mut w = create_records(&path, Compression::None).unwrap();
    w.write_record(&big).unwrap();
    w.finish().unwrap();
    assert_eq!(std::fs::read(&path).unwrap()[..3], [0x1f, 0x8b, 0x08]);
    assert_eq!(read_file(&path), vec![big]);
}

#[test]
fn gzip_writer_over_any_writer() {
    let mut w = RecordWriter::gzip(Vec::new());
    for r in RECORDS {
        w.write_record(r).unwrap();
    }
    let gz = w.finish().unwrap();
    let mut raw = Vec::new();
    let mut d = flate2::read::GzDecoder::new(gz.as_slice());
    std::io::Read::read_to_end(&mut d, &mut raw).unwrap();
    assert_eq!(raw, frame(&RECORDS));
}

#[test]
fn corrupt_gzip_file_names_the_file_and_decompressed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tfrecord.gz");
    // Valid gzip of a framed stream whose second record's data is damaged.
    let mut raw = frame(&RECORDS);
    raw[start_of(1) + 12] ^= 0xff; // the empty record's data CRC
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    let results: Vec<_> = open_records(&path).unwrap().collect();
    assert_eq!(results.len(), 2);
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("bad.tfrecord.gz"), "{err}");
    assert!(
        err.contains(&format!(
            "record 1 at decompressed byte offset {}",
            start_of(1)
        )),
        "{err}"
    );
}

#[test]
fn truncated_gzip_stream_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.tfrecord.gz");
    write_file(&path, Compression::Gzip);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let results: Vec<_> = open_records(&path).unwrap().collect();
    let err = results.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(err.contains("cut.tfrecord.gz"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = open_records(Path::new("/nonexistent/x.tfrecord"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/x.tfrecord"), "{err}");
}

#[test]
fn empty_file_has_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.tfrecord");
    std::fs::write(&path, b"").unwrap();
    assert!(read_file(&path).is_empty());
}
