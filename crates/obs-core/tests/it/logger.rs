//! The logger hooks: level gate, stamping, tensors, callbacks, summary.

use std::sync::{Arc, Mutex};

use obs_core::{
    Activation, EventType, LogLevel, Severity, TensorError, TensorView, Tier, TrainingLogger, data,
};

use crate::support::Recorder;

fn logger_with(level: LogLevel) -> (TrainingLogger, Recorder) {
    let logger = TrainingLogger::new(level).unwrap();
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    (logger, rec)
}

#[test]
fn the_level_gate_filters_by_detail() {
    let acts = [1.0f32, 0.0];
    for (level, expected) in [
        (LogLevel::Silent, 0),
        (LogLevel::Basic, 4),
        (LogLevel::Detailed, 7),
        (LogLevel::Expert, 8),
        (LogLevel::Debug, 8),
    ] {
        let (logger, rec) = logger_with(level);
        logger.on_train_start(1, data! {});
        logger.on_epoch_start(0);
        logger.on_batch_start(0);
        logger.on_layer_forward(0, "d", TensorView::flat(&acts[..]), Activation::Relu).unwrap();
        logger.on_gradient_computed("d", 0.5);
        logger.on_batch_end(0, data! { "loss" => 1.0 });
        logger.on_epoch_end(0, data! { "loss" => 1.0 });
        logger.on_train_end(data! {});
        logger.close().unwrap();
        assert_eq!(rec.len(), expected, "{level}");
        assert_eq!(logger.summary().total, expected as u64);
    }
}

#[test]
fn every_event_carries_the_current_epoch_and_batch() {
    let (logger, rec) = logger_with(LogLevel::Expert);
    logger.on_epoch_start(3);
    logger.on_batch_start(7);
    let worker = logger.clone();
    std::thread::spawn(move || {
        let g = [0.1f64, -0.2, 0.3];
        worker.on_layer_backward(1, "dense_1", TensorView::flat(&g[..])).unwrap();
        worker.on_health_check(Severity::Warning, "odd", Some("dense_1"), data! {});
    })
    .join()
    .unwrap();
    logger.on_batch_end(7, data! {});
    logger.on_epoch_end(3, data! {});
    logger.close().unwrap();
    let events = rec.snapshot();
    for e in &events[..events.len() - 1] {
        assert_eq!(e.epoch, Some(3), "{:?}", e.event_type);
    }
    let layer = events.iter().find(|e| e.event_type == EventType::LayerBackward).unwrap();
    assert_eq!((layer.batch, layer.layer_index), (Some(7), Some(1)));
    let health = events.iter().find(|e| e.event_type == EventType::HealthCheck).unwrap();
    assert_eq!((health.batch, health.layer_name.as_deref()), (Some(7), Some("dense_1")));
    assert_eq!(health.tier(), Tier::Health);
    let end = events.last().unwrap();
    assert_eq!((end.event_type, end.batch), (EventType::EpochEnd, None));
    assert!(end.data.get_f64("duration_s").unwrap() >= 0.0);
}

#[test]
fn bad_tensors_are_errors_and_non_finite_data_is_flagged() {
    let (logger, rec) = logger_with(LogLevel::Expert);
    let data = [1.0f32, 2.0, 3.0];
    assert!(matches!(
        TensorView::new(&data[..], &[2, 2]),
        Err(TensorError::ShapeMismatch { len: 3, .. })
    ));
    assert!(matches!(
        TensorView::new(&data[..], &[usize::MAX, 2]),
        Err(TensorError::ShapeOverflow { .. })
    ));
    let empty: [f32; 0] = [];
    assert_eq!(
        logger.on_layer_forward(0, "x", TensorView::flat(&empty[..]), Activation::Relu),
        Err(TensorError::Empty)
    );
    let bad = [f32::NAN, f32::INFINITY, 1.0, 0.0];
    let stats = logger
        .on_layer_forward(
            0,
            "weird </name> ✓",
            TensorView::new(&bad[..], &[2, 2]).unwrap(),
            Activation::Tanh,
        )
        .unwrap()
        .unwrap();
    assert_eq!((stats.nan, stats.inf, stats.zeros), (1, 1, 1));
    logger.on_gradient_computed("x", f64::NAN);
    logger.close().unwrap();
    let events = rec.snapshot();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.severity == Severity::Critical));
    // Non-finite numbers survive as valid JSON.
    for e in &events {
        let line = e.to_ndjson();
        assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok(), "{line}");
        assert_eq!(&obs_core::Event::from_ndjson(&line).unwrap(), e);
    }
}

#[test]
fn callbacks_see_their_event_type_only() {
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    logger.on(EventType::EpochEnd, move |e| s.lock().unwrap().push(e.epoch)).unwrap();
    logger.on(EventType::BatchEnd, |_| panic!("callback bug")).unwrap();
    for epoch in 0..3 {
        logger.on_epoch_start(epoch);
        logger.on_batch_end(0, data! {});
        logger.on_epoch_end(epoch, data! {});
    }
    let report = logger.close().unwrap();
    assert_eq!(*seen.lock().unwrap(), [Some(0), Some(1), Some(2)]);
    assert!(report.failures.iter().any(|f| f.panicked && f.backend == "callback.batch_end"));
}

#[test]
fn summary_counts_by_type_and_severity_without_keeping_events() {
    let (logger, _rec) = logger_with(LogLevel::Detailed);
    logger.on_train_start(2, data! {});
    for e in 0..2 {
        logger.on_epoch_start(e);
        for b in 0..10 {
            logger.on_batch_end(b, data! { "loss" => 0.5 });
        }
        logger.on_epoch_end(e, data! {});
    }
    logger.on_health_check(Severity::Danger, "bad", None, data! {});
    logger.on_train_end(data! {});
    let s = logger.summary();
    assert_eq!(s.count(EventType::BatchEnd), 20);
    assert_eq!(s.count(EventType::EpochStart), 2);
    assert_eq!(s.count(EventType::LayerForward), 0);
    assert_eq!(s.count_severity(Severity::Danger), 1);
    assert_eq!(s.count_severity(Severity::Success), 1);
    assert_eq!(s.total, 1 + 2 + 20 + 2 + 1 + 1);
}

#[test]
fn set_level_applies_to_every_handle() {
    let (logger, rec) = logger_with(LogLevel::Basic);
    let other = logger.clone();
    other.on_batch_end(0, data! {});
    logger.set_level(LogLevel::Detailed);
    other.on_batch_end(1, data! {});
    logger.close().unwrap();
    assert_eq!(rec.snapshot().iter().map(|e| e.batch).collect::<Vec<_>>(), [Some(1)]);
}

#[test]
fn batch_end_built_on_the_bus_thread_is_the_documented_event_in_order() {
    let (logger, rec) = logger_with(LogLevel::Expert);
    logger.on_epoch_start(2);
    let before = obs_core::unix_now();
    for b in 0..50u64 {
        logger.on_gradient_computed("dense_0", b as f64);
        logger.on_batch_end(b, data! { "loss" => 1.0 / (b + 1) as f64, "acc" => 0.5 });
    }
    let after = obs_core::unix_now();
    logger.close().unwrap();
    let events = rec.snapshot();
    let ends: Vec<_> = events.iter().filter(|e| e.event_type == EventType::BatchEnd).collect();
    assert_eq!(ends.len(), 50);
    for (b, e) in ends.iter().enumerate() {
        assert_eq!((e.level, e.severity), (LogLevel::Detailed, Severity::Info));
        assert_eq!((e.epoch, e.batch), (Some(2), Some(b as u64)));
        assert!(
            (before..=after).contains(&e.timestamp),
            "{} not in [{before}, {after}]",
            e.timestamp
        );
        assert_eq!(e.data.len(), 1);
        assert_eq!(
            e.data.path(&["metrics", "loss"]).and_then(|v| v.as_f64()),
            Some(1.0 / (b + 1) as f64)
        );
        assert_eq!(e.data.path(&["metrics", "acc"]).and_then(|v| v.as_f64()), Some(0.5));
        assert!(e.layer_name.is_none() && e.message.is_empty());
    }
    // Gradient and batch events from one thread stay interleaved as sent.
    let kinds: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.event_type, EventType::GradientComputed | EventType::BatchEnd))
        .map(|e| e.event_type)
        .collect();
    let expected: Vec<_> =
        (0..50).flat_map(|_| [EventType::GradientComputed, EventType::BatchEnd]).collect();
    assert_eq!(kinds, expected);
    // Timestamps are stamped on the training thread, so they never go backwards.
    assert!(ends.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert_eq!(logger.summary().count(EventType::BatchEnd), 50);
}

#[test]
fn batch_end_after_close_is_rejected_and_counted() {
    let (logger, rec) = logger_with(LogLevel::Detailed);
    logger.close().unwrap();
    logger.on_batch_end(0, data! { "loss" => 1.0 });
    assert_eq!(rec.len(), 0);
    let s = logger.summary();
    assert_eq!((s.count(EventType::BatchEnd), s.rejected), (0, 1));
}

#[test]
fn a_ranked_logger_stamps_every_event_with_its_rank() {
    let logger = TrainingLogger::builder().level(LogLevel::Expert).rank(2, 4).build().unwrap();
    assert_eq!(logger.rank(), Some((2, 4)));
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    logger.on_train_start(1, data! {});
    logger.on_epoch_start(0);
    logger.on_batch_start(0);
    logger.on_gradient_computed("d", 0.5);
    logger.on_batch_end(0, data! { "loss" => 1.0 });
    logger.on_health_check(Severity::Warning, "odd", Some("d"), data! {});
    logger.on_epoch_end(0, data! { "loss" => 1.0 });
    logger.on_train_end(data! {});
    logger.close().unwrap();
    let events = rec.snapshot();
    assert!(events.iter().any(|e| e.event_type == EventType::BatchEnd));
    assert_eq!(events.len(), 8);
    for e in &events {
        assert_eq!((e.rank, e.world_size), (Some(2), Some(4)), "{e:?}");
        assert!(e.to_ndjson().ends_with(r#","rank":2,"world_size":4}"#));
    }
}

#[test]
fn an_unranked_logger_leaves_events_unranked() {
    let (logger, rec) = logger_with(LogLevel::Basic);
    assert_eq!(logger.rank(), None);
    logger.on_batch_end(0, data! { "loss" => 1.0 });
    logger.close().unwrap();
    assert!(rec.snapshot().iter().all(|e| e.rank.is_none() && e.world_size.is_none()));
}

#[test]
fn impossible_ranks_are_refused_with_a_clear_error() {
    for (rank, world, needle) in [(4, 4, "not below"), (0, 0, "at least 1"), (9, 2, "not below")] {
        let err = TrainingLogger::builder().rank(rank, world).build().unwrap_err();
        assert!(matches!(err, obs_core::BusError::InvalidRank(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(TrainingLogger::builder().rank(0, 1).build().is_ok());
}
