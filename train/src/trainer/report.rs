//! Where a run's progress goes: `metrics.jsonl`, TensorBoard events, the
//! progress bar (or plain lines where it cannot draw), notes for the user,
//! and the plot at the end. Only rank 0 reports; on the other ranks every
//! output is off.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::checkpoint;
use super::config::TrainConfig;
use super::metrics::{self, EvalLine, MetricsLog, StepMetrics};
use super::plot;
use super::tensorboard::{self, EventWriter};
use crate::eval::EvalMetrics;

pub(super) struct Reporter {
    /// `metrics.jsonl`, appended to once per step.
    log: Option<MetricsLog>,
    events: Option<EventWriter<BufWriter<File>>>,
    bar: ProgressBar,
    /// Where the bar cannot draw (a log file, a launcher's pipe): a plain
    /// line every this many steps.
    plain_every: Option<u64>,
    /// Whether notes are shown at all (rank 0 with the progress bar on).
    speaks: bool,
    total_steps: u64,
    world: usize,
    /// Whether the loss scale goes to TensorBoard (fp16 runs).
    loss_scaling: bool,
    /// `metrics.jsonl` to read back and the PNG to draw from it at the end.
    plot: Option<(PathBuf, PathBuf)>,
}

impl Reporter {
    /// Opens the outputs of a run that continues after `step` (0 when
    /// fresh): on resume, `metrics.jsonl` loses the lines of later steps.
    pub fn open(
        cfg: &TrainConfig,
        step: u64,
        leader: bool,
        world: usize,
        loss_scaling: bool,
    ) -> Result<Reporter> {
        let metrics_path = cfg.output_dir.join("metrics.jsonl");
        let log = if leader {
            Some(MetricsLog::open(&metrics_path, Some(step))?)
        } else {
            None
        };
        let events = if cfg.tensorboard && leader {
            Some(tensorboard::create(&cfg.output_dir.join("tensorboard"))?.1)
        } else {
            None
        };
        let speaks = cfg.progress_bar && leader;
        let plain_every = (speaks && !std::io::stderr().is_terminal())
            .then(|| (cfg.schedule.total_steps / 20).max(1));
        let plot = (cfg.plot && leader).then(|| {
            (
                metrics_path,
                checkpoint::checkpoints_dir(&cfg.output_dir).join("training.png"),
            )
        });
        Ok(Reporter {
            log,
            events,
            bar: progress_bar(cfg.schedule.total_steps, step, speaks),
            plain_every,
            speaks,
            total_steps: cfg.schedule.total_steps,
            world,
            loss_scaling,
            plot,
        })
    }

    /// A note for the user: above the bar, or a plain line where it cannot
    /// draw; rank 0 speaks for all.
    pub fn say(&self, msg: String) {
        match (self.speaks, self.plain_every) {
            (false, _) => {}
            (true, Some(_)) => eprintln!("{msg}"),
            (true, None) => self.bar.println(msg),
        }
    }

    /// Records step `m`: a metrics line, a TensorBoard event, the bar.
    pub fn step(&mut self, m: &StepMetrics) -> Result<()> {
        if let Some(log) = &mut self.log {
            log.write(m)?;
        }
        if let Some(ev) = &mut self.events {
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
            if self.loss_scaling {
                scalars.push(("train/loss_scale", m.loss_scale));
            }
            ev.scalars(m.step as i64, tensorboard::now(), &scalars)?;
        }
        let ranks = if self.world > 1 {
            format!(" ({} ranks)", self.world)
        } else {
            String::new()
        };
        let message = format!(
            "loss {:.4} mlm_acc {:.3} nsp_acc {:.3} lr {:.2e} {:.1} seq/s{ranks}",
            m.loss, m.mlm_acc, m.nsp_acc, m.lr, m.seq_per_s
        );
        if let Some(every) = self.plain_every {
            if m.step.is_multiple_of(every) || m.step == self.total_steps {
                eprintln!("step {}/{} {message}", m.step, self.total_steps);
            }
        }
        self.bar.set_position(m.step);
        self.bar.set_message(message);
        Ok(())
    }

    /// Records an evaluation: a metrics line, TensorBoard `eval/…`
    /// scalars, and a note.
    pub fn eval(&mut self, e: &EvalMetrics) -> Result<()> {
        let step = e.global_step;
        if let Some(log) = &mut self.log {
            log.write_eval(&EvalLine { step, eval: *e })?;
        }
        if let Some(ev) = &mut self.events {
            ev.scalars(
                step as i64,
                tensorboard::now(),
                &[
                    ("eval/loss", e.loss),
                    ("eval/masked_lm_accuracy", e.masked_lm_accuracy),
                    ("eval/masked_lm_loss", e.masked_lm_loss),
                    ("eval/next_sentence_accuracy", e.next_sentence_accuracy),
                    ("eval/next_sentence_loss", e.next_sentence_loss),
                ],
            )?;
        }
        self.say(format!(
            "step {step} held out ({} sequences): loss {:.4} masked-LM accuracy {:.3} next-sentence accuracy {:.3}",
            e.sequences, e.loss, e.masked_lm_accuracy, e.next_sentence_accuracy
        ));
        Ok(())
    }

    /// Clears the bar and draws the plot from the whole `metrics.jsonl`
    /// (earlier runs of a resumed training included).
    pub fn finish(self) -> Result<()> {
        self.bar.finish_and_clear();
        if let Some((metrics_path, png)) = &self.plot {
            let (steps, evals) = metrics::read_all(metrics_path)?;
            plot::write_png(png, &steps, &evals)?;
        }
        Ok(())
    }
}

fn progress_bar(total_steps: u64, step: u64, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total_steps), target);
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
