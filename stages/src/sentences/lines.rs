use crate::data::Document;
use crate::error::Result;
use crate::stage::Stage;

/// One line is one sentence, as in the reference `create_pretraining_data.py`
/// (the corpus is expected to hold one sentence per line). Ingest has already
/// stripped the lines and cut documents at blank lines.
#[derive(Debug, Default)]
pub struct Lines;

impl Stage for Lines {
    type In = Document;
    type Out = Document;

    fn push(&mut self, doc: Document, emit: &mut dyn FnMut(Document)) -> Result<()> {
        emit(doc);
        Ok(())
    }
}
