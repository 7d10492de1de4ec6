//! `[dedup]`: dropping documents whose text (`exact`) or most of it
//! (`minhash`) came earlier in the corpus.

use nezha_stages::dedup::{DedupKeys, DedupPlan, MinHashParams};
use nezha_stages::error::Result;
use nezha_stages::params::{check_at_least, Params};
use serde::Deserialize;
use toml::Spanned;

use super::{Built, Registry, Settings};
use crate::resolve::Resolved;

pub fn register(r: &mut Registry) {
    r.dedup.add("exact", exact_dedup);
    r.dedup.add("minhash", minhash_dedup);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DedupToml {
    lead_documents: Option<Spanned<i64>>,
}

fn lead_documents(p: &Params, lead: &Option<Spanned<i64>>) -> Result<u64> {
    Ok(match lead {
        Some(l) => check_at_least(p, l, "lead_documents", 1)? as u64,
        None => 65_536,
    })
}

fn exact_dedup(p: &Params, d: DedupToml, _: &Resolved) -> Result<Built<DedupPlan>> {
    let lead_documents = lead_documents(p, &d.lead_documents)?;
    Ok(Built::new(
        DedupPlan {
            keys: DedupKeys::Exact,
            lead_documents,
        },
        Settings::new().set("lead_documents", lead_documents),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MinHashToml {
    lead_documents: Option<Spanned<i64>>,
    shingle: Option<Spanned<i64>>,
    bands: Option<Spanned<i64>>,
    rows: Option<Spanned<i64>>,
}

/// Near duplicates (defaults: `MinHashParams::default`).
fn minhash_dedup(p: &Params, m: MinHashToml, _: &Resolved) -> Result<Built<DedupPlan>> {
    let mut params = MinHashParams::default();
    if let Some(v) = &m.shingle {
        params.shingle = check_at_least(p, v, "shingle", 1)?;
    }
    if let Some(v) = &m.bands {
        params.bands = check_at_least(p, v, "bands", 1)?;
    }
    if let Some(v) = &m.rows {
        params.rows = check_at_least(p, v, "rows", 1)?;
    }
    if params.bands * params.rows > 1024 {
        let at = m.rows.as_ref().or(m.bands.as_ref());
        return Err(p.error(
            at.map_or(p.span.clone(), |s| s.span()),
            "[dedup] bands × rows: is over 1024 hashes per document".into(),
        ));
    }
    let lead_documents = lead_documents(p, &m.lead_documents)?;
    let settings = Settings::new()
        .set("lead_documents", lead_documents)
        .set("shingle", params.shingle)
        .set("bands", params.bands)
        .set("rows", params.rows);
    Ok(Built::new(
        DedupPlan {
            keys: DedupKeys::MinHash(params),
            lead_documents,
        },
        settings,
    ))
}
