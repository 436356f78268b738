//! The observer contract: hook order, shapes, fan-out, and the logger bridge.

use std::sync::{Arc, Mutex};

use obs_core::{Backend, BackendError, Event, EventType, LogLevel, TrainingLogger};
use obs_testkit::{
    BatchReport, EpochReport, History, LayerInfo, LoggerObserver, RunConfig, Scenario, TensorView,
    TrainObserver, TrainOutcome, train,
};

/// Records every hook as a short string.
#[derive(Debug, Default)]
struct Trace(Vec<String>);

impl TrainObserver for Trace {
    fn train_start(&mut self, _c: &RunConfig, layers: &[LayerInfo]) {
        self.0.push(format!("train_start {}", layers.len()));
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.0.push(format!("epoch_start {epoch}"));
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        self.0.push(format!("batch_start {epoch} {batch}"));
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        self.0.push(format!("forward {} {:?}", layer.name, output.shape()));
    }
    fn layer_backward(&mut self, layer: &LayerInfo, grad: TensorView<'_>) {
        self.0.push(format!("backward {} {:?}", layer.name, grad.shape()));
    }
    fn weight_updated(&mut self, layer: &LayerInfo, w: TensorView<'_>, _u: f64) {
        self.0.push(format!("update {} {:?}", layer.name, w.shape()));
    }
    fn batch_end(&mut self, r: &BatchReport) {
        self.0.push(format!("batch_end {} {}", r.epoch, r.batch));
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        self.0.push(format!("epoch_end {}", r.epoch));
    }
    fn train_end(&mut self, o: &TrainOutcome) {
        self.0.push(format!("train_end {}", o.epochs_run));
    }
}

fn small() -> RunConfig {
    RunConfig {
        epochs: 2,
        train_samples: 40,
        val_samples: 10,
        batch_size: 32,
        hidden: vec![(4, obs_testkit::Activation::Relu), (3, obs_testkit::Activation::Tanh)],
        ..RunConfig::for_scenario(Scenario::Healthy)
    }
}

#[test]
fn hooks_come_in_the_documented_order_with_the_documented_shapes() {
    let mut trace = Trace::default();
    let out = train(&small(), &mut trace);
    assert_eq!(out.epochs_run, 2);
    let batch = |e: u64, b: u64, rows: usize| {
        vec![
            format!("batch_start {e} {b}"),
            format!("forward dense_0 [{rows}, 4]"),
            format!("forward dense_1 [{rows}, 3]"),
            format!("forward dense_2 [{rows}, 2]"),
            "backward dense_2 [3, 2]".to_owned(),
            "backward dense_1 [4, 3]".to_owned(),
            "backward dense_0 [2, 4]".to_owned(),
            "update dense_0 [2, 4]".to_owned(),
            "update dense_1 [4, 3]".to_owned(),
            "update dense_2 [3, 2]".to_owned(),
            format!("batch_end {e} {b}"),
        ]
    };
    let mut expected = vec!["train_start 3".to_owned()];
    for e in 0..2 {
        expected.push(format!("epoch_start {e}"));
        expected.extend(batch(e, 0, 32));
        expected.extend(batch(e, 1, 8));
        expected.push(format!("epoch_end {e}"));
    }
    expected.push("train_end 2".to_owned());
    assert_eq!(trace.0, expected);
}

#[test]
fn fan_out_reaches_every_observer_in_order() {
    let (mut a, mut b) = (History::new(), Trace::default());
    let mut boxed: Vec<Box<dyn TrainObserver>> = vec![Box::new(History::new())];
    train(&small(), &mut ((&mut a, &mut b), &mut boxed));
    assert_eq!(a.batches.len(), 4);
    assert_eq!(a.epochs.len(), 2);
    assert!(a.outcome.is_some());
    assert_eq!(b.0.len(), 1 + 2 * (2 + 2 * 11) + 1);
    let mut unit = ();
    train(&small(), &mut unit);
}

#[test]
fn batch_reports_name_every_layer_and_match_the_gradients() {
    let mut h = History::new();
    train(&small(), &mut h);
    for b in &h.batches {
        let names: Vec<&str> = b.grad_norms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["dense_0", "dense_1", "dense_2"]);
        assert!(b.grad_norms.iter().all(|(_, g)| g.is_finite() && *g > 0.0));
        assert!((0.0..=1.0).contains(&b.accuracy));
    }
}

#[test]
fn degenerate_configs_do_not_panic() {
    let mut c = small();
    c.train_samples = 0;
    c.val_samples = 0;
    c.batch_size = 0;
    let mut h = History::new();
    let out = train(&c, &mut h);
    assert!(h.batches.is_empty());
    assert!(out.final_train_loss.is_nan() && out.final_val_loss.is_nan());
    assert!(!out.diverged);
    let mut c = small();
    c.hidden.clear();
    c.epochs = 0;
    let out = train(&c, &mut h);
    assert_eq!(out.epochs_run, 0);
}

#[test]
fn scenario_names_round_trip() {
    for s in Scenario::ALL {
        assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        assert_eq!(s.to_string(), s.name());
        assert_eq!(s.is_healthy(), s.expected_onset().is_none());
    }
    let err = "Healthy".parse::<Scenario>().expect_err("names are exact");
    assert!(err.to_string().contains("healthy-tanh"), "{err}");
}

/// Collects events on the bus thread.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl Backend for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        self.0.lock().expect("not poisoned").extend_from_slice(events);
        Ok(())
    }
}

#[test]
fn logger_observer_forwards_every_hook() -> Result<(), Box<dyn std::error::Error>> {
    let logger = TrainingLogger::new(LogLevel::Expert)?;
    let sink = Collect::default();
    logger.add_backend(sink.clone())?;
    let mut obs = LoggerObserver::new(logger.clone());
    train(&small(), &mut obs);
    logger.close()?;
    let events = sink.0.lock().expect("not poisoned");
    let count = |t: EventType| events.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count(EventType::TrainStart), 1);
    assert_eq!(count(EventType::EpochStart), 2);
    assert_eq!(count(EventType::EpochEnd), 2);
    assert_eq!(count(EventType::BatchStart), 4);
    assert_eq!(count(EventType::BatchEnd), 4);
    assert_eq!(count(EventType::LayerForward), 12);
    assert_eq!(count(EventType::LayerBackward), 12);
    assert_eq!(count(EventType::GradientComputed), 12);
    assert_eq!(count(EventType::WeightUpdated), 12);
    assert_eq!(count(EventType::TrainEnd), 1);
    let start = &events[0];
    assert_eq!(
        start.data.path(&["model_info", "scenario"]).and_then(|v| v.as_str()),
        Some("healthy")
    );
    assert_eq!(
        start.data.path(&["model_info", "parameters"]).and_then(|v| v.as_u64()),
        Some(small().parameter_count() as u64)
    );
    let epoch_end = events.iter().find(|e| e.event_type == EventType::EpochEnd).expect("epoch");
    for k in ["loss", "val_loss", "accuracy", "val_accuracy"] {
        assert!(epoch_end.data.path(&["metrics", k]).is_some(), "{k}");
    }
    let batch_end = events.iter().find(|e| e.event_type == EventType::BatchEnd).expect("batch");
    assert!(batch_end.data.path(&["metrics", "loss"]).and_then(|v| v.as_f64()).is_some());
    assert_eq!(batch_end.batch, Some(0));
    let forward = events.iter().find(|e| e.event_type == EventType::LayerForward).expect("fwd");
    assert_eq!(forward.layer_name.as_deref(), Some("dense_0"));
    assert_eq!(forward.data.get("activation").and_then(|v| v.as_str()), Some("relu"));
    let update = events.iter().find(|e| e.event_type == EventType::WeightUpdated).expect("upd");
    assert!(update.data.get_f64("update_norm").is_some_and(|u| u > 0.0));
    Ok(())
}

#[test]
fn logger_observer_survives_a_diverging_run() -> Result<(), Box<dyn std::error::Error>> {
    let logger = TrainingLogger::new(LogLevel::Expert)?;
    let sink = Collect::default();
    logger.add_backend(sink.clone())?;
    let mut config = RunConfig::for_scenario(Scenario::NanDivergence);
    config.epochs = 4;
    let out = train(&config, &mut LoggerObserver::new(logger.clone()));
    assert!(out.diverged);
    logger.close()?;
    let events = sink.0.lock().expect("not poisoned");
    let critical = events.iter().filter(|e| e.severity == obs_core::Severity::Critical).count();
    assert!(critical > 0, "non-finite tensors are recorded as critical");
    for e in events.iter() {
        Event::from_ndjson(&e.to_ndjson())?;
    }
    Ok(())
}
