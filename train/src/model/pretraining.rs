//! NEZHA for pretraining: embeddings → encoder → pooler, then the MLM and NSP
//! heads. Parameter names are Hugging Face `NezhaForPreTraining`'s, so
//! safetensors files interchange directly.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::blocks::Mode;
use super::config::NezhaConfig;
use super::embeddings::Embeddings;
use super::encoder::Encoder;
use super::heads::{MlmHead, NspHead};
use super::inputs::PreTrainingInputs;
use super::params::ParamStore;
use super::pooler::Pooler;
use super::relative_position::{relative_positions, sinusoid_table};

/// The TF reference's additive attention mask for padded keys. (Hugging Face
/// uses the dtype's minimum instead; real positions agree either way.)
pub const MASK_ADD: f64 = -10000.0;

pub struct PreTrainingOutput {
    /// `[B, L, H]` f32
    pub sequence_output: Tensor,
    /// `[B, H]` f32
    pub pooled_output: Tensor,
    /// `[B·P, V]` f32, rows in `masked_lm_positions` order
    pub mlm_logits: Tensor,
    /// `[B, 2]` f32
    pub nsp_logits: Tensor,
}

pub struct NezhaForPreTraining {
    pub config: NezhaConfig,
    pub params: ParamStore,
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    pub pooler: Pooler,
    pub mlm: MlmHead,
    pub nsp: NspHead,
    /// `[2M+1, d]` f32 sinusoid table; a constant, not a parameter.
    relative_table: Tensor,
}

impl NezhaForPreTraining {
    /// Builds the model with TF initialisation drawn from libtorch's global
    /// generator (seed it with `tch::manual_seed` first).
    pub fn new(config: &NezhaConfig, device: Device) -> Result<NezhaForPreTraining> {
        config.validate()?;
        let mut ps = ParamStore::new(device);
        let embeddings = Embeddings::new(&mut ps, "nezha.embeddings", config);
        let encoder = Encoder::new(&mut ps, "nezha.encoder", config);
        let pooler = Pooler::new(&mut ps, "nezha.pooler", config);
        let mlm = MlmHead::new(&mut ps, "cls.predictions", config);
        let nsp = NspHead::new(&mut ps, "cls.seq_relationship", config);
        let relative_table =
            sinusoid_table(config.max_relative_position, config.head_size()).to_device(device);
        Ok(NezhaForPreTraining {
            config: config.clone(),
            params: ps,
            embeddings,
            encoder,
            pooler,
            mlm,
            nsp,
            relative_table,
        })
    }

    pub fn device(&self) -> Device {
        self.params.device()
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

    pub fn forward(&self, inputs: &PreTrainingInputs, mode: Mode) -> PreTrainingOutput {
        let seq = self.encode(
            &inputs.input_ids,
            &inputs.input_mask,
            &inputs.segment_ids,
            mode,
        );
        let pooled = self.pooler.forward(&seq, mode);
        let mlm_logits = self.mlm.forward(
            &seq,
            &inputs.masked_lm_positions,
            &self.embeddings.word_embeddings,
            mode,
        );
        let nsp_logits = self.nsp.forward(&pooled, mode);
        PreTrainingOutput {
            sequence_output: seq,
            pooled_output: pooled,
            mlm_logits,
            nsp_logits,
        }
    }
}
