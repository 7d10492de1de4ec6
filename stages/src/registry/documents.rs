//! The steps between reading and sentence splitting: `[dedup]` and
//! `[clean]`, and the `command` stage (which can also split sentences).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Context, Factory, Registry};
use crate::command::{CommandSpec, CommandStage};
use crate::data::Document;
use crate::dedup::{DedupKeys, DedupPlan, MinHashParams};
use crate::error::Result;
use crate::params::{check_at_least, Params};

pub fn register(r: &mut Registry) {
    r.dedup.add("exact", exact_dedup);
    r.dedup.add("minhash", minhash_dedup);
    r.clean.add("command", |p, ctx| command(p, ctx, "clean"));
    r.sentences
        .add("command", |p, ctx| command(p, ctx, "sentences"));
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

fn exact_dedup(p: &Params, _: &mut Context) -> Result<DedupPlan> {
    let d: DedupToml = p.parse()?;
    Ok(DedupPlan {
        keys: DedupKeys::Exact,
        lead_documents: lead_documents(p, &d.lead_documents)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MinHashToml {
    lead_documents: Option<Spanned<i64>>,
    #[serde(default = "default_shingle")]
    shingle: Spanned<i64>,
    #[serde(default = "default_bands")]
    bands: Spanned<i64>,
    #[serde(default = "default_rows")]
    rows: Spanned<i64>,
}

fn default_shingle() -> Spanned<i64> {
    Spanned::new(0..0, 5)
}

fn default_bands() -> Spanned<i64> {
    Spanned::new(0..0, 16)
}

fn default_rows() -> Spanned<i64> {
    Spanned::new(0..0, 8)
}

/// Near duplicates. The defaults (16 bands of 8 rows) catch half the pairs
/// at Jaccard similarity 0.71 and nearly all above 0.85; each document
/// costs 128 hash updates per character.
fn minhash_dedup(p: &Params, _: &mut Context) -> Result<DedupPlan> {
    let m: MinHashToml = p.parse()?;
    let params = MinHashParams {
        shingle: check_at_least(p, &m.shingle, "shingle", 1)?,
        bands: check_at_least(p, &m.bands, "bands", 1)?,
        rows: check_at_least(p, &m.rows, "rows", 1)?,
    };
    if params.bands * params.rows > 1024 {
        return Err(p.invalid(&m.rows, "bands × rows", "is over 1024 hashes per document"));
    }
    Ok(DedupPlan {
        keys: DedupKeys::MinHash(params),
        lead_documents: lead_documents(p, &m.lead_documents)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandToml {
    /// The program and its arguments.
    command: Spanned<Vec<String>>,
    #[serde(default = "default_in_flight")]
    max_in_flight: Spanned<i64>,
    #[serde(default = "default_timeout")]
    timeout_s: Spanned<f64>,
}

fn default_in_flight() -> Spanned<i64> {
    Spanned::new(0..0, 64)
}

fn default_timeout() -> Spanned<f64> {
    Spanned::new(0..0, 60.0)
}

fn command(p: &Params, ctx: &mut Context, section: &str) -> Result<Factory<Document, Document>> {
    let c: CommandToml = p.parse()?;
    if c.command.get_ref().is_empty() || c.command.get_ref()[0].is_empty() {
        return Err(p.invalid(&c.command, "command", "names no program"));
    }
    let timeout = *c.timeout_s.get_ref();
    if !(timeout > 0.0 && timeout.is_finite()) {
        return Err(p.invalid(
            &c.timeout_s,
            "timeout_s",
            "must be a positive number of seconds",
        ));
    }
    let spec = CommandSpec {
        section: section.to_string(),
        argv: c.command.get_ref().clone(),
        // A file named without a directory lives in the current one.
        dir: if ctx.base_dir.as_os_str().is_empty() {
            ".".into()
        } else {
            ctx.base_dir.clone()
        },
        max_in_flight: check_at_least(p, &c.max_in_flight, "max_in_flight", 1)?,
        timeout: Duration::from_secs_f64(timeout),
    };
    Ok(Arc::new(move |_| Ok(Box::new(CommandStage::start(&spec)?))))
}
