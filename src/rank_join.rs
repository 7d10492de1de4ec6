//! The rank side of a multi-process run: how a process started by `nezha
//! launch` (or by a cluster scheduler that sets torchrun's variables) finds
//! its peers, checks that they run the same pipeline, and joins their
//! process group.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use nezha_c10d::{GlooDevice, Heartbeat, ProcessGroup, Store};
use nezha_pipeline::rank_env::RankEnv;

/// How often each rank beats its heartbeat into the store.
const HEARTBEAT: Duration = Duration::from_millis(500);

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
    let store = Arc::new(connect(env, timeout)?);
    let mine = Announcement {
        world_size: env.world_size,
        fingerprint: fingerprint(source),
        pid: std::process::id(),
        host: host_name(),
        file: file.display().to_string(),
    };
    agree(&store, env, &mine)?;
    let group = process_group(&store, env, cuda, timeout)?;
    let heartbeat = Heartbeat::start(store.clone(), env.rank, env.world_size, HEARTBEAT)
        .map_err(|e| anyhow!("{}: starting the heartbeat: {e}", env.who()))?;
    Ok(Joined {
        env: env.clone(),
        store,
        group,
        heartbeat,
    })
}

/// The rendezvous store: rank 0 serves it, the others reach it.
fn connect(env: &RankEnv, timeout: Duration) -> Result<Store> {
    let who = env.who();
    let (addr, port) = (env.master_addr.as_str(), env.master_port);
    if env.rank == 0 {
        Store::new(addr, port, env.world_size, true, timeout).map_err(|e| {
            anyhow!(
                "{who}: serving the rendezvous store on port {port}: {e}\nhint: WORLD_SIZE={} \
                 processes must start and reach {addr}:{port} within {timeout:?}; fewer were \
                 started, or the others cannot reach this machine (or the port is taken)",
                env.world_size
            )
        })
    } else {
        Store::new(addr, port, env.world_size, false, timeout).map_err(|e| {
            anyhow!(
                "{who}: cannot reach the master (rank 0) at {addr}:{port} within {timeout:?}: \
                 {e}\nhint: is rank 0 running, and do MASTER_ADDR and MASTER_PORT name its \
                 machine and a port it can open?"
            )
        })
    }
}

/// Announces this rank and reads every other's: all must have the same
/// world size and pipeline file, and no rank may be claimed twice.
fn agree(store: &Store, env: &RankEnv, mine: &Announcement) -> Result<()> {
    let who = env.who();
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
    Ok(())
}

/// NCCL on CUDA, else Gloo (on the loopback device when the master is on
/// this machine).
fn process_group(
    store: &Store,
    env: &RankEnv,
    cuda: bool,
    timeout: Duration,
) -> Result<ProcessGroup> {
    if cuda {
        return nccl_group(store, env, timeout);
    }
    let device = if is_loopback(&env.master_addr, env.master_port) {
        GlooDevice::Hostname("127.0.0.1".into())
    } else {
        GlooDevice::from_env()
    };
    ProcessGroup::gloo_on(store, env.rank, env.world_size, timeout, &device)
        .map_err(|e| anyhow!("{}: {e}", env.who()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
