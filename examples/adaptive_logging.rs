//! SEED section 1, "Smart / Adaptive Logging": stay at BASIC detail and escalate to EXPERT only
//! when something looks suspicious.
//!
//! Part 1 is the reference's walk-through (normal activations record nothing, dead ones escalate).
//! Part 2 drives a real training run (obs-testkit's network with one corrupted batch) through
//! the adaptive logger and counts what it writes.
//!
//! Run with `cargo run -p obs-examples --example adaptive_logging`.

use std::sync::{Arc, Mutex, PoisonError};

use obs_adaptive::{AdaptiveLogger, AnomalyConfig};
use obs_core::{
    Activation, Backend, BackendError, Event, LogLevel, TensorView, TrainingLogger, data,
};
use obs_testkit::{
    BatchReport, EpochReport, LayerInfo, RunConfig, Scenario, TrainObserver, TrainOutcome, train,
};

/// Prints one short line per event.
#[derive(Debug)]
struct Print;

impl Backend for Print {
    fn name(&self) -> &str {
        "example.print"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        for e in events {
            let layer = e.layer_name.as_deref().unwrap_or("-");
            eprintln!(
                "  {:<8} {:<14} {:<8} {}",
                e.level.as_str(),
                e.event_type.as_str(),
                layer,
                e.message
            );
        }
        Ok(())
    }
}

/// Counts events and their NDJSON bytes, and prints anomalies.
#[derive(Debug, Clone, Default)]
struct Count(Arc<Mutex<(u64, u64)>>);

impl Backend for Count {
    fn name(&self) -> &str {
        "example.count"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for e in events {
            c.0 += 1;
            c.1 += e.to_ndjson().len() as u64 + 1;
            if e.event_type == obs_core::EventType::HealthCheck {
                eprintln!(
                    "  [{}] epoch {:?} batch {:?}: {}",
                    e.severity, e.epoch, e.batch, e.message
                );
            }
        }
        Ok(())
    }
}

/// Forwards the testkit's hooks to the adaptive logger.
struct Adaptive<'a>(&'a mut AdaptiveLogger);

impl TrainObserver for Adaptive<'_> {
    fn train_start(&mut self, config: &RunConfig, _layers: &[LayerInfo]) {
        self.0.on_train_start(config.epochs, data! { "scenario" => config.scenario.name() });
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.0.on_epoch_start(epoch);
    }
    fn batch_start(&mut self, _epoch: u64, batch: u64) {
        self.0.on_batch_start(batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        if let Err(e) = self.0.on_layer_forward(layer.index, &layer.name, output, layer.activation)
        {
            eprintln!("not checked: {e}");
        }
    }
    fn layer_backward(&mut self, layer: &LayerInfo, grad: TensorView<'_>) {
        if let Err(e) = self.0.on_layer_backward(layer.index, &layer.name, grad) {
            eprintln!("not checked: {e}");
        }
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update: f64) {
        if let Err(e) = self.0.on_weight_updated(layer.index, &layer.name, weights, Some(update)) {
            eprintln!("not checked: {e}");
        }
    }
    fn batch_end(&mut self, r: &BatchReport) {
        self.0.on_batch_end(r.batch, data! { "loss" => r.loss, "accuracy" => r.accuracy });
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        self.0.on_epoch_end(r.epoch, data! { "loss" => r.train_loss, "val_loss" => r.val_loss });
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.0.on_train_end(outcome.to_data());
    }
}

fn walk_through() -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("== Part 1: the reference's walk-through");
    // Create a base logger at EXPERT level: the adaptive logger escalates it to that level.
    let base_logger = TrainingLogger::new(LogLevel::Expert)?;
    base_logger.add_backend(Print)?;

    // Wrap it in the adaptive logger (the reference's parameter names set the rule thresholds).
    let config = AnomalyConfig::default()
        .zeros_pct_threshold(50.0) // trigger on >50% dead units
        .gradient_spike_factor(5.0) // trigger on a 5x gradient spike
        .escalation_cooldown(10); // stay escalated for 10 batches
    let mut adaptive = AdaptiveLogger::new(base_logger, config)?;

    adaptive.on_train_start(20, data! { "name" => "mlp" });
    adaptive.on_epoch_start(0);

    // Normal activations: half the elements are zero, as a ReLU layer's are, but every unit
    // fires for some sample. Nothing is recorded at EXPERT detail.
    let normal_activations: Vec<f32> =
        (0..32 * 16).map(|i| if (i + i / 16) % 2 == 0 { 0.0 } else { 0.5 }).collect();
    adaptive.on_batch_start(0);
    adaptive.on_layer_forward(
        0,
        "dense_0",
        TensorView::new(&normal_activations, &[32, 16])?,
        Activation::Relu,
    )?;
    adaptive.on_batch_end(0, data! { "loss" => 0.9 });
    eprintln!("  after normal activations: escalated = {}", adaptive.is_escalated());

    // Dead activations (every unit zero for the whole batch): escalates at once, records the
    // layer at EXPERT detail and emits a warning. (A layer with only some units dead must stay
    // so for `dead_relu_patience` batches first: small batches make healthy units look dead.)
    let dead_activations = vec![0.0f32; 32 * 16];
    adaptive.on_batch_start(1);
    adaptive.on_layer_forward(
        0,
        "dense_0",
        TensorView::new(&dead_activations, &[32, 16])?,
        Activation::Relu,
    )?;
    adaptive.on_batch_end(1, data! { "loss" => 0.9 });
    adaptive.flush()?;
    eprintln!("  after dead activations: escalated = {}", adaptive.is_escalated());

    // Check what anomalies were detected.
    eprintln!("{}", adaptive.get_anomaly_summary());
    adaptive.close()?;
    Ok(())
}

fn real_run() -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("\n== Part 2: a real run with one corrupted batch");
    let count = Count::default();
    let base = TrainingLogger::new(LogLevel::Expert)?;
    base.add_backend(count.clone())?;
    // Customised thresholds, as in the reference.
    let config = AnomalyConfig::default()
        .zeros_pct_threshold(30.0) // more sensitive dead-unit detection
        .gradient_spike_factor(3.0) // more sensitive spike detection
        .loss_spike_pct(400.0) // a loss 5x the highest of the last 20 batches
        .weight_stagnation_window(10) // look at 10 consecutive updates
        .escalation_cooldown(20); // stay in detail mode longer
    let mut adaptive = AdaptiveLogger::new(base, config)?;

    let run = RunConfig::for_scenario(Scenario::LossSpike);
    train(&run, &mut Adaptive(&mut adaptive));
    adaptive.close()?;
    let summary = adaptive.get_anomaly_summary();
    let (events, bytes) = *count.0.lock().unwrap_or_else(PoisonError::into_inner);
    eprintln!("{summary}");
    eprintln!(
        "  wrote {events} events, {bytes} NDJSON bytes (spike injected at {:?})",
        run.inject_spike_at
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    walk_through()?;
    real_run()
}
