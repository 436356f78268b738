//! `check_batch` allocates nothing when no rule fires, once each layer has been seen.
//!
//! A counting global allocator records allocations per thread, so tests running in parallel
//! do not disturb each other.

use obs_core::{Activation, TensorView, tensor_stats};
use obs_health::{ActivationStats, BatchInput};

use crate::support::engine;

use obs_testkit::allocations;

#[global_allocator]
static GLOBAL: obs_testkit::CountingAllocator = obs_testkit::CountingAllocator;

#[test]
fn quiet_batches_do_not_allocate() {
    let out = [0.0f32, 0.3, 1.2, 0.0, 0.7, 0.1, 0.0, 2.0];
    let shape = [2, 4];
    let stats = tensor_stats(TensorView::new(&out[..], &shape).unwrap(), Activation::Relu);
    let names = ["dense_0", "dense_1", "dense_2", "dense_3"];
    let acts = [(names[0], stats), (names[1], stats), (names[2], stats), (names[3], stats)];
    let tanh = [(names[1], ActivationStats::new(Activation::Tanh).saturation_pct(10.0))];
    let mut e = engine();
    let mut fired = 0;
    let mut check = |e: &mut obs_health::AutoHealthWarnings, b: u64| {
        let g = 0.5 + (b % 5) as f64 * 0.05;
        let grads = [(names[0], g), (names[1], g), (names[2], g), (names[3], g)];
        let non_finite = [(names[0], 0)];
        let ups = [(names[0], 1e-3), (names[1], 1e-3), (names[2], 1e-3), (names[3], 1e-3)];
        let input = BatchInput::new(0, b)
            .loss(1.0 / (1.0 + b as f64 * 0.01))
            .gradient_norms(&grads)
            .gradient_non_finite(&non_finite)
            .activation_tensors(&acts)
            .activations(&tanh)
            .update_norms(&ups);
        fired += e.check_batch(&input).len();
    };
    // The first batch creates each layer's state.
    check(&mut e, 0);
    let before = allocations();
    for b in 1..500 {
        check(&mut e, b);
    }
    let used = allocations() - before;
    assert_eq!(fired, 0);
    assert_eq!(used, 0, "{used} allocations in 499 quiet batches");

    // The counter does see allocations: a firing check allocates its warning.
    let before = allocations();
    assert_eq!(e.check_batch(&BatchInput::new(0, 600).loss(f64::NAN)).len(), 1);
    assert!(allocations() > before);
}

#[test]
fn repeats_of_a_reported_finding_do_not_allocate() {
    let names = ["dense_0", "dense_1"];
    let mut e = engine();
    let check = |e: &mut obs_health::AutoHealthWarnings, b: u64| {
        // dense_0 keeps exploding and its layer keeps stagnating: reported once, then repeats.
        let grads = [(names[0], 500.0), (names[1], 0.5)];
        let ups = [(names[0], 1e-9), (names[1], 1e-3)];
        let input = BatchInput::new(0, b).loss(0.5).gradient_norms(&grads).update_norms(&ups);
        e.check_batch(&input).len()
    };
    let mut fired = 0;
    for b in 0..10 {
        fired += check(&mut e, b);
    }
    assert_eq!(fired, 2, "exploding_gradient and weight_stagnation, once each");
    let before = allocations();
    for b in 10..40 {
        assert_eq!(check(&mut e, b), 0);
    }
    let used = allocations() - before;
    assert_eq!(used, 0, "{used} allocations in 30 batches of suppressed repeats");
    assert_eq!(e.batch_repeats(), 2);
}
