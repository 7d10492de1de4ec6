//! Predicting with a fine-tuned classifier as transformers does, and the
//! classifier exported so that transformers loads it
//! (scripts/fixtures/finetune_predict_hf.sh made the fixture: our
//! `--export_hf` directory of a classifier fine-tuned here, and what
//! transformers 4.57.6's AutoModelForSequenceClassification and
//! AutoTokenizer computed from it on a test file without labels).

use std::path::{Path, PathBuf};

use clap::Parser;
use nezha_finetune::checkpoint::{self, Format};
use nezha_finetune::classify::{Encoder, Layout, TsvColumns};
use nezha_finetune::cli::{run, FinetuneCommand};
use nezha_stages::vocab::Vocab;
use nezha_train::tensorfile;

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    task: FinetuneCommand,
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/predict_hf")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Rows of a [N, K] tensor.
fn rows(t: &tch::Tensor) -> Vec<Vec<f64>> {
    let k = t.size()[1] as usize;
    let flat: Vec<f64> = Vec::try_from(t.to_kind(tch::Kind::Double).reshape([-1])).unwrap();
    flat.chunks(k).map(<[f64]>::to_vec).collect()
}

#[test]
fn predicted_probabilities_are_the_softmax_of_transformers_logits() {
    let f = fixture();
    let cases = tensorfile::load(&f.join("cases.safetensors")).unwrap();
    assert_eq!(
        cases.metadata["model_class"],
        "NezhaForSequenceClassification"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pred");
    let hf = f.join("hf");
    let (vocab, data) = (hf.join("vocab.txt"), f.join("data"));
    let args = [
        "finetune",
        "classify",
        "--do_predict",
        "--init_checkpoint",
        s(&hf),
        "--vocab_file",
        s(&vocab),
        "--data_dir",
        s(&data),
        "--text_b",
        "text_b",
        "--max_seq_length",
        "32",
        "--output_dir",
        s(&out),
    ];
    run(&Top::try_parse_from(args).unwrap().task).unwrap();
    let ours: Vec<Vec<f64>> = std::fs::read_to_string(out.join("test_results.tsv"))
        .unwrap()
        .lines()
        .map(|r| r.split('\t').map(|x| x.parse().unwrap()).collect())
        .collect();
    let logits = rows(cases.get("logits").unwrap());
    let theirs = rows(cases.get("probabilities").unwrap());
    assert_eq!(ours.len(), 12);
    assert_eq!(ours.len(), theirs.len());
    let mut worst = 0f64;
    for ((o, t), l) in ours.iter().zip(&theirs).zip(&logits) {
        assert!((o.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{o:?}");
        // softmax of transformers' logits, in f64.
        let m = l.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = l.iter().map(|x| (x - m).exp()).sum();
        for ((a, b), x) in o.iter().zip(t).zip(l) {
            worst = worst.max((a - b).abs()).max((a - (x - m).exp() / z).abs());
        }
    }
    eprintln!("largest difference from transformers: {worst:e}");
    assert!(worst <= 1e-5, "probabilities differ by {worst:e}");
    // The model is not a constant: its probabilities spread.
    let p: Vec<f64> = ours.iter().map(|r| r[1]).collect();
    let spread =
        p.iter().cloned().fold(f64::MIN, f64::max) - p.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.5, "{p:?}");
}

#[test]
fn the_exported_tokenizer_gives_our_input_ids() {
    let f = fixture();
    let cases = tensorfile::load(&f.join("cases.safetensors")).unwrap();
    assert_eq!(cases.metadata["tokenizer_class"], "BertTokenizerFast");
    let ids = cases.get("input_ids").unwrap();
    let types = cases.get("token_type_ids").unwrap();
    let mask = cases.get("attention_mask").unwrap();
    let vocab = std::sync::Arc::new(Vocab::load(&f.join("hf/vocab.txt")).unwrap());
    let enc = Encoder::new(vocab, true, 32).unwrap();
    let columns = TsvColumns {
        text_a: "text_a".into(),
        text_b: Some("text_b".into()),
        label: "label".into(),
    };
    let test = Layout::Tsv
        .read(&f.join("data/test.tsv"), &columns)
        .unwrap();
    for (i, e) in test.iter().enumerate() {
        let ours = enc.inputs(e);
        let n: i64 = mask.get(i as i64).sum(tch::Kind::Int64).int64_value(&[]);
        let theirs: Vec<i64> = Vec::try_from(ids.get(i as i64).narrow(0, 0, n)).unwrap();
        let segs: Vec<i64> = Vec::try_from(types.get(i as i64).narrow(0, 0, n)).unwrap();
        assert_eq!(ours.input_ids, theirs, "{}", e.origin);
        assert_eq!(ours.segment_ids, segs, "{}", e.origin);
    }
}

#[test]
fn export_writes_the_directory_transformers_loaded() {
    let f = fixture();
    let cases = tensorfile::load(&f.join("cases.safetensors")).unwrap();
    let info: serde_json::Value = serde_json::from_str(&cases.metadata["loading_info"]).unwrap();
    for (k, v) in info.as_object().unwrap() {
        assert!(
            v.as_array().unwrap().is_empty(),
            "transformers reported {k} = {v}"
        );
    }
    assert_eq!(cases.metadata["id2label"], r#"{"0": "neg", "1": "pos"}"#);
    let hf = f.join("hf");
    let (w, _) = checkpoint::read(&hf, Format::HuggingFace, None, None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let again = tmp.path().join("hf");
    nezha_finetune::hf_export::export(&again, &w, &hf.join("vocab.txt"), true).unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert!(
            std::fs::read(again.join(file)).unwrap() == std::fs::read(hf.join(file)).unwrap(),
            "{file} is no longer what transformers loaded: rerun scripts/fixtures/finetune_predict_hf.sh"
        );
    }
}
