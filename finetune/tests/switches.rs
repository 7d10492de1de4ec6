//! The reference's switches through `nezha finetune`: `--do_train`,
//! `--do_eval` and `--do_predict` in combinations, predicting with a
//! fine-tuning output directory alone on files without labels, fractional
//! `--num_train_epochs`, `--save_checkpoints_steps`, the reading task's
//! `--train_file`/`--predict_file` and its `predictions.json` and
//! `nbest_predictions.json`, and bad input refused with nothing written.

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use nezha_finetune::cli::{run, FinetuneCommand};
use serde_json::Value;

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    task: FinetuneCommand,
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs `nezha finetune ARGS`.
fn finetune(args: &[String]) -> anyhow::Result<()> {
    let top = Top::try_parse_from(std::iter::once("finetune".to_string()).chain(args.to_vec()))?;
    run(&top.task)
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A vocab and a tiny model config in `d`.
fn setup(d: &Path) {
    let words = "[PAD] [UNK] [CLS] [SEP] [MASK] 张 李 三 四 在 北 京 上 海 好 坏 很 不";
    write(d, "vocab.txt", &(words.replace(' ', "\n") + "\n"));
    write(
        d,
        "config.json",
        &serde_json::to_string(&common::tiny()).unwrap(),
    );
}

/// `label<TAB>text_a` rows (with a header), `n` of them, or without the
/// label column.
fn reviews(n: usize, labelled: bool) -> String {
    let mut tsv = String::from(if labelled {
        "label\ttext_a\n"
    } else {
        "text_a\n"
    });
    for i in 0..n {
        let (l, t) = if i % 2 == 0 {
            ("pos", "很好")
        } else {
            ("neg", "不好")
        };
        let text = format!("{t}{}", ["北京", "上海", "张三"][i % 3]);
        if labelled {
            tsv.push_str(&format!("{l}\t{text}\n"));
        } else {
            tsv.push_str(&format!("{text}\n"));
        }
    }
    tsv
}

fn common_flags(d: &Path, data: &Path, out: &Path) -> Vec<String> {
    args(&[
        "--data_dir",
        &s(data),
        "--vocab_file",
        &s(&d.join("vocab.txt")),
        "--output_dir",
        &s(out),
        "--train_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
    ])
}

fn from_scratch(d: &Path) -> Vec<String> {
    args(&["--bert_config_file", &s(&d.join("config.json"))])
}

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn err(r: anyhow::Result<()>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn classify_trains_fractional_epochs_with_checkpoints_then_predicts_from_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let data = d.join("data");
    write(&data, "train.tsv", &reviews(48, true));
    write(&data, "dev.tsv", &reviews(12, true));
    write(&data, "test.tsv", &reviews(10, true));
    let out = d.join("out");
    // 48 examples in batches of 8: 6 steps an epoch; 1.5 epochs are the
    // reference's int(48 / 8 * 1.5) = 9 steps, the second epoch cut short.
    let mut a = args(&["classify", "--do_train", "--do_eval=true", "--do_predict"]);
    a.extend(common_flags(d, &data, &out));
    a.extend(from_scratch(d));
    a.extend(args(&[
        "--num_train_epochs",
        "1.5",
        "--save_checkpoints_steps",
        "1",
    ]));
    finetune(&a).unwrap();
    let m = jsonl(&out.join("metrics.jsonl"));
    assert_eq!(m.len(), 3, "two epochs, then test");
    assert_eq!(
        (m[0]["global_step"].as_u64(), m[1]["global_step"].as_u64()),
        (Some(6), Some(9))
    );
    assert!(m[1]["dev"]["accuracy"].is_number());
    // Every step, the newest five kept.
    let ckpts = names(&out.join("checkpoints"));
    let want: Vec<String> = (5..=9)
        .map(|n| format!("step-{n:08}.safetensors"))
        .collect();
    assert_eq!(ckpts, want);
    for f in [
        "model.safetensors",
        "label_list.txt",
        "finetune.json",
        "vocab.txt",
        "test_results.tsv",
        "test_predictions.tsv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let trained_probs = std::fs::read_to_string(out.join("test_results.tsv")).unwrap();

    // Predict alone, with the directory's weights, head, labels, settings
    // and vocab, on the same texts without labels.
    let unlabelled = d.join("unlabelled");
    write(&unlabelled, "test.tsv", &reviews(10, false));
    let pred = d.join("pred");
    let a = args(&[
        "classify",
        "--do_predict",
        "--init_checkpoint",
        &s(&out),
        "--data_dir",
        &s(&unlabelled),
        "--output_dir",
        &s(&pred),
        "--predict_batch_size",
        "3",
    ]);
    finetune(&a).unwrap();
    assert_eq!(names(&pred), ["test_predictions.tsv", "test_results.tsv"]);
    let probs = std::fs::read_to_string(pred.join("test_results.tsv")).unwrap();
    assert_eq!(probs.lines().count(), 10);
    let rows = |t: &str| -> Vec<Vec<f64>> {
        t.lines()
            .map(|r| r.split('\t').map(|x| x.parse().unwrap()).collect())
            .collect()
    };
    for (a, b) in rows(&probs).iter().zip(rows(&trained_probs)) {
        assert_eq!(a.len(), 2, "label-list order: neg, pos");
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }
    let readable = std::fs::read_to_string(pred.join("test_predictions.tsv")).unwrap();
    assert_eq!(readable.lines().next(), Some("prediction\ttext_a"));

    // --do_eval alone from the directory: the dev scores.
    let ev = d.join("eval");
    let a = args(&[
        "classify",
        "--do_eval",
        "--init_checkpoint",
        &s(&out.join("checkpoints/step-00000008.safetensors")),
        "--data_dir",
        &s(&data),
        "--output_dir",
        &s(&ev),
    ]);
    finetune(&a).unwrap();
    let m = jsonl(&ev.join("metrics.jsonl"));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["dev"]["examples"], 12);
}

#[test]
fn train_without_eval_needs_no_dev_file_and_keeps_the_last_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let data = d.join("data");
    write(&data, "train.tsv", &reviews(16, true));
    let out = d.join("out");
    let mut a = args(&["classify", "--do_train"]);
    a.extend(common_flags(d, &data, &out));
    a.extend(from_scratch(d));
    a.extend(args(&[
        "--num_train_epochs",
        "2",
        "--save_checkpoints_steps",
        "0",
    ]));
    finetune(&a).unwrap();
    let m = jsonl(&out.join("metrics.jsonl"));
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|l| l.get("dev").is_none()));
    assert!(!out.join("checkpoints").exists());
    assert!(!out.join("test_results.tsv").exists());
}

#[test]
fn bad_input_is_refused_with_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let out = d.join("out");
    let try_run = |data: &Path, extra: &[&str]| {
        let mut a = args(&["classify"]);
        a.extend(args(extra));
        a.extend(common_flags(d, data, &out));
        a.extend(from_scratch(d));
        let e = err(finetune(&a));
        assert!(!out.exists(), "{e}: {:?} written", names(&out));
        e
    };

    // An unlabelled training file.
    let data = d.join("unlabelled");
    write(&data, "train.tsv", &reviews(16, false));
    let e = try_run(&data, &["--do_train"]);
    assert!(e.contains("train.tsv:2: no label"), "{e}");

    // A dev label training never saw.
    let data = d.join("unseen");
    write(&data, "train.tsv", &reviews(16, true));
    write(&data, "dev.tsv", &(reviews(4, true) + "meh\t很好\n"));
    let e = try_run(&data, &["--do_train", "--do_eval"]);
    assert!(
        e.contains("dev.tsv:6: label \"meh\" never occurs in the training data"),
        "{e}"
    );

    // --do_predict without a fine-tuned model.
    write(&data, "test.tsv", &reviews(4, false));
    let e = try_run(&data, &["--do_predict"]);
    assert!(
        e.contains("needs --init_checkpoint naming a fine-tuned classify model"),
        "{e}"
    );

    // A test file missing under --do_predict.
    let data = d.join("no_test");
    write(&data, "train.tsv", &reviews(16, true));
    let e = try_run(&data, &["--do_train", "--do_predict"]);
    assert!(
        e.contains("--do_predict:") && e.contains("test.tsv does not exist"),
        "{e}"
    );

    // Too few examples for one batch: found before anything is written.
    let data = d.join("few");
    write(&data, "train.tsv", &reviews(4, true));
    let e = try_run(&data, &["--do_train"]);
    assert!(e.contains("do not fill one batch"), "{e}");
}

#[test]
fn a_predict_file_in_another_layout_than_the_trainings_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let data = d.join("pairs");
    let mut tsv = String::from("label\ttext_a\ttext_b\n");
    for i in 0..16 {
        tsv.push_str(&format!("{}\t很好\t{}\n", i % 2, ["北京", "上海"][i % 2]));
    }
    write(&data, "train.tsv", &tsv);
    let out = d.join("out");
    let mut a = args(&["classify", "--do_train", "--text_b", "text_b"]);
    a.extend(common_flags(d, &data, &out));
    a.extend(from_scratch(d));
    a.extend(args(&["--num_train_epochs", "1"]));
    finetune(&a).unwrap();

    let pred = d.join("pred");
    let predict = |data: &Path, extra: &[&str]| {
        let mut a = args(&[
            "classify",
            "--do_predict",
            "--init_checkpoint",
            &s(&out),
            "--data_dir",
            &s(data),
            "--output_dir",
            &s(&pred),
        ]);
        a.extend(args(extra));
        let e = err(finetune(&a));
        assert!(!pred.exists(), "{e}");
        e
    };
    // Single sentences for a pair model: the header lacks text_b.
    let single = d.join("single");
    write(&single, "test.tsv", "text_a\n很好\n");
    let e = predict(&single, &[]);
    assert!(e.contains("test.tsv:1: no column named \"text_b\""), "{e}");
    // Another layout named on the command line than the training's.
    let e = predict(&single, &["--task_name", "chnsenti"]);
    assert!(
        e.contains("was trained with task_name \"tsv\", this run says \"chnsenti\""),
        "{e}"
    );
}

#[test]
fn ner_predicts_one_tag_per_character_of_an_untagged_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let data = d.join("data");
    let mut tagged = String::new();
    for i in 0..16 {
        let c = ["张", "李"][i % 2];
        tagged.push_str(&format!(
            "{c} B-PER\n三 E-PER\n在 O\n北 B-LOC\n京 E-LOC\n\n"
        ));
    }
    write(&data, "train.txt", &tagged);
    let out = d.join("out");
    let mut a = args(&["ner", "--do_train"]);
    a.extend(common_flags(d, &data, &out));
    a.extend(from_scratch(d));
    a.extend(args(&["--num_train_epochs", "1", "--max_seq_length", "16"]));
    finetune(&a).unwrap();

    // Without tags: one character per line.
    let untagged = d.join("untagged");
    let text = "李\n四\n在\n上\n海\n\n张\n三\n";
    write(&untagged, "test.txt", text);
    let pred = d.join("pred");
    let a = args(&[
        "ner",
        "--do_predict",
        "--init_checkpoint",
        &s(&out.join("model.safetensors")),
        "--data_dir",
        &s(&untagged),
        "--output_dir",
        &s(&pred),
    ]);
    finetune(&a).unwrap();
    let got = std::fs::read_to_string(pred.join("test_predictions.txt")).unwrap();
    let tags = ["B-PER", "E-PER", "B-LOC", "E-LOC", "O"];
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), text.lines().count() + 1, "{got}");
    for (g, c) in lines.iter().zip(text.lines()) {
        if c.is_empty() {
            assert!(g.is_empty());
            continue;
        }
        let f: Vec<&str> = g.split(' ').collect();
        assert_eq!(f.len(), 2, "{g}");
        assert_eq!(f[0], c);
        assert!(tags.contains(&f[1]), "{g}");
    }

    // An untagged training file is refused.
    let e = {
        let mut a = args(&["ner", "--do_train"]);
        a.extend(common_flags(d, &untagged, &d.join("again")));
        a.extend(from_scratch(d));
        std::fs::copy(untagged.join("test.txt"), untagged.join("train.txt")).unwrap();
        err(finetune(&a))
    };
    assert!(
        e.contains("train.txt:1: no tags, and --do_train needs a tagged file"),
        "{e}"
    );
    assert!(!d.join("again").exists());
}

fn squad(n: usize, answers: bool) -> String {
    let chars: Vec<char> = "张李三四在北京上海好".chars().collect();
    let mut paragraphs = Vec::new();
    for i in 0..n {
        let ctx: String = (0..30)
            .map(|k| chars[(i * 7 + k * k) % chars.len()])
            .collect();
        let answer: String = ctx.chars().skip(10 + i % 5).take(3).collect();
        let mut qa = serde_json::json!({"id": format!("q{i}"), "question": "好"});
        if answers {
            qa["answers"] = serde_json::json!([{"text": answer}]);
        }
        paragraphs.push(serde_json::json!({"context": ctx, "qas": [qa]}));
    }
    serde_json::json!({"data": [{"paragraphs": paragraphs}]}).to_string()
}

#[test]
fn mrc_takes_train_and_predict_files_and_writes_the_references_prediction_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let train = write(d, "cmrc_train.json", &squad(16, true));
    let unanswered = write(d, "cmrc_test.json", &squad(5, false));
    let out = d.join("out");
    let mrc_flags = [
        "--max_seq_length",
        "24",
        "--doc_stride",
        "8",
        "--max_query_length",
        "4",
        "--n_best_size",
        "4",
    ];
    let mut a = args(&[
        "mrc",
        "--do_train",
        "--do_predict",
        "--train_file",
        &s(&train),
        "--predict_file",
        &s(&unanswered),
        "--vocab_file",
        &s(&d.join("vocab.txt")),
        "--output_dir",
        &s(&out),
        "--train_batch_size",
        "8",
        "--num_train_epochs",
        "1",
    ]);
    a.extend(args(&mrc_flags));
    a.extend(from_scratch(d));
    finetune(&a).unwrap();
    let text = |p: &Path| std::fs::read_to_string(p).unwrap();
    let best_text = text(&out.join("predictions.json"));
    let nbest_text = text(&out.join("nbest_predictions.json"));
    // run_squad.py's json.dumps(…, indent=4) + "\n": question order, four
    // spaces, non-ASCII escaped.
    assert!(
        best_text.starts_with("{\n    \"q0\": \"") && best_text.ends_with("\"\n}\n"),
        "{best_text}"
    );
    // The answers as they are (ensure_ascii=False), the n-best lists
    // escaped, as NEZHA's run_squad.py writes them.
    assert!(!best_text.is_ascii() && nbest_text.is_ascii());
    let ids: Vec<&str> = best_text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('"'))
        .map(|l| l.split('"').next().unwrap())
        .collect();
    assert_eq!(ids, ["q0", "q1", "q2", "q3", "q4"]);
    let best: Value = serde_json::from_str(&best_text).unwrap();
    let nbest: Value = serde_json::from_str(&nbest_text).unwrap();
    for i in 0..5 {
        let id = format!("q{i}");
        let list = nbest[&id].as_array().unwrap();
        assert!(!list.is_empty() && list.len() <= 4);
        assert_eq!(best[&id], list[0]["text"]);
        let mut sum = 0.0;
        let mut last = f64::INFINITY;
        for e in list {
            let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                [
                    "end_index",
                    "end_logit",
                    "probability",
                    "start_index",
                    "start_logit",
                    "text"
                ]
            );
            let (si, ei) = (
                e["start_index"].as_u64().unwrap(),
                e["end_index"].as_u64().unwrap(),
            );
            assert!(0 < si && si <= ei, "{e}");
            let p = e["probability"].as_f64().unwrap();
            let total = e["start_logit"].as_f64().unwrap() + e["end_logit"].as_f64().unwrap();
            assert!(p <= last + 1e-12, "best first");
            assert!(total.is_finite());
            last = p;
            sum += p;
        }
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    }
    // Each entry's keys in the reference's order.
    let first_entry: Vec<&str> = nbest_text
        .lines()
        .skip(3)
        .take(6)
        .map(|l| l.trim_start().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        first_entry,
        [
            "text",
            "probability",
            "start_logit",
            "end_logit",
            "start_index",
            "end_index"
        ]
    );
    assert!(!out.join("metrics.jsonl").exists() || jsonl(&out.join("metrics.jsonl")).len() == 1);

    // Predict alone from the directory: the same answers.
    let pred = d.join("pred");
    let mut a = args(&[
        "mrc",
        "--do_predict",
        "--init_checkpoint",
        &s(&out),
        "--predict_file",
        &s(&unanswered),
        "--output_dir",
        &s(&pred),
        "--n_best_size",
        "4",
    ]);
    a.extend(args(&[]));
    finetune(&a).unwrap();
    assert_eq!(text(&pred.join("predictions.json")), best_text);
    assert_eq!(text(&pred.join("nbest_predictions.json")), nbest_text);

    // Questions without answers cannot be trained on.
    let mut a = args(&[
        "mrc",
        "--do_train",
        "--train_file",
        &s(&unanswered),
        "--vocab_file",
        &s(&d.join("vocab.txt")),
        "--output_dir",
        &s(&d.join("bad")),
    ]);
    a.extend(args(&mrc_flags));
    a.extend(from_scratch(d));
    let e = err(finetune(&a));
    assert!(
        e.contains(
            "cmrc_test.json: data[0].paragraphs[0].qas[0]: no answers, and --do_train needs them"
        ),
        "{e}"
    );
    assert!(!d.join("bad").exists());
}

#[test]
fn device_and_precision_are_checked_before_anything_is_read_or_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let data = d.join("data");
    write(&data, "train.tsv", &reviews(16, true));
    let out = d.join("out");
    let refused = |extra: &[&str]| {
        let mut a = args(&["classify", "--do_train"]);
        a.extend(common_flags(d, &data, &out));
        a.extend(from_scratch(d));
        a.extend(args(extra));
        let e = err(finetune(&a));
        assert!(!out.exists(), "{e}");
        e
    };
    if !tch::Cuda::is_available() {
        for device in ["cuda", "cuda:1"] {
            let e = refused(&["--device", device]);
            assert!(
                e.contains("cuda requested but libtorch has no CUDA device"),
                "{e}"
            );
        }
    }
    let e = refused(&["--precision", "bf16"]);
    assert!(e.contains("needs --device cuda"), "{e}");
    let e = refused(&["--device", "gpu"]);
    assert!(e.contains("expected cpu, cuda or cuda:N"), "{e}");

    // The CPU in fp32 explicitly: the same run as the default.
    let mut a = args(&[
        "classify",
        "--do_train",
        "--device",
        "cpu",
        "--precision",
        "auto",
        "--threads",
        "1",
    ]);
    a.extend(common_flags(d, &data, &out));
    a.extend(from_scratch(d));
    a.extend(args(&["--num_train_epochs", "1"]));
    finetune(&a).unwrap();
    assert!(out.join("model.safetensors").is_file());
}

#[test]
fn the_switches_parse_as_the_reference_scripts_write_them() {
    use clap::CommandFactory;
    Top::command().debug_assert();
    let parse = |a: &[&str]| {
        let mut v = args(&["classify", "--data_dir", "d", "--output_dir", "o"]);
        v.extend(args(a));
        match Top::try_parse_from(std::iter::once("f".to_string()).chain(v)) {
            Ok(Top {
                task: FinetuneCommand::Classify(c),
            }) => c.common,
            Ok(_) => panic!("not classify"),
            Err(e) => panic!("{a:?}: {e}"),
        }
    };
    let c = parse(&[
        "--do_train=True",
        "--do_eval=false",
        "--do_predict",
        "--do_lower_case=False",
    ]);
    assert_eq!(
        (c.do_train, c.do_eval, c.do_predict, c.do_lower_case),
        (Some(true), Some(false), Some(true), Some(false))
    );
    let c = parse(&["--num_train_epochs", "2.5"]);
    assert_eq!(c.num_train_epochs, Some(2.5));
    // All switches off is refused, as the reference refuses it.
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let mut a = args(&["classify", "--do_train=false", "--do_predict=False"]);
    a.extend(common_flags(
        tmp.path(),
        tmp.path(),
        &tmp.path().join("out"),
    ));
    let e = err(finetune(&a));
    assert!(
        e.contains("at least one of --do_train, --do_eval or --do_predict"),
        "{e}"
    );
}
