//! The scenario suite: a real network trained by `obs_testkit`, observed by the adaptive logger.
//!
//! Healthy runs must stay quiet and cost at least 90% fewer NDJSON bytes than plain EXPERT
//! logging; every pathology must raise its anomaly and be recorded at EXPERT detail in the
//! batch where the anomaly first occurs.

use std::collections::BTreeMap;

use obs_adaptive::{AnomalySummary, Trigger};
use obs_core::{EventType, LogLevel};
use obs_testkit::{LoggerObserver, RunConfig, Scenario, train};

use crate::support::{AdaptiveObserver, Tally, adaptive, counted_logger, pos};

struct Observed {
    tally: Tally,
    summary: AnomalySummary,
    /// Where each trigger was first emitted.
    first: BTreeMap<Trigger, (u64, u64)>,
}

fn observe_adaptive(scenario: Scenario) -> Observed {
    let (logger, counting) = adaptive(None);
    let mut observer = AdaptiveObserver { logger };
    train(&RunConfig::for_scenario(scenario), &mut observer);
    observer.logger.close().expect("bus thread alive");
    let tally = counting.tally();
    let mut first = BTreeMap::new();
    for e in &tally.health {
        let trigger = e.data.get("trigger").and_then(|v| v.as_str()).and_then(|t| t.parse().ok());
        if let (Some(t), Some(p)) = (trigger, pos(e)) {
            first.entry(t).or_insert(p);
        }
    }
    Observed { tally, summary: observer.logger.get_anomaly_summary(), first }
}

fn observe_expert(scenario: Scenario) -> Tally {
    let (logger, counting) = counted_logger(LogLevel::Expert);
    let mut observer = LoggerObserver::new(logger);
    train(&RunConfig::for_scenario(scenario), &mut observer);
    observer.into_inner().close().expect("bus thread alive");
    counting.tally()
}

#[test]
fn healthy_relu_run_is_quiet_and_at_least_90_percent_smaller_than_expert() {
    let adaptive = observe_adaptive(Scenario::Healthy);
    let expert = observe_expert(Scenario::Healthy);
    assert_eq!(adaptive.summary.total, 0, "{}", adaptive.summary);
    assert!(adaptive.tally.health.is_empty());
    assert_eq!(adaptive.summary.escalated_batches, 0);
    let saved = 1.0 - adaptive.tally.bytes as f64 / expert.bytes as f64;
    eprintln!(
        "healthy: adaptive {} bytes / {} events, EXPERT {} bytes / {} events: {:.2}% fewer bytes",
        adaptive.tally.bytes,
        adaptive.tally.events,
        expert.bytes,
        expert.events,
        saved * 100.0
    );
    assert!(saved >= 0.90, "only {:.2}% fewer bytes", saved * 100.0);
    // Nothing below the epoch level was recorded, yet every epoch was.
    assert_eq!(adaptive.tally.count(EventType::EpochEnd), expert.count(EventType::EpochEnd));
    assert_eq!(adaptive.tally.count(EventType::BatchEnd), 0);
}

#[test]
fn healthy_tanh_run_is_quiet() {
    let adaptive = observe_adaptive(Scenario::HealthyTanh);
    assert_eq!(adaptive.summary.total, 0, "{}", adaptive.summary);
    assert!(adaptive.tally.expert_batches.is_empty());
}

fn expected_trigger(scenario: Scenario) -> Option<Trigger> {
    match scenario {
        Scenario::DyingRelu => Some(Trigger::DeadNeurons),
        Scenario::Exploding => Some(Trigger::ExplodingGradient),
        Scenario::Vanishing => Some(Trigger::VanishingGradient),
        Scenario::NanDivergence => Some(Trigger::NanInf),
        Scenario::Stagnant => Some(Trigger::WeightStagnation),
        // Every layer's gradient jumps with the loss: one gradient spike, not two findings.
        Scenario::LossSpike => Some(Trigger::GradientSpike),
        Scenario::Overfit => Some(Trigger::Overfitting),
        _ => None,
    }
}

#[test]
fn every_pathology_escalates_in_the_batch_where_its_anomaly_first_occurs() {
    for scenario in Scenario::ALL {
        let Some(trigger) = expected_trigger(scenario) else { continue };
        let run = observe_adaptive(scenario);
        let name = scenario.name();
        assert!(run.summary.count(trigger) > 0, "{name}: no {trigger}: {}", run.summary);
        // Epoch findings have no batch of their own: they escalate the batches after them.
        let Some(&first) = run.first.get(&trigger) else {
            assert_eq!(trigger, Trigger::Overfitting, "{name}");
            continue;
        };
        // The batch of the first anomaly is recorded at EXPERT detail, including the layers.
        assert!(run.tally.expert_batches.contains(&first), "{name}: {first:?} not escalated");
        let forwards = run
            .tally
            .expert
            .range((first.0, first.1, EventType::LayerForward, String::new())..)
            .take_while(|(e, b, t, _)| (*e, *b, *t) == (first.0, first.1, EventType::LayerForward))
            .count();
        assert!(forwards > 0, "{name}: no layer_forward recorded at {first:?}");
        // It fires no later than the testkit says the pathology shows in the numbers, plus
        // the rule's patience: persistent conditions must persist for five batches (weight
        // stagnation: its window of five updates), overfitting for three epochs of rising
        // validation loss.
        let onset = scenario.expected_onset().expect("pathologies have an onset");
        let latest = match trigger {
            Trigger::WeightStagnation | Trigger::VanishingGradient | Trigger::DeadNeurons => {
                (onset.0, onset.1 + 4)
            }
            _ => onset,
        };
        assert!(first <= latest, "{name}: first {trigger} at {first:?}, onset {onset:?}");
    }
}

#[test]
fn the_injected_loss_spike_batch_is_recorded_in_full() {
    let config = RunConfig::for_scenario(Scenario::LossSpike);
    let at = config.inject_spike_at.expect("the scenario injects a spike");
    let run = observe_adaptive(Scenario::LossSpike);
    assert_eq!(run.first.get(&Trigger::GradientSpike), Some(&at));
    assert_eq!(run.summary.count(Trigger::GradientSpike), 1);
    assert_eq!(run.summary.total, 1, "{}", run.summary);
    let layers = config.hidden.len() + 1;
    for kind in [EventType::LayerForward, EventType::LayerBackward, EventType::WeightUpdated] {
        let n = run.tally.expert.iter().filter(|(e, b, t, _)| (*e, *b) == at && *t == kind).count();
        assert_eq!(n, layers, "{kind} at {at:?}");
    }
    // The batch before the spike stayed at BASIC detail.
    assert!(!run.tally.expert_batches.contains(&(at.0, at.1 - 1)));
}

#[test]
fn confusion_table_and_volume_per_scenario() {
    let mut table = String::from("scenario      ");
    for t in Trigger::ALL {
        table += &format!(" {:>10.10}", t.as_str());
    }
    table += "   escalated    bytes  vs EXPERT";
    for scenario in Scenario::ALL {
        let run = observe_adaptive(scenario);
        let expert = observe_expert(scenario);
        table += &format!("\n{:<14}", scenario.name());
        for t in Trigger::ALL {
            table += &format!(" {:>10}", run.summary.count(t));
        }
        table += &format!(
            "  {:>4}/{:<5} {:>8}  {:>6.1}%",
            run.summary.escalated_batches,
            run.summary.batches,
            run.tally.bytes,
            100.0 * run.tally.bytes as f64 / expert.bytes as f64
        );
        if scenario.is_healthy() {
            assert_eq!(run.summary.total, 0, "{}", scenario.name());
        }
        if let Some(t) = expected_trigger(scenario) {
            assert!(run.summary.count(t) > 0, "{}", scenario.name());
        }
    }
    eprintln!("{table}");
}
