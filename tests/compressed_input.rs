//! `.gz`, `.zst` and `.xz` copies of a corpus give the records of the plain
//! file, byte for byte, and a truncated copy is an error naming it.

use std::io::Write;
use std::path::Path;

mod common;
use common::{chapters, nezha, root};

fn records(dir: &Path, input: &str) -> Vec<u8> {
    let out = nezha(
        &[
            "create_pretraining_data",
            &format!("--input_file={input}"),
            &format!("--output_file={input}.tfrecord"),
            &format!("--vocab_file={}", root().join("data/vocab.txt").display()),
            "--max_seq_length=64",
            "--dupe_factor=2",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "{input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join(format!("{input}.tfrecord"))).unwrap()
}

#[test]
fn compressed_copies_give_the_plain_files_records() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let text = chapters(4).join("\n\n");
    std::fs::write(d.join("c.txt"), &text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(d.join("c.txt.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        d.join("c.txt.zst"),
        zstd::encode_all(text.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(text.as_bytes()).unwrap();
    let xz = xz.finish().unwrap();
    std::fs::write(d.join("c.txt.xz"), &xz).unwrap();

    let plain = records(d, "c.txt");
    assert!(plain.len() > 10_000);
    for copy in ["c.txt.gz", "c.txt.zst", "c.txt.xz"] {
        assert!(records(d, copy) == plain, "{copy} gives other records");
    }

    std::fs::write(d.join("short.txt.xz"), &xz[..xz.len() / 2]).unwrap();
    let out = nezha(
        &[
            "create_pretraining_data",
            "--input_file=short.txt.xz",
            "--output_file=short.tfrecord",
            &format!("--vocab_file={}", root().join("data/vocab.txt").display()),
        ],
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("short.txt.xz") && stderr.contains("decompressed byte"),
        "{stderr}"
    );
    assert!(!d.join("short.tfrecord").exists());
}
