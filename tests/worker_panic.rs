//! A stage that panics ends the run with an error naming the worker, the
//! stage and the panic's message, instead of leaving the other workers
//! waiting for ever on the panicked one (a timely worker that unwinds never
//! finishes its dataflow).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nezha_pipeline::registry::{install, Built, Factory, Registry, Settings};
use nezha_pipeline::{start, Plan};
use nezha_stages::data::Document;
use nezha_stages::stage::Stage;
use nezha_stages::Batch;

mod common;
use common::{chapters, root};

/// Passes documents on and panics on its `at`-th.
struct PanicAt {
    at: u64,
    seen: u64,
}

impl Stage for PanicAt {
    type In = Document;
    type Out = Document;
    fn push(
        &mut self,
        doc: Document,
        emit: &mut dyn FnMut(Document),
    ) -> nezha_stages::error::Result<()> {
        self.seen += 1;
        if self.seen == self.at {
            panic!("document {} is the {}th", doc.index, self.at);
        }
        emit(doc);
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct PanicParams {
    at: u64,
    /// Only this worker's stage panics.
    worker: usize,
}

fn register(r: &mut Registry) {
    r.clean.add("panic_at", |_, p: PanicParams, _| {
        let (at, only) = (p.at, p.worker);
        let factory: Factory<Document, Document> = Arc::new(move |w| {
            let at = if w.index == only { at } else { u64::MAX };
            Ok(Box::new(PanicAt { at, seen: 0 }))
        });
        Ok(Built::new(factory, Settings::new()))
    });
}

#[test]
fn a_panicking_stage_ends_a_three_worker_run_naming_the_worker() {
    install(register);
    let dir = tempfile::tempdir().unwrap();
    // Many one-paragraph documents, so worker 1 meets its 100th.
    let docs: Vec<String> = chapters(60)
        .iter()
        .flat_map(|c| c.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(docs.len() > 400, "{} documents", docs.len());
    std::fs::write(dir.path().join("corpus.txt"), docs.join("\n\n")).unwrap();
    let toml = format!(
        r#"workers = 3
[ingest]
input = "corpus.txt"
[clean]
kind = "panic_at"
at = 100
worker = 1
[sentences]
kind = "punct"
[wordpiece]
vocab = "{}"
[masking]
kind = "dynamic"
[batching]
batch_size = 8
[sink]
kind = "check"
"#,
        root().join("data/vocab.txt").display()
    );
    let file = dir.path().join("p.toml");
    std::fs::write(&file, toml).unwrap();
    let plan = Plan::load(&file, Default::default()).unwrap();
    let started = Instant::now();
    let mut running = start::<Batch>(&plan).unwrap();
    running.items.by_ref().for_each(drop);
    let err = running.finish().expect_err("the run must fail");
    let message = format!("{err:#}");
    assert!(
        message.contains("worker 1")
            && message.contains("\"clean\"")
            && message.contains("panicked")
            && message.contains("is the 100th"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
