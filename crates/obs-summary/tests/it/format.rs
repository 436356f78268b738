//! The text layout, the data shape and the serde round trip.

use obs_core::{Activation, TensorView, Value, tensor_stats};
use obs_summary::{EpochSummarizer, EpochSummary, MetricStats};

fn stats(mean: f64, std: f64, min: f64, max: f64) -> MetricStats {
    MetricStats { mean, std, min, max, count: 32, non_finite: 0 }
}

/// The reference's own example output, byte for byte.
#[test]
fn seed_example_renders_exactly() {
    let summary = EpochSummary {
        epoch: 5,
        batches: 32,
        metrics: vec![
            ("loss".into(), stats(0.3421, 0.0152, 0.31, 0.38)),
            ("accuracy".into(), stats(0.8912, 0.0085, 0.87, 0.91)),
        ],
        gradient_norms: vec![
            ("dense_0".into(), stats(0.0523, 0.0112, 0.031, 0.084)),
            ("dense_1".into(), stats(0.021, 0.0053, 0.012, 0.035)),
        ],
        activations: vec![],
        weights: vec![],
    };
    let expected = "\
══ Epoch 5 Summary (32 batches) ══
  Metrics:
    loss                  mean=0.342100  std=0.015200  min=0.310000  max=0.380000
    accuracy              mean=0.891200  std=0.008500  min=0.870000  max=0.910000
  Gradient Norms:
    dense_0               mean=5.23e-02  std=1.12e-02  min=3.10e-02  max=8.40e-02
    dense_1               mean=2.10e-02  std=5.30e-03  min=1.20e-02  max=3.50e-02
";
    assert_eq!(summary.format_text(), expected);
}

#[test]
fn recorded_values_render_with_non_finite_counts_long_names_and_layers() {
    let mut s = EpochSummarizer::new();
    let long = "encoder.block_11.attention.out_proj";
    for (loss, g) in [(1.0, 2.0), (3.0, f64::INFINITY), (f64::NAN, 4.0)] {
        s.record_batch(0, &[("loss", loss)], &[("dense_0", g), (long, 1e-9)]).expect("record");
    }
    let acts = [0.0f32, 1.0, 0.0, 3.0];
    let a = tensor_stats(TensorView::new(&acts[..], &[2, 2]).expect("shape"), Activation::Relu);
    s.record_activation_stats(0, "dense_0", &a).expect("record");
    let w = [0.5f32, -0.5, f32::NAN, 1.0];
    let w = tensor_stats(TensorView::new(&w[..], &[2, 2]).expect("shape"), Activation::None);
    s.record_weight_stats(0, "dense_0", &w).expect("record");
    let text = s.finalize_epoch(0).expect("finalize").format_text();
    let expected = "\
══ Epoch 0 Summary (3 batches) ══
  Metrics:
    loss                  mean=2.000000  std=1.000000  min=1.000000  max=3.000000  non_finite=1
  Gradient Norms:
    dense_0               mean=3.00e+00  std=1.00e+00  min=2.00e+00  max=4.00e+00  non_finite=1
    encoder.block_11.attention.out_proj mean=1.00e-09  std=0.00e+00  min=1.00e-09  max=1.00e-09
  Activations:
    dense_0               mean=1.000000  std=1.224745  zeros=50.0%  saturated=0.0%  dead=50.0%
  Weights:
    dense_0               mean=0.333333  std=0.623610  l2=1.22e+00  nan=1  inf=0
";
    assert_eq!(text, expected);
}

#[test]
fn all_non_finite_metric_prints_nan_and_counts() {
    let mut s = EpochSummarizer::new();
    s.record_batch(2, &[("loss", f64::NAN)], &[]).expect("record");
    s.record_batch(2, &[("loss", f64::NEG_INFINITY)], &[]).expect("record");
    let summary = s.finalize_epoch(2).expect("finalize");
    let loss = summary.metric("loss").expect("loss");
    assert_eq!((loss.count, loss.non_finite), (0, 2));
    assert!(loss.mean.is_nan());
    assert_eq!(
        summary.format_text(),
        "══ Epoch 2 Summary (2 batches) ══\n  Metrics:\n    loss                  \
         mean=nan  std=nan  min=nan  max=nan  non_finite=2\n"
    );
    assert_eq!(summary.non_finite(), 2);
}

#[test]
fn to_data_has_the_documented_shape() {
    let mut s = EpochSummarizer::new();
    s.record_batch(1, &[("loss", 0.5), ("accuracy", 0.75)], &[("dense_0", 0.1)]).expect("ok");
    s.record_batch(1, &[("loss", 0.25), ("accuracy", f64::NAN)], &[("dense_0", 0.3)]).expect("ok");
    let d = s.finalize_epoch(1).expect("finalize").to_data();
    let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["epoch", "batches", "metrics", "gradient_norms", "activations", "weights"]);
    assert_eq!(d.get("epoch").and_then(Value::as_u64), Some(1));
    assert_eq!(d.get("batches").and_then(Value::as_u64), Some(2));
    assert_eq!(d.path(&["metrics", "loss", "mean"]).and_then(Value::as_f64), Some(0.375));
    assert_eq!(d.path(&["metrics", "loss", "std"]).and_then(Value::as_f64), Some(0.125));
    assert_eq!(d.path(&["metrics", "accuracy", "non_finite"]).and_then(Value::as_u64), Some(1));
    let metric_keys: Vec<&str> =
        d.path(&["metrics"]).and_then(Value::as_map).expect("map").iter().map(|(k, _)| k).collect();
    assert_eq!(metric_keys, ["loss", "accuracy"], "recording order is kept");
    let g = d.path(&["gradient_norms", "dense_0"]).and_then(Value::as_map).expect("map");
    let stat_keys: Vec<&str> = g.iter().map(|(k, _)| k).collect();
    assert_eq!(stat_keys, ["mean", "std", "min", "max", "count", "non_finite"]);
    assert!(d.path(&["activations"]).and_then(Value::as_map).is_some_and(|m| m.is_empty()));
}

#[test]
fn serde_round_trips_including_non_finite_values() {
    let mut s = EpochSummarizer::new();
    s.record_batch(3, &[("loss", f64::NAN), ("acc", 0.5)], &[("dense_0", 1.5)]).expect("ok");
    let acts = [0.0f32, 0.2];
    let a = tensor_stats(TensorView::new(&acts[..], &[1, 2]).expect("shape"), Activation::Sigmoid);
    s.record_activation_stats(3, "dense_0", &a).expect("ok");
    let w = tensor_stats(TensorView::flat(&acts[..]), Activation::None);
    s.record_weight_stats(3, "dense_0", &w).expect("ok");
    let summary = s.finalize_epoch(3).expect("finalize");
    let json = serde_json::to_string(&summary).expect("serialize");
    assert!(json.contains(r#""loss":{"mean":"NaN""#), "{json}");
    assert!(json.contains(r#""dead_units_pct":null"#), "{json}");
    let back: EpochSummary = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.format_text(), summary.format_text());
    assert_eq!(back.to_data(), summary.to_data());
    assert_eq!(serde_json::to_string(&back).expect("serialize"), json);
    let keys: Vec<&str> = back.metrics.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["loss", "acc"]);
    // The data form serialises to the same JSON object.
    assert_eq!(serde_json::to_string(&summary.to_data()).expect("data"), json);
}

#[test]
fn serde_rejects_garbage_without_panicking() {
    for bad in [
        r#"{"epoch":0}"#,
        r#"{"epoch":0,"batches":1,"metrics":{"loss":{"mean":"oops","std":0,"min":0,"max":0,"count":1,"non_finite":0}},"gradient_norms":{}}"#,
        r#"[]"#,
    ] {
        assert!(serde_json::from_str::<EpochSummary>(bad).is_err(), "{bad}");
    }
    let minimal = r#"{"epoch":0,"batches":0,"metrics":{},"gradient_norms":{}}"#;
    let s: EpochSummary = serde_json::from_str(minimal).expect("layer maps are optional");
    assert!(s.activations.is_empty() && s.weights.is_empty());
}
