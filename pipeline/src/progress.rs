//! Progress bars for long work: rate and ETA on a terminal, nothing when
//! stderr is not one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over the input bytes read, with a count of what was produced.
pub struct InputProgress {
    bar: ProgressBar,
    bytes_read: Arc<AtomicU64>,
    unit: &'static str,
}

impl InputProgress {
    pub fn new(total_bytes: u64, bytes_read: Arc<AtomicU64>, unit: &'static str) -> InputProgress {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        InputProgress {
            bar,
            bytes_read,
            unit,
        }
    }

    /// Updates the bar with the number of items produced so far.
    pub fn update(&self, produced: u64) {
        self.bar
            .set_position(self.bytes_read.load(Ordering::Relaxed));
        self.bar.set_message(format!("{produced} {}", self.unit));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
