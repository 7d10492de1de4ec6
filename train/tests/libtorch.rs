//! The crate links and runs against libtorch (rpath, no LD_LIBRARY_PATH).

use tch::{Device, Kind, Tensor};

#[test]
fn matmul_runs_on_cpu() {
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
    let b = a.matmul(&a);
    let got: Vec<f32> = b.reshape([-1]).try_into().unwrap();
    assert_eq!(got, vec![7.0, 10.0, 15.0, 22.0]);
    assert_eq!(b.device(), Device::Cpu);
    assert_eq!(b.kind(), Kind::Float);
}
