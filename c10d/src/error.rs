//! What went wrong, and where: every message starts with the operation, the
//! rank (where there is one), the address and the timeout involved.

/// An error from nezha-c10d.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// c10d, or Gloo/NCCL beneath it, raised an error (its message is `cause`).
    #[error("{context}: {cause}")]
    C10d { context: String, cause: String },
    /// The call was refused before reaching c10d.
    #[error("{context}: {problem}")]
    Invalid { context: String, problem: String },
    /// A collective of this group failed before; its peers' state is unknown,
    /// so no further collective is attempted on it.
    #[error("{context}: refused, the process group failed earlier: {first}")]
    Broken { context: String, first: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds for c10d, which reads 0 as "no timeout": a zero or
/// sub-millisecond timeout is refused rather than turned into "forever".
pub(crate) fn timeout_ms(context: &str, timeout: std::time::Duration) -> Result<i64> {
    let ms = timeout.as_millis();
    if ms == 0 {
        return Err(Error::Invalid {
            context: context.to_string(),
            problem: format!("timeout {timeout:?} is below c10d's 1 ms resolution"),
        });
    }
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}
