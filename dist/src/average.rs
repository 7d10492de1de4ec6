//! Data-parallel gradient averaging: each rank's gradients are flattened into
//! buckets of about `bucket_bytes` (DDP's default is 25 MiB), every bucket is
//! all-reduced, and the mean is copied back into the gradients.

use std::ops::Range;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::group::ProcessGroup;

/// DDP's default bucket size.
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Replaces every parameter's gradient by its mean over all ranks.
///
/// Every rank must pass the same parameters (names, order, shapes, dtypes);
/// [`check_same_parameters`] verifies that once, at start. Gradients are
/// divided by the world size before the sum, as DDP does, so that half
/// precision does not overflow in the sum.
pub fn average_gradients(
    group: &ProcessGroup,
    params: &[(String, Tensor)],
    bucket_bytes: usize,
) -> Result<()> {
    let context = format!(
        "rank {}/{}: averaging the gradients of {} parameters",
        group.rank(),
        group.world_size(),
        params.len()
    );
    let mut grads = Vec::with_capacity(params.len());
    for (name, p) in params {
        let g = p.grad();
        if !g.defined() {
            return Err(Error::Invalid {
                context,
                problem: format!(
                    "parameter {name:?} has no gradient (every rank must have one for every \
                     parameter, or the buckets would differ between ranks)"
                ),
            });
        }
        if !is_float(g.kind()) {
            return Err(Error::Invalid {
                context,
                problem: format!(
                    "parameter {name:?} has a {:?} gradient, not a floating-point one",
                    g.kind()
                ),
            });
        }
        grads.push(g);
    }
    let layout: Vec<(Kind, Device, usize)> = grads
        .iter()
        .map(|g| {
            (
                g.kind(),
                g.device(),
                g.numel() * g.kind().elt_size_in_bytes(),
            )
        })
        .collect();
    let buckets = plan_buckets(&layout, bucket_bytes);
    let world = group.world_size() as f64;
    let _no_grad = tch::no_grad_guard();
    let flats: Vec<Tensor> = buckets
        .iter()
        .map(|range| {
            let parts: Vec<Tensor> = grads[range.clone()]
                .iter()
                .map(|g| g.reshape([-1]))
                .collect();
            Tensor::cat(&parts, 0) / world
        })
        .collect();
    group.all_reduce_sum(&flats)?;
    for (range, flat) in buckets.iter().zip(&flats) {
        let mut offset = 0i64;
        for g in &grads[range.clone()] {
            let n = g.numel() as i64;
            let mut g = g.shallow_clone();
            g.copy_(&flat.narrow(0, offset, n).view(g.size().as_slice()));
            offset += n;
        }
    }
    Ok(())
}

/// Fails on every rank unless all ranks pass the same parameter names, order,
/// shapes and dtypes: otherwise [`average_gradients`] would reduce buckets
/// that do not correspond, or wait on a peer that reduces something else.
pub fn check_same_parameters(group: &ProcessGroup, params: &[(String, Tensor)]) -> Result<()> {
    let mut hash = Fnv::new();
    for (name, p) in params {
        hash.write(name.as_bytes());
        hash.write(&[0]);
        hash.write(format!("{:?}{:?}", p.kind(), p.size()).as_bytes());
    }
    let mine = hash.finish();
    // Four 16-bit limbs: their sum over any realistic world size fits an
    // i64, and a sum equals world_size × mine for every limb only when the
    // hashes agree (for two ranks exactly; beyond, up to a hash collision).
    let limbs: Vec<i64> = (0..4)
        .map(|i| ((mine >> (16 * i)) & 0xffff) as i64)
        .collect();
    // On the parameters' device: NCCL reduces CUDA tensors only.
    let device = params.first().map_or(Device::Cpu, |(_, p)| p.device());
    let sums = Tensor::from_slice(&limbs).to_device(device);
    group.all_reduce_sum(std::slice::from_ref(&sums))?;
    let sums =
        Vec::<i64>::try_from(&sums.to_device(Device::Cpu)).expect("an i64 tensor of 4 elements");
    let n = group.world_size() as i64;
    if sums.iter().zip(&limbs).all(|(s, l)| *s == n * l) {
        return Ok(());
    }
    Err(Error::Invalid {
        context: format!(
            "rank {}/{}: comparing parameters between ranks",
            group.rank(),
            group.world_size()
        ),
        problem: format!(
            "this rank's {} parameters (names, order, shapes, dtypes; fingerprint {mine:016x}) \
             differ from another rank's",
            params.len()
        ),
    })
}

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

/// Splits consecutive tensors (dtype, device, bytes) into buckets: a bucket
/// holds one dtype on one device, and grows until the next tensor would take
/// it past `bucket_bytes`. A tensor larger than that is a bucket of its own.
fn plan_buckets(layout: &[(Kind, Device, usize)], bucket_bytes: usize) -> Vec<Range<usize>> {
    let mut buckets = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &(kind, device, size)) in layout.iter().enumerate() {
        let (k0, d0, _) = layout[start];
        let fits = i == start || (kind == k0 && device == d0 && bytes + size <= bucket_bytes);
        if !fits {
            buckets.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < layout.len() {
        buckets.push(start..layout.len());
    }
    buckets
}

/// FNV-1a, 64 bits: stable across processes, builds and Rust versions, which
/// std's hasher does not promise.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Kind = Kind::Float;
    const D: Kind = Kind::Double;
    const CPU: Device = Device::Cpu;

    #[test]
    fn buckets_fill_up_to_the_limit_and_no_further() {
        let layout = [
            (F, CPU, 40),
            (F, CPU, 60),
            (F, CPU, 1),
            (F, CPU, 99),
            (F, CPU, 100),
        ];
        assert_eq!(plan_buckets(&layout, 100), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn a_tensor_above_the_limit_gets_a_bucket_of_its_own() {
        let layout = [(F, CPU, 10), (F, CPU, 500), (F, CPU, 10)];
        assert_eq!(plan_buckets(&layout, 100), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn dtype_or_device_changes_start_a_new_bucket() {
        let layout = [
            (F, CPU, 4),
            (D, CPU, 8),
            (D, CPU, 8),
            (D, Device::Cuda(0), 8),
            (F, CPU, 4),
        ];
        assert_eq!(plan_buckets(&layout, 1 << 20), vec![0..1, 1..3, 3..4, 4..5]);
    }

    #[test]
    fn no_tensors_no_buckets() {
        assert!(plan_buckets(&[], 100).is_empty());
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        let hash = |s: &[u8]| {
            let mut h = Fnv::new();
            h.write(s);
            h.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
