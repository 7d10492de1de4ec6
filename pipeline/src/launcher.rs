//! `nezha launch`: starts this node's ranks, each as the binary it was
//! started as (`nezha`, or a plugin's own binary) running `run PIPELINE`
//! with torchrun's environment, and supervises them.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::rank_env::DEFAULT_MASTER_PORT;

/// `nezha launch`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Processes on this machine (one per GPU, or per group of CPU cores).
    #[arg(long, default_value_t = 1)]
    pub nproc_per_node: usize,
    /// Machines taking part.
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    /// This machine's index among them.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Address of the machine with node rank 0 (rank 0 serves the store there).
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of the rendezvous store rank 0 serves (torchrun's default).
    #[arg(long, default_value_t = DEFAULT_MASTER_PORT)]
    pub master_port: u16,
    /// Continue from the newest checkpoint (passed to every rank's `nezha run`).
    #[arg(long)]
    pub resume: bool,
    /// Continue from this step's checkpoint (passed to every rank).
    #[arg(long, value_name = "STEP", value_parser = crate::cli::parse_step)]
    pub resume_from: Option<u64>,
    /// Seconds the launcher gives the other ranks to exit by themselves once
    /// one failed, before it kills them (their own bound is
    /// `[train] collective_timeout_s`).
    #[arg(long, default_value_t = 90)]
    pub grace_s: u64,
    /// The pipeline file every rank runs.
    #[arg(default_value = "pipeline.toml")]
    pub pipeline: PathBuf,
}

struct RankProcess {
    rank: usize,
    child: Child,
    status: Option<ExitStatus>,
}

fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(9)) => "was killed (SIGKILL)".into(),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => "ended".into(),
    }
}

/// Copies a child's output to ours, each line prefixed with its rank.
fn relay(stream: impl std::io::Read + Send + 'static, rank: usize, to_stdout: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if to_stdout {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "[rank {rank}] {line}");
            } else {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "[rank {rank}] {line}");
            }
        }
    });
}

/// `nezha launch`: starts this node's ranks as `nezha run` processes and
/// waits for them. Rank 0's output passes through untouched (its progress
/// line is the run's); the other ranks' lines are prefixed `[rank r]`. When a
/// rank fails, the others get `grace_s` to notice and exit on their own, then
/// are killed; the launcher fails naming the rank that failed first.
pub fn launch(args: &LaunchArgs) -> Result<()> {
    if args.nproc_per_node == 0 || args.nnodes == 0 {
        bail!("--nproc-per-node and --nnodes must be at least 1");
    }
    if args.node_rank >= args.nnodes {
        bail!(
            "--node-rank {} is not below --nnodes {}",
            args.node_rank,
            args.nnodes
        );
    }
    if !args.pipeline.is_file() {
        bail!("cannot read {}: no such file", args.pipeline.display());
    }
    let world = args.nproc_per_node * args.nnodes;
    let stop = Arc::new(AtomicBool::new(false));
    crate::interrupt::install(stop.clone())?;
    let exe = std::env::current_exe().context("locating the nezha binary")?;
    let mut ranks = Vec::new();
    for local in 0..args.nproc_per_node {
        let rank = args.node_rank * args.nproc_per_node + local;
        let mut cmd = Command::new(&exe);
        cmd.arg("run").arg(&args.pipeline);
        if args.resume {
            cmd.arg("--resume");
        }
        if let Some(step) = args.resume_from {
            cmd.arg("--resume-from").arg(step.to_string());
        }
        cmd.env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", args.nproc_per_node.to_string())
            .env("GROUP_RANK", args.node_rank.to_string())
            .env("MASTER_ADDR", &args.master_addr)
            .env("MASTER_PORT", args.master_port.to_string())
            .stdin(Stdio::null());
        if std::env::var_os("TORCH_CPP_LOG_LEVEL").is_none() {
            // c10d logs each failed store call with a C++ backtrace before
            // raising it; the error that reaches the user says it once.
            cmd.env("TORCH_CPP_LOG_LEVEL", "ERROR");
        }
        if rank != 0 {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut ranks);
                bail!("starting rank {rank} ({}): {e}", exe.display());
            }
        };
        if let Some(out) = child.stdout.take() {
            relay(out, rank, true);
        }
        if let Some(err) = child.stderr.take() {
            relay(err, rank, false);
        }
        eprintln!(
            "nezha launch: rank {rank}/{world} started (pid {})",
            child.id()
        );
        ranks.push(RankProcess {
            rank,
            child,
            status: None,
        });
    }
    supervise(&mut ranks, Duration::from_secs(args.grace_s), &stop)
}

fn kill_all(ranks: &mut [RankProcess]) {
    for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
        let _ = r.child.kill();
        r.status = r.child.wait().ok();
    }
}

fn supervise(ranks: &mut [RankProcess], grace: Duration, stop: &AtomicBool) -> Result<()> {
    let mut first_failure: Option<(usize, String, Instant)> = None;
    let mut forwarded = false;
    loop {
        if stop.load(Ordering::SeqCst) && !forwarded {
            // A scheduler signals the launcher; every rank must stop after
            // the same step (they agree on it), each with its checkpoint.
            eprintln!("nezha launch: stop requested; asking every rank to stop after its step");
            for r in ranks.iter().filter(|r| r.status.is_none()) {
                // SAFETY: kill(2) on the pid of a child not yet reaped.
                unsafe {
                    libc::kill(r.child.id() as libc::pid_t, libc::SIGTERM);
                }
            }
            forwarded = true;
        }
        for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
            if let Some(status) = r.child.try_wait()? {
                r.status = Some(status);
                let stopped_on_request =
                    forwarded && status.code() == Some(crate::interrupt::EXIT_STATUS.into());
                if !status.success() && !stopped_on_request && first_failure.is_none() {
                    let what = describe(&status);
                    eprintln!(
                        "nezha launch: rank {} {what}; waiting up to {grace:?} for the other \
                         ranks to stop",
                        r.rank
                    );
                    first_failure = Some((r.rank, what, Instant::now()));
                }
            }
        }
        let running: Vec<usize> = ranks
            .iter()
            .filter(|r| r.status.is_none())
            .map(|r| r.rank)
            .collect();
        if running.is_empty() {
            break;
        }
        if let Some((rank, _, at)) = &first_failure {
            if at.elapsed() > grace {
                eprintln!(
                    "nezha launch: ranks {running:?} still run {grace:?} after rank {rank} \
                     failed; killing them"
                );
                kill_all(ranks);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some((rank, what, _)) = first_failure {
        let others: Vec<String> = ranks
            .iter()
            .filter(|r| r.rank != rank)
            .map(|r| {
                format!(
                    "rank {} {}",
                    r.rank,
                    r.status.as_ref().map_or("ended".into(), describe)
                )
            })
            .collect();
        bail!(
            "rank {rank} {what} (the first to fail); {}",
            if others.is_empty() {
                "no other rank on this node".to_string()
            } else {
                others.join(", ")
            }
        );
    }
    if forwarded {
        return Err(crate::interrupt::Interrupted(
            "every rank stopped after its step with a checkpoint; --resume continues".into(),
        )
        .into());
    }
    Ok(())
}
