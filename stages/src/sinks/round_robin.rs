use crossbeam_channel::Receiver;

/// Takes one item from each worker's channel in turn, skipping workers whose
/// stream has ended. Deterministic: the merged order depends only on what
/// each worker produces, not on timing.
pub struct RoundRobin<T> {
    receivers: Vec<Receiver<T>>,
    next: usize,
}

impl<T> RoundRobin<T> {
    pub fn new(receivers: Vec<Receiver<T>>) -> RoundRobin<T> {
        RoundRobin { receivers, next: 0 }
    }
}

impl<T> Iterator for RoundRobin<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        while !self.receivers.is_empty() {
            let i = self.next % self.receivers.len();
            match self.receivers[i].recv() {
                Ok(item) => {
                    self.next = i + 1;
                    return Some(item);
                }
                Err(_) => {
                    // That worker is done; the next one moves into slot i.
                    self.receivers.remove(i);
                    self.next = i;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_and_skips_finished_workers() {
        let (t0, r0) = crossbeam_channel::unbounded();
        let (t1, r1) = crossbeam_channel::unbounded();
        let (t2, r2) = crossbeam_channel::unbounded();
        for x in [0, 3, 6, 8] {
            t0.send(x).unwrap();
        }
        for x in [1, 4] {
            t1.send(x).unwrap();
        }
        for x in [2, 5, 7] {
            t2.send(x).unwrap();
        }
        drop((t0, t1, t2));
        let got: Vec<_> = RoundRobin::new(vec![r0, r1, r2]).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
