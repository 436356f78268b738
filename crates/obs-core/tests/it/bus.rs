//! The event bus: ordering, flush, close, failures, back-pressure.

use std::collections::HashMap;
use std::time::Duration;

use obs_core::bus::Operation;
use obs_core::{BusError, EventType, LogLevel, Severity, TrainingLogger, data};

use crate::support::{Failing, Panicking, Recorder};

#[test]
fn flush_returns_after_every_earlier_event_is_written() {
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    let rec = Recorder::slow(Duration::from_millis(2));
    logger.add_backend(rec.clone()).unwrap();
    for b in 0..500 {
        logger.on_batch_end(b, data! { "loss" => 1.0 });
    }
    logger.flush().unwrap();
    assert_eq!(rec.len(), 500);
    assert_eq!(*rec.flushes.lock().unwrap(), 1);
    let batches: Vec<u64> = rec.snapshot().iter().map(|e| e.batch.unwrap()).collect();
    assert_eq!(batches, (0..500).collect::<Vec<_>>());
}

#[test]
fn close_twice_returns_the_same_report_and_refuses_later_events() {
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    logger.on_epoch_start(0);
    let first = logger.close().unwrap();
    let second = logger.close().unwrap();
    assert_eq!(first, second);
    assert_eq!(first.backends.len(), 1);
    assert_eq!(first.backends[0].events, 1);
    assert_eq!(*rec.closes.lock().unwrap(), 1, "close is called exactly once");
    logger.on_epoch_start(1);
    assert_eq!(logger.summary().rejected, 1);
    assert!(matches!(logger.flush(), Err(BusError::Closed)));
    assert!(matches!(logger.add_backend(Recorder::default()), Err(BusError::Closed)));
    assert_eq!(rec.len(), 1);
}

#[test]
fn dropping_the_last_handle_writes_everything() {
    let rec = Recorder::slow(Duration::from_millis(1));
    {
        let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
        logger.add_backend(rec.clone()).unwrap();
        let clone = logger.clone();
        for b in 0..300 {
            clone.on_batch_end(b, data! {});
        }
    }
    assert_eq!(rec.len(), 300);
    assert_eq!(*rec.closes.lock().unwrap(), 1);
}

#[test]
fn a_panic_unwinding_through_the_training_loop_loses_nothing() {
    let rec = Recorder::default();
    let r = rec.clone();
    let result = std::panic::catch_unwind(move || {
        let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
        logger.add_backend(r).unwrap();
        for e in 0..10 {
            logger.on_epoch_start(e);
        }
        panic!("training loop crashed");
    });
    assert!(result.is_err());
    assert_eq!(rec.len(), 10);
    assert_eq!(*rec.closes.lock().unwrap(), 1);
}

#[test]
fn an_erroring_backend_is_reported_and_the_others_keep_receiving() {
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    let rec = Recorder::default();
    logger.add_backend(Failing).unwrap();
    logger.add_backend(rec.clone()).unwrap();
    for e in 0..5 {
        logger.on_epoch_start(e);
    }
    let Err(BusError::Backends(failures)) = logger.flush() else { panic!("flush must report") };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].backend, "test.failing");
    assert_eq!(failures[0].operation, Operation::Write);
    assert!(failures[0].message.contains("disk full"), "{}", failures[0].message);
    assert!(!failures[0].panicked);
    // The healthy backend got all five events plus one health notice about the failure.
    let events = rec.snapshot();
    assert_eq!(events.iter().filter(|e| e.event_type == EventType::EpochStart).count(), 5);
    let notices: Vec<_> =
        events.iter().filter(|e| e.event_type == EventType::HealthCheck).collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].severity, Severity::Danger);
    assert!(notices[0].message.contains("test.failing"));
    // Reported once: the next flush with no new failure is clean... until it fails again.
    logger.on_epoch_start(9);
    assert!(logger.flush().is_err());
    let report = logger.close().unwrap();
    let failing = report.backends.iter().find(|b| b.name == "test.failing").unwrap();
    assert!(failing.errors >= 2);
}

#[test]
fn a_panicking_backend_is_disabled_and_the_others_carry_on() {
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    let rec = Recorder::default();
    logger.add_backend(Panicking).unwrap();
    logger.add_backend(rec.clone()).unwrap();
    logger.on_epoch_start(0);
    let Err(BusError::Backends(failures)) = logger.flush() else { panic!("flush must report") };
    assert!(failures[0].panicked);
    assert!(failures[0].message.contains("backend exploded"));
    for e in 1..20 {
        logger.on_epoch_start(e);
    }
    logger.flush().unwrap();
    let report = logger.close().unwrap();
    assert!(report.backends[0].panicked);
    assert_eq!(report.backends[0].errors, 1, "a disabled backend is not called again");
    let starts = rec.snapshot().iter().filter(|e| e.event_type == EventType::EpochStart).count();
    assert_eq!(starts, 20);
}

#[test]
fn four_threads_lose_nothing_and_keep_their_order() {
    let logger = TrainingLogger::builder().level(LogLevel::Basic).capacity(64).build().unwrap();
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    let per_thread = 5_000u64;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let l = logger.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    l.on_health_check(Severity::Info, "tick", None, data! { "t" => t, "i" => i });
                }
            });
        }
    });
    logger.close().unwrap();
    let events = rec.snapshot();
    assert_eq!(events.len() as u64, 4 * per_thread);
    let mut next: HashMap<u64, u64> = HashMap::new();
    for e in &events {
        let t = e.data.get("t").and_then(|v| v.as_u64()).unwrap();
        let i = e.data.get("i").and_then(|v| v.as_u64()).unwrap();
        let expected = next.entry(t).or_insert(0);
        assert_eq!(i, *expected, "thread {t} out of order");
        *expected += 1;
    }
}

#[test]
fn a_full_queue_blocks_basic_events_and_never_drops_them() {
    let logger = TrainingLogger::builder()
        .level(LogLevel::Debug)
        .capacity(1)
        .batch_size(1)
        .drop_debug_when_full(true)
        .build()
        .unwrap();
    let rec = Recorder::slow(Duration::from_micros(200));
    logger.add_backend(rec.clone()).unwrap();
    for e in 0..200 {
        logger.on_epoch_start(e);
    }
    logger.flush().unwrap();
    let summary = logger.summary();
    assert_eq!(summary.dropped, 0);
    assert_eq!(rec.len(), 200);
}

#[test]
fn opted_in_debug_drops_are_counted_exactly_and_reported() {
    let logger = TrainingLogger::builder()
        .level(LogLevel::Debug)
        .capacity(1)
        .batch_size(1)
        .drop_debug_when_full(true)
        .build()
        .unwrap();
    let rec = Recorder::slow(Duration::from_micros(500));
    logger.add_backend(rec.clone()).unwrap();
    let sent = 2_000u64;
    for b in 0..sent {
        logger.on_batch_end(b, data! { "loss" => 0.1 });
    }
    logger.flush().unwrap();
    let summary = logger.summary();
    let events = rec.snapshot();
    let received = events.iter().filter(|e| e.event_type == EventType::BatchEnd).count() as u64;
    assert!(summary.dropped > 0, "a slow backend behind a queue of 1 must force drops");
    assert_eq!(received + summary.dropped, sent);
    assert_eq!(summary.count(EventType::BatchEnd), received);
    let notice = events
        .iter()
        .find(|e| e.data.get("rule_name").and_then(|v| v.as_str()) == Some("events_dropped"))
        .expect("drops are reported to the backends");
    assert_eq!(notice.data.get("dropped_total").and_then(|v| v.as_u64()), Some(summary.dropped));
}

#[test]
fn without_opt_in_debug_events_wait_instead_of_dropping() {
    let logger =
        TrainingLogger::builder().level(LogLevel::Debug).capacity(1).batch_size(1).build().unwrap();
    let rec = Recorder::slow(Duration::from_micros(100));
    logger.add_backend(rec.clone()).unwrap();
    for b in 0..300 {
        logger.on_batch_end(b, data! {});
    }
    logger.close().unwrap();
    assert_eq!(logger.summary().dropped, 0);
    assert_eq!(rec.len(), 300);
}

#[test]
fn flush_timeout_reports_a_stuck_backend() {
    let logger = TrainingLogger::new(LogLevel::Basic).unwrap();
    let rec = Recorder::slow(Duration::from_millis(300));
    logger.add_backend(rec.clone()).unwrap();
    logger.on_epoch_start(0);
    let err = logger.bus().flush_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err, BusError::Timeout(_)), "{err}");
    logger.flush().unwrap();
    assert_eq!(rec.len(), 1);
}

#[test]
fn events_handed_back_for_freeing_are_delivered_first_from_every_thread() {
    // The bus thread hands written events back to the senders in batches; nothing about that
    // may change what the backends see, from one thread or several, with flushes in between.
    let logger = TrainingLogger::new(LogLevel::Expert).unwrap();
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    logger.on_epoch_start(0);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let logger = logger.clone();
            s.spawn(move || {
                for i in 0..2_000u64 {
                    let name = format!("layer_{t}_{i}");
                    logger.on_gradient_computed(&name, i as f64);
                    if i % 500 == 0 {
                        logger.flush().unwrap();
                    }
                }
            });
        }
    });
    // A sender that stops: the handed-back batches wait, bounded, and close frees them.
    for b in 0..1_000u64 {
        logger.on_batch_end(b, data! { "loss" => b as f64, "tag" => format!("b{b}") });
    }
    let report = logger.close().unwrap();
    let events = rec.snapshot();
    assert_eq!(report.backends[0].events as usize, events.len());
    for t in 0..3u64 {
        let mine: Vec<f64> = events
            .iter()
            .filter(|e| {
                e.layer_name.as_deref().is_some_and(|n| n.starts_with(&format!("layer_{t}_")))
            })
            .map(|e| e.data.get_f64("grad_norm").unwrap())
            .collect();
        assert_eq!(mine, (0..2_000).map(|i| i as f64).collect::<Vec<_>>(), "thread {t}");
    }
    let ends: Vec<_> = events.iter().filter(|e| e.event_type == EventType::BatchEnd).collect();
    assert_eq!(ends.len(), 1_000);
    for (b, e) in ends.iter().enumerate() {
        let tag = e.data.path(&["metrics", "tag"]).and_then(|v| v.as_str().map(str::to_owned));
        assert_eq!(tag, Some(format!("b{b}")));
    }
}

#[test]
fn batch_end_events_whose_maps_are_reused_carry_exactly_their_own_metrics() {
    // The bus thread refills the maps of written batch_end events for later ones; metrics
    // that are inline, spilled (more than four, owned names, text) or empty must each arrive
    // as sent, whatever the event before them held.
    let logger = TrainingLogger::new(LogLevel::Detailed).unwrap();
    let rec = Recorder::default();
    logger.add_backend(rec.clone()).unwrap();
    let metrics = |b: u64| match b % 5 {
        0 => data! { "loss" => b as f64 },
        1 => data! { "loss" => 1.0, "acc" => 0.5, "lr" => 0.1, "gn" => b as f64 },
        2 => data! { "a" => 1.0, "b" => 2.0, "c" => 3.0, "d" => 4.0, "e" => b as f64 },
        3 => data! {}.with(format!("owned_{b}"), 1.0).with("phase", "warmup"),
        _ => data! {},
    };
    for b in 0..5_000u64 {
        logger.on_batch_end(b, metrics(b));
        if b % 1_000 == 999 {
            logger.flush().unwrap();
        }
    }
    logger.close().unwrap();
    let events = rec.snapshot();
    assert_eq!(events.len(), 5_000);
    for (b, e) in (0u64..).zip(&events) {
        assert_eq!(e.batch, Some(b));
        assert_eq!(e.data.len(), 1, "batch {b}");
        let got = e.data.get("metrics").and_then(|v| v.as_map()).unwrap();
        assert_eq!(got, &metrics(b), "batch {b}");
    }
}
