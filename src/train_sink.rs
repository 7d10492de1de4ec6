//! `[sink] kind = "train"`: the trainer as the last operator of the graph.
//! It takes batches from the live stream's bounded channel, or from
//! TFRecord files, and reads its settings from `[train]`.
//!
//! Started with torchrun's environment (`nezha launch` sets it), the process
//! is one rank of a data-parallel run: it joins the others ([`join`]), runs
//! its share of the dataflow's worker slots ([`Shard`]) or every
//! world-th batch of the TFRecord files, and trains with its gradients
//! averaged over all ranks.

use anyhow::Context as _;
use nezha_pipeline::interrupt::Interrupted;
use nezha_pipeline::rank_env::RankEnv;
use nezha_pipeline::registry::{Built, NoParams, OwnedParams, OwnedSection, Registry, Settings};
use nezha_pipeline::resolve::Generation;
use nezha_pipeline::sink::{Consumes, Sink};
use nezha_pipeline::{start_held_out, start_shard, Plan, Resolved, RunOptions, Shard};
use nezha_stages::error::Result;
use nezha_stages::params::Params;
use nezha_stages::Batch;
use nezha_train::optim::OptimizerKind;
use nezha_train::trainer::{
    train_and_evaluate, DataParallel, EvalSet, StopReason, TrainConfig, TrainSummary,
};

use crate::eval_section::{parse_eval, EvalSection, EvalSource, EvalToml};
use crate::rank_join::{join, Joined};
use crate::stream_size::check_stream_holds;
use crate::tfrecord_batches::TfRecordBatches;
use crate::train_section::{parse_train, TrainInput, TrainSection, TrainSource, TrainToml};

pub fn register(r: &mut Registry) {
    r.sink.add(
        "train",
        &[
            OwnedSection::of::<TrainToml>("train"),
            OwnedSection::of::<EvalToml>("eval"),
        ],
        build,
    );
}

/// The trainer, configured.
pub struct TrainSink {
    pub train: TrainSection,
    pub eval: Option<EvalSection>,
}

fn build(
    p: &Params,
    _: NoParams,
    owned: &OwnedParams,
    resolved: &Resolved,
) -> Result<Built<Box<dyn Sink>>> {
    let Some(train) = owned.get("train").copied().flatten() else {
        return Err(p.error(
            p.span.clone(),
            "[sink] kind = \"train\" needs a [train] section".into(),
        ));
    };
    let train = parse_train(train, train.parse()?, resolved)?;
    let eval = match owned.get("eval").copied().flatten() {
        None => None,
        Some(p) => {
            let eval = parse_eval(p, p.parse()?, resolved, train.config.save_every)?;
            if let (EvalSource::Holdout(_), TrainSource::TfRecords(_)) =
                (&eval.source, &train.input.source)
            {
                return Err(p.error(
                    p.span.clone(),
                    "[eval] holdout holds documents out of the live stream, but [train] reads \
                     tfrecords: give [eval] tfrecords instead"
                        .into(),
                ));
            }
            Some(eval)
        }
    };
    Ok(Built::new(
        Box::new(TrainSink { train, eval }),
        Settings::new(),
    ))
}

impl Sink for TrainSink {
    fn consumes(&self) -> Consumes {
        match self.train.input.source {
            TrainSource::Stream => Consumes::Batches,
            TrainSource::TfRecords(_) => Consumes::Nothing,
        }
    }

    fn run(&self, plan: &Plan, options: &RunOptions) -> anyhow::Result<()> {
        let mut config = self.train.config.clone();
        config.resume = options.resume;
        config.resume_from = options.resume_from;
        run(plan, &config, &self.train.input, self.eval.as_ref())
    }

    fn holdout(&self) -> Option<f64> {
        match self.eval.as_ref()?.source {
            EvalSource::Holdout(f) => Some(f),
            EvalSource::TfRecords(_) => None,
        }
    }

    fn owned_settings(&self) -> Vec<(&'static str, Settings)> {
        let TrainSection {
            config: c,
            input,
            model,
        } = &self.train;
        let files = match &input.source {
            TrainSource::Stream => None,
            TrainSource::TfRecords(f) => Some(f),
        };
        let optimizer = match c.optimizer {
            OptimizerKind::Lamb => "lamb",
            OptimizerKind::AdamWeightDecay => "adam",
        };
        // Keys as `[train]` spells them, so the printed plan runs as it is.
        let settings = Settings::new()
            .set("model", model)
            .set("output_dir", &c.output_dir)
            .set("steps", c.schedule.total_steps)
            .set("warmup_steps", c.schedule.warmup_steps)
            .set("learning_rate", c.schedule.init_lr)
            .set("decay_power", c.schedule.power)
            .set("optimizer", optimizer)
            .set("weight_decay", c.optimizer_config.weight_decay)
            .set("epsilon", c.optimizer_config.epsilon)
            .set("max_grad_norm", c.max_grad_norm)
            .set("grad_accumulation", c.grad_accumulation)
            .set("device", &c.device)
            .set("precision", c.precision)
            .set("save_every", c.save_every)
            .set("keep_checkpoints", c.keep_checkpoints)
            .set("threads", c.threads)
            .set("init_checkpoint", &c.init_checkpoint)
            .set("tensorboard", c.tensorboard)
            .set("plot", c.plot)
            .set("tfrecords", files)
            .set("stop_after", input.stop_at_step)
            .set("collective_timeout_s", input.collective_timeout.as_secs())
            .set("scale_lr_by_world_size", c.scale_lr_by_world_size)
            .set("overlap_all_reduce", c.overlap_all_reduce);
        let mut sections = vec![("train", settings)];
        if let Some(e) = &self.eval {
            sections.push(("eval", e.settings()));
        }
        sections
    }
}

fn run(
    plan: &Plan,
    cfg: &TrainConfig,
    input: &TrainInput,
    eval: Option<&EvalSection>,
) -> anyhow::Result<()> {
    // The first SIGINT/SIGTERM ends the run after its step, checkpointed.
    nezha_pipeline::interrupt::install(nezha_train::trainer::interrupt::flag())?;
    let Some(env) = RankEnv::from_env()? else {
        // One process: the seed's one-device script picks it with DEVICE_ID.
        let mut cfg = cfg.clone();
        if let (Some(d), "cuda") = (RankEnv::single_device()?, cfg.device.trim()) {
            cfg.device = format!("cuda:{d}");
        }
        return run_rank(plan, &cfg, input, eval, None);
    };
    let who = env.who();
    if plan.resolved.generation == Generation::Reference
        && matches!(input.source, TrainSource::Stream)
    {
        anyhow::bail!(
            "{who}: [instances] kind = \"reference\" runs on one worker of one process; \
             data-parallel training streams with kind = \"streaming\", or reads tfrecords"
        );
    }
    let mut cfg = cfg.clone();
    let cuda = cfg.parse_device()?.is_cuda();
    if cuda && cfg.device.trim() == "cuda" {
        // Each process binds its own device.
        cfg.device = format!("cuda:{}", env.local_rank);
    }
    if !cuda && cfg.threads.is_none() {
        // The machine's cores are shared by its ranks, as torchrun's
        // OMP_NUM_THREADS does.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cfg.threads = Some((cores / env.local_world_size).max(1) as i32);
    }
    let joined = join(
        &env,
        plan.file(),
        plan.spec.source.as_bytes(),
        cuda,
        input.collective_timeout,
    )?;
    let result = run_rank(plan, &cfg, input, eval, Some(&joined));
    if let Err(e) = &result {
        // The others' diagnosis then says why this rank left.
        joined
            .heartbeat
            .leave(&format!("failed: {}", format!("{e:#}").replace('\n', " ")));
    }
    result
}

fn run_rank(
    plan: &Plan,
    cfg: &TrainConfig,
    input: &TrainInput,
    eval: Option<&EvalSection>,
    joined: Option<&Joined>,
) -> anyhow::Result<()> {
    let (rank, world) = joined.map_or((0, 1), |j| (j.env.rank, j.env.world_size));
    let dp = joined.map(|j| DataParallel {
        group: &j.group,
        bucket_bytes: nezha_c10d::DEFAULT_BUCKET_BYTES,
        heartbeat: Some(&j.heartbeat),
    });
    // Rank 0 evaluates (every rank holds the same weights).
    let eval_set = match eval.filter(|_| rank == 0) {
        Some(e) => Some(eval_set(plan, e)?),
        None => None,
    };
    let train = |batches: &mut dyn Iterator<Item = anyhow::Result<Batch>>| {
        train_and_evaluate(cfg, batches, dp.as_ref(), eval_set.as_ref())
    };
    // `stop_after` ends the data where that step ends; the trainer then
    // checkpoints, and a resumed run skips what this one consumed.
    let limit = match input.stop_at_step {
        Some(k) => {
            let done = nezha_train::trainer::checkpoint::latest_rank_position(
                &cfg.output_dir,
                cfg.resume_from,
                rank,
                world,
                cfg.batch_size,
            )?;
            let per_step = cfg.grad_accumulation as u64;
            let start = if cfg.resume { done.unwrap_or(0) } else { 0 };
            Some((start + k * per_step) as usize)
        }
        None => None,
    };
    let limit = limit.unwrap_or(usize::MAX);
    let summary = match &input.source {
        TrainSource::Stream => {
            let shard = Shard {
                index: rank,
                count: world,
            };
            let per_step = cfg.grad_accumulation as u64;
            check_stream_holds(
                plan,
                shard,
                &cfg.output_dir,
                cfg.schedule.total_steps,
                per_step,
            )?;
            let mut running = start_shard::<Batch>(plan, shard)?;
            let result = train(&mut running.items.by_ref().map(Ok).take(limit));
            // The trainer may stop before the stream ends: ask the workers to
            // stop too, then collect their errors (a data error wins).
            running.stop();
            let data = running.finish();
            let summary = result?;
            data?;
            summary
        }
        TrainSource::TfRecords(files) => {
            // Repeated and shuffled from the seed, the same stream on every
            // rank; rank r takes its batches r, r + world, …
            let (b, seq, preds) = batch_shape(plan)?;
            let batches =
                TfRecordBatches::for_rank(files.clone(), cfg.seed, b, seq, preds, rank, world);
            train(&mut batches.take(limit))?
        }
    };
    if rank == 0 {
        report(cfg, &summary);
    }
    if summary.stopped == StopReason::Interrupted {
        return Err(Interrupted(format!(
            "stopped after step {} with a checkpoint; --resume continues",
            summary.step
        ))
        .into());
    }
    Ok(())
}

/// The plan's batch size, sequence length and predictions per sequence,
/// for reading TFRecord files.
fn batch_shape(plan: &Plan) -> anyhow::Result<(usize, usize, usize)> {
    let batch_size = plan
        .resolved
        .batching
        .map(|b| b.batch_size)
        .context("reading TFRecords needs [batching] batch_size")?;
    Ok((
        batch_size,
        plan.resolved.instances.max_seq_length,
        plan.resolved.masking.max_predictions_per_seq,
    ))
}

/// The fixed batches `[eval]` names: the first of the held-out stream or
/// of its TFRecord files.
fn eval_set(plan: &Plan, e: &EvalSection) -> anyhow::Result<EvalSet> {
    let batches: Vec<Batch> = match &e.source {
        EvalSource::Holdout(_) => {
            let mut running = start_held_out(plan)?;
            let batches: Vec<Batch> = running.items.by_ref().take(e.batches).collect();
            running.stop();
            running.finish()?;
            batches
        }
        EvalSource::TfRecords(files) => {
            let (b, seq, preds) = batch_shape(plan)?;
            TfRecordBatches::new(files.clone(), b, seq, preds)
                .take(e.batches)
                .collect::<anyhow::Result<_>>()?
        }
    };
    if batches.is_empty() {
        anyhow::bail!(
            "{}: [eval] gave no complete batch of {} sequences; hold out more (holdout) or \
             give more records",
            plan.file().display(),
            plan.resolved.batching.map_or(0, |b| b.batch_size)
        );
    }
    Ok(EvalSet {
        batches,
        every: e.every,
    })
}

fn report(cfg: &TrainConfig, s: &TrainSummary) {
    let why = match s.stopped {
        StopReason::ReachedTotalSteps => "reached the last step",
        StopReason::DataExhausted => "the data ran out",
        StopReason::Interrupted => "a stop was asked for",
    };
    println!(
        "trained to step {} ({why}); {} batches consumed, {} steps skipped as non-finite",
        s.step, s.batches_consumed, s.skipped_steps
    );
    if let (Some(first), Some(last)) = (s.metrics.first(), s.metrics.last()) {
        println!(
            "loss {:.4} -> {:.4}, masked-LM accuracy {:.3} -> {:.3}; data wait {:.2}% of the time",
            first.loss,
            last.loss,
            first.mlm_acc,
            last.mlm_acc,
            100.0 * s.metrics.iter().map(|m| m.data_wait_frac).sum::<f64>()
                / s.metrics.len() as f64
        );
    }
    if let Some(e) = &s.eval {
        println!(
            "held out at step {}: masked-LM accuracy {:.4}, loss {:.4}, next-sentence accuracy {:.4} \
             ({} sequences; eval_results.txt)",
            e.global_step, e.masked_lm_accuracy, e.loss, e.next_sentence_accuracy, e.sequences
        );
    }
    if let Some(c) = &s.last_checkpoint {
        println!("checkpoint: {}", c.display());
    }
    println!(
        "metrics, TensorBoard events and the loss plot: {}",
        cfg.output_dir.display()
    );
}
