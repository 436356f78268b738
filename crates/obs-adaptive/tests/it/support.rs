//! Shared helpers: a counting backend and an observer that drives an `AdaptiveLogger`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use obs_adaptive::{AdaptiveLogger, AnomalyConfig};
use obs_core::{
    Backend, BackendError, Event, EventType, LogLevel, TensorView, TrainingLogger, data,
};
use obs_testkit::{BatchReport, EpochReport, LayerInfo, RunConfig, TrainObserver, TrainOutcome};

/// What a [`Counting`] backend saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    /// Events received.
    pub(crate) events: u64,
    /// Serialized NDJSON bytes, newline included.
    pub(crate) bytes: u64,
    /// Events per type.
    pub(crate) by_type: std::collections::BTreeMap<EventType, u64>,
    /// `(epoch, batch)` of every EXPERT event (layer statistics).
    pub(crate) expert_batches: BTreeSet<(u64, u64)>,
    /// `(epoch, batch, type, layer)` of every EXPERT event.
    pub(crate) expert: BTreeSet<(u64, u64, EventType, String)>,
    /// The `health_check` events.
    pub(crate) health: Vec<Event>,
}

impl Tally {
    /// Events of one type.
    pub(crate) fn count(&self, t: EventType) -> u64 {
        self.by_type.get(&t).copied().unwrap_or(0)
    }
}

/// A backend that measures what would be written, without writing it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counting(pub(crate) Arc<Mutex<Tally>>);

impl Counting {
    pub(crate) fn tally(&self) -> Tally {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Backend for Counting {
    fn name(&self) -> &str {
        "test.counting"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for e in events {
            t.events += 1;
            t.bytes += e.to_ndjson().len() as u64 + 1;
            *t.by_type.entry(e.event_type).or_default() += 1;
            if let (LogLevel::Expert, Some(ep), Some(b)) = (e.level, e.epoch, e.batch) {
                t.expert_batches.insert((ep, b));
                let layer = e.layer_name.clone().unwrap_or_default();
                t.expert.insert((ep, b, e.event_type, layer));
            }
            if e.event_type == EventType::HealthCheck {
                t.health.push(e.clone());
            }
        }
        Ok(())
    }
}

/// A logger at `level` with a counting backend.
pub(crate) fn counted_logger(level: LogLevel) -> (TrainingLogger, Counting) {
    let logger = TrainingLogger::new(level).expect("bus thread starts");
    let counting = Counting::default();
    logger.add_backend(counting.clone()).expect("logger is open");
    (logger, counting)
}

/// An adaptive logger (default config unless given) over an EXPERT base with a counting backend.
pub(crate) fn adaptive(config: Option<AnomalyConfig>) -> (AdaptiveLogger, Counting) {
    let (base, counting) = counted_logger(LogLevel::Expert);
    let logger = AdaptiveLogger::new(base, config.unwrap_or_default()).expect("valid config");
    (logger, counting)
}

/// Drives an [`AdaptiveLogger`] from `obs_testkit::train`.
#[derive(Debug)]
pub(crate) struct AdaptiveObserver {
    pub(crate) logger: AdaptiveLogger,
}

impl TrainObserver for AdaptiveObserver {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        // The same model info `obs_testkit::LoggerObserver` records, so byte counts compare.
        let info = obs_testkit::model_info(config, layers);
        self.logger.on_train_start(config.epochs, info);
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.logger.on_epoch_start(epoch);
    }
    fn batch_start(&mut self, _epoch: u64, batch: u64) {
        self.logger.on_batch_start(batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        let r = self.logger.on_layer_forward(layer.index, &layer.name, output, layer.activation);
        assert!(r.is_ok(), "testkit tensors are never empty");
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        let r = self.logger.on_layer_backward(layer.index, &layer.name, weight_grad);
        assert!(r.is_ok());
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        let r = self.logger.on_weight_updated(layer.index, &layer.name, weights, Some(update_norm));
        assert!(r.is_ok());
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

/// `(epoch, batch)` of an event, for events stamped with both.
pub(crate) fn pos(e: &Event) -> Option<(u64, u64)> {
    Some((e.epoch?, e.batch?))
}

/// A `[rows, cols]` ReLU-like activation: about half the elements zero, but every unit (column)
/// alive in some row.
pub(crate) fn healthy_relu(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            if (r + c) % 2 == 0 { 0.0 } else { 0.1 + (i % 7) as f32 * 0.2 }
        })
        .collect()
}

/// `[rows, cols]` where the first `dead` columns are zero in every row.
pub(crate) fn with_dead_units(rows: usize, cols: usize, dead: usize) -> Vec<f32> {
    let mut v = healthy_relu(rows, cols);
    for r in 0..rows {
        for c in 0..dead {
            v[r * cols + c] = 0.0;
        }
    }
    v
}

/// One calm batch over two layers with a finite loss: forward, backward, update, end.
pub(crate) fn calm_batch(logger: &mut AdaptiveLogger, batch: u64, loss: f64) {
    let acts = healthy_relu(8, 4);
    let grad: Vec<f32> = (0..16).map(|i| 0.01 + i as f32 * 0.001).collect();
    let weights: Vec<f32> = (0..16).map(|i| (i as f32 - 8.0) * 0.05).collect();
    logger.on_batch_start(batch);
    for (i, name) in ["dense_0", "dense_1"].into_iter().enumerate() {
        let view = TensorView::new(&acts, &[8, 4]).expect("shape matches");
        logger.on_layer_forward(i, name, view, obs_core::Activation::Relu).expect("non-empty");
    }
    for (i, name) in ["dense_1", "dense_0"].into_iter().enumerate() {
        let view = TensorView::new(&grad, &[4, 4]).expect("shape matches");
        logger.on_layer_backward(1 - i, name, view).expect("non-empty");
    }
    for (i, name) in ["dense_0", "dense_1"].into_iter().enumerate() {
        let view = TensorView::new(&weights, &[4, 4]).expect("shape matches");
        logger.on_weight_updated(i, name, view, Some(1e-3)).expect("non-empty");
    }
    logger.on_batch_end(batch, data! { "loss" => loss, "accuracy" => 0.5 });
}
