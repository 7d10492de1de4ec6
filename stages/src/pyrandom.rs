//! Random numbers for instance generation and masking.
//!
//! [`PyRandom`] reproduces CPython 3's `random.Random` draw for draw, because
//! the reference data generator seeds one `random.Random(random_seed)` and
//! every shuffle, split point and mask comes out of it: matching its output
//! byte for byte needs the same generator called in the same order.
//! [`FastRandom`] is a small non-Python generator for the streaming mode,
//! where only the distribution matters. Both implement [`RandomSource`], over
//! which the generator and the masking are written.

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// The draws the data generator needs. `randint` and `shuffle` are defined
/// on top of `randbelow` exactly as CPython defines them, so a source that
/// matches CPython's `_randbelow` matches them too.
pub trait RandomSource {
    /// A float uniform in [0, 1).
    fn random(&mut self) -> f64;

    /// An integer uniform in [0, n). Panics if `n` is 0.
    fn randbelow(&mut self, n: u64) -> u64;

    /// An integer uniform in [a, b], both ends included. Panics if b < a.
    fn randint(&mut self, a: i64, b: i64) -> i64 {
        assert!(b >= a, "randint({a}, {b}): empty range");
        let width = (b as i128 - a as i128 + 1) as u64;
        (a as i128 + self.randbelow(width) as i128) as i64
    }

    /// Fisher–Yates from the back, as CPython's `shuffle`: for i from the
    /// last index down to 1, swap i with `randbelow(i + 1)`.
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }
}

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// CPython 3's `random.Random`: the MT19937 Mersenne Twister, seeded and
/// consumed the way CPython does it.
#[derive(Clone)]
pub struct PyRandom {
    state: Box<[u32; N]>,
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> PyRandom {
        // CPython splits |seed| into 32-bit limbs, least significant first,
        // and always uses at least one limb (seed 0 is the key [0]).
        let lo = seed as u32;
        let hi = (seed >> 32) as u32;
        if hi == 0 {
            PyRandom::from_key(&[lo])
        } else {
            PyRandom::from_key(&[lo, hi])
        }
    }

    /// `random.Random(seed)` for any 64-bit seed: CPython seeds with |seed|.
    pub fn from_int(seed: i64) -> PyRandom {
        PyRandom::new(seed.unsigned_abs())
    }

    /// Seeds with MT19937's `init_by_array(key)`, where `key` holds the 32-bit
    /// limbs of |seed|, least significant first (so any Python int seed can
    /// be reproduced). Panics on an empty key, which CPython never produces.
    pub fn from_key(key: &[u32]) -> PyRandom {
        assert!(
            !key.is_empty(),
            "PyRandom::from_key: the key needs at least one limb"
        );
        let mut mt = Box::new([0u32; N]);
        mt[0] = 19_650_218;
        for i in 1..N {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        let mut i = 1;
        let mut j = 0;
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1];
            mt[i] = (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1];
            mt[i] =
                (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        // The most significant bit set assures a non-zero initial state.
        mt[0] = 0x8000_0000;
        PyRandom {
            state: mt,
            index: N,
        }
    }

    /// Regenerates the whole state block (the "twist").
    fn twist(&mut self) {
        // The textbook loop with `% N` on every index, split into its three
        // ranges so the hot loop has no wrap-around: the truncation loop of
        // the reference draws one `random()` per dropped token, so this runs
        // often.
        #[inline(always)]
        fn mix(upper: u32, lower: u32, far: u32) -> u32 {
            let y = (upper & UPPER_MASK) | (lower & LOWER_MASK);
            far ^ (y >> 1) ^ (if y & 1 == 1 { MATRIX_A } else { 0 })
        }
        let mt = &mut self.state;
        for k in 0..N - M {
            mt[k] = mix(mt[k], mt[k + 1], mt[k + M]);
        }
        for k in N - M..N - 1 {
            mt[k] = mix(mt[k], mt[k + 1], mt[k + M - N]);
        }
        mt[N - 1] = mix(mt[N - 1], mt[0], mt[M - 1]);
        self.index = 0;
    }

    /// The next tempered 32-bit output of MT19937.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random()`: 53 random bits from two words (27 + 26), scaled to [0, 1).
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `getrandbits(k)` for k ≤ 64. Panics on larger k; see
    /// [`PyRandom::getrandbits_limbs`].
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(
            k <= 64,
            "getrandbits({k}): at most 64 bits fit a u64, use getrandbits_limbs"
        );
        // The same words as getrandbits_limbs, without a Vec: this is the
        // generator's hot path (every shuffle step and randint).
        match k {
            0 => 0,
            1..=32 => (self.next_u32() >> (32 - k)) as u64,
            _ => {
                let low = self.next_u32() as u64;
                let high = (self.next_u32() >> (64 - k)) as u64;
                (high << 32) | low
            }
        }
    }

    /// `getrandbits(k)` for any k, as 32-bit limbs, least significant first.
    /// CPython fills the limbs in that order from successive words; the last
    /// (most significant) limb keeps only the top bits of its word.
    pub fn getrandbits_limbs(&mut self, k: usize) -> Vec<u32> {
        let mut limbs = Vec::with_capacity(k.div_ceil(32));
        let mut left = k;
        while left > 0 {
            let word = self.next_u32();
            if left < 32 {
                limbs.push(word >> (32 - left));
                left = 0;
            } else {
                limbs.push(word);
                left -= 32;
            }
        }
        limbs
    }

    /// `_randbelow(n)`: draws `getrandbits(n.bit_length())` until the result
    /// is below n. Even n = 1 draws (and so consumes) one word.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0): empty range");
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    pub fn randint(&mut self, a: i64, b: i64) -> i64 {
        RandomSource::randint(self, a, b)
    }

    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        RandomSource::shuffle(self, xs)
    }
}

impl RandomSource for PyRandom {
    fn random(&mut self) -> f64 {
        PyRandom::random(self)
    }

    fn randbelow(&mut self, n: u64) -> u64 {
        PyRandom::randbelow(self, n)
    }
}

/// A fast generator for the streaming mode (rand's `SmallRng`, xoshiro), seeded
/// from a list of words so that every (seed, worker, item) gets its own
/// independent stream without any stored state.
///
/// Reproducible for a given seed with this `rand` major version on 64-bit
/// targets (`SmallRng` is a different algorithm on 32-bit targets).
#[derive(Clone, Debug)]
pub struct FastRandom(SmallRng);

impl FastRandom {
    pub fn new(seed: u64) -> FastRandom {
        FastRandom::from_words(&[seed])
    }

    /// Seeds from several words; different word lists give unrelated streams.
    pub fn from_words(words: &[u64]) -> FastRandom {
        // Fold the words through SplitMix64's bijective mixer, including the
        // length so that [x] and [x, 0] differ, then expand the result into the
        // full seed with the SplitMix64 sequence.
        let mut state = splitmix64(words.len() as u64 ^ 0x6e65_7a68_6121_0000);
        for &w in words {
            state = splitmix64(state ^ w);
        }
        let mut seed = <SmallRng as SeedableRng>::Seed::default();
        for chunk in seed.as_mut().chunks_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let bytes = splitmix64(state).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        FastRandom(SmallRng::from_seed(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// SplitMix64's output function: a bijection on u64 with good avalanche.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RandomSource for FastRandom {
    fn random(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Lemire's multiply-and-reject method: unbiased, and almost always one
    /// multiplication with no division.
    fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0): empty range");
        let mut m = self.0.next_u64() as u128 * n as u128;
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = self.0.next_u64() as u128 * n as u128;
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_published_reference_output() {
        // Matsumoto & Nishimura's mt19937ar.c test: init_by_array({0x123,
        // 0x234, 0x345, 0x456}) starts 1067595299 955945823 477289528.
        let mut r = PyRandom::from_key(&[0x123, 0x234, 0x345, 0x456]);
        assert_eq!(
            [r.next_u32(), r.next_u32(), r.next_u32()],
            [1_067_595_299, 955_945_823, 477_289_528]
        );
    }

    #[test]
    fn seeds_split_into_limbs() {
        let mut a = PyRandom::new((7u64 << 32) | 5);
        let mut b = PyRandom::from_key(&[5, 7]);
        assert_eq!(a.next_u32(), b.next_u32());
        let mut c = PyRandom::from_int(-12345);
        let mut d = PyRandom::new(12345);
        assert_eq!(c.random(), d.random());
    }

    #[test]
    fn randbelow_one_consumes_a_word() {
        let mut a = PyRandom::new(3);
        let mut b = PyRandom::new(3);
        assert_eq!(a.randint(1, 1), 1);
        b.next_u32();
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn fast_random_is_deterministic_and_in_range() {
        let mut a = FastRandom::from_words(&[1, 2, 3]);
        let mut b = FastRandom::from_words(&[1, 2, 3]);
        let mut c = FastRandom::from_words(&[1, 2, 4]);
        let xs: Vec<u64> = (0..100).map(|_| a.randbelow(1000)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.randbelow(1000)).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.randbelow(1000)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!(xs.iter().all(|&x| x < 1000));
        for _ in 0..1000 {
            let f = a.random();
            assert!((0.0..1.0).contains(&f));
            assert!((-3..=3).contains(&a.randint(-3, 3)));
        }
    }

    #[test]
    fn fast_randbelow_is_roughly_uniform() {
        let mut r = FastRandom::new(9);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.randbelow(7) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_400..10_600).contains(&c)),
            "{counts:?}"
        );
    }
}
