//! Two ranks over loopback: all-reduce, broadcast and barrier give every rank
//! the result c10d promises.

mod common;

use std::time::{Duration, Instant};

use common::{report, role};
use nezha_c10d::ProcessGroup;
use tch::{Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What rank `r` contributes: tensors of different shapes and dtypes.
fn contribution(r: usize) -> Vec<Tensor> {
    let r = r as f64;
    vec![
        Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (r + 1.0),
        Tensor::from_slice(&[10.0 * r, 10.0 * r + 1.0, -r, 0.5]).reshape([2, 2]),
        Tensor::from_slice(&[r as i64 + 5]),
    ]
}

#[test]
fn all_reduce_sums_across_two_ranks() {
    let Some(role) = role("all_reduce_sums_across_two_ranks") else {
        return common::run_two("all_reduce_sums_across_two_ranks");
    };
    let (_store, group) = role.join_gloo(TIMEOUT);
    let mine = contribution(role.rank);
    group.all_reduce_sum(&mine).unwrap();
    let (a, b) = (contribution(0), contribution(1));
    for i in 0..mine.len() {
        let expected = &a[i] + &b[i];
        assert_eq!(mine[i].kind(), expected.kind(), "tensor {i} changed dtype");
        assert!(
            mine[i].equal(&expected),
            "rank {} tensor {i}: {mine:?} != {expected:?}",
            role.rank
        );
    }
    // The f32 one by value, so the test does not only compare tch with tch.
    assert_eq!(Vec::<f32>::try_from(&mine[0]).unwrap(), vec![3.0, 6.0, 9.0]);
    assert_eq!(Vec::<i64>::try_from(&mine[2]).unwrap(), vec![11]);
    report("done", role.rank);
}

#[test]
fn started_all_reduce_completes_on_wait() {
    let Some(role) = role("started_all_reduce_completes_on_wait") else {
        return common::run_two("started_all_reduce_completes_on_wait");
    };
    let (_store, group) = role.join_gloo(TIMEOUT);
    // Large enough that Gloo splits it; several buckets in flight at once.
    let buckets: Vec<Tensor> = (0..4)
        .map(|i| {
            Tensor::full(
                [1 << 18],
                (role.rank * 4 + i) as f64,
                (Kind::Float, tch::Device::Cpu),
            )
        })
        .collect();
    group
        .start_all_reduce_sum(&buckets)
        .unwrap()
        .wait()
        .unwrap();
    for (i, b) in buckets.iter().enumerate() {
        let expected = (i + (4 + i)) as f64;
        assert_eq!(b.min().double_value(&[]), expected);
        assert_eq!(b.max().double_value(&[]), expected);
    }
    report("done", role.rank);
}

#[test]
fn broadcast_overwrites_with_the_root_tensor() {
    let Some(role) = role("broadcast_overwrites_with_the_root_tensor") else {
        return common::run_two("broadcast_overwrites_with_the_root_tensor");
    };
    let (_store, group) = role.join_gloo(TIMEOUT);
    let values = |r: usize| {
        vec![
            Tensor::from_slice(&[r as f32 + 0.25; 5]),
            Tensor::from_slice(&[r as f64 * 7.0; 3]).reshape([3, 1]),
        ]
    };
    let mine = values(role.rank);
    group.broadcast(&mine, 0).unwrap();
    for (got, want) in mine.iter().zip(values(0)) {
        assert!(got.equal(&want), "rank {}: {got:?} != {want:?}", role.rank);
    }
    // And from the other root, which the first broadcast did not test.
    let mine = values(role.rank);
    group.broadcast(&mine, 1).unwrap();
    for (got, want) in mine.iter().zip(values(1)) {
        assert!(got.equal(&want), "rank {}: {got:?} != {want:?}", role.rank);
    }
    report("done", role.rank);
}

#[test]
fn barrier_waits_for_every_rank() {
    let Some(role) = role("barrier_waits_for_every_rank") else {
        return common::run_two("barrier_waits_for_every_rank");
    };
    let store = role.store(TIMEOUT);
    // torch's default device, as the trainer will get it.
    let group = ProcessGroup::gloo(&store, role.rank, role.world_size, TIMEOUT).unwrap();
    group.barrier().unwrap();
    let late = Duration::from_millis(1500);
    if role.rank == 1 {
        std::thread::sleep(late);
    }
    let start = Instant::now();
    group.barrier().unwrap();
    if role.rank == 0 {
        let waited = start.elapsed();
        assert!(
            waited >= late / 2,
            "rank 0 left the barrier after {waited:?}, before rank 1 came"
        );
    }
    report("done", role.rank);
}
