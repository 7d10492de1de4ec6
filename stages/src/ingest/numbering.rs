use crate::data::Document;

/// Numbers the documents a format reads and hands them on. The indices count
/// documents over all files in reading order, so that workers can share the
/// corpus out by index whichever of them reads it; a document without lines
/// is not a document and takes no number.
pub struct Numbering<'a> {
    next: u64,
    emit: &'a mut dyn FnMut(Document) -> bool,
}

impl<'a> Numbering<'a> {
    pub fn new(emit: &'a mut dyn FnMut(Document) -> bool) -> Numbering<'a> {
        Numbering { next: 0, emit }
    }

    /// Hands on the document of `lines` (read from `origin`, `file:line`)
    /// unless it has none. False: the run was stopped, and the format should
    /// return `Ok(())` at once.
    pub fn emit(&mut self, origin: String, lines: Vec<String>) -> bool {
        if lines.is_empty() {
            return true;
        }
        let index = self.next;
        self.next += 1;
        (self.emit)(Document {
            index,
            origin,
            lines,
        })
    }
}
