//! Each rule fires on a crafted input and stays quiet just under its threshold.

use obs_core::{Activation, Severity, TensorView, Value, tensor_stats};
use obs_health::{ActivationStats, BatchInput, Rule};

use crate::support::{engine, engine_with, grads, loss, rules, updates};

fn relu(dead_units_pct: f64) -> [(&'static str, ActivationStats); 1] {
    [("dense_0", ActivationStats::new(Activation::Relu).dead_units_pct(dead_units_pct))]
}

#[test]
fn dead_relu_fires_above_half_dead_units_only() {
    let mut e = engine();
    assert!(e.check_batch(&BatchInput::new(0, 0).activations(&relu(50.0))).is_empty());
    let w = e.check_batch(&BatchInput::new(5, 10).activations(&relu(62.0)));
    assert_eq!(rules(&w), [Rule::DeadRelu]);
    let w = &w[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.message, "Possible dying ReLU in 'dense_0' (62.0% dead units)");
    assert_eq!(
        w.diagnosis,
        "Neurons producing zero outputs will receive zero gradients and never recover."
    );
    assert_eq!(
        w.recommendations,
        [
            "Use LeakyReLU(negative_slope=0.01) instead of ReLU",
            "Lower the learning rate",
            "Use He initialisation"
        ]
    );
    assert_eq!((w.layer_name.as_deref(), w.epoch, w.batch), (Some("dense_0"), Some(5), Some(10)));
    assert_eq!(w.data.get_f64("dead_units_pct"), Some(62.0));
    assert_eq!(w.data.get_f64("threshold"), Some(50.0));
}

#[test]
fn element_zeros_are_judged_only_when_opted_in() {
    // The seed's example: 62% zero elements, no per-unit figure.
    let acts = [("dense_0", ActivationStats::new(Activation::Relu).zeros_pct(62.0))];
    assert!(engine().check_batch(&BatchInput::new(5, 10).activations(&acts)).is_empty());
    let mut legacy = engine_with(|c| c.dead_relu_element_zeros = true);
    let w = legacy.check_batch(&BatchInput::new(5, 10).activations(&acts));
    assert_eq!(w[0].message, "Possible dying ReLU in 'dense_0' (62.0% zeros)");
    // With a per-unit figure, the per-unit figure decides even when opted in.
    let both =
        [("dense_0", ActivationStats::new(Activation::Relu).zeros_pct(90.0).dead_units_pct(10.0))];
    let mut legacy = engine_with(|c| c.dead_relu_element_zeros = true);
    assert!(legacy.check_batch(&BatchInput::new(0, 0).activations(&both)).is_empty());
}

#[test]
fn zeros_never_make_tanh_sigmoid_linear_or_unknown_layers_dead() {
    let mut e = engine_with(|c| c.dead_relu_element_zeros = true);
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Linear, Activation::None] {
        let acts = [("l", ActivationStats::new(act).zeros_pct(100.0).dead_units_pct(100.0))];
        assert!(e.check_batch(&BatchInput::new(0, 0).activations(&acts)).is_empty(), "{act}");
    }
}

#[test]
fn dead_relu_from_kernel_statistics() {
    // Three of four units are zero for both samples.
    let out = [0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0];
    let shape = [2, 4];
    let stats = tensor_stats(TensorView::new(&out[..], &shape).unwrap(), Activation::Relu);
    let w = engine().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("dense_0", stats)]));
    assert_eq!(w[0].message, "Possible dying ReLU in 'dense_0' (75.0% dead units)");
    // Half the units dead is not more than half.
    let out = [0.0f32, 0.0, 1.0, 1.0];
    let shape = [1, 4];
    let stats = tensor_stats(TensorView::new(&out[..], &shape).unwrap(), Activation::Relu);
    assert!(
        engine().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("d", stats)])).is_empty()
    );
}

#[test]
fn gradient_spike_compares_with_the_rolling_average_of_previous_norms() {
    let mut e = engine();
    for b in 0..5 {
        assert!(grads(&mut e, b, &[("dense_0", 1.0)]).is_empty());
    }
    // Exactly 5x the average is not a spike.
    assert!(grads(&mut e, 5, &[("dense_0", 5.0)]).is_empty());
    let mut e = engine();
    for b in 0..5 {
        grads(&mut e, b, &[("dense_0", 1.0)]);
    }
    let w = grads(&mut e, 5, &[("dense_0", 5.01)]);
    assert_eq!(rules(&w), [Rule::GradientSpike]);
    assert_eq!(w[0].data.get_f64("rolling_average"), Some(1.0));
    assert_eq!(w[0].data.get_f64("history").map(|h| h as u64), Some(5));
    assert!(
        w[0].message.starts_with("Possible exploding gradient in 'dense_0'"),
        "{}",
        w[0].message
    );
}

#[test]
fn gradient_spike_needs_history_and_the_absolute_floor() {
    let mut e = engine();
    for b in 0..4 {
        grads(&mut e, b, &[("dense_0", 1.0)]);
    }
    // Four previous norms are fewer than the minimum history of five.
    assert!(grads(&mut e, 4, &[("dense_0", 50.0)]).is_empty());

    // Small norms jumping 9x stay under the 1.0 floor; without the floor they are a spike.
    let feed = |e: &mut obs_health::AutoHealthWarnings| {
        for b in 0..5 {
            grads(e, b, &[("dense_0", 0.1)]);
        }
        grads(e, 5, &[("dense_0", 0.9)])
    };
    assert!(feed(&mut engine()).is_empty());
    assert_eq!(
        rules(&feed(&mut engine_with(|c| c.gradient_spike_min_norm = 0.0))),
        [Rule::GradientSpike]
    );
}

#[test]
fn non_finite_norms_never_enter_the_spike_baseline() {
    let mut e = engine();
    for b in 0..5 {
        grads(&mut e, b, &[("dense_0", 1.0)]);
    }
    let w = grads(&mut e, 5, &[("dense_0", f64::INFINITY)]);
    assert_eq!(rules(&w), [Rule::GradientNanInf]);
    grads(&mut e, 6, &[("dense_0", f64::NAN)]);
    grads(&mut e, 7, &[("dense_0", -3.0)]);
    let w = grads(&mut e, 8, &[("dense_0", 5.5)]);
    assert_eq!(rules(&w), [Rule::GradientSpike]);
    assert_eq!(w[0].data.get_f64("rolling_average"), Some(1.0));
}

#[test]
fn vanishing_gradient_below_1e_7() {
    let mut e = engine();
    assert!(grads(&mut e, 0, &[("dense_0", 1e-7)]).is_empty());
    let w = grads(&mut e, 1, &[("dense_1", 9.9e-8)]);
    assert_eq!(rules(&w), [Rule::VanishingGradient]);
    assert_eq!(w[0].severity, Severity::Danger);
    assert_eq!(w[0].message, "Vanishing gradient in 'dense_1' (norm 9.900e-8 < 1e-7)");
    // An exactly zero gradient has vanished too.
    assert_eq!(rules(&grads(&mut e, 2, &[("dense_2", 0.0)])), [Rule::VanishingGradient]);
    // A negative value is not a norm and is ignored.
    assert!(grads(&mut e, 3, &[("dense_3", -1.0)]).is_empty());
}

#[test]
fn exploding_gradient_above_100() {
    let mut e = engine();
    assert!(grads(&mut e, 0, &[("dense_0", 100.0)]).is_empty());
    let w = grads(&mut e, 1, &[("dense_1", 100.001)]);
    assert_eq!(rules(&w), [Rule::ExplodingGradient]);
    assert_eq!(w[0].severity, Severity::Danger);
    assert_eq!(w[0].message, "Exploding gradient in 'dense_1' (norm 1.000e2 > 100)");
    // An infinite norm is a NaN/Inf finding, not an exploding one.
    assert_eq!(rules(&grads(&mut e, 2, &[("dense_2", f64::INFINITY)])), [Rule::GradientNanInf]);
}

#[test]
fn overfitting_after_patience_consecutive_epochs() {
    let mut e = engine();
    assert!(e.check_epoch(0, 1.0, Some(1.31)).is_empty());
    assert!(e.check_epoch(1, 1.0, Some(1.4)).is_empty());
    let w = e.check_epoch(2, 1.0, Some(1.5));
    assert_eq!(rules(&w), [Rule::Overfitting]);
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!((w[0].epoch, w[0].batch), (Some(2), None));
    assert_eq!(w[0].data.get_f64("ratio"), Some(1.5));
    assert_eq!(w[0].data.get_f64("epochs").map(|n| n as u64), Some(3));
    assert!(w[0].message.starts_with("Possible overfitting"), "{}", w[0].message);
}

#[test]
fn overfitting_needs_the_ratio_strictly_and_unbroken() {
    let mut e = engine();
    for epoch in 0..5 {
        let w = e.check_epoch(epoch, 1.0, Some(1.3));
        assert!(!rules(&w).contains(&Rule::Overfitting), "ratio exactly 1.3");
    }
    // Training losses that keep moving, so only the overfitting rule is in play.
    let mut e = engine();
    let t = |epoch: u64| 1.0 - 0.01 * epoch as f64;
    e.check_epoch(0, t(0), Some(2.0));
    e.check_epoch(1, t(1), Some(2.0));
    e.check_epoch(2, t(2), Some(1.1));
    e.check_epoch(3, t(3), Some(2.0));
    assert!(e.check_epoch(4, t(4), Some(2.0)).is_empty(), "the run was broken at epoch 2");
    // Epochs without validation neither extend nor break the run.
    assert!(e.check_epoch(5, t(5), None).is_empty());
    assert_eq!(rules(&e.check_epoch(6, t(6), Some(2.0))), [Rule::Overfitting]);
}

#[test]
fn overfitting_ignores_big_ratios_of_tiny_losses() {
    let mut e = engine();
    for epoch in 0..6 {
        // Ratio 15, but the model is near perfect on both sets (gap 0.014 < 0.1).
        let w = e.check_epoch(epoch, 0.001, Some(0.015));
        assert!(!rules(&w).contains(&Rule::Overfitting));
    }
    let mut e = engine_with(|c| c.overfit_min_gap = 0.0);
    let fired: usize = (0..4)
        .map(|epoch| {
            let train = 0.001 * (1 + epoch) as f64;
            e.check_epoch(epoch, train, Some(15.0 * train)).len()
        })
        .sum();
    assert_eq!(fired, 1);
}

#[test]
fn loss_stagnation_judges_the_whole_window() {
    let mut e = engine();
    for (epoch, l) in [0.5, 0.50003, 0.50009, 0.50001].into_iter().enumerate() {
        assert!(e.check_epoch(epoch as u64, l, None).is_empty());
    }
    let w = e.check_epoch(4, 0.5, None);
    assert_eq!(rules(&w), [Rule::LossStagnation]);
    assert!((w[0].data.get_f64("range").unwrap() - 9e-5).abs() < 1e-12);

    // Equal endpoints with a moving middle are not stagnation.
    let mut e = engine();
    for (epoch, l) in [0.5, 0.6, 0.4, 0.55, 0.5].into_iter().enumerate() {
        assert!(e.check_epoch(epoch as u64, l, None).is_empty());
    }
    // A range of 1.1e-4 is not under 1e-4.
    let mut e = engine();
    for (epoch, l) in [0.5, 0.50011, 0.5, 0.5, 0.5].into_iter().enumerate() {
        assert!(e.check_epoch(epoch as u64, l, None).is_empty());
    }
}

#[test]
fn weight_stagnation_needs_every_update_in_the_window_small() {
    let mut e = engine();
    for b in 0..4 {
        assert!(updates(&mut e, b, &[("dense_0", 9.9e-7)]).is_empty());
    }
    let w = updates(&mut e, 4, &[("dense_0", 9.9e-7)]);
    assert_eq!(rules(&w), [Rule::WeightStagnation]);
    assert!(w[0].message.starts_with("Optimizer may have stagnated"), "{}", w[0].message);

    // One update at the delta in the middle breaks the run.
    let mut e = engine();
    for (b, u) in [1e-8, 1e-8, 1e-6, 1e-8, 1e-8, 1e-8, 1e-8].into_iter().enumerate() {
        assert!(updates(&mut e, b as u64, &[("dense_0", u)]).is_empty(), "batch {b}");
    }
    assert_eq!(rules(&updates(&mut e, 7, &[("dense_0", 1e-8)])), [Rule::WeightStagnation]);
}

#[test]
fn nan_and_inf_losses_are_critical() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut e = engine();
        let w = loss(&mut e, 3, bad);
        assert_eq!(rules(&w), [Rule::NanInfLoss]);
        assert_eq!(w[0].severity, Severity::Critical);
        assert_eq!(w[0].message, "NaN/Inf detected in loss!");
        assert!(w[0].layer_name.is_none());
        let w = e.check_epoch(0, bad, Some(0.5));
        assert_eq!(rules(&w), [Rule::NanInfLoss]);
        let w = engine().check_epoch(1, 0.5, Some(bad));
        assert_eq!(w[0].message, "NaN/Inf detected in loss! (epoch validation loss)");
        assert_eq!(w[0].data.get("source").and_then(Value::as_str), Some("epoch"));
    }
}

#[test]
fn a_nan_loss_never_poisons_later_checks() {
    let mut e = engine();
    for b in 0..20 {
        loss(&mut e, b, 1.0);
    }
    loss(&mut e, 20, f64::NAN);
    // Normal losses after the NaN stay quiet...
    for b in 21..40 {
        assert!(loss(&mut e, b, 1.0).is_empty());
    }
    // ...and divergence is still detected from a clean window.
    let fired: Vec<_> = (40..60).flat_map(|b| loss(&mut e, b, 4.0)).collect();
    assert_eq!(rules(&fired), [Rule::LossDivergence]);
    // The epoch rules keep working after a NaN epoch too.
    let mut e = engine();
    e.check_epoch(0, f64::NAN, Some(f64::NAN));
    for epoch in 1..5 {
        assert!(
            e.check_epoch(epoch, 1.0, Some(2.0)).iter().all(|w| w.rule() != Some(Rule::NanInfLoss))
        );
    }
}

#[test]
fn loss_divergence_needs_a_sustained_threefold_rise() {
    let mut e = engine();
    let mut fired = Vec::new();
    for b in 0..10 {
        fired.extend(loss(&mut e, b, 1.0));
    }
    for b in 10..20 {
        fired.extend(loss(&mut e, b, 3.5));
    }
    assert_eq!(rules(&fired), [Rule::LossDivergence]);
    let w = &fired[0];
    assert_eq!(w.severity, Severity::Danger);
    assert_eq!(w.batch, Some(19), "judged once the window is full");
    assert_eq!(w.data.get_f64("older_median"), Some(1.0));
    assert_eq!(w.data.get_f64("recent_median"), Some(3.5));
    assert!(w.message.starts_with("Loss diverging"), "{}", w.message);

    // 2.99x is under the factor.
    let mut e = engine();
    let quiet: usize =
        (0..20).map(|b| loss(&mut e, b, if b < 10 { 1.0 } else { 2.99 }).len()).sum();
    assert_eq!(quiet, 0);
}

#[test]
fn one_outlier_batch_is_not_divergence() {
    let mut e = engine();
    for b in 0..19 {
        loss(&mut e, b, 1.0);
    }
    assert!(loss(&mut e, 19, 100.0).is_empty());
    for b in 20..30 {
        assert!(loss(&mut e, b, 1.0).is_empty());
    }
}

#[test]
fn converged_loss_wobbles_are_not_divergence() {
    let mut e = engine();
    // Initial level 1.0, then converged to 0.01.
    for b in 0..40 {
        loss(&mut e, b, if b < 20 { 1.0 } else { 0.01 });
    }
    // 5x of a converged loss stays below a quarter of the initial level.
    let quiet: usize = (40..60).map(|b| loss(&mut e, b, 0.05).len()).sum();
    assert_eq!(quiet, 0);
    // Climbing back to 0.3 (above 0.25 x 1.0, and 6x the older median) is divergence.
    let fired: Vec<_> = (60..80).flat_map(|b| loss(&mut e, b, 0.3)).collect();
    assert_eq!(rules(&fired), [Rule::LossDivergence]);
}

#[test]
fn saturation_only_for_sigmoid_and_tanh() {
    let mut e = engine();
    let sat = |act, pct| [("dense_1", ActivationStats::new(act).saturation_pct(pct))];
    assert!(
        e.check_batch(&BatchInput::new(0, 0).activations(&sat(Activation::Tanh, 40.0))).is_empty()
    );
    let w = e.check_batch(&BatchInput::new(0, 1).activations(&sat(Activation::Tanh, 40.5)));
    assert_eq!(rules(&w), [Rule::ActivationSaturation]);
    assert_eq!(w[0].message, "Activations saturated in 'dense_1' (40.5% of tanh outputs)");
    let mut e = engine();
    let w = e.check_batch(&BatchInput::new(0, 0).activations(&sat(Activation::Sigmoid, 90.0)));
    assert_eq!(rules(&w), [Rule::ActivationSaturation]);
    for act in [Activation::Relu, Activation::Linear, Activation::None] {
        let mut e = engine();
        assert!(e.check_batch(&BatchInput::new(0, 0).activations(&sat(act, 99.0))).is_empty());
    }
}

#[test]
fn saturation_from_kernel_statistics() {
    let out = [0.999f32, -0.995, 0.5, 0.995, 0.1];
    let stats = tensor_stats(TensorView::flat(&out[..]), Activation::Tanh);
    let w = engine().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("t", stats)]));
    assert_eq!(w[0].data.get_f64("saturation_pct"), Some(60.0));
}

#[test]
fn gradient_nan_inf_from_norms_or_element_counts_once_per_layer() {
    let mut e = engine();
    let input = BatchInput::new(1, 2)
        .gradient_norms(&[("a", f64::NAN), ("b", 0.5)])
        .gradient_non_finite(&[("a", 4), ("b", 2), ("c", 0)]);
    let w = e.check_batch(&input);
    assert_eq!(rules(&w), [Rule::GradientNanInf, Rule::GradientNanInf]);
    assert_eq!(w[0].layer_name.as_deref(), Some("a"));
    assert_eq!(w[1].layer_name.as_deref(), Some("b"));
    assert_eq!(w[1].message, "NaN/Inf in gradient of 'b' (2 non-finite elements)");
    assert!(w.iter().all(|w| w.severity == Severity::Critical));
    assert_eq!(e.get_summary().suppressed, 0, "the second report of 'a' is not a repeat");
}

#[test]
fn dead_weights_when_a_layer_is_frozen_while_others_move() {
    let mut e = engine();
    for b in 0..4 {
        assert!(updates(&mut e, b, &[("frozen", 0.0), ("live", 1e-3)]).is_empty());
    }
    let w = updates(&mut e, 4, &[("frozen", 0.0), ("live", 1e-3)]);
    assert_eq!(rules(&w), [Rule::DeadWeights], "dead_weights, not weight_stagnation");
    assert_eq!(w[0].layer_name.as_deref(), Some("frozen"));
    assert_eq!(w[0].data.get("reason").and_then(Value::as_str), Some("frozen"));

    // When nothing moves it is stagnation of every layer instead.
    let mut e = engine();
    let w: Vec<_> = (0..5).flat_map(|b| updates(&mut e, b, &[("x", 0.0), ("y", 0.0)])).collect();
    assert_eq!(rules(&w), [Rule::WeightStagnation, Rule::WeightStagnation]);

    // A tiny but non-zero update is stagnation, not death.
    let mut e = engine();
    let w: Vec<_> = (0..5).flat_map(|b| updates(&mut e, b, &[("x", 1e-9), ("y", 1e-3)])).collect();
    assert_eq!(rules(&w), [Rule::WeightStagnation]);
}

#[test]
fn dead_weights_when_every_weight_is_zero() {
    let zeros = [0.0f32; 6];
    let live = [0.0f32, 0.0, 0.0, 0.0, 0.0, 1e-30];
    let z = tensor_stats(TensorView::flat(&zeros[..]), Activation::None);
    let l = tensor_stats(TensorView::flat(&live[..]), Activation::None);
    let mut e = engine();
    let w = e.check_batch(&BatchInput::new(0, 0).weight_tensors(&[("z", z), ("l", l)]));
    assert_eq!(rules(&w), [Rule::DeadWeights]);
    assert_eq!(w[0].message, "All 6 weights of 'z' are zero");
    // An empty tensor has no weights to judge.
    let empty = tensor_stats(TensorView::flat(&[] as &[f32]), Activation::None);
    assert!(
        engine().check_batch(&BatchInput::new(0, 0).weight_tensors(&[("e", empty)])).is_empty()
    );
}
