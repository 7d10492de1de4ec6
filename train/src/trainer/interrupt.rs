//! A request to stop training at the next step boundary, with a
//! checkpoint: what a scheduler's SIGTERM or a user's Ctrl-C asks. The
//! binary's signal handlers set the flag; the ranks of a data-parallel run
//! agree on it in each step's exchange, so all stop after the same step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag signal handlers set (`signal_hook::flag::register`).
pub fn flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(Default::default).clone()
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// The error a loop that stopped on request ends with; the binary exits
/// with its "interrupted" status on it.
#[derive(Debug)]
pub struct Stopped(pub String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}
