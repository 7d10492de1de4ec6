//! The steps between reading and sentence splitting: `[dedup]` and
//! `[clean]`, and the `command` stage (which can also split sentences).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use nezha_stages::command::{CommandSpec, CommandStage};
use nezha_stages::data::Document;
use nezha_stages::dedup::{DedupKeys, DedupPlan, MinHashParams};
use nezha_stages::error::Result;
use nezha_stages::params::{check_at_least, Params};

use super::{Built, Factory, Registry, Settings};
use crate::resolve::Resolved;

pub fn register(r: &mut Registry) {
    r.dedup.add("exact", exact_dedup);
    r.dedup.add("minhash", minhash_dedup);
    r.clean
        .add("command", |p, c, resolved| command(p, c, resolved, "clean"));
    r.sentences.add("command", |p, c, resolved| {
        command(p, c, resolved, "sentences")
    });
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandToml {
    /// The program and its arguments.
    command: Spanned<Vec<String>>,
    max_in_flight: Option<Spanned<i64>>,
    timeout_s: Option<Spanned<f64>>,
}

fn command(
    p: &Params,
    c: CommandToml,
    resolved: &Resolved,
    section: &str,
) -> Result<Built<Factory<Document, Document>>> {
    if c.command.get_ref().is_empty() || c.command.get_ref()[0].is_empty() {
        return Err(p.invalid(&c.command, "command", "names no program"));
    }
    let timeout = match &c.timeout_s {
        Some(t) if !(*t.get_ref() > 0.0 && t.get_ref().is_finite()) => {
            return Err(p.invalid(t, "timeout_s", "must be a positive number of seconds"))
        }
        Some(t) => *t.get_ref(),
        None => 60.0,
    };
    let max_in_flight = match &c.max_in_flight {
        Some(m) => check_at_least(p, m, "max_in_flight", 1)?,
        None => 64,
    };
    let spec = CommandSpec {
        section: section.to_string(),
        argv: c.command.get_ref().clone(),
        // A file named without a directory lives in the current one.
        dir: if resolved.base_dir.as_os_str().is_empty() {
            ".".into()
        } else {
            resolved.base_dir.clone()
        },
        max_in_flight,
        timeout: Duration::from_secs_f64(timeout),
    };
    let settings = Settings::new()
        .set("command", &spec.argv)
        .set("max_in_flight", max_in_flight)
        .set("timeout_s", timeout);
    Ok(Built::new(
        Arc::new(move |_| Ok(Box::new(CommandStage::start(&spec)?))),
        settings,
    ))
}
