//! The optimizers' flat buffers: the first and second moments, and the
//! parameters and their gradients themselves, each one contiguous f32
//! buffer in which every parameter has a fixed slice.
//!
//! Parameters and gradients are *aliased*: each parameter's storage is its
//! slice of the flat parameter buffer (`set_data`), and once a gradient
//! exists it is re-pointed at its slice of the flat gradient buffer, where
//! autograd then accumulates in place. A step therefore reads and writes
//! whole buffers (a few kernels on a GPU, fused loops on the CPU) and never
//! gathers or scatters.

use anyhow::{bail, Result};
use tch::Tensor;

/// Parameters of one size, stored one after another at a fixed stride in
/// the flat layout, so that their slices of a flat buffer are the rows of a
/// `[count, numel]` matrix.
struct Group {
    /// Offset of the group in a flat buffer.
    offset: i64,
    /// Position of its first parameter in layout order.
    first: i64,
    count: i64,
    numel: i64,
    /// Distance between the starts of consecutive members: `numel`
    /// rounded up to [`ALIGN`].
    stride: i64,
}

impl Group {
    /// The group's slice of a flat buffer as a `[count, numel]` view, one
    /// parameter per row (the alignment gaps left out).
    fn rows(&self, flat: &Tensor) -> Tensor {
        flat.narrow(0, self.offset, self.count * self.stride)
            .view([self.count, self.stride])
            .narrow(1, 0, self.numel)
    }
}

/// Every parameter's slice starts at a multiple of this many elements
/// (256 bytes). libtorch's kernels take their vectorised paths only on
/// aligned data: a layer norm whose weight is a misaligned view runs its
/// slow kernel, three times slower, and so do the casts and gradient
/// accumulations into misaligned slices. The gaps hold zeros.
const ALIGN: i64 = 64;

fn aligned(n: i64) -> i64 {
    (n + ALIGN - 1) / ALIGN * ALIGN
}

/// First and second moments of every parameter, stored as two flat f32
/// buffers so that the optimizer updates all parameters with a few
/// whole-buffer kernels, and exposed per parameter as views. The flat layout
/// puts parameters of equal size next to each other: per-parameter norms are
/// then one row-reduction per size group (about ten groups for NEZHA)
/// instead of one kernel per parameter. Checkpoint names follow the
/// reference's slots: `<param>/lamb_m` etc.
pub struct Moments {
    m_suffix: &'static str,
    v_suffix: &'static str,
    names: Vec<String>,
    shapes: Vec<Vec<i64>>,
    /// Parameter indices in layout order.
    order: Vec<usize>,
    /// Flat offset of each parameter (by parameter index).
    offsets: Vec<i64>,
    groups: Vec<Group>,
    pub(crate) m: Tensor,
    pub(crate) v: Tensor,
    /// The parameters, which live in it (see the module comment).
    pub(crate) w: Tensor,
    /// Their gradients, once [`Moments::flat_grads`] has aliased them
    /// (allocated then: the per-parameter path never needs it).
    g: std::cell::OnceCell<Tensor>,
}

impl Moments {
    pub fn zeros(
        params: &[(String, Tensor)],
        m_suffix: &'static str,
        v_suffix: &'static str,
    ) -> Moments {
        let device = params.first().map_or(tch::Device::Cpu, |(_, t)| t.device());
        let numel = |i: usize| params[i].1.numel() as i64;
        let mut order: Vec<usize> = (0..params.len()).collect();
        order.sort_by_key(|&i| numel(i));
        let mut offsets = vec![0i64; params.len()];
        let mut groups: Vec<Group> = Vec::new();
        let mut total = 0i64;
        for (pos, &i) in order.iter().enumerate() {
            offsets[i] = total;
            match groups.last_mut() {
                Some(g) if g.numel == numel(i) => g.count += 1,
                _ => groups.push(Group {
                    offset: total,
                    first: pos as i64,
                    count: 1,
                    numel: numel(i),
                    stride: aligned(numel(i)),
                }),
            }
            total += aligned(numel(i));
        }
        let zeros = || Tensor::zeros([total], (tch::Kind::Float, device));
        let mut moments = Moments {
            m_suffix,
            v_suffix,
            names: params.iter().map(|(n, _)| n.clone()).collect(),
            shapes: params.iter().map(|(_, t)| t.size()).collect(),
            order,
            offsets,
            groups,
            m: zeros(),
            v: zeros(),
            w: Tensor::new(),
            g: std::cell::OnceCell::new(),
        };
        moments.w = zeros();
        for (i, (_, p)) in params.iter().enumerate() {
            let slice = moments.view(&moments.w, i);
            tch::no_grad(|| slice.shallow_clone().copy_(p));
            // Every handle on the parameter (the model's, the store's)
            // shares this TensorImpl, so all of them now see the slice.
            p.shallow_clone().set_data(&slice);
        }
        moments
    }

    /// Address of parameter `i`'s slice of a flat buffer.
    fn slice_ptr(&self, flat: &Tensor, i: usize) -> usize {
        flat.data_ptr() as usize + 4 * self.offsets[i] as usize
    }

    /// Fails unless every parameter still lives in the flat buffer (some
    /// code re-pointed one, e.g. with `set_data`): updating the buffer would
    /// then silently miss it.
    pub(crate) fn check_aliased(&self, params: &[(String, Tensor)]) -> Result<()> {
        for (i, (name, p)) in params.iter().enumerate() {
            if p.data_ptr() as usize != self.slice_ptr(&self.w, i) {
                bail!("parameter {name} no longer lives in the optimizer's flat buffer");
            }
        }
        Ok(())
    }

    /// Parameter `i`'s slice of a flat buffer, in the parameter's shape.
    fn view(&self, flat: &Tensor, i: usize) -> Tensor {
        let n: i64 = self.shapes[i].iter().product();
        flat.narrow(0, self.offsets[i], n)
            .view(self.shapes[i].as_slice())
    }

    /// Views of parameter `i`'s moments; writing to them writes the buffers.
    pub(crate) fn pair(&self, i: usize, name: &str) -> Result<(Tensor, Tensor)> {
        if self.names.get(i).map(String::as_str) != Some(name) {
            bail!("optimizer state is for other parameters (expected {name} at slot {i})");
        }
        Ok((self.view(&self.m, i), self.view(&self.v, i)))
    }

    /// Checks that `params` are the parameters these moments were made for.
    pub(crate) fn check(&self, params: &[(String, Tensor)]) -> Result<()> {
        if params.len() != self.names.len() {
            bail!(
                "optimizer state has {} parameters, {} given",
                self.names.len(),
                params.len()
            );
        }
        for (i, (name, t)) in params.iter().enumerate() {
            if self.names[i] != *name || self.shapes[i] != t.size() {
                bail!(
                    "optimizer state is for other parameters (slot {i}: {} {:?}, given {name} {:?})",
                    self.names[i],
                    self.shapes[i],
                    t.size()
                );
            }
        }
        Ok(())
    }

    /// `(offset, numel)` of every parameter's slice, in layout order.
    fn layout_slices(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.order
            .iter()
            .map(|&i| (self.offsets[i], self.shapes[i].iter().product()))
    }

    /// Number of parameters.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The flat layout cut into chunks of at most `size` elements, none
    /// spanning two parameters, for the fused optimizer loops and kernels:
    /// `(parameter's position in layout order, start, end)`.
    pub(crate) fn chunks(&self, size: i64) -> Vec<(usize, i64, i64)> {
        let mut chunks = Vec::new();
        for (position, (offset, numel)) in self.layout_slices().enumerate() {
            let mut start = offset;
            while start < offset + numel {
                let end = (start + size).min(offset + numel);
                chunks.push((position, start, end));
                start = end;
            }
        }
        chunks
    }

    /// One value per parameter (by parameter index), put in layout order.
    pub(crate) fn in_layout_order(&self, values: &[f32]) -> Vec<f32> {
        self.order.iter().map(|&i| values[i]).collect()
    }

    /// Per-parameter values in layout order as a tensor on the buffers'
    /// device, for the operator paths.
    pub(crate) fn layout_tensor(&self, values: &[f32]) -> Tensor {
        Tensor::from_slice(values).to_device(self.m.device())
    }

    /// The flat gradient buffer, in which every parameter's gradient now
    /// lives (changing it changes the gradients), or `None` when some
    /// parameter has none. The first call copies each gradient into its
    /// slice and re-points it there; later backward passes accumulate into
    /// the buffer directly, so this costs nothing from then on.
    pub fn flat_grads(&self, params: &[(String, Tensor)]) -> Option<Tensor> {
        if params.iter().any(|(_, p)| !p.grad().defined()) {
            return None;
        }
        let flat = self.g.get_or_init(|| self.w.zeros_like());
        tch::no_grad(|| {
            for (i, (_, p)) in params.iter().enumerate() {
                let mut grad = p.grad();
                if grad.data_ptr() as usize != self.slice_ptr(flat, i) {
                    let slice = self.view(flat, i);
                    slice.shallow_clone().copy_(&grad);
                    grad.set_data(&slice);
                }
            }
        });
        Some(flat.shallow_clone())
    }

    /// Zeroes every parameter's gradient in place (keeping it where it
    /// lives): the flat gradient buffer with one pass once the gradients
    /// live in it, and any gradient found elsewhere on its own.
    pub fn zero_grads(&self, params: &[(String, Tensor)]) {
        let flat = self.g.get();
        tch::no_grad(|| {
            if let Some(flat) = flat {
                let _ = flat.shallow_clone().zero_();
            }
            for (i, (_, p)) in params.iter().enumerate() {
                let mut grad = p.grad();
                let in_flat = flat.is_some_and(|f| {
                    self.offsets.get(i).is_some()
                        && grad.defined()
                        && grad.data_ptr() as usize == self.slice_ptr(f, i)
                });
                if grad.defined() && !in_flat {
                    let _ = grad.zero_();
                }
            }
        });
    }

    /// Per-parameter sums of squares of a flat buffer, in layout order.
    pub(crate) fn sums_of_squares(&self, x: &Tensor) -> Tensor {
        let parts: Vec<Tensor> = self
            .groups
            .iter()
            .map(|g| {
                g.rows(x)
                    .square()
                    .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// Multiplies each parameter's slice of `flat` by its entry of
    /// `per_param` (layout order), in place.
    pub(crate) fn scale_rows(&self, flat: &Tensor, per_param: &Tensor) -> Result<()> {
        for g in &self.groups {
            let mut rows = g.rows(flat);
            let factor = per_param.narrow(0, g.first, g.count).unsqueeze(1);
            let _ = rows.f_mul_(&factor)?;
        }
        Ok(())
    }

    /// `(name/m_suffix, m)` and `(name/v_suffix, v)` for every parameter.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.names.len());
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("{n}/{}", self.m_suffix), self.view(&self.m, i)));
            out.push((format!("{n}/{}", self.v_suffix), self.view(&self.v, i)));
        }
        out
    }

    /// Restores every moment from `source`; all must be present with the
    /// right shapes, and nothing is changed unless all are.
    pub fn load(&mut self, source: &[(String, Tensor)]) -> Result<()> {
        let expected = 2 * self.names.len();
        if source.len() != expected {
            bail!(
                "optimizer state has {} slots, this model needs {expected}",
                source.len()
            );
        }
        let mut found = Vec::with_capacity(expected);
        for (i, n) in self.names.iter().enumerate() {
            for suffix in [self.m_suffix, self.v_suffix] {
                let key = format!("{n}/{suffix}");
                let Some((_, t)) = source.iter().find(|(k, _)| *k == key) else {
                    bail!("optimizer slot {key} is missing");
                };
                if t.size() != self.shapes[i] {
                    bail!(
                        "optimizer slot {key} has shape {:?}, expected {:?}",
                        t.size(),
                        self.shapes[i]
                    );
                }
                found.push(t);
            }
        }
        tch::no_grad(|| {
            for i in 0..self.names.len() {
                self.view(&self.m, i).copy_(found[2 * i]);
                self.view(&self.v, i).copy_(found[2 * i + 1]);
            }
        });
        Ok(())
    }
}
