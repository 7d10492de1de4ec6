//! The reducer over two ranks leaves the mean of both ranks' gradients,
//! whether its buckets start during backward (armed) or after it.

mod common;

use std::time::Duration;

use common::{free_port, report, role, Ranks, Role};
use nezha_c10d::{
    check_same_parameters, GlooDevice, ProcessGroup, Reducer, Store, DEFAULT_BUCKET_BYTES,
};
use tch::{Device, Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Shapes and dtypes of a small model: more bytes than one small bucket
/// holds, one tensor above it, and a dtype change in the middle.
const SHAPES: &[(&str, &[i64], Kind)] = &[
    ("embeddings.weight", &[50, 8], Kind::Float),
    ("layer.0.bias", &[8], Kind::Float),
    ("layer.0.weight", &[8, 8], Kind::Float),
    ("head.scale", &[3], Kind::Double),
    ("head.weight", &[8, 2], Kind::Float),
    ("head.bias", &[2], Kind::Float),
];

fn params() -> Vec<(String, Tensor)> {
    tch::manual_seed(7);
    SHAPES
        .iter()
        .map(|(name, shape, kind)| {
            let p = Tensor::randn(*shape, (*kind, Device::Cpu)).set_requires_grad(true);
            (name.to_string(), p)
        })
        .collect()
}

/// What rank `r` backpropagates into each parameter: the gradient of
/// sum(p * w) is w.
fn weights(r: usize) -> Vec<Tensor> {
    tch::manual_seed(1000 + r as i64);
    SHAPES
        .iter()
        .map(|(_, shape, kind)| Tensor::randn(*shape, (*kind, Device::Cpu)))
        .collect()
}

fn backward(params: &[(String, Tensor)], w: &[Tensor]) {
    let loss = params
        .iter()
        .zip(w)
        .map(|((_, p), w)| (p * w).sum(Kind::Double))
        .reduce(|a, b| a + b)
        .unwrap();
    loss.backward();
}

fn check_mean(role: &Role, bucket_bytes: usize, armed: bool) {
    let (_store, group) = role.join_gloo(TIMEOUT);
    let params = params();
    let before: Vec<Tensor> = params.iter().map(|(_, p)| p.detach().copy()).collect();
    check_same_parameters(&group, &params).unwrap();
    let reducer = Reducer::new(&group, &params, bucket_bytes).unwrap();
    // Twice: the second step starts from a reset reducer and fresh gradients.
    for step in 0..2 {
        for (_, p) in &params {
            p.shallow_clone().zero_grad();
        }
        if armed {
            reducer.arm();
        }
        backward(&params, &weights(role.rank));
        // Armed, every bucket started during backward; otherwise none did.
        let expected = if armed { reducer.buckets() } else { 0 };
        assert_eq!(reducer.started(), expected, "step {step}");
        reducer.finish().unwrap();
        assert_eq!(reducer.started(), 0);
        let (w0, w1) = (weights(0), weights(1));
        for (i, (name, p)) in params.iter().enumerate() {
            let mean = (&w0[i] + &w1[i]) / 2.0;
            // Halving is exact in binary floating point, so the pre-divided
            // sum equals the mean bit for bit with two ranks.
            assert!(
                p.grad().equal(&mean),
                "rank {} step {step} {name}: {:?} != {:?}",
                role.rank,
                p.grad(),
                mean
            );
            assert!(p.detach().equal(&before[i]), "{name}'s value changed");
        }
    }
    report("done", role.rank);
}

#[test]
fn small_buckets_average_to_the_mean() {
    let Some(role) = role("small_buckets_average_to_the_mean") else {
        return common::run_two("small_buckets_average_to_the_mean");
    };
    // 256 bytes: the 1600-byte embedding alone, then several buckets.
    check_mean(&role, 256, false);
}

#[test]
fn buckets_started_during_backward_average_to_the_mean() {
    const TEST: &str = "buckets_started_during_backward_average_to_the_mean";
    let Some(role) = role(TEST) else {
        return common::run_two(TEST);
    };
    check_mean(&role, 256, true);
}

#[test]
fn a_rank_without_a_step_does_not_leave_the_others_waiting() {
    const TEST: &str = "a_rank_without_a_step_does_not_leave_the_others_waiting";
    let Some(role) = role(TEST) else {
        return common::run_two(TEST);
    };
    let (_store, group) = role.join_gloo(TIMEOUT);
    let params = params();
    let reducer = Reducer::new(&group, &params, 256).unwrap();
    if role.rank == 0 {
        reducer.arm();
        backward(&params, &weights(0));
        reducer.finish().unwrap();
        // Rank 1 sent zeros: the mean is half of rank 0's gradient.
        for (i, (name, p)) in params.iter().enumerate() {
            assert!(p.grad().equal(&(&weights(0)[i] / 2.0)), "{name}");
        }
    } else {
        // Its data ended: no backward, no gradients at all.
        reducer.finish_without_step().unwrap();
    }
    // The group is still in step: one more collective goes through.
    group.barrier().unwrap();
    report("done", role.rank);
}

#[test]
fn default_buckets_average_to_the_mean() {
    let Some(role) = role("default_buckets_average_to_the_mean") else {
        return common::run_two("default_buckets_average_to_the_mean");
    };
    check_mean(&role, DEFAULT_BUCKET_BYTES, true);
}

#[test]
fn different_parameters_are_detected_on_every_rank() {
    const TEST: &str = "different_parameters_are_detected_on_every_rank";
    let Some(role) = role(TEST) else {
        let mut ranks = Ranks::spawn(TEST, 2, &[]);
        for rank in 0..2 {
            let err = ranks.expect(rank, "error", Duration::from_secs(60));
            let start = format!(
                "rank {rank}/2: comparing parameters between ranks: this rank's 6 parameters"
            );
            assert!(err.starts_with(&start), "{err}");
            assert!(err.ends_with("differ from another rank's"), "{err}");
        }
        assert_eq!(
            ranks.finish(Duration::from_secs(30)),
            vec![Some(0), Some(0)]
        );
        return;
    };
    let (_store, group) = role.join_gloo(TIMEOUT);
    let mut params = params();
    if role.rank == 1 {
        // Same names and dtypes, one shape transposed.
        params[4].1 = Tensor::zeros([2, 8], (Kind::Float, Device::Cpu));
    }
    let err = check_same_parameters(&group, &params).unwrap_err();
    report("error", err.to_string());
}

#[test]
fn a_parameter_without_gradient_is_named() {
    let store = Store::new("127.0.0.1", free_port(), 1, true, TIMEOUT).unwrap();
    let device = GlooDevice::Hostname("127.0.0.1".into());
    let group = ProcessGroup::gloo_on(&store, 0, 1, TIMEOUT, &device).unwrap();
    let params = params();
    // Only the first two parameters take part in the loss.
    let w = weights(0);
    ((&params[0].1 * &w[0]).sum(Kind::Float) + (&params[1].1 * &w[1]).sum(Kind::Float)).backward();
    let reducer = Reducer::new(&group, &params, DEFAULT_BUCKET_BYTES).unwrap();
    let err = reducer.finish().unwrap_err().to_string();
    assert!(
        err.starts_with("rank 0/1: averaging the gradients of 6 parameters: parameter \"head.bias\" has no gradient"),
        "{err}"
    );
}
