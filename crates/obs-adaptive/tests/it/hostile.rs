//! Empty tensors, unknown layers, odd names and out-of-order hooks: errors, never panics.

use obs_adaptive::{AnomalyConfig, Trigger};
use obs_core::{Activation, TensorError, TensorView, Value, data};

use crate::support::{adaptive, healthy_relu};

#[test]
fn empty_tensors_are_errors_and_change_nothing() {
    let (mut logger, counting) = adaptive(None);
    let empty: [f32; 0] = [];
    let shape = [0usize, 4];
    let view = TensorView::new(&empty[..], &shape).unwrap();
    assert_eq!(
        logger.on_layer_forward(0, "d", view, Activation::Relu).unwrap_err(),
        TensorError::Empty
    );
    assert_eq!(logger.on_layer_backward(0, "d", view).unwrap_err(), TensorError::Empty);
    assert_eq!(logger.on_weight_updated(0, "d", view, Some(0.0)).unwrap_err(), TensorError::Empty);
    let flat_empty = TensorView::flat(&[0.0f64; 0][..]);
    assert_eq!(logger.on_layer_backward(0, "d", flat_empty).unwrap_err(), TensorError::Empty);
    let s = logger.get_anomaly_summary();
    assert_eq!((s.total, s.batches), (0, 0));
    logger.flush().unwrap();
    assert_eq!(counting.tally().events, 0);
}

#[test]
fn unknown_and_odd_layer_names_work() {
    let (mut logger, _) = adaptive(None);
    let acts = healthy_relu(4, 4);
    let long = "x".repeat(10_000);
    for name in ["", "dense/0:weight", "层 ☃", long.as_str(), "\n\"quoted\"\t"] {
        logger.on_batch_start(0);
        let view = TensorView::new(&acts, &[4, 4]).unwrap();
        logger.on_layer_forward(usize::MAX, name, view, Activation::Relu).unwrap();
        // A gradient for a layer never forwarded, and a gradient far beyond the others.
        logger.on_gradient_computed(name, 1e9);
        logger.on_weight_updated(0, name, view, None).unwrap();
        logger.on_batch_end(0, data! {});
    }
    let s = logger.get_anomaly_summary();
    assert_eq!(s.count(Trigger::ExplodingGradient), 5, "{s}");
    let a = &s.recent[0];
    assert_eq!(a.layer_name.as_deref(), Some(""));
    assert_eq!(a.to_event().layer_name.as_deref(), Some(""));
    // Every event line stays valid JSON whatever the name.
    for a in &s.recent {
        let line = a.to_event().to_ndjson();
        let back = obs_core::Event::from_ndjson(&line).unwrap();
        assert_eq!(back.layer_name, a.layer_name);
        assert_eq!(back.data.get("rule_name").and_then(Value::as_str), Some("exploding_gradient"));
    }
}

fn spikes_with_max_layers(max_layers: usize) -> (u64, usize, String) {
    let mut config = AnomalyConfig::default();
    config.rules.max_layers = max_layers;
    let (mut logger, _) = adaptive(Some(config));
    for step in 0..50u64 {
        logger.on_batch_start(step);
        for layer in 0..6 {
            logger.on_gradient_computed(
                &format!("layer_{layer}"),
                if step == 49 { 10.0 } else { 0.1 },
            );
        }
        logger.on_batch_end(step, data! {});
    }
    let spikes = logger.get_anomaly_summary().count(Trigger::GradientSpike);
    (spikes, logger.health().tracked_layers(), format!("{logger:?}"))
}

#[test]
fn layer_memory_is_bounded() {
    let (spikes, tracked, debug) = spikes_with_max_layers(4096);
    assert_eq!((spikes, tracked), (1, 6));
    assert!(debug.contains("layers: 6"), "{debug}");
    // With room for two layers, only two have history and are judged (both jumped): memory
    // stays bounded and nothing panics.
    let (spikes, tracked, debug) = spikes_with_max_layers(2);
    assert_eq!((spikes, tracked), (1, 2));
    assert!(!debug.contains("layers: 6"), "{debug}");
}

#[test]
fn hooks_in_any_order_and_outside_a_run_do_not_panic() {
    let (mut logger, _) = adaptive(None);
    let nan = [f32::NAN; 8];
    let inf = [f64::INFINITY; 8];
    let one = [1.0f32];
    logger.on_batch_end(
        5,
        data! { "loss" => "not a number", "nested" => data! { "loss" => f64::NAN } },
    );
    logger.on_epoch_end(9, data! {});
    logger.on_layer_backward(0, "a", TensorView::flat(&nan[..])).unwrap();
    logger
        .on_layer_forward(0, "a", TensorView::new(&inf[..], &[2, 4]).unwrap(), Activation::Sigmoid)
        .unwrap();
    logger.on_weight_updated(0, "a", TensorView::flat(&one[..]), Some(f64::NEG_INFINITY)).unwrap();
    logger.on_weight_updated(0, "a", TensorView::flat(&one[..]), Some(-1.0)).unwrap();
    logger.on_gradient_computed("a", -0.0);
    logger.on_batch_start(0);
    logger.on_batch_start(0);
    logger.on_train_end(data! { "loss" => f64::NAN });
    logger.on_epoch_start(u64::MAX);
    logger.on_batch_end(u64::MAX, data! { "loss" => f64::MAX });
    logger.on_batch_end(u64::MAX, data! { "loss" => f64::MIN });
    let s = logger.get_anomaly_summary();
    // The gradient and the output NaN/Inf; the -inf update repeats the output's rule.
    assert_eq!(s.count(Trigger::NanInf), 2, "{s}");
    assert_eq!(s.total, 3, "{s}");
    // A string "loss" or a nested NaN is not a batch loss; only numbers at the top level are.
    assert!(s.recent.iter().all(|a| a.metric.as_deref() != Some("nested")));
}

#[test]
fn a_closed_base_refuses_events_without_panicking() {
    let (mut logger, _) = adaptive(None);
    logger.close().unwrap();
    let zeros = [0.0f32; 16];
    logger.on_batch_start(0);
    logger
        .on_layer_forward(0, "d", TensorView::new(&zeros[..], &[4, 4]).unwrap(), Activation::Relu)
        .unwrap();
    logger.on_batch_end(0, data! { "loss" => 1.0 });
    assert_eq!(logger.get_anomaly_summary().count(Trigger::DeadNeurons), 1);
    assert!(logger.base().summary().rejected > 0);
}

#[test]
fn f64_tensors_are_judged_like_f32() {
    let (mut logger, _) = adaptive(None);
    let dead = vec![0.0f64; 12];
    logger
        .on_layer_forward(0, "d", TensorView::new(&dead, &[3, 4]).unwrap(), Activation::Relu)
        .unwrap();
    assert_eq!(logger.latest_anomalies()[0].trigger, Trigger::DeadNeurons);
    assert_eq!(logger.latest_anomalies()[0].value, 100.0);
}
