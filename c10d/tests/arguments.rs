//! Calls refused before they reach c10d, in a single process (world size 1).

use std::time::Duration;

use nezha_c10d::{Error, GlooDevice, ProcessGroup, Store};
use tch::Tensor;

fn single(port: u16) -> (Store, ProcessGroup) {
    let t = Duration::from_secs(10);
    let store = Store::new("127.0.0.1", port, 1, true, t).unwrap();
    let group =
        ProcessGroup::gloo_on(&store, 0, 1, t, &GlooDevice::Hostname("127.0.0.1".into())).unwrap();
    (store, group)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_world_of_one_reduces_to_itself() {
    let (_store, group) = single(free_port());
    let t = Tensor::from_slice(&[1.5f32, -2.0]);
    group.all_reduce_sum(std::slice::from_ref(&t)).unwrap();
    assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.5, -2.0]);
    group.barrier().unwrap();
}

#[test]
fn non_contiguous_tensor_is_refused_by_index() {
    let (_store, group) = single(free_port());
    let ok = Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu));
    let strided = Tensor::zeros([3, 4], (tch::Kind::Float, tch::Device::Cpu)).transpose(0, 1);
    let err = group.all_reduce_sum(&[ok, strided]).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("rank 0/1: gloo all_reduce_sum of 2 tensor(s): tensor 1: not contiguous"),
        "{msg}"
    );
    // Refused before c10d, so the group is still usable.
    assert!(group.failure().is_none());
    group.barrier().unwrap();
}

#[test]
fn undefined_tensor_and_bad_root_are_refused() {
    let (_store, group) = single(free_port());
    let err = group
        .all_reduce_sum(&[Tensor::new()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("tensor 0: undefined tensor"), "{err}");
    let t = Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu));
    let err = group.broadcast(&[t], 1).unwrap_err().to_string();
    assert!(err.contains("root 1 is not a rank of 0..1"), "{err}");
}

#[test]
fn bad_rank_and_zero_timeout_are_refused() {
    let port = free_port();
    let store = Store::new("127.0.0.1", port, 1, true, Duration::from_secs(5)).unwrap();
    let err = ProcessGroup::gloo(&store, 2, 2, Duration::from_secs(5))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("rank 2 is not in 0..2"), "{err}");
    let err = ProcessGroup::gloo(&store, 0, 1, Duration::ZERO)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("below c10d's 1 ms resolution"), "{err}");
    let err = Store::new("127.0.0.1", free_port(), 0, true, Duration::from_secs(1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("world size 0 is not in 1..=i32::MAX"), "{err}");
}
