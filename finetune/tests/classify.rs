//! Sentence classification: readers and their errors, the reference's
//! encoding, and the fine-tuning loop learning a task it can only solve by
//! training (a random-init tiny model on synthetic data), deterministically,
//! ending on its best dev epoch.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{model, synthetic};
use nezha_finetune::classify::{
    evaluate, fine_tune, read_lines, read_tsv, split, Encoder, Example, LabelMap, TsvColumns,
};
use nezha_finetune::FinetuneConfig;
use nezha_stages::vocab::Vocab;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn columns() -> TsvColumns {
    TsvColumns {
        text_a: "sentence1".into(),
        text_b: Some("sentence2".into()),
        label: "label".into(),
    }
}

#[test]
fn tsv_rows_are_read_by_column_name_and_bad_rows_named() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        dir.path(),
        "ok.tsv",
        "label\tsentence1\tsentence2\n1\t\"你好\"\t您好\n0\t天气\t吃饭\n",
    );
    let ex = read_tsv(&ok, &columns()).unwrap();
    assert_eq!(ex.len(), 2);
    // Quotes are literal, as with the reference's quotechar=None.
    assert_eq!(ex[0].text_a, "\"你好\"");
    assert_eq!(ex[0].text_b.as_deref(), Some("您好"));
    assert_eq!(ex[1].label.as_deref(), Some("0"));
    assert!(ex[1].origin.ends_with("ok.tsv:3"));

    let bad = write(
        dir.path(),
        "bad.tsv",
        "label\tsentence1\tsentence2\n1\ta\tb\n0\tonly two\n",
    );
    let e = err(read_tsv(&bad, &columns()));
    assert!(e.contains("bad.tsv:3") && e.contains("2 fields"), "{e}");
    let e = err(read_tsv(
        &write(dir.path(), "empty.tsv", "\n \n"),
        &columns(),
    ));
    assert!(e.contains("empty.tsv is empty"), "{e}");
    let e = err(read_tsv(
        &write(dir.path(), "hdr.tsv", "label\ttext\n1\tx\n"),
        &columns(),
    ));
    assert!(e.contains("hdr.tsv:1") && e.contains("sentence1"), "{e}");
}

#[test]
fn labels_unseen_in_training_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = Arc::new(
        Vocab::load(&PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/vocab.txt"
        )))
        .unwrap(),
    );
    let enc = Encoder::new(vocab, true, 16).unwrap();
    let train = read_tsv(
        &write(
            dir.path(),
            "train.tsv",
            "label\tsentence1\tsentence2\n0\ta\tb\n1\tc\td\n",
        ),
        &columns(),
    )
    .unwrap();
    let labels = LabelMap::from_training(&train).unwrap();
    let dev = read_tsv(
        &write(
            dir.path(),
            "dev.tsv",
            "label\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\n",
        ),
        &columns(),
    )
    .unwrap();
    let e = err(enc.encode_all(&dev, &labels));
    assert!(e.contains("dev.tsv:3") && e.contains("\"2\""), "{e}");
}

#[test]
fn encoding_is_the_reference_layout() {
    let vocab = Arc::new(
        Vocab::load(&PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/vocab.txt"
        )))
        .unwrap(),
    );
    let id = |t: &str| i64::from(vocab.id(t).unwrap());
    let enc = Encoder::new(vocab.clone(), true, 8).unwrap();
    let labels = LabelMap {
        names: vec!["neg".into(), "pos".into()],
    };
    let e = Example {
        text_a: "今天天气".into(),
        text_b: Some("很好".into()),
        label: Some("pos".into()),
        origin: "t:1".into(),
    };
    let f = enc.encode(&e, &labels).unwrap();
    // 4 + 2 tokens into 8 − 3 = 5: a is longer, so a loses its last token.
    assert_eq!(
        f.input_ids,
        vec![
            id("[CLS]"),
            id("今"),
            id("天"),
            id("天"),
            id("[SEP]"),
            id("很"),
            id("好"),
            id("[SEP]")
        ]
    );
    assert_eq!(f.segment_ids, vec![0, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(f.label, 1);
    let single = Example {
        text_b: None,
        text_a: "ABC今天天气很好".into(),
        ..e
    };
    let f = enc.encode(&single, &labels).unwrap();
    assert_eq!(f.input_ids.len(), 8);
    assert_eq!(f.input_ids[1], id("abc"));
    assert_eq!(f.segment_ids, vec![0; 8]);
}

#[test]
fn sentiment_split_drops_duplicates_and_conflicts_and_is_fixed_by_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let pos = write(dir.path(), "pos.txt", "好\n很好\n好\n\n一般\n  不错 \n");
    let neg = write(dir.path(), "neg.txt", "差\n一般\n很差\n太差\n");
    let mut all = read_lines(&pos, "pos").unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[4].text_a, "不错");
    assert!(all[4].origin.ends_with("pos.txt:6"));
    all.extend(read_lines(&neg, "neg").unwrap());
    let s = split(all.clone(), 0.2, 0.2, 7).unwrap();
    assert_eq!((s.duplicates, s.conflicts), (1, 1));
    let texts = |v: &[Example]| v.iter().map(|e| e.text_a.clone()).collect::<Vec<_>>();
    let mut every: Vec<String> = [texts(&s.train), texts(&s.dev), texts(&s.test)].concat();
    every.sort();
    assert_eq!(every, vec!["不错", "太差", "好", "差", "很好", "很差"]);
    assert_eq!((s.dev.len(), s.test.len()), (1, 1));
    let again = split(all.clone(), 0.2, 0.2, 7).unwrap();
    assert_eq!(texts(&again.train), texts(&s.train));
    let other = split(all, 0.2, 0.2, 8).unwrap();
    assert_ne!(
        [texts(&other.train), texts(&other.dev)].concat(),
        [texts(&s.train), texts(&s.dev)].concat()
    );
}

#[test]
fn fine_tuning_learns_and_keeps_the_best_dev_epoch() {
    let (train, dev) = (synthetic(384, 1), synthetic(96, 2));
    let mut m = model();
    let (_, before) = evaluate(&m, &dev, 32).unwrap();
    let cfg = FinetuneConfig {
        batch_size: 16,
        eval_batch_size: 32,
        learning_rate: 2e-3,
        epochs: 4.0,
        ..FinetuneConfig::default()
    };
    let mut seen = Vec::new();
    let out = fine_tune(&mut m, &train, Some(&dev), &cfg, |r| {
        seen.push(r.epoch);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    let accs: Vec<f64> = out
        .epochs
        .iter()
        .map(|r| r.dev.as_ref().unwrap().accuracy)
        .collect();
    eprintln!(
        "dev accuracy before {:.3}, per epoch {accs:?}",
        before.accuracy
    );
    let best = &out.epochs[out.best_epoch - 1];
    let best_dev = best.dev.clone().unwrap();
    assert!(best_dev.accuracy >= 0.9, "{accs:?}");
    assert!(accs.iter().all(|&a| a <= best_dev.accuracy));
    // 384 / 16 · 4 = 96 updates, the last with learning rate 0.
    assert_eq!(out.epochs[3].global_step, 96);
    assert_eq!(out.epochs[3].learning_rate, 0.0);
    // The model holds the best epoch's weights.
    let (_, after) = evaluate(&m, &dev, 32).unwrap();
    assert_eq!(after, best_dev);
}
