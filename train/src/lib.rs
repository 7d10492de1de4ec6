//! NEZHA on libtorch (tch): the model (`model`), the reference optimizers and
//! learning-rate schedule (`optim`), and the pretraining loop (`trainer`).
//!
//! Building needs libtorch 2.13.0, which `scripts/libtorch.sh` installs from
//! PyPI into `~/.cache/nezha/torch-2.13.0` and exports as `LIBTORCH`:
//!
//! ```sh
//! source scripts/libtorch.sh
//! CARGO_TARGET_DIR=target-train cargo test -p nezha-train
//! ```
//!
//! `build.rs` gives every binary an rpath to `$LIBTORCH/lib`, so nothing
//! needs LD_LIBRARY_PATH at run time.
//!
//! Minimal use, feeding batches from any iterator:
//!
//! ```no_run
//! use nezha_train::model::NezhaConfig;
//! use nezha_train::trainer::{train, TrainConfig};
//! # fn batches() -> impl Iterator<Item = anyhow::Result<nezha_stages::Batch>> { std::iter::empty() }
//! let mut cfg = TrainConfig::new(NezhaConfig::base(), "out/pretrain");
//! cfg.schedule.total_steps = 1000;
//! cfg.schedule.warmup_steps = 100;
//! let summary = train(&cfg, batches())?;
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod eval;
pub mod model;
pub mod optim;
pub mod tensorfile;
pub mod trainer;
