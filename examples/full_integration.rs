//! Full integration (SEED "Full Integration Example"): every Observatory feature on one real
//! training run, through the `observatory` facade crate.
//!
//! Run with `cargo run -p obs-examples --example full_integration [-- DIR]` (default
//! `training_logs/full_integration`). Each run writes a fresh `run-*` directory inside DIR with
//! `basic.log`, `health.log`, `debug.log`, `fingerprint.json` and `dash.html`.
//!
//! The reference builds `Dense(64, relu) -> Dense(32, tanh) -> Dense(1, sigmoid)`; the obs-testkit
//! network has the same hidden layers and a linear two-class output read through softmax.

use obs_testkit::{
    BatchReport, EpochReport, LayerInfo, RunConfig, Scenario, TrainObserver, TrainOutcome,
};
use observatory::fingerprint::Dataset;
use observatory::prelude::*;

/// The training loop's side of the pipeline: the hooks the reference calls by hand.
struct FullDiagnostics {
    adaptive: AdaptiveLogger,
    warnings: AutoHealthWarnings,
    summarizer: EpochSummarizer,
    fingerprint: TrainingFingerprint,
}

impl TrainObserver for FullDiagnostics {
    fn train_start(&mut self, config: &RunConfig, _layers: &[LayerInfo]) {
        let model_info =
            self.fingerprint.model.as_ref().map(|m| m.info.clone()).unwrap_or_default();
        // The fingerprint rides on train_start: storage writes it to fingerprint.json and the
        // dashboard shows it.
        self.adaptive.on_train_start_with(
            config.epochs,
            model_info,
            data! { "fingerprint" => self.fingerprint.to_data() },
        );
    }

    fn epoch_start(&mut self, epoch: u64) {
        self.adaptive.on_epoch_start(epoch);
    }

    fn batch_start(&mut self, _epoch: u64, batch: u64) {
        self.adaptive.on_batch_start(batch);
    }

    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        // The testkit never hands over an empty tensor, the only error of these hooks.
        let _ = self.adaptive.on_layer_forward(layer.index, &layer.name, output, layer.activation);
    }

    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        let _ = self.adaptive.on_layer_backward(layer.index, &layer.name, weight_grad);
    }

    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        let _ =
            self.adaptive.on_weight_updated(layer.index, &layer.name, weights, Some(update_norm));
    }

    fn batch_end(&mut self, report: &BatchReport) {
        self.adaptive.on_batch_end(report.batch, data! { "loss" => report.loss });
        let grads: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(name, norm)| (name.as_str(), *norm)).collect();
        if let Err(e) = self.summarizer.record_batch(report.epoch, &[("loss", report.loss)], &grads)
        {
            eprintln!("summary: {e}");
        }
        let input =
            BatchInput::new(report.epoch, report.batch).loss(report.loss).gradient_norms(&grads);
        for alert in self.warnings.check_batch(&input) {
            eprintln!("  [{}] {}", alert.severity.as_str(), alert.message);
        }
    }

    fn epoch_end(&mut self, report: &EpochReport) {
        match self.summarizer.finalize_epoch(report.epoch) {
            Ok(summary) => eprintln!("{}", summary.format_text()),
            Err(e) => eprintln!("summary: {e}"),
        }
        for alert in
            self.warnings.check_epoch(report.epoch, report.train_loss, Some(report.val_loss))
        {
            eprintln!("  [{}] {}", alert.severity.as_str(), alert.message);
        }
        self.adaptive.on_epoch_end(
            report.epoch,
            data! { "loss" => report.train_loss, "val_loss" => report.val_loss },
        );
    }

    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.adaptive.on_train_end(outcome.to_data());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir =
        std::env::args().nth(1).unwrap_or_else(|| "training_logs/full_integration".to_owned());

    // 1. The model: 64 ReLU units, then 32 tanh units, on two spirals.
    let mut run = RunConfig::for_scenario(Scenario::Healthy);
    run.hidden = vec![(64, Activation::Relu), (32, Activation::Tanh)];

    // 2. The logging pipeline: one EXPERT logger with its backends, the adaptive logger in
    //    front of it, the health rules and the summarizer.
    let base_logger = TrainingLogger::new(LogLevel::Expert)?;
    let storage = TieredStorage::with_config(StorageConfig::new(&dir).mode(OpenMode::RunDir))?;
    let run_dir = storage.run_dir().to_owned();
    let storage_handle = storage.handle();
    let dashboard = DashboardExporter::new(run_dir.join("dash.html"));
    let dashboard_handle = dashboard.handle();
    base_logger.add_backend(storage)?;
    base_logger.add_backend(dashboard)?;
    // The reference's explicit health checks. The adaptive logger runs the same rules and
    // already sends their warnings to every backend, so this engine is not attached to the
    // logger (that would log every warning twice): its warnings come back to the loop.
    let warnings = AutoHealthWarnings::new(WarningConfig::default())?;
    let adaptive = AdaptiveLogger::new(base_logger, AnomalyConfig::default())?;
    let summarizer = EpochSummarizer::new();

    // 3. The fingerprint, over exactly the samples the run trains on.
    let (x_train, _) =
        obs_testkit::split(&run.dataset, run.train_samples, run.val_samples, run.seed);
    let fingerprint = TrainingFingerprint::builder()
        .model_info(data! { "name" => "my_model", "layers" => 3 })
        .hyperparameters(data! {
            "lr" => f64::from(run.learning_rate),
            "batch_size" => run.batch_size,
            "epochs" => run.epochs,
        })
        .dataset(Dataset::slice(&x_train.x, &[x_train.len(), run.dataset.features()]))
        .seed("random_seed", run.seed)
        .capture()?;
    eprintln!("{}", fingerprint.format_text());

    // 4. Train with full diagnostics.
    let mut diagnostics = FullDiagnostics { adaptive, warnings, summarizer, fingerprint };
    let outcome = obs_testkit::train(&run, &mut diagnostics);

    // 5. Save everything: closing the logger flushes the logs and renders the dashboard.
    let report = diagnostics.adaptive.close()?;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    eprintln!(
        "Final validation accuracy: {:.3}; logs in {} ({} events); dashboard {}",
        outcome.final_val_accuracy,
        run_dir.display(),
        storage_handle.summary().total_events,
        dashboard_handle.path().display()
    );
    eprintln!("Anomalies detected: {}", diagnostics.adaptive.get_anomaly_summary().total);
    eprintln!("Health warnings: {}", diagnostics.warnings.get_summary().total_warnings);
    Ok(())
}
