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

pub mod checkpoint;
pub mod config;
pub mod loss_scale;
pub mod metrics;
pub mod parallel;
pub mod plot;
pub mod tensorboard;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nezha_stages::Batch;
use tch::{Kind, Tensor};

use crate::model::{pretraining_loss, weights, Mode, NezhaForPreTraining, PreTrainingInputs};
use crate::optim::Optimizer;
pub use checkpoint::TrainState;
pub use config::{LossScaleConfig, Precision, TrainConfig};
use loss_scale::LossScaler;
pub use metrics::StepMetrics;
pub use parallel::DataParallel;
use parallel::StepStats;

/// Steps in a row with non-finite gradients after which the run stops
/// rather than spin: with fp16 that is dozens of halvings of the loss scale.
const MAX_CONSECUTIVE_SKIPS: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `schedule.total_steps` updates have been applied.
    ReachedTotalSteps,
    /// The iterator ended first (a partial accumulation is not applied).
    DataExhausted,
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
    let (_, dir) = existing.last().ok_or_else(|| {
        anyhow!(
            "resume requested but {} holds no checkpoint",
            cfg.output_dir.display()
        )
    })?;
    let loaded = checkpoint::load(dir)?;
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
    if st.grad_accumulation != cfg.grad_accumulation
        || st.precision != cfg.precision
        || st.seed != cfg.seed
    {
        bail!(
            "{}: grad_accumulation {} precision {:?} seed {} there; an exact resume needs the same",
            here("grad_accumulation, precision or seed"),
            st.grad_accumulation,
            st.precision,
            st.seed
        );
    }
    if st.world_size != world_size as u64 {
        bail!(
            "{} was written by a run of {} process(es) and this run has {world_size}: each \
             process's data position belongs to its rank, so an exact resume needs the same \
             world size (e.g. `nezha launch --nproc-per-node {}`). To continue with {world_size}, \
             start a new output_dir with init_checkpoint = \"{}\" (weights only: the data \
             starts over and the optimizer moments are not carried)",
            dir.display(),
            st.world_size,
            st.world_size,
            dir.join(checkpoint::MODEL_FILE).display()
        );
    }
    weights::load_tensors(&mut model, loaded.model)
        .with_context(|| format!("loading {}", dir.display()))?;
    optimizer
        .moments_mut()
        .load(&loaded.optimizer)
        .with_context(|| format!("loading {}", dir.display()))?;
    let mut state = loaded.state;
    if let Some(&position) = state.rank_positions.get(rank) {
        state.batches_consumed = position;
    }
    // The schedule may be extended on resume; everything else must match.
    state.schedule = cfg.schedule.clone();
    if let Some(s) = &mut state.loss_scaler {
        s.config = cfg.loss_scale.clone();
    }
    Ok((model, optimizer, state))
}

fn save(
    cfg: &TrainConfig,
    model: &NezhaForPreTraining,
    optimizer: &Optimizer,
    state: &TrainState,
) -> Result<PathBuf> {
    checkpoint::save(
        &cfg.output_dir,
        model,
        optimizer,
        state.clone(),
        cfg.keep_checkpoints,
    )
}

fn progress_bar(cfg: &TrainConfig, step: u64, leader: bool) -> ProgressBar {
    let target = if cfg.progress_bar && leader {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(cfg.schedule.total_steps), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} step {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(step);
    bar
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
    let (rank, world) = dp.map_or((0, 1), |d| (d.rank(), d.world_size()));
    let leader = rank == 0;
    let here = |e: anyhow::Error| {
        if world > 1 {
            e.context(format!("rank {rank}/{world}"))
        } else {
            e
        }
    };
    let lr_factor = if cfg.scale_lr_by_world_size {
        world as f64
    } else {
        1.0
    };
    cfg.validate()?;
    if let Some(n) = cfg.threads {
        tch::set_num_threads(n);
    }
    std::fs::create_dir_all(&cfg.output_dir)
        .with_context(|| format!("creating {}", cfg.output_dir.display()))?;
    let (model, mut optimizer, mut state) = prepare(cfg, rank, world).map_err(here)?;
    let device = model.device();
    let mode = Mode {
        train: true,
        compute: cfg.precision.compute_kind(),
    };
    let params = model.params.handles();
    if let Some(d) = dp {
        d.synchronise_parameters(&params)?;
    }
    let reducer = dp.map(|d| d.reducer(&params)).transpose()?;

    let mut batches = batches.into_iter();
    if cfg.resume && cfg.skip_consumed_batches {
        for i in 0..state.batches_consumed {
            match batches.next() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.context(format!("skipping consumed batch {i}"))),
                None => bail!(
                    "data ended after {i} batches while skipping the {} the checkpoint had consumed",
                    state.batches_consumed
                ),
            }
        }
    }

    let mut log = if leader {
        Some(metrics::MetricsLog::open(
            &cfg.output_dir.join("metrics.jsonl"),
            Some(state.step),
        )?)
    } else {
        None
    };
    let mut events = if cfg.tensorboard && leader {
        Some(tensorboard::create(&cfg.output_dir.join("tensorboard"))?.1)
    } else {
        None
    };
    let bar = progress_bar(cfg, state.step, leader);
    // Where the bar cannot draw (a log file, a launcher's pipe), a plain
    // line every twentieth of the run.
    let plain_every = (cfg.progress_bar && leader && !std::io::stderr().is_terminal())
        .then(|| (cfg.schedule.total_steps / 20).max(1));
    // Notes for the user: above the bar, or plain lines where it cannot draw;
    // rank 0 speaks for all.
    let say = |msg: String| match (leader && cfg.progress_bar, plain_every) {
        (false, _) => {}
        (true, Some(_)) => eprintln!("{msg}"),
        (true, None) => bar.println(msg),
    };
    let accum = cfg.grad_accumulation as u64;
    let started = Instant::now();
    let mut last_saved = cfg.resume.then_some(state.step);
    let mut last_checkpoint = None;
    let mut run_metrics = Vec::new();
    let mut consecutive_skips = 0;
    let mut stopped = StopReason::ReachedTotalSteps;

    while state.step < cfg.schedule.total_steps {
        let t0 = Instant::now();
        let mut wait = Duration::ZERO;
        let consumed_before = state.batches_consumed;
        let scale = state.loss_scaler.as_ref().map_or(1.0, |s| s.scale);
        let mut sums = Tensor::zeros([5], (Kind::Double, device));
        let mut seqs = 0usize;
        let mut got = 0;
        while got < accum {
            let tw = Instant::now();
            let next = batches.next();
            wait += tw.elapsed();
            let Some(batch) = next else { break };
            let index = state.batches_consumed;
            let batch = batch.with_context(|| format!("reading batch {index}"))?;
            let inputs = PreTrainingInputs::from_batch(
                &batch,
                cfg.model.vocab_size,
                cfg.model.type_vocab_size,
                device,
            )
            .with_context(|| format!("batch {index}"))?;
            tch::manual_seed(dropout_seed(cfg.seed, index * world as u64 + rank as u64));
            let out = model.forward(&inputs, mode);
            let loss = pretraining_loss(&out, &inputs);
            if got + 1 == accum && cfg.overlap_all_reduce {
                if let Some(r) = &reducer {
                    r.arm();
                }
            }
            (&loss.total * (scale / accum as f64)).backward();
            let parts = [
                &loss.total,
                &loss.mlm,
                &loss.nsp,
                &loss.mlm_accuracy,
                &loss.nsp_accuracy,
            ];
            sums += Tensor::stack(&parts.map(|t| t.detach().to_kind(Kind::Double)), 0);
            seqs += batch.size;
            state.batches_consumed += 1;
            got += 1;
        }
        let mut stats = StepStats {
            full: (got == accum) as u64 as f64,
            sums: [0.0; 5],
            sequences: seqs as f64,
            positions: vec![0.0; world],
            device,
        };
        stats.positions[rank] = state.batches_consumed as f64;
        // Before the statistics: every rank issues its collectives in the
        // same order, and the full ranks' buckets may already be under way.
        if let (Some(d), Some(r)) = (dp, &reducer) {
            d.average(r, got == accum, state.step)?;
        }
        let sums = match dp {
            Some(d) => {
                let t = sums.to_device(tch::Device::Cpu);
                stats.sums = <[f64; 5]>::try_from(Vec::<f64>::try_from(&t)?)
                    .map_err(|v| anyhow!("{} loss sums", v.len()))?;
                stats = d.reduce(&stats, state.step)?;
                Tensor::from_slice(&stats.sums)
            }
            None => sums,
        };
        if stats.full < world as f64 {
            if got > 0 {
                say(format!(
                    "data ended inside an accumulation: the last {got} batch(es) were not applied"
                ));
            }
            if world > 1 {
                say(format!(
                    "{} of {world} ranks ran out of data at step {}: every rank stops",
                    world - stats.full as usize,
                    state.step
                ));
            }
            optimizer.zero_grads(&params);
            state.batches_consumed = consumed_before;
            stopped = StopReason::DataExhausted;
            break;
        }
        if dp.is_some() {
            state.rank_positions = stats.positions.iter().map(|&p| p as u64).collect();
        } else {
            state.rank_positions = vec![state.batches_consumed];
        }
        let lr = cfg.schedule.lr(state.step) * lr_factor;
        let clip = optimizer.clip_and_step(&params, scale, cfg.max_grad_norm, lr, state.step)?;
        if clip.is_finite() {
            state.step += 1;
            consecutive_skips = 0;
        } else {
            state.skipped_steps += 1;
            consecutive_skips += 1;
            say(format!(
                "step {}: non-finite gradients (loss scale {scale}); update skipped, weights unchanged",
                state.step
            ));
        }
        if let Some(s) = &mut state.loss_scaler {
            s.update(clip.is_finite());
        }
        optimizer.zero_grads(&params);

        let means =
            Vec::<f64>::try_from(sums.to_device(tch::Device::Cpu) / (accum as f64 * world as f64))?;
        let seqs = stats.sequences;
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        let m = StepMetrics {
            step: state.step,
            loss: means[0],
            mlm_loss: means[1],
            nsp_loss: means[2],
            mlm_acc: means[3],
            nsp_acc: means[4],
            lr,
            grad_norm: clip.norm,
            skipped: !clip.is_finite(),
            loss_scale: scale,
            seq_per_s: seqs / secs,
            data_wait_frac: wait.as_secs_f64() / secs,
            batches: state.batches_consumed,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        if let Some(log) = &mut log {
            log.write(&m)?;
        }
        if let Some(ev) = &mut events {
            let mut scalars = vec![
                ("train/loss", m.loss),
                ("train/mlm_loss", m.mlm_loss),
                ("train/nsp_loss", m.nsp_loss),
                ("train/mlm_acc", m.mlm_acc),
                ("train/nsp_acc", m.nsp_acc),
                ("train/lr", m.lr),
                ("perf/seq_per_s", m.seq_per_s),
                ("perf/data_wait_frac", m.data_wait_frac),
            ];
            if let Some(n) = m.grad_norm {
                scalars.push(("train/grad_norm", n));
            }
            if state.loss_scaler.is_some() {
                scalars.push(("train/loss_scale", m.loss_scale));
            }
            ev.scalars(m.step as i64, tensorboard::now(), &scalars)?;
        }
        let ranks = if world > 1 {
            format!(" ({world} ranks)")
        } else {
            String::new()
        };
        let message = format!(
            "loss {:.4} mlm_acc {:.3} nsp_acc {:.3} lr {:.2e} {:.1} seq/s{ranks}",
            m.loss, m.mlm_acc, m.nsp_acc, m.lr, m.seq_per_s
        );
        if let Some(every) = plain_every {
            if state.step % every == 0 || state.step == cfg.schedule.total_steps {
                eprintln!("step {}/{} {message}", state.step, cfg.schedule.total_steps);
            }
        }
        bar.set_position(state.step);
        bar.set_message(message);
        run_metrics.push(m);

        if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
            bail!(
                "{consecutive_skips} steps in a row had non-finite gradients at step {}; stopping (last checkpoint: {})",
                state.step,
                last_checkpoint
                    .as_ref()
                    .map_or("none".to_string(), |p: &PathBuf| p.display().to_string())
            );
        }
        // Only rank 0 writes; every rank reads the same directory on resume.
        if clip.is_finite() && state.step % cfg.save_every == 0 {
            if leader {
                last_checkpoint = Some(save(cfg, &model, &optimizer, &state)?);
            }
            last_saved = Some(state.step);
        }
    }
    if last_saved != Some(state.step) && leader {
        last_checkpoint = Some(save(cfg, &model, &optimizer, &state)?);
    }
    if let Some(d) = dp {
        // Every rank returns once the final checkpoint is complete.
        d.barrier("waiting for rank 0's final checkpoint")?;
    }
    bar.finish_and_clear();
    if cfg.plot && leader {
        let all = metrics::read(&cfg.output_dir.join("metrics.jsonl"))?;
        plot::write_png(
            &checkpoint::checkpoints_dir(&cfg.output_dir).join("training.png"),
            &all,
        )?;
    }
    Ok(TrainSummary {
        step: state.step,
        batches_consumed: state.batches_consumed,
        skipped_steps: state.skipped_steps,
        stopped,
        last_checkpoint,
        metrics: run_metrics,
    })
}
