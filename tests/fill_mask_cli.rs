//! `nezha fill-mask` against Hugging Face's `pipeline("fill-mask")` on the
//! same weights and vocabulary (tests/fixtures/fill_mask/, written by
//! scripts/fixtures/fill_mask.py): Chinese and English sentences, one with
//! two masks; from the Hugging Face directory and from our weights file; and
//! its refusals.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{nezha, root};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/fill_mask").join(name)
}

fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "nezha fill-mask failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `nezha ARGS` with `input` on stdin.
fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nezha"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Each `--json` line against the pipeline's answer for the same text:
/// the same tokens in the same order, probabilities within 1e-4.
fn check_json(stdout: &str, cases: &[Value]) {
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len(), "{stdout}");
    for (got, want) in lines.iter().zip(cases) {
        let text = want["text"].as_str().unwrap();
        assert_eq!(got["text"], want["text"]);
        let (g, w) = (
            got["masks"].as_array().unwrap(),
            want["masks"].as_array().unwrap(),
        );
        assert_eq!(g.len(), w.len(), "{text}: number of masks");
        for (m, (gm, wm)) in g.iter().zip(w).enumerate() {
            let (gm, wm) = (gm.as_array().unwrap(), wm.as_array().unwrap());
            assert_eq!(gm.len(), wm.len(), "{text} mask {m}");
            for (gp, wp) in gm.iter().zip(wm) {
                assert_eq!(
                    gp["token_str"], wp["token_str"],
                    "{text} mask {m}: {gm:?} vs the pipeline's {wm:?}"
                );
                let (a, b) = (gp["score"].as_f64().unwrap(), wp["score"].as_f64().unwrap());
                assert!((a - b).abs() <= 1e-4, "{text} mask {m}: score {a} vs {b}");
            }
        }
    }
}

#[test]
fn hf_directory_matches_the_fill_mask_pipeline() {
    let cases = expected();
    let hf = fixture("hf");
    let mut args = vec!["fill-mask", "--init_checkpoint", s(&hf), "--json"];
    args.extend(cases.iter().map(|c| c["text"].as_str().unwrap()));
    // The vocabulary comes from hf/vocab.txt, beside the weights.
    check_json(&ok(&nezha(&args, &root())), &cases);
}

#[test]
fn our_weights_from_stdin_match_too() {
    let cases = expected();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("model.safetensors");
    ok(&nezha(
        &["convert", "hf", s(&fixture("hf")), "nezha", s(&ours)],
        &root(),
    ));
    let vocab = fixture("vocab.txt");
    // One text per line; blank lines are skipped.
    let input: String = cases
        .iter()
        .map(|c| format!("{}\n\n", c["text"].as_str().unwrap()))
        .collect();
    let out = with_stdin(
        &[
            "fill-mask",
            "--init_checkpoint",
            s(&ours),
            "--vocab_file",
            s(&vocab),
            "--json",
        ],
        &input,
    );
    check_json(&ok(&out), &cases);

    // The plain listing: the text, then one line per mask with the top_k
    // tokens and probabilities.
    let two = cases
        .iter()
        .find(|c| c["masks"].as_array().unwrap().len() == 2)
        .unwrap();
    let text = two["text"].as_str().unwrap();
    let stdout = ok(&nezha(
        &[
            "fill-mask",
            "--init_checkpoint",
            s(&ours),
            "--vocab_file",
            s(&vocab),
            "--top_k",
            "2",
            text,
        ],
        &root(),
    ));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], text);
    for (m, line) in lines[1..].iter().enumerate() {
        let want = &two["masks"][m];
        let expected = format!(
            "  [MASK] {}: {} {:.4}  {} {:.4}",
            m + 1,
            want[0]["token_str"].as_str().unwrap(),
            want[0]["score"].as_f64().unwrap(),
            want[1]["token_str"].as_str().unwrap(),
            want[1]["score"].as_f64().unwrap()
        );
        assert_eq!(*line, expected);
    }
}

fn refused(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stderr: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr does not name {n:?}:\n{stderr}");
    }
}

#[test]
fn bad_input_is_refused() {
    let hf = fixture("hf");
    let ckpt = ["fill-mask", "--init_checkpoint", s(&hf)];
    let args = |extra: &[&'static str]| -> Vec<String> {
        ckpt.iter()
            .chain(extra.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        nezha(&a, &root())
    };

    // A text without [MASK].
    let out = run(args(&["今天天气很[MASK]。", "no mask here"]));
    refused(&out, &["no [MASK] in the text \"no mask here\""]);
    assert!(out.stdout.is_empty(), "texts are checked before any output");

    // On stdin, the line is named.
    let out = with_stdin(&ckpt, "今天天气很[MASK]。\nno mask here\n");
    refused(&out, &["stdin line 2", "no [MASK]"]);

    // A vocabulary of another size than the model's.
    let other = root().join("tests/fixtures/eval/vocab_a.txt");
    let mut a = args(&["--vocab_file"]);
    a.push(s(&other).to_string());
    a.push("今天[MASK]。".into());
    refused(&run(a), &["vocab_a.txt", "has 120 tokens", "vocab_size"]);

    // Our weights file alone has no vocabulary beside it.
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("model.safetensors");
    assert!(
        nezha(&["convert", "hf", s(&hf), "nezha", s(&ours)], &root())
            .status
            .success()
    );
    let out = nezha(
        &["fill-mask", "--init_checkpoint", s(&ours), "今天[MASK]。"],
        &root(),
    );
    refused(&out, &["no vocab.txt beside", "give --vocab_file"]);
}
