//! Where a process stands in a multi-process run, from torchrun's
//! variables, which `nezha launch` sets for each rank it starts (and cluster
//! schedulers set for processes they start).

use anyhow::{anyhow, bail, Result};

/// Default port of the rendezvous store, as torchrun's.
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// Where this process stands in a multi-process run, from torchrun's
/// variables: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
/// `MASTER_ADDR`, `MASTER_PORT`. The names the NEZHA seed's scripts set
/// before starting each process by hand (`run_pretraining.sh` on Ascend:
/// `RANK_ID`, `RANK_SIZE`, `DEVICE_ID`) stand in for `RANK`, `WORLD_SIZE`
/// and `LOCAL_RANK` (the device this process binds).
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
        let num = |key: &str| number(&get, key);
        let either = |torchrun: &str, seed: &str| either(&get, torchrun, seed);
        let world_size = either("WORLD_SIZE", "RANK_SIZE")?;
        let rank = either("RANK", "RANK_ID")?;
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
        let local_rank = either("LOCAL_RANK", "DEVICE_ID")?.unwrap_or(rank);
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

    /// The device a single process was told to use (`DEVICE_ID`, as the
    /// seed's one-device script sets it, or `LOCAL_RANK`), if any.
    pub fn single_device() -> Result<Option<usize>> {
        either(&|k: &str| std::env::var(k).ok(), "LOCAL_RANK", "DEVICE_ID")
    }

    pub fn who(&self) -> String {
        format!("rank {}/{}", self.rank, self.world_size)
    }
}

/// A non-negative integer variable, if set.
fn number(get: &dyn Fn(&str) -> Option<String>, key: &str) -> Result<Option<usize>> {
    match get(key) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse::<usize>().map(Some).map_err(|_| {
                anyhow!("environment variable {key}={v:?} is not a non-negative integer")
            })
        }
    }
}

/// torchrun's name, or the seed's; both given, they must agree.
fn either(
    get: &dyn Fn(&str) -> Option<String>,
    torchrun: &str,
    seed: &str,
) -> Result<Option<usize>> {
    match (number(get, torchrun)?, number(get, seed)?) {
        (Some(a), Some(b)) if a != b => {
            bail!("{torchrun}={a} and {seed}={b} disagree; set one of them")
        }
        (a, b) => Ok(a.or(b)),
    }
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
    fn reads_the_seeds_names() {
        let e = env(&[
            ("RANK_SIZE", "8"),
            ("RANK_ID", "5"),
            ("DEVICE_ID", "5"),
            ("LOCAL_WORLD_SIZE", "8"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.local_rank), (5, 8, 5));
        let e = env(&[("WORLD_SIZE", "2"), ("RANK_ID", "1"), ("DEVICE_ID", "0")])
            .unwrap()
            .unwrap();
        assert_eq!((e.rank, e.local_rank, e.local_world_size), (1, 0, 2));
        let err = env(&[("WORLD_SIZE", "2"), ("RANK", "1"), ("RANK_ID", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RANK=1 and RANK_ID=0 disagree"), "{err}");
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
}
