//! An attached logger receives every warning as a `health_check` event on every backend.

use std::sync::{Arc, Mutex};

use obs_core::{
    Backend, BackendError, Event, EventType, LogLevel, Severity, Tier, TrainingLogger, Value,
};
use obs_health::{AutoHealthWarnings, BatchInput, WarningConfig};

/// Keeps every event it receives.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Backend for Recorder {
    fn name(&self) -> &str {
        "test.recorder"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

#[test]
fn every_warning_reaches_every_backend() {
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    let (a, b) = (Recorder::default(), Recorder::default());
    logger.add_backend(a.clone()).unwrap();
    logger.add_backend(b.clone()).unwrap();
    let mut engine =
        AutoHealthWarnings::new(WarningConfig::default()).unwrap().with_logger(logger.clone());

    let mut returned =
        engine.check_batch(&BatchInput::new(4, 9).loss(0.5).gradient_norms(&[("dense_0", 250.0)]));
    returned.extend(engine.check_batch(&BatchInput::new(4, 10).loss(f64::NAN)));
    let returned_epoch = engine.check_epoch(4, f64::INFINITY, None);
    assert_eq!(returned.len() + returned_epoch.len(), 3);
    logger.flush().unwrap();

    for backend in [a, b] {
        let events = backend.0.lock().unwrap().clone();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.event_type == EventType::HealthCheck));
        assert!(events.iter().all(|e| e.tier() == Tier::Health && e.level == LogLevel::Basic));
        let exploding = &events[0];
        assert_eq!(exploding.layer_name.as_deref(), Some("dense_0"));
        assert_eq!(exploding.data.get_f64("grad_norm"), Some(250.0));
        assert!(exploding.data.get("recommendations").and_then(Value::as_list).is_some());
        assert_eq!(exploding.message, returned[0].message);
        let nan = &events[1];
        assert_eq!(nan.severity, Severity::Critical);
        assert_eq!((nan.epoch, nan.batch), (Some(4), Some(10)));
        assert_eq!(nan.data.get("rule_name").and_then(Value::as_str), Some("nan_inf_loss"));
        assert_eq!((events[2].epoch, events[2].batch), (Some(4), None));
    }
    assert_eq!(logger.summary().count(EventType::HealthCheck), 3);
    logger.close().unwrap();
}

#[test]
fn detached_or_silent_loggers_get_nothing_but_warnings_are_still_returned() {
    let logger = TrainingLogger::new(LogLevel::Silent).unwrap();
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    let mut config = WarningConfig::default();
    config.dedup_batches = 0;
    let mut engine = AutoHealthWarnings::new(config).unwrap();
    engine.attach(logger.clone());
    assert_eq!(engine.check_batch(&BatchInput::new(0, 0).loss(f64::NAN)).len(), 1);
    let detached = engine.detach().expect("was attached");
    logger.set_level(LogLevel::Basic);
    assert_eq!(engine.check_batch(&BatchInput::new(0, 100).loss(f64::NAN)).len(), 1);
    detached.flush().unwrap();
    assert!(rec.0.lock().unwrap().is_empty());
    logger.close().unwrap();
}
