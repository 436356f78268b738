//! The observer trait the trainer calls, the reports it passes, and ready-made observers.

use obs_core::{Activation, Data, TensorView, TrainingLogger, data};

use crate::RunConfig;
use crate::net::l2_norm;

/// A layer of the network, as observers see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LayerInfo {
    /// Position in the network, from 0 (the first hidden layer).
    pub index: usize,
    /// `"dense_0"`, `"dense_1"`, ...; the last one is the output layer.
    pub name: String,
    /// The layer's activation; the output layer is [`Activation::Linear`] (its outputs are
    /// logits, read through softmax cross-entropy).
    pub activation: Activation,
}

/// What one training batch did.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchReport {
    /// 0-based epoch.
    pub epoch: u64,
    /// 0-based batch within the epoch.
    pub batch: u64,
    /// Mean cross-entropy over the batch (NaN or infinite once training diverged).
    pub loss: f64,
    /// Fraction of the batch classified correctly.
    pub accuracy: f64,
    /// Per layer, in layer order: the L2 norm of the weight gradient (non-finite when the
    /// gradient has a NaN or infinite element).
    pub grad_norms: Vec<(String, f64)>,
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 0-based epoch.
    pub epoch: u64,
    /// Mean training loss over the epoch's samples (NaN with no training samples).
    pub train_loss: f64,
    /// Validation loss after the epoch (NaN with no validation samples).
    pub val_loss: f64,
    /// Training accuracy over the epoch.
    pub train_accuracy: f64,
    /// Validation accuracy after the epoch.
    pub val_accuracy: f64,
    /// Wall-clock seconds the epoch took, validation included.
    pub duration_s: f64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    /// Epochs run (always the configured number: a diverged run keeps going).
    pub epochs_run: u64,
    /// Training loss of the last epoch.
    pub final_train_loss: f64,
    /// Validation loss after the last epoch.
    pub final_val_loss: f64,
    /// Validation accuracy after the last epoch.
    pub final_val_accuracy: f64,
    /// Whether any batch loss was NaN or infinite.
    pub diverged: bool,
}

impl TrainOutcome {
    /// The outcome as event data (`final_train_loss`, ..., `diverged`).
    pub fn to_data(&self) -> Data {
        data! {
            "epochs_run" => self.epochs_run,
            "loss" => self.final_train_loss,
            "val_loss" => self.final_val_loss,
            "val_accuracy" => self.final_val_accuracy,
            "diverged" => self.diverged,
        }
    }
}

/// Receives every step of a [`crate::train`] run.
///
/// Every method has a default no-op body. Per batch the trainer calls, in this order:
/// `batch_start`; `layer_forward` for each layer in order; `layer_backward` for each layer,
/// last to first; `weight_updated` for each layer in order; `batch_end`. Around the batches:
/// `train_start`, then per epoch `epoch_start` ... `epoch_end`, then `train_end`. Validation
/// passes call no hooks. Hooks keep being called after the run diverges (tensors then hold
/// NaN or infinities).
pub trait TrainObserver {
    /// Before the first epoch, with the configuration and the layers.
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        let _ = (config, layers);
    }
    /// An epoch begins.
    fn epoch_start(&mut self, epoch: u64) {
        let _ = epoch;
    }
    /// A batch begins.
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        let _ = (epoch, batch);
    }
    /// A layer's post-activation output, shape `[batch, units]` (logits for the last layer).
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        let _ = (layer, output);
    }
    /// A layer's weight gradient dL/dW, shape `[in, out]`.
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        let _ = (layer, weight_grad);
    }
    /// A layer's weights after the optimiser step, shape `[in, out]`, and the L2 norm of the
    /// change the step made to them.
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        let _ = (layer, weights, update_norm);
    }
    /// After the backward pass and before the optimiser step, every gradient of the step, in
    /// layer order (weights `[in, out]` then bias `[out]` of each layer), to be changed in
    /// place: data-parallel training averages them across ranks here (an all-reduce). The
    /// `layer_backward` hooks and the batch report's norms saw the local gradients.
    fn reduce_gradients(&mut self, gradients: &mut [&mut [f32]]) {
        let _ = gradients;
    }
    /// A batch ended.
    fn batch_end(&mut self, report: &BatchReport) {
        let _ = report;
    }
    /// An epoch ended (after validation).
    fn epoch_end(&mut self, report: &EpochReport) {
        let _ = report;
    }
    /// The run ended.
    fn train_end(&mut self, outcome: &TrainOutcome) {
        let _ = outcome;
    }
}

impl TrainObserver for () {}

impl<T: TrainObserver + ?Sized> TrainObserver for &mut T {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        (**self).train_start(config, layers);
    }
    fn epoch_start(&mut self, epoch: u64) {
        (**self).epoch_start(epoch);
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        (**self).batch_start(epoch, batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        (**self).layer_forward(layer, output);
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        (**self).layer_backward(layer, weight_grad);
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        (**self).weight_updated(layer, weights, update_norm);
    }
    fn reduce_gradients(&mut self, gradients: &mut [&mut [f32]]) {
        (**self).reduce_gradients(gradients);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        (**self).batch_end(report);
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        (**self).epoch_end(report);
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        (**self).train_end(outcome);
    }
}

impl<T: TrainObserver + ?Sized> TrainObserver for Box<T> {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        (**self).train_start(config, layers);
    }
    fn epoch_start(&mut self, epoch: u64) {
        (**self).epoch_start(epoch);
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        (**self).batch_start(epoch, batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        (**self).layer_forward(layer, output);
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        (**self).layer_backward(layer, weight_grad);
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        (**self).weight_updated(layer, weights, update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        (**self).batch_end(report);
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        (**self).epoch_end(report);
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        (**self).train_end(outcome);
    }
}

/// Fans out: every hook goes to the first observer, then the second.
impl<A: TrainObserver, B: TrainObserver> TrainObserver for (A, B) {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        self.0.train_start(config, layers);
        self.1.train_start(config, layers);
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.0.epoch_start(epoch);
        self.1.epoch_start(epoch);
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        self.0.batch_start(epoch, batch);
        self.1.batch_start(epoch, batch);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        self.0.layer_forward(layer, output);
        self.1.layer_forward(layer, output);
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        self.0.layer_backward(layer, weight_grad);
        self.1.layer_backward(layer, weight_grad);
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        self.0.weight_updated(layer, weights, update_norm);
        self.1.weight_updated(layer, weights, update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        self.0.batch_end(report);
        self.1.batch_end(report);
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        self.0.epoch_end(report);
        self.1.epoch_end(report);
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.0.train_end(outcome);
        self.1.train_end(outcome);
    }
}

/// Fans out to any number of observers, in order.
impl<T: TrainObserver> TrainObserver for Vec<T> {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        self.iter_mut().for_each(|o| o.train_start(config, layers));
    }
    fn epoch_start(&mut self, epoch: u64) {
        self.iter_mut().for_each(|o| o.epoch_start(epoch));
    }
    fn batch_start(&mut self, epoch: u64, batch: u64) {
        self.iter_mut().for_each(|o| o.batch_start(epoch, batch));
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        self.iter_mut().for_each(|o| o.layer_forward(layer, output));
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        self.iter_mut().for_each(|o| o.layer_backward(layer, weight_grad));
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        self.iter_mut().for_each(|o| o.weight_updated(layer, weights, update_norm));
    }
    fn batch_end(&mut self, report: &BatchReport) {
        self.iter_mut().for_each(|o| o.batch_end(report));
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        self.iter_mut().for_each(|o| o.epoch_end(report));
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.iter_mut().for_each(|o| o.train_end(outcome));
    }
}

/// Keeps every batch and epoch report and the outcome: the run's numbers, for tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Every batch report, in order.
    pub batches: Vec<BatchReport>,
    /// Every epoch report, in order.
    pub epochs: Vec<EpochReport>,
    /// The outcome, once the run ended.
    pub outcome: Option<TrainOutcome>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// The batch losses, in order.
    pub fn batch_losses(&self) -> Vec<f64> {
        self.batches.iter().map(|b| b.loss).collect()
    }
}

impl TrainObserver for History {
    fn batch_end(&mut self, report: &BatchReport) {
        self.batches.push(report.clone());
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        self.epochs.push(report.clone());
    }
    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.outcome = Some(outcome.clone());
    }
}

/// Forwards every hook to an [`obs_core::TrainingLogger`].
///
/// `train_start` becomes `on_train_start` with model info (`name`, `scenario`, `seed`, `layers`,
/// `parameters`, `optimizer`, `learning_rate`, `batch_size`); epochs and batches become the epoch and
/// batch hooks with metrics `{"loss", "accuracy"}` per batch and
/// `{"loss", "val_loss", "accuracy", "val_accuracy"}` per epoch; layer hooks become
/// `on_layer_forward` / `on_layer_backward` / `on_weight_updated` with the tensors, plus
/// `on_gradient_computed` with each weight gradient's L2 norm; `train_end` becomes
/// `on_train_end`. The logger's level decides what is recorded; tensors are only reduced when
/// the level records them.
#[derive(Debug)]
pub struct LoggerObserver {
    logger: TrainingLogger,
}

impl LoggerObserver {
    /// Forwards to `logger` (a clone of a handle shares the same run and bus).
    pub fn new(logger: TrainingLogger) -> Self {
        LoggerObserver { logger }
    }

    /// The logger.
    pub fn logger(&self) -> &TrainingLogger {
        &self.logger
    }

    /// Gives the logger back.
    pub fn into_inner(self) -> TrainingLogger {
        self.logger
    }
}

/// The model description [`LoggerObserver`] records with `train_start`: name, scenario, seed,
/// layers (name and activation), parameter count, optimiser, learning rate and batch size.
pub fn model_info(config: &RunConfig, layers: &[LayerInfo]) -> Data {
    let layer_list: Vec<obs_core::Value> = layers
        .iter()
        .map(|l| data! { "name" => l.name.as_str(), "activation" => l.activation.as_str() }.into())
        .collect();
    data! {
        "name" => "obs-testkit mlp",
        "scenario" => config.scenario.name(),
        "seed" => config.seed,
        "layers" => layer_list,
        "parameters" => config.parameter_count(),
        "optimizer" => config.optimizer.name(),
        "learning_rate" => config.learning_rate,
        "batch_size" => config.batch_size,
    }
}

impl TrainObserver for LoggerObserver {
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
        // Empty tensors are impossible here (every layer has units and every batch rows).
        let _ = self.logger.on_layer_forward(layer.index, &layer.name, output, layer.activation);
    }
    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        let _ = self.logger.on_layer_backward(layer.index, &layer.name, weight_grad);
        if self.logger.enabled(obs_core::LogLevel::Detailed) {
            let norm = match weight_grad.data() {
                obs_core::TensorData::F32(d) => l2_norm(d),
                obs_core::TensorData::F64(d) => d.iter().map(|v| v * v).sum::<f64>().sqrt(),
            };
            self.logger.on_gradient_computed(&layer.name, norm);
        }
    }
    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        let _ = self.logger.on_weight_updated(layer.index, &layer.name, weights, Some(update_norm));
    }
    fn batch_end(&mut self, report: &BatchReport) {
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
