//! Checkpoints: `checkpoints/step-NNNNNNNN/` holding the weights
//! (`model.safetensors`, Hugging Face names), the optimizer moments
//! (`optimizer.safetensors`, reference slot names) and `state.json` (step,
//! data position, RNG seed, loss-scale state, the configs, and each file's
//! size and CRC-32C).
//!
//! A checkpoint directory is built under a temporary name, every file
//! fsync'd, then renamed into place ([`atomic_file::persist`]), so a listed
//! checkpoint is complete; the checksums catch later truncation or
//! corruption before anything is loaded.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nezha_stages::atomic_file;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::config::Precision;
use super::loss_scale::LossScaler;
use crate::model::{weights, NezhaConfig, NezhaForPreTraining};
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::tensorfile;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub crc32c: u32,
}

/// Everything besides tensors that an exact resume needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    /// Optimizer updates applied (the reference's global_step).
    pub step: u64,
    /// Batches taken from the data iterator so far (the data position).
    pub batches_consumed: u64,
    /// Steps skipped because a gradient was not finite.
    pub skipped_steps: u64,
    /// Dropout masks are drawn from a generator seeded with (seed, batch index).
    pub seed: u64,
    pub loss_scaler: Option<LossScaler>,
    pub model_config: NezhaConfig,
    pub optimizer: OptimizerKind,
    pub optimizer_config: OptimizerConfig,
    pub schedule: Schedule,
    pub precision: Precision,
    pub grad_accumulation: u32,
    /// Processes of the data-parallel run that wrote it (1 when absent).
    #[serde(default = "one_process")]
    pub world_size: u64,
    /// Batches each rank had taken from its own share of the data; resume
    /// needs the same world size. Empty in checkpoints from before.
    #[serde(default)]
    pub rank_positions: Vec<u64>,
    /// Sequences in each process's micro-batch, when the run knew it.
    #[serde(default)]
    pub batch_size: Option<u64>,
    pub files: BTreeMap<String, FileSum>,
}

fn one_process() -> u64 {
    1
}

pub fn checkpoints_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("checkpoints")
}

fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Complete checkpoints in `output_dir`, oldest first.
pub fn list(output_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = checkpoints_dir(output_dir);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        // Temporary directories (`step-N.tmp-…`, atomic_file::temp_path)
        // are never complete checkpoints.
        if let Some(step) = name
            .strip_prefix("step-")
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn sum_of(bytes: &[u8]) -> FileSum {
    FileSum {
        bytes: bytes.len() as u64,
        crc32c: crc32c::crc32c(bytes),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// Writes a checkpoint for `state.step`, then deletes all but the newest
/// `keep`. Returns its directory.
pub fn save(
    output_dir: &Path,
    model: &NezhaForPreTraining,
    optimizer: &Optimizer,
    mut state: TrainState,
    keep: usize,
) -> Result<PathBuf> {
    let dir = checkpoints_dir(output_dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let final_dir = dir.join(step_dir_name(state.step));
    if final_dir.exists() {
        bail!("checkpoint {} already exists", final_dir.display());
    }
    let tmp = atomic_file::temp_path(&final_dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written = (|| -> Result<()> {
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        meta.insert(
            weights::CONFIG_KEY.to_string(),
            serde_json::to_string(&model.config)?,
        );
        let model_bytes = tensorfile::to_bytes(model.params.named(), meta)?;
        let opt_bytes = tensorfile::to_bytes(&optimizer.moments().named(), HashMap::new())?;
        state.format = FORMAT;
        state.files = BTreeMap::from([
            (MODEL_FILE.to_string(), sum_of(&model_bytes)),
            (OPTIMIZER_FILE.to_string(), sum_of(&opt_bytes)),
        ]);
        write_synced(&tmp.join(MODEL_FILE), &model_bytes)?;
        write_synced(&tmp.join(OPTIMIZER_FILE), &opt_bytes)?;
        write_synced(
            &tmp.join(STATE_FILE),
            serde_json::to_string_pretty(&state)?.as_bytes(),
        )?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e.context(format!("writing checkpoint {}", final_dir.display())));
    }
    // Syncs the directory's entries, renames it, syncs `checkpoints/`.
    atomic_file::persist(&tmp, &final_dir)
        .with_context(|| format!("writing checkpoint {}", final_dir.display()))?;
    let all = list(output_dir)?;
    if all.len() > keep {
        for (_, old) in &all[..all.len() - keep] {
            fs::remove_dir_all(old)
                .with_context(|| format!("removing old checkpoint {}", old.display()))?;
        }
    }
    Ok(final_dir)
}

/// A checkpoint read and verified, not yet applied to anything.
pub struct Loaded {
    pub dir: PathBuf,
    pub state: TrainState,
    pub model: Vec<(String, Tensor)>,
    pub optimizer: Vec<(String, Tensor)>,
}

fn read_verified(dir: &Path, name: &str, want: Option<&FileSum>) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let Some(want) = want else {
        bail!("{}: state.json lists no checksum for {name}", dir.display());
    };
    let got = sum_of(&bytes);
    if got != *want {
        bail!(
            "{} is corrupt or truncated: {} bytes with CRC-32C {:08x}, state.json says {} bytes with {:08x}",
            path.display(),
            got.bytes,
            got.crc32c,
            want.bytes,
            want.crc32c
        );
    }
    Ok(bytes)
}

/// Reads and verifies the checkpoint in `dir`.
pub fn load(dir: &Path) -> Result<Loaded> {
    let state_path = dir.join(STATE_FILE);
    let text = fs::read_to_string(&state_path)
        .with_context(|| format!("reading {}", state_path.display()))?;
    let state: TrainState =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", state_path.display()))?;
    if state.format != FORMAT {
        bail!(
            "{}: checkpoint format {} is not the supported {FORMAT}",
            state_path.display(),
            state.format
        );
    }
    let model_bytes = read_verified(dir, MODEL_FILE, state.files.get(MODEL_FILE))?;
    let opt_bytes = read_verified(dir, OPTIMIZER_FILE, state.files.get(OPTIMIZER_FILE))?;
    let model =
        tensorfile::from_bytes(&model_bytes, &dir.join(MODEL_FILE).display().to_string())?.tensors;
    let optimizer =
        tensorfile::from_bytes(&opt_bytes, &dir.join(OPTIMIZER_FILE).display().to_string())?
            .tensors;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        state,
        model,
        optimizer,
    })
}

/// The checkpoint a resume starts from: step `from`'s, or the newest.
pub fn resume_point(output_dir: &Path, from: Option<u64>) -> Result<Option<(u64, PathBuf)>> {
    let all = list(output_dir)?;
    let Some(step) = from else {
        return Ok(all.last().cloned());
    };
    match all.iter().find(|(s, _)| *s == step) {
        Some(found) => Ok(Some(found.clone())),
        None => bail!(
            "{} holds no checkpoint of step {step}; it holds {}",
            checkpoints_dir(output_dir).display(),
            steps_held(&all)
        ),
    }
}

/// "steps 200, 400" or "none", for messages.
pub fn steps_held(all: &[(u64, PathBuf)]) -> String {
    if all.is_empty() {
        return "none".into();
    }
    let steps: Vec<String> = all.iter().map(|(s, _)| s.to_string()).collect();
    format!("steps {}", steps.join(", "))
}

/// Moves the checkpoints newer than `step` aside (`step-M.abandoned`), so
/// a run resumed from `step` writes its own: they are kept, not deleted,
/// and no longer listed.
pub fn abandon_after(output_dir: &Path, step: u64) -> Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for (s, dir) in list(output_dir)? {
        if s <= step {
            continue;
        }
        let mut to = dir.with_file_name(format!("{}.abandoned", step_dir_name(s)));
        let mut n = 1;
        while to.exists() {
            n += 1;
            to = dir.with_file_name(format!("{}.abandoned-{n}", step_dir_name(s)));
        }
        fs::rename(&dir, &to)
            .with_context(|| format!("moving {} aside to {}", dir.display(), to.display()))?;
        moved.push(to);
    }
    Ok(moved)
}

/// The resume point's state (no tensors read), if there is one.
fn resume_state(output_dir: &Path, from: Option<u64>) -> Result<Option<TrainState>> {
    let Some((_, dir)) = resume_point(output_dir, from)? else {
        return Ok(None);
    };
    let state_path = dir.join(STATE_FILE);
    let text = fs::read_to_string(&state_path)
        .with_context(|| format!("reading {}", state_path.display()))?;
    let state: TrainState =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", state_path.display()))?;
    Ok(Some(state))
}

/// The newest checkpoint's data position, for callers that seek their data
/// source themselves (`skip_consumed_batches = false`).
pub fn latest_data_position(output_dir: &Path) -> Result<Option<u64>> {
    Ok(resume_state(output_dir, None)?.map(|s| s.batches_consumed))
}

/// [`latest_data_position`] (or step `from`'s) of rank `rank` of `world`
/// ranks taking batches of `batch_size`, also when the checkpoint was
/// written by another number of ranks ([`position_on_layout`]).
pub fn latest_rank_position(
    output_dir: &Path,
    from: Option<u64>,
    rank: usize,
    world: usize,
    batch_size: Option<u64>,
) -> Result<Option<u64>> {
    Ok(
        resume_state(output_dir, from)?.map(|s| match (s.batch_size, batch_size) {
            (Some(old_b), Some(new_b)) if s.world_size != world as u64 => {
                position_on_layout(&s, old_b, world, new_b)
            }
            _ => s
                .rank_positions
                .get(rank)
                .copied()
                .unwrap_or(s.batches_consumed),
        }),
    )
}

/// Where each of `world` ranks taking batches of `new_b` stands in a global
/// stream dealt batch by batch, once `state`'s ranks took theirs of
/// `old_b`: what they took, in sequences, split evenly.
pub fn position_on_layout(state: &TrainState, old_b: u64, world: usize, new_b: u64) -> u64 {
    let taken: u64 = state.rank_positions.iter().sum::<u64>() * old_b;
    taken / (world as u64 * new_b)
}
