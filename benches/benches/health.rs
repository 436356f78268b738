//! `AutoHealthWarnings` costs on the training thread: `check_batch` with a loss and 4 layers
//! (target: at most 2 µs), the same when a finding repeats and is suppressed, and
//! `check_epoch`.
//!
//! Measured (2-core x86-64, load average 2-6): `check_batch_loss_4_layers` 0.68 µs,
//! `..._tensor_stats` 0.93 µs, `check_batch_repeating_finding` 0.80 µs (2.49 µs before findings
//! were built after de-duplication), `check_epoch` 0.13 µs.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use obs_core::{Activation, TensorView, tensor_stats};
use obs_health::{ActivationStats, AutoHealthWarnings, BatchInput};

const LAYERS: [&str; 4] = ["dense_0", "dense_1", "dense_2", "dense_3"];

fn check_batch(c: &mut Criterion) {
    let relu = ActivationStats::new(Activation::Relu).zeros_pct(45.0).dead_units_pct(8.0);
    let tanh = ActivationStats::new(Activation::Tanh).zeros_pct(0.0).saturation_pct(12.0);
    let acts = [(LAYERS[0], relu), (LAYERS[1], relu), (LAYERS[2], tanh), (LAYERS[3], tanh)];
    let mut engine = AutoHealthWarnings::default();
    let mut x = 0.7f64;
    let mut step = 0u64;
    // Layer state is created in the first call; every measured call is the steady state, in
    // which no rule fires.
    c.bench_function("health/check_batch_loss_4_layers", |b| {
        b.iter(|| {
            x = x * 0.999 + 0.0005;
            step += 1;
            let wobble = (step % 7) as f64 * 0.01;
            let grads = LAYERS.map(|n| (n, 0.2 + wobble));
            let updates = LAYERS.map(|n| (n, 1e-3 + wobble * 1e-3));
            let input = BatchInput::new(0, step)
                .loss(x)
                .gradient_norms(&grads)
                .activations(&acts)
                .update_norms(&updates);
            engine.check_batch(black_box(&input))
        })
    });
    assert_eq!(engine.get_summary().total_warnings, 0, "the steady state must be quiet");

    // The same with kernel statistics handed over directly.
    let out: Vec<f32> = (0..64 * 32).map(|i| ((i * 37 % 101) as f32 - 30.0) / 50.0).collect();
    let shape = [64, 32];
    let view = TensorView::new(&out[..], &shape).expect("shape matches");
    let stats = tensor_stats(view, Activation::Relu);
    let tensors = LAYERS.map(|n| (n, stats));
    let mut engine = AutoHealthWarnings::default();
    c.bench_function("health/check_batch_loss_4_layers_tensor_stats", |b| {
        b.iter(|| {
            step += 1;
            let wobble = (step % 7) as f64 * 0.01;
            let grads = LAYERS.map(|n| (n, 0.2 + wobble));
            let updates = LAYERS.map(|n| (n, 1e-3));
            let input = BatchInput::new(0, step)
                .loss(0.5 + wobble)
                .gradient_norms(&grads)
                .activation_tensors(&tensors)
                .update_norms(&updates);
            engine.check_batch(black_box(&input))
        })
    });
    assert_eq!(engine.get_summary().total_warnings, 0, "the steady state must be quiet");

    // A persistent finding: exploding gradients every batch, almost always suppressed.
    let mut engine = AutoHealthWarnings::default();
    c.bench_function("health/check_batch_repeating_finding", |b| {
        b.iter(|| {
            step += 1;
            let grads = LAYERS.map(|n| (n, 500.0));
            let input = BatchInput::new(0, step).loss(0.5).gradient_norms(&grads);
            engine.check_batch(black_box(&input))
        })
    });
    assert!(engine.get_summary().suppressed > 0);
}

fn check_epoch(c: &mut Criterion) {
    let mut engine = AutoHealthWarnings::default();
    let mut epoch = 0u64;
    c.bench_function("health/check_epoch", |b| {
        b.iter(|| {
            epoch += 1;
            let train = if epoch.is_multiple_of(2) { 0.5 } else { 0.6 };
            engine.check_epoch(black_box(epoch), black_box(train), black_box(Some(train * 1.1)))
        })
    });
    assert_eq!(engine.get_summary().total_warnings, 0);
}

criterion_group!(benches, check_batch, check_epoch);
criterion_main!(benches);
