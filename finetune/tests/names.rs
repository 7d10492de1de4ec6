//! The TF/HF name table agrees with the model `nezha-train` builds.

use nezha_finetune::checkpoint::names::{param_specs, Architecture};
use nezha_train::model::{NezhaConfig, NezhaForPreTraining};
use tch::Device;

#[test]
fn pretraining_table_is_exactly_the_models_parameters() {
    let cfg = NezhaConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 3,
        num_attention_heads: 2,
        intermediate_size: 24,
        type_vocab_size: 3,
        ..NezhaConfig::tiny()
    };
    let model = NezhaForPreTraining::new(&cfg, Device::Cpu).unwrap();
    let ours: Vec<(String, Vec<i64>)> = model
        .params
        .named()
        .iter()
        .map(|(n, t)| (n.clone(), t.size()))
        .collect();
    let table: Vec<(String, Vec<i64>)> = param_specs(&cfg, Architecture::PreTraining)
        .into_iter()
        .map(|s| (s.hf, s.shape))
        .collect();
    assert_eq!(table, ours);
}

#[test]
fn only_kernels_are_transposed() {
    let cfg = NezhaConfig::tiny();
    for arch in [
        Architecture::PreTraining,
        Architecture::SequenceClassification { num_labels: 3 },
        Architecture::QuestionAnswering,
    ] {
        for s in param_specs(&cfg, arch) {
            assert_eq!(s.transpose, s.tf.ends_with("/kernel"), "{}", s.tf);
            assert_eq!(
                s.vocab_rows,
                s.tf == "bert/embeddings/word_embeddings" || s.tf == "cls/predictions/output_bias"
            );
        }
    }
    let tok = param_specs(&cfg, Architecture::TokenClassification { num_labels: 4 });
    assert!(tok.iter().all(|s| !s.hf.starts_with("nezha.pooler")));
    assert_eq!(tok.last().unwrap().tf, "output_bias");
    assert_eq!(tok.last().unwrap().shape, vec![4]);
}
