//! The reference's classification file layouts (XNLI, LCQMC, ChnSentiCorp)
//! and JSON lines, read from small hand-written files in those layouts
//! (tests/fixtures/layouts), their errors, sentence pairs encoded as
//! `convert_single_example` does, and a pair task run through the model
//! from the command line.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use nezha_finetune::classify::{read_jsonl, Encoder, Example, LabelMap, Layout, Part, TsvColumns};
use nezha_finetune::cli::{run, FinetuneCommand};
use nezha_stages::vocab::Vocab;

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layouts")
        .join(name)
}

fn vocab_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/vocab.txt")
}

fn cols() -> TsvColumns {
    TsvColumns {
        text_a: "text_a".into(),
        text_b: None,
        label: "label".into(),
    }
}

fn read(layout: Layout, dir: &Path, part: Part) -> Vec<Example> {
    layout.read(&layout.path(dir, part), &cols()).unwrap()
}

fn err<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn xnli_reads_the_reference_paths_skips_the_header_and_renames_contradictory() {
    let dir = fixtures("xnli");
    assert_eq!(
        Layout::Xnli.path(&dir, Part::Train),
        dir.join("multinli/multinli.train.zh.tsv")
    );
    let train = read(Layout::Xnli, &dir, Part::Train);
    assert_eq!(train.len(), 6);
    assert_eq!(train[0].text_a, "他在北京工作。");
    assert_eq!(train[0].text_b.as_deref(), Some("他有一份工作。"));
    assert_eq!(train[0].label.as_deref(), Some("entailment"));
    assert!(
        train[0].origin.ends_with("multinli.train.zh.tsv:2"),
        "{}",
        train[0].origin
    );
    assert_eq!(
        train[1].label.as_deref(),
        Some("contradiction"),
        "contradictory is renamed"
    );
    let labels = LabelMap::fixed(Layout::Xnli.fixed_labels().unwrap(), &train).unwrap();
    assert_eq!(labels.names, ["contradiction", "entailment", "neutral"]);
    let dev = read(Layout::Xnli, &dir, Part::Dev);
    assert_eq!(dev.len(), 3);
    assert_eq!(dev[2].label.as_deref(), Some("neutral"));
    assert_eq!(read(Layout::Xnli, &dir, Part::Test).len(), 2);
}

#[test]
fn lcqmc_and_xnli_rows_must_have_three_fields_and_known_labels() {
    let dir = fixtures("lcqmc");
    let train = read(Layout::Lcqmc, &dir, Part::Train);
    assert_eq!(train.len(), 6);
    assert_eq!(train[2].text_a, "大家觉得她好看吗");
    assert_eq!(train[2].text_b.as_deref(), Some("大家觉得跑男好看吗？"));
    assert_eq!(train[2].label.as_deref(), Some("0"));
    assert_eq!(Layout::Lcqmc.fixed_labels().unwrap(), ["0", "1"]);

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("dev.tsv");
    std::fs::write(&bad, "text_a\ttext_b\tlabel\n甲\t乙\t1\n只有两列\t0\n").unwrap();
    let e = err(Layout::Lcqmc.read(&bad, &cols()));
    assert!(e.contains("dev.tsv:3: 2 fields"), "{e}");
    std::fs::write(&bad, "text_a\ttext_b\tlabel\n").unwrap();
    let e = err(Layout::Lcqmc.read(&bad, &cols()));
    assert!(e.contains("a header but no rows"), "{e}");

    // A label outside the task's fixed list, in training: named with its line.
    let mut t = train.clone();
    t[4].label = Some("2".into());
    let e = err(LabelMap::fixed(vec!["0".into(), "1".into()], &t));
    assert!(e.contains("train.tsv:6: label \"2\""), "{e}");
}

#[test]
fn chnsenti_reads_label_text_with_or_without_a_header() {
    let dir = fixtures("chnsenti");
    // The reference's own train.tsv: no header.
    let train = read(Layout::Chnsenti, &dir, Part::Train);
    assert_eq!(train.len(), 6);
    assert_eq!(train[0].label.as_deref(), Some("1"));
    assert!(train[0].text_a.starts_with("选择珠江花园"));
    assert!(train[0].origin.ends_with("train.tsv:1"));
    assert_eq!(train[0].text_b, None);
    // The distributed files: a `label<TAB>text_a` header, skipped.
    let dev = read(Layout::Chnsenti, &dir, Part::Dev);
    assert_eq!(dev.len(), 2);
    assert_eq!(dev[0].label.as_deref(), Some("1"));
    assert!(dev[0].origin.ends_with("dev.tsv:2"));
    // Labels are the training file's, sorted: the same order on every run.
    assert_eq!(Layout::Chnsenti.fixed_labels(), None);
    assert_eq!(LabelMap::from_training(&train).unwrap().names, ["0", "1"]);

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("test.tsv");
    // A row without its label in a labelled file: named with its line.
    std::fs::write(&bad, "1\t好\n不错\n").unwrap();
    let e = err(Layout::Chnsenti.read(&bad, &cols()));
    assert!(
        e.contains("test.tsv:2: 1 field(s), but line 1 has 2"),
        "{e}"
    );
    std::fs::write(&bad, "1\t好\tx\n").unwrap();
    let e = err(Layout::Chnsenti.read(&bad, &cols()));
    assert!(e.contains("test.tsv:1: 3 fields"), "{e}");
    // A file without labels: the text alone on each line.
    std::fs::write(&bad, "text_a\n好\n不错\n").unwrap();
    let t = Layout::Chnsenti.read(&bad, &cols()).unwrap();
    assert_eq!((t.len(), t[1].label.as_deref()), (2, None));
    assert_eq!(t[1].text_a, "不错");
}

#[test]
fn task_names_parse_as_the_reference_spells_them() {
    assert_eq!("xnli".parse::<Layout>().unwrap(), Layout::Xnli);
    assert_eq!("LCQMC".parse::<Layout>().unwrap(), Layout::Lcqmc);
    assert_eq!("text_clf".parse::<Layout>().unwrap(), Layout::Chnsenti);
    assert_eq!("chnsenti".parse::<Layout>().unwrap(), Layout::Chnsenti);
    let e = "mnli".parse::<Layout>().unwrap_err().to_string();
    assert!(e.contains("mnli") && e.contains("lcqmc"), "{e}");
}

#[test]
fn jsonl_reads_named_fields_and_names_bad_records() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("train.jsonl");
    std::fs::write(
        &p,
        "{\"q1\": \"今天天气\", \"q2\": \"天气如何\", \"y\": 1}\n\n{\"q1\": \"甲\", \"q2\": \"乙\", \"y\": \"0\"}\n",
    )
    .unwrap();
    let c = TsvColumns {
        text_a: "q1".into(),
        text_b: Some("q2".into()),
        label: "y".into(),
    };
    let ex = read_jsonl(&p, &c).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(
        ex[0].label.as_deref(),
        Some("1"),
        "numbers are labels by their decimal text"
    );
    assert_eq!(ex[1].text_b.as_deref(), Some("乙"));
    assert!(ex[1].origin.ends_with("train.jsonl:3"));
    std::fs::write(&p, "{\"q1\": \"甲\", \"y\": 1}\n").unwrap();
    let e = err(read_jsonl(&p, &c));
    assert!(e.contains("train.jsonl:1: no field \"q2\""), "{e}");
    std::fs::write(&p, "{\"q1\": \"甲\", \"q2\": \"乙\", \"y\": 1}\n[1, 2]\n").unwrap();
    let e = err(read_jsonl(&p, &c));
    assert!(e.contains("train.jsonl:2: expected a JSON object"), "{e}");
    std::fs::write(&p, "{\"q1\": \n").unwrap();
    let e = err(read_jsonl(&p, &c));
    assert!(e.contains("train.jsonl:1: not JSON"), "{e}");
}

#[test]
fn pairs_are_encoded_as_convert_single_example() {
    let vocab = Arc::new(Vocab::load(&vocab_path()).unwrap());
    let id = |t: &str| i64::from(vocab.id(t).unwrap());
    let enc = Encoder::new(vocab.clone(), true, 128).unwrap();
    let train = read(Layout::Lcqmc, &fixtures("lcqmc"), Part::Train);
    let labels = LabelMap::fixed(vec!["0".into(), "1".into()], &train).unwrap();
    let e = Example {
        text_a: "天气好".into(),
        text_b: Some("下雨".into()),
        label: Some("1".into()),
        origin: "t:1".into(),
    };
    let f = enc.encode(&e, &labels).unwrap();
    let want: Vec<i64> = ["[CLS]", "天", "气", "好", "[SEP]", "下", "雨", "[SEP]"]
        .iter()
        .map(|t| id(t))
        .collect();
    assert_eq!(f.input_ids, want);
    // Segment 0 through the first [SEP], 1 for b and its [SEP].
    assert_eq!(f.segment_ids, [0, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(f.label, 1);

    // A second text with no tokens is a single sentence (`if tokens_b:`).
    let single = Example {
        text_b: Some("  ".into()),
        ..e.clone()
    };
    let f = enc.encode(&single, &labels).unwrap();
    assert_eq!(f.input_ids, want[..5]);
    assert_eq!(f.segment_ids, [0; 5]);

    // Truncation to 8: a = 3, b = 4 tokens, 8 - 3 = 5 left: b loses 2.
    let enc8 = Encoder::new(vocab.clone(), true, 8).unwrap();
    let long = Example {
        text_b: Some("下雨刮风".into()),
        ..e
    };
    let f = enc8.encode(&long, &labels).unwrap();
    assert_eq!(f.input_ids.len(), 8);
    assert_eq!(f.segment_ids, [0, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(f.input_ids[5..7], [id("下"), id("雨")]);
}

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    task: FinetuneCommand,
}

/// A tiny config for the full bert-base-chinese vocab.
fn config(dir: &Path) -> PathBuf {
    let cfg = common::tiny_chinese();
    let p = dir.join("bert_config.json");
    std::fs::write(&p, serde_json::to_string(&cfg).unwrap()).unwrap();
    p
}

#[test]
fn lcqmc_pairs_run_through_the_model_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = [
        "f".to_string(),
        "classify".into(),
        "--task_name".into(),
        "lcqmc".into(),
        "--data_dir".into(),
        s(&fixtures("lcqmc")),
        "--vocab_file".into(),
        s(&vocab_path()),
        "--bert_config_file".into(),
        s(&config(tmp.path())),
        "--output_dir".into(),
        s(&out),
        "--train_batch_size".into(),
        "2".into(),
        "--num_train_epochs".into(),
        "1".into(),
        "--max_seq_length".into(),
        "32".into(),
    ];
    run(&Top::try_parse_from(&args).unwrap().task).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("label_list.txt")).unwrap(),
        "0\n1\n"
    );
    let res = std::fs::read_to_string(out.join("test_predictions.tsv")).unwrap();
    let rows: Vec<&str> = res.lines().collect();
    assert_eq!(rows[0], "label\tprediction\ttext_a\ttext_b");
    assert_eq!(rows.len(), 3);
    assert!(
        rows[1].starts_with("0\t") && rows[1].ends_with("\t谁有狂三这张高清的\t这张高清图，谁有")
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "one epoch, then test");
}
