//! What a run did, measured from its tensors with hindsight: the raw material of the labels.
//!
//! [`EvidenceObserver`] watches a `obs_testkit::train` run and keeps, per batch, the loss and
//! each layer's gradient and update norms, and per epoch, each hidden layer's units that were
//! zero for *every* training sample of the epoch (ReLU) and the fraction of its outputs that
//! were saturated (tanh, sigmoid). None of it comes from a rule engine.

use obs_core::{Activation, TensorData, TensorView};
use obs_testkit::{BatchReport, EpochReport, LayerInfo, RunConfig, TrainObserver};

/// One batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchEvidence {
    /// 0-based epoch.
    pub epoch: u64,
    /// 0-based batch within the epoch.
    pub batch: u64,
    /// The batch loss.
    pub loss: f64,
    /// Per layer, in layer order: the L2 norm of the weight gradient.
    pub grads: Vec<f64>,
    /// Per layer, in layer order: the L2 norm of the weight update.
    pub updates: Vec<f64>,
}

/// One epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochEvidence {
    /// 0-based epoch.
    pub epoch: u64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Step (run-wide batch index) of the epoch's first batch.
    pub first_step: usize,
    /// Step of the epoch's last batch.
    pub last_step: usize,
    /// Per layer: for ReLU hidden layers, the fraction of units that output exactly 0 for
    /// every training sample of the epoch; `None` for other layers.
    pub dead_all_inputs: Vec<Option<f64>>,
    /// Per layer: for tanh/sigmoid hidden layers, the fraction of all outputs of the epoch that
    /// were saturated; `None` for other layers.
    pub saturated: Vec<Option<f64>>,
    /// Per layer: for tanh/sigmoid hidden layers, the mean of the activation's derivative over
    /// every output of the epoch, relative to its largest value (1 - a² for tanh, 4a(1 - a) for
    /// sigmoid): how much gradient the layer lets through on average; `None` for other layers.
    pub mean_slope: Vec<Option<f64>>,
    /// Whether every output of every layer in the epoch was finite.
    pub finite_outputs: bool,
}

/// Everything measured about one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    /// The layers, in order (the last is the linear output layer).
    pub layers: Vec<LayerInfo>,
    /// Every batch, in order; a batch's index here is its step.
    pub batches: Vec<BatchEvidence>,
    /// Every epoch, in order.
    pub epochs: Vec<EpochEvidence>,
    /// The batch the run's configuration corrupted, if any.
    pub corrupted: Option<(u64, u64)>,
    /// Number of classes (the untrained loss is about `ln(classes)`).
    pub classes: usize,
}

impl Evidence {
    /// The step of `(epoch, batch)`, if the run had that batch.
    pub fn step_of(&self, epoch: u64, batch: u64) -> Option<usize> {
        self.batches.iter().position(|b| b.epoch == epoch && b.batch == batch)
    }

    /// The last step of `epoch`.
    pub fn last_step_of_epoch(&self, epoch: u64) -> Option<usize> {
        self.epochs.iter().find(|e| e.epoch == epoch).map(|e| e.last_step)
    }

    /// The first step whose loss is NaN or infinite.
    pub fn first_non_finite_loss(&self) -> Option<usize> {
        self.batches.iter().position(|b| !b.loss.is_finite())
    }
}

/// Per-layer accumulators of the epoch in progress.
#[derive(Clone, Debug, Default)]
struct LayerEpoch {
    /// ReLU layers: whether each unit was non-zero for at least one sample.
    active: Vec<bool>,
    saturated: u64,
    slope_sum: f64,
    outputs: u64,
    finite: bool,
}

/// Collects [`Evidence`] from a run.
#[derive(Debug, Default)]
pub struct EvidenceObserver {
    evidence: Evidence,
    current: Vec<LayerEpoch>,
    epoch_first_step: usize,
    grads: Vec<f64>,
    updates: Vec<f64>,
}

impl EvidenceObserver {
    /// An observer with nothing recorded.
    pub fn new() -> Self {
        EvidenceObserver::default()
    }

    /// The evidence collected.
    pub fn into_evidence(self) -> Evidence {
        self.evidence
    }

    fn reset_epoch(&mut self) {
        self.current =
            vec![LayerEpoch { finite: true, ..LayerEpoch::default() }; self.evidence.layers.len()];
    }
}

fn values(view: TensorView<'_>) -> Vec<f64> {
    match view.data() {
        TensorData::F32(d) => d.iter().map(|&v| f64::from(v)).collect(),
        TensorData::F64(d) => d.to_vec(),
    }
}

impl TrainObserver for EvidenceObserver {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        self.evidence = Evidence {
            layers: layers.to_vec(),
            corrupted: config.inject_spike_at,
            classes: config.dataset.classes(),
            ..Evidence::default()
        };
        self.reset_epoch();
    }

    fn epoch_start(&mut self, _epoch: u64) {
        self.reset_epoch();
        self.epoch_first_step = self.evidence.batches.len();
    }

    fn batch_start(&mut self, _epoch: u64, _batch: u64) {
        self.updates = vec![f64::NAN; self.evidence.layers.len()];
    }

    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        let hidden = layer.index + 1 < self.evidence.layers.len();
        let Some(acc) = self.current.get_mut(layer.index) else { return };
        let v = values(output);
        acc.finite &= v.iter().all(|x| x.is_finite());
        if !hidden {
            return;
        }
        match layer.activation {
            Activation::Relu => {
                let Some((_, units)) = output.samples_and_units() else { return };
                if acc.active.len() != units {
                    acc.active = vec![false; units];
                }
                for row in v.chunks(units) {
                    for (a, &x) in acc.active.iter_mut().zip(row) {
                        *a |= x != 0.0;
                    }
                }
            }
            Activation::Tanh | Activation::Sigmoid => {
                acc.saturated +=
                    v.iter().filter(|&&x| layer.activation.is_saturated(x)).count() as u64;
                let slope = |a: f64| match layer.activation {
                    Activation::Tanh => 1.0 - a * a,
                    _ => 4.0 * a * (1.0 - a),
                };
                acc.slope_sum += v.iter().filter(|x| x.is_finite()).map(|&a| slope(a)).sum::<f64>();
                acc.outputs += v.len() as u64;
            }
            _ => {}
        }
    }

    fn weight_updated(&mut self, layer: &LayerInfo, _weights: TensorView<'_>, update_norm: f64) {
        if let Some(u) = self.updates.get_mut(layer.index) {
            *u = update_norm;
        }
    }

    fn batch_end(&mut self, report: &BatchReport) {
        self.grads = report.grad_norms.iter().map(|(_, n)| *n).collect();
        self.evidence.batches.push(BatchEvidence {
            epoch: report.epoch,
            batch: report.batch,
            loss: report.loss,
            grads: std::mem::take(&mut self.grads),
            updates: std::mem::take(&mut self.updates),
        });
    }

    fn epoch_end(&mut self, report: &EpochReport) {
        let layers = &self.evidence.layers;
        let dead_all_inputs = self
            .current
            .iter()
            .zip(layers)
            .map(|(acc, l)| {
                (l.activation == Activation::Relu && !acc.active.is_empty()).then(|| {
                    acc.active.iter().filter(|a| !**a).count() as f64 / acc.active.len() as f64
                })
            })
            .collect();
        let saturated = self
            .current
            .iter()
            .map(|acc| (acc.outputs > 0).then(|| acc.saturated as f64 / acc.outputs as f64))
            .collect();
        let mean_slope = self
            .current
            .iter()
            .map(|acc| (acc.outputs > 0).then(|| acc.slope_sum / acc.outputs as f64))
            .collect();
        let first_step = self.epoch_first_step;
        let last_step = self.evidence.batches.len().saturating_sub(1).max(first_step);
        self.evidence.epochs.push(EpochEvidence {
            epoch: report.epoch,
            train_loss: report.train_loss,
            val_loss: report.val_loss,
            first_step,
            last_step,
            dead_all_inputs,
            saturated,
            mean_slope,
            finite_outputs: self.current.iter().all(|acc| acc.finite),
        });
    }
}
