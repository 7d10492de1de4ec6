//! NEZHA on libtorch: the model (`model`), the optimizers and learning-rate
//! schedule (`optim`) and the pretraining loop (`trainer`).

pub mod atomic;
pub mod model;
pub mod optim;
pub mod tensorfile;
pub mod trainer;
