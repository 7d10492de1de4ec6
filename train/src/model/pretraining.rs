//! NEZHA for pretraining: the [`NezhaModel`] backbone (embeddings → encoder →
//! pooler), then the MLM and NSP heads. Parameter names are Hugging Face
//! `NezhaForPreTraining`'s, so safetensors files interchange directly.

use anyhow::Result;
use tch::{Device, Tensor};

use super::blocks::Mode;
use super::config::NezhaConfig;
use super::heads::{MlmHead, NspHead};
use super::inputs::PreTrainingInputs;
use super::nezha::NezhaModel;
use super::params::ParamStore;

pub use super::nezha::MASK_ADD;

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
    /// Every parameter, the backbone's (`nezha.*`) then the heads' (`cls.*`).
    pub params: ParamStore,
    /// The backbone, with its pooler (the NSP head reads it).
    pub nezha: NezhaModel,
    pub mlm: MlmHead,
    pub nsp: NspHead,
}

impl NezhaForPreTraining {
    /// Builds the model with TF initialisation drawn from libtorch's global
    /// generator (seed it with `tch::manual_seed` first).
    pub fn new(config: &NezhaConfig, device: Device) -> Result<NezhaForPreTraining> {
        let mut ps = ParamStore::new(device);
        let nezha = NezhaModel::new(&mut ps, "nezha", config, true)?;
        let mlm = MlmHead::new(&mut ps, "cls.predictions", config);
        let nsp = NspHead::new(&mut ps, "cls.seq_relationship", config);
        Ok(NezhaForPreTraining {
            config: config.clone(),
            params: ps,
            nezha,
            mlm,
            nsp,
        })
    }

    pub fn device(&self) -> Device {
        self.params.device()
    }

    pub fn relative_table(&self) -> &Tensor {
        self.nezha.relative_table()
    }

    /// Replaces the sinusoid table, e.g. with Hugging Face's float32-built one
    /// to compare against it at 1e-6 rather than at the table's 4.5e-6 gap.
    pub fn set_relative_table(&mut self, table: &Tensor) -> Result<()> {
        self.nezha.set_relative_table(table)
    }

    /// The encoder's sequence output `[B, L, H]` f32.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        input_mask: &Tensor,
        segment_ids: &Tensor,
        mode: Mode,
    ) -> Tensor {
        self.nezha.encode(input_ids, input_mask, segment_ids, mode)
    }

    pub fn forward(&self, inputs: &PreTrainingInputs, mode: Mode) -> PreTrainingOutput {
        let seq = self.encode(
            &inputs.input_ids,
            &inputs.input_mask,
            &inputs.segment_ids,
            mode,
        );
        let pooled = self
            .nezha
            .pool(&seq, mode)
            .expect("NezhaForPreTraining builds its backbone with a pooler");
        let mlm_logits = self.mlm.forward(
            &seq,
            &inputs.masked_lm_positions,
            &self.nezha.embeddings.word_embeddings,
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
