//! Where a fine-tuning run computes and in what precision: `--device
//! cpu|cuda|cuda:N` through the pretraining trainer's
//! `nezha_train::trainer::parse_device` (which refuses a device libtorch
//! cannot see, before anything is read or written), and `--precision
//! auto|fp32|bf16|fp16` as the pipeline's `[train] precision`
//! (`src/train_section.rs`): `auto` is bf16 autocast on CUDA and fp32 on
//! the CPU, which has no reduced precision here. `--threads` sets
//! libtorch's CPU threads, so it is refused on a GPU.

use anyhow::{bail, Result};
use nezha_train::trainer::{parse_device, Precision};
use tch::Device;

/// The resolved device, precision and CPU threads of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    pub device: Device,
    pub precision: Precision,
    /// libtorch's intra-op threads (CPU only).
    pub threads: Option<i32>,
}

/// `device` (default cpu), `precision` (default auto) and `threads`
/// (given, or `default_threads` on the CPU).
pub fn resolve(
    device: Option<&str>,
    precision: Option<&str>,
    threads: Option<i32>,
    default_threads: i32,
) -> Result<Placement> {
    let name = device.unwrap_or("cpu");
    let device = parse_device(name)?;
    let on_cuda = device.is_cuda();
    let precision = match precision.unwrap_or("auto") {
        "auto" if on_cuda => Precision::Bf16,
        "auto" | "fp32" => Precision::Fp32,
        "bf16" => Precision::Bf16,
        "fp16" => Precision::Fp16,
        other => bail!("--precision {other:?}: expected auto, fp32, bf16 or fp16"),
    };
    if !on_cuda && precision != Precision::Fp32 {
        bail!("--precision {precision:?} needs --device cuda; the CPU fine-tunes in fp32");
    }
    let threads = match (on_cuda, threads) {
        (true, Some(n)) => {
            bail!("--threads {n} sets CPU threads; a run on {name} computes on the GPU")
        }
        (true, None) => None,
        (false, Some(n)) if n < 1 => bail!("--threads must be at least 1, got {n}"),
        (false, n) => Some(n.unwrap_or(default_threads)),
    };
    Ok(Placement {
        device,
        precision,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_fp32_with_threads() {
        let p = resolve(None, None, None, 2).unwrap();
        assert_eq!(
            (p.device, p.precision, p.threads),
            (Device::Cpu, Precision::Fp32, Some(2))
        );
        let p = resolve(Some("cpu"), Some("fp32"), Some(1), 2).unwrap();
        assert_eq!(p.threads, Some(1));
        let e = resolve(Some("cpu"), Some("bf16"), None, 2).unwrap_err();
        assert!(e.to_string().contains("needs --device cuda"), "{e}");
        let e = resolve(None, Some("fp8"), None, 2).unwrap_err();
        assert!(
            e.to_string().contains("expected auto, fp32, bf16 or fp16"),
            "{e}"
        );
        let e = resolve(Some("tpu"), None, None, 2).unwrap_err();
        assert!(
            e.to_string().contains("expected cpu, cuda or cuda:N"),
            "{e}"
        );
    }
}
