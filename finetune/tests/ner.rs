//! Sequence labelling: the tagged-file reader and its span checks (on real
//! MSRA lines too), the tag map, the reference's `X` pieces, scores equal to
//! seqeval's on a predictions file, and a tiny model learning a tagging task
//! that needs context.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nezha_finetune::checkpoint::Architecture;
use nezha_finetune::metrics::entity_scores;
use nezha_finetune::ner::{
    evaluate, fine_tune, read_predictions, read_tagged, write_predictions, Scheme, TagEncoder,
    TagMap,
};
use nezha_finetune::FinetuneConfig;
use nezha_finetune::NezhaForFinetuning;
use nezha_stages::vocab::Vocab;
use serde_json::Value;
use tch::Device;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/ner"
    ))
    .join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn strs(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn bio_and_bmes_files_are_read_with_crlf_and_without_a_final_blank_line() {
    let dir = tempfile::tempdir().unwrap();
    let bio = write(
        dir.path(),
        "bio.txt",
        "王 B-PER\r\n五 I-PER\r\n去 O\r\n\r\n\r\n北 B-LOC\r\n京 I-LOC",
    );
    let f = read_tagged(&bio).unwrap();
    assert_eq!(f.scheme, Scheme::Bio);
    assert_eq!(f.sentences.len(), 2);
    assert_eq!(f.sentences[0].chars, strs("王 五 去"));
    assert_eq!(f.sentences[1].tags, strs("B-LOC I-LOC"));
    assert!(f.sentences[1].origin.ends_with("bio.txt:6"));
    assert_eq!(f.sentences[1].lines, vec![6, 7]);
    assert!(f.skipped.is_empty());

    let bmes = write(
        dir.path(),
        "bmes.txt",
        "张 B-PER\n三 M-PER\n丰 E-PER\n在 O\n京 S-LOC\n",
    );
    let f = read_tagged(&bmes).unwrap();
    assert_eq!(f.scheme, Scheme::Bmes);
    assert_eq!(f.sentences[0].tags, strs("B-PER M-PER E-PER O S-LOC"));
}

#[test]
fn malformed_spans_are_skipped_and_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.txt",
        "张 B-PER\n三 E-PER\n\n李 O\n四 E-PER\n\n北 B-LOC\n京 O\n\n上 B-ORG\n海 M-ORG\n\n好 O\n",
    );
    let f = read_tagged(&p).unwrap();
    assert_eq!(f.sentences.len(), 2);
    let at: Vec<&str> = f
        .skipped
        .iter()
        .map(|s| s.at.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(at, ["5", "8", "11"]);
    assert!(f.skipped[0]
        .message
        .contains("E-PER continues an entity that was never begun"));
    assert!(
        f.skipped[1].message.contains("unclosed LOC"),
        "{}",
        f.skipped[1]
    );
    assert!(
        f.skipped[2].message.contains("ends inside a ORG"),
        "{}",
        f.skipped[2]
    );
    assert!(f.skipped[0].to_string().contains("m.txt:5"));

    // A real stretch of the PyPI MSRA data: the malformed tags found by an
    // independent check (scripts/fixtures/ner_msra.py) are the ones reported.
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("msra_excerpt.json")).unwrap())
            .unwrap();
    let want: Vec<String> = want["malformed_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let f = read_tagged(&fixture("msra_excerpt.txt")).unwrap();
    let got: Vec<String> = f
        .skipped
        .iter()
        .map(|s| s.at.rsplit(':').next().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(f.scheme, Scheme::Bmes);
    assert!(f.sentences.len() >= 4);
}

#[test]
fn bad_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = err(read_tagged(&write(dir.path(), "e.txt", "\n\r\n  \n")));
    assert!(e.contains("e.txt is empty"), "{e}");
    let e = err(read_tagged(&write(dir.path(), "c.txt", "张 B-PER\n三\n")));
    assert!(e.contains("c.txt:2: no tag, but line 1 has one"), "{e}");
    let e = err(read_tagged(&write(dir.path(), "c.txt", "张 B-PER x\n")));
    assert!(e.contains("c.txt:1") && e.contains("char TAG"), "{e}");
    let e = err(read_tagged(&write(dir.path(), "t.txt", "张 O\n三 PER\n")));
    assert!(
        e.contains("t.txt:2") && e.contains("\"PER\" is not a tag"),
        "{e}"
    );
    let e = err(read_tagged(&write(
        dir.path(),
        "x.txt",
        "张 B-PER\n三 I-PER\n\n李 S-PER\n",
    )));
    assert!(
        e.contains("mixes BIO (I- at line 2) with BMES") && e.contains("line 4"),
        "{e}"
    );
    let e = err(read_tagged(&write(dir.path(), "all.txt", "张 E-PER\n")));
    assert!(
        e.contains("every sentence has a malformed span") && e.contains("all.txt:1"),
        "{e}"
    );
    let e = err(read_tagged(Path::new("/nonexistent/ner.txt")));
    assert!(e.contains("/nonexistent/ner.txt"), "{e}");
}

fn small_vocab(dir: &Path) -> Arc<Vocab> {
    let words = "[PAD] [UNK] [CLS] [SEP] [MASK] 张 三 李 四 在 北 京 上 海 好 ab ##c ##d";
    let p = write(
        dir,
        "vocab.txt",
        &(words.split(' ').collect::<Vec<_>>().join("\n") + "\n"),
    );
    Arc::new(Vocab::load(&p).unwrap())
}

#[test]
fn tags_come_sorted_from_training_and_extra_pieces_are_x() {
    let dir = tempfile::tempdir().unwrap();
    let train = read_tagged(&write(
        dir.path(),
        "train.txt",
        "张 B-PER\n三 E-PER\n在 O\nabc S-LOC\n\n北 B-LOC\n京 E-LOC\n",
    ))
    .unwrap();
    let tags = TagMap::from_training(&train.sentences).unwrap();
    assert_eq!(
        tags.names,
        strs("B-LOC B-PER E-LOC E-PER O S-LOC X [CLS] [SEP]")
    );
    let enc = TagEncoder::new(small_vocab(dir.path()), true, 16).unwrap();
    let f = enc.encode(&train.sentences[0], &tags).unwrap();
    // [CLS] 张 三 在 ab ##c [SEP]
    assert_eq!(f.input_ids, vec![2, 5, 6, 9, 15, 16, 3]);
    let names: Vec<&str> = f
        .tag_ids
        .iter()
        .map(|&i| tags.names[i as usize].as_str())
        .collect();
    assert_eq!(
        names,
        ["[CLS]", "B-PER", "E-PER", "O", "S-LOC", "X", "[SEP]"]
    );
    assert_eq!(f.first_piece, vec![1, 2, 3, 4]);

    // Cut to max_seq_length − 2 pieces; a cut character is predicted O.
    let short = TagEncoder::new(small_vocab(dir.path()), true, 5).unwrap();
    let f = short.encode(&train.sentences[0], &tags).unwrap();
    assert_eq!(f.input_ids, vec![2, 5, 6, 9, 3]);
    assert_eq!(f.first_piece, vec![1, 2, 3]);
    let b_per = tags.id("B-PER").unwrap() as i64;
    let x = tags.id("X").unwrap() as i64;
    let pred = nezha_finetune::ner::char_tags(&f, 4, &[0, b_per, x, b_per, 0], &tags);
    assert_eq!(pred, strs("B-PER O B-PER O"));

    // A tag training never saw: the file and line.
    let dev = read_tagged(&write(
        dir.path(),
        "dev.txt",
        "好 O\n\n上 B-ORG\n海 E-ORG\n",
    ))
    .unwrap();
    let e = err(enc.encode_all(&dev.sentences, &tags));
    assert!(e.contains("dev.txt:3: tag \"B-ORG\" never occurs"), "{e}");
    // Reserved and too few tags.
    let reserved = nezha_finetune::ner::Sentence {
        chars: strs("张 三"),
        tags: strs("[CLS] O"),
        origin: "r.txt:1".into(),
        lines: vec![1, 2],
    };
    assert!(
        err(TagMap::from_training(&[reserved])).contains("r.txt:1: the tag \"[CLS]\" is reserved")
    );
    let one = read_tagged(&write(dir.path(), "o.txt", "张 O\n三 O\n")).unwrap();
    assert!(err(TagMap::from_training(&one.sentences)).contains("at least 2"));
}

#[test]
fn predictions_file_scores_equal_seqeval() {
    let path = fixture("predictions.txt");
    let (gold, pred) = read_predictions(&path).unwrap();
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("seqeval.json")).unwrap()).unwrap();
    let s = entity_scores(&gold, &pred).unwrap();
    let close = |a: f64, b: &Value| (a - b.as_f64().unwrap()).abs() <= 1e-12;
    assert!(close(s.precision, &want["precision"]), "{}", s.precision);
    assert!(close(s.recall, &want["recall"]));
    assert!(close(s.f1, &want["f1"]));
    let per = want["per_type"].as_object().unwrap();
    assert_eq!(s.per_type.len(), per.len());
    for (k, v) in per {
        let (p, r, f, n) = s.per_type[k];
        assert!(close(p, &v[0]) && close(r, &v[1]) && close(f, &v[2]), "{k}");
        assert_eq!(n as u64, v[3].as_u64().unwrap());
    }
    // Our writer produces the same file from the same sentences.
    let sentences = read_tagged(&fixture("msra_excerpt.txt")).unwrap().sentences;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.txt");
    write_predictions(&out, &sentences, &pred).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
}

/// Sentences over 张李三四在北京上海好: 张 or 李 begins a person whose
/// second character is any character, so the second tag needs context.
fn synthetic(n: usize, seed: u64) -> String {
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
        let len = 4 + next(8) as usize;
        let mut i = 0;
        while i < len {
            let c = chars[next(chars.len() as u64) as usize];
            if (c == '张' || c == '李') && i + 1 < len {
                // The second character is never 张 or 李, so the tags are
                // a function of the text.
                let d = chars[2 + next(chars.len() as u64 - 2) as usize];
                out.push_str(&format!("{c} B-PER\n{d} E-PER\n"));
                i += 2;
            } else if c == '张' || c == '李' {
                out.push_str(&format!("{c} S-PER\n"));
                i += 1;
            } else {
                out.push_str(&format!("{c} O\n"));
                i += 1;
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn a_tiny_model_learns_a_tagging_task_that_needs_context() {
    tch::set_num_threads(2);
    let dir = tempfile::tempdir().unwrap();
    let train = read_tagged(&write(dir.path(), "train.txt", &synthetic(192, 1))).unwrap();
    let dev = read_tagged(&write(dir.path(), "dev.txt", &synthetic(48, 2))).unwrap();
    let tags = TagMap::from_training(&train.sentences).unwrap();
    let enc = TagEncoder::new(small_vocab(dir.path()), true, 32).unwrap();
    let (tr, dv) = (
        enc.encode_all(&train.sentences, &tags).unwrap(),
        enc.encode_all(&dev.sentences, &tags).unwrap(),
    );
    tch::manual_seed(3);
    let mut model = NezhaForFinetuning::new(
        &common::tiny(),
        Architecture::TokenClassification {
            num_labels: tags.len() as i64,
        },
        Device::Cpu,
    )
    .unwrap();
    let (_, before) = evaluate(&model, &dev.sentences, &dv, &tags, 32).unwrap();
    let cfg = FinetuneConfig {
        batch_size: 16,
        eval_batch_size: 32,
        learning_rate: 3e-3,
        epochs: 6.0,
        seed: 7,
        ..FinetuneConfig::default()
    };
    let mut seen = Vec::new();
    let out = fine_tune(
        &mut model,
        &tr,
        Some((&dev.sentences, &dv)),
        &tags,
        &cfg,
        |r| {
            seen.push(r.dev.as_ref().unwrap().entity.f1);
            Ok(())
        },
    )
    .unwrap();
    let (pred, after) = evaluate(&model, &dev.sentences, &dv, &tags, 32).unwrap();
    assert!(before.entity.f1 < 0.3, "{before:?}");
    assert!(after.entity.f1 > 0.9, "{after:?} (epochs: {seen:?})");
    assert!(after.token.f1 > 0.9, "{:?}", after.token);
    // The model ends on its best epoch.
    let best = seen.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(after.entity.f1, best);
    assert_eq!(seen[out.best_epoch - 1], best);
    assert_eq!(pred.len(), dev.sentences.len());
    for (p, s) in pred.iter().zip(&dev.sentences) {
        assert_eq!(p.len(), s.chars.len());
    }
}
