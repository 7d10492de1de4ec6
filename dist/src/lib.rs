//! Data parallelism on libtorch's own collectives: c10d's `TCPStore`
//! rendezvous and `ProcessGroupGloo` (CPU tensors), plus `ProcessGroupNCCL`
//! (CUDA tensors) with the `nccl` feature, bound through a thin C++ shim
//! (shim/*.cpp) that only marshals; everything else lives here.

mod collectives;
mod error;
mod ffi;
mod group;
mod store;

pub use collectives::Pending;
pub use error::{Error, Result};
pub use group::{Backend, GlooDevice, ProcessGroup};
pub use store::Store;
