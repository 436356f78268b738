//! Visual dashboard (SEED section 5): a `DashboardExporter` on the logger, a real training run,
//! then `save()`. Health warnings from `AutoHealthWarnings` reach the dashboard as
//! `health_check` events, with their diagnosis and recommendations.
//!
//! Run with `cargo run -p obs-examples --example dashboard [-- path/to/dashboard.html]`
//! (default `training_logs/dashboard.html`), then open the file in any browser: it works
//! offline and loads nothing from the network.

use obs_core::{LogLevel, TrainingLogger};
use obs_dashboard::{DashboardConfig, DashboardExporter};
use obs_health::{AutoHealthWarnings, BatchInput, WarningConfig};
use obs_testkit::{BatchReport, EpochReport, LoggerObserver, RunConfig, Scenario, TrainObserver};

/// Runs the health rules after each batch and epoch; warnings go to the attached logger.
struct HealthObserver(AutoHealthWarnings);

impl TrainObserver for HealthObserver {
    fn batch_end(&mut self, report: &BatchReport) {
        let norms: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(name, norm)| (name.as_str(), *norm)).collect();
        let input =
            BatchInput::new(report.epoch, report.batch).loss(report.loss).gradient_norms(&norms);
        self.0.check_batch(&input);
    }

    fn epoch_end(&mut self, report: &EpochReport) {
        self.0.check_epoch(report.epoch, report.train_loss, Some(report.val_loss));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "training_logs/dashboard.html".into());

    // `live`: the file is rewritten (atomically) at every epoch end, so it can be watched
    // while training runs.
    let mut config = DashboardConfig::default();
    config.live = true;
    let dashboard = DashboardExporter::with_config(&path, config);
    // The exporter moves to the logger's bus thread; the handle stays here.
    let handle = dashboard.handle();

    let logger = TrainingLogger::new(LogLevel::Detailed)?;
    logger.add_backend(dashboard)?;

    let health = AutoHealthWarnings::new(WarningConfig::default())?.with_logger(logger.clone());
    // A healthy two-spiral run with one corrupted batch: a loss spike the chart must show.
    let run = RunConfig::for_scenario(Scenario::LossSpike);
    let mut observer = (LoggerObserver::new(logger.clone()), HealthObserver(health));
    let outcome = obs_testkit::train(&run, &mut observer);

    logger.flush()?;
    handle.save()?; // renders everything logged so far
    let report = logger.close()?; // renders the final page once more
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    eprintln!(
        "final validation accuracy {:.3}; {} events; dashboard written to {}",
        outcome.final_val_accuracy,
        handle.events(),
        handle.path().display()
    );
    Ok(())
}
