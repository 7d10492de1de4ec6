//! Data parallelism on libtorch's own collectives: c10d's `TCPStore`
//! rendezvous and `ProcessGroupGloo` (CPU tensors), plus `ProcessGroupNCCL`
//! (CUDA tensors) with the `nccl` feature, bound through a thin C++ shim
//! (shim/*.cpp) that only marshals; everything else lives here.
//!
//! Building needs `source scripts/libtorch.sh` and Gloo's headers (Debian
//! `libgloo-dev`); the `nccl` feature also needs NEZHA_CUDA_HEADERS from
//! `source scripts/setup-dist.sh --nccl`.
//!
//! ```no_run
//! # use std::time::Duration;
//! # fn main() -> nezha_c10d::Result<()> {
//! let (rank, world, timeout) = (0, 2, Duration::from_secs(60));
//! let store = nezha_c10d::Store::new("127.0.0.1", 29500, world, rank == 0, timeout)?;
//! let group = nezha_c10d::ProcessGroup::gloo(&store, rank, world, timeout)?;
//! let grads = [tch::Tensor::ones([4], (tch::Kind::Float, tch::Device::Cpu))];
//! group.all_reduce_sum(&grads)?; // every rank now holds the sum
//! # Ok(())
//! # }
//! ```

mod collectives;
mod error;
mod ffi;
mod group;
mod heartbeat;
mod parameters;
mod reducer;
mod store;

pub use collectives::Pending;
pub use error::{Error, Result};
pub use group::{Backend, GlooDevice, ProcessGroup};
pub use heartbeat::{Beat, Diagnosis, Heartbeat};
pub use parameters::check_same_parameters;
pub use reducer::{Reducer, DEFAULT_BUCKET_BYTES};
pub use store::Store;
