//! LAMB and AdamWeightDecay on the CPU as fused loops over the flat buffers,
//! the CPU counterpart of the CUDA kernels in `fused_lamb.rs`.
//!
//! Written with libtorch operators, each step is a dozen or more whole-buffer
//! passes with their temporaries (moment updates, bias corrections, square
//! roots, quotients, norms): for `base` on two cores about a sixth of a
//! training step. Fused, LAMB reads and writes each buffer twice (moments
//! and the three squared norms, then the update) and Adam once. The
//! arithmetic is the reference's in f32, element for element as the
//! operator version computes it; the norms are summed in f64.
//!
//! The buffers are cut into chunks within one parameter's slice, which run
//! in parallel; each chunk's partial norms are kept and added up in chunk
//! order, so a step's result does not depend on the thread count or on the
//! scheduling.

use anyhow::{bail, Result};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::cpu_threads::pool;
use super::{Moments, OptimizerConfig};

/// Elements per chunk: each of a chunk's four buffers stays in L2 cache.
const CHUNK: usize = 1 << 15;

/// A piece of one parameter's slice of the flat buffers.
struct Chunk {
    /// The parameter's position in the flat layout.
    param: usize,
    start: usize,
    end: usize,
}

/// The chunk table of one set of flat buffers.
pub struct FusedCpu {
    chunks: Vec<Chunk>,
    params: usize,
    /// Elements of each flat buffer the table was cut for: a step on
    /// buffers of another layout is refused, as the loops index by the
    /// table.
    len: usize,
}

/// One flat f32 buffer, shared by the chunks of a pass. Chunks cover
/// disjoint ranges, so each may have its range mutably.
///
/// Sound because [`FusedCpu::buffers`] made it from a live contiguous f32
/// tensor of exactly the chunk table's length, the tensors stay borrowed
/// for the whole step, chunks lie inside that length (checked per chunk),
/// and the one buffer that is only read, the gradient, overlaps none of the
/// written ones.
#[derive(Clone, Copy)]
struct Buffer {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: see the type's comment.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

impl Buffer {
    /// The tensor's data, which must be a contiguous CPU f32 buffer of
    /// `len` elements.
    fn of(t: &Tensor, len: usize, what: &str) -> Result<Buffer> {
        if t.device() != Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
            bail!("fused CPU optimizer: the {what} buffer is not a contiguous CPU f32 tensor");
        }
        if t.numel() != len {
            bail!(
                "fused CPU optimizer: the {what} buffer has {} elements, the layout {len}",
                t.numel()
            );
        }
        Ok(Buffer {
            ptr: t.data_ptr() as *mut f32,
            len,
        })
    }

    fn overlaps(&self, other: &Buffer) -> bool {
        let (a, b) = (self.ptr as usize, other.ptr as usize);
        a < b + 4 * other.len && b < a + 4 * self.len
    }

    /// # Safety
    /// No other live slice may overlap `chunk`'s range.
    #[allow(clippy::mut_from_ref)]
    unsafe fn chunk_mut(&self, chunk: &Chunk) -> &mut [f32] {
        assert!(chunk.start <= chunk.end && chunk.end <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(chunk.start), chunk.end - chunk.start)
    }

    /// # Safety
    /// No live mutable slice may overlap `chunk`'s range.
    unsafe fn chunk(&self, chunk: &Chunk) -> &[f32] {
        assert!(chunk.start <= chunk.end && chunk.end <= self.len);
        std::slice::from_raw_parts(self.ptr.add(chunk.start), chunk.end - chunk.start)
    }
}

/// Adam's moment update of one element, `m = β₁m + (1−β₁)g`,
/// `v = β₂v + (1−β₂)g²`, in f32 as the operator version computes it.
struct AdamMoments {
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
}

impl AdamMoments {
    fn new(c: &OptimizerConfig) -> AdamMoments {
        AdamMoments {
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
        }
    }

    /// Updates the moments in place and returns them.
    #[inline]
    fn update(&self, m: &mut f32, v: &mut f32, g: f32) -> (f32, f32) {
        *m = *m * self.beta1 + g * self.one_minus_beta1;
        *v = *v * self.beta2 + g * g * self.one_minus_beta2;
        (*m, *v)
    }
}

/// The four flat buffers of a step.
struct Buffers {
    w: Buffer,
    g: Buffer,
    m: Buffer,
    v: Buffer,
}

impl FusedCpu {
    /// The chunk table for `moments`' layout.
    pub fn new(moments: &Moments) -> FusedCpu {
        let chunks = moments
            .chunks(CHUNK as i64)
            .into_iter()
            .map(|(param, start, end)| Chunk {
                param,
                start: start as usize,
                end: end as usize,
            })
            .collect();
        FusedCpu {
            chunks,
            params: moments.len(),
            len: moments.w.numel(),
        }
    }

    /// The step's buffers, checked to be what the unsafe slicing needs:
    /// contiguous CPU f32 buffers of the table's length, the gradient
    /// overlapping none of the others.
    fn buffers(&self, moments: &Moments, g: &Tensor) -> Result<Buffers> {
        let len = self.len;
        let b = Buffers {
            w: Buffer::of(&moments.w, len, "parameter")?,
            g: Buffer::of(g, len, "gradient")?,
            m: Buffer::of(&moments.m, len, "first moment")?,
            v: Buffer::of(&moments.v, len, "second moment")?,
        };
        if [b.w, b.m, b.v].iter().any(|other| other.overlaps(&b.g)) {
            bail!("fused CPU optimizer: the gradient buffer overlaps the parameters or moments");
        }
        Ok(b)
    }

    /// One LAMB step from the flat (clipped) gradient `g`; `decay` is per
    /// parameter in layout order, `bc1`/`bc2` the step's bias corrections.
    #[allow(clippy::too_many_arguments)]
    pub fn lamb(
        &self,
        moments: &Moments,
        g: &Tensor,
        decay: &[f32],
        c: &OptimizerConfig,
        lr: f64,
        bc1: f64,
        bc2: f64,
    ) -> Result<()> {
        let b = self.buffers(moments, g)?;
        let adam = AdamMoments::new(c);
        let (bc1, bc2, eps, wd) = (
            bc1 as f32,
            bc2 as f32,
            c.epsilon as f32,
            c.weight_decay as f32,
        );

        // Pass 1: the moments, and per chunk ‖w‖², ‖g‖² and ‖direction‖²,
        // the direction being the trust ratio's denominator.
        let partial: Vec<[f64; 3]> = pool().install(|| {
            self.chunks
                .par_iter()
                .map(|chunk| {
                    // SAFETY: chunks are disjoint; w and g are only read.
                    let (w, g, m, v) = unsafe {
                        (
                            b.w.chunk(chunk),
                            b.g.chunk(chunk),
                            b.m.chunk_mut(chunk),
                            b.v.chunk_mut(chunk),
                        )
                    };
                    let mut sums = [0f64; 3];
                    for k in 0..w.len() {
                        let (gk, wk) = (g[k], w[k]);
                        let (mk, vk) = adam.update(&mut m[k], &mut v[k], gk);
                        let dir = (mk / bc1) / (vk / bc2 + eps).sqrt() + wk * wd;
                        for (sum, x) in sums.iter_mut().zip([wk, gk, dir]) {
                            *sum += f64::from(x) * f64::from(x);
                        }
                    }
                    sums
                })
                .collect()
        });

        // Per parameter, in chunk order: the trust ratio times the rate.
        let mut norms = vec![[0f64; 3]; self.params];
        for (chunk, sums) in self.chunks.iter().zip(&partial) {
            for (n, s) in norms[chunk.param].iter_mut().zip(sums) {
                *n += s;
            }
        }
        let step: Vec<f32> = norms
            .iter()
            .map(|[w2, g2, d2]| {
                let (w_norm, g_norm) = (w2.sqrt() as f32, g2.sqrt() as f32);
                let trust = if w_norm > 0.0 && g_norm > 0.0 {
                    w_norm / d2.sqrt() as f32
                } else {
                    1.0
                };
                trust.clamp(0.0, 10.0) * lr as f32
            })
            .collect();

        // Pass 2: the update, scaled by its parameter's trust ratio.
        pool().install(|| {
            self.chunks.par_iter().for_each(|chunk| {
                // SAFETY: chunks are disjoint; m and v are only read.
                let (w, m, v) =
                    unsafe { (b.w.chunk_mut(chunk), b.m.chunk(chunk), b.v.chunk(chunk)) };
                let (d, s) = (decay[chunk.param], step[chunk.param]);
                for k in 0..w.len() {
                    let u = (m[k] / bc1) / ((v[k] / bc2).sqrt() + eps) + w[k] * d;
                    w[k] -= u * s;
                }
            })
        });
        Ok(())
    }

    /// One AdamWeightDecay step (no bias correction, as the reference):
    /// `u = m/(√v + ε) + wd·w`, `w −= lr·u`, in one pass.
    pub fn adam(
        &self,
        moments: &Moments,
        g: &Tensor,
        decay: &[f32],
        c: &OptimizerConfig,
        lr: f64,
    ) -> Result<()> {
        let b = self.buffers(moments, g)?;
        let adam = AdamMoments::new(c);
        let (eps, lr) = (c.epsilon as f32, lr as f32);
        pool().install(|| {
            self.chunks.par_iter().for_each(|chunk| {
                // SAFETY: chunks are disjoint; g is only read.
                let (w, g, m, v) = unsafe {
                    (
                        b.w.chunk_mut(chunk),
                        b.g.chunk(chunk),
                        b.m.chunk_mut(chunk),
                        b.v.chunk_mut(chunk),
                    )
                };
                let d = decay[chunk.param];
                for k in 0..w.len() {
                    let (mk, vk) = adam.update(&mut m[k], &mut v[k], g[k]);
                    let u = mk / (vk.sqrt() + eps) + w[k] * d;
                    w[k] -= u * lr;
                }
            })
        });
        Ok(())
    }
}
