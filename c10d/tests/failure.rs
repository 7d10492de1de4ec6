//! A lost or silent peer makes the surviving rank's next collective fail
//! within the group's timeout, with a message naming rank and operation, and
//! the survivor still exits.

mod common;

use std::time::{Duration, Instant};

use common::{report, role, Ranks, Role};
use nezha_c10d::{Error, Store};
use tch::Tensor;

/// Rank 0 dropped its group and store in less than the timeout, and exited 0.
fn assert_left(ranks: &mut Ranks, timeout: Duration) {
    let dropped: f64 = ranks.expect(0, "dropped", timeout * 2).parse().unwrap();
    assert!(dropped < timeout.as_secs_f64(), "dropping took {dropped} s");
    assert_eq!(ranks.finish(Duration::from_secs(30))[0], Some(0));
}

/// Rank 0's report of its failed all-reduce: how long it took, and the
/// error (also printed, for the test log).
fn failure(ranks: &mut Ranks, within: Duration) -> (f64, String) {
    let elapsed: f64 = ranks.expect(0, "elapsed", within).parse().unwrap();
    let error = ranks.expect(0, "error", Duration::from_secs(1));
    eprintln!("rank 0 after {elapsed:.2} s: {error}");
    (elapsed, error)
}

/// A child's part: rank 0 survives (calling `before_next` before the
/// collective that must fail), rank 1 is the peer that goes away.
fn play(role: &Role, timeout: Duration, before_next: impl FnOnce(&Store)) {
    if role.rank == 0 {
        survivor(role, timeout, before_next);
    } else {
        peer(role, timeout);
    }
}

fn buckets() -> Vec<Tensor> {
    (0..3)
        .map(|_| Tensor::ones([1 << 16], (tch::Kind::Float, tch::Device::Cpu)))
        .collect()
}

/// Rank 1's side: one good all-reduce, then alive and connected but never
/// calling the next one, until the parent kills it.
fn peer(role: &Role, timeout: Duration) {
    let (_store, group) = role.join_gloo(timeout);
    group.all_reduce_sum(&buckets()).unwrap();
    report("first", "ok");
    std::thread::sleep(Duration::from_secs(600));
}

/// Rank 0's side of both tests: one good all-reduce, then (once `before_next`
/// returned) one that must fail, then one that must be refused.
fn survivor(role: &Role, timeout: Duration, before_next: impl FnOnce(&Store)) {
    let (store, group) = role.join_gloo(timeout);
    group.all_reduce_sum(&buckets()).unwrap();
    report("first", "ok");
    before_next(&store);
    let start = Instant::now();
    let err = group.all_reduce_sum(&buckets()).unwrap_err();
    report("elapsed", start.elapsed().as_secs_f64());
    report("error", err.to_string().replace('\n', " "));
    assert!(matches!(err, Error::C10d { .. }), "{err}");
    let refused = group.all_reduce_sum(&buckets()).unwrap_err();
    assert!(matches!(refused, Error::Broken { .. }), "{refused}");
    report("refused", refused.to_string().replace('\n', " "));
    // Then leave through the ordinary drops: the group and store must not
    // hang on the way out.
    let start = Instant::now();
    drop(group);
    drop(store);
    report("dropped", start.elapsed().as_secs_f64());
}

#[test]
fn killed_peer_fails_the_next_all_reduce() {
    const TEST: &str = "killed_peer_fails_the_next_all_reduce";
    let timeout = Duration::from_secs(10);
    let Some(role) = role(TEST) else {
        let mut ranks = Ranks::spawn(TEST, 2, &[]);
        for rank in 0..2 {
            assert_eq!(ranks.expect(rank, "first", Duration::from_secs(60)), "ok");
        }
        // SIGKILL: no destructor, no goodbye on the sockets beyond the
        // kernel closing them.
        ranks.children[1].kill().unwrap();
        ranks.children[1].wait().unwrap();
        let (elapsed, error) = failure(&mut ranks, timeout + Duration::from_secs(10));
        assert!(
            elapsed < timeout.as_secs_f64(),
            "took {elapsed} s, timeout {timeout:?}"
        );
        assert!(
            error.starts_with(
                "rank 0/2: gloo all_reduce_sum of 3 tensor(s) failed on operation 0 of 3"
            ),
            "{error}"
        );
        assert!(error.contains("(timeout 10s)"), "{error}");
        let refused = ranks.expect(0, "refused", Duration::from_secs(5));
        assert!(
            refused.contains("refused, the process group failed earlier"),
            "{refused}"
        );
        assert_left(&mut ranks, timeout);
        return;
    };
    // Rank 0 gives the parent time to kill rank 1 first, so the all-reduce
    // meets a peer that is already gone.
    play(&role, timeout, |_| {
        std::thread::sleep(Duration::from_millis(500))
    });
}

#[test]
fn peer_killed_during_the_all_reduce_fails_it() {
    const TEST: &str = "peer_killed_during_the_all_reduce_fails_it";
    let timeout = Duration::from_secs(10);
    let Some(role) = role(TEST) else {
        let mut ranks = Ranks::spawn(TEST, 2, &[]);
        for rank in 0..2 {
            assert_eq!(ranks.expect(rank, "first", Duration::from_secs(60)), "ok");
        }
        // Rank 0 is now blocked in an all-reduce that rank 1 never joins.
        std::thread::sleep(Duration::from_millis(1000));
        ranks.children[1].kill().unwrap();
        ranks.children[1].wait().unwrap();
        let (elapsed, error) = failure(&mut ranks, timeout + Duration::from_secs(10));
        assert!(
            elapsed < timeout.as_secs_f64() * 0.8,
            "took {elapsed} s: the kill was not noticed before the timeout"
        );
        assert!(
            error.starts_with("rank 0/2: gloo all_reduce_sum of 3 tensor(s) failed"),
            "{error}"
        );
        assert_left(&mut ranks, timeout);
        return;
    };
    play(&role, timeout, |_| {});
}

#[test]
fn silent_peer_times_the_all_reduce_out() {
    const TEST: &str = "silent_peer_times_the_all_reduce_out";
    let timeout = Duration::from_secs(3);
    let Some(role) = role(TEST) else {
        let mut ranks = Ranks::spawn(TEST, 2, &[]);
        let (elapsed, error) = failure(&mut ranks, Duration::from_secs(60));
        // Rank 1 is alive and connected, only never joins: the timeout is
        // what ends the wait.
        assert!(
            elapsed >= timeout.as_secs_f64() * 0.9,
            "gave up after {elapsed} s"
        );
        assert!(
            elapsed < timeout.as_secs_f64() + 2.0,
            "took {elapsed} s, timeout {timeout:?}"
        );
        assert!(
            error.starts_with("rank 0/2: gloo all_reduce_sum of 3 tensor(s) failed"),
            "{error}"
        );
        assert!(error.contains("(timeout 3s)"), "{error}");
        let dropped: f64 = ranks.expect(0, "dropped", timeout * 2).parse().unwrap();
        assert!(dropped < timeout.as_secs_f64(), "dropping took {dropped} s");
        // Rank 0 must exit while rank 1 is still alive and silent.
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(status) = ranks.children[0].try_wait().unwrap() {
                break status.code();
            }
            assert!(Instant::now() < deadline, "rank 0 did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(code, Some(0));
        ranks.kill_all();
        return;
    };
    play(&role, timeout, |_| {});
}
