//! docs/pipeline.md is the reference of every key a pipeline file accepts:
//! a key some kind accepts but the page does not name fails here.

mod common;

use std::collections::BTreeMap;

use common::{nezha, root};
use nezha_pipeline::registry::Registry;

/// The page's `## ` blocks by the section their heading names (`[ingest]`,
/// or `top level`).
fn blocks(page: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = if heading.to_ascii_lowercase().contains("top level") {
                Some("top level".into())
            } else {
                heading.find('[').and_then(|a| {
                    heading[a + 1..]
                        .find(']')
                        .map(|b| heading[a + 1..a + 1 + b].to_string())
                })
            };
            continue;
        }
        if let Some(section) = &current {
            let block = out.entry(section.clone()).or_default();
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

#[test]
fn every_accepted_key_is_documented() {
    let page = std::fs::read_to_string(root().join("docs/pipeline.md")).unwrap();
    let blocks = blocks(&page);
    let mut registry = Registry::builtin();
    nezha::register(&mut registry);
    let accepted = registry.accepted_keys();
    for section in [
        "top level",
        "ingest",
        "wordpiece",
        "instances",
        "masking",
        "sink",
        "train",
    ] {
        assert!(
            accepted.contains_key(section),
            "no keys known for {section}"
        );
    }
    let mut missing = Vec::new();
    for (section, keys) in &accepted {
        let block = blocks.get(section).map(String::as_str).unwrap_or("");
        for key in keys {
            if !block.contains(&format!("`{key}`")) {
                missing.push(format!("[{section}] {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/pipeline.md does not document: {}",
        missing.join(", ")
    );
}

#[test]
fn the_check_itself_finds_an_undocumented_key() {
    let page = "## top level\n`seed`\n## [ingest]\n`kind` `input`\n";
    let blocks = blocks(page);
    assert!(blocks["ingest"].contains("`input`"));
    assert!(!blocks["ingest"].contains("`text_field`"));
    assert!(!blocks["top level"].contains("`input`"));
}

#[test]
fn print_plan_shows_the_resolved_pipeline_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bundled = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    let data = format!("\"{}/", root().join("data").display());
    std::fs::write(dir.path().join("p.toml"), bundled.replace("\"data/", &data)).unwrap();
    let out = nezha(&["run", "--print-plan", "p.toml"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "workers = 2",
        "[instances]",
        "kind = \"streaming\"",
        "[masking]",
        "kind = \"static\"",
        "[batching]",
        "batch_size = 32",
        "[train]",
        // Defaults the file does not write.
        "decay_power = 1.0",
        "epsilon = 0.000001",
        "collective_timeout_s = 60",
        "overlap_all_reduce = true",
        "document_per_file = true",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from\n{stdout}");
    }
    // Nothing ran: the output directory did not appear.
    assert!(stdout.contains("output_dir = \"out/tiny\""), "{stdout}");
    assert!(!dir.path().join("out").exists());
}
