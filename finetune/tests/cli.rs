//! `nezha finetune` as the binary parses it: the reference's flag names and
//! the tasks' defaults, and both tasks run end to end from files (a tiny
//! random model, then fine-tuning again from the checkpoint the first run
//! wrote), with their outputs and errors.

mod common;

use std::path::Path;

use clap::Parser;
use nezha_finetune::cli::{run, FinetuneCommand};
use serde_json::Value;

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    task: FinetuneCommand,
}

fn parse(args: &[&str]) -> FinetuneCommand {
    Top::try_parse_from(std::iter::once("finetune").chain(args.iter().copied()))
        .unwrap()
        .task
}

/// `nezha finetune TASK` on `data`, with the vocab `vocab(d)` wrote, into
/// `out`, plus `extra` flags.
fn command(task: &str, d: &Path, data: &Path, out: &Path, extra: &[&str]) -> FinetuneCommand {
    let vocab = d.join("vocab.txt");
    let path = |p: &'_ Path| p.to_str().unwrap().to_string();
    let (data, vocab, out) = (path(data), path(&vocab), path(out));
    let mut args = vec![
        task,
        "--data_dir",
        &data,
        "--vocab_file",
        &vocab,
        "--output_dir",
        &out,
    ];
    args.extend(extra);
    parse(&args)
}

/// [`command`] starting from random weights of `vocab(d)`'s config.
fn from_scratch(task: &str, d: &Path, data: &Path, out: &Path, extra: &[&str]) -> FinetuneCommand {
    let config = d.join("config.json");
    let mut flags = vec!["--bert_config_file", config.to_str().unwrap()];
    flags.extend(extra);
    command(task, d, data, out, &flags)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn vocab(dir: &Path) {
    let words = "[PAD] [UNK] [CLS] [SEP] [MASK] 张 李 三 四 在 北 京 上 海 好 坏 很 不";
    write(
        dir,
        "vocab.txt",
        &(words.split(' ').collect::<Vec<_>>().join("\n") + "\n"),
    );
    write(
        dir,
        "config.json",
        &serde_json::to_string(&common::tiny()).unwrap(),
    );
}

#[test]
fn flags_are_the_reference_names_with_task_defaults() {
    let cmd = parse(&[
        "ner",
        "--data_dir",
        "d",
        "--vocab_file",
        "v.txt",
        "--output_dir",
        "o",
        "--do_lower_case",
        "false",
    ]);
    let FinetuneCommand::Ner(a) = cmd else {
        panic!("not ner")
    };
    assert_eq!(a.common.data_dir.as_deref(), Some(Path::new("d")));
    assert_eq!(a.common.do_lower_case, Some(false));
    // Not given: the default (3e-5) applies after a task file is read.
    assert_eq!(a.common.learning_rate, None);
    assert_eq!(a.common.max_seq_length, None);
    let cmd = parse(&[
        "classify",
        "--data-dir",
        "d",
        "--vocab-file",
        "v.txt",
        "--output-dir",
        "o",
        "--init_checkpoint",
        "ckpt",
        "--init_format",
        "tf",
        "--max_seq_length",
        "64",
        "--text_b",
        "sentence2",
    ]);
    let FinetuneCommand::Classify(a) = cmd else {
        panic!("not classify")
    };
    assert_eq!(a.common.do_lower_case, None);
    assert_eq!(a.common.max_seq_length, Some(64));
    assert_eq!(a.text_b.as_deref(), Some("sentence2"));
    // Paths are checked when the run needs them, naming the flag.
    let e = format!(
        "{:#}",
        run(&parse(&["ner", "--data_dir", "d"])).unwrap_err()
    );
    assert!(e.contains("--vocab_file"), "{e}");
    assert!(Top::try_parse_from([
        "f",
        "ner",
        "--data_dir",
        "d",
        "--vocab_file",
        "v",
        "--output_dir",
        "o",
        "--init_format",
        "onnx"
    ])
    .is_err());
}

fn ner_data(n: usize, seed: u64) -> String {
    let chars: Vec<char> = "张李三四在北京上海好".chars().collect();
    let mut state = seed;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut out = String::new();
    for _ in 0..n {
        for _ in 0..(3 + next(6)) {
            let c = chars[next(chars.len() as u64) as usize];
            if c == '张' || c == '李' {
                let d = chars[2 + next(chars.len() as u64 - 2) as usize];
                out.push_str(&format!("{c} B-PER\n{d} E-PER\n"));
            } else {
                out.push_str(&format!("{c} O\n"));
            }
        }
        out.push('\n');
    }
    out
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn ner_runs_end_to_end_and_again_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    vocab(d);
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write(&data, "train.txt", &ner_data(64, 1));
    // A malformed span in dev: skipped and reported, not fatal.
    write(&data, "dev.txt", &(ner_data(16, 2) + "\n上 E-PER\n"));
    write(&data, "test.txt", &ner_data(16, 3));
    let (out1, out2) = (d.join("run1"), d.join("run2"));
    let flags = [
        "--num_train_epochs",
        "2",
        "--train_batch_size",
        "8",
        "--max_seq_length",
        "32",
        "--learning_rate",
        "1e-3",
    ];
    run(&from_scratch("ner", d, &data, &out1, &flags)).unwrap();
    let m = lines(&out1.join("metrics.jsonl"));
    assert_eq!(m.len(), 3);
    assert_eq!(m[1]["epoch"], 2);
    assert!(m[2]["test"]["entity"]["f1"].as_f64().is_some());
    let labels = std::fs::read_to_string(out1.join("label_list.txt")).unwrap();
    assert_eq!(labels, "B-PER\nE-PER\nO\nX\n[CLS]\n[SEP]\n");
    let pred = std::fs::read_to_string(out1.join("test_predictions.txt")).unwrap();
    let test = std::fs::read_to_string(data.join("test.txt")).unwrap();
    assert_eq!(pred.lines().count(), test.lines().count());
    for (p, t) in pred.lines().zip(test.lines()) {
        assert!(p.starts_with(t), "{p:?} vs {t:?}");
    }

    // Again from the checkpoint the first run saved, format told from the path.
    let checkpoint = out1.join("model.safetensors");
    let mut resumed = flags.to_vec();
    resumed.extend(["--init_checkpoint", checkpoint.to_str().unwrap()]);
    run(&command("ner", d, &data, &out2, &resumed)).unwrap();
    assert_eq!(lines(&out2.join("metrics.jsonl")).len(), 3);

    // Neither weights nor a config: one clear message.
    let e = format!(
        "{:#}",
        run(&command("ner", d, &data, &d.join("run3"), &flags)).unwrap_err()
    );
    assert!(e.contains("--bert_config_file"), "{e}");
}

#[test]
fn classify_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    vocab(d);
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut tsv = String::from("label\ttext_a\n");
    for i in 0..48 {
        let (l, t) = if i % 2 == 0 {
            ("pos", "很好")
        } else {
            ("neg", "不好")
        };
        tsv.push_str(&format!("{l}\t{t}{}\n", ["北京", "上海", "张三"][i % 3]));
    }
    write(&data, "train.tsv", &tsv);
    write(&data, "dev.tsv", &tsv);
    write(&data, "test.tsv", &tsv);
    let out = d.join("out");
    let classify = from_scratch(
        "classify",
        d,
        &data,
        &out,
        &["--num_train_epochs", "2", "--train_batch_size", "8"],
    );
    run(&classify).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("label_list.txt")).unwrap(),
        "neg\npos\n"
    );
    let m = lines(&out.join("metrics.jsonl"));
    assert_eq!(m.len(), 3);
    assert!(m[2]["test"]["accuracy"].as_f64().is_some());
    // run_classifier.py's test_results.tsv: one row of probabilities per
    // example, label-list order, no header; the readable file beside it.
    let res = std::fs::read_to_string(out.join("test_results.tsv")).unwrap();
    assert_eq!(res.lines().count(), 48);
    for row in res.lines() {
        let p: Vec<f64> = row.split('\t').map(|x| x.parse().unwrap()).collect();
        assert_eq!(p.len(), 2);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row}");
    }
    let readable = std::fs::read_to_string(out.join("test_predictions.tsv")).unwrap();
    assert_eq!(readable.lines().next(), Some("label\tprediction\ttext_a"));
    assert_eq!(readable.lines().count(), 49);
    assert!(out.join("model.safetensors").exists());

    // A bad row is named by file and line.
    write(&data, "dev.tsv", "label\ttext_a\npos\t好\textra\n");
    let e = format!("{:#}", run(&classify).unwrap_err());
    assert!(e.contains("dev.tsv:2"), "{e}");
}

#[test]
fn mrc_runs_end_to_end_and_refuses_a_file_that_is_not_squad() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    vocab(d);
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let chars: Vec<char> = "张李三四在北京上海好".chars().collect();
    let mut qas = Vec::new();
    let mut paragraphs = Vec::new();
    for i in 0..24 {
        let ctx: String = (0..30)
            .map(|k| chars[(i * 7 + k * k) % chars.len()])
            .collect();
        let answer: String = ctx.chars().skip(10 + i % 5).take(3).collect();
        qas.push(serde_json::json!({"id": format!("q{i}"), "question": "好", "answers": [{"text": answer}]}));
        paragraphs.push(serde_json::json!({"context": ctx, "qas": [qas[i].clone()]}));
    }
    let doc = serde_json::json!({"data": [{"paragraphs": paragraphs}]}).to_string();
    for f in ["train.json", "dev.json", "test.json"] {
        write(&data, f, &doc);
    }
    let out = d.join("out");
    let mrc = {
        let extra = [
            "--max_seq_length",
            "24",
            "--doc_stride",
            "8",
            "--max_query_length",
            "4",
            "--num_train_epochs",
            "1",
            "--train_batch_size",
            "8",
        ];
        from_scratch("mrc", d, &data, &out, &extra)
    };
    run(&mrc).unwrap();
    let m = lines(&out.join("metrics.jsonl"));
    assert_eq!(m.len(), 2);
    assert!(m[1]["test"]["f1"].as_f64().is_some());
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(p.as_object().unwrap().len(), 24);
    assert!(p["q3"].is_string());

    write(&data, "dev.json", "{\"data\": [{\"title\": \"x\"}]}");
    let e = format!("{:#}", run(&mrc).unwrap_err());
    assert!(
        e.contains("dev.json: data[0]") && e.contains("\"paragraphs\""),
        "{e}"
    );
}
