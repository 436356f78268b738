//! Each rule fires on a crafted input and stays quiet just under its threshold.

use obs_core::{Activation, Severity, TensorView, Value, tensor_stats};
use obs_health::{ActivationStats, AutoHealthWarnings, BatchInput, HealthWarning, Rule};

use crate::support::{engine, engine_with, grads, immediate, loss, rules, updates};

fn relu(dead_units_pct: f64) -> [(&'static str, ActivationStats); 1] {
    [("dense_0", ActivationStats::new(Activation::Relu).dead_units_pct(dead_units_pct))]
}

fn acts(e: &mut AutoHealthWarnings, b: u64, a: &[(&str, ActivationStats)]) -> Vec<HealthWarning> {
    e.check_batch(&BatchInput::new(0, b).activations(a))
}

#[test]
fn dead_relu_fires_after_five_batches_above_half_dead_units() {
    let mut e = engine();
    for b in 0..4 {
        assert!(acts(&mut e, b, &relu(62.0)).is_empty(), "batch {b}: patience");
    }
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
    assert_eq!(w.data.get_f64("value"), Some(62.0));
    assert_eq!(w.data.get_f64("threshold"), Some(50.0));
    assert_eq!(w.data.get_f64("batches"), Some(5.0));
}

#[test]
fn dead_relu_patience_is_broken_by_one_healthy_batch_and_50_percent_is_not_above_half() {
    let mut e = engine();
    for (b, pct) in [62.0, 62.0, 62.0, 62.0, 10.0, 62.0, 62.0, 62.0, 62.0].into_iter().enumerate() {
        assert!(acts(&mut e, b as u64, &relu(pct)).is_empty(), "batch {b}");
    }
    assert_eq!(rules(&acts(&mut e, 9, &relu(62.0))), [Rule::DeadRelu]);
    let mut e = engine();
    assert!((0..10).all(|b| acts(&mut e, b, &relu(50.0)).is_empty()));
}

#[test]
fn a_layer_with_every_unit_dead_fires_at_once() {
    let w = acts(&mut engine(), 0, &relu(100.0));
    assert_eq!(rules(&w), [Rule::DeadRelu]);
    assert_eq!(w[0].data.get_f64("batches"), Some(1.0));
}

#[test]
fn element_zeros_are_judged_only_when_opted_in() {
    // The seed's example: 62% zero elements, no per-unit figure.
    let zeros = [("dense_0", ActivationStats::new(Activation::Relu).zeros_pct(62.0))];
    let mut e = immediate();
    assert!(acts(&mut e, 0, &zeros).is_empty());
    let mut legacy = engine_with(|c| {
        c.dead_relu_element_zeros = true;
        c.dead_relu_patience = 1;
    });
    let w = acts(&mut legacy, 0, &zeros);
    assert_eq!(w[0].message, "Possible dying ReLU in 'dense_0' (62.0% zeros)");
    // With a per-unit figure, the per-unit figure decides even when opted in.
    let both =
        [("dense_0", ActivationStats::new(Activation::Relu).zeros_pct(90.0).dead_units_pct(10.0))];
    let mut legacy = engine_with(|c| {
        c.dead_relu_element_zeros = true;
        c.dead_relu_patience = 1;
    });
    assert!(acts(&mut legacy, 0, &both).is_empty());
}

#[test]
fn zeros_never_make_tanh_sigmoid_linear_or_unknown_layers_dead() {
    let mut e = engine_with(|c| c.dead_relu_element_zeros = true);
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Linear, Activation::None] {
        let a = [("l", ActivationStats::new(act).zeros_pct(100.0).dead_units_pct(100.0))];
        assert!(acts(&mut e, 0, &a).is_empty(), "{act}");
    }
}

#[test]
fn dead_relu_from_kernel_statistics() {
    // Three of four units are zero for both samples.
    let out = [0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0];
    let shape = [2, 4];
    let stats = tensor_stats(TensorView::new(&out[..], &shape).unwrap(), Activation::Relu);
    let w = immediate().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("d", stats)]));
    assert_eq!(w[0].message, "Possible dying ReLU in 'd' (75.0% dead units)");
    // Half the units dead is not more than half.
    let out = [0.0f32, 0.0, 1.0, 1.0];
    let shape = [1, 4];
    let stats = tensor_stats(TensorView::new(&out[..], &shape).unwrap(), Activation::Relu);
    let quiet = immediate().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("d", stats)]));
    assert!(quiet.is_empty());
}

/// Five calm batches of `layers` layers at norm 1.0 and losses 1.0 (untrained), then 0.1,
/// then one more with `norm` in the first `jumped` layers and `last_loss`.
fn spike(layers: usize, jumped: usize, norm: f64, last_loss: Option<f64>) -> Vec<HealthWarning> {
    let names = ["dense_0", "dense_1", "dense_2", "dense_3"];
    let mut e = engine();
    let calm: Vec<(&str, f64)> = names[..layers].iter().map(|&n| (n, 1.0)).collect();
    for b in 0..5 {
        let l = if b == 0 { 1.0 } else { 0.1 };
        let w = e.check_batch(&BatchInput::new(0, b).loss(l).gradient_norms(&calm));
        assert!(w.is_empty(), "{w:?}");
    }
    let last: Vec<(&str, f64)> = names[..layers]
        .iter()
        .enumerate()
        .map(|(i, &n)| (n, if i < jumped { norm } else { 1.0 }))
        .collect();
    let mut input = BatchInput::new(0, 5).gradient_norms(&last);
    if let Some(l) = last_loss {
        input = input.loss(l);
    }
    e.check_batch(&input)
}

#[test]
fn gradient_spike_needs_most_layers_and_the_loss_to_jump_together() {
    // A corrupted batch: every layer 12x and the loss 4x where training started (and 4x the
    // highest recent loss).
    let w = spike(3, 3, 12.0, Some(4.0));
    assert_eq!(rules(&w), [Rule::GradientSpike], "one warning, not a loss spike too");
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(w[0].data.get_f64("layers_jumped"), Some(3.0));
    assert_eq!(w[0].data.get_f64("rolling_average"), Some(1.0));
    assert_eq!(w[0].data.get_f64("recent_max_loss"), Some(1.0));
    assert!(
        w[0].message.starts_with("Gradient spike in 3 of 3 layers at once"),
        "{}",
        w[0].message
    );
    // One layer of three jumping is small-batch noise, however large.
    assert!(spike(3, 1, 50.0, Some(4.0)).iter().all(|w| w.rule() != Some(Rule::GradientSpike)));
    // Of two layers both must jump.
    assert!(spike(2, 1, 12.0, Some(4.0)).iter().all(|w| w.rule() != Some(Rule::GradientSpike)));
    assert_eq!(rules(&spike(2, 2, 12.0, Some(4.0))), [Rule::GradientSpike]);
    // Every layer jumping while the loss stays ordinary is a hard batch, not a bad one.
    assert!(spike(3, 3, 12.0, Some(0.5)).is_empty());
    // Without a loss, the gradients decide alone.
    assert_eq!(rules(&spike(3, 2, 12.0, None)), [Rule::GradientSpike]);
    // Exactly 5x the average is not a jump.
    assert!(spike(3, 3, 5.0, None).is_empty());
}

#[test]
fn gradient_spike_needs_history() {
    let mut e = engine();
    for b in 0..4 {
        grads(&mut e, b, &[("dense_0", 1.0)]);
    }
    // Four previous norms are fewer than the minimum history of five.
    assert!(grads(&mut e, 4, &[("dense_0", 50.0)]).is_empty());
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
    // The first clean batch after the NaN ends the poisoned state; the next is judged.
    grads(&mut e, 8, &[("dense_0", 1.0)]);
    let w = grads(&mut e, 9, &[("dense_0", 5.5)]);
    assert_eq!(rules(&w), [Rule::GradientSpike]);
    assert_eq!(w[0].data.get_f64("rolling_average"), Some(1.0));
}

#[test]
fn loss_spike_is_judged_against_the_highest_recent_loss() {
    let mut e = engine();
    for (b, l) in [1.0, 0.2, 0.04, 0.06, 0.05].into_iter().enumerate() {
        assert!(loss(&mut e, b as u64, l).is_empty());
    }
    // 20x the latest losses, but under 10x the highest recent loss (the first, 1.0) and not
    // twice the first.
    assert!(loss(&mut e, 5, 1.9).is_empty());
    assert!(loss(&mut e, 6, 0.05).is_empty());
    // Two climbing high losses in a row would be a blow-up (loss_divergence); one is a spike.
    let w = loss(&mut e, 7, 19.5);
    assert_eq!(rules(&w), [Rule::LossSpike]);
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(w[0].data.get_f64("recent_max"), Some(1.9));
    assert!(
        w[0].message.starts_with("Loss spike: 19.5000 is 10x the highest loss"),
        "{}",
        w[0].message
    );
    // Exactly 10x is not more than 900% above (the worse-than-the-start arm switched off).
    let mut e = engine_with(|c| c.loss_spike_start_factor = 1e9);
    for b in 0..5 {
        loss(&mut e, b, 0.1);
    }
    assert!(loss(&mut e, 5, 1.0).is_empty());
}

#[test]
fn vanishing_gradient_below_1e_7_for_five_batches() {
    let mut e = engine();
    assert!((0..10).all(|b| grads(&mut e, b, &[("dense_0", 1e-7)]).is_empty()));
    for b in 10..14 {
        assert!(grads(&mut e, b, &[("dense_0", 9.9e-8)]).is_empty());
    }
    let w = grads(&mut e, 14, &[("dense_0", 9.9e-8)]);
    assert_eq!(rules(&w), [Rule::VanishingGradient]);
    assert_eq!(w[0].severity, Severity::Danger);
    assert_eq!(
        w[0].message,
        "Vanishing gradient in 'dense_0' (norm 9.900e-8 < 1e-7 for 5 batches)"
    );
    // An exactly zero gradient has vanished too.
    let mut e = immediate();
    assert_eq!(rules(&grads(&mut e, 0, &[("dense_2", 0.0)])), [Rule::VanishingGradient]);
    // A negative value is not a norm and is ignored.
    assert!(grads(&mut e, 1, &[("dense_3", -1.0)]).is_empty());
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
fn overfitting_when_validation_loss_climbs_while_training_loss_falls() {
    let mut e = engine();
    let epochs =
        [(1.0, 1.0), (0.8, 0.9), (0.6, 0.85), (0.5, 0.9), (0.4, 1.05), (0.3, 1.2), (0.2, 1.4)];
    let mut fired = Vec::new();
    for (epoch, (t, v)) in epochs.into_iter().enumerate() {
        fired.push(e.check_epoch(epoch as u64, t, Some(v)));
    }
    // Medians of 3 epochs: validation lowest at 0.9 (epochs 1-3); 1.05 at epoch 5 and 1.2 at
    // epoch 6 are 17% and 33% above it, so epoch 6 is the first of three qualifying epochs.
    assert!(fired.iter().all(Vec::is_empty), "{fired:?}");
    for (epoch, (t, v)) in [(0.15, 1.5), (0.1, 1.6)].into_iter().enumerate() {
        fired.push(e.check_epoch(7 + epoch as u64, t, Some(v)));
    }
    assert!(fired[7].is_empty());
    let w = &fired[8];
    assert_eq!(rules(w), [Rule::Overfitting]);
    assert_eq!((w[0].epoch, w[0].batch), (Some(8), None));
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(w[0].data.get_f64("best_mean_val_loss"), Some(0.9));
    assert!(w[0].message.starts_with("Possible overfitting"), "{}", w[0].message);
}

#[test]
fn a_steady_gap_tiny_losses_or_unstable_training_are_not_overfitting() {
    // val/train = 1.5 every epoch, validation still improving: ordinary generalisation error.
    let mut e = engine();
    assert!((0..10).all(|i| {
        let t = 1.0 - 0.05 * f64::from(i);
        e.check_epoch(i as u64, t, Some(1.5 * t)).is_empty()
    }));
    // Ratio 15, but the model is near perfect on both sets (gap 0.014 < 0.1).
    let mut e = engine();
    assert!((0..10).all(|i| {
        let t = 0.001 * 0.9f64.powi(i);
        e.check_epoch(i as u64, t, Some(0.015 + 0.001 * f64::from(i))).is_empty()
    }));
    // Both losses jumping together is instability.
    let mut e = engine();
    let epochs = [(0.5, 0.5), (0.4, 0.45), (0.3, 0.4), (0.9, 1.2), (0.8, 1.1), (0.7, 1.0)];
    assert!(
        epochs
            .iter()
            .enumerate()
            .all(|(i, &(t, v))| e.check_epoch(i as u64, t, Some(v)).is_empty())
    );
}

#[test]
fn loss_stagnation_is_a_flat_loss_still_near_where_it_started() {
    // A noisy plateau at ln 3.
    let mut e = engine();
    let plateau = [1.0986, 1.1011, 1.0962, 1.0993, 1.0978, 1.0990];
    let w: Vec<_> =
        plateau.iter().enumerate().map(|(i, &l)| e.check_epoch(i as u64, l, None)).collect();
    assert!(w[..4].iter().all(Vec::is_empty));
    assert_eq!(rules(&w[4]), [Rule::LossStagnation]);
    assert_eq!(w[4][0].data.get_f64("first_epoch_loss"), Some(1.0986));
    assert!(w[4][0].message.starts_with("Loss stagnant"), "{}", w[4][0].message);
    // A loss of 4e-4 still falling 5% per epoch has converged, however small its steps.
    let mut e = engine();
    e.check_epoch(0, 0.7, None);
    assert!((1..20).all(|i| e.check_epoch(i, 4e-4 * 0.95f64.powi(i as i32), None).is_empty()));
    // Converged and flat is not stagnation either; neither is a loss moving 5% in the window.
    let mut e = engine();
    e.check_epoch(0, 0.7, None);
    assert!((1..20).all(|i| e.check_epoch(i, 0.01, None).is_empty()));
    let mut e = engine();
    assert!(
        [1.1, 1.08, 1.07, 1.06, 1.05, 1.04]
            .iter()
            .enumerate()
            .all(|(i, &l)| e.check_epoch(i as u64, l, None).is_empty())
    );
    // The seed's absolute test can be switched back on.
    let flat = [0.001, 0.00106, 0.00103, 0.00101, 0.001];
    let mut e = engine();
    assert!(flat.iter().enumerate().all(|(i, &l)| e.check_epoch(i as u64, l, None).is_empty()));
    let mut e = engine_with(|c| c.loss_stagnation_delta = 1e-4);
    let w: Vec<_> =
        flat.iter().enumerate().flat_map(|(i, &l)| e.check_epoch(i as u64, l, None)).collect();
    assert_eq!(rules(&w), [Rule::LossStagnation]);
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
fn a_nan_mutes_the_other_rules_until_a_clean_batch() {
    let mut e = immediate();
    // The same batch: a dead layer and an exploding gradient, but the loss is NaN.
    let dead = relu(100.0);
    let input = BatchInput::new(0, 0)
        .loss(f64::NAN)
        .gradient_norms(&[("dense_0", 500.0)])
        .activations(&dead);
    assert_eq!(rules(&e.check_batch(&input)), [Rule::NanInfLoss]);
    assert!(e.is_poisoned());
    // The next batch is finite: once it has been entirely finite, the rules judge again. (Its
    // own hooks stay muted: in a stream, a layer that turned NaN weights into zeros reports
    // before the NaN logits do.)
    let input = BatchInput::new(0, 1).loss(0.5).gradient_norms(&[("dense_0", 500.0)]);
    assert!(e.check_batch(&input).is_empty());
    assert!(!e.is_poisoned());
    let input = BatchInput::new(0, 2).loss(0.5).gradient_norms(&[("dense_0", 500.0)]);
    assert_eq!(rules(&e.check_batch(&input)), [Rule::ExplodingGradient]);
}

#[test]
fn a_nan_loss_never_poisons_later_windows() {
    let mut e = engine();
    for b in 0..20 {
        loss(&mut e, b, 1.0);
    }
    loss(&mut e, 20, f64::NAN);
    // Normal losses after the NaN stay quiet...
    for b in 21..40 {
        assert!(loss(&mut e, b, 1.0).is_empty());
    }
    // ...and divergence is still detected from a clean window (after the jump's spike).
    let fired: Vec<_> = (40..60).flat_map(|b| loss(&mut e, b, 4.0)).collect();
    assert_eq!(rules(&fired), [Rule::LossSpike, Rule::LossDivergence]);
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
fn a_blow_up_is_reported_as_divergence_before_its_nan() {
    // A learning rate far too high: 1.1 -> 43 -> 7.6e3 -> 1e15 -> NaN.
    let mut e = engine();
    let losses = [1.1, 43.0, 7.6e3, 1e15, f64::NAN];
    let w: Vec<_> = losses.iter().enumerate().map(|(b, &l)| loss(&mut e, b as u64, l)).collect();
    assert!(w[1].is_empty());
    assert_eq!(rules(&w[2]), [Rule::LossDivergence]);
    assert_eq!(w[2][0].severity, Severity::Danger);
    assert_eq!(w[2][0].data.get("mode").and_then(Value::as_str), Some("fast"));
    assert!(
        w[2][0].message.starts_with("Loss diverging: 7.6000e3 after 2 climbing batches"),
        "{}",
        w[2][0].message
    );
    assert_eq!(rules(&w[4]), [Rule::NanInfLoss]);
}

#[test]
fn loss_divergence_needs_a_sustained_threefold_rise_above_the_initial_level() {
    let mut e = engine();
    let mut fired = Vec::new();
    for b in 0..10 {
        fired.extend(loss(&mut e, b, 1.0));
    }
    for b in 10..30 {
        fired.extend(loss(&mut e, b, 3.5));
    }
    // The first 3.5 is a spike (3.5x where training started); staying there is divergence.
    assert_eq!(rules(&fired), [Rule::LossSpike, Rule::LossDivergence]);
    assert_eq!(fired[0].batch, Some(10));
    let w = &fired[1];
    assert_eq!(w.data.get("mode").and_then(Value::as_str), Some("slow"));
    assert_eq!(w.batch, Some(19), "judged once the window is full");
    assert_eq!(w.data.get_f64("older_median"), Some(1.0));
    assert_eq!(w.data.get_f64("recent_median"), Some(3.5));
    assert!(w.message.starts_with("Loss diverging: median batch loss rose"), "{}", w.message);
    // 2.99x is under the factor.
    let mut e = engine();
    let quiet: usize =
        (0..20).map(|b| loss(&mut e, b, if b < 10 { 1.0 } else { 2.99 }).len()).sum();
    assert_eq!(quiet, 0);
}

#[test]
fn one_outlier_batch_is_a_spike_not_divergence() {
    let mut e = engine();
    for b in 0..19 {
        loss(&mut e, b, 1.0);
    }
    assert_eq!(rules(&loss(&mut e, 19, 100.0)), [Rule::LossSpike]);
    for b in 20..30 {
        assert!(loss(&mut e, b, 1.0).is_empty());
    }
}

#[test]
fn a_rise_that_stays_below_the_initial_level_is_not_divergence() {
    let mut e = engine();
    // Initial level 1.0, then converged to 0.01.
    for b in 0..40 {
        loss(&mut e, b, if b < 20 { 1.0 } else { 0.01 });
    }
    // 30x a converged loss, but still far below where training started: a bad patch.
    let quiet: Vec<_> = (40..80).flat_map(|b| loss(&mut e, b, 0.3)).collect();
    assert!(quiet.iter().all(|w| w.rule() != Some(Rule::LossDivergence)), "{quiet:?}");
    // Climbing back above the initial level is divergence.
    let fired: Vec<_> = (80..100).flat_map(|b| loss(&mut e, b, 1.2)).collect();
    assert_eq!(rules(&fired), [Rule::LossDivergence]);
}

#[test]
fn saturation_only_for_sigmoid_and_tanh() {
    let sat = |act, pct| [("dense_1", ActivationStats::new(act).saturation_pct(pct))];
    let mut e = immediate();
    assert!(acts(&mut e, 0, &sat(Activation::Tanh, 40.0)).is_empty());
    let w = acts(&mut e, 1, &sat(Activation::Tanh, 40.5));
    assert_eq!(rules(&w), [Rule::ActivationSaturation]);
    assert_eq!(w[0].message, "Activations saturated in 'dense_1' (40.5% of tanh outputs)");
    assert_eq!(
        rules(&acts(&mut immediate(), 0, &sat(Activation::Sigmoid, 90.0))),
        [Rule::ActivationSaturation]
    );
    for act in [Activation::Relu, Activation::Linear, Activation::None] {
        assert!(acts(&mut immediate(), 0, &sat(act, 99.0)).is_empty());
    }
    // By default the saturation must last five batches.
    let mut e = engine();
    let w: Vec<_> = (0..5).map(|b| acts(&mut e, b, &sat(Activation::Tanh, 60.0))).collect();
    assert!(w[..4].iter().all(Vec::is_empty));
    assert_eq!(rules(&w[4]), [Rule::ActivationSaturation]);
}

#[test]
fn saturation_from_kernel_statistics() {
    let out = [0.999f32, -0.995, 0.5, 0.995, 0.1];
    let stats = tensor_stats(TensorView::flat(&out[..]), Activation::Tanh);
    let w = immediate().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("t", stats)]));
    assert_eq!(w[0].data.get_f64("saturation_pct"), Some(60.0));
}

#[test]
fn gradient_nan_inf_from_norms_or_element_counts_once_per_batch() {
    let mut e = engine();
    let input = BatchInput::new(1, 2)
        .gradient_norms(&[("a", f64::NAN), ("b", 0.5)])
        .gradient_non_finite(&[("a", 4), ("b", 2), ("c", 0)]);
    let w = e.check_batch(&input);
    // A NaN reaches every layer at once: one warning for the batch, the rest counted.
    assert_eq!(rules(&w), [Rule::GradientNanInf]);
    assert_eq!(w[0].layer_name.as_deref(), Some("a"));
    assert_eq!(w[0].severity, Severity::Critical);
    assert_eq!(e.get_summary().suppressed, 1, "'b' is a repeat; 'a' by count was its norm");
    let w = immediate().check_batch(&BatchInput::new(0, 0).gradient_non_finite(&[("b", 2)]));
    assert_eq!(w[0].message, "NaN/Inf in gradient of 'b' (2 non-finite elements)");
}

#[test]
fn nan_inf_in_outputs_weights_or_updates_is_critical() {
    let nan = [1.0f32, f32::NAN, f32::INFINITY];
    let stats = tensor_stats(TensorView::flat(&nan[..]), Activation::Relu);
    let w = engine().check_batch(&BatchInput::new(0, 0).activation_tensors(&[("d", stats)]));
    assert_eq!(rules(&w), [Rule::NanInfTensor]);
    assert_eq!(w[0].message, "NaN/Inf in the outputs of 'd' (2 non-finite elements)");
    let w = engine().check_batch(&BatchInput::new(0, 0).weight_tensors(&[("d", stats)]));
    assert_eq!(w[0].message, "NaN/Inf in the weights of 'd' (2 non-finite elements)");
    let w = engine().check_batch(&BatchInput::new(0, 0).update_norms(&[("d", f64::NAN)]));
    assert_eq!(rules(&w), [Rule::NanInfTensor]);
    assert_eq!(w[0].severity, Severity::Critical);
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

#[test]
fn streaming_a_batch_is_the_same_as_checking_it_whole() {
    let input_grads = [("dense_0", 12.0), ("dense_1", 12.0)];
    let calm = [("dense_0", 1.0), ("dense_1", 1.0)];
    let mut whole = engine();
    let mut streamed = engine();
    for b in 0..5 {
        whole.check_batch(&BatchInput::new(0, b).loss(0.1).gradient_norms(&calm));
        streamed.open_batch(0, b);
        for &(n, g) in &calm {
            streamed.observe_gradient(n, g);
        }
        streamed.observe_loss(0.1);
        streamed.close_batch();
        assert!(streamed.take_warnings().is_empty());
    }
    let a = whole.check_batch(&BatchInput::new(0, 5).loss(3.0).gradient_norms(&input_grads));
    streamed.open_batch(0, 5);
    for &(n, g) in &input_grads {
        streamed.observe_gradient(n, g);
    }
    streamed.observe_loss(3.0);
    // Spikes compare the layers, so nothing is known before the batch closes.
    assert!(streamed.take_warnings().is_empty());
    streamed.close_batch();
    assert_eq!(streamed.take_warnings(), a);
    assert_eq!(rules(&a), [Rule::GradientSpike]);
}
