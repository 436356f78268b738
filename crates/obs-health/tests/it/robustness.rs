//! Odd inputs have defined behaviour and never panic.

use obs_core::{Activation, TensorView, tensor_stats};
use obs_health::{ActivationStats, BatchInput, Rule, WarningConfig};

use crate::support::{engine, engine_with, grads, loss, rules, updates};

fn immediate_with(f: impl FnOnce(&mut WarningConfig)) -> obs_health::AutoHealthWarnings {
    engine_with(|c| {
        c.vanishing_gradient_patience = 1;
        f(c);
    })
}

#[test]
fn empty_input_checks_nothing_but_counts_the_batch() {
    let mut e = engine();
    for b in 0..100 {
        assert!(e.check_batch(&BatchInput::new(0, b)).is_empty());
    }
    assert!(e.check_batch(&BatchInput::default()).is_empty());
    let s = e.get_summary();
    assert_eq!((s.batches_checked, s.total_warnings, s.suppressed), (101, 0, 0));
    assert_eq!(e.tracked_layers(), 0);
}

#[test]
fn nan_everywhere_reports_only_the_non_finite_findings() {
    let mut e = engine();
    let acts = [
        (
            "relu",
            ActivationStats::new(Activation::Relu).dead_units_pct(f64::NAN).zeros_pct(f64::NAN),
        ),
        ("tanh", ActivationStats::new(Activation::Tanh).saturation_pct(f64::NAN)),
    ];
    let input = BatchInput::new(0, 0)
        .loss(f64::NAN)
        .gradient_norms(&[("relu", f64::NAN), ("tanh", f64::NEG_INFINITY)])
        .activations(&acts)
        .update_norms(&[("relu", f64::NAN), ("tanh", f64::INFINITY)]);
    for _ in 0..10 {
        e.check_batch(&input);
    }
    let mut e = engine_with(|c| c.dedup_batches = 0);
    let w = e.check_batch(&input);
    assert_eq!(
        rules(&w),
        [
            Rule::NanInfLoss,
            Rule::GradientNanInf,
            Rule::GradientNanInf,
            Rule::NanInfTensor,
            Rule::NanInfTensor
        ]
    );
    // Non-finite updates are neither stagnation nor death, however many there are.
    for _ in 0..10 {
        assert!(
            rules(&e.check_batch(&input))
                .iter()
                .all(|r| matches!(r, Rule::NanInfLoss | Rule::GradientNanInf | Rule::NanInfTensor))
        );
    }
}

#[test]
fn huge_and_tiny_numbers_have_defined_results() {
    let mut e = immediate_with(|c| c.dedup_batches = 0);
    for b in 0..30 {
        let w = e.check_batch(
            &BatchInput::new(0, b)
                .loss(f64::MAX)
                .gradient_norms(&[("big", f64::MAX), ("tiny", f64::MIN_POSITIVE), ("sub", 5e-324)])
                .update_norms(&[("big", f64::MAX), ("tiny", 5e-324)]),
        );
        let r = rules(&w);
        assert!(r.contains(&Rule::ExplodingGradient));
        assert_eq!(r.iter().filter(|r| **r == Rule::VanishingGradient).count(), 2);
        assert!(!r.contains(&Rule::LossDivergence), "a flat loss at f64::MAX is not diverging");
        assert!(!r.contains(&Rule::GradientSpike));
    }
    // Losses swinging between the extremes: no overflow panic, no NaN in the reported numbers.
    let mut e = engine();
    for b in 0..60 {
        let l = if b % 2 == 0 { f64::MAX } else { f64::MIN_POSITIVE };
        for w in loss(&mut e, b, l) {
            assert!(w.data.iter().all(|(_, v)| v.as_f64().is_none_or(|x| !x.is_nan())), "{w:?}");
        }
    }
    // Epoch losses at the extremes.
    let mut e = engine();
    e.check_epoch(0, f64::MAX, Some(f64::MAX));
    e.check_epoch(1, f64::MIN_POSITIVE, Some(f64::MAX));
    e.check_epoch(2, -1.0, Some(5.0));
    e.check_epoch(3, 0.0, Some(5.0));
}

#[test]
fn non_positive_training_loss_has_no_overfitting_ratio() {
    let mut e = engine();
    for epoch in 0..6 {
        let w = e.check_epoch(epoch, if epoch % 2 == 0 { 0.0 } else { -1.0 }, Some(10.0));
        assert!(!rules(&w).contains(&Rule::Overfitting));
    }
}

#[test]
fn unknown_odd_and_repeated_layer_names() {
    let long = "x".repeat(10_000);
    let names = ["", "层 ✓", "with 'quotes' and \"dq\"", "a\nb", long.as_str()];
    let mut e = engine();
    for name in names {
        let w = grads(&mut e, 0, &[(name, 1000.0)]);
        assert_eq!(w[0].layer_name.as_deref(), Some(name));
        // The event line stays valid JSON whatever the name.
        let line = w[0].to_event().to_ndjson();
        assert_eq!(obs_core::Event::from_ndjson(&line).unwrap().layer_name.as_deref(), Some(name));
    }
    // The same name twice in one slice: both values are judged, the second report is a repeat.
    let mut e = engine();
    let w = grads(&mut e, 0, &[("d", 500.0), ("d", 600.0)]);
    assert_eq!(rules(&w), [Rule::ExplodingGradient]);
    assert_eq!(e.get_summary().suppressed, 1);
}

#[test]
fn layers_in_a_different_order_in_each_slice_and_batch() {
    let mut e = engine();
    for b in 0..6 {
        let g = if b % 2 == 0 { [("a", 1.0), ("b", 2.0)] } else { [("b", 2.0), ("a", 1.0)] };
        assert!(grads(&mut e, b, &g).is_empty());
    }
    // Each layer kept its own baseline: 10.5 is over 5x b's 2.0, 5.5 over 5x a's 1.0, so both
    // jumped; the larger jump (a, 5.5x) is the one reported.
    let w = grads(&mut e, 6, &[("b", 10.5), ("a", 5.5)]);
    assert_eq!(rules(&w), [Rule::GradientSpike]);
    assert_eq!(w[0].layer_name.as_deref(), Some("a"));
    assert_eq!(w[0].data.get_f64("rolling_average"), Some(1.0));
    assert_eq!(w[0].data.get_f64("layers_jumped"), Some(2.0));
    assert_eq!(e.tracked_layers(), 2);
    // b alone at 10.5 (a calm) is one jump of two layers: not a spike.
    assert!(
        grads(&mut e, 7, &[("a", 1.0), ("b", 10.5)])
            .iter()
            .all(|w| w.rule() != Some(Rule::GradientSpike))
    );
}

#[test]
fn layer_history_is_bounded_and_untracked_layers_still_checked() {
    let mut e = immediate_with(|c| c.max_layers = 2);
    for i in 0..1000u64 {
        let name = format!("layer_{i}");
        let w = grads(&mut e, i, &[(name.as_str(), 1e-9)]);
        if i < 2 {
            assert_eq!(rules(&w), [Rule::VanishingGradient]);
        }
    }
    assert_eq!(e.tracked_layers(), 2);
    // Untracked layers share one de-duplication slot per rule.
    let s = e.get_summary();
    assert_eq!(s.total_warnings + s.suppressed, 1000);
    assert!(s.total_warnings <= 2 + 1000 / 50 + 1, "{}", s.total_warnings);
    // Rules that need history do not judge untracked layers.
    let mut e = engine_with(|c| c.max_layers = 0);
    let w: Vec<_> = (0..10).flat_map(|b| updates(&mut e, b, &[("x", 0.0)])).collect();
    assert!(w.is_empty());
}

#[test]
fn epochs_out_of_order_are_judged_in_call_order() {
    let mut e = engine();
    let labels = [7, 3, 3, 100, 0];
    let mut fired = Vec::new();
    for epoch in labels {
        fired.extend(e.check_epoch(epoch, 0.25, Some(0.5)));
    }
    // Five calls fill the stagnation window, whatever the labels.
    assert_eq!(rules(&fired), [Rule::LossStagnation]);
    assert_eq!(fired[0].epoch, Some(0));
    assert_eq!(e.get_summary().epochs_checked, 5);
}

#[test]
fn batch_labels_do_not_matter_to_rules() {
    let mut e = engine();
    let labels = [u64::MAX, 0, 5, 5, 2];
    let fired: Vec<_> = labels.iter().flat_map(|&b| updates(&mut e, b, &[("x", 0.0)])).collect();
    assert_eq!(rules(&fired), [Rule::WeightStagnation]);
    assert_eq!(fired[0].batch, Some(2));
}

#[test]
fn empty_activation_tensor_and_flat_relu_tensor() {
    let empty = tensor_stats(TensorView::flat(&[] as &[f32]), Activation::Relu);
    // A flat ReLU tensor has no units, so only element zeros (opt-in) could judge it.
    let flat = tensor_stats(TensorView::flat(&[0.0f32; 8][..]), Activation::Relu);
    let acts = [("e", empty), ("f", flat)];
    assert!(engine().check_batch(&BatchInput::new(0, 0).activation_tensors(&acts)).is_empty());
    let mut legacy = engine_with(|c| c.dead_relu_element_zeros = true);
    let w = legacy.check_batch(&BatchInput::new(0, 0).activation_tensors(&acts));
    assert_eq!(rules(&w), [Rule::DeadRelu]);
    assert_eq!(w[0].layer_name.as_deref(), Some("f"));
}

#[test]
fn invalid_configurations_are_refused() {
    let mut config = WarningConfig::default();
    config.vanishing_gradient_threshold = f64::NAN;
    let err = obs_health::AutoHealthWarnings::new(config).unwrap_err();
    assert!(err.to_string().contains("vanishing_gradient_threshold"), "{err}");
}
