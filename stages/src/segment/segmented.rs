//! Segmentation in front of an instance generator.

use super::JiebaWords;
use crate::data::TokenizedDocument;
use crate::error::Result;
use crate::stage::Stage;

/// Segments each document, then hands it to the instance generator: the
/// pair is one stage, so that segmentation needs no step of its own in the
/// graph and runs on whatever documents the generator sees.
pub struct Segmented<S> {
    pub words: JiebaWords,
    pub generator: S,
}

impl<S> Stage for Segmented<S>
where
    S: Stage<In = TokenizedDocument>,
{
    type In = TokenizedDocument;
    type Out = S::Out;

    fn push(&mut self, mut doc: TokenizedDocument, emit: &mut dyn FnMut(S::Out)) -> Result<()> {
        self.words.mark(&mut doc);
        self.generator.push(doc, emit)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(S::Out)) -> Result<()> {
        self.generator.finish(emit)
    }
}
