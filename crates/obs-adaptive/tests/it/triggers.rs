//! Each trigger fires on crafted input just over its threshold and stays quiet just under it.

use obs_adaptive::{AdaptiveLogger, AnomalyConfig, DeadNeuronMode, Trigger};
use obs_core::{Activation, EventType, Severity, TensorView, data};

use crate::support::{adaptive, calm_batch, healthy_relu, with_dead_units};

fn triggers(logger: &AdaptiveLogger) -> Vec<Trigger> {
    logger.latest_anomalies().iter().map(|a| a.trigger).collect()
}

fn forward(logger: &mut AdaptiveLogger, data: &[f32], shape: &[usize], act: Activation) {
    let view = TensorView::new(data, shape).expect("shape matches");
    logger.on_layer_forward(0, "dense_0", view, act).expect("non-empty");
}

#[test]
fn dead_units_fire_above_half_and_healthy_relu_does_not() {
    let (mut logger, _) = adaptive(None);
    logger.on_batch_start(0);
    // Half the elements are zero, yet every unit fires for some sample: a healthy ReLU layer.
    forward(&mut logger, &healthy_relu(16, 8), &[16, 8], Activation::Relu);
    assert_eq!(triggers(&logger), []);
    // Exactly 50% of the units dead is not "more than 50%".
    forward(&mut logger, &with_dead_units(16, 8, 4), &[16, 8], Activation::Relu);
    assert_eq!(triggers(&logger), []);
    forward(&mut logger, &with_dead_units(16, 8, 5), &[16, 8], Activation::Relu);
    assert_eq!(triggers(&logger), [Trigger::DeadNeurons]);
    let a = &logger.latest_anomalies()[0];
    assert_eq!(a.severity, Severity::Warning);
    assert_eq!(a.value, 62.5);
    assert_eq!(a.threshold, 50.0);
    assert_eq!(a.layer_name.as_deref(), Some("dense_0"));
    assert_eq!(a.source, EventType::LayerForward);
}

#[test]
fn element_zeros_mode_is_the_reference_measure() {
    let mut config = AnomalyConfig::default();
    config.dead_neuron_mode = DeadNeuronMode::ElementZeros;
    let (mut logger, _) = adaptive(Some(config));
    logger.on_batch_start(0);
    // 8 of 16 zero: exactly 50%, not above.
    forward(&mut logger, &healthy_relu(4, 4), &[4, 4], Activation::Relu);
    assert_eq!(triggers(&logger), []);
    let mut more = healthy_relu(4, 4);
    more[1] = 0.0;
    forward(&mut logger, &more, &[4, 4], Activation::Relu);
    assert_eq!(triggers(&logger), [Trigger::DeadNeurons]);
    assert_eq!(logger.latest_anomalies()[0].value, 56.25);
    // The legacy mode also judges flat tensors.
    let zeros = [0.0f32; 6];
    logger.on_layer_forward(1, "flat", TensorView::flat(&zeros[..]), Activation::Relu).unwrap();
    assert_eq!(triggers(&logger), [Trigger::DeadNeurons]);
}

#[test]
fn flat_outputs_have_no_units_to_judge() {
    let (mut logger, _) = adaptive(None);
    let zeros = [0.0f32; 6];
    logger.on_layer_forward(0, "flat", TensorView::flat(&zeros[..]), Activation::Relu).unwrap();
    assert_eq!(triggers(&logger), []);
}

#[test]
fn saturation_depends_on_the_activation_type() {
    let (mut logger, _) = adaptive(None);
    logger.on_batch_start(0);
    // 5 of 10 outputs beyond |0.99|: 50% saturated for tanh.
    let tanh: Vec<f32> = [0.999, -0.995, 0.3, 0.995, -0.1, 1.0, 0.2, -0.999, 0.0, 0.5].to_vec();
    forward(&mut logger, &tanh, &[2, 5], Activation::Tanh);
    assert_eq!(triggers(&logger), [Trigger::ActivationSaturation]);
    assert_eq!(logger.latest_anomalies()[0].value, 50.0);
    // The same numbers from a ReLU or an unknown activation are not saturated.
    forward(&mut logger, &tanh, &[2, 5], Activation::Relu);
    assert_eq!(triggers(&logger), []);
    forward(&mut logger, &tanh, &[2, 5], Activation::None);
    assert_eq!(triggers(&logger), []);
    // Exactly 40% is not above the threshold; sigmoid saturates at both ends.
    let sigmoid: Vec<f32> = [0.005, 0.995, 0.5, 0.999, 0.992, 0.6, 0.3, 0.2, 0.7, 0.8].to_vec();
    forward(&mut logger, &sigmoid, &[2, 5], Activation::Sigmoid);
    assert_eq!(triggers(&logger), []);
    let mut over = sigmoid.clone();
    over[2] = 0.001;
    forward(&mut logger, &over, &[2, 5], Activation::Sigmoid);
    assert_eq!(triggers(&logger), [Trigger::ActivationSaturation]);
}

#[test]
fn vanishing_and_exploding_gradients_are_danger() {
    let (mut logger, _) = adaptive(None);
    logger.on_batch_start(0);
    logger.on_gradient_computed("a", 1e-7);
    assert_eq!(triggers(&logger), [], "the bound itself is not below the bound");
    logger.on_gradient_computed("b", 9.9e-8);
    assert_eq!(triggers(&logger), [Trigger::VanishingGradient]);
    assert_eq!(logger.latest_anomalies()[0].severity, Severity::Danger);
    logger.on_gradient_computed("c", 100.0);
    assert_eq!(triggers(&logger), []);
    logger.on_gradient_computed("d", 100.5);
    assert_eq!(triggers(&logger), [Trigger::ExplodingGradient]);
    assert_eq!(logger.latest_anomalies()[0].severity, Severity::Danger);
    // The tensor path judges the kernel's L2 norm: 3-4-0 has norm 5 * 30 = 150.
    let grad = [90.0f32, 120.0, 0.0, 0.0];
    logger.on_layer_backward(3, "e", TensorView::new(&grad[..], &[2, 2]).unwrap()).unwrap();
    assert_eq!(triggers(&logger), [Trigger::ExplodingGradient]);
    assert_eq!(logger.latest_anomalies()[0].value, 150.0);
    let zero = [0.0f32; 4];
    logger.on_layer_backward(4, "f", TensorView::flat(&zero[..])).unwrap();
    assert_eq!(triggers(&logger), [Trigger::VanishingGradient]);
}

#[test]
fn gradient_spike_needs_history_and_five_times_the_baseline() {
    let (mut logger, _) = adaptive(None);
    for step in 0..4 {
        logger.on_batch_start(step);
        logger.on_gradient_computed("dense_0", 0.01);
        logger.on_batch_end(step, data! {});
    }
    // Four norms are not enough history: even 40x passes unjudged.
    logger.on_batch_start(4);
    logger.on_gradient_computed("dense_0", 0.4);
    assert_eq!(triggers(&logger), []);
    logger.on_batch_end(4, data! {});
    // Window now 0.01 x4, 0.4: mean 0.088. 4.9x is quiet, 5.1x fires.
    logger.on_batch_start(5);
    logger.on_gradient_computed("dense_0", 0.088 * 4.9);
    assert_eq!(triggers(&logger), []);
    logger.on_batch_end(5, data! {});
    let mean = (0.04 + 0.4 + 0.088 * 4.9) / 6.0;
    logger.on_batch_start(6);
    logger.on_gradient_computed("dense_0", mean * 5.1);
    assert_eq!(triggers(&logger), [Trigger::GradientSpike]);
    let a = &logger.latest_anomalies()[0];
    assert_eq!(a.severity, Severity::Warning);
    assert!((a.threshold - 5.0 * mean).abs() < 1e-12, "{} vs {}", a.threshold, 5.0 * mean);
    // Another layer has its own history.
    logger.on_gradient_computed("dense_1", 0.4);
    assert_eq!(triggers(&logger), []);
}

#[test]
fn gradient_spike_baseline_never_drops_below_the_run_mean() {
    let (mut logger, _) = adaptive(None);
    let mut step = 0;
    let mut feed = |logger: &mut AdaptiveLogger, norm: f64| {
        logger.on_batch_start(step);
        logger.on_gradient_computed("dense_0", norm);
        let fired = triggers(logger);
        logger.on_batch_end(step, data! {});
        step += 1;
        fired
    };
    for _ in 0..20 {
        assert_eq!(feed(&mut logger, 1.0), []);
    }
    for _ in 0..20 {
        assert_eq!(feed(&mut logger, 0.01), []);
    }
    // 20x the rolling mean (0.01) but only 0.4x the run mean (0.505): routine near convergence.
    assert_eq!(feed(&mut logger, 0.2), []);
    // 5.1x the run mean is a spike.
    let run_mean = (20.0 + 0.2 + 0.2) / 41.0;
    assert_eq!(feed(&mut logger, 5.1 * run_mean), [Trigger::GradientSpike]);
}

#[test]
fn a_layer_gradient_is_judged_once_per_batch() {
    let (mut logger, _) = adaptive(None);
    let small = [0.01f32; 4];
    let big = [1.0f32; 4];
    for step in 0..6 {
        logger.on_batch_start(step);
        let g = if step == 5 { &big } else { &small };
        logger.on_layer_backward(0, "dense_0", TensorView::flat(&g[..])).unwrap();
        // The scalar path reports the same gradient; it must not be counted twice.
        logger.on_gradient_computed("dense_0", if step == 5 { 2.0 } else { 0.02 });
        logger.on_batch_end(step, data! {});
    }
    assert_eq!(logger.get_anomaly_summary().count(Trigger::GradientSpike), 1);
}

#[test]
fn loss_spike_is_relative_to_the_mean_and_needs_an_absolute_rise() {
    let (mut logger, _) = adaptive(None);
    let mut step = 0;
    let mut loss = |logger: &mut AdaptiveLogger, l: f64| {
        logger.on_batch_end(step, data! { "loss" => l, "accuracy" => 0.5 });
        step += 1;
        triggers(logger)
    };
    for _ in 0..5 {
        assert_eq!(loss(&mut logger, 1.0), []);
    }
    assert_eq!(loss(&mut logger, 1.45), [], "45% is under 50%");
    let mean = (5.0 + 1.45) / 6.0;
    assert_eq!(loss(&mut logger, mean * 1.55), [Trigger::LossSpike]);
    let a = &logger.latest_anomalies()[0];
    assert_eq!(a.severity, Severity::Warning);
    assert_eq!(a.metric.as_deref(), Some("loss"));
    assert_eq!(a.source, EventType::BatchEnd);
    assert!((a.threshold - mean * 1.5).abs() < 1e-12);
}

#[test]
fn tiny_losses_near_convergence_do_not_spike() {
    let (mut logger, _) = adaptive(None);
    for (step, l) in [0.01, 0.012, 0.009, 0.011, 0.01].into_iter().enumerate() {
        logger.on_batch_end(step as u64, data! { "loss" => l });
    }
    // Five times the baseline, but only +0.04 in absolute terms.
    logger.on_batch_end(5, data! { "loss" => 0.05 });
    assert_eq!(triggers(&logger), []);
    // With a smaller minimum rise (a loss on a smaller scale) it is a spike.
    let mut config = AnomalyConfig::default();
    config.loss_spike_min_delta = 0.01;
    let (mut logger, _) = adaptive(Some(config));
    for (step, l) in [0.01, 0.012, 0.009, 0.011, 0.01].into_iter().enumerate() {
        logger.on_batch_end(step as u64, data! { "loss" => l });
    }
    logger.on_batch_end(5, data! { "loss" => 0.05 });
    assert_eq!(triggers(&logger), [Trigger::LossSpike]);
}

#[test]
fn negative_losses_use_the_magnitude_of_the_baseline() {
    let (mut logger, _) = adaptive(None);
    for step in 0..5 {
        logger.on_batch_end(step, data! { "loss" => -2.0 });
    }
    logger.on_batch_end(5, data! { "loss" => -1.5 });
    assert_eq!(triggers(&logger), [], "+25% of |baseline|");
    let mean: f64 = (-10.0 - 1.5) / 6.0;
    logger.on_batch_end(6, data! { "loss" => mean + mean.abs() * 0.6 });
    assert_eq!(triggers(&logger), [Trigger::LossSpike]);
}

#[test]
fn nan_loss_is_critical_and_never_poisons_the_baseline() {
    let (mut logger, counting) = adaptive(None);
    for step in 0..5 {
        logger.on_batch_end(step, data! { "loss" => 1.0 });
    }
    logger.on_batch_end(5, data! { "loss" => f64::NAN, "accuracy" => 0.5 });
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    let a = &logger.latest_anomalies()[0];
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.metric.as_deref(), Some("loss"));
    assert!(a.value.is_nan());
    logger.on_batch_end(6, data! { "loss" => f64::INFINITY });
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    // Normal losses afterwards: the baseline is still 1.0 and the spike check still works.
    logger.on_batch_end(7, data! { "loss" => 1.2 });
    assert_eq!(triggers(&logger), []);
    logger.on_batch_end(8, data! { "loss" => 2.0 });
    assert_eq!(triggers(&logger), [Trigger::LossSpike]);
    let baseline = logger.latest_anomalies()[0].to_data().get_f64("baseline").unwrap();
    assert!((baseline - 6.2 / 6.0).abs() < 1e-12, "{baseline}");
    logger.flush().unwrap();
    let health = counting.tally().health;
    let severities: Vec<Severity> = health.iter().map(|e| e.severity).collect();
    assert_eq!(severities, [Severity::Critical, Severity::Warning], "Inf de-duplicated");
    // Non-finite numbers stay valid JSON in the NDJSON line.
    assert!(health[0].to_ndjson().contains(r#""value":"NaN""#));
}

#[test]
fn nan_or_inf_anywhere_is_critical() {
    let (mut logger, _) = adaptive(None);
    logger.on_batch_start(0);
    let mut acts = healthy_relu(4, 4);
    acts[3] = f32::NAN;
    forward(&mut logger, &acts, &[4, 4], Activation::Relu);
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    assert_eq!(logger.latest_anomalies()[0].severity, Severity::Critical);
    let grad = [0.1, f64::INFINITY, 0.2, 0.3];
    logger.on_layer_backward(1, "dense_1", TensorView::flat(&grad[..])).unwrap();
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    logger.on_gradient_computed("dense_2", f64::NAN);
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    let weights = [0.1f32, f32::NEG_INFINITY];
    logger.on_weight_updated(3, "dense_3", TensorView::flat(&weights[..]), Some(0.1)).unwrap();
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    let fine = [0.1f32, 0.2];
    logger.on_weight_updated(4, "dense_4", TensorView::flat(&fine[..]), Some(f64::NAN)).unwrap();
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    logger.on_batch_end(0, data! { "loss" => 0.5, "accuracy" => f64::NAN });
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    assert_eq!(logger.latest_anomalies()[0].metric.as_deref(), Some("accuracy"));
    logger.on_epoch_end(0, data! { "loss" => 0.5, "val_loss" => f64::INFINITY });
    assert_eq!(triggers(&logger), [Trigger::NanInf]);
    assert_eq!(logger.latest_anomalies()[0].source, EventType::EpochEnd);
    let s = logger.get_anomaly_summary();
    assert_eq!(s.count(Trigger::NanInf), 7);
    assert_eq!(s.count_severity(Severity::Critical), 7);
}

#[test]
fn weight_stagnation_fires_on_the_fifth_consecutive_tiny_update() {
    let (mut logger, _) = adaptive(None);
    let w = [0.5f32, -0.25, 0.125, 1.0];
    let update = |logger: &mut AdaptiveLogger, step: u64, norm: f64| {
        logger.on_batch_start(step);
        logger.on_weight_updated(0, "dense_0", TensorView::flat(&w[..]), Some(norm)).unwrap();
        let fired = triggers(logger);
        logger.on_batch_end(step, data! {});
        fired
    };
    for step in 0..4 {
        assert_eq!(update(&mut logger, step, 1e-7), []);
    }
    // A real update resets the count.
    assert_eq!(update(&mut logger, 4, 1e-6), [], "1e-6 is not below 1e-6");
    for step in 5..9 {
        assert_eq!(update(&mut logger, step, 0.0), []);
    }
    assert_eq!(update(&mut logger, 9, 0.0), [Trigger::WeightStagnation]);
    let summary = logger.get_anomaly_summary();
    let data = summary.recent.last().expect("emitted").to_data();
    assert_eq!(data.get("consecutive").and_then(|v| v.as_u64()), Some(5));
    assert_eq!(data.get("measure").and_then(|v| v.as_str()), Some("update_norm"));
}

#[test]
fn stagnation_without_an_update_norm_compares_weight_statistics() {
    let (mut logger, _) = adaptive(None);
    let w = [0.5f32, -0.25, 0.125, 1.0];
    // The first call has nothing to compare with; five unchanged updates follow.
    for step in 0..5 {
        logger.on_weight_updated(0, "dense_0", TensorView::flat(&w[..]), None).unwrap();
        assert_eq!(triggers(&logger), [], "call {step}");
        logger.on_batch_end(step, data! {});
    }
    logger.on_weight_updated(0, "dense_0", TensorView::flat(&w[..]), None).unwrap();
    assert_eq!(triggers(&logger), [Trigger::WeightStagnation]);
    // Weights that move break the streak.
    let moved = [0.5f32, -0.25, 0.125, 1.01];
    logger.on_weight_updated(0, "dense_0", TensorView::flat(&moved[..]), None).unwrap();
    assert_eq!(triggers(&logger), []);
}

#[test]
fn a_calm_run_finds_nothing() {
    let (mut logger, _) = adaptive(None);
    for step in 0..50 {
        calm_batch(&mut logger, step, 1.0 / (1.0 + step as f64));
    }
    let s = logger.get_anomaly_summary();
    assert_eq!(s.total, 0, "{s}");
    assert_eq!(s.batches, 50);
    assert_eq!(s.escalated_batches, 0);
}

#[test]
fn switched_off_triggers_stay_quiet() {
    let mut config = AnomalyConfig::default();
    config.zeros_pct_threshold = 100.0;
    config.saturation_pct_threshold = 100.0;
    config.gradient_spike_factor = f64::INFINITY;
    config.exploding_gradient_l2 = f64::INFINITY;
    config.vanishing_gradient_l2 = 0.0;
    config.loss_spike_pct = f64::INFINITY;
    config.weight_stagnation_delta = 0.0;
    let (mut logger, _) = adaptive(Some(config));
    let zeros = [0.0f32; 8];
    let ones = [1.0f32; 8];
    for step in 0..10 {
        logger.on_batch_start(step);
        logger
            .on_layer_forward(
                0,
                "l",
                TensorView::new(&zeros[..], &[2, 4]).unwrap(),
                Activation::Relu,
            )
            .unwrap();
        logger
            .on_layer_forward(
                1,
                "t",
                TensorView::new(&ones[..], &[2, 4]).unwrap(),
                Activation::Tanh,
            )
            .unwrap();
        logger.on_gradient_computed("l", if step == 9 { 1e9 } else { 0.0 });
        logger.on_weight_updated(0, "l", TensorView::flat(&ones[..]), Some(0.0)).unwrap();
        logger.on_batch_end(step, data! { "loss" => if step == 9 { 1e6 } else { 1.0 } });
    }
    assert_eq!(logger.get_anomaly_summary().total, 0);
}
