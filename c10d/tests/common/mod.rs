//! Multi-process tests: a test spawns its own test binary once per rank,
//! filtered to the same test, with the torchrun-style environment (RANK,
//! WORLD_SIZE, MASTER_ADDR, MASTER_PORT). The child sees that environment and
//! plays its rank; the parent collects what each rank printed.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Set on children only, so a RANK inherited from the shell that runs the
/// tests cannot turn the parent into a rank.
const CHILD: &str = "NEZHA_DIST_TEST_CHILD";

/// The rank this process plays, when it is a child spawned by [`Ranks::spawn`].
pub struct Role {
    pub rank: usize,
    pub world_size: usize,
    pub addr: String,
    pub port: u16,
}

impl Role {
    /// This rank's side of the rendezvous (rank 0 serves the store).
    pub fn store(&self, timeout: Duration) -> nezha_c10d::Store {
        nezha_c10d::Store::new(
            &self.addr,
            self.port,
            self.world_size,
            self.rank == 0,
            timeout,
        )
        .unwrap()
    }

    /// The store and a Gloo group over loopback.
    pub fn join_gloo(&self, timeout: Duration) -> (nezha_c10d::Store, nezha_c10d::ProcessGroup) {
        let store = self.store(timeout);
        let device = nezha_c10d::GlooDevice::Hostname("127.0.0.1".into());
        let group =
            nezha_c10d::ProcessGroup::gloo_on(&store, self.rank, self.world_size, timeout, &device)
                .unwrap();
        (store, group)
    }
}

/// Runs `test` as two ranks and requires both to report `done` and exit 0.
pub fn run_two(test: &str) {
    let mut ranks = Ranks::spawn(test, 2, &[]);
    for rank in 0..2 {
        ranks.expect(rank, "done", Duration::from_secs(60));
    }
    assert_eq!(
        ranks.finish(Duration::from_secs(30)),
        vec![Some(0), Some(0)]
    );
}

pub fn role(test: &str) -> Option<Role> {
    if std::env::var(CHILD).ok()? != test {
        return None;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("child without {k}"));
    Some(Role {
        rank: var("RANK").parse().unwrap(),
        world_size: var("WORLD_SIZE").parse().unwrap(),
        addr: var("MASTER_ADDR"),
        port: var("MASTER_PORT").parse().unwrap(),
    })
}

/// A port nothing listens on now. Another process could take it before the
/// store binds it; the kernel hands out ephemeral ports in rotation, so that
/// is unlikely within a test's lifetime.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Prints a line the parent reads back (`key value`), flushed at once so it
/// arrives even if the process is killed right after. It starts on a fresh
/// line: libtest has printed "test name ... " without a newline.
pub fn report(key: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n@{key} {value}").unwrap();
    out.flush().unwrap();
}

pub struct Ranks {
    pub children: Vec<Child>,
    lines: Vec<Receiver<String>>,
    pub port: u16,
}

impl Ranks {
    /// Starts `world_size` processes running test `test` as ranks 0.., each
    /// with `extra` in its environment.
    pub fn spawn(test: &str, world_size: usize, extra: &[(&str, String)]) -> Ranks {
        let port = free_port();
        let exe = std::env::current_exe().unwrap();
        let mut children = Vec::new();
        let mut lines = Vec::new();
        for rank in 0..world_size {
            let mut cmd = Command::new(&exe);
            cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, test)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world_size.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            for (k, v) in extra {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(l) = line.strip_prefix('@') {
                        if tx.send(l.to_string()).is_err() {
                            break;
                        }
                    }
                }
            });
            children.push(child);
            lines.push(rx);
        }
        Ranks {
            children,
            lines,
            port,
        }
    }

    /// The next `key value` line of `rank` whose key is `key`, waiting at
    /// most `within`. Lines of other keys are skipped.
    pub fn expect(&mut self, rank: usize, key: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines[rank].recv_timeout(left) {
                Ok(line) => {
                    let (k, v) = line.split_once(' ').unwrap_or((&line, ""));
                    if k == key {
                        return v.to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill_all();
                    panic!("rank {rank} did not report {key:?} within {within:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.kill_all();
                    panic!("rank {rank} exited without reporting {key:?}")
                }
            }
        }
    }

    /// Waits for every child to exit, killing all of them and failing the
    /// test if that takes longer than `within`; returns the exit codes.
    pub fn finish(&mut self, within: Duration) -> Vec<Option<i32>> {
        let deadline = Instant::now() + within;
        let mut codes = vec![None; self.children.len()];
        let mut done = vec![false; self.children.len()];
        while done.iter().any(|d| !d) {
            for (i, child) in self.children.iter_mut().enumerate() {
                if !done[i] {
                    if let Some(status) = child.try_wait().unwrap() {
                        codes[i] = status.code();
                        done[i] = true;
                    }
                }
            }
            if Instant::now() > deadline {
                self.kill_all();
                panic!("ranks still running after {within:?} (exit codes so far {codes:?})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        codes
    }

    pub fn kill_all(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        // A panicking parent must not leave ranks behind.
        self.kill_all();
    }
}
