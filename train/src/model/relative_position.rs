//! Functional relative position encoding: the reference's `modeling.py`
//! `_generate_relative_positions_matrix` (the index) and
//! `_generate_relative_positions_embeddings` (the table and `R`), at the
//! commit `docs/notes/model.md` names.
//!
//! The table is indexed by the *shifted* clipped distance `clip(j − i, ±M) + M`
//! and the sinusoid argument is that shifted index, not the signed distance of
//! the paper's equations: every released implementation does this, and the
//! checkpoints were trained with it.

use tch::{Device, Kind, Tensor};

/// The `[2M+1, d]` sinusoid table, interleaved (`sin` at even, `cos` at odd
/// columns), computed in f64 and rounded to f32 as the TF reference's numpy.
pub fn sinusoid_table(max_relative_position: i64, depth: i64) -> Tensor {
    let vocab = 2 * max_relative_position + 1;
    let mut table = Vec::with_capacity((vocab * depth) as usize);
    for pos in 0..vocab {
        for col in 0..depth {
            let k = col / 2;
            let angle = pos as f64 / 10000f64.powf((2 * k) as f64 / depth as f64);
            let v = if col % 2 == 0 {
                angle.sin()
            } else {
                angle.cos()
            };
            table.push(v as f32);
        }
    }
    Tensor::from_slice(&table).reshape([vocab, depth])
}

/// `idx[i, j] = clip(j − i, −M, M) + M` for a length-`len` sequence.
pub fn relative_index(len: i64, max_relative_position: i64, device: Device) -> Tensor {
    let range = Tensor::arange(len, (Kind::Int64, device));
    let distance = range.unsqueeze(0) - range.unsqueeze(1);
    distance.clamp(-max_relative_position, max_relative_position) + max_relative_position
}

/// `R[i, j, :] = table[idx[i, j]]`, shape `[len, len, d]`. One `R` serves
/// keys and values of every head and every layer.
pub fn relative_positions(table: &Tensor, len: i64, max_relative_position: i64) -> Tensor {
    let idx = relative_index(len, max_relative_position, table.device());
    let depth = table.size()[1];
    table
        .index_select(0, &idx.reshape([-1]))
        .reshape([len, len, depth])
}
