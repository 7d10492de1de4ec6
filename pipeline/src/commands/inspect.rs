use std::path::{Path, PathBuf};

use nezha_stages::tfrecord::inspect;
use nezha_stages::vocab::Vocab;

/// `nezha inspect FILE`: counts records, checks every CRC, and shows a few
/// examples decoded back to tokens.
pub fn run(file: &Path, vocab: Option<&PathBuf>, show: usize) -> anyhow::Result<()> {
    let vocab = vocab.map(|v| Vocab::load(v)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    inspect(file, vocab.as_ref(), show, &mut out)?;
    Ok(())
}
