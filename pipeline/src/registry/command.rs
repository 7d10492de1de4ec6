//! `kind = "command"`: a program of the user's, in any language, as the
//! `[clean]` step (documents rewritten or dropped before sentence
//! splitting) or as the sentence splitter.

use std::sync::Arc;
use std::time::Duration;

use nezha_stages::command::{CommandSpec, CommandStage};
use nezha_stages::data::Document;
use nezha_stages::error::Result;
use nezha_stages::params::{check_at_least, Params};
use serde::Deserialize;
use toml::Spanned;

use super::{Built, Factory, Registry, Settings};
use crate::resolve::Resolved;

pub fn register(r: &mut Registry) {
    r.clean
        .add("command", |p, c, resolved| command(p, c, resolved, "clean"));
    r.sentences.add("command", |p, c, resolved| {
        command(p, c, resolved, "sentences")
    });
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
        // A finite value can still be too large for a `Duration` (1e300),
        // which `Duration::from_secs_f64` below would panic on.
        Some(t) if !(*t.get_ref() > 0.0 && Duration::try_from_secs_f64(*t.get_ref()).is_ok()) => {
            return Err(p.invalid(
                t,
                "timeout_s",
                "must be a positive number of seconds (at most about 1.8e19)",
            ))
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
