//! TFRecord framing (plain and gzip, as `open_records` reads them) and
//! `tf.train.Example` decoding, generic and in the pretraining layout.
#![no_main]

use std::io::{BufReader, Cursor, Read};

use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use nezha_stages::tfrecord::{decode_instance, parse_features, RecordReader};

/// Reads every record of `reader` and decodes each as the pretraining
/// readers do; errors are answers, only panics and hangs are findings.
fn drain<R: Read>(mut reader: RecordReader<R>) {
    let mut buf = Vec::new();
    while let Ok(true) = reader.read_record(&mut buf) {
        let _ = parse_features(&buf);
        let _ = decode_instance(&buf, 128, 20);
    }
}

fuzz_target!(|data: &[u8]| {
    drain(RecordReader::new(Cursor::new(data), "fuzz.tfrecord"));
    // A gzip stream's records go through the same reader, decompressed.
    if data.starts_with(&[0x1f, 0x8b]) {
        let gz = BufReader::new(MultiGzDecoder::new(Cursor::new(data)));
        drain(RecordReader::new(gz, "fuzz.tfrecord.gz"));
    }
    // The CRCs keep mutated payloads out of the decoders above, so the
    // bytes are also decoded directly as a record's payload.
    let _ = parse_features(data);
    let _ = decode_instance(data, 128, 20);
    let _ = decode_instance(data, 8, 2);
});
