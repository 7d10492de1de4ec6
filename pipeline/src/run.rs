use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Sender};
use nezha_stages::data::{Document, Instance, TokenizedDocument};
use nezha_stages::dedup::{Dedup, DedupCounts, FilterSpec, Share};
use nezha_stages::error::Error;
use nezha_stages::gather::{gather, Backlog};
use nezha_stages::holdout::{Holdout, Side};
use nezha_stages::ingest::spawn_reader_passes;
use nezha_stages::operator::{
    channel_sink, channel_source_while, stage_operator, Control, FlowStream,
};
use nezha_stages::sinks::RoundRobin;
use nezha_stages::stage::BoxedStage;
use nezha_stages::Batch;
use timely::WorkerConfig;

use crate::plan::Plan;
use crate::registry::{Factory, WorkerInfo};
use crate::resolve::{Generation, Reading, Resolved};

/// Documents a reader may run ahead of its worker.
const DOCUMENT_QUEUE: usize = 256;

/// What the end of each worker's stream is: masked instances (for TFRecord
/// files) or batches (for the trainer and the checking consumer).
pub trait Tail: Clone + Send + 'static {
    /// Items a worker may run ahead of the sink: enough to keep the sink
    /// busy, few enough that memory does not depend on it (a batch of 64
    /// at length 128 is about 200 KB).
    const QUEUE: usize;

    /// Consecutive instances of a worker's stream the sink takes in one
    /// turn (see `WorkerInfo::per_turn`).
    fn instances_per_turn(plan: &Plan) -> usize;

    /// Connects a worker's stream of masked instances to its sink channel.
    fn attach(
        instances: FlowStream<'_, Instance>,
        batching: Option<BoxedStage<Instance, Batch>>,
        tx: Sender<Self>,
        control: Control,
    );
}

impl Tail for Instance {
    const QUEUE: usize = 1024;
    fn instances_per_turn(_: &Plan) -> usize {
        1
    }
    fn attach(
        instances: FlowStream<'_, Instance>,
        _: Option<BoxedStage<Instance, Batch>>,
        tx: Sender<Self>,
        control: Control,
    ) {
        channel_sink(instances, "sink", tx, control);
    }
}

impl Tail for Batch {
    const QUEUE: usize = 8;
    fn instances_per_turn(plan: &Plan) -> usize {
        plan.resolved.batching.map_or(1, |b| b.batch_size)
    }
    fn attach(
        instances: FlowStream<'_, Instance>,
        batching: Option<BoxedStage<Instance, Batch>>,
        tx: Sender<Self>,
        control: Control,
    ) {
        // A plan whose sink takes batches has `[batching]` (Plan::build
        // refuses it otherwise); a caller that starts one without gets an
        // error, not a panic.
        let Some(batching) = batching else {
            control.fail(Error::config(
                "batches were asked of a pipeline without [batching]",
            ));
            return;
        };
        let batches = stage_operator(instances, "batching", batching, control.clone());
        channel_sink(batches, "sink", tx, control);
    }
}

/// A dataflow running on its workers; the caller consumes `items`.
pub struct Running<T> {
    pub items: RoundRobin<T>,
    /// Bytes read from the input files by one reader (every reader reads
    /// everything), against `total_bytes`, for progress.
    pub bytes_read: Arc<AtomicU64>,
    pub total_bytes: u64,
    control: Control,
    guards: Option<timely_communication::WorkerGuards<()>>,
    dedup: Option<(Dedup, Arc<DedupCounts>)>,
}

impl<T> Running<T> {
    /// Asks the workers to stop early (the consumer has what it needs).
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Waits for every worker and returns the first error any of them hit.
    pub fn finish(mut self) -> anyhow::Result<()> {
        // Dropping the receivers unblocks workers still sending.
        self.items = RoundRobin::new(Vec::new());
        if let Some(g) = self.guards.take() {
            for r in g.join() {
                r.map_err(|e| anyhow::anyhow!("a worker failed: {e}"))?;
            }
        }
        if let Some((dedup, counts)) = self.dedup.take() {
            let dropped = dedup.describe();
            dedup
                .join()
                .map_err(|e| anyhow::anyhow!("a dedup worker failed: {e}"))?;
            if self.control.stopped() {
                // Stopped early or failed: the counts are partial.
            } else {
                println!(
                    "dedup: kept {} documents, dropped {} {dropped}",
                    counts.kept(),
                    counts.dropped()
                );
            }
        }
        match self.control.take_error() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Documents kept and dropped by `[dedup]` so far, if it is on.
    pub fn dedup_counts(&self) -> Option<(u64, u64)> {
        self.dedup.as_ref().map(|(_, c)| (c.kept(), c.dropped()))
    }
}

/// The documents worker `w` of this process (of `peers`) reads: its global
/// slot's share, or, in a gathering run, its share among this process's
/// workers only, since the gather reaches no other process (every process
/// then reads the whole corpus). The reader and `[dedup]`'s filter must
/// agree on it.
fn read_share(reading: Reading, shard: Shard, w: usize, peers: usize) -> Share {
    if reading.gather {
        Share {
            index: w as u64,
            of: peers as u64,
        }
    } else {
        Share {
            index: (shard.index * peers + w) as u64,
            of: (shard.count * peers) as u64,
        }
    }
}

/// Which share of the global worker slots a process runs: with `count`
/// processes of `plan.workers` workers each, process `index` runs slots
/// index·workers .. (index+1)·workers of count·workers, so together they
/// produce what one process with count·workers workers would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Builds and starts the plan's dataflow on `plan.workers` threads.
pub fn start<T: Tail>(plan: &Plan) -> anyhow::Result<Running<T>> {
    start_shard(plan, Shard { index: 0, count: 1 })
}

/// [`start`] for one process's [`Shard`] of the worker slots. With a
/// held-out share (`Plan::holdout`), its documents are left out.
pub fn start_shard<T: Tail>(plan: &Plan, shard: Shard) -> anyhow::Result<Running<T>> {
    if plan.resolved.generation == Generation::Reference && shard.count > 1 {
        anyhow::bail!(
            "{}: [instances] kind = \"reference\" runs in one process: the reference \
             script shuffles all documents and draws random next segments from any of them, \
             so it needs every document in one place; for {} processes use kind = \"streaming\"",
            plan.file().display(),
            shard.count
        );
    }
    start_flow(plan, shard, Stages::of(plan, plan.resolved.generation)?)
}

/// [`start_shard`] over one pass of the corpus (`[masking] epochs` = 1):
/// what the run's stream holds is counted from it.
pub fn start_pass<T: Tail>(plan: &Plan, shard: Shard) -> anyhow::Result<Running<T>> {
    let generation = plan.resolved.generation.one_epoch();
    start_flow(plan, shard, Stages::of(plan, generation)?)
}

/// The held-out documents only (`Plan::holdout`), through the same stages
/// with one fixed mask per instance (dynamic masking's first epoch becomes
/// static masking from the same seed), read once: the evaluation stream.
pub fn start_held_out(plan: &Plan) -> anyhow::Result<Running<Batch>> {
    if plan.holdout.is_none() {
        anyhow::bail!(
            "{}: the pipeline holds no documents out",
            plan.file().display()
        );
    }
    let generation = match plan.resolved.generation {
        Generation::Dynamic { .. } => Generation::Streaming { epochs: 1 },
        fixed => fixed.one_epoch(),
    };
    let mut stages = Stages::of(plan, generation)?;
    stages.keep = Side::HeldOut;
    start_flow(plan, Shard { index: 0, count: 1 }, stages)
}

fn start_flow<T: Tail>(plan: &Plan, shard: Shard, stages: Stages) -> anyhow::Result<Running<T>> {
    let Some(ingest) = plan.ingest.clone() else {
        anyhow::bail!(
            "{}: the pipeline has no [ingest] section to stream from",
            plan.file().display()
        );
    };
    let control = Control::default();
    let peers = plan.resolved.workers;
    let reading = stages.generation.reading();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..peers).map(|_| bounded::<T>(T::QUEUE)).unzip();
    let senders = Arc::new(Mutex::new(
        senders.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let bytes_read = Arc::new(AtomicU64::new(0));
    let total_bytes = ingest
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>()
        * reading.passes as u64;
    let mut dedup = start_dedup(plan, &ingest, shard, reading, &control)?;
    let filters: Vec<_> = match dedup.as_mut() {
        Some((d, _)) => d.take_filters().into_iter().map(Some).collect(),
        None => Vec::new(),
    };
    let filters = Arc::new(Mutex::new(filters));
    let worker_control = control.clone();
    let progress = bytes_read.clone();
    let per_turn = T::instances_per_turn(plan);

    let config = timely::Config {
        communication: timely::CommunicationConfig::Process(peers),
        worker: WorkerConfig::default(),
    };
    let guards = timely::execute(config, move |worker| {
        let info = WorkerInfo {
            index: shard.index * worker.peers() + worker.index(),
            peers: shard.count * worker.peers(),
            deal: worker.index() * shard.count + shard.index,
            per_turn,
        };
        let control = worker_control.clone();
        let tx = senders.lock().unwrap()[worker.index()]
            .take()
            .expect("one sender per worker");
        let (doc_tx, doc_rx) = bounded(DOCUMENT_QUEUE);
        // Only worker 0's reader reports progress: every reader reads all.
        let counter = if worker.index() == 0 {
            progress.clone()
        } else {
            Arc::new(AtomicU64::new(0))
        };
        let share = read_share(reading, shard, worker.index(), worker.peers());
        spawn_reader_passes(
            ingest.format.clone(),
            ingest.files.clone(),
            share.index as usize,
            share.of as usize,
            reading.passes,
            counter,
            doc_tx,
        );
        let dedup = filters
            .lock()
            .unwrap()
            .get_mut(worker.index())
            .and_then(Option::take)
            .map(|f| Box::new(f) as BoxedStage<Document, Document>);
        match stages.build(info, dedup) {
            Ok(mut built) => worker.dataflow::<u64, _, _>(|scope| {
                // A gathering worker reads only while its own documents
                // are not piling up in its merge (without a gather the
                // backlog stays empty).
                let backlog = Backlog::default();
                let room = backlog.clone();
                let docs =
                    channel_source_while(scope, "ingest", doc_rx, control.clone(), move || {
                        room.has_room()
                    });
                let batching = built.batching.take();
                let instances = built.connect(docs, reading, backlog, &control);
                T::attach(instances, batching, tx, control.clone());
            }),
            Err(e) => control.fail(e),
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;

    Ok(Running {
        items: RoundRobin::new(receivers),
        bytes_read,
        total_bytes,
        control,
        guards: Some(guards),
        dedup,
    })
}

/// `[dedup]`'s key dataflow, with one filter per worker of this process.
fn start_dedup(
    plan: &Plan,
    ingest: &nezha_stages::ingest::IngestPlan,
    shard: Shard,
    reading: Reading,
    control: &Control,
) -> anyhow::Result<Option<(Dedup, Arc<DedupCounts>)>> {
    let Some(d) = &plan.dedup else {
        return Ok(None);
    };
    let peers = plan.resolved.workers;
    let total = (shard.count * peers) as u64;
    let specs: Vec<FilterSpec> = (0..peers)
        .map(|w| FilterSpec {
            sees: read_share(reading, shard, w, peers),
            counted: Share {
                index: (shard.index * peers + w) as u64,
                of: total,
            },
        })
        .collect();
    let dedup = Dedup::start(d, ingest, &specs, reading.passes, control.clone())?;
    let counts = dedup.counts();
    Ok(Some((dedup, counts)))
}

/// The plan's stage factories, shared by the workers.
#[derive(Clone)]
struct Stages {
    generation: Generation,
    clean: Option<Factory<Document, Document>>,
    /// The held-out fraction, and which side of it this flow keeps.
    holdout: Option<f64>,
    keep: Side,
    sentences: Factory<Document, Document>,
    wordpiece: Factory<Document, TokenizedDocument>,
    words: Option<Factory<TokenizedDocument, TokenizedDocument>>,
    instances: Factory<TokenizedDocument, Instance>,
    masking: Option<Factory<Instance, Instance>>,
    batching: Option<Factory<Instance, Batch>>,
}

/// One worker's stages, in pipeline order.
struct WorkerStages {
    dedup: Option<BoxedStage<Document, Document>>,
    clean: Option<BoxedStage<Document, Document>>,
    holdout: Option<Holdout>,
    sentences: BoxedStage<Document, Document>,
    wordpiece: BoxedStage<Document, TokenizedDocument>,
    words: Option<BoxedStage<TokenizedDocument, TokenizedDocument>>,
    instances: BoxedStage<TokenizedDocument, Instance>,
    masking: Option<BoxedStage<Instance, Instance>>,
    batching: Option<BoxedStage<Instance, Batch>>,
}

impl Stages {
    /// The plan's stages, with the instance generator and masking of
    /// `generation` (the plan's own, or a fixed mask for evaluation).
    fn of(plan: &Plan, generation: Generation) -> Result<Stages, Error> {
        let (instances, masking) = if generation == plan.resolved.generation {
            (plan.instances.clone(), plan.masking.clone())
        } else {
            let resolved = Resolved {
                generation,
                ..plan.resolved.clone()
            };
            (
                crate::generation::instances(&resolved)?,
                crate::generation::masking(&resolved)?,
            )
        };
        Ok(Stages {
            generation,
            clean: plan.clean.clone(),
            holdout: plan.holdout,
            keep: Side::Train,
            sentences: plan.sentences.clone(),
            wordpiece: plan.wordpiece.clone(),
            words: plan.words.clone(),
            instances,
            masking,
            batching: plan.batching.clone(),
        })
    }

    fn build(
        &self,
        info: WorkerInfo,
        dedup: Option<BoxedStage<Document, Document>>,
    ) -> Result<WorkerStages, Error> {
        Ok(WorkerStages {
            dedup,
            clean: self.clean.as_ref().map(|c| c(info)).transpose()?,
            holdout: self.holdout.map(|fraction| Holdout {
                fraction,
                keep: self.keep,
            }),
            sentences: (self.sentences)(info)?,
            wordpiece: (self.wordpiece)(info)?,
            words: self.words.as_ref().map(|w| w(info)).transpose()?,
            instances: (self.instances)(info)?,
            masking: self.masking.as_ref().map(|m| m(info)).transpose()?,
            batching: self.batching.as_ref().map(|b| b(info)).transpose()?,
        })
    }
}

impl WorkerStages {
    /// The operators from read documents to masked instances.
    fn connect<'a>(
        self,
        mut docs: FlowStream<'a, Document>,
        reading: Reading,
        backlog: Backlog,
        control: &Control,
    ) -> FlowStream<'a, Instance> {
        if let Some(f) = self.dedup {
            docs = stage_operator(docs, "dedup", f, control.clone());
        }
        if let Some(c) = self.clean {
            docs = stage_operator(docs, "clean", c, control.clone());
        }
        if let Some(h) = self.holdout {
            docs = stage_operator(docs, "holdout", h, control.clone());
        }
        let docs = stage_operator(docs, "sentences", self.sentences, control.clone());
        let mut tokens = stage_operator(docs, "wordpiece", self.wordpiece, control.clone());
        if let Some(w) = self.words {
            tokens = stage_operator(tokens, "words", w, control.clone());
        }
        if reading.gather {
            tokens = gather(tokens, "gather", control.clone(), backlog);
        }
        let mut instances = stage_operator(tokens, "instances", self.instances, control.clone());
        if let Some(m) = self.masking {
            instances = stage_operator(instances, "masking", m, control.clone());
        }
        instances
    }
}
