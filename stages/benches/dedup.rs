//! What `[dedup]` costs per document: the peak memory it adds per distinct
//! document, and documents per second through the deduplication dataflow
//! alone (key reader, differential `distinct`, decisions, filters), with
//! two workers.
//!
//! `cargo bench -p nezha-stages --bench dedup`
//!
//! Each case runs in a child process of its own, so that its peak RSS
//! (VmHWM) is its own; the memory figure is that peak minus the RSS before
//! the dataflow starts, over the number of distinct documents.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use nezha_stages::dedup::{Dedup, DedupKeys, DedupPlan, FilterSpec, MinHashParams, Share};
use nezha_stages::error::Result;
use nezha_stages::ingest::Ingest;
use nezha_stages::ingest::IngestPlan;
use nezha_stages::operator::Control;
use nezha_stages::stage::Stage;
use nezha_stages::Document;

const WORKERS: u64 = 2;

/// `documents` short documents of which `distinct` differ: document `i`
/// has the text of document `i % distinct`.
struct Synthetic {
    documents: u64,
    distinct: u64,
}

impl Synthetic {
    fn doc(&self, index: u64) -> Document {
        // 24 pseudo-random CJK characters drawn from `k`: distinct texts
        // are far apart, so MinHash mode keeps them too.
        let mut x = index % self.distinct;
        let text: String = (0..24)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from_u32(0x4E00 + ((x >> 33) % 20_000) as u32).unwrap()
            })
            .collect();
        Document {
            index,
            origin: String::new(),
            lines: vec![text],
        }
    }
}

impl Ingest for Synthetic {
    fn read(
        &self,
        _: &[PathBuf],
        _: &AtomicU64,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<()> {
        for i in 0..self.documents {
            if !emit(self.doc(i)) {
                break;
            }
        }
        Ok(())
    }
}

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// One case, in this process: prints `distinct kept dropped seconds bytes`.
/// `bands` > 0: MinHash mode with that many bands of 8 rows.
fn child(documents: u64, distinct: u64, bands: u64) {
    let corpus = Arc::new(Synthetic {
        documents,
        distinct,
    });
    let ingest = IngestPlan {
        format: corpus.clone(),
        files: Arc::new(Vec::new()),
    };
    let specs: Vec<FilterSpec> = (0..WORKERS)
        .map(|w| {
            let share = Share {
                index: w,
                of: WORKERS,
            };
            FilterSpec {
                sees: share,
                counted: share,
            }
        })
        .collect();
    let before = status_kb("VmRSS:");
    let t0 = Instant::now();
    let plan = DedupPlan {
        keys: if bands == 0 {
            DedupKeys::Exact
        } else {
            DedupKeys::MinHash(MinHashParams {
                shingle: 5,
                bands: bands as usize,
                rows: 8,
            })
        },
        lead_documents: 65_536,
    };
    let mut dedup = Dedup::start(&plan, &ingest, &specs, 1, Control::default()).unwrap();
    let counts = dedup.counts();
    let workers: Vec<_> = dedup
        .take_filters()
        .into_iter()
        .enumerate()
        .map(|(w, mut filter)| {
            let corpus = corpus.clone();
            std::thread::spawn(move || {
                let mut kept = 0u64;
                let mut i = w as u64;
                while i < corpus.documents {
                    filter.push(corpus.doc(i), &mut |_| kept += 1).unwrap();
                    i += WORKERS;
                }
                filter.finish(&mut |_| {}).unwrap();
                kept
            })
        })
        .collect();
    let kept: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    dedup.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:");
    assert_eq!(kept, distinct);
    assert_eq!(counts.kept(), distinct);
    assert_eq!(counts.dropped(), documents - distinct);
    let bytes = peak.saturating_sub(before) * 1024;
    println!("{distinct} {kept} {} {secs} {bytes}", counts.dropped());
}

fn main() {
    if let Ok(case) = std::env::var("NEZHA_DEDUP_BENCH_CASE") {
        let mut it = case.split(',').map(|x| x.parse::<u64>().unwrap());
        child(it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        return;
    }
    println!(
        "| mode | documents | distinct | documents/s | peak memory added | bytes per distinct document |"
    );
    println!("|---|---|---|---|---|---|");
    for (documents, distinct, bands) in [
        (1_000_000, 1_000, 0),
        (1_000_000, 1_000_000, 0),
        (4_000_000, 4_000_000, 0),
        (250_000, 250_000, 16),
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .env(
                "NEZHA_DEDUP_BENCH_CASE",
                format!("{documents},{distinct},{bands}"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let (secs, bytes) = (f[3], f[4]);
        let mode = if bands == 0 {
            "exact".to_string()
        } else {
            format!("minhash, {bands} bands of 8")
        };
        println!(
            "| {mode} | {documents} | {distinct} | {:.0} | {:.1} MB | {:.0} |",
            documents as f64 / secs,
            bytes / 1e6,
            bytes / distinct as f64
        );
    }
}
