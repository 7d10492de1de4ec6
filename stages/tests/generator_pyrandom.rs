//! `PyRandom` against numbers drawn by CPython's own `random.Random`
//! (tests/fixtures/golden/pyrandom.json, written by
//! scripts/fixtures/golden_pyrandom.sh).

use std::path::PathBuf;

use nezha_stages::pyrandom::{PyRandom, RandomSource};
use serde_json::Value;

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/golden/pyrandom.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn seeded(case: &Value) -> PyRandom {
    let key: Vec<u32> = case["key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let seed: i128 = case["seed"].as_str().unwrap().parse().unwrap();
    if let Ok(seed) = u64::try_from(seed) {
        // `new` and `from_key` must agree for every seed that fits.
        let mut a = PyRandom::new(seed);
        let mut b = PyRandom::from_key(&key);
        assert_eq!(
            a.next_u32(),
            b.next_u32(),
            "seed {seed}: new and from_key differ"
        );
        PyRandom::new(seed)
    } else {
        PyRandom::from_key(&key)
    }
}

/// Lower-case hex of a little-endian limb list, as Python's "%x".
fn hex(limbs: &[u32]) -> String {
    let mut s = String::new();
    for (i, limb) in limbs.iter().rev().enumerate() {
        if i == 0 {
            s.push_str(&format!("{limb:x}"));
        } else {
            s.push_str(&format!("{limb:08x}"));
        }
    }
    let trimmed = s.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

fn random53(rng: &mut PyRandom) -> u64 {
    let x = rng.random();
    let scaled = x * 9_007_199_254_740_992.0;
    assert_eq!(
        scaled.fract(),
        0.0,
        "random() {x} is not a multiple of 2^-53"
    );
    scaled as u64
}

fn getrandbits_hex(rng: &mut PyRandom, k: usize) -> String {
    if k <= 64 {
        format!("{:x}", rng.getrandbits(k as u32))
    } else {
        hex(&rng.getrandbits_limbs(k))
    }
}

/// randint through the trait when the bounds fit i64; otherwise through
/// `randbelow`, which is all randint is.
fn randint_str(rng: &mut PyRandom, a: &str, b: &str) -> String {
    let a: i128 = a.parse().unwrap();
    let b: i128 = b.parse().unwrap();
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(a), Ok(b)) => RandomSource::randint(rng, a, b).to_string(),
        _ => (a + rng.randbelow((b - a + 1) as u64) as i128).to_string(),
    }
}

fn as_u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn random_matches_cpython() {
    let f = fixture();
    for case in f["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .chain(f["big_seeds"].as_array().unwrap())
    {
        let mut rng = seeded(case);
        let got: Vec<u64> = (0..case["random"].as_array().unwrap().len())
            .map(|_| random53(&mut rng))
            .collect();
        assert_eq!(got, as_u64s(&case["random"]), "seed {}", case["seed"]);
    }
}

#[test]
fn getrandbits_matches_cpython() {
    let f = fixture();
    for case in f["seeds"].as_array().unwrap() {
        for (k, values) in case["getrandbits"].as_object().unwrap() {
            let mut rng = seeded(case);
            for (n, want) in values.as_array().unwrap().iter().enumerate() {
                let got = getrandbits_hex(&mut rng, k.parse().unwrap());
                assert_eq!(
                    got,
                    want.as_str().unwrap(),
                    "seed {} getrandbits({k}) #{n}",
                    case["seed"]
                );
            }
        }
    }
}

#[test]
fn randint_matches_cpython() {
    let f = fixture();
    for case in f["seeds"].as_array().unwrap() {
        for range in case["randint"].as_array().unwrap() {
            let (a, b) = (range["a"].as_str().unwrap(), range["b"].as_str().unwrap());
            let mut rng = seeded(case);
            for (n, want) in range["values"].as_array().unwrap().iter().enumerate() {
                let got = randint_str(&mut rng, a, b);
                assert_eq!(
                    got,
                    want.as_str().unwrap(),
                    "seed {} randint({a}, {b}) #{n}",
                    case["seed"]
                );
            }
        }
    }
}

#[test]
fn shuffle_matches_cpython() {
    let f = fixture();
    for case in f["seeds"].as_array().unwrap() {
        for (n, want) in case["shuffle"].as_object().unwrap() {
            let mut rng = seeded(case);
            let mut xs: Vec<u64> = (0..n.parse().unwrap()).collect();
            rng.shuffle(&mut xs);
            assert_eq!(
                xs,
                as_u64s(want),
                "seed {} shuffle(range({n}))",
                case["seed"]
            );
        }
    }
}

/// Every kind of call interleaved on one generator, as the data generator
/// interleaves them.
#[test]
fn interleaved_calls_match_cpython() {
    let f = fixture();
    for case in f["seeds"].as_array().unwrap() {
        let mut rng = seeded(case);
        for (n, op) in case["mixed"].as_array().unwrap().iter().enumerate() {
            let op = op.as_array().unwrap();
            let what = format!("seed {} op #{n} {:?}", case["seed"], op);
            match op[0].as_str().unwrap() {
                "random" => assert_eq!(random53(&mut rng), op[1].as_u64().unwrap(), "{what}"),
                "getrandbits" => {
                    let k = op[1].as_u64().unwrap() as usize;
                    assert_eq!(
                        getrandbits_hex(&mut rng, k),
                        op[2].as_str().unwrap(),
                        "{what}"
                    );
                }
                "randint" => {
                    let got =
                        randint_str(&mut rng, op[1].as_str().unwrap(), op[2].as_str().unwrap());
                    assert_eq!(got, op[3].as_str().unwrap(), "{what}");
                }
                "shuffle" => {
                    let mut xs: Vec<u64> = (0..op[1].as_u64().unwrap()).collect();
                    rng.shuffle(&mut xs);
                    assert_eq!(xs, as_u64s(&op[2]), "{what}");
                }
                other => panic!("{what}: unknown operation {other}"),
            }
        }
    }
}
