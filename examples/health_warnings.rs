//! Automated health warnings, as in SEED section 2: configure `AutoHealthWarnings`, call
//! `check_batch` every batch and `check_epoch` every epoch, print what fires, and read the
//! summary. Part one replays the seed's hand-written numbers; part two watches a real network
//! (obs-testkit) whose ReLU units die, with the warnings also flowing to a logger backend.
//!
//! Run with `cargo run -p obs-examples --example health_warnings`.

use obs_core::{Backend, BackendError, Event, LogLevel, TensorStats, TrainingLogger};
use obs_health::{ActivationStats, AutoHealthWarnings, BatchInput, WarningConfig};
use obs_testkit::{BatchReport, EpochReport, LayerInfo, RunConfig, Scenario, TrainObserver};

/// Prints each `health_check` event as its NDJSON line, as storage would write it.
#[derive(Debug)]
struct HealthLog;

impl Backend for HealthLog {
    fn name(&self) -> &str {
        "example.health_log"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        for e in events {
            eprintln!("    health.log <- {}", e.to_ndjson());
        }
        Ok(())
    }
}

/// Feeds a real training run into the engine.
struct Watch {
    engine: AutoHealthWarnings,
    activations: Vec<(String, TensorStats)>,
}

impl TrainObserver for Watch {
    fn batch_start(&mut self, _epoch: u64, _batch: u64) {
        self.activations.clear();
    }

    fn layer_forward(&mut self, layer: &LayerInfo, output: obs_core::TensorView<'_>) {
        self.activations
            .push((layer.name.clone(), obs_core::tensor_stats(output, layer.activation)));
    }

    fn batch_end(&mut self, report: &BatchReport) {
        let grads: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(n, g)| (n.as_str(), *g)).collect();
        let acts: Vec<(&str, TensorStats)> =
            self.activations.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let input = BatchInput::new(report.epoch, report.batch)
            .loss(report.loss)
            .gradient_norms(&grads)
            .activation_tensors(&acts);
        for alert in self.engine.check_batch(&input) {
            eprintln!("  [{}] {}", alert.severity.as_str(), alert.message);
        }
    }

    fn epoch_end(&mut self, report: &EpochReport) {
        let alerts =
            self.engine.check_epoch(report.epoch, report.train_loss, Some(report.val_loss));
        for alert in alerts {
            eprintln!("  [{}] {}", alert.severity.as_str(), alert.message);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Part one: the seed's loop with hand-written numbers.
    let mut config = WarningConfig::default();
    config.dead_relu_zeros_pct = 50.0;
    config.overfit_patience = 3;
    config.overfit_ratio = 1.3;
    let mut warnings_engine = AutoHealthWarnings::new(config.clone())?;

    // Validation loss bottoms out at epoch 2 and climbs while training loss keeps falling.
    let train_losses = [0.9, 0.7, 0.6, 0.5, 0.4, 0.32, 0.25, 0.2, 0.16];
    let val_losses = [0.95, 0.85, 0.8, 0.85, 0.95, 1.05, 1.15, 1.25, 1.35];
    for epoch in 0..train_losses.len() as u64 {
        for batch_idx in 0..12u64 {
            let current_loss = train_losses[epoch as usize] + 0.01 * (batch_idx % 3) as f64;
            // From epoch 2 on, 62% of dense_0's units output zero for the whole batch.
            let dead = if epoch >= 2 { 62.0 } else { 12.0 };
            let activation_stats = [(
                "dense_0",
                ActivationStats::new("relu".parse()?).zeros_pct(dead).dead_units_pct(dead),
            )];
            let batch_alerts = warnings_engine.check_batch(
                &BatchInput::new(epoch, batch_idx)
                    .loss(current_loss)
                    .gradient_norms(&[("dense_0", 0.05), ("dense_1", 0.03)])
                    .activations(&activation_stats),
            );
            for alert in batch_alerts {
                eprintln!("  [{}] {}", alert.severity.as_str(), alert.message);
                eprintln!("      diagnosis: {}", alert.diagnosis);
                for r in &alert.recommendations {
                    eprintln!("      - {r}");
                }
            }
        }
        let epoch_alerts = warnings_engine.check_epoch(
            epoch,
            train_losses[epoch as usize],
            Some(val_losses[epoch as usize]),
        );
        for alert in epoch_alerts {
            eprintln!("  [{}] {} (epoch {})", alert.severity.as_str(), alert.message, epoch + 1);
        }
    }
    let summary = warnings_engine.get_summary();
    eprintln!("{}", serde_json::to_string_pretty(&summary.by_rule)?);
    eprintln!(
        "Health warnings: {} ({} repeats suppressed)",
        summary.total_warnings, summary.suppressed
    );
    // dead_relu fires after five dead batches (epoch 2, batch 4), and once more 50 batches
    // later with the 49 repeats in between counted; overfitting once the median validation
    // loss of three epochs is 20% above its best for three epochs in a row (epoch 8).
    assert_eq!(summary.count(obs_health::Rule::DeadRelu), 2);
    assert_eq!(summary.count(obs_health::Rule::Overfitting), 1);

    // Part two: a real network whose ReLU units die, warnings also sent to a logger backend.
    eprintln!("\nWatching a real run ({}):", Scenario::DyingRelu.name());
    let logger = TrainingLogger::new(LogLevel::Basic)?;
    logger.add_backend(HealthLog)?;
    let mut watch = Watch {
        engine: AutoHealthWarnings::new(config)?.with_logger(logger.clone()),
        activations: Vec::new(),
    };
    let mut run = RunConfig::for_scenario(Scenario::DyingRelu);
    run.epochs = 3;
    obs_testkit::train(&run, &mut watch);
    logger.close()?;
    let summary = watch.engine.get_summary();
    eprintln!("Health warnings: {}", summary.total_warnings);
    assert!(summary.count(obs_health::Rule::DeadRelu) > 0);
    Ok(())
}
