//! Every finding reaches the adaptive logger through its hooks, under the reference's trigger
//! names, with obs-health's rules deciding (one implementation of each rule).

use obs_adaptive::{AdaptiveLogger, AnomalyConfig, Trigger};
use obs_core::{Activation, EventType, Severity, TensorView, data};
use obs_health::Rule;

use crate::support::{adaptive, calm_batch, healthy_relu, with_dead_units};

fn triggers(logger: &AdaptiveLogger) -> Vec<Trigger> {
    logger.latest_anomalies().iter().map(|a| a.trigger).collect()
}

fn forward(logger: &mut AdaptiveLogger, data: &[f32], shape: &[usize], act: Activation) {
    let view = TensorView::new(data, shape).expect("shape matches");
    logger.on_layer_forward(0, "dense_0", view, act).expect("non-empty");
}

/// `batches` batches with only a forward of `data`, returning the triggers of each forward.
fn forwards(
    logger: &mut AdaptiveLogger,
    batches: u64,
    data: &[f32],
    shape: &[usize],
    act: Activation,
) -> Vec<Vec<Trigger>> {
    (0..batches)
        .map(|b| {
            logger.on_batch_start(b);
            forward(logger, data, shape, act);
            let t = triggers(logger);
            logger.on_batch_end(b, data! {});
            t
        })
        .collect()
}

#[test]
fn dead_units_above_half_for_five_batches_are_dead_neurons() {
    let (mut logger, _) = adaptive(None);
    // Half the elements are zero, yet every unit fires for some sample: a healthy ReLU layer.
    assert!(
        forwards(&mut logger, 10, &healthy_relu(16, 8), &[16, 8], Activation::Relu)
            .iter()
            .all(Vec::is_empty)
    );
    // Exactly 50% of the units dead is not "more than 50%".
    assert!(
        forwards(&mut logger, 10, &with_dead_units(16, 8, 4), &[16, 8], Activation::Relu)
            .iter()
            .all(Vec::is_empty)
    );
    let found = forwards(&mut logger, 5, &with_dead_units(16, 8, 5), &[16, 8], Activation::Relu);
    assert!(found[..4].iter().all(Vec::is_empty), "{found:?}");
    assert_eq!(found[4], [Trigger::DeadNeurons]);
    let a = &logger.get_anomaly_summary().recent[0];
    assert_eq!((a.rule, a.severity), (Rule::DeadRelu, Severity::Warning));
    assert_eq!((a.value, a.threshold), (62.5, 50.0));
    assert_eq!(a.layer_name.as_deref(), Some("dense_0"));
    assert_eq!(a.layer_index, Some(0));
    assert_eq!(a.source, EventType::LayerForward);
    assert!(a.escalated);
    assert_eq!(a.warning.diagnosis, Rule::DeadRelu.diagnosis());
}

#[test]
fn a_layer_with_every_unit_dead_fires_in_its_first_batch() {
    let (mut logger, _) = adaptive(None);
    logger.on_batch_start(0);
    forward(&mut logger, &[0.0; 32], &[8, 4], Activation::Relu);
    assert_eq!(triggers(&logger), [Trigger::DeadNeurons]);
    assert!(logger.is_escalated());
}

#[test]
fn element_zeros_are_the_reference_measure_when_opted_in() {
    let mut config = AnomalyConfig::default();
    config.rules.dead_relu_element_zeros = true;
    config.rules.dead_relu_patience = 1;
    let (mut logger, _) = adaptive(Some(config));
    // Flat tensors have no units: only the element measure can judge them.
    let mut zeros = [0.0f32; 6];
    zeros[0] = 1.0;
    logger.on_layer_forward(1, "flat", TensorView::flat(&zeros[..]), Activation::Relu).unwrap();
    assert_eq!(triggers(&logger), [Trigger::DeadNeurons]);
    assert!((logger.latest_anomalies()[0].value - 83.333).abs() < 1e-3);
    let (mut logger, _) = adaptive(None);
    logger.on_layer_forward(1, "flat", TensorView::flat(&zeros[..]), Activation::Relu).unwrap();
    assert_eq!(triggers(&logger), []);
}

#[test]
fn saturation_depends_on_the_activation_type_and_lasts_five_batches() {
    let (mut logger, _) = adaptive(None);
    let saturated: Vec<f32> = (0..32).map(|i| if i % 4 == 0 { 0.2 } else { 0.999 }).collect();
    let found = forwards(&mut logger, 5, &saturated, &[8, 4], Activation::Tanh);
    assert_eq!(found[4], [Trigger::ActivationSaturation]);
    let a = &logger.get_anomaly_summary().recent[0];
    assert_eq!((a.rule, a.value), (Rule::ActivationSaturation, 75.0));
    // The same numbers out of a ReLU or linear layer are not saturated.
    for act in [Activation::Relu, Activation::Linear] {
        let (mut logger, _) = adaptive(None);
        assert!(forwards(&mut logger, 10, &saturated, &[8, 4], act).iter().all(Vec::is_empty));
    }
}

#[test]
fn vanishing_and_exploding_gradients_are_danger() {
    let (mut logger, _) = adaptive(None);
    let mut found = Vec::new();
    for b in 0..5 {
        logger.on_batch_start(b);
        logger.on_gradient_computed("early", 1e-9);
        found.push(triggers(&logger));
        logger.on_batch_end(b, data! {});
    }
    assert_eq!(found[4], [Trigger::VanishingGradient], "{found:?}");
    logger.on_batch_start(5);
    logger.on_gradient_computed("late", 250.0);
    assert_eq!(triggers(&logger), [Trigger::ExplodingGradient]);
    let s = logger.get_anomaly_summary();
    assert_eq!(s.count_severity(Severity::Danger), 2);
    assert_eq!(s.count_rule(Rule::ExplodingGradient), 1);
}

#[test]
fn a_corrupted_batch_is_one_gradient_spike() {
    let (mut logger, _) = adaptive(None);
    let grads = |logger: &mut AdaptiveLogger, b: u64, norm: f64, loss: f64| {
        logger.on_batch_start(b);
        for name in ["a", "b", "c"] {
            logger.on_gradient_computed(name, norm);
        }
        logger.on_batch_end(b, data! { "loss" => loss });
        triggers(logger)
    };
    assert!(grads(&mut logger, 0, 1.0, 1.1).is_empty());
    for b in 1..8 {
        assert!(grads(&mut logger, b, 1.0, 0.1).is_empty());
    }
    // Every layer 15x and the loss 4x where training started: found when the batch ends.
    assert_eq!(grads(&mut logger, 8, 15.0, 4.4), [Trigger::GradientSpike]);
    let a = &logger.get_anomaly_summary().recent[0];
    assert_eq!((a.rule, a.source), (Rule::GradientSpike, EventType::BatchEnd));
    // The loss alone jumping is a loss spike.
    assert!(grads(&mut logger, 9, 1.0, 0.1).is_empty());
    assert_eq!(grads(&mut logger, 10, 1.0, 9.0), [Trigger::LossSpike]);
}

#[test]
fn a_layer_gradient_is_judged_once_per_batch() {
    let (mut logger, _) = adaptive(None);
    let grad = [300.0f32, 0.0];
    logger.on_batch_start(0);
    logger.on_layer_backward(0, "d", TensorView::flat(&grad[..])).unwrap();
    assert_eq!(triggers(&logger), [Trigger::ExplodingGradient]);
    // The loop also reports the scalar: not judged (and not counted) a second time.
    logger.on_gradient_computed("d", 300.0);
    assert_eq!(triggers(&logger), []);
    logger.on_batch_end(0, data! {});
    assert_eq!(logger.health().get_summary().suppressed, 0);
}

/// A hook call that feeds something non-finite.
type Feed = Box<dyn Fn(&mut AdaptiveLogger)>;

#[test]
fn nan_or_inf_anywhere_is_critical_nan_inf() {
    let cases: Vec<(&str, Feed, Rule)> = vec![
        (
            "output",
            Box::new(|l| {
                l.on_layer_forward(0, "d", TensorView::flat(&[f32::NAN][..]), Activation::Relu)
                    .unwrap();
            }),
            Rule::NanInfTensor,
        ),
        (
            "gradient",
            Box::new(|l| {
                l.on_layer_backward(0, "d", TensorView::flat(&[1.0f32, f32::INFINITY][..]))
                    .unwrap();
            }),
            Rule::GradientNanInf,
        ),
        (
            "gradient norm",
            Box::new(|l| l.on_gradient_computed("d", f64::NAN)),
            Rule::GradientNanInf,
        ),
        (
            "weights",
            Box::new(|l| {
                l.on_weight_updated(0, "d", TensorView::flat(&[f64::NAN][..]), None).unwrap();
            }),
            Rule::NanInfTensor,
        ),
        (
            "update norm",
            Box::new(|l| {
                l.on_weight_updated(0, "d", TensorView::flat(&[1.0f32][..]), Some(f64::INFINITY))
                    .unwrap();
            }),
            Rule::NanInfTensor,
        ),
        ("loss", Box::new(|l| l.on_batch_end(0, data! { "loss" => f64::NAN })), Rule::NanInfLoss),
    ];
    for (what, hook, rule) in cases {
        let (mut logger, _) = adaptive(None);
        logger.on_batch_start(0);
        hook(&mut logger);
        let a = logger.get_anomaly_summary().recent;
        assert_eq!(a.len(), 1, "{what}: {a:?}");
        assert_eq!(
            (a[0].trigger, a[0].rule, a[0].severity),
            (Trigger::NanInf, rule, Severity::Critical),
            "{what}"
        );
        assert!(logger.is_escalated(), "{what}");
    }
}

#[test]
fn weight_stagnation_with_and_without_update_norms() {
    let weights: Vec<f32> = (0..16).map(|i| i as f32 * 0.1).collect();
    let view = TensorView::new(&weights, &[4, 4]).unwrap();
    let (mut logger, _) = adaptive(None);
    let mut found = Vec::new();
    for b in 0..5 {
        logger.on_batch_start(b);
        logger.on_weight_updated(0, "d", view, Some(1e-8)).unwrap();
        found.push(triggers(&logger));
        logger.on_batch_end(b, data! {});
    }
    // Stagnation compares the layers, so it is found when the fifth batch ends.
    assert!(found.iter().all(Vec::is_empty));
    assert_eq!(logger.get_anomaly_summary().count(Trigger::WeightStagnation), 1);
    // Without a norm, the weights' statistics not changing stand in for it: the first update
    // has nothing to compare with, the next five are all unchanged.
    let (mut logger, _) = adaptive(None);
    for b in 0..6 {
        logger.on_batch_start(b);
        logger.on_weight_updated(0, "d", view, None).unwrap();
        logger.on_batch_end(b, data! {});
    }
    assert_eq!(logger.get_anomaly_summary().count(Trigger::WeightStagnation), 1);
}

#[test]
fn a_blow_up_is_loss_divergence_before_its_nan() {
    let (mut logger, _) = adaptive(None);
    let mut found = Vec::new();
    for (b, loss) in [1.1, 43.0, 7.6e3, 1e15, f64::NAN].into_iter().enumerate() {
        logger.on_batch_end(b as u64, data! { "loss" => loss });
        found.push(triggers(&logger));
    }
    assert_eq!(found[2], [Trigger::LossDivergence]);
    assert_eq!(logger.latest_anomalies()[0].trigger, Trigger::NanInf);
    assert_eq!(Trigger::LossDivergence.severity(), Severity::Danger);
}

#[test]
fn epoch_metrics_go_to_the_epoch_rules() {
    let (mut logger, _) = adaptive(None);
    let mut found = Vec::new();
    for epoch in 0..5 {
        logger.on_epoch_start(epoch);
        calm_batch(&mut logger, 0, 1.1);
        logger.on_epoch_end(epoch, data! { "loss" => 1.0986, "val_loss" => 1.1 });
        found.push(triggers(&logger));
    }
    assert_eq!(found[4], [Trigger::LossStagnation]);
    let a = &logger.latest_anomalies()[0];
    assert_eq!((a.source, a.batch, a.metric.as_deref()), (EventType::EpochEnd, None, Some("loss")));
    // The batches after an epoch finding are recorded in detail.
    assert!(logger.is_escalated());
}

#[test]
fn a_calm_run_finds_nothing() {
    let (mut logger, _) = adaptive(None);
    for epoch in 0..3 {
        logger.on_epoch_start(epoch);
        for b in 0..10 {
            calm_batch(&mut logger, b, 1.0 / (1.0 + (epoch * 10 + b) as f64));
        }
        logger.on_epoch_end(epoch, data! { "loss" => 1.0 / (1.0 + epoch as f64) });
    }
    let s = logger.get_anomaly_summary();
    assert_eq!((s.total, s.escalated_batches), (0, 0), "{s}");
}

#[test]
fn switched_off_rules_stay_quiet() {
    let config = AnomalyConfig::default()
        .zeros_pct_threshold(100.0)
        .saturation_pct_threshold(100.0)
        .exploding_gradient_l2(1e300)
        .vanishing_gradient_l2(0.0);
    let (mut logger, _) = adaptive(Some(config));
    logger.on_batch_start(0);
    forward(&mut logger, &[0.0; 16], &[4, 4], Activation::Relu);
    forward(&mut logger, &[1.0; 16], &[4, 4], Activation::Sigmoid);
    logger.on_gradient_computed("x", 1e200);
    logger.on_gradient_computed("y", 0.0);
    logger.on_batch_end(0, data! {});
    assert_eq!(logger.get_anomaly_summary().total, 0);
}

#[test]
fn statistics_and_update_norms_computed_elsewhere_are_judged_the_same() {
    // Statistics made on a device: the same finding as the tensor itself gives.
    let dead = [0.0f32; 32];
    let stats =
        obs_core::tensor_stats(TensorView::new(&dead[..], &[8, 4]).unwrap(), Activation::Relu);
    let (mut logger, counting) = adaptive(None);
    logger.on_epoch_start(0);
    logger.on_batch_start(0);
    logger.on_layer_stats(0, "dense_0", &[8, 4], &stats);
    assert_eq!(triggers(&logger), [Trigger::DeadNeurons]);
    logger.on_batch_end(0, data! {});
    logger.flush().unwrap();
    // The escalated batch records the layer's statistics with the shape it was given.
    let forward = counting
        .tally()
        .expert
        .iter()
        .any(|(_, _, t, l)| *t == EventType::LayerForward && l == "dense_0");
    assert!(forward);
    // Empty statistics change nothing.
    let empty = obs_core::tensor_stats(TensorView::flat(&[] as &[f32]), Activation::Relu);
    logger.on_layer_stats(0, "x", &[0], &empty);
    assert!(triggers(&logger).is_empty());

    // Update norms alone: weight stagnation after five tiny updates.
    let (mut logger, _) = adaptive(None);
    for b in 0..5 {
        logger.on_batch_start(b);
        logger.on_update_norm(0, "w", 1e-9);
        logger.on_batch_end(b, data! {});
    }
    assert_eq!(logger.get_anomaly_summary().count(Trigger::WeightStagnation), 1);
}
