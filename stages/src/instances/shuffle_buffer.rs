//! A bounded shuffle buffer, as `tf.data`'s `shuffle(buffer_size)`.

use crate::pyrandom::RandomSource;

/// Holds at most `capacity` items. Once full, each new item takes the place
/// of a uniformly chosen held item, which is emitted. So memory stays bounded
/// while items move by up to about `capacity` places.
#[derive(Clone, Debug)]
pub struct ShuffleBuffer<T> {
    items: Vec<T>,
    capacity: usize,
}

impl<T> ShuffleBuffer<T> {
    /// A capacity of 0 passes items straight through.
    pub fn new(capacity: usize) -> ShuffleBuffer<T> {
        ShuffleBuffer {
            // `capacity` comes from the pipeline file: reserving all of it
            // up front turned `shuffle_buffer = 9223372036854775807` into a
            // capacity-overflow panic (and a billion into gigabytes before
            // the first instance). The buffer grows as items arrive instead,
            // like the reservoir.
            items: Vec::with_capacity(capacity.min(65_536)),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push<R: RandomSource>(&mut self, item: T, rng: &mut R, emit: &mut dyn FnMut(T)) {
        if self.items.len() < self.capacity {
            self.items.push(item);
        } else if self.capacity == 0 {
            emit(item);
        } else {
            let j = rng.randbelow(self.items.len() as u64) as usize;
            emit(std::mem::replace(&mut self.items[j], item));
        }
    }

    /// Emits everything held, in random order.
    pub fn drain<R: RandomSource>(&mut self, rng: &mut R, emit: &mut dyn FnMut(T)) {
        rng.shuffle(&mut self.items);
        for item in self.items.drain(..) {
            emit(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyrandom::FastRandom;

    #[test]
    fn keeps_every_item_once_and_stays_bounded() {
        let mut rng = FastRandom::new(3);
        let mut buf = ShuffleBuffer::new(16);
        let mut out = Vec::new();
        for x in 0..1000 {
            buf.push(x, &mut rng, &mut |y| out.push(y));
            assert!(buf.len() <= 16);
        }
        assert_eq!(out.len(), 1000 - 16);
        buf.drain(&mut rng, &mut |y| out.push(y));
        assert!(buf.is_empty());
        let mut sorted = out.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(out, sorted, "items should move");
    }

    #[test]
    fn zero_capacity_passes_through() {
        let mut rng = FastRandom::new(3);
        let mut buf = ShuffleBuffer::new(0);
        let mut out = Vec::new();
        for x in 0..10 {
            buf.push(x, &mut rng, &mut |y| out.push(y));
        }
        assert_eq!(out, (0..10).collect::<Vec<_>>());
    }
}
