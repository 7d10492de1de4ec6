//! `--do_predict` for classification: class probabilities of examples that
//! may have no label, written as `run_classifier.py`'s `test_results.tsv`
//! (one row per example, the probabilities tab-separated in label-list
//! order, no header), and the predicted label names beside the texts in
//! `test_predictions.tsv` for people to read.

use std::path::Path;

use anyhow::{ensure, Result};
use nezha_stages::atomic_file;
use nezha_train::model::Mode;
use tch::{Device, Kind};

use super::data::Example;
use super::features::{Inputs, LabelMap};
use crate::model::{HeadOutput, NezhaForFinetuning};
use crate::padding::{mask, padded};

/// The softmax of the classifier's logits for every example, in order
/// (eval mode, f32, as `run_classifier.py`'s `probabilities`).
pub fn probabilities(
    model: &NezhaForFinetuning,
    data: &[Inputs],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    ensure!(!data.is_empty(), "nothing to predict");
    ensure!(batch_size > 0, "batch size must be positive");
    let device = model.device();
    let mut out = Vec::with_capacity(data.len());
    tch::no_grad(|| -> Result<()> {
        for chunk in data.chunks(batch_size) {
            let ids: Vec<&[i64]> = chunk.iter().map(|f| f.input_ids.as_slice()).collect();
            let seg: Vec<&[i64]> = chunk.iter().map(|f| f.segment_ids.as_slice()).collect();
            let (i, m, s) = (
                padded(&ids, 0, device),
                mask(&ids, device),
                padded(&seg, 0, device),
            );
            let HeadOutput::Sequence(logits) = model.forward(&i, &m, &s, None, Mode::eval()) else {
                anyhow::bail!("the model does not have a sentence classification head");
            };
            let p = logits
                .softmax(-1, Kind::Float)
                .to_device(Device::Cpu)
                .contiguous();
            let k = p.size()[1] as usize;
            let flat: Vec<f32> = Vec::try_from(p.reshape([-1]))?;
            out.extend(flat.chunks(k).map(<[f32]>::to_vec));
        }
        Ok(())
    })?;
    Ok(out)
}

/// The most probable label id of each row (the first on ties, as argmax).
pub fn argmax(probabilities: &[Vec<f32>]) -> Vec<usize> {
    probabilities
        .iter()
        .map(|row| {
            let mut best = 0;
            for (i, &p) in row.iter().enumerate() {
                if p > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Writes `test_results.tsv` (the probabilities) and `test_predictions.tsv`
/// (`[label<TAB>]prediction<TAB>text_a[<TAB>text_b]`, with a header; the
/// gold label column only when the examples have labels) into `dir`.
pub fn write(
    dir: &Path,
    examples: &[Example],
    probabilities: &[Vec<f32>],
    labels: &LabelMap,
) -> Result<()> {
    ensure!(
        examples.len() == probabilities.len(),
        "{} examples but {} predictions",
        examples.len(),
        probabilities.len()
    );
    let mut results = String::new();
    for row in probabilities {
        let cells: Vec<String> = row.iter().map(f32::to_string).collect();
        results.push_str(&cells.join("\t"));
        results.push('\n');
    }
    let pair = examples.iter().any(|e| e.text_b.is_some());
    let gold = examples.iter().all(|e| e.label.is_some());
    let mut header = vec!["prediction", "text_a"];
    if gold {
        header.insert(0, "label");
    }
    if pair {
        header.push("text_b");
    }
    let mut readable = header.join("\t") + "\n";
    for (e, p) in examples.iter().zip(argmax(probabilities)) {
        let mut row: Vec<&str> = vec![&labels.names[p], &e.text_a];
        if let Some(l) = e.label.as_deref().filter(|_| gold) {
            row.insert(0, l);
        }
        if pair {
            row.push(e.text_b.as_deref().unwrap_or(""));
        }
        readable.push_str(&row.join("\t"));
        readable.push('\n');
    }
    atomic_file::write_file(&dir.join("test_results.tsv"), results.as_bytes())?;
    atomic_file::write_file(&dir.join("test_predictions.tsv"), readable.as_bytes())?;
    Ok(())
}
