//! One training run observed by both engines at their defaults, by an always-EXPERT logger for
//! the volume comparison, and by the evidence collector, all in the same pass.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use obs_adaptive::{AdaptiveLogger, AnomalyConfig};
use obs_core::{
    Activation, Backend, BackendError, Event, EventType, LogLevel, TensorStats, TensorView,
    TrainingLogger, Value, data, tensor_stats,
};
use obs_health::{AutoHealthWarnings, BatchInput, HealthWarning, WarningConfig};
use obs_testkit::{
    BatchReport, EpochReport, LayerInfo, LoggerObserver, RunConfig, TrainObserver, TrainOutcome,
    model_info, train,
};

use crate::evidence::{Evidence, EvidenceObserver};

/// One finding an engine reported (a health warning or an emitted anomaly).
#[derive(Clone, Debug, PartialEq)]
pub struct Reported {
    /// The names it goes by: the rule name, and the trigger name when it differs.
    pub names: Vec<String>,
    /// The layer, for layer findings.
    pub layer: Option<String>,
    /// The epoch it was reported in.
    pub epoch: u64,
    /// The batch it was reported in (`None` for epoch findings).
    pub batch: Option<u64>,
    /// The message.
    pub message: String,
    /// For the adaptive logger: whether the finding escalated it.
    pub escalated: Option<bool>,
}

/// What the NDJSON logs of a run would hold, measured without writing them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volume {
    /// Events.
    pub events: u64,
    /// NDJSON bytes, newlines included.
    pub bytes: u64,
    /// `(epoch, batch)` of every batch with an EXPERT-level event.
    pub expert_batches: BTreeSet<(u64, u64)>,
}

/// A run, observed.
#[derive(Clone, Debug)]
pub struct Observed {
    /// What the run did.
    pub evidence: Evidence,
    /// `AutoHealthWarnings` with `WarningConfig::default()`, fed every batch and epoch.
    pub health: Vec<Reported>,
    /// `AdaptiveLogger` with `AnomalyConfig::default()`: its emitted findings.
    pub adaptive: Vec<Reported>,
    /// The adaptive logger's log volume.
    pub adaptive_volume: Volume,
    /// Batches the adaptive logger held at EXPERT, and batches it sampled.
    pub adaptive_escalated_batches: u64,
    /// The same run logged at EXPERT throughout.
    pub expert_volume: Volume,
}

#[derive(Debug, Clone, Default)]
struct Counting(Arc<Mutex<(Volume, Vec<Event>)>>);

impl Backend for Counting {
    fn name(&self) -> &str {
        "detect.counting"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (volume, health) = &mut *guard;
        for e in events {
            volume.events += 1;
            volume.bytes += e.to_ndjson().len() as u64 + 1;
            if let (LogLevel::Expert, Some(ep), Some(b)) = (e.level, e.epoch, e.batch) {
                volume.expert_batches.insert((ep, b));
            }
            if e.event_type == EventType::HealthCheck {
                health.push(e.clone());
            }
        }
        Ok(())
    }
}

impl Counting {
    fn take(&self) -> (Volume, Vec<Event>) {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn counted(level: LogLevel) -> anyhow::Result<(TrainingLogger, Counting)> {
    let logger = TrainingLogger::new(level)?;
    let counting = Counting::default();
    logger.add_backend(counting.clone())?;
    Ok((logger, counting))
}

fn reported_from_warning(w: &HealthWarning) -> Reported {
    Reported {
        names: vec![w.rule_name.clone()],
        layer: w.layer_name.clone(),
        epoch: w.epoch.unwrap_or(0),
        batch: w.batch,
        message: w.message.clone(),
        escalated: None,
    }
}

fn reported_from_event(e: &Event) -> Reported {
    let mut names = Vec::new();
    for key in ["rule_name", "trigger"] {
        if let Some(n) = e.data.get(key).and_then(Value::as_str)
            && !names.iter().any(|m: &String| m == n)
        {
            names.push(n.to_owned());
        }
    }
    Reported {
        names,
        layer: e.layer_name.clone(),
        epoch: e.epoch.unwrap_or(0),
        batch: e.batch,
        message: e.message.clone(),
        escalated: e.data.get("escalated").and_then(Value::as_bool),
    }
}

/// Feeds `AutoHealthWarnings` what a training loop has: the loss, gradient norms, the kernel's
/// statistics of every layer's output and weights, and update norms.
#[derive(Debug)]
struct HealthObserver {
    engine: AutoHealthWarnings,
    layers: Vec<LayerInfo>,
    activations: Vec<TensorStats>,
    weights: Vec<TensorStats>,
    updates: Vec<f64>,
    found: Vec<Reported>,
}

impl TrainObserver for HealthObserver {
    fn train_start(&mut self, _config: &RunConfig, layers: &[LayerInfo]) {
        self.layers = layers.to_vec();
    }
    fn batch_start(&mut self, _epoch: u64, _batch: u64) {
        self.activations.clear();
        self.weights.clear();
        self.updates.clear();
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        self.activations.push(tensor_stats(output, layer.activation));
    }
    fn weight_updated(&mut self, _layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        self.weights.push(tensor_stats(weights, Activation::None));
        self.updates.push(update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
        let grads: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(n, g)| (n.as_str(), *g)).collect();
        let acts: Vec<(&str, TensorStats)> =
            names.iter().copied().zip(self.activations.iter().copied()).collect();
        let weights: Vec<(&str, TensorStats)> =
            names.iter().copied().zip(self.weights.iter().copied()).collect();
        let updates: Vec<(&str, f64)> =
            names.iter().copied().zip(self.updates.iter().copied()).collect();
        let input = BatchInput::new(report.epoch, report.batch)
            .loss(report.loss)
            .gradient_norms(&grads)
            .activation_tensors(&acts)
            .update_norms(&updates)
            .weight_tensors(&weights);
        let found = self.engine.check_batch(&input);
        self.found.extend(found.iter().map(reported_from_warning));
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        let val = report.val_loss.is_finite().then_some(report.val_loss);
        let found = self.engine.check_epoch(report.epoch, report.train_loss, val);
        self.found.extend(found.iter().map(reported_from_warning));
    }
}

/// Drives an `AdaptiveLogger` from the testkit's hooks, as a loop with tensors on the host would.
#[derive(Debug)]
struct AdaptiveObserver {
    logger: AdaptiveLogger,
}

impl TrainObserver for AdaptiveObserver {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        self.logger.on_train_start(config.epochs, model_info(config, layers));
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.logger.on_epoch_start(epoch);
    }
    fn batch_start(&mut self, _epoch: u64, batch: u64) {
        self.logger.on_batch_start(batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        // Testkit tensors are never empty; an error would only skip the layer.
        let _ = self.logger.on_layer_forward(layer.index, &layer.name, output, layer.activation);
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        let _ = self.logger.on_layer_backward(layer.index, &layer.name, weight_grad);
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        let _ = self.logger.on_weight_updated(layer.index, &layer.name, weights, Some(update_norm));
    }
    fn batch_end(&mut self, report: &BatchReport) {
        for (name, norm) in &report.grad_norms {
            self.logger.on_gradient_computed(name, *norm);
        }
        self.logger.on_batch_end(
            report.batch,
            data! { "loss" => report.loss, "accuracy" => report.accuracy },
        );
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        self.logger.on_epoch_end(
            report.epoch,
            data! {
                "loss" => report.train_loss,
                "val_loss" => report.val_loss,
                "accuracy" => report.train_accuracy,
                "val_accuracy" => report.val_accuracy,
            },
        );
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.logger.on_train_end(outcome.to_data());
    }
}

/// Trains `config` once, observed by everything at once.
///
/// # Errors
/// When a logger's bus thread cannot start or close.
pub fn observe(config: &RunConfig) -> anyhow::Result<Observed> {
    let (base, adaptive_counting) = counted(LogLevel::Expert)?;
    let adaptive = AdaptiveLogger::new(base, AnomalyConfig::default())?;
    let (expert, expert_counting) = counted(LogLevel::Expert)?;
    let mut evidence = EvidenceObserver::new();
    let mut health = HealthObserver {
        engine: AutoHealthWarnings::new(WarningConfig::default())?,
        layers: Vec::new(),
        activations: Vec::new(),
        weights: Vec::new(),
        updates: Vec::new(),
        found: Vec::new(),
    };
    let mut adaptive = AdaptiveObserver { logger: adaptive };
    let mut expert = LoggerObserver::new(expert);
    {
        let mut all: Vec<&mut dyn TrainObserver> =
            vec![&mut evidence, &mut health, &mut adaptive, &mut expert];
        train(config, &mut all);
    }
    adaptive.logger.close()?;
    expert.logger().close()?;
    let (adaptive_volume, events) = adaptive_counting.take();
    let (expert_volume, _) = expert_counting.take();
    Ok(Observed {
        evidence: evidence.into_evidence(),
        health: health.found,
        adaptive: events.iter().map(reported_from_event).collect(),
        adaptive_escalated_batches: adaptive.logger.get_anomaly_summary().escalated_batches,
        adaptive_volume,
        expert_volume,
    })
}
