//! Bad input gets a clear error, never a panic.

use std::sync::Arc;

use burn::tensor::{Device, Tensor};
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{MetricsUpdate, NumericMetricUpdate, Split};
use burn::train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericEntry, SerializedEntry,
};
use obs_burn::{Error, Session};
use obs_core::Activation;

fn session() -> Session {
    Session::builder().fingerprint(false).build(&Device::flex()).expect("a session")
}

#[test]
fn empty_tensor_is_refused() {
    let session = session();
    let empty = Tensor::<2>::zeros([0, 4], &Device::flex());
    let err = session.probe().layer(0, "dense_0", &empty, Activation::Relu).unwrap_err();
    assert!(matches!(err, Error::Empty { ref shape, .. } if shape == &[0, 4]), "{err}");
    assert!(err.to_string().contains("no elements"), "{err}");
    let err = obs_burn::host_stats("x", &empty, Activation::Relu).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }));
}

#[test]
fn odd_names_are_normalised_or_refused() {
    let mut session = session();
    let probe = session.probe();
    let t = Tensor::<2>::ones([2, 3], &Device::flex());
    let err = probe.layer(0, " -- ", &t, Activation::Relu).unwrap_err();
    assert!(matches!(err, Error::BadName { what: "layer", .. }), "{err}");
    assert!(err.to_string().contains("letters or digits"), "{err}");
    session.train_start(1);
    session.epoch_start(1);
    probe.layer(0, "Dense 0", &t, Activation::Relu).expect("a usable name");
    let err = probe.layer(1, "dense-0", &t, Activation::Relu).unwrap_err();
    assert!(matches!(err, Error::DuplicateLayer { ref name, step: 0 } if name == "dense_0"));
    let err = session.record_step(Some(1.0), &[("!!", 2.0)]).unwrap_err();
    assert!(matches!(err, Error::BadName { what: "metric", .. }), "{err}");
    let step = session.record_step(Some(1.0), &[("Top-1 Accuracy", 0.5)]).expect("a step");
    assert_eq!(&*step.activations[0].0, "dense_0");
    assert!(step.metrics.iter().any(|(n, v)| &**n == "top_1_accuracy" && *v == 0.5));
}

#[test]
fn nan_loss_and_nan_activations_are_findings_not_panics() {
    let mut session = session();
    let probe = session.probe();
    session.train_start(1);
    session.epoch_start(1);
    let nan = Tensor::<2>::from_floats([[f32::NAN, 1.0], [0.5, 2.0]], &Device::flex());
    probe.layer(0, "dense_0", &nan, Activation::Relu).expect("NaN is data, not an error");
    let step = session.record_step(Some(f64::NAN), &[]).expect("a step");
    let rules: Vec<&str> = step.warnings.iter().map(|w| w.rule_name.as_str()).collect();
    assert!(rules.contains(&"nan_inf_tensor"), "{rules:?}");
    assert!(rules.contains(&"nan_inf_loss"), "{rules:?}");
    let report = session.epoch_end(1, None, None, &[]).expect("the epoch ends");
    assert_eq!(report.epoch, 1);
    assert!(session.finish(&[]).expect("closes").errors.is_empty());
}

#[test]
fn hooks_out_of_order_are_order_errors() {
    let mut session = session();
    let err = session.record_step(Some(1.0), &[]).unwrap_err();
    assert!(matches!(err, Error::Order(_)), "{err}");
    let err = session.epoch_end(3, Some(1.0), None, &[]).unwrap_err();
    assert!(matches!(err, Error::Order(_)), "{err}");
    session.epoch_start(1);
    let err = session.epoch_end(1, None, None, &[]).unwrap_err();
    assert!(matches!(err, Error::Summary(_)), "an epoch without batches: {err}");
}

fn definition(id: &str, name: &str) -> MetricDefinition {
    MetricDefinition {
        metric_id: MetricId::new(Arc::new(id.to_owned())),
        name: Arc::new(name.to_owned()),
        description: None,
        attributes: MetricAttributes::None,
    }
}

/// One update of burn's, with an entry per metric.
fn update(entries: &[(&str, NumericEntry)]) -> MetricsUpdate {
    let numeric = entries
        .iter()
        .map(|(id, entry)| {
            let serialized =
                SerializedEntry::new(format!("{}", entry.current()), entry.serialize());
            NumericMetricUpdate::new(
                MetricEntry::new(MetricId::new(Arc::new((*id).to_owned())), serialized),
                Some(entry.clone()),
                None,
            )
        })
        .collect();
    MetricsUpdate::new(Vec::new(), numeric)
}

#[test]
fn the_metric_logger_reports_unusable_names_and_reads_back_what_it_kept() {
    let session = session();
    let mut logger = session.metric_logger();
    logger.log_metric_definition(definition("loss", "Loss"));
    logger.log_metric_definition(definition("odd", "%%"));
    for value in [2.0, 1.0] {
        let loss = NumericEntry::Aggregated { aggregated_value: value, count: 4 };
        logger.log(
            update(&[("loss", loss), ("odd", NumericEntry::Value(value))]),
            1,
            &Split::Train,
        );
    }
    logger.log(update(&[("loss", NumericEntry::Value(1.25))]), 1, &Split::Valid);
    // burn's end-of-epoch update carries final values only: it is not a step.
    logger.log(update(&[("loss", NumericEntry::Final(1.5))]), 1, &Split::Train);
    let back = logger.read_numeric("Loss", 1, &Split::Train).expect("kept");
    assert_eq!(back.len(), 3);
    assert_eq!(back[1].current(), 1.0);
    assert!(matches!(back[2], NumericEntry::Final(_)));
    assert!(logger.read_numeric("Loss", 2, &Split::Train).expect("nothing").is_empty());
    logger.log_epoch_summary(burn::train::metric::store::EpochSummary::new(1, Split::Valid));
    let report = session.finish(&[]).expect("closes");
    assert_eq!(report.steps.len(), 2);
    assert_eq!(report.epochs.len(), 1);
    assert_eq!(report.epochs[0].val_loss, Some(1.25));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(matches!(report.errors[0], Error::BadName { what: "metric", .. }));
}
