//! The reading task's `--do_predict` files as NEZHA-TensorFlow's
//! `run_squad.py` `write_predictions` writes them (BERT's, plus each
//! answer's piece positions): `predictions.json`, `{id: best answer
//! text}`, and `nbest_predictions.json`, `{id: [{"text", "probability",
//! "start_logit", "end_logit", "start_index", "end_index"}, …]}`, both in
//! example order and with Python's `json.dumps(…, indent=4)` layout
//! ([`crate::python_json`]); as there, the answers file keeps non-ASCII
//! text as it is (`ensure_ascii=False`) and the n-best file escapes it.
//! `probability` is `_compute_softmax` of each candidate's start + end
//! logit over the example's n-best list, in f64 as Python computes it.
//! (NEZHA's script names the files `dev_predictions.json` and
//! `dev_nbest_predictions.json`; these are BERT's names.)

use std::path::Path;

use anyhow::{ensure, Result};
use nezha_stages::atomic_file;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::data::MrcExample;
use super::nbest::Candidate;
use crate::python_json::{dumps, Ascii, Ordered};

/// `_compute_softmax`: max-subtracted exponentials, normalised.
pub fn softmax(scores: &[f64]) -> Vec<f64> {
    let Some(max) = scores.iter().copied().reduce(f64::max) else {
        return Vec::new();
    };
    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// One n-best entry in the reference's key order.
struct Entry<'a> {
    candidate: &'a Candidate,
    probability: f64,
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Entry", 6)?;
        m.serialize_field("text", &self.candidate.text)?;
        m.serialize_field("probability", &self.probability)?;
        // Python holds the f32 logits as floats (f64): written as such.
        m.serialize_field("start_logit", &f64::from(self.candidate.start_logit))?;
        m.serialize_field("end_logit", &f64::from(self.candidate.end_logit))?;
        m.serialize_field("start_index", &self.candidate.start_index)?;
        m.serialize_field("end_index", &self.candidate.end_index)?;
        m.end()
    }
}

/// Writes `predictions.json` and `nbest_predictions.json` into `dir` from
/// each example's n-best list (best first, as [`super::predict`] gives).
pub fn write(dir: &Path, examples: &[MrcExample], nbest: &[Vec<Candidate>]) -> Result<()> {
    ensure!(
        examples.len() == nbest.len(),
        "{} questions but {} answer lists",
        examples.len(),
        nbest.len()
    );
    let mut best = Vec::with_capacity(examples.len());
    let mut all = Vec::with_capacity(examples.len());
    for (e, list) in examples.iter().zip(nbest) {
        ensure!(!list.is_empty(), "{}: no candidate answer", e.origin);
        let scores: Vec<f64> = list
            .iter()
            .map(|c| f64::from(c.start_logit) + f64::from(c.end_logit))
            .collect();
        let entries: Vec<Entry> = list
            .iter()
            .zip(softmax(&scores))
            .map(|(candidate, probability)| Entry {
                candidate,
                probability,
            })
            .collect();
        best.push((e.id.as_str(), list[0].text.as_str()));
        all.push((e.id.as_str(), entries));
    }
    atomic_file::write_file(
        &dir.join("predictions.json"),
        &dumps(&Ordered(best), Ascii::Keep)?,
    )?;
    atomic_file::write_file(
        &dir.join("nbest_predictions.json"),
        &dumps(&Ordered(all), Ascii::Escape)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_the_references() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        let want = [0.09003057317038046, 0.24472847105479764, 0.6652409557748219];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{p:?}");
        }
        assert!(softmax(&[]).is_empty());
    }
}
