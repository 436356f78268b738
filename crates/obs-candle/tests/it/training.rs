//! Real candle training on CPU, observed end to end: what the pipeline says about healthy and
//! sick runs.

use candle_core::DType;
use obs_candle::StatsSource;
use obs_core::Activation;

use crate::support::{Opt, Spec, train};

#[test]
fn healthy_iris_run_is_silent_and_writes_every_file() {
    let out = tempfile::tempdir().expect("temp dir");
    let spec = Spec { out_dir: Some(out.path().to_owned()), ..Spec::default() };
    let run = train(&spec).expect("training runs");

    // It learned: Iris is easy for a 16-16 ReLU MLP.
    assert!(run.val_accuracy >= 0.9, "validation accuracy {}", run.val_accuracy);
    let first = run.steps.first().expect("a step").loss;
    let last = run.steps.last().expect("a step").loss;
    assert!(last < first / 4.0, "loss {first} -> {last}");

    // And nothing was reported.
    assert_eq!(run.report.health.total_warnings, 0, "warnings: {:?}", run.warning_rules());
    assert_eq!(run.report.anomalies.total, 0, "anomalies: {:?}", run.report.anomalies.by_type);

    // Every step measured every variable, on the host for the layers (CPU tensors are
    // borrowed every step under the default policy).
    assert_eq!(run.steps.len() as u64, spec.epochs * 4);
    for s in &run.steps {
        assert_eq!(s.grad_norms.len(), 6);
        assert_eq!(s.update_norms.len(), 6);
        assert!(s.grad_norms.iter().all(|(_, g)| g.is_finite() && *g > 0.0));
        assert!(s.update_norms.iter().all(|(_, u)| u.is_finite() && *u > 0.0));
        assert_eq!(s.activations.len(), 2);
        assert!(
            s.activations
                .iter()
                .all(|(_, st, src)| *src == StatsSource::Host && st.count == 30 * 16)
        );
    }
    assert_eq!(run.report.host_steps, run.report.steps);
    assert!(run.report.close.failures.is_empty(), "{:?}", run.report.close.failures);

    // The files of `obs demo`.
    let paths = run.report.paths.as_ref().expect("an output directory was given");
    for name in ["basic.log", "health.log", "debug.log", "fingerprint.json"] {
        assert!(paths.run_dir.join(name).is_file(), "{name} missing");
    }
    for path in [&paths.dashboard, &paths.tensorboard, &paths.wandb] {
        let path = path.as_ref().expect("every backend is on by default");
        assert!(path.exists(), "{} missing", path.display());
    }
    let fingerprint: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(paths.run_dir.join("fingerprint.json")).expect("fingerprint"),
    )
    .expect("JSON");
    let text = fingerprint.to_string();
    assert!(text.contains(obs_candle::CANDLE_VERSION), "{text}");
    assert!(text.contains("\"device\":\"cpu\""), "{text}");
    // One calm batch_end line per step (debug tier) keeps the loss chart complete.
    let debug = std::fs::read_to_string(paths.run_dir.join("debug.log")).expect("debug.log");
    assert_eq!(debug.lines().filter(|l| l.contains("\"batch_end\"")).count(), run.steps.len());
}

#[test]
fn negative_bias_relu_net_is_reported_as_dying_relu() {
    // Standardised inputs and Glorot weights give pre-activations of about N(0, 1): a bias of
    // -8 keeps every ReLU unit at zero for every sample.
    let spec = Spec { bias: -8.0, epochs: 2, ..Spec::default() };
    let run = train(&spec).expect("training runs");
    let step = &run.steps[0];
    let dead: Vec<&str> = step
        .warnings
        .iter()
        .filter(|w| w.rule_name == "dead_relu")
        .filter_map(|w| w.layer_name.as_deref())
        .collect();
    assert_eq!(dead, ["dense_0", "dense_1"], "first batch warnings: {:?}", step.warnings);
    assert!(
        step.anomalies.iter().any(|a| a.trigger.as_str() == "dead_neurons"),
        "first batch anomalies: {:?}",
        step.anomalies
    );
    let (_, stats, _) = &step.activations[0];
    assert_eq!(stats.dead_units_pct(), Some(100.0));
    assert!(run.report.anomalies.escalated_batches > 0);
}

/// A learning rate a thousand times too large: the loss explodes and becomes NaN within a
/// few steps.
fn huge_learning_rate() -> Spec {
    Spec {
        optimizer: Opt::Sgd,
        lr: 400.0,
        hidden: vec![(16, Activation::Relu), (16, Activation::Relu)],
        epochs: 10,
        batch_size: 10,
        stop_at_non_finite: true,
        ..Spec::default()
    }
}

#[test]
fn huge_learning_rate_is_reported_as_divergence_before_the_first_nan_loss() {
    let run = train(&huge_learning_rate()).expect("training runs");
    let nan = run.first_non_finite_loss().expect("the loss becomes non-finite");
    let divergence = run.first_warning("loss_divergence");
    assert!(
        divergence.is_some_and(|d| d < nan),
        "loss_divergence at step {divergence:?}, first non-finite loss at step {nan}; losses {:?}",
        run.steps.iter().map(|s| s.loss).collect::<Vec<_>>()
    );
}

#[test]
fn huge_learning_rate_raises_an_alarm_before_the_first_nan_loss() {
    let run = train(&huge_learning_rate()).expect("training runs");
    let nan = run.first_non_finite_loss().expect("the loss becomes non-finite");
    let first_alarm = run
        .steps
        .iter()
        .position(|s| !s.warnings.is_empty() || !s.anomalies.is_empty())
        .expect("an alarm");
    assert!(first_alarm < nan, "first alarm at step {first_alarm}, NaN at step {nan}");
    let before: Vec<String> = run.steps[..nan]
        .iter()
        .flat_map(|s| s.warnings.iter().map(|w| w.rule_name.clone()))
        .collect();
    assert!(before.iter().any(|r| r == "exploding_gradient"), "warnings before NaN: {before:?}");
}

#[test]
fn f64_run_trains_and_stays_silent() {
    let spec = Spec { dtype: DType::F64, epochs: 25, ..Spec::default() };
    let run = train(&spec).expect("training runs");
    assert!(run.val_accuracy >= 0.9, "validation accuracy {}", run.val_accuracy);
    assert_eq!(run.report.health.total_warnings, 0, "warnings: {:?}", run.warning_rules());
}
