//! TensorBoard and Weights & Biases integration (SEED section 5): both bridges on one logger
//! during a real training run, with health warnings, then the commands that open the results.
//!
//! Run with `cargo run -p obs-examples --example bridges [-- <output dir>]` (default
//! `training_logs`). It writes
//! - `<dir>/tb_logs/experiment_001/events.out.tfevents.*`: `tensorboard --logdir <dir>/tb_logs`;
//! - `<dir>/wandb/offline-run-YYYYMMDD_HHMMSS-<id>/`: `wandb sync <that directory>` uploads it
//!   (it needs a W&B account and network; nothing here does).
//!
//! Nothing needs Python, TensorFlow or wandb at run time: the bridges write the files
//! themselves. Every few batches the example also attaches a real histogram of each layer's
//! activations (bucket counts of every element), which both tools show as distributions.

use obs_bridges::{Histogram, TensorBoardBridge, WandbBridge};
use obs_core::{EventType, LogLevel, TensorData, TensorView, TrainingLogger, data, tensor_stats};
use obs_health::{AutoHealthWarnings, BatchInput, WarningConfig};
use obs_testkit::{
    BatchReport, EpochReport, LayerInfo, LoggerObserver, RunConfig, Scenario, TrainObserver,
};

/// Logs the run, runs the health rules, and every `HIST_EVERY` batches sends each layer's
/// activation statistics together with a histogram of the activations.
struct Observer {
    log: LoggerObserver,
    health: AutoHealthWarnings,
    batch: u64,
}

const HIST_EVERY: u64 = 16;
const HIST_BINS: usize = 30;

impl TrainObserver for Observer {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        self.log.train_start(config, layers);
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.log.epoch_start(epoch);
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        self.log.batch_start(epoch, batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        let logger = self.log.logger();
        if !self.batch.is_multiple_of(HIST_EVERY) || !logger.enabled(LogLevel::Expert) {
            return self.log.layer_forward(layer, output);
        }
        // The same layer event the logger would send, plus real bucket counts.
        let stats = tensor_stats(output, layer.activation);
        let mut event = logger.layer_event(
            EventType::LayerForward,
            layer.index,
            &layer.name,
            &output.shape(),
            &stats,
        );
        let histogram = match output.data() {
            TensorData::F32(v) => Histogram::from_values(v, HIST_BINS),
            TensorData::F64(v) => Histogram::from_values(v, HIST_BINS),
        };
        if let Some(h) = histogram {
            event.data.insert("histogram", h.to_data());
        }
        logger.emit(event);
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        self.log.layer_backward(layer, weight_grad);
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        self.log.weight_updated(layer, weights, update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        self.log.batch_end(report);
        let norms: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(name, norm)| (name.as_str(), *norm)).collect();
        let input =
            BatchInput::new(report.epoch, report.batch).loss(report.loss).gradient_norms(&norms);
        self.health.check_batch(&input);
        self.batch += 1;
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        self.log.epoch_end(report);
        self.health.check_epoch(report.epoch, report.train_loss, Some(report.val_loss));
    }
    fn train_end(&mut self, outcome: &obs_testkit::TrainOutcome) {
        self.log.train_end(outcome);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(
        std::env::args().nth(1).unwrap_or_else(|| "training_logs".to_owned()),
    );

    // TensorBoard: one sub-directory per run under `tb_logs`.
    let tb = TensorBoardBridge::builder(out.join("tb_logs")).run_name("experiment_001").create()?;
    let tb_dir = tb.dir().to_path_buf();

    // Weights & Biases: an offline run, as `wandb.init(mode="offline")` would leave it.
    let wandb = WandbBridge::builder("my_experiment")
        .run_name("experiment_001")
        .config(data! { "lr" => 0.01, "epochs" => 50 })
        .tag("observatory")
        .dir(&out)
        .create()?;
    let wandb_dir = wandb.run_dir().to_path_buf();

    // Both run on the logger's bus thread: training never waits for their files.
    let logger = TrainingLogger::new(LogLevel::Expert)?;
    logger.add_backend(tb)?;
    logger.add_backend(wandb)?;

    // A two-spiral run with one corrupted batch, so the health rules have something to say.
    let mut run = RunConfig::for_scenario(Scenario::LossSpike);
    run.epochs = run.epochs.min(8);
    let health = AutoHealthWarnings::new(WarningConfig::default())?.with_logger(logger.clone());
    let mut observer = Observer { log: LoggerObserver::new(logger.clone()), health, batch: 0 };
    let outcome = obs_testkit::train(&run, &mut observer);

    // Closing writes the W&B exit record: 0 because the run reached `train_end`.
    let report = logger.close()?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let summary = logger.summary();
    eprintln!(
        "final validation accuracy {:.3}; {} events, {} health warnings",
        outcome.final_val_accuracy,
        summary.total,
        summary.count(EventType::HealthCheck)
    );
    eprintln!("TensorBoard: tensorboard --logdir {}", tb_dir.parent().unwrap_or(&tb_dir).display());
    eprintln!("W&B (later, online): wandb sync {}", wandb_dir.display());
    Ok(())
}
