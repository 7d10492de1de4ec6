//! The NEZHA backbone: embeddings → encoder → pooler, with no task head.
//! [`NezhaForPreTraining`](super::NezhaForPreTraining) puts the MLM and NSP
//! heads on it; the fine-tuning models of `nezha-finetune` put a task head on
//! it. This is Hugging Face's `NezhaModel` (and candle's `BertModel` beside
//! `BertForMaskedLM`).
//!
//! The backbone registers its parameters in a [`ParamStore`] the caller owns
//! (the whole model's), under `{prefix}.embeddings.*`, `{prefix}.encoder.*`
//! and `{prefix}.pooler.*`; with the prefix `nezha` these are Hugging Face's
//! names.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::blocks::Mode;
use super::config::NezhaConfig;
use super::embeddings::Embeddings;
use super::encoder::Encoder;
use super::params::ParamStore;
use super::pooler::Pooler;
use super::relative_position::{relative_positions, sinusoid_table};

/// The TF reference's additive attention mask for padded keys. (Hugging Face
/// uses the dtype's minimum instead; real positions agree either way.)
pub const MASK_ADD: f64 = -10000.0;

pub struct NezhaOutput {
    /// `[B, L, H]` f32
    pub sequence_output: Tensor,
    /// `[B, H]` f32; `None` when the backbone was built without a pooler.
    pub pooled_output: Option<Tensor>,
}

pub struct NezhaModel {
    pub config: NezhaConfig,
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    /// Absent in the models whose head reads every position (token
    /// classification, question answering), as in Hugging Face.
    pub pooler: Option<Pooler>,
    /// `[2M+1, d]` f32 sinusoid table; a constant, not a parameter.
    relative_table: Tensor,
}

impl NezhaModel {
    /// Registers the backbone's parameters in `ps` under `prefix` (Hugging
    /// Face's is `nezha`), in the order embeddings, encoder layers, pooler,
    /// with TF initialisation drawn from libtorch's global generator.
    /// `add_pooler` is Hugging Face's `add_pooling_layer`.
    pub fn new(
        ps: &mut ParamStore,
        prefix: &str,
        config: &NezhaConfig,
        add_pooler: bool,
    ) -> Result<NezhaModel> {
        config.validate()?;
        let embeddings = Embeddings::new(ps, &format!("{prefix}.embeddings"), config);
        let encoder = Encoder::new(ps, &format!("{prefix}.encoder"), config);
        let pooler = add_pooler.then(|| Pooler::new(ps, &format!("{prefix}.pooler"), config));
        let relative_table =
            sinusoid_table(config.max_relative_position, config.head_size()).to_device(ps.device());
        Ok(NezhaModel {
            config: config.clone(),
            embeddings,
            encoder,
            pooler,
            relative_table,
        })
    }

    pub fn device(&self) -> Device {
        self.relative_table.device()
    }

    pub fn relative_table(&self) -> &Tensor {
        &self.relative_table
    }

    /// Replaces the sinusoid table, e.g. with Hugging Face's float32-built one
    /// to compare against it at 1e-6 rather than at the table's 4.5e-6 gap.
    pub fn set_relative_table(&mut self, table: &Tensor) -> Result<()> {
        let want = [
            2 * self.config.max_relative_position + 1,
            self.config.head_size(),
        ];
        if table.size() != want {
            bail!(
                "relative table has shape {:?}, expected {want:?}",
                table.size()
            );
        }
        self.relative_table = table.to_kind(Kind::Float).to_device(self.device());
        Ok(())
    }

    /// The encoder's sequence output `[B, L, H]` f32.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        input_mask: &Tensor,
        segment_ids: &Tensor,
        mode: Mode,
    ) -> Tensor {
        let len = input_ids.size()[1];
        let keep = input_mask.to_kind(Kind::Float).view([-1, 1, 1, len]);
        let mask_add = (keep.ones_like() - keep) * MASK_ADD;
        let rel = relative_positions(&self.relative_table, len, self.config.max_relative_position);
        let x = self.embeddings.forward(input_ids, segment_ids, mode);
        self.encoder.forward(&x, &mask_add, &rel, mode)
    }

    /// The pooled `[CLS]` summary `[B, H]` f32 of a sequence output, or `None`
    /// without a pooler.
    pub fn pool(&self, sequence_output: &Tensor, mode: Mode) -> Option<Tensor> {
        self.pooler
            .as_ref()
            .map(|p| p.forward(sequence_output, mode))
    }

    /// [`NezhaModel::encode`], then [`NezhaModel::pool`].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        input_mask: &Tensor,
        segment_ids: &Tensor,
        mode: Mode,
    ) -> NezhaOutput {
        let sequence_output = self.encode(input_ids, input_mask, segment_ids, mode);
        let pooled_output = self.pool(&sequence_output, mode);
        NezhaOutput {
            sequence_output,
            pooled_output,
        }
    }
}
