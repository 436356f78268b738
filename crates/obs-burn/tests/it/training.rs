//! Real burn training with the `Learner` on the Flex CPU backend, observed end to end.

use crate::support::{Opt, Spec, train};

#[test]
fn healthy_iris_run_is_silent() {
    let run = train(&Spec::default()).expect("training runs");
    assert!(run.val_accuracy >= 0.9, "validation accuracy {}", run.val_accuracy);
    assert!(run.report.errors.is_empty(), "{:?}", run.report.errors);
    assert_eq!(run.report.health.total_warnings, 0, "warnings: {:?}", run.warning_rules());
    assert_eq!(run.report.anomalies.total, 0, "anomalies: {:?}", run.report.anomalies.by_type);
    // 120 training flowers in batches of 16: 8 steps per epoch.
    assert_eq!(run.report.steps.len(), 30 * 8); // 120 flowers, batches of 16
    assert_eq!(run.report.epochs.len(), 30);
    for s in &run.report.steps {
        assert!(s.loss.is_some_and(f64::is_finite));
        assert_eq!(s.grad_norms.len(), 6, "{:?}", s.grad_norms);
        assert_eq!(s.update_norms.len(), 6);
        assert_eq!(s.activations.len(), 2);
    }
    let first = run.report.steps[0].loss.unwrap();
    let last = run.report.steps.last().unwrap().loss.unwrap();
    assert!(last < first / 3.0, "loss {first} -> {last}");
    assert!(run.report.epochs.iter().all(|e| e.val_loss.is_some_and(f64::is_finite)));
}

#[test]
fn a_run_with_an_output_directory_writes_every_file() {
    let out = tempfile::tempdir().expect("temp dir");
    let spec = Spec { epochs: 2, out_dir: Some(out.path().to_owned()), ..Spec::default() };
    let run = train(&spec).expect("training runs");
    assert!(run.report.close.failures.is_empty(), "{:?}", run.report.close.failures);
    let paths = run.report.paths.as_ref().expect("an output directory was given");
    for name in ["basic.log", "health.log", "debug.log", "fingerprint.json"] {
        assert!(paths.run_dir.join(name).is_file(), "{name} missing");
    }
    for path in [&paths.dashboard, &paths.tensorboard, &paths.wandb] {
        let path = path.as_ref().expect("every backend is on by default");
        assert!(path.exists(), "{} missing", path.display());
    }
    let fingerprint =
        std::fs::read_to_string(paths.run_dir.join("fingerprint.json")).expect("fingerprint");
    assert!(fingerprint.contains("obs-burn"), "{fingerprint}");
    assert!(fingerprint.contains("Flex"), "{fingerprint}");
    // One calm batch_end line per step keeps the loss chart complete, and both epochs end
    // with the validation loss burn computed.
    let debug = std::fs::read_to_string(paths.run_dir.join("debug.log")).expect("debug.log");
    let basic = std::fs::read_to_string(paths.run_dir.join("basic.log")).expect("basic.log");
    assert_eq!(debug.lines().filter(|l| l.contains("\"batch_end\"")).count(), 2 * 8);
    let epoch_ends: Vec<&str> = basic.lines().filter(|l| l.contains("\"epoch_end\"")).collect();
    assert_eq!(epoch_ends.len(), 2, "{epoch_ends:?}");
    assert!(epoch_ends.iter().all(|l| l.contains("val_loss") && l.contains("val_accuracy")));
}

#[test]
fn negative_bias_relu_net_is_reported_as_dying_relu() {
    // Standardised inputs and burn's default weights give small pre-activations: a bias of
    // -8 keeps every ReLU unit at zero for every sample.
    let run = train(&Spec { bias: Some(-8.0), epochs: 2, ..Spec::default() }).expect("runs");
    let step = &run.report.steps[0];
    let dead: Vec<&str> = step
        .warnings
        .iter()
        .filter(|w| w.rule_name == "dead_relu")
        .filter_map(|w| w.layer_name.as_deref())
        .collect();
    assert_eq!(dead, ["dense_0", "dense_1"], "first step warnings: {:?}", step.warnings);
    assert!(step.anomalies.iter().any(|a| a.trigger.as_str() == "dead_neurons"));
    let (_, stats) = &step.activations[0];
    assert_eq!(stats.dead_units_pct(), Some(100.0));
    assert!(run.report.anomalies.escalated_batches > 0);
}

/// A learning rate far too large for plain SGD: the loss explodes and becomes NaN.
fn huge_learning_rate() -> Spec {
    Spec { optimizer: Opt::Sgd, lr: 400.0, epochs: 10, batch_size: 10, ..Spec::default() }
}

#[test]
fn huge_learning_rate_is_reported_as_divergence_before_the_loss_blows_up() {
    // burn's cross-entropy is computed from log-softmax, so the loss of the exploding run
    // stays finite: it grows from about 1 to above 1e30 within a few steps instead. The
    // divergence must be reported before that step (and so before any NaN).
    let run = train(&huge_learning_rate()).expect("training runs");
    let losses: Vec<f64> = run.report.steps.iter().map(|s| s.loss.unwrap_or(f64::NAN)).collect();
    let blown = losses.iter().position(|l| !l.is_finite() || *l > 1e30).unwrap_or_else(|| {
        panic!("the loss never blew up: {losses:?}");
    });
    assert!(run.first_non_finite_loss().is_none_or(|nan| nan >= blown));
    let divergence = run.first_warning("loss_divergence");
    assert!(
        divergence.is_some_and(|d| d < blown),
        "loss_divergence at step {divergence:?}, loss above 1e30 at step {blown}; losses {losses:?}"
    );
}

#[test]
fn learner_without_a_probe_still_records_every_metric() {
    let run = train(&Spec { epochs: 3, probe: false, ..Spec::default() }).expect("runs");
    assert_eq!(run.report.steps.len(), 3 * 8);
    assert!(run.report.steps.iter().all(|s| s.grad_norms.is_empty() && s.activations.is_empty()));
    assert!(run.report.steps.iter().all(|s| s.loss.is_some()));
    assert_eq!(run.report.epochs.len(), 3);
    assert!(run.report.errors.is_empty(), "{:?}", run.report.errors);
}

#[test]
fn burns_early_stopping_reads_the_validation_loss_back_from_the_logger() {
    // With a learning rate of 0 the validation loss never improves after epoch 1: burn's
    // early stopping, which finds the loss through the logger's `read_numeric`, stops after
    // epoch 2 of 10. Had the logger returned nothing, burn would have trained all 10.
    let spec = Spec { epochs: 10, lr: 0.0, early_stopping: Some(1), ..Spec::default() };
    let run = train(&spec).expect("training runs");
    assert_eq!(
        run.report.epochs.len(),
        2,
        "epochs {:?}",
        run.report.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>()
    );
    assert_eq!(run.report.steps.len(), 2 * 8);
    let (v1, v2) = (run.report.epochs[0].val_loss, run.report.epochs[1].val_loss);
    assert!(v1.is_some() && v1 == v2, "{v1:?} {v2:?}");
}
