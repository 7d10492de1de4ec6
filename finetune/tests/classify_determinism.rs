//! Two fine-tuning runs with the same seed are identical. In its own test
//! binary: libtorch's generator is process-wide, and tests in one binary
//! run on parallel threads.

mod common;

use common::{model, synthetic};
use nezha_finetune::classify::fine_tune;
use nezha_finetune::FinetuneConfig;

#[test]
fn fine_tuning_is_deterministic_for_a_seed() {
    let (train, dev) = (synthetic(64, 3), synthetic(16, 4));
    let cfg = FinetuneConfig {
        batch_size: 8,
        learning_rate: 1e-3,
        epochs: 1.0,
        ..FinetuneConfig::default()
    };
    let run = |cfg: &FinetuneConfig| {
        let mut m = model();
        fine_tune(&mut m, &train, Some(&dev), cfg, |_| Ok(()))
            .unwrap()
            .epochs[0]
            .clone()
    };
    let (a, b) = (run(&cfg), run(&cfg));
    assert_eq!(a.train_loss, b.train_loss);
    assert_eq!(a.dev, b.dev);
    // Another seed, other example order and dropout masks.
    let c = run(&FinetuneConfig {
        seed: 99,
        ..cfg.clone()
    });
    assert_ne!(a.train_loss, c.train_loss);

    let e = format!(
        "{:#}",
        fine_tune(&mut model(), &train[..4], Some(&dev), &cfg, |_| Ok(())).unwrap_err()
    );
    assert!(e.contains("do not fill one batch"), "{e}");
}
