//! Several processes, one run: `nezha launch` starts one `nezha run` per
//! device with torchrun's environment and supervises them; [`RankEnv`] and
//! [`join`] are the other side, how a process started that way (or by a
//! cluster scheduler that sets the same variables) finds its peers.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use nezha_dist::{GlooDevice, Heartbeat, ProcessGroup, Store};

/// Default port of the rendezvous store, as torchrun's.
pub const DEFAULT_MASTER_PORT: u16 = 29500;
/// How often each rank beats its heartbeat into the store.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Where this process stands in a multi-process run, from torchrun's
/// variables: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
/// `MASTER_ADDR`, `MASTER_PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
}

impl RankEnv {
    /// `None` when this is a single-process run (no `WORLD_SIZE`, or 1).
    pub fn from_env() -> Result<Option<RankEnv>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<RankEnv>> {
        let num = |key: &str| -> Result<Option<usize>> {
            match get(key) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    anyhow!("environment variable {key}={v:?} is not a non-negative integer")
                }),
            }
        };
        let world_size = num("WORLD_SIZE")?;
        let rank = num("RANK")?;
        let world_size = match (world_size, rank) {
            (None | Some(1), None | Some(0)) => return Ok(None),
            (None, Some(r)) => bail!("RANK={r} is set but WORLD_SIZE is not"),
            (Some(0), _) => bail!("WORLD_SIZE=0: a run needs at least one process"),
            (Some(w), None) => bail!("WORLD_SIZE={w} is set but RANK is not"),
            (Some(w), Some(_)) => w,
        };
        let rank = rank.expect("matched above");
        if rank >= world_size {
            bail!(
                "RANK={rank} is not below WORLD_SIZE={world_size}: ranks are 0..{}",
                world_size - 1
            );
        }
        let local_rank = num("LOCAL_RANK")?.unwrap_or(rank);
        let local_world_size = num("LOCAL_WORLD_SIZE")?.unwrap_or(world_size);
        if local_rank >= local_world_size {
            bail!("LOCAL_RANK={local_rank} is not below LOCAL_WORLD_SIZE={local_world_size}");
        }
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let master_port = match get("MASTER_PORT") {
            None => DEFAULT_MASTER_PORT,
            Some(p) => p
                .trim()
                .parse()
                .map_err(|_| anyhow!("MASTER_PORT={p:?} is not a port number"))?,
        };
        Ok(Some(RankEnv {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
        }))
    }

    pub fn who(&self) -> String {
        format!("rank {}/{}", self.rank, self.world_size)
    }
}

/// A process that joined its peers: the store (rank 0 serves it), the
/// process group, and the heartbeat that names a lost rank.
pub struct Joined {
    pub env: RankEnv,
    pub store: Arc<Store>,
    pub group: ProcessGroup,
    pub heartbeat: Heartbeat,
}

/// FNV-1a, 64 bits: the fingerprint of the pipeline file compared between ranks.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What each rank announces through the store.
struct Announcement {
    world_size: usize,
    fingerprint: u64,
    pid: u32,
    host: String,
    file: String,
}

impl Announcement {
    fn encode(&self) -> String {
        format!(
            "{} {:016x} {} {} {}",
            self.world_size, self.fingerprint, self.pid, self.host, self.file
        )
    }

    fn decode(text: &str) -> Option<Announcement> {
        let mut it = text.splitn(5, ' ');
        Some(Announcement {
            world_size: it.next()?.parse().ok()?,
            fingerprint: u64::from_str_radix(it.next()?, 16).ok()?,
            pid: it.next()?.parse().ok()?,
            host: it.next()?.to_string(),
            file: it.next().unwrap_or_default().to_string(),
        })
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

fn is_loopback(addr: &str, port: u16) -> bool {
    if addr == "localhost" {
        return true;
    }
    match addr.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => (addr, port)
            .to_socket_addrs()
            .map(|mut a| a.all(|s| s.ip().is_loopback()))
            .unwrap_or(false),
    }
}

/// Meets the other ranks: the store at MASTER_ADDR:MASTER_PORT, a check
/// that every rank runs the same world size and the same pipeline file
/// (`file`, `source`), then the process group (`cuda`: NCCL, else Gloo)
/// and the heartbeat. Every wait is bounded by `timeout`.
pub fn join(
    env: &RankEnv,
    file: &Path,
    source: &[u8],
    cuda: bool,
    timeout: Duration,
) -> Result<Joined> {
    let who = env.who();
    let (addr, port) = (env.master_addr.as_str(), env.master_port);
    let store = if env.rank == 0 {
        Store::new(addr, port, env.world_size, true, timeout).map_err(|e| {
            anyhow!(
                "{who}: serving the rendezvous store on port {port}: {e}\nhint: WORLD_SIZE={} \
                 processes must start and reach {addr}:{port} within {timeout:?}; fewer were \
                 started, or the others cannot reach this machine (or the port is taken)",
                env.world_size
            )
        })?
    } else {
        Store::new(addr, port, env.world_size, false, timeout).map_err(|e| {
            anyhow!(
                "{who}: cannot reach the master (rank 0) at {addr}:{port} within {timeout:?}: \
                 {e}\nhint: is rank 0 running, and do MASTER_ADDR and MASTER_PORT name its \
                 machine and a port it can open?"
            )
        })?
    };
    let store = Arc::new(store);

    let mine = Announcement {
        world_size: env.world_size,
        fingerprint: fingerprint(source),
        pid: std::process::id(),
        host: host_name(),
        file: file.display().to_string(),
    };
    let key = |r: usize| format!("nezha/rank/{r}");
    store
        .set(&key(env.rank), mine.encode().as_bytes())
        .map_err(|e| anyhow!("{who}: announcing this rank: {e}"))?;
    // Rank 0 first: a process that disagrees about the world size learns it
    // from rank 0 at once instead of waiting for a rank that never comes.
    let mut differ = Vec::new();
    let mut problem = None;
    for r in 0..env.world_size {
        let bytes = store.get(&key(r)).map_err(|e| {
            anyhow!(
                "{who}: waiting for rank {r} to announce itself: {e}\nhint: WORLD_SIZE is {} \
                 here; did every rank start, with the same WORLD_SIZE?",
                env.world_size
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let theirs = Announcement::decode(&text)
            .ok_or_else(|| anyhow!("{who}: rank {r} announced {text:?}, not a nezha rank"))?;
        if theirs.world_size != env.world_size {
            problem = Some(format!(
                "{who}: world size mismatch: this process has WORLD_SIZE={} but rank {r} \
                 (pid {} on {}) has WORLD_SIZE={}; every process must be started with the same \
                 world size, the number of processes started",
                env.world_size, theirs.pid, theirs.host, theirs.world_size
            ));
            break;
        }
        if r == env.rank && (theirs.pid != mine.pid || theirs.host != mine.host) {
            problem = Some(format!(
                "{who}: two processes claim rank {r}: this one (pid {} on {}) and pid {} on {}",
                mine.pid, mine.host, theirs.pid, theirs.host
            ));
            break;
        }
        if theirs.fingerprint != mine.fingerprint {
            differ.push(format!(
                "rank {r} runs {} (fingerprint {:016x}, pid {} on {})",
                theirs.file, theirs.fingerprint, theirs.pid, theirs.host
            ));
            if env.rank != 0 {
                // Differing from rank 0 is enough to know; rank 0 lists all.
                break;
            }
        }
    }
    if problem.is_none() && !differ.is_empty() {
        problem = Some(format!(
            "{who}: the pipeline file differs between ranks: this rank runs {} (fingerprint \
             {:016x}) but {}; every rank must run the same pipeline.toml",
            mine.file,
            mine.fingerprint,
            differ.join(", ")
        ));
    }
    let checked = |r: usize| format!("nezha/checked/{r}");
    let _ = store.set(&checked(env.rank), b"");
    if let Some(problem) = problem {
        if env.rank == 0 {
            // The store goes with rank 0: let the others finish their own
            // check (and say what they found) first.
            for r in 1..env.world_size {
                let _ = store.get(&checked(r));
            }
        }
        bail!(problem);
    }

    let group = if cuda {
        nccl_group(&store, env, timeout)?
    } else {
        let device = if is_loopback(addr, port) {
            GlooDevice::Hostname("127.0.0.1".into())
        } else {
            GlooDevice::from_env()
        };
        ProcessGroup::gloo_on(&store, env.rank, env.world_size, timeout, &device)
            .map_err(|e| anyhow!("{who}: {e}"))?
    };
    let heartbeat = Heartbeat::start(store.clone(), env.rank, env.world_size, HEARTBEAT)
        .map_err(|e| anyhow!("{who}: starting the heartbeat: {e}"))?;
    Ok(Joined {
        env: env.clone(),
        store,
        group,
        heartbeat,
    })
}

#[cfg(feature = "nccl")]
fn nccl_group(store: &Store, env: &RankEnv, timeout: Duration) -> Result<ProcessGroup> {
    ProcessGroup::nccl(store, env.rank, env.world_size, timeout)
        .map_err(|e| anyhow!("{}: {e}", env.who()))
}

#[cfg(not(feature = "nccl"))]
fn nccl_group(_: &Store, env: &RankEnv, _: Duration) -> Result<ProcessGroup> {
    bail!(
        "{}: data-parallel training on CUDA needs NCCL, which this build leaves out: build with \
         `--features cuda,nccl` (see README)",
        env.who()
    )
}

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
    let exe = std::env::current_exe().context("locating the nezha binary")?;
    let mut ranks = Vec::new();
    for local in 0..args.nproc_per_node {
        let rank = args.node_rank * args.nproc_per_node + local;
        let mut cmd = Command::new(&exe);
        cmd.arg("run").arg(&args.pipeline);
        if args.resume {
            cmd.arg("--resume");
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
    supervise(&mut ranks, Duration::from_secs(args.grace_s))
}

fn kill_all(ranks: &mut [RankProcess]) {
    for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
        let _ = r.child.kill();
        r.status = r.child.wait().ok();
    }
}

fn supervise(ranks: &mut [RankProcess], grace: Duration) -> Result<()> {
    let mut first_failure: Option<(usize, String, Instant)> = None;
    loop {
        for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
            if let Some(status) = r.child.try_wait()? {
                r.status = Some(status);
                if !status.success() && first_failure.is_none() {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<RankEnv>> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_torchrun_environment() {
        assert_eq!(env(&[]).unwrap(), None);
        assert_eq!(env(&[("WORLD_SIZE", "1"), ("RANK", "0")]).unwrap(), None);
        let e = env(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "1234"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.local_rank), (3, 4, 1));
        assert_eq!((e.master_addr.as_str(), e.master_port), ("10.0.0.1", 1234));
    }

    #[test]
    fn refuses_inconsistent_environment() {
        let err = |p: &[(&str, &str)]| env(p).unwrap_err().to_string();
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "2")]).contains("RANK=2 is not below"));
        assert!(err(&[("WORLD_SIZE", "2")]).contains("RANK is not"));
        assert!(err(&[("RANK", "1")]).contains("WORLD_SIZE is not"));
        assert!(err(&[("WORLD_SIZE", "x"), ("RANK", "0")]).contains("WORLD_SIZE=\"x\""));
        assert!(
            err(&[("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_PORT", "99999")])
                .contains("MASTER_PORT")
        );
    }

    #[test]
    fn announcement_round_trips() {
        let a = Announcement {
            world_size: 2,
            fingerprint: fingerprint(b"x"),
            pid: 7,
            host: "h".into(),
            file: "a b.toml".into(),
        };
        let b = Announcement::decode(&a.encode()).unwrap();
        assert_eq!(
            (b.world_size, b.fingerprint, b.pid, b.host, b.file),
            (2, a.fingerprint, 7, "h".to_string(), "a b.toml".to_string())
        );
    }
}
