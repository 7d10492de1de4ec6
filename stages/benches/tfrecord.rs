//! Throughput of TFRecord writing at the reference shape (max_seq_length
//! 128, max_predictions_per_seq 20), single-threaded:
//! `cargo bench -p nezha-stages --bench tfrecord`.
//!
//! Instances are synthetic but shaped like real ones: 90% full length, the
//! rest 10 to 127 tokens, ids uniform over the 21,128-entry Chinese vocab
//! (so mostly 2-byte varints), 15% of tokens masked up to 20.

use std::hint::black_box;
use std::io;
use std::time::Instant;

use nezha_stages::tfrecord::{decode_instance, encode_instance, RecordWriter};
use nezha_stages::Instance;

const SEQ: usize = 128;
const PREDS: usize = 20;
const RECORDS: usize = 200_000;

fn instances(count: usize) -> Vec<Instance> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    (0..count)
        .map(|_| {
            let n = if next(10) == 0 {
                10 + next(118) as usize
            } else {
                SEQ
            };
            let tokens: Vec<u32> = (0..n).map(|_| 100 + next(21_028) as u32).collect();
            let m = ((n as f64 * 0.15).round() as usize).clamp(1, PREDS);
            let mut positions: Vec<u32> = Vec::new();
            let step = (n - 2) / m;
            for j in 0..m {
                positions.push(1 + (j * step) as u32 + next(step as u64) as u32);
            }
            let labels = positions
                .iter()
                .map(|_| 100 + next(21_028) as u32)
                .collect();
            Instance {
                segment_a_len: 2 + next(n as u64 - 3) as u32,
                is_random_next: next(2) == 1,
                masked_positions: positions,
                masked_labels: labels,
                tokens,
            }
        })
        .collect()
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), which
/// unlike wall time does not count time other processes held the core.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `f` over all instances three times and prints the best pass's rate
/// by wall time and by on-CPU time.
fn measure(name: &str, insts: &[Instance], mut f: impl FnMut(&[Instance]) -> usize) {
    let mut best_wall = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut bytes = 0;
    for _ in 0..3 {
        let cpu = thread_cpu_ns();
        let start = Instant::now();
        bytes = f(insts);
        best_wall = best_wall.min(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu, thread_cpu_ns()) {
            best_cpu = best_cpu.min((b - a) as f64 / 1e9);
        }
    }
    let n = insts.len() as f64;
    let cpu = if best_cpu.is_finite() {
        format!("{:>10.0} records/s on-CPU", n / best_cpu)
    } else {
        "on-CPU time unavailable".to_string()
    };
    println!(
        "{name:<34} {:>10.0} records/s wall {cpu}  {:>6.1} MB/s wall  ({:.0} bytes/record)",
        n / best_wall,
        bytes as f64 / best_wall / 1e6,
        bytes as f64 / n
    );
}

fn main() {
    let insts = instances(RECORDS);
    println!("{RECORDS} instances, max_seq_length {SEQ}, max_predictions_per_seq {PREDS}");

    let mut buf = Vec::with_capacity(1024);
    measure("encode_instance", &insts, |insts| {
        let mut total = 0;
        for inst in insts {
            buf.clear();
            encode_instance(inst, SEQ, PREDS, &mut buf).unwrap();
            total += black_box(&buf).len();
        }
        total
    });

    measure("encode_instance + framing", &insts, |insts| {
        let mut w = RecordWriter::new(io::sink());
        for inst in insts {
            buf.clear();
            encode_instance(inst, SEQ, PREDS, &mut buf).unwrap();
            w.write_record(&buf).unwrap();
        }
        w.bytes_written() as usize
    });

    measure(
        "encode_instance + framing + gzip",
        &insts[..RECORDS / 10],
        |insts| {
            let mut w = RecordWriter::gzip(io::sink());
            for inst in insts {
                buf.clear();
                encode_instance(inst, SEQ, PREDS, &mut buf).unwrap();
                w.write_record(&buf).unwrap();
            }
            let framed = w.bytes_written() as usize;
            w.finish().unwrap();
            framed
        },
    );

    let encoded: Vec<Vec<u8>> = insts[..RECORDS / 10]
        .iter()
        .map(|inst| {
            let mut b = Vec::new();
            encode_instance(inst, SEQ, PREDS, &mut b).unwrap();
            b
        })
        .collect();
    measure("decode_instance", &insts[..RECORDS / 10], |insts| {
        let mut total = 0;
        for (bytes, inst) in encoded.iter().zip(insts) {
            let back = decode_instance(bytes, SEQ, PREDS).unwrap();
            assert_eq!(&back, inst);
            total += bytes.len();
        }
        total
    });
}
