//! The optimizers, clipping and schedule against the independent float32
//! implementation in scripts/fixtures/lamb.py (tests/fixtures/lamb/).

use std::path::PathBuf;

use nezha_train::optim::{
    clip_global_norm, AdamWeightDecay, Lamb, Optimizer, OptimizerConfig, OptimizerKind, Schedule,
};
use nezha_train::tensorfile::{self, TensorFile};
use tch::{Kind, Tensor};

fn fixture(name: &str) -> TensorFile {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/lamb")
        .join(name);
    tensorfile::load(&p).unwrap()
}

/// Elementwise `|a − b| ≤ 1e-6·max(|b|, rms(b))`: relative, with the
/// denominator floored at the tensor's scale so that an element that an
/// update brought near zero is not held to a tighter absolute bound than its
/// neighbours.
fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shape");
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    let rms = b.square().mean(Kind::Double).sqrt().double_value(&[]);
    let excess = ((&a - &b).abs() - b.abs().clamp_min(rms.max(1e-30)) * 1e-6)
        .max()
        .double_value(&[]);
    assert!(
        excess <= 0.0,
        "{what}: off by {excess:e} beyond 1e-6 relative\n{a}\n{b}"
    );
}

fn sched_from(meta: &serde_json::Value) -> Schedule {
    Schedule {
        init_lr: meta["init_lr"].as_f64().unwrap(),
        warmup_steps: meta["warmup"].as_u64().unwrap(),
        total_steps: meta["total"].as_u64().unwrap(),
        power: meta["power"].as_f64().unwrap(),
        adjust_for_warmup: meta["adjust"].as_bool().unwrap(),
    }
}

/// Sets `p.grad()` to `g` through a backward pass of `Σ p·g`.
fn set_grads(params: &[(String, Tensor)], grads: &[Tensor]) {
    for (_, p) in params {
        let mut p = p.shallow_clone();
        p.zero_grad();
    }
    let loss = params
        .iter()
        .zip(grads)
        .map(|((_, p), g)| (p * g).sum(Kind::Float))
        .reduce(|a, b| a + b)
        .unwrap();
    loss.backward();
}

/// Which update path a run takes.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// `Optimizer::step_flat`: flat buffers, all parameters at once (the
    /// GPU path).
    Flat,
    /// One parameter at a time (the CPU path, and when a gradient is missing).
    PerTensor,
}

fn run(kind: OptimizerKind, path: Path) {
    let f = fixture("steps.safetensors");
    let names: Vec<String> = f.metadata["params"].split(',').map(String::from).collect();
    let steps: u64 = f.metadata["steps"].parse().unwrap();
    let sched = sched_from(&serde_json::from_str(&f.metadata["schedule"]).unwrap());
    let params: Vec<(String, Tensor)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                f.get(&format!("init.{n}"))
                    .unwrap()
                    .copy()
                    .set_requires_grad(true),
            )
        })
        .collect();
    // One optimizer per parameter set: each makes the parameters live in
    // its own flat buffer.
    let per_tensor = |k: OptimizerKind| path == Path::PerTensor && kind == k;
    let mut opt =
        (path == Path::Flat).then(|| Optimizer::new(kind, OptimizerConfig::default(), &params));
    let mut lamb =
        per_tensor(OptimizerKind::Lamb).then(|| Lamb::new(OptimizerConfig::default(), &params));
    let mut adam = per_tensor(OptimizerKind::AdamWeightDecay)
        .then(|| AdamWeightDecay::new(OptimizerConfig::default(), &params));
    let tag = match kind {
        OptimizerKind::Lamb => "lamb",
        OptimizerKind::AdamWeightDecay => "adam",
    };
    for s in 0..steps {
        let grads: Vec<Tensor> = names
            .iter()
            .map(|n| f.get(&format!("grad.{s}.{n}")).unwrap().shallow_clone())
            .collect();
        set_grads(&params, &grads);
        let clip = clip_global_norm(&params, 1.0);
        let want_norm = f.get(&format!("clip_norm.{s}")).unwrap().double_value(&[0]);
        let norm = clip.norm.expect("finite gradients");
        assert!(
            (norm - want_norm).abs() <= 1e-6 * want_norm,
            "step {s}: norm {norm} vs {want_norm}"
        );
        let lr = sched.lr(s);
        let want_lr = f.get(&format!("lr.{s}")).unwrap().double_value(&[0]);
        assert!(
            (lr - want_lr).abs() <= 1e-12 * want_lr.abs(),
            "step {s}: lr {lr} vs {want_lr}"
        );
        let moments = match (path, kind) {
            (Path::Flat, _) => {
                let opt = opt.as_mut().unwrap();
                let g = opt.flat_grads(&params).unwrap();
                opt.step_flat(&params, &g, lr, s).unwrap();
                opt.moments().named()
            }
            (Path::PerTensor, OptimizerKind::Lamb) => {
                let lamb = lamb.as_mut().unwrap();
                lamb.step_per_tensor(&params, lr, s).unwrap();
                lamb.moments().named()
            }
            (Path::PerTensor, OptimizerKind::AdamWeightDecay) => {
                let adam = adam.as_mut().unwrap();
                adam.step_per_tensor(&params, lr).unwrap();
                adam.moments().named()
            }
        };
        for (i, n) in names.iter().enumerate() {
            assert_close(
                &params[i].1,
                f.get(&format!("{tag}.{s}.{n}")).unwrap(),
                &format!("{tag} step {s} {n}"),
            );
            assert_close(
                &moments[2 * i].1,
                f.get(&format!("{tag}_m.{s}.{n}")).unwrap(),
                &format!("{tag} step {s} {n} m"),
            );
            assert_close(
                &moments[2 * i + 1].1,
                f.get(&format!("{tag}_v.{s}.{n}")).unwrap(),
                &format!("{tag} step {s} {n} v"),
            );
        }
        if s == 0 {
            // lr = 0 at step 0: weights stay, moments move.
            assert_eq!(lr, 0.0);
            for (i, n) in names.iter().enumerate() {
                assert!(
                    params[i].1.equal(f.get(&format!("init.{n}")).unwrap()),
                    "{n} moved at step 0"
                );
            }
            assert!(moments
                .iter()
                .any(|(_, m)| m.abs().sum(Kind::Float).double_value(&[]) > 0.0));
        }
    }
    // The fixture's own steps must move weights, or the comparison is empty.
    let moved = names
        .iter()
        .enumerate()
        .filter(|(i, n)| !params[*i].1.equal(f.get(&format!("init.{n}")).unwrap()))
        .count();
    assert!(moved >= names.len() - 2, "only {moved} parameters moved");
}

#[test]
fn lamb_matches_reference_formulas() {
    run(OptimizerKind::Lamb, Path::Flat);
}

#[test]
fn adam_weight_decay_matches_reference_formulas() {
    run(OptimizerKind::AdamWeightDecay, Path::Flat);
}

#[test]
fn per_tensor_paths_match_reference_formulas() {
    run(OptimizerKind::Lamb, Path::PerTensor);
    run(OptimizerKind::AdamWeightDecay, Path::PerTensor);
}

#[test]
fn a_parameter_without_gradient_is_left_alone() {
    let a = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
    let b = Tensor::from_slice(&[0.5f32, 0.25]).set_requires_grad(true);
    let params = vec![
        ("a.weight".to_string(), a.shallow_clone()),
        ("b.weight".to_string(), b.shallow_clone()),
    ];
    let mut lamb = Lamb::new(OptimizerConfig::default(), &params);
    (&a * 3.0).sum(Kind::Float).backward();
    assert!(!b.grad().defined());
    lamb.step(&params, 0.1, 5).unwrap();
    assert!(b.equal(&Tensor::from_slice(&[0.5f32, 0.25])));
    assert!(!a.equal(&Tensor::from_slice(&[1.0f32, -2.0])));
    let slots = lamb.moments().named();
    assert_eq!(
        slots[2].1.abs().sum(Kind::Float).double_value(&[]),
        0.0,
        "b's m moved"
    );
    assert!(slots[0].1.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn schedule_matches_reference_at_every_step() {
    let f = fixture("schedule.safetensors");
    let scheds: Vec<serde_json::Value> = serde_json::from_str(&f.metadata["schedules"]).unwrap();
    for (k, meta) in scheds.iter().enumerate() {
        let s = sched_from(meta);
        s.validate().unwrap();
        let want = Vec::<f64>::try_from(f.get(&format!("sched{k}.lr")).unwrap()).unwrap();
        for (step, w) in want.iter().enumerate() {
            let got = s.lr(step as u64);
            assert!(
                (got - w).abs() <= 1e-12 * w.abs().max(1e-30),
                "schedule {k} step {step}: {got} vs {w}"
            );
        }
        // With the adjustment the decay meets the warmup line: lr(W) is the
        // peak that warmup was heading to.
        if s.adjust_for_warmup && s.warmup_steps > 0 {
            let at_w = s.lr(s.warmup_steps);
            assert!(
                (at_w - s.init_lr).abs() <= 1e-12 * s.init_lr,
                "schedule {k}: lr(W) = {at_w}"
            );
        }
        assert_eq!(s.lr(s.total_steps), 0.0);
        assert_eq!(s.lr(s.total_steps + 5), 0.0);
    }
}

#[test]
fn schedule_rejects_impossible_settings() {
    let mut s = Schedule::new(1e-4, 100, 100);
    assert!(format!("{:#}", s.validate().unwrap_err()).contains("warmup_steps 100"));
    s.warmup_steps = 10;
    s.total_steps = 0;
    assert!(s.validate().is_err());
}

#[test]
fn non_finite_gradients_are_reported_and_left_alone() {
    let p = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
    let q = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    let params = vec![
        ("a.weight".to_string(), p.shallow_clone()),
        ("b.weight".to_string(), q.shallow_clone()),
    ];
    set_grads(
        &params,
        &[
            Tensor::from_slice(&[1.0f32, f32::NAN, 0.0]),
            Tensor::from_slice(&[5.0f32]),
        ],
    );
    let clip = clip_global_norm(&params, 1.0);
    assert!(!clip.is_finite());
    // Gradients untouched, so nothing hides the problem.
    assert_eq!(q.grad().double_value(&[0]), 5.0);
    set_grads(
        &params,
        &[
            Tensor::from_slice(&[f32::INFINITY, 0.0, 0.0]),
            Tensor::from_slice(&[5.0f32]),
        ],
    );
    assert!(clip_global_norm(&params, 1.0).norm.is_none());
    // Small finite gradients are not scaled up.
    set_grads(
        &params,
        &[
            Tensor::from_slice(&[0.3f32, 0.0, 0.0]),
            Tensor::from_slice(&[0.4f32]),
        ],
    );
    let clip = clip_global_norm(&params, 1.0);
    assert!((clip.norm.unwrap() - 0.5).abs() < 1e-7);
    assert!((q.grad().double_value(&[0]) - 0.4).abs() < 1e-7);
}

#[test]
fn weight_decay_exclusions_follow_the_reference_names() {
    let c = OptimizerConfig::default();
    use nezha_train::optim::decays;
    assert!(decays("nezha.embeddings.word_embeddings.weight", &c));
    assert!(decays("cls.seq_relationship.weight", &c));
    assert!(!decays("cls.predictions.bias", &c));
    assert!(!decays("nezha.encoder.layer.0.output.LayerNorm.weight", &c));
    assert!(!decays(
        "nezha.encoder.layer.0.attention.self.query.bias",
        &c
    ));
}

#[test]
fn moments_round_trip_and_refuse_other_models() {
    let mk = |shape: &[i64]| {
        Tensor::ones(shape, (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)
    };
    let params = vec![
        ("x.weight".to_string(), mk(&[2, 2])),
        ("y.bias".to_string(), mk(&[3])),
    ];
    let mut a = Lamb::new(OptimizerConfig::default(), &params);
    set_grads(
        &params,
        &[
            Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4]).reshape([2, 2]),
            Tensor::from_slice(&[1.0f32, 2.0, 3.0]),
        ],
    );
    a.step(&params, 0.01, 0).unwrap();
    let saved: Vec<(String, Tensor)> = a
        .moments()
        .named()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    assert_eq!(saved[0].0, "x.weight/lamb_m");
    let mut b = Lamb::new(OptimizerConfig::default(), &params);
    b.moments_mut().load(&saved).unwrap();
    for ((_, x), (_, y)) in b.moments().named().iter().zip(&saved) {
        assert!(x.equal(y));
    }
    let other = vec![
        ("x.weight".to_string(), mk(&[2, 3])),
        ("y.bias".to_string(), mk(&[3])),
    ];
    let mut c = AdamWeightDecay::new(OptimizerConfig::default(), &other);
    assert!(
        c.moments_mut().load(&saved).is_err(),
        "adam slots loaded from lamb slots"
    );
    let mut d = Lamb::new(OptimizerConfig::default(), &other);
    let err = format!("{:#}", d.moments_mut().load(&saved).unwrap_err());
    assert!(
        err.contains("x.weight/lamb_m") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn clip_flat_scales_large_and_reports_non_finite() {
    use nezha_train::optim::clip_flat;
    let mut g = Tensor::from_slice(&[3.0f32, 4.0]);
    let out = clip_flat(&mut g, 1.0);
    assert!((out.norm.unwrap() - 5.0).abs() < 1e-6);
    assert!(g.allclose(&Tensor::from_slice(&[0.6f32, 0.8]), 1e-6, 1e-7, false));
    let mut small = Tensor::from_slice(&[0.3f32, 0.4]);
    clip_flat(&mut small, 1.0);
    assert!(small.equal(&Tensor::from_slice(&[0.3f32, 0.4])));
    let mut bad = Tensor::from_slice(&[1.0f32, f32::NAN]);
    assert!(!clip_flat(&mut bad, 1.0).is_finite());
    assert_eq!(bad.double_value(&[0]), 1.0);
}

#[test]
fn parameters_and_gradients_live_in_the_flat_buffers() {
    let a = Tensor::ones([3, 2], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let b = Tensor::ones([5], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let params = vec![
        ("a".to_string(), a.shallow_clone()),
        ("b".to_string(), b.shallow_clone()),
    ];
    let mut lamb = Lamb::new(OptimizerConfig::default(), &params);
    // Slices start on 256-byte boundaries, for libtorch's vectorised kernels.
    assert_eq!((b.data_ptr() as usize - a.data_ptr() as usize) % 256, 0);
    (a.sum(tch::Kind::Float) * 2.0 + b.sum(tch::Kind::Float)).backward();
    let flat = lamb.moments().flat_grads(&params).unwrap();
    assert_eq!(
        flat.sum(tch::Kind::Float).double_value(&[]),
        6.0 * 2.0 + 5.0
    );
    // Later backward passes accumulate straight into the same buffer.
    for (_, p) in &params {
        p.shallow_clone().zero_grad();
    }
    (a.sum(tch::Kind::Float) * 3.0).backward();
    assert_eq!(flat.sum(tch::Kind::Float).double_value(&[]), 6.0 * 3.0);
    assert_eq!(b.grad().sum(tch::Kind::Float).double_value(&[]), 0.0);
    // An update of the flat buffer is an update of the model's tensors.
    let before = a.sum(tch::Kind::Float).double_value(&[]);
    lamb.step_flat(&params, &flat, 0.1, 0).unwrap();
    assert!(a.sum(tch::Kind::Float).double_value(&[]) < before);
    // A parameter re-pointed elsewhere is refused, not silently missed.
    let mut moved = a.shallow_clone();
    tch::no_grad(|| moved.set_data(&Tensor::zeros([3, 2], (tch::Kind::Float, tch::Device::Cpu))));
    let err = lamb.step_flat(&params, &flat, 0.1, 1).unwrap_err();
    assert!(
        err.to_string().contains("parameter a no longer lives"),
        "{err}"
    );
}

/// Parameters spanning several of the fused loops' chunks, with names that
/// do and do not get weight decay, and their gradients for `steps` steps.
fn sized_case(steps: usize) -> (Vec<(String, Tensor)>, Vec<Vec<Tensor>>) {
    tch::manual_seed(7);
    let shapes: [(&str, &[i64]); 4] = [
        ("layer.dense.weight", &[384, 300]),
        ("layer.dense.bias", &[300]),
        ("layer.LayerNorm.weight", &[300]),
        ("embeddings.weight", &[1000, 70]),
    ];
    let params = shapes
        .iter()
        .map(|(n, s)| {
            (
                n.to_string(),
                Tensor::randn(*s, (Kind::Float, tch::Device::Cpu)) * 0.05,
            )
        })
        .collect();
    let grads = (0..steps)
        .map(|_| {
            shapes
                .iter()
                .map(|(_, s)| Tensor::randn(*s, (Kind::Float, tch::Device::Cpu)) * 1e-3)
                .collect()
        })
        .collect();
    (params, grads)
}

fn trainable(params: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|(n, t)| (n.clone(), t.copy().set_requires_grad(true)))
        .collect()
}

#[test]
fn fused_cpu_lamb_equals_the_operator_versions() {
    let (init, grads) = sized_case(5);
    let (fused, ops, per_tensor) = (trainable(&init), trainable(&init), trainable(&init));
    let mut a = Lamb::new(OptimizerConfig::default(), &fused);
    let mut b = Lamb::new(OptimizerConfig::default(), &ops);
    let mut c = Lamb::new(OptimizerConfig::default(), &per_tensor);
    for (s, g) in grads.iter().enumerate() {
        let (s, lr) = (s as u64, 0.01);
        set_grads(&fused, g);
        let flat = a.moments().flat_grads(&fused).unwrap();
        a.step_flat(&fused, &flat, lr, s).unwrap();
        set_grads(&ops, g);
        let flat = b.moments().flat_grads(&ops).unwrap();
        let (bc1, bc2) = b.bias_corrections(s);
        b.step_flat_ops(&flat, lr, bc1, bc2).unwrap();
        set_grads(&per_tensor, g);
        c.step_per_tensor(&per_tensor, lr, s).unwrap();
    }
    for i in 0..init.len() {
        let name = &init[i].0;
        assert!(!fused[i].1.equal(&init[i].1), "{name} did not move");
        assert_close(&fused[i].1, &ops[i].1, &format!("{name} vs operators"));
        assert_close(
            &fused[i].1,
            &per_tensor[i].1,
            &format!("{name} vs per tensor"),
        );
    }
    let (ma, mb) = (a.moments().named(), b.moments().named());
    for ((n, x), (_, y)) in ma.iter().zip(&mb) {
        assert_close(x, y, n);
    }
}

#[test]
fn fused_cpu_adam_equals_the_per_tensor_version() {
    let (init, grads) = sized_case(5);
    let (fused, per_tensor) = (trainable(&init), trainable(&init));
    let mut a = AdamWeightDecay::new(OptimizerConfig::default(), &fused);
    let mut b = AdamWeightDecay::new(OptimizerConfig::default(), &per_tensor);
    for (s, g) in grads.iter().enumerate() {
        set_grads(&fused, g);
        let flat = a.moments().flat_grads(&fused).unwrap();
        a.step_flat(&fused, &flat, 1e-3, s as u64).unwrap();
        set_grads(&per_tensor, g);
        b.step_per_tensor(&per_tensor, 1e-3).unwrap();
    }
    for i in 0..init.len() {
        let name = &init[i].0;
        assert!(!fused[i].1.equal(&init[i].1), "{name} did not move");
        assert_close(&fused[i].1, &per_tensor[i].1, name);
    }
}

#[test]
fn clip_flat_sums_a_large_buffer_exactly() {
    use nezha_train::optim::clip_flat;
    // 2²⁴ equal values: an f32 running sum stalls long before the end.
    let n = 1i64 << 24;
    let mut g = Tensor::full([n], 1e-3, (Kind::Float, tch::Device::Cpu));
    let want = (n as f64).sqrt() * f64::from(1e-3f32);
    let norm = clip_flat(&mut g, 1.0).norm.unwrap();
    assert!((norm - want).abs() <= 1e-9 * want, "norm {norm} vs {want}");
    let scaled = g.double_value(&[0]);
    assert!((scaled - f64::from(1e-3f32) / want).abs() <= 1e-6 * scaled);
}

#[test]
fn fused_cpu_step_refuses_buffers_of_another_layout() {
    use nezha_train::optim::Moments;
    let (init, grads) = sized_case(1);
    let params = trainable(&init);
    let mut lamb = Lamb::new(OptimizerConfig::default(), &params);
    set_grads(&params, &grads[0]);
    let flat = lamb.moments().flat_grads(&params).unwrap();
    // Moments for a smaller model swapped in under the optimizer.
    let small = trainable(&init[1..2]);
    *lamb.moments_mut() = Moments::zeros(&small, "lamb_m", "lamb_v");
    let err = lamb.step_flat(&small, &flat, 0.1, 0).unwrap_err();
    assert!(err.to_string().contains("elements, the layout"), "{err}");
    // A gradient buffer that is one of the moments is refused too (one
    // parameter of 64·1800 elements: its m view is the whole m buffer).
    let one = trainable(&init[..1]);
    let mut lamb = Lamb::new(OptimizerConfig::default(), &one);
    set_grads(&one, &grads[0][..1]);
    let _ = lamb.moments().flat_grads(&one).unwrap();
    let m = lamb.moments().named()[0].1.view([-1]);
    let err = lamb.step_flat(&one, &m, 0.1, 0).unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
}

#[test]
fn clipping_counts_a_parameter_without_elements_as_zero() {
    let a = Tensor::from_slice(&[3.0f32, 4.0]).set_requires_grad(true);
    let empty = Tensor::zeros([0], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    ((&a * &a).sum(Kind::Float) / 2.0 + empty.sum(Kind::Float)).backward();
    let params = vec![
        ("a".to_string(), a.shallow_clone()),
        ("empty".to_string(), empty.shallow_clone()),
    ];
    let clip = clip_global_norm(&params, 10.0);
    assert!((clip.norm.unwrap() - 5.0).abs() < 1e-12);
}
