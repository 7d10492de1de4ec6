//! The check that every rank trains the same parameters (names, order,
//! shapes, dtypes): otherwise the gradient buckets of [`crate::Reducer`]
//! would not correspond between ranks, or a rank would wait on a peer that
//! reduces something else.

use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::group::ProcessGroup;

/// Fails on every rank unless all ranks pass the same parameter names, order,
/// shapes and dtypes: otherwise [`crate::Reducer`] would reduce buckets
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
