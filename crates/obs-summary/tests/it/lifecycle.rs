//! Epoch order, errors, reset and the logger attachment.

use std::sync::{Arc, Mutex};

use obs_core::{
    Backend, BackendError, Event, EventType, LogLevel, Severity, Tier, TrainingLogger, Value,
};
use obs_summary::{EpochSummarizer, SummaryError};

#[test]
fn finalize_twice_unknown_and_empty_epochs_are_errors() {
    let mut s = EpochSummarizer::new();
    assert_eq!(s.finalize_epoch(0), Err(SummaryError::NoBatches { epoch: 0 }));
    s.record_batch(0, &[("loss", 1.0)], &[]).expect("record");
    assert_eq!(s.finalize_epoch(1), Err(SummaryError::NoBatches { epoch: 1 }));
    assert_eq!(s.current_epoch(), Some(0), "a failed finalize changes nothing");
    let first = s.finalize_epoch(0).expect("finalize");
    assert_eq!(s.finalize_epoch(0), Err(SummaryError::AlreadyFinalized { epoch: 0 }));
    assert_eq!(s.get_all_summaries(), std::slice::from_ref(&first));
    assert_eq!(s.current_epoch(), None);
    let e = SummaryError::AlreadyFinalized { epoch: 0 };
    assert_eq!(e.to_string(), "epoch 0 was already finalized");
}

#[test]
fn epochs_must_not_go_backwards() {
    let mut s = EpochSummarizer::new();
    s.record_batch(3, &[("loss", 1.0)], &[]).expect("record");
    assert_eq!(
        s.record_batch(2, &[("loss", 9.0)], &[]),
        Err(SummaryError::EpochOutOfOrder { epoch: 2, latest: 3 })
    );
    s.finalize_epoch(3).expect("finalize");
    assert_eq!(
        s.record_batch(3, &[("loss", 9.0)], &[]),
        Err(SummaryError::AlreadyFinalized { epoch: 3 })
    );
    assert_eq!(
        s.record_batch(1, &[("loss", 9.0)], &[]),
        Err(SummaryError::EpochOutOfOrder { epoch: 1, latest: 3 })
    );
    let summary = s.summary(3).expect("kept");
    assert_eq!(summary.batches, 1);
    assert_eq!(summary.metric("loss").map(|m| m.max), Some(1.0), "refused values not recorded");
}

#[test]
fn recording_a_later_epoch_finalizes_the_one_in_progress() {
    let mut s = EpochSummarizer::new();
    s.record_batch(0, &[("loss", 1.0)], &[("dense_0", 0.5)]).expect("record");
    s.record_batch(0, &[("loss", 3.0)], &[("dense_0", 0.5)]).expect("record");
    s.record_batch(2, &[("val", 7.0)], &[]).expect("skipping epochs is allowed");
    assert_eq!(s.current_epoch(), Some(2));
    let auto = s.summary(0).expect("auto-finalized");
    assert_eq!(auto.batches, 2);
    assert_eq!(auto.metric("loss").map(|m| m.mean), Some(2.0));
    assert_eq!(s.finalize_epoch(0), Err(SummaryError::AlreadyFinalized { epoch: 0 }));
    let two = s.finalize_epoch(2).expect("finalize");
    // Names not recorded in an epoch do not appear in its summary.
    assert!(two.metric("loss").is_none());
    assert!(two.gradient_norms.is_empty());
    assert_eq!(two.metric("val").map(|m| m.count), Some(1));
    let epochs: Vec<u64> = s.get_all_summaries().iter().map(|x| x.epoch).collect();
    assert_eq!(epochs, [0, 2]);
    assert_eq!(s.finalize_epoch(1), Err(SummaryError::NoBatches { epoch: 1 }));
}

#[test]
fn reset_forgets_everything() {
    let mut s = EpochSummarizer::new();
    s.record_batch(4, &[("loss", 1.0)], &[]).expect("record");
    s.finalize_epoch(4).expect("finalize");
    s.record_batch(5, &[("loss", 1.0)], &[]).expect("record");
    s.reset();
    assert!(s.get_all_summaries().is_empty());
    assert_eq!(s.current_epoch(), None);
    s.record_batch(0, &[("loss", 2.0)], &[]).expect("epoch 0 again after reset");
    assert_eq!(s.finalize_epoch(0).expect("finalize").metric("loss").map(|m| m.mean), Some(2.0));
}

#[test]
fn statistics_are_population_moments_over_finite_values() {
    let mut s = EpochSummarizer::new();
    for v in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, f64::INFINITY] {
        s.record_batch(0, &[("x", v)], &[]).expect("record");
    }
    let x = *s.finalize_epoch(0).expect("finalize").metric("x").expect("x");
    assert_eq!((x.mean, x.std, x.min, x.max, x.count, x.non_finite), (5.0, 2.0, 2.0, 9.0, 8, 1));
}

#[test]
fn odd_names_and_repeated_names_in_one_batch() {
    let mut s = EpochSummarizer::new();
    s.record_batch(0, &[("", 1.0), ("λ loss", 2.0), ("", 3.0)], &[]).expect("record");
    let summary = s.finalize_epoch(0).expect("finalize");
    assert_eq!(summary.metric("").map(|m| (m.count, m.mean)), Some((2, 2.0)));
    assert_eq!(summary.metric("λ loss").map(|m| m.count), Some(1));
    assert!(summary.format_text().contains("    λ loss                mean=2.000000"));
}

#[derive(Clone, Default)]
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
fn attached_logger_receives_each_finalized_summary() -> Result<(), Box<dyn std::error::Error>> {
    let logger = TrainingLogger::new(LogLevel::Basic)?;
    let sink = Collect::default();
    logger.add_backend(sink.clone())?;
    let mut s = EpochSummarizer::new().with_logger(logger.clone());
    s.record_batch(0, &[("loss", 0.5)], &[("dense_0", 0.1)])?;
    s.finalize_epoch(0)?;
    s.record_batch(1, &[("loss", f64::NAN)], &[])?;
    s.record_batch(2, &[("loss", 0.25)], &[])?; // finalizes epoch 1 on the way
    assert!(s.finalize_epoch(1).is_err(), "errors emit nothing");
    s.finalize_epoch(2)?;
    logger.close()?;
    let events = sink.0.lock().expect("not poisoned");
    assert_eq!(events.len(), 3);
    for (e, epoch) in events.iter().zip(0u64..) {
        assert_eq!(e.event_type, EventType::EpochSummary);
        assert_eq!(e.level, LogLevel::Basic);
        assert_eq!(e.epoch, Some(epoch));
        assert_eq!(e.batch, None);
        assert_eq!(e.message, format!("Epoch {epoch} summary (1 batches)"));
        assert_eq!(e.data.path(&["summary", "epoch"]).and_then(Value::as_u64), Some(epoch));
        assert!(e.data.get("metrics").is_none(), "not mistaken for the epoch's metrics");
        let line = e.to_ndjson();
        assert_eq!(&Event::from_ndjson(&line)?, e);
    }
    assert_eq!(events[0].severity, Severity::Info);
    assert_eq!(events[0].tier(), Tier::Basic);
    assert_eq!(events[1].severity, Severity::Warning, "non-finite values are flagged");
    assert_eq!(
        events[1].data.path(&["summary", "metrics", "loss", "non_finite"]).and_then(Value::as_u64),
        Some(1)
    );
    Ok(())
}
