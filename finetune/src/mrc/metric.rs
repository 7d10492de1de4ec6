//! Exact match and F1 as the CMRC 2018 evaluation script computes them:
//! text lower-cased and stripped, then segmented with every CJK character
//! (U+4E00..U+9FA5) and every listed punctuation mark as its own segment;
//! F1 from the longest common *contiguous* run of segments (punctuation
//! removed), EM on the texts with the punctuation removed; the best over
//! the gold answers; both × 100 over all questions, an unanswered one
//! scoring 0.
//!
//! One difference: the script splits the runs between Chinese characters
//! with NLTK's `word_tokenize`; here they are split at whitespace, which
//! agrees with it for plain words and numbers but not where NLTK would
//! split off English punctuation or clitics ("don't" → "do", "n't").

use anyhow::{ensure, Result};

const PUNCT: [&str; 33] = [
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”",
    "；", "’", "《", "》", "……", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』",
];

fn is_punct(c: char) -> bool {
    let mut b = [0u8; 4];
    PUNCT.contains(&&*c.encode_utf8(&mut b))
}

fn is_chinese(c: char) -> bool {
    ('\u{4e00}'..='\u{9fa5}').contains(&c)
}

/// The script's `mixed_segmentation(text, rm_punc=True)`.
pub fn segments(text: &str) -> Vec<String> {
    let text = text.to_lowercase();
    let mut out = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<String>| {
        out.extend(run.split_whitespace().map(String::from));
        run.clear();
    };
    for c in text.trim().chars() {
        if is_punct(c) {
            continue;
        }
        if is_chinese(c) {
            flush(&mut run, &mut out);
            out.push(c.to_string());
        } else {
            run.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The script's `remove_punctuation`.
fn without_punct(text: &str) -> String {
    text.to_lowercase()
        .trim()
        .chars()
        .filter(|&c| !is_punct(c))
        .collect()
}

/// Length of the longest common contiguous run.
fn lcs(a: &[String], b: &[String]) -> usize {
    let mut best = 0;
    let mut prev = vec![0usize; b.len() + 1];
    for x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            if x == y {
                cur[j + 1] = prev[j] + 1;
                best = best.max(cur[j + 1]);
            }
        }
        prev = cur;
    }
    best
}

/// F1 of one prediction against its gold answers (the best).
pub fn f1(answers: &[String], prediction: &str) -> f64 {
    let p = segments(prediction);
    answers
        .iter()
        .map(|a| {
            let g = segments(a);
            let l = lcs(&g, &p);
            if l == 0 {
                return 0.0;
            }
            let (pr, rc) = (l as f64 / p.len() as f64, l as f64 / g.len() as f64);
            2.0 * pr * rc / (pr + rc)
        })
        .fold(0.0, f64::max)
}

/// 1 if the prediction equals some gold answer, punctuation removed.
pub fn exact_match(answers: &[String], prediction: &str) -> f64 {
    let p = without_punct(prediction);
    f64::from(u8::from(answers.iter().any(|a| without_punct(a) == p)))
}

/// (EM, F1) × 100 over questions; `None` is an unanswered question.
pub fn em_f1(gold: &[Vec<String>], pred: &[Option<String>]) -> Result<(f64, f64)> {
    ensure!(
        gold.len() == pred.len(),
        "{} questions but {} predictions",
        gold.len(),
        pred.len()
    );
    ensure!(!gold.is_empty(), "no questions");
    let (mut em, mut f) = (0.0, 0.0);
    for (g, p) in gold.iter().zip(pred) {
        if let Some(p) = p {
            em += exact_match(g, p);
            f += f1(g, p);
        }
    }
    let n = gold.len() as f64;
    Ok((100.0 * em / n, 100.0 * f / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn by_hand() {
        assert_eq!(
            segments("刘备，字Xuan De。"),
            s(&["刘", "备", "字", "xuan", "de"])
        );
        // gold 刘/备/字/玄/德, prediction 备/字/玄: lcs 3 → p 1, r 3/5.
        let f = f1(&s(&["刘备字玄德"]), "备字玄");
        assert!((f - 2.0 * 0.6 / 1.6).abs() < 1e-12, "{f}");
        // The best gold answer counts; punctuation is ignored for EM.
        assert_eq!(exact_match(&s(&["曹操", "刘备。"]), "刘备"), 1.0);
        assert_eq!(exact_match(&s(&["刘备"]), "刘 备"), 0.0);
        assert_eq!(f1(&s(&["刘备"]), "孙权"), 0.0);
        // Contiguous runs only: 刘/关/张 vs 刘/张 share a run of 1.
        let f = f1(&s(&["刘关张"]), "刘张");
        assert!((f - 2.0 * 0.5 * (1.0 / 3.0) / (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        let (em, f) = em_f1(&[s(&["刘备"]), s(&["曹操"])], &[Some("刘备".into()), None]).unwrap();
        assert_eq!((em, f), (50.0, 50.0));
    }
}
