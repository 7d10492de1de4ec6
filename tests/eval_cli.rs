//! `nezha eval` against Hugging Face `NezhaForPreTraining` plus the
//! reference `metric_fn` formulas (tests/fixtures/eval/, written by
//! scripts/fixtures/eval.py), from a Hugging Face directory, our weights
//! file and checkpoint directory, and a TF checkpoint prefix; and its
//! refusals of bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{nezha, root};
use serde_json::Value;

const METRICS: [&str; 5] = [
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "next_sentence_accuracy",
    "next_sentence_loss",
];

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/eval").join(name)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `nezha eval` on config `key`'s records with `checkpoint` and `extra`
/// flags, writing into `out`.
fn eval(key: &str, checkpoint: &Path, out: &Path, extra: &[&str]) -> Output {
    let records = fixture(&format!("eval_{key}.tfrecord"));
    let vocab = fixture(&format!("vocab_{key}.txt"));
    let mut args = vec![
        "eval",
        "--input_file",
        s(&records),
        "--init_checkpoint",
        s(checkpoint),
        "--vocab_file",
        s(&vocab),
        "--max_seq_length",
        "24",
        "--max_predictions_per_seq",
        "4",
        "--output_dir",
        s(out),
    ];
    args.extend_from_slice(extra);
    nezha(&args, &root())
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "nezha eval failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads eval_results.json and checks that eval_results.txt says the same
/// in the reference's layout: `key = value` lines in sorted key order.
fn results(dir: &Path) -> Value {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval_results.json")).unwrap())
            .unwrap();
    let text = std::fs::read_to_string(dir.join("eval_results.txt")).unwrap();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .map(|l| l.split_once(" = ").expect("key = value"))
        .collect();
    let keys: Vec<&str> = lines.iter().map(|(k, _)| *k).collect();
    let mut want = vec!["global_step"];
    want.extend(METRICS);
    assert_eq!(keys, want, "{text}");
    for (k, v) in lines {
        let v: f64 = v.parse().unwrap();
        let j = json[k].as_f64().unwrap();
        // The text holds float32 digits, as the reference's str(np.float32).
        assert!((v - j).abs() <= 1e-6 * j.abs().max(1.0), "{k}: {v} vs {j}");
    }
    json
}

fn assert_close(got: &Value, want: &Value, what: &str) {
    for k in METRICS {
        let (g, w) = (got[k].as_f64().unwrap(), want[k].as_f64().unwrap());
        assert!(
            (g - w).abs() <= 1e-4 * w.abs(),
            "{what}: {k} = {g}, transformers + metric_fn give {w}"
        );
    }
}

fn run_of(key: &str, batch: u64, steps: u64) -> Value {
    let e = expected();
    e["configs"][key]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["eval_batch_size"] == batch && r["max_eval_steps"] == steps)
        .unwrap()["metrics"]
        .clone()
}

#[test]
fn hf_directories_match_transformers_and_metric_fn() {
    let dir = tempfile::tempdir().unwrap();
    let e = expected();
    for key in ["a", "b"] {
        for run in e["configs"][key]["runs"].as_array().unwrap() {
            let (bs, steps) = (
                run["eval_batch_size"].as_u64().unwrap(),
                run["max_eval_steps"].as_u64().unwrap(),
            );
            let out_dir = dir.path().join(format!("{key}_{bs}_{steps}"));
            let (bs_s, steps_s) = (bs.to_string(), steps.to_string());
            // The reference defaults (8, 100) run without the flags.
            let extra: Vec<&str> = if (bs, steps) == (8, 100) {
                vec![]
            } else {
                vec!["--eval_batch_size", &bs_s, "--max_eval_steps", &steps_s]
            };
            let out = eval(key, &fixture(&format!("hf_{key}")), &out_dir, &extra);
            ok(&out);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains(&format!("({} batches of {bs})", run["batches"])),
                "{stdout}"
            );
            let got = results(&out_dir);
            assert_close(
                &got,
                &run["metrics"],
                &format!("hf_{key} bs {bs} steps {steps}"),
            );
            assert_eq!(got["global_step"], 0);
        }
    }
}

#[test]
fn our_weights_and_tf_prefixes_match_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for key in ["a", "b"] {
        let want = run_of(key, 8, 100);
        let hf = fixture(&format!("hf_{key}"));

        // Our safetensors file, converted by `nezha convert`.
        let ours = d.join(format!("{key}.safetensors"));
        ok(&nezha(
            &["convert", "hf", s(&hf), "nezha", s(&ours)],
            &root(),
        ));
        let out_dir = d.join(format!("ours_{key}"));
        ok(&eval(key, &ours, &out_dir, &[]));
        let got = results(&out_dir);
        assert_close(&got, &want, &format!("ours_{key}"));
        assert_eq!(got["global_step"], 0);

        // A training checkpoint directory: the step comes from state.json.
        let step_dir = d.join(format!("ckpt_{key}/checkpoints/step-00000042"));
        std::fs::create_dir_all(&step_dir).unwrap();
        std::fs::copy(&ours, step_dir.join("model.safetensors")).unwrap();
        std::fs::write(step_dir.join("state.json"), r#"{"format": 1, "step": 42}"#).unwrap();
        let out_dir = d.join(format!("ckpt_{key}_out"));
        ok(&eval(key, &step_dir, &out_dir, &["--init_format", "nezha"]));
        let got = results(&out_dir);
        assert_close(&got, &want, &format!("checkpoint dir {key}"));
        assert_eq!(got["global_step"], 42);

        // A TF checkpoint prefix, which carries no config: given with
        // --bert_config_file ("gelu_erf" is what HF's "gelu" computes).
        let prefix = d.join(format!("tf_{key}/model.ckpt"));
        ok(&nezha(
            &["convert", "hf", s(&hf), "tf", s(&prefix)],
            &root(),
        ));
        let hf_cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap())
                .unwrap();
        let mut cfg = serde_json::Map::new();
        for k in [
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "type_vocab_size",
            "initializer_range",
            "max_relative_position",
            "layer_norm_eps",
        ] {
            cfg.insert(k.into(), hf_cfg[k].clone());
        }
        cfg.insert("hidden_act".into(), "gelu_erf".into());
        let cfg_path = d.join(format!("bert_config_{key}.json"));
        std::fs::write(&cfg_path, Value::Object(cfg).to_string()).unwrap();
        let out_dir = d.join(format!("tf_{key}_out"));
        ok(&eval(
            key,
            &prefix,
            &out_dir,
            &["--bert_config_file", s(&cfg_path)],
        ));
        assert_close(&results(&out_dir), &want, &format!("tf_{key}"));
    }
}

/// A refused run: non-zero exit, stderr naming every `needles`, no results.
fn refused(out: &Output, out_dir: &Path, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stderr: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr does not name {n:?}:\n{stderr}");
    }
    for f in ["eval_results.txt", "eval_results.json"] {
        assert!(!out_dir.join(f).exists(), "{f} written despite the error");
    }
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hf_a = fixture("hf_a");
    let out_dir = d.join("out");
    let base = |input: &Path, ckpt: &Path, vocab: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--input_file",
            s(input),
            "--init_checkpoint",
            s(ckpt),
            "--vocab_file",
            s(vocab),
            "--max_seq_length",
            "24",
            "--max_predictions_per_seq",
            "4",
            "--output_dir",
            s(&out_dir),
        ];
        args.extend_from_slice(extra);
        nezha(&args, &root())
    };
    let (rec_a, vocab_a) = (fixture("eval_a.tfrecord"), fixture("vocab_a.txt"));

    // Records of 16 tokens read with --max_seq_length 24.
    let short = fixture("eval.seq16.tfrecord");
    let out = base(&short, &hf_a, &vocab_a, &[]);
    refused(
        &out,
        &out_dir,
        &[
            "eval.seq16.tfrecord",
            "record 0",
            "input_ids",
            "max_seq_length",
        ],
    );

    // A vocabulary of another size than the checkpoint's embeddings.
    let out = base(&rec_a, &hf_a, &fixture("vocab_b.txt"), &[]);
    refused(&out, &out_dir, &["vocab_b.txt", "97", "vocab_size 120"]);

    // Missing files.
    let out = base(&d.join("none.tfrecord"), &hf_a, &vocab_a, &[]);
    refused(&out, &out_dir, &["none.tfrecord"]);
    let out = base(&rec_a, &d.join("no_model"), &vocab_a, &[]);
    refused(&out, &out_dir, &["no_model"]);
    let out = base(&rec_a, &hf_a, &d.join("no_vocab.txt"), &[]);
    refused(&out, &out_dir, &["no_vocab.txt"]);

    // A checkpoint whose config disagrees with the given one.
    let cfg = d.join("bert_config.json");
    std::fs::write(
        &cfg,
        r#"{"vocab_size": 120, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu_erf",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 512, "type_vocab_size": 2,
            "initializer_range": 0.02, "max_relative_position": 64}"#,
    )
    .unwrap();
    let out = base(&rec_a, &hf_a, &vocab_a, &["--bert_config_file", s(&cfg)]);
    refused(&out, &out_dir, &["hf_a", "hidden_size"]);

    // Fewer records than one batch: nothing to evaluate.
    let out = base(&rec_a, &hf_a, &vocab_a, &["--eval_batch_size", "24"]);
    refused(&out, &out_dir, &["fewer than --eval_batch_size 24 records"]);

    // CUDA without a CUDA device.
    if !tch::Cuda::is_available() {
        let out = base(&rec_a, &hf_a, &vocab_a, &["--device", "cuda"]);
        refused(
            &out,
            &out_dir,
            &["cuda requested but libtorch has no CUDA device"],
        );
    }
}
