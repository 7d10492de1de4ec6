//! The TCPStore: values cross ranks, and every failure to meet ends within
//! the timeout with a message naming the address.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, report, role, Ranks};
use nezha_c10d::Store;

#[test]
fn values_set_by_one_rank_are_read_by_the_other() {
    let Some(role) = role("values_set_by_one_rank_are_read_by_the_other") else {
        let mut ranks = Ranks::spawn("values_set_by_one_rank_are_read_by_the_other", 2, &[]);
        let got: Vec<String> = (0..2)
            .map(|r| ranks.expect(r, "peer", Duration::from_secs(60)))
            .collect();
        assert_eq!(got, vec!["ok 1", "ok 0"]);
        assert_eq!(
            ranks.finish(Duration::from_secs(30)),
            vec![Some(0), Some(0)]
        );
        return;
    };
    let store = role.store(Duration::from_secs(30));
    // Arbitrary bytes (NUL, high bytes) and an empty value survive unchanged.
    let value = |r: usize| vec![0u8, 255, b'\n', r as u8, 0, 42];
    store
        .set(&format!("hash/{}", role.rank), &value(role.rank))
        .unwrap();
    store.set(&format!("empty/{}", role.rank), &[]).unwrap();
    let peer = 1 - role.rank;
    // The peer may not have set it yet: get waits for it.
    assert_eq!(store.get(&format!("hash/{peer}")).unwrap(), value(peer));
    assert_eq!(
        store.get(&format!("empty/{peer}")).unwrap(),
        Vec::<u8>::new()
    );
    // The store lives in rank 0's process: it must outlive rank 1's reads,
    // so rank 1 says it is done (a synchronous set) and rank 0 waits for it.
    if role.rank == 1 {
        store.set("done/1", b"1").unwrap();
    } else {
        store.get("done/1").unwrap();
    }
    report("peer", format!("ok {peer}"));
}

/// Runs `meet`, which must fail, and requires it to have given up after
/// `timeout` (less 200 ms of clock slack) and less than `late` after it;
/// returns the message.
fn gives_up_on_time<T>(
    timeout: Duration,
    late: Duration,
    meet: impl FnOnce() -> nezha_c10d::Result<T>,
) -> String {
    let start = Instant::now();
    let err = match meet() {
        Ok(_) => panic!("succeeded where it should have timed out"),
        Err(e) => e.to_string(),
    };
    let took = start.elapsed();
    assert!(
        took >= timeout - Duration::from_millis(200),
        "gave up after {took:?}: {err}"
    );
    assert!(took < timeout + late, "took {took:?}: {err}");
    err
}

#[test]
fn missing_key_fails_after_the_timeout() {
    let timeout = Duration::from_secs(2);
    let port = free_port();
    let store = Store::new("127.0.0.1", port, 1, true, timeout).unwrap();
    let err = gives_up_on_time(timeout, Duration::from_secs(5), || store.get("never/set"));
    let context = format!("getting store key \"never/set\" at 127.0.0.1:{port} (timeout 2s): ");
    assert!(err.starts_with(&context), "{err}");
}

#[test]
fn unreachable_master_fails_within_the_timeout() {
    let timeout = Duration::from_secs(3);
    // Nothing listens on this port: the master was never started.
    let port = free_port();
    let err = gives_up_on_time(timeout, Duration::from_secs(1), || {
        Store::new("127.0.0.1", port, 2, false, timeout)
    });
    let context = format!("joining the TCPStore at 127.0.0.1:{port} (world size 2, timeout 3s): ");
    assert!(err.starts_with(&context), "{err}");
    assert!(
        err.contains("the master did not accept connections in time"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn master_without_enough_ranks_fails_within_the_timeout() {
    let timeout = Duration::from_secs(2);
    let port = free_port();
    // World size 3, but no other rank ever joins.
    let err = gives_up_on_time(timeout, Duration::from_secs(5), || {
        Store::new("127.0.0.1", port, 3, true, timeout)
    });
    let context = format!("serving the TCPStore on 127.0.0.1:{port} for 3 ranks (timeout 2s): ");
    assert!(err.starts_with(&context), "{err}");
    // The master counts itself among the clients.
    assert!(err.contains("1/3 clients joined"), "{err}");
}
