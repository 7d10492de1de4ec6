//! LAMB on a CUDA GPU as two fused kernels over the flat buffers, compiled
//! at run time with NVRTC.
//!
//! Written with libtorch operators, one LAMB step over NEZHA-large's 335 M
//! parameters is about forty whole-buffer passes (each moment update, bias
//! correction, square root and quotient is a kernel with its own temporary),
//! about a third of a training step. Fused, it is two passes: the first
//! updates the moments and accumulates each parameter's three squared norms
//! (weights, gradient, and the trust-ratio denominator's direction), the
//! second recomputes the update and applies it scaled by the trust ratio.
//! The arithmetic is the reference's, as in [`super::Lamb::step_flat_ops`],
//! in f32; only the summation order of the norms differs.
//!
//! The kernels run on the legacy default stream, which is the stream
//! libtorch uses, so they are ordered with the surrounding tensor operations
//! without synchronising.

use std::sync::Arc;

use anyhow::{Context, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use tch::{Kind, Tensor};

use super::{Moments, OptimizerConfig};

const SOURCE: &str = r#"
// One block per chunk of one parameter; `chunk_param[c]` is the parameter's
// position in the flat layout, [chunk_start[c], chunk_end[c]) its elements.

__device__ float block_sum(float x, float* shared) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffff, x, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = x;
    __syncthreads();
    int warps = blockDim.x >> 5;
    x = (threadIdx.x < warps) ? shared[threadIdx.x] : 0.0f;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffff, x, o);
    __syncthreads();
    return x;
}

extern "C" __global__ void lamb_moments(
    const float* __restrict__ w, const float* __restrict__ g,
    float* __restrict__ m, float* __restrict__ v,
    const long long* __restrict__ chunk_start, const long long* __restrict__ chunk_end,
    const int* __restrict__ chunk_param, float* __restrict__ norms,
    float beta1, float beta2, float inv_bc1, float inv_bc2, float eps, float wd)
{
    __shared__ float shared[32];
    long long start = chunk_start[blockIdx.x], end = chunk_end[blockIdx.x];
    float sw = 0.0f, sg = 0.0f, sh = 0.0f;
    for (long long k = start + threadIdx.x; k < end; k += blockDim.x) {
        float gk = g[k], wk = w[k];
        float mk = m[k] * beta1 + gk * (1.0f - beta1);
        float vk = v[k] * beta2 + (gk * gk) * (1.0f - beta2);
        m[k] = mk;
        v[k] = vk;
        float dir = (mk * inv_bc1) / sqrtf(vk * inv_bc2 + eps) + wk * wd;
        sw += wk * wk;
        sg += gk * gk;
        sh += dir * dir;
    }
    sw = block_sum(sw, shared);
    sg = block_sum(sg, shared);
    sh = block_sum(sh, shared);
    if (threadIdx.x == 0) {
        int p = chunk_param[blockIdx.x];
        atomicAdd(&norms[3 * p], sw);
        atomicAdd(&norms[3 * p + 1], sg);
        atomicAdd(&norms[3 * p + 2], sh);
    }
}

extern "C" __global__ void lamb_apply(
    float* __restrict__ w, const float* __restrict__ m, const float* __restrict__ v,
    const long long* __restrict__ chunk_start, const long long* __restrict__ chunk_end,
    const int* __restrict__ chunk_param, const float* __restrict__ norms,
    const float* __restrict__ decay, float lr, float inv_bc1, float inv_bc2, float eps)
{
    int p = chunk_param[blockIdx.x];
    float w_norm = sqrtf(norms[3 * p]), g_norm = sqrtf(norms[3 * p + 1]);
    float trust = (w_norm > 0.0f && g_norm > 0.0f) ? w_norm / sqrtf(norms[3 * p + 2]) : 1.0f;
    trust = fminf(fmaxf(trust, 0.0f), 10.0f);
    float step = trust * lr, d = decay[p];
    long long start = chunk_start[blockIdx.x], end = chunk_end[blockIdx.x];
    for (long long k = start + threadIdx.x; k < end; k += blockDim.x) {
        float wk = w[k];
        float u = (m[k] * inv_bc1) / (sqrtf(v[k] * inv_bc2) + eps) + wk * d;
        w[k] = wk - u * step;
    }
}
"#;

/// Elements per block: large enough that a block's launch and reduction are
/// amortised, small enough that NEZHA-large gives thousands of blocks.
const CHUNK: i64 = 1 << 16;
const THREADS: u32 = 256;

pub struct FusedLamb {
    stream: Arc<CudaStream>,
    moments: CudaFunction,
    apply: CudaFunction,
    chunk_start: Tensor,
    chunk_end: Tensor,
    chunk_param: Tensor,
    /// Per parameter (layout order): ‖w‖², ‖g‖², ‖direction‖².
    norms: Tensor,
    /// Per parameter (layout order): its weight decay.
    decay: Tensor,
    chunks: u32,
}

impl FusedLamb {
    /// Compiles the kernels and lays out the chunks of `moments`' buffers;
    /// `decay` is per parameter in layout order.
    pub fn new(moments: &Moments, decay: &Tensor) -> Result<FusedLamb> {
        let device = moments.w.device();
        let tch::Device::Cuda(ordinal) = device else {
            anyhow::bail!("the fused LAMB kernels need a CUDA device, not {device:?}");
        };
        // cudarc panics on a library it cannot load; ask first.
        // SAFETY: these only try to open the shared libraries.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            anyhow::bail!("fused LAMB: the NVIDIA driver library (libcuda.so) cannot be loaded");
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            anyhow::bail!(
                "fused LAMB: NVRTC (libnvrtc.so.13, in the torch wheel's nvidia/cu13/lib) \
                 cannot be loaded; put that directory on LD_LIBRARY_PATH"
            );
        }
        let ctx = CudaContext::new(ordinal).context("CUDA driver (libcuda) for fused LAMB")?;
        let ptx = cudarc::nvrtc::compile_ptx(SOURCE)
            .map_err(|e| anyhow::anyhow!("compiling the fused LAMB kernels with NVRTC: {e:?}"))?;
        let module = ctx
            .load_module(ptx)
            .context("loading the fused LAMB kernels")?;
        let (mut starts, mut ends, mut owners) = (Vec::new(), Vec::new(), Vec::new());
        for (position, start, end) in moments.chunks(CHUNK) {
            starts.push(start);
            ends.push(end);
            owners.push(position as i32);
        }
        let params = moments.len() as i64;
        Ok(FusedLamb {
            stream: ctx.default_stream(),
            moments: module.load_function("lamb_moments")?,
            apply: module.load_function("lamb_apply")?,
            chunks: starts.len() as u32,
            chunk_start: Tensor::from_slice(&starts).to_device(device),
            chunk_end: Tensor::from_slice(&ends).to_device(device),
            chunk_param: Tensor::from_slice(&owners).to_device(device),
            norms: Tensor::zeros([3 * params], (Kind::Float, device)),
            decay: decay.to_kind(Kind::Float).to_device(device).contiguous(),
        })
    }

    /// One LAMB step: `g` is the flat (clipped) gradient, `bc1`/`bc2` the
    /// bias corrections of this step.
    pub fn step(
        &self,
        moments: &Moments,
        g: &Tensor,
        c: &OptimizerConfig,
        lr: f64,
        bc1: f64,
        bc2: f64,
    ) -> Result<()> {
        let ptr = |t: &Tensor| t.data_ptr() as u64;
        let g = g.contiguous();
        let _ = self.norms.shallow_clone().zero_();
        let config = LaunchConfig {
            grid_dim: (self.chunks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (w, m, v) = (ptr(&moments.w), ptr(&moments.m), ptr(&moments.v));
        let (starts, ends, owners) = (
            ptr(&self.chunk_start),
            ptr(&self.chunk_end),
            ptr(&self.chunk_param),
        );
        let (norms, decay, gp) = (ptr(&self.norms), ptr(&self.decay), ptr(&g));
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        let (ib1, ib2, eps, wd) = (
            (1.0 / bc1) as f32,
            (1.0 / bc2) as f32,
            c.epsilon as f32,
            c.weight_decay as f32,
        );
        let lr = lr as f32;
        // SAFETY: every pointer is the data of a live f32/i64/i32 CUDA
        // tensor of the sizes the chunk table was built from.
        unsafe {
            let mut launch = self.stream.launch_builder(&self.moments);
            launch
                .arg(&w)
                .arg(&gp)
                .arg(&m)
                .arg(&v)
                .arg(&starts)
                .arg(&ends)
                .arg(&owners)
                .arg(&norms)
                .arg(&b1)
                .arg(&b2)
                .arg(&ib1)
                .arg(&ib2)
                .arg(&eps)
                .arg(&wd);
            launch.launch(config).context("launching lamb_moments")?;
            let mut launch = self.stream.launch_builder(&self.apply);
            launch
                .arg(&w)
                .arg(&m)
                .arg(&v)
                .arg(&starts)
                .arg(&ends)
                .arg(&owners)
                .arg(&norms)
                .arg(&decay)
                .arg(&lr)
                .arg(&ib1)
                .arg(&ib2)
                .arg(&eps);
            launch.launch(config).context("launching lamb_apply")?;
        }
        Ok(())
    }
}
