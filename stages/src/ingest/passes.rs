/// Which pass over the corpus the documents of one stream belong to. The
/// reader restarts document indices with each pass
/// ([`super::spawn_reader_passes`]), so a new pass shows as an index that
/// does not grow.
#[derive(Clone, Debug, Default)]
pub struct Passes {
    last: Option<u64>,
    pass: u64,
}

impl Passes {
    /// The pass of the stream's next document, of index `index`.
    pub fn pass_of(&mut self, index: u64) -> u64 {
        if self.last.is_some_and(|last| index <= last) {
            self.pass += 1;
        }
        self.last = Some(index);
        self.pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_that_does_not_grow_starts_a_pass() {
        let mut passes = Passes::default();
        let seen: Vec<u64> = [0, 3, 7, 3, 8, 8, 2].map(|i| passes.pass_of(i)).to_vec();
        assert_eq!(seen, [0, 0, 0, 1, 1, 2, 3]);
    }
}
