//! The pretraining loop: batches from any iterator → forward → TF losses →
//! backward (accumulated) → clip → LAMB/AdamWeightDecay, with checkpoints,
//! exact resume, metrics, TensorBoard events, a progress bar and a plot.
//!
//! Dropout masks come from libtorch's global generator, re-seeded before
//! every micro-batch from (seed, batch index); a resumed run therefore draws
//! the same masks as an uninterrupted one. That generator is process-wide:
//! run one trainer per process.
//!
//! [`train_data_parallel`] runs the same loop on every rank of a c10d
//! process group ([`parallel`]): rank r's k-th batch counts as global batch
//! k·world + r for its dropout seed, and only rank 0 writes checkpoints,
//! metrics, events, the plot and the progress line.
//!
//! Each step of the loop is `step.rs`'s `Run::accumulate` (the step's
//! micro-batches forward and backward) then `Run::reduce_and_step` (the
//! exchange between ranks and the update); `report.rs`'s `Reporter` writes
//! what the step did, and `Saver` the checkpoints.

pub mod checkpoint;
pub mod config;
pub mod interrupt;
pub mod loss_scale;
mod losses;
pub mod metrics;
pub mod parallel;
pub mod plot;
mod report;
mod step;
pub mod tensorboard;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use nezha_stages::Batch;

use crate::eval::{evaluate, EvalMetrics};
use crate::model::{weights, Mode, NezhaForPreTraining};
use crate::optim::Optimizer;
pub use checkpoint::TrainState;
pub use config::{parse_device, LossScaleConfig, Precision, TrainConfig};
use loss_scale::LossScaler;
pub use metrics::StepMetrics;
use parallel::Collectives;
pub use parallel::DataParallel;
use report::Reporter;
use step::{Run, Stepped};

/// Steps in a row with non-finite gradients after which the run stops
/// rather than spin: with fp16 that is dozens of halvings of the loss scale.
const MAX_CONSECUTIVE_SKIPS: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `schedule.total_steps` updates have been applied.
    ReachedTotalSteps,
    /// The iterator ended first (a partial accumulation is not applied).
    DataExhausted,
    /// A stop was asked for ([`interrupt`]): the run ended after a whole
    /// step, with a checkpoint at it.
    Interrupted,
}

/// Held-out batches a run evaluates on ([`crate::eval::evaluate`]) every
/// `every` steps and at its last step; rank 0 evaluates, and writes the
/// last result to `eval_results.txt` as the reference's `--do_eval` does.
pub struct EvalSet {
    pub batches: Vec<Batch>,
    pub every: u64,
}

#[derive(Debug)]
pub struct TrainSummary {
    pub step: u64,
    pub batches_consumed: u64,
    pub skipped_steps: u64,
    pub stopped: StopReason,
    pub last_checkpoint: Option<PathBuf>,
    /// This run's metrics, one per optimizer step attempted.
    pub metrics: Vec<StepMetrics>,
    /// The last evaluation (rank 0 of a run with an [`EvalSet`]).
    pub eval: Option<EvalMetrics>,
}

/// The dropout seed of batch `index`: SplitMix64 of (seed, index).
pub fn dropout_seed(seed: u64, index: u64) -> i64 {
    let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as i64
}

/// Builds the model and optimizer and the state to continue from: a fresh
/// start, or the newest checkpoint when `cfg.resume` (which must have been
/// written by a run of `world_size` processes; `rank` picks its data
/// position).
fn prepare(
    cfg: &TrainConfig,
    rank: usize,
    world_size: usize,
) -> Result<(NezhaForPreTraining, Optimizer, TrainState)> {
    let device = cfg.parse_device()?;
    let existing = checkpoint::list(&cfg.output_dir)?;
    tch::manual_seed(cfg.seed as i64);
    let mut model = NezhaForPreTraining::new(&cfg.model, device)?;
    let mut optimizer = Optimizer::new(
        cfg.optimizer,
        cfg.optimizer_config.clone(),
        model.params.named(),
    );
    let fresh = TrainState {
        format: 0,
        step: 0,
        batches_consumed: 0,
        skipped_steps: 0,
        seed: cfg.seed,
        loss_scaler: (cfg.precision == Precision::Fp16)
            .then(|| LossScaler::new(cfg.loss_scale.clone())),
        model_config: cfg.model.clone(),
        optimizer: cfg.optimizer,
        optimizer_config: cfg.optimizer_config.clone(),
        schedule: cfg.schedule.clone(),
        precision: cfg.precision,
        grad_accumulation: cfg.grad_accumulation,
        world_size: world_size as u64,
        rank_positions: vec![0; world_size],
        batch_size: cfg.batch_size,
        files: Default::default(),
    };
    if !cfg.resume {
        if let Some((step, dir)) = existing.last() {
            bail!(
                "{} already holds checkpoints (newest: step {step}, {}); set resume to continue it, or use another output_dir",
                cfg.output_dir.display(),
                dir.display()
            );
        }
        if let Some(path) = &cfg.init_checkpoint {
            weights::load(&mut model, path)?;
        }
        return Ok((model, optimizer, fresh));
    }
    let (step, dir) =
        checkpoint::resume_point(&cfg.output_dir, cfg.resume_from)?.ok_or_else(|| {
            anyhow!(
                "resume requested but {} holds no checkpoint",
                cfg.output_dir.display()
            )
        })?;
    let loaded = match checkpoint::load(&dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            // Never fall back silently: say what there is to go back to.
            let older: Vec<_> = existing
                .iter()
                .filter(|(s, _)| *s < step)
                .cloned()
                .collect();
            let way = match older.last() {
                Some((s, _)) => format!(
                    "older checkpoints: {}; to continue from one, run again with \
                     --resume-from {s} (the newer ones are then moved aside as step-N.abandoned)",
                    checkpoint::steps_held(&older)
                ),
                None => "there is no older checkpoint to resume from".to_string(),
            };
            return Err(e.context(format!(
                "the checkpoint of step {step} ({}) cannot be resumed; {way}",
                dir.display()
            )));
        }
    };
    if cfg.resume_from.is_some() && rank == 0 {
        for moved in checkpoint::abandon_after(&cfg.output_dir, step)? {
            eprintln!("moved aside: {}", moved.display());
        }
    }
    let st = &loaded.state;
    let here = |what: &str| {
        format!(
            "checkpoint {} was written with another {what}",
            dir.display()
        )
    };
    if let Some(diff) = weights::config_difference(&st.model_config, &cfg.model) {
        bail!("{}: {diff}", here("model config"));
    }
    if st.optimizer != cfg.optimizer || st.optimizer_config != cfg.optimizer_config {
        bail!(
            "{} ({:?} {:?})",
            here("optimizer"),
            st.optimizer,
            st.optimizer_config
        );
    }
    if st.precision != cfg.precision || st.seed != cfg.seed {
        bail!(
            "{}: precision {:?} seed {} there; an exact resume needs the same",
            here("precision or seed"),
            st.precision,
            st.seed
        );
    }
    let same_layout =
        st.world_size == world_size as u64 && st.grad_accumulation == cfg.grad_accumulation;
    let relayout = if same_layout {
        None
    } else {
        Some(check_relayout(st, cfg, world_size).with_context(|| {
            format!(
                "{} was written by a run of {} process(es) and this run has {world_size} \
                 (grad_accumulation {} there, {} here); to start over on this layout from its \
                 weights only, use a new output_dir with init_checkpoint = \"{}\"",
                dir.display(),
                st.world_size,
                st.grad_accumulation,
                cfg.grad_accumulation,
                dir.join(checkpoint::MODEL_FILE).display()
            )
        })?)
    };
    weights::load_tensors(&mut model, loaded.model)
        .with_context(|| format!("loading {}", dir.display()))?;
    optimizer
        .moments_mut()
        .load(&loaded.optimizer)
        .with_context(|| format!("loading {}", dir.display()))?;
    let mut state = loaded.state;
    if let Some((old_b, new_b)) = relayout {
        let per_rank = checkpoint::position_on_layout(&state, old_b, world_size, new_b);
        state.batches_consumed = per_rank;
        state.rank_positions = vec![per_rank; world_size];
        state.world_size = world_size as u64;
        state.grad_accumulation = cfg.grad_accumulation;
    } else if let Some(&position) = state.rank_positions.get(rank) {
        state.batches_consumed = position;
    }
    state.batch_size = cfg.batch_size.or(state.batch_size);
    // The schedule may be extended on resume; everything else must match.
    state.schedule = cfg.schedule.clone();
    if let Some(s) = &mut state.loss_scaler {
        s.config = cfg.loss_scale.clone();
    }
    Ok((model, optimizer, state))
}

/// Whether a checkpoint of another process layout can continue here: the
/// data must be one global stream and the global batch the same, so that
/// every step trains on the same sequences as before.
/// Returns the old and the new batch size.
fn check_relayout(st: &TrainState, cfg: &TrainConfig, world_size: usize) -> Result<(u64, u64)> {
    if !cfg.global_data_order {
        bail!(
            "static masking's streaming masks and batches depend on the processes and \
             workers that make them, so the stream cannot continue exactly on another layout: \
             resume with the same number of processes and grad_accumulation, or use \
             [masking] kind = \"dynamic\" or TFRecord files ([train] tfrecords), whose order \
             is the same on any number of processes"
        );
    }
    let (Some(old_b), Some(new_b)) = (st.batch_size, cfg.batch_size) else {
        bail!("the checkpoint does not record its batch size, so its position cannot be moved to another layout");
    };
    let old = st.world_size * old_b * st.grad_accumulation as u64;
    let new = world_size as u64 * new_b * cfg.grad_accumulation as u64;
    if old != new {
        bail!(
            "the global batch differs: {} × batch {old_b} × accumulation {} = {old} sequences per \
             step there, {world_size} × {new_b} × {} = {new} here; resuming on another number of \
             processes needs the same global batch (change batch_size or grad_accumulation)",
            st.world_size,
            st.grad_accumulation,
            cfg.grad_accumulation
        );
    }
    Ok((old_b, new_b))
}

/// Trains `cfg.model` on `batches` until `cfg.schedule.total_steps` updates
/// or the end of the data, whichever comes first.
pub fn train<I>(cfg: &TrainConfig, batches: I) -> Result<TrainSummary>
where
    I: IntoIterator<Item = Result<Batch>>,
{
    train_data_parallel(cfg, batches, None)
}

/// [`train`] as one rank of a data-parallel run when `dp` is given: `batches`
/// is this rank's share of the data, every rank takes the same number of
/// batches per step, and the run stops for all when one rank's data ends.
/// With a world of one process (or `None`) it is exactly [`train`].
pub fn train_data_parallel<I>(
    cfg: &TrainConfig,
    batches: I,
    dp: Option<&DataParallel>,
) -> Result<TrainSummary>
where
    I: IntoIterator<Item = Result<Batch>>,
{
    train_and_evaluate(cfg, batches, dp, None)
}

/// [`train_data_parallel`], evaluating on `eval` as it goes.
pub fn train_and_evaluate<I>(
    cfg: &TrainConfig,
    batches: I,
    dp: Option<&DataParallel>,
    eval: Option<&EvalSet>,
) -> Result<TrainSummary>
where
    I: IntoIterator<Item = Result<Batch>>,
{
    let (rank, world) = dp.map_or((0, 1), |d| (d.rank(), d.world_size()));
    let leader = rank == 0;
    let here = |e: anyhow::Error| {
        if world > 1 {
            e.context(format!("rank {rank}/{world}"))
        } else {
            e
        }
    };
    cfg.validate()?;
    if let Some(n) = cfg.threads {
        tch::set_num_threads(n);
    }
    std::fs::create_dir_all(&cfg.output_dir)
        .with_context(|| format!("creating {}", cfg.output_dir.display()))?;
    let (model, mut optimizer, mut state) = prepare(cfg, rank, world).map_err(here)?;
    let params = model.params.handles();
    let run = Run {
        cfg,
        model: &model,
        mode: Mode {
            train: true,
            compute: cfg.precision.compute_kind(),
        },
        device: model.device(),
        params: &params,
        rank,
        world,
        collectives: dp.map(|d| Collectives::start(d, &params)).transpose()?,
        lr_factor: if cfg.scale_lr_by_world_size {
            world as f64
        } else {
            1.0
        },
    };

    let mut batches = batches.into_iter();
    if cfg.resume && cfg.skip_consumed_batches {
        skip_consumed(&mut batches, state.batches_consumed)?;
    }
    let mut reporter = Reporter::open(cfg, state.step, leader, world, state.loss_scaler.is_some())?;
    let mut saver = Saver {
        leader,
        last_saved: cfg.resume.then_some(state.step),
        last_checkpoint: None,
    };
    let started = Instant::now();
    let mut run_metrics = Vec::new();
    let mut consecutive_skips = 0;
    let mut stopped = StopReason::ReachedTotalSteps;
    let evaluates = eval.filter(|_| leader);
    let mut last_eval: Option<EvalMetrics> = None;
    let evaluate_now = |reporter: &mut Reporter, step: u64| -> Result<Option<EvalMetrics>> {
        let Some(e) = evaluates else {
            return Ok(None);
        };
        let m = evaluate(&model, &e.batches, run.mode.compute, step)?;
        reporter.eval(&m)?;
        Ok(Some(m))
    };

    while state.step < cfg.schedule.total_steps {
        let t0 = Instant::now();
        let consumed_before = state.batches_consumed;
        let scale = state.loss_scaler.as_ref().map_or(1.0, |s| s.scale);
        let acc = run.accumulate(&mut batches, &mut state, scale)?;
        let wait = acc.wait;
        let done = match run.reduce_and_step(acc, &mut optimizer, &mut state, scale)? {
            Stepped::Done(done) => done,
            Stepped::DataEnded {
                dropped,
                ranks_short,
            } => {
                if dropped > 0 {
                    reporter.say(format!(
                        "data ended inside an accumulation: the last {dropped} batch(es) were not applied"
                    ));
                }
                if world > 1 {
                    reporter.say(format!(
                        "{ranks_short} of {world} ranks ran out of data at step {}: every rank stops",
                        state.step
                    ));
                }
                state.batches_consumed = consumed_before;
                stopped = StopReason::DataExhausted;
                break;
            }
        };
        if done.clip.is_finite() {
            consecutive_skips = 0;
        } else {
            consecutive_skips += 1;
            reporter.say(format!(
                "step {}: non-finite gradients (loss scale {scale}); update skipped, weights unchanged",
                state.step
            ));
        }
        let means = done
            .sums
            .divided_by(cfg.grad_accumulation as f64 * world as f64);
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        let m = StepMetrics {
            step: state.step,
            loss: means.total,
            mlm_loss: means.mlm,
            nsp_loss: means.nsp,
            mlm_acc: means.mlm_acc,
            nsp_acc: means.nsp_acc,
            lr: done.lr,
            grad_norm: done.clip.norm,
            skipped: !done.clip.is_finite(),
            loss_scale: scale,
            seq_per_s: done.sequences / secs,
            data_wait_frac: wait.as_secs_f64() / secs,
            batches: state.batches_consumed,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        reporter.step(&m)?;
        run_metrics.push(m);

        if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
            bail!(
                "{consecutive_skips} steps in a row had non-finite gradients at step {}; stopping (last checkpoint: {})",
                state.step,
                saver
                    .last_checkpoint
                    .as_ref()
                    .map_or("none".to_string(), |p| p.display().to_string())
            );
        }
        if eval.is_some_and(|e| state.step % e.every == 0 || state.step == cfg.schedule.total_steps)
        {
            last_eval = evaluate_now(&mut reporter, state.step)?.or(last_eval);
        }
        if done.clip.is_finite() && state.step % cfg.save_every == 0 {
            saver.save(cfg, &model, &optimizer, &state)?;
        }
        if done.interrupted {
            reporter.say(format!(
                "stop requested: ending after step {} with a checkpoint",
                state.step
            ));
            stopped = StopReason::Interrupted;
            break;
        }
    }
    // The last step is evaluated, unless this run took none (resuming a
    // finished run): that step's evaluation is already written. An
    // interrupted run only checkpoints, to be quick about it.
    if stopped != StopReason::Interrupted
        && !run_metrics.is_empty()
        && last_eval.is_none_or(|e| e.global_step != state.step)
    {
        last_eval = evaluate_now(&mut reporter, state.step)?.or(last_eval);
    }
    if let Some(e) = &last_eval {
        // The reference's `--do_eval` output, for the run's last step.
        nezha_stages::atomic_file::write_file(
            &cfg.output_dir.join("eval_results.txt"),
            e.to_results_txt().as_bytes(),
        )?;
    }
    if saver.last_saved != Some(state.step) {
        saver.save(cfg, &model, &optimizer, &state)?;
    }
    if let Some(c) = &run.collectives {
        // Every rank returns once the final checkpoint is complete.
        c.barrier("waiting for rank 0's final checkpoint")?;
    }
    reporter.finish()?;
    Ok(TrainSummary {
        step: state.step,
        batches_consumed: state.batches_consumed,
        skipped_steps: state.skipped_steps,
        stopped,
        last_checkpoint: saver.last_checkpoint,
        metrics: run_metrics,
        eval: last_eval,
    })
}

/// On resume: takes the `consumed` batches the checkpoint had already used.
fn skip_consumed<I>(batches: &mut I, consumed: u64) -> Result<()>
where
    I: Iterator<Item = Result<Batch>>,
{
    for i in 0..consumed {
        match batches.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.context(format!("skipping consumed batch {i}"))),
            None => bail!(
                "data ended after {i} batches while skipping the {consumed} the checkpoint had consumed"
            ),
        }
    }
    Ok(())
}

/// Checkpoints of one run: only rank 0 writes them (every rank reads the
/// same directory on resume), every rank keeps count of the step saved.
struct Saver {
    leader: bool,
    /// The step of the newest checkpoint (the resumed one at first).
    last_saved: Option<u64>,
    /// The newest checkpoint this run wrote.
    last_checkpoint: Option<PathBuf>,
}

impl Saver {
    fn save(
        &mut self,
        cfg: &TrainConfig,
        model: &NezhaForPreTraining,
        optimizer: &Optimizer,
        state: &TrainState,
    ) -> Result<()> {
        if self.leader {
            self.last_checkpoint = Some(checkpoint::save(
                &cfg.output_dir,
                model,
                optimizer,
                state.clone(),
                cfg.keep_checkpoints,
            )?);
        }
        self.last_saved = Some(state.step);
        Ok(())
    }
}
