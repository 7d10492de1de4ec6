//! The one trait every step of the pipeline implements.

use crate::error::Result;

/// One step of the pipeline: turns each input item into zero or more output
/// items, and may hold items back (a shuffle buffer, a batch being filled)
/// until [`Stage::finish`].
///
/// A stage is plain data and plain functions: it knows nothing of threads
/// or dataflows, so it is tested by calling `push` and `finish` directly.
/// [`crate::operator`] runs it as a timely operator, one per worker.
///
/// Users write their own stages against this trait without forking nezha:
/// a builder that checks the stage's `[section]` and returns a
/// `nezha_pipeline::registry::Factory` (one stage per worker), added by name with
/// `nezha_pipeline::registry::Step::add` inside a function passed to
/// `nezha_pipeline::cli::main_with`; `stages/example-tsv` is a complete crate
/// doing so for an input format. An error returned from `push` or `finish`
/// stops the whole run and becomes its one error message, so it should
/// name the document (`Document::origin`) it is about. Stages that talk to
/// other programs can use [`crate::command`] instead of Rust.
pub trait Stage: Send + 'static {
    type In;
    type Out;

    /// Consumes one item, emitting whatever it completes.
    fn push(&mut self, item: Self::In, emit: &mut dyn FnMut(Self::Out)) -> Result<()>;

    /// Called once after the last item: emits everything still held.
    fn finish(&mut self, _emit: &mut dyn FnMut(Self::Out)) -> Result<()> {
        Ok(())
    }
}

/// A stage chosen at run time by name.
pub type BoxedStage<I, O> = Box<dyn Stage<In = I, Out = O>>;

impl<I: 'static, O: 'static> Stage for BoxedStage<I, O> {
    type In = I;
    type Out = O;
    fn push(&mut self, item: I, emit: &mut dyn FnMut(O)) -> Result<()> {
        (**self).push(item, emit)
    }
    fn finish(&mut self, emit: &mut dyn FnMut(O)) -> Result<()> {
        (**self).finish(emit)
    }
}

/// Runs a stage over a whole list, for tests and for the single-threaded
/// reference mode.
pub fn run_all<S: Stage + ?Sized>(
    stage: &mut S,
    items: impl IntoIterator<Item = S::In>,
) -> Result<Vec<S::Out>> {
    let mut out = Vec::new();
    for item in items {
        stage.push(item, &mut |o| out.push(o))?;
    }
    stage.finish(&mut |o| out.push(o))?;
    Ok(out)
}
