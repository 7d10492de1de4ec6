//! Ctrl-C and a scheduler's SIGTERM: the first asks the run to stop at its
//! next safe point (training: after a whole step, with a checkpoint); a
//! second ends the process at once.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// The exit status of a run that stopped because it was asked to (as a
/// shell reports a process ended by SIGINT).
pub const EXIT_STATUS: u8 = 130;

/// Sets `flag` on SIGINT or SIGTERM; exits with [`EXIT_STATUS`] on the
/// second.
pub fn install(flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before this signal sets it.
        signal_hook::flag::register_conditional_shutdown(signal, EXIT_STATUS.into(), flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(())
}

/// The error a run that stopped on request ends with: `cli::exit` prints
/// it and exits with [`EXIT_STATUS`].
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}
