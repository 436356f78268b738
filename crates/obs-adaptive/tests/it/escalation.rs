//! Escalation, cooldown, backfill, level handling and de-duplication.

use std::collections::BTreeSet;

use obs_adaptive::{AdaptiveLogger, AnomalyConfig, Trigger};
use obs_core::{Activation, EventType, LogLevel, Severity, TensorView, Value, data};

use crate::support::{adaptive, calm_batch, counted_logger, healthy_relu, pos, with_dead_units};

fn cooldown(n: u64) -> AnomalyConfig {
    let mut c = AnomalyConfig::default();
    c.escalation_cooldown = n;
    c
}

/// A batch like `calm_batch` whose second layer has every unit dead (found at once).
fn dead_batch(logger: &mut AdaptiveLogger, batch: u64) {
    let acts = healthy_relu(8, 4);
    let dead = with_dead_units(8, 4, 4);
    logger.on_batch_start(batch);
    logger
        .on_layer_forward(0, "dense_0", TensorView::new(&acts, &[8, 4]).unwrap(), Activation::Relu)
        .unwrap();
    logger
        .on_layer_forward(1, "dense_1", TensorView::new(&dead, &[8, 4]).unwrap(), Activation::Relu)
        .unwrap();
    logger.on_batch_end(batch, data! { "loss" => 1.0 });
}

#[test]
fn calm_batches_record_only_basic_events() {
    let (mut logger, counting) = adaptive(None);
    logger.on_train_start(1, data! { "name" => "t" });
    logger.on_epoch_start(0);
    for b in 0..5 {
        calm_batch(&mut logger, b, 1.0);
        assert!(!logger.is_escalated());
        assert_eq!(logger.base().level(), LogLevel::Basic);
    }
    logger.on_epoch_end(0, data! { "loss" => 1.0 });
    logger.on_train_end(data! {});
    logger.flush().unwrap();
    let t = counting.tally();
    let types: BTreeSet<EventType> = t.by_type.keys().copied().collect();
    assert_eq!(
        types,
        [EventType::TrainStart, EventType::TrainEnd, EventType::EpochStart, EventType::EpochEnd]
            .into()
    );
    assert_eq!(t.events, 4);
}

#[test]
fn the_escalating_batch_is_recorded_whole_then_the_anomaly() {
    let (mut logger, counting) = adaptive(Some(cooldown(0)));
    logger.on_epoch_start(0);
    calm_batch(&mut logger, 0, 1.0);
    dead_batch(&mut logger, 1);
    calm_batch(&mut logger, 2, 1.0);
    logger.flush().unwrap();
    let t = counting.tally();
    assert_eq!(t.expert_batches, [(0, 1)].into(), "only batch 1, with cooldown 0");
    let events = t.health.clone();
    assert_eq!(events.len(), 1);
    let h = &events[0];
    assert_eq!(h.severity, Severity::Warning);
    assert_eq!(h.level, LogLevel::Basic);
    assert_eq!(h.layer_name.as_deref(), Some("dense_1"));
    assert_eq!(h.layer_index, Some(1));
    assert_eq!(pos(h), Some((0, 1)));
    assert_eq!(h.data.get("trigger").and_then(Value::as_str), Some("dead_neurons"));
    assert_eq!(h.data.get("rule_name").and_then(Value::as_str), Some("dead_relu"));
    assert_eq!(h.data.get("source").and_then(Value::as_str), Some("adaptive"));
    assert_eq!(h.data.get("hook").and_then(Value::as_str), Some("layer_forward"));
    assert_eq!(h.data.get("escalated").and_then(Value::as_bool), Some(true));
    assert_eq!(h.data.get_f64("value"), Some(100.0));
    assert_eq!(h.data.get_f64("threshold"), Some(50.0));
    assert_eq!(h.data.get("repeats").and_then(Value::as_u64), Some(0));
    // The warning's diagnosis and advice travel with it.
    assert!(h.data.get("diagnosis").and_then(Value::as_str).is_some());
    assert!(h.data.get("recommendations").and_then(Value::as_list).is_some_and(|r| !r.is_empty()));
}

#[test]
fn backfilled_events_keep_their_order_time_and_position() {
    let (base, counting) = counted_logger(LogLevel::Expert);
    let mut logger = AdaptiveLogger::new(base, cooldown(0)).unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = order.clone();
    logger.base().add_backend(RecordAll(sink)).unwrap();
    logger.on_epoch_start(3);
    dead_batch(&mut logger, 7);
    logger.flush().unwrap();
    let events = order.lock().unwrap().clone();
    let kinds: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        [
            EventType::EpochStart,
            EventType::BatchStart,   // backfilled
            EventType::LayerForward, // backfilled: dense_0, before the anomaly
            EventType::LayerForward, // the triggering event
            EventType::HealthCheck,
            EventType::BatchEnd,
        ]
    );
    for e in &events[1..] {
        assert_eq!(pos(e), Some((3, 7)), "{e:?}");
    }
    assert!(events[1].timestamp <= events[2].timestamp);
    assert!(events[2].timestamp <= events[3].timestamp);
    assert_eq!(events[2].layer_name.as_deref(), Some("dense_0"));
    assert_eq!(events[3].layer_name.as_deref(), Some("dense_1"));
    assert_eq!(events[3].data.get_f64("dead_units_pct"), Some(100.0));
    assert_eq!(counting.tally().expert_batches, [(3, 7)].into());
}

#[derive(Debug)]
struct RecordAll(std::sync::Arc<std::sync::Mutex<Vec<obs_core::Event>>>);

impl obs_core::Backend for RecordAll {
    fn name(&self) -> &str {
        "test.record"
    }
    fn write(&mut self, events: &[obs_core::Event]) -> Result<(), obs_core::BackendError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

#[test]
fn a_loss_spike_records_the_layers_of_its_batch() {
    let (mut logger, counting) = adaptive(Some(cooldown(0)));
    logger.on_epoch_start(0);
    for b in 0..6 {
        calm_batch(&mut logger, b, 1.0);
    }
    // Four times where training started, and the highest recent loss: found at batch end.
    calm_batch(&mut logger, 6, 4.0);
    assert_eq!(logger.get_anomaly_summary().count(Trigger::LossSpike), 1);
    logger.flush().unwrap();
    let t = counting.tally();
    assert_eq!(t.expert_batches, [(0, 6)].into());
    // 2 forwards, 2 backwards, 2 weight updates, batch start and end.
    assert_eq!(t.count(EventType::LayerForward), 2);
    assert_eq!(t.count(EventType::LayerBackward), 2);
    assert_eq!(t.count(EventType::WeightUpdated), 2);
    assert_eq!(t.count(EventType::BatchStart), 1);
    assert_eq!(t.count(EventType::BatchEnd), 1);
}

#[test]
fn without_backfill_only_the_trigger_onwards_is_recorded() {
    let mut config = cooldown(0);
    config.batch_backfill = 0;
    let (mut logger, counting) = adaptive(Some(config));
    for b in 0..6 {
        calm_batch(&mut logger, b, 1.0);
    }
    calm_batch(&mut logger, 6, 4.0);
    logger.flush().unwrap();
    let t = counting.tally();
    assert_eq!(t.count(EventType::LayerForward), 0);
    assert_eq!(t.count(EventType::BatchEnd), 1);
    assert_eq!(t.count(EventType::HealthCheck), 1);
}

#[test]
fn cooldown_counts_batches_exactly() {
    for n in [0u64, 1, 3, 10] {
        let (mut logger, counting) = adaptive(Some(cooldown(n)));
        logger.on_epoch_start(0);
        let mut escalated = Vec::new();
        for b in 0..20 {
            if b == 2 {
                dead_batch(&mut logger, b);
            } else {
                calm_batch(&mut logger, b, 1.0);
            }
            // After batch b ends, the next batch is escalated exactly while b < 2 + n.
            assert_eq!(logger.is_escalated(), b >= 2 && b < 2 + n, "n={n} b={b}");
            escalated.push(logger.is_escalated());
        }
        logger.flush().unwrap();
        let expected: BTreeSet<(u64, u64)> =
            (2..=2 + n).filter(|b| *b < 20).map(|b| (0, b)).collect();
        let t = counting.tally();
        assert_eq!(t.expert_batches, expected, "n={n}");
        assert_eq!(t.count(EventType::BatchEnd), expected.len() as u64, "n={n}");
        let s = logger.get_anomaly_summary();
        assert_eq!(s.escalated_batches, expected.len() as u64);
        assert_eq!(s.escalations, 1);
        assert_eq!(s.batches, 20);
    }
}

#[test]
fn a_repeat_during_cooldown_does_not_extend_it() {
    let (mut logger, counting) = adaptive(Some(cooldown(2)));
    logger.on_epoch_start(0);
    for b in 0..12 {
        if b == 1 || b == 3 {
            dead_batch(&mut logger, b);
        } else {
            calm_batch(&mut logger, b, 1.0);
        }
    }
    logger.flush().unwrap();
    let expected: BTreeSet<(u64, u64)> = (1..=3).map(|b| (0, b)).collect();
    assert_eq!(counting.tally().expert_batches, expected);
    let s = logger.get_anomaly_summary();
    assert_eq!((s.escalations, s.escalated_batches), (1, 3));
    // The repeat at batch 3 was de-duplicated by the rule engine and counted.
    assert_eq!((s.total, s.emitted, s.suppressed), (2, 1, 1));
}

#[test]
fn a_chronic_finding_is_sampled_not_held() {
    let mut config = AnomalyConfig::default();
    config.rules.dedup_batches = 4;
    config.escalation_cooldown = 0;
    let (mut logger, counting) = adaptive(Some(config));
    logger.on_epoch_start(0);
    for b in 0..10 {
        dead_batch(&mut logger, b);
    }
    logger.flush().unwrap();
    let t = counting.tally();
    let emitted: Vec<(Option<u64>, Option<u64>, Option<bool>)> = t
        .health
        .iter()
        .map(|e| {
            let d = &e.data;
            let repeats = d.get("repeats").and_then(Value::as_u64);
            (e.batch, repeats, d.get("escalated").and_then(Value::as_bool))
        })
        .collect();
    // Reported at its onset (escalating) and again every 4 batches while it lasts (sampled).
    assert_eq!(
        emitted,
        [
            (Some(0), Some(0), Some(true)),
            (Some(4), Some(3), Some(false)),
            (Some(8), Some(3), Some(false))
        ]
    );
    assert_eq!(t.expert_batches, [(0, 0), (0, 4), (0, 8)].into());
    let s = logger.get_anomaly_summary();
    assert_eq!((s.total, s.emitted, s.suppressed), (10, 3, 7));
    assert_eq!((s.escalated_batches, s.sampled_batches, s.escalations), (3, 2, 1));
    assert_eq!(s.recent.len(), 3);
    assert_eq!(s.recent[1].repeats, 3);
}

#[test]
fn the_default_records_an_onset_its_cooldown_and_then_samples_only() {
    let (mut logger, _) = adaptive(None);
    for b in 0..120 {
        dead_batch(&mut logger, b);
    }
    let s = logger.get_anomaly_summary();
    // Onset 0 plus 5 batches of cooldown, then one sample at each re-report (50, 100).
    assert_eq!((s.escalated_batches, s.sampled_batches, s.escalations), (8, 2, 1), "{s}");
}

#[test]
fn a_new_layer_or_a_worse_value_escalates_again() {
    let mut config = cooldown(0);
    config.rules.dedup_batches = 2;
    let (mut logger, _) = adaptive(Some(config));
    let step = |logger: &mut AdaptiveLogger, b: u64, layer: &str, norm: f64| {
        logger.on_batch_start(b);
        logger.on_gradient_computed(layer, norm);
        logger.on_batch_end(b, data! {});
        logger.get_anomaly_summary().escalations
    };
    assert_eq!(step(&mut logger, 0, "a", 200.0), 1);
    // A repeat within the de-duplication window, then a re-report not much worse: a sample.
    assert_eq!(step(&mut logger, 1, "a", 300.0), 1);
    assert_eq!(step(&mut logger, 2, "a", 1000.0), 1);
    assert_eq!(step(&mut logger, 3, "a", 1000.0), 1);
    // Ten times further past the threshold than at its last escalation: worse.
    assert_eq!(step(&mut logger, 4, "a", 20_000.0), 2);
    // The same rule in another layer: a new finding.
    assert_eq!(step(&mut logger, 5, "b", 200.0), 3);
}

#[test]
fn dedup_is_per_trigger_and_layer_and_can_be_off() {
    let (mut logger, _) = adaptive(None);
    let dead = with_dead_units(4, 4, 4);
    for b in 0..3 {
        logger.on_batch_start(b);
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let view = TensorView::new(&dead, &[4, 4]).unwrap();
            logger.on_layer_forward(i, name, view, Activation::Relu).unwrap();
        }
        logger.on_batch_end(b, data! {});
    }
    let s = logger.get_anomaly_summary();
    assert_eq!((s.total, s.emitted), (6, 2), "one per layer");

    let mut config = AnomalyConfig::default();
    config.rules.dedup_batches = 0;
    let (mut logger, counting) = adaptive(Some(config));
    for b in 0..3 {
        dead_batch(&mut logger, b);
    }
    logger.flush().unwrap();
    assert_eq!(counting.tally().health.len(), 3);
}

#[test]
fn runs_are_deterministic() {
    let run = || {
        let (mut logger, counting) = adaptive(Some(cooldown(1)));
        logger.on_epoch_start(0);
        for b in 0..30 {
            match b % 7 {
                3 => dead_batch(&mut logger, b),
                5 => calm_batch(&mut logger, b, 6.0),
                _ => calm_batch(&mut logger, b, 1.0),
            }
        }
        logger.flush().unwrap();
        let t = counting.tally();
        let health: Vec<_> = t
            .health
            .iter()
            .map(|e| (e.batch, e.message.clone(), e.data.get("repeats").cloned()))
            .collect();
        (health, t.expert_batches, t.events)
    };
    assert_eq!(run(), run());
}

#[test]
fn the_adaptive_logger_drives_the_base_level() {
    let (mut logger, _) = adaptive(Some(cooldown(1)));
    assert_eq!(logger.base().level(), LogLevel::Basic);
    assert_eq!(logger.detail_level(), LogLevel::Expert);
    dead_batch(&mut logger, 0);
    assert_eq!(logger.base().level(), LogLevel::Expert);
    calm_batch(&mut logger, 1, 1.0);
    assert_eq!(logger.base().level(), LogLevel::Basic);

    // A DEBUG base escalates to DEBUG; a DETAILED one is raised to EXPERT.
    let (base, _) = counted_logger(LogLevel::Debug);
    let logger = AdaptiveLogger::new(base, AnomalyConfig::default()).unwrap();
    assert_eq!((logger.base().level(), logger.detail_level()), (LogLevel::Basic, LogLevel::Debug));
    let (base, _) = counted_logger(LogLevel::Detailed);
    let logger = AdaptiveLogger::new(base, AnomalyConfig::default()).unwrap();
    assert_eq!(logger.detail_level(), LogLevel::Expert);
}

#[test]
fn a_silent_base_records_nothing_but_anomalies_are_still_found() {
    let (base, counting) = counted_logger(LogLevel::Silent);
    let mut logger = AdaptiveLogger::new(base, AnomalyConfig::default()).unwrap();
    logger.on_train_start(1, data! {});
    dead_batch(&mut logger, 0);
    logger.flush().unwrap();
    assert_eq!(counting.tally().events, 0);
    assert_eq!(logger.get_anomaly_summary().count(Trigger::DeadNeurons), 1);
    assert_eq!(logger.base().level(), LogLevel::Silent);
}

#[test]
fn invalid_config_is_refused() {
    let (base, _) = counted_logger(LogLevel::Expert);
    let mut config = AnomalyConfig::default();
    config.rules.loss_divergence_window = 1;
    let err = AdaptiveLogger::new(base, config).unwrap_err();
    assert!(err.to_string().contains("loss_divergence_window"), "{err}");
    let (base, _) = counted_logger(LogLevel::Expert);
    let mut config = AnomalyConfig::default();
    config.worsen_factor = 0.5;
    let err = AdaptiveLogger::new(base, config).unwrap_err();
    assert!(err.to_string().contains("worsen_factor"), "{err}");
}

#[test]
fn health_checks_pass_through_while_calm() {
    let (mut logger, counting) = adaptive(None);
    logger.on_health_check(Severity::Danger, "from elsewhere", Some("dense_0"), data! { "x" => 1 });
    logger.flush().unwrap();
    let t = counting.tally();
    assert_eq!(t.health.len(), 1);
    assert_eq!(t.health[0].message, "from elsewhere");
    assert!(!logger.is_escalated());
}

#[test]
fn reset_and_train_start_forget_everything() {
    let (mut logger, _) = adaptive(None);
    dead_batch(&mut logger, 0);
    assert!(logger.is_escalated());
    logger.reset();
    assert!(!logger.is_escalated());
    assert_eq!(logger.base().level(), LogLevel::Basic);
    let s = logger.get_anomaly_summary();
    assert_eq!((s.total, s.batches, s.escalated_batches, s.recent.len()), (0, 0, 0, 0));
    // The de-duplication memory is gone too: the same anomaly is emitted again.
    dead_batch(&mut logger, 0);
    assert!(logger.latest_anomalies().is_empty(), "batch_end cleared the hook's findings");
    assert_eq!(logger.get_anomaly_summary().emitted, 1);
    logger.on_train_start(2, data! {});
    assert!(!logger.is_escalated());
    assert_eq!(logger.get_anomaly_summary().total, 0);
}

#[test]
fn without_batch_hooks_a_repeated_forward_starts_a_new_step() {
    // The reference's usage: only layer hooks, no batch hooks at all.
    let (mut logger, counting) = adaptive(Some(cooldown(2)));
    let normal = healthy_relu(8, 4);
    let dead = vec![0.0f32; 32];
    let forward = |logger: &mut AdaptiveLogger, data: &[f32]| {
        let view = TensorView::new(data, &[8, 4]).unwrap();
        logger.on_layer_forward(0, "dense_0", view, Activation::Relu).unwrap();
        logger.is_escalated()
    };
    assert!(!forward(&mut logger, &normal));
    assert!(forward(&mut logger, &dead));
    // Two steps of cooldown, then calm again.
    assert!(forward(&mut logger, &normal));
    assert!(forward(&mut logger, &normal));
    assert!(!forward(&mut logger, &normal));
    logger.flush().unwrap();
    let t = counting.tally();
    assert_eq!(t.count(EventType::LayerForward), 3);
    assert_eq!(logger.get_anomaly_summary().batches, 5);
}

#[test]
fn batch_start_alone_also_marks_steps() {
    let (mut logger, _) = adaptive(Some(cooldown(1)));
    let dead = vec![0.0f32; 32];
    logger.on_batch_start(0);
    logger
        .on_layer_forward(0, "d", TensorView::new(&dead, &[8, 4]).unwrap(), Activation::Relu)
        .unwrap();
    logger.on_batch_start(1);
    assert!(logger.is_escalated());
    logger.on_batch_start(2);
    assert!(!logger.is_escalated());
    assert_eq!(logger.get_anomaly_summary().batches, 3);
}

#[test]
fn anomalies_found_at_batch_end_carry_its_batch_without_batch_start() {
    let (mut logger, counting) = adaptive(None);
    logger.on_epoch_start(2);
    for b in 0..5 {
        logger.on_batch_end(b, data! { "loss" => 1.0 });
    }
    logger.on_batch_end(5, data! { "loss" => f64::NAN });
    assert_eq!(logger.latest_anomalies()[0].batch, Some(5));
    assert_eq!(logger.latest_anomalies()[0].epoch, Some(2));
    logger.flush().unwrap();
    let t = counting.tally();
    assert_eq!(t.health.iter().map(pos).collect::<Vec<_>>(), [Some((2, 5))]);
}
