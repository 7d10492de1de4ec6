//! ProcessGroupNCCL (the `nccl` feature). Without a GPU only the refusal is
//! checked, which still proves the shim reached libtorch_cuda; with GPUs the
//! collectives run, one rank per GPU.
#![cfg(feature = "nccl")]

mod common;

use std::time::Duration;

use common::{free_port, report, role, Ranks};
use nezha_c10d::{ProcessGroup, Store};
use tch::{Device, Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn without_a_gpu_the_nccl_group_is_refused() {
    if tch::Cuda::is_available() {
        // Where a GPU exists the group is created, not refused: the ignored
        // nccl_collectives_on_every_gpu is the test there.
        return;
    }
    let store = Store::new("127.0.0.1", free_port(), 1, true, TIMEOUT).unwrap();
    let err = ProcessGroup::nccl(&store, 0, 1, TIMEOUT)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("rank 0/1: creating the nccl group"),
        "{err}"
    );
    eprintln!("{err}");
    assert!(err.contains("GPU"), "{err}");
}

#[test]
#[ignore = "needs CUDA GPUs: cargo test --features nccl -- --ignored"]
fn nccl_collectives_on_every_gpu() {
    const TEST: &str = "nccl_collectives_on_every_gpu";
    let Some(role) = role(TEST) else {
        assert!(tch::Cuda::is_available(), "this test needs a GPU");
        let gpus = tch::Cuda::device_count() as usize;
        let mut ranks = Ranks::spawn(TEST, gpus, &[]);
        for rank in 0..gpus {
            assert_eq!(ranks.expect(rank, "done", Duration::from_secs(120)), "ok");
        }
        assert!(ranks
            .finish(Duration::from_secs(60))
            .iter()
            .all(|c| *c == Some(0)));
        return;
    };
    let device = Device::Cuda(role.rank);
    let store = role.store(TIMEOUT);
    let group = ProcessGroup::nccl(&store, role.rank, role.world_size, TIMEOUT).unwrap();
    let n = role.world_size as f64;
    let t = Tensor::full([1 << 20], role.rank as f64 + 1.0, (Kind::Float, device));
    group.all_reduce_sum(std::slice::from_ref(&t)).unwrap();
    let sum = n * (n + 1.0) / 2.0;
    assert_eq!(t.min().double_value(&[]), sum);
    assert_eq!(t.max().double_value(&[]), sum);
    let b = Tensor::full([7], role.rank as f64 * 3.0 + 1.0, (Kind::Double, device));
    group.broadcast(std::slice::from_ref(&b), 0).unwrap();
    assert_eq!(
        Vec::<f64>::try_from(&b.to(Device::Cpu)).unwrap(),
        vec![1.0; 7]
    );
    group.barrier().unwrap();
    let cpu = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    let err = group.all_reduce_sum(&[cpu]).unwrap_err().to_string();
    assert!(
        err.contains("tensor 0: on Cpu, which the nccl backend does not serve"),
        "{err}"
    );
    report("done", "ok");
}
