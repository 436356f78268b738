//! The [`TrainObserver`] that drives every Observatory feature from obs-testkit's hooks.
//!
//! One base [`TrainingLogger`] (EXPERT) carries the backends; the [`AdaptiveLogger`] wrapping it
//! decides how much of each batch is recorded; [`AutoHealthWarnings`] is attached to the base
//! logger so its warnings reach every backend; [`EpochSummarizer`] aggregates every batch. The
//! findings are printed as they happen.

use obs_testkit::{BatchReport, EpochReport, LayerInfo, RunConfig, TrainObserver, TrainOutcome};
use observatory::adaptive::AdaptiveLogger;
use observatory::core::{
    Data, Event, EventType, LogLevel, TensorStats, TensorView, TrainingLogger, data,
};
use observatory::health::{AutoHealthWarnings, BatchInput, HealthWarning};
use observatory::summary::EpochSummarizer;

use crate::output::{num, say, say_anomaly, say_warning};

/// What the run found, counted as it was printed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    /// Health warnings returned by the rule engine.
    pub(crate) warnings: u64,
    /// Anomalies the adaptive logger emitted (de-duplicated repeats are not printed).
    pub(crate) anomalies: u64,
    /// Batches whose `batch_end` the demo recorded itself because the adaptive logger was calm.
    pub(crate) calm_batches: u64,
}

/// Per-layer numbers of the batch in progress, indexed by layer.
#[derive(Debug, Default)]
struct BatchScratch {
    activations: Vec<Option<TensorStats>>,
    gradient_non_finite: Vec<u64>,
    updates: Vec<Option<f64>>,
    weights: Vec<Option<TensorStats>>,
}

impl BatchScratch {
    fn reset(&mut self, layers: usize) {
        self.activations.clear();
        self.activations.resize(layers, None);
        self.gradient_non_finite.clear();
        self.gradient_non_finite.resize(layers, 0);
        self.updates.clear();
        self.updates.resize(layers, None);
        self.weights.clear();
        self.weights.resize(layers, None);
    }
}

/// Observes a testkit run with the whole Observatory pipeline.
#[derive(Debug)]
pub(crate) struct Pipeline {
    adaptive: AdaptiveLogger,
    base: TrainingLogger,
    health: AutoHealthWarnings,
    summarizer: EpochSummarizer,
    /// `model_info` and the extra `train_start` data (the fingerprint), used once.
    start: Option<(Data, Data)>,
    layers: Vec<String>,
    epoch: u64,
    scratch: BatchScratch,
    tally: Tally,
    /// Hook errors (an empty tensor, a summary out of order): reported, never fatal.
    problems: Vec<String>,
}

impl Pipeline {
    /// Drives `adaptive` (whose base logger carries the backends), `health` (attached to that
    /// base logger) and `summarizer`. `model_info` and `extra` go into `train_start`.
    pub(crate) fn new(
        adaptive: AdaptiveLogger,
        health: AutoHealthWarnings,
        summarizer: EpochSummarizer,
        model_info: Data,
        extra: Data,
    ) -> Self {
        Pipeline {
            base: adaptive.base().clone(),
            adaptive,
            health,
            summarizer,
            start: Some((model_info, extra)),
            layers: Vec::new(),
            epoch: 0,
            scratch: BatchScratch::default(),
            tally: Tally::default(),
            problems: Vec::new(),
        }
    }

    /// The adaptive logger (for its anomaly summary and to close it).
    pub(crate) fn adaptive(&self) -> &AdaptiveLogger {
        &self.adaptive
    }

    /// The health engine (for its summary).
    pub(crate) fn health(&self) -> &AutoHealthWarnings {
        &self.health
    }

    /// What was printed.
    pub(crate) fn tally(&self) -> Tally {
        self.tally
    }

    /// Hook errors met on the way.
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Prints the anomalies the last adaptive hook emitted.
    fn anomalies(&mut self) {
        for a in self.adaptive.latest_anomalies().iter().filter(|a| a.emitted) {
            self.tally.anomalies += 1;
            say_anomaly(a);
        }
    }

    fn warnings(&mut self, found: &[HealthWarning]) {
        for w in found {
            self.tally.warnings += 1;
            say_warning(w);
        }
    }

    fn problem(&mut self, what: String) {
        if self.problems.len() < 100 {
            self.problems.push(what);
        }
    }

    /// Records the batch's metrics and gradient norms when the adaptive logger, being calm,
    /// did not: one small line per batch keeps the dashboard's batch-loss chart, the bridges'
    /// batch series and `obs summary` complete, while the per-layer detail stays adaptive.
    fn record_calm_batch(&mut self, report: &BatchReport, metrics: Data) {
        let mut norms = Data::with_capacity(report.grad_norms.len());
        for (name, norm) in &report.grad_norms {
            norms.insert(name.clone(), *norm);
        }
        let event = Event::new(EventType::BatchEnd, LogLevel::Basic)
            .at(Some(report.epoch), Some(report.batch))
            .data(data! { "metrics" => metrics, "grad_norms" => norms });
        self.base.emit(event);
        self.tally.calm_batches += 1;
    }
}

impl TrainObserver for Pipeline {
    fn train_start(&mut self, config: &RunConfig, layers: &[LayerInfo]) {
        self.layers = layers.iter().map(|l| l.name.clone()).collect();
        let (model_info, extra) = self.start.take().unwrap_or_default();
        self.adaptive.on_train_start_with(config.epochs, model_info, extra);
        self.anomalies();
    }

    fn epoch_start(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.adaptive.on_epoch_start(epoch);
        self.anomalies();
    }

    fn batch_start(&mut self, _epoch: u64, batch: u64) {
        self.scratch.reset(self.layers.len());
        self.adaptive.on_batch_start(batch);
        self.anomalies();
    }

    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        match self.adaptive.on_layer_forward(layer.index, &layer.name, output, layer.activation) {
            Ok(stats) => {
                if let Some(s) = self.scratch.activations.get_mut(layer.index) {
                    *s = Some(stats);
                }
                if let Err(e) =
                    self.summarizer.record_activation_stats(self.epoch, &layer.name, &stats)
                {
                    self.problem(format!("epoch summary: {e}"));
                }
            }
            Err(e) => self.problem(format!("layer_forward of {}: {e}", layer.name)),
        }
        self.anomalies();
    }

    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        match self.adaptive.on_layer_backward(layer.index, &layer.name, weight_grad) {
            Ok(stats) => {
                if let Some(s) = self.scratch.gradient_non_finite.get_mut(layer.index) {
                    *s = stats.nan + stats.inf;
                }
                self.anomalies();
                // The scalar norm too, so escalated batches record `gradient_computed` events
                // (the dashboard's gradient chart); a non-finite gradient was judged above.
                if !stats.has_non_finite() {
                    self.adaptive.on_gradient_computed(&layer.name, stats.l2);
                    self.anomalies();
                }
            }
            Err(e) => self.problem(format!("layer_backward of {}: {e}", layer.name)),
        }
    }

    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        match self.adaptive.on_weight_updated(layer.index, &layer.name, weights, Some(update_norm))
        {
            Ok(stats) => {
                if let Some(s) = self.scratch.weights.get_mut(layer.index) {
                    *s = Some(stats);
                }
                if let Some(s) = self.scratch.updates.get_mut(layer.index) {
                    *s = Some(update_norm);
                }
                if let Err(e) = self.summarizer.record_weight_stats(self.epoch, &layer.name, &stats)
                {
                    self.problem(format!("epoch summary: {e}"));
                }
            }
            Err(e) => self.problem(format!("weight_updated of {}: {e}", layer.name)),
        }
        self.anomalies();
    }

    fn batch_end(&mut self, report: &BatchReport) {
        let metrics = data! { "loss" => report.loss, "accuracy" => report.accuracy };
        let recorded = self.base.summary().count(EventType::BatchEnd);
        self.adaptive.on_batch_end(report.batch, metrics.clone());
        self.anomalies();
        if self.base.summary().count(EventType::BatchEnd) == recorded {
            self.record_calm_batch(report, metrics);
        }

        let grads: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(name, norm)| (name.as_str(), *norm)).collect();
        let names = &self.layers;
        let s = &self.scratch;
        let non_finite: Vec<(&str, u64)> =
            names.iter().zip(&s.gradient_non_finite).map(|(n, c)| (n.as_str(), *c)).collect();
        let acts: Vec<(&str, TensorStats)> = names
            .iter()
            .zip(&s.activations)
            .filter_map(|(n, st)| st.map(|st| (n.as_str(), st)))
            .collect();
        let updates: Vec<(&str, f64)> =
            names.iter().zip(&s.updates).filter_map(|(n, u)| u.map(|u| (n.as_str(), u))).collect();
        let weights: Vec<(&str, TensorStats)> = names
            .iter()
            .zip(&s.weights)
            .filter_map(|(n, st)| st.map(|st| (n.as_str(), st)))
            .collect();
        let input = BatchInput::new(report.epoch, report.batch)
            .loss(report.loss)
            .gradient_norms(&grads)
            .gradient_non_finite(&non_finite)
            .activation_tensors(&acts)
            .update_norms(&updates)
            .weight_tensors(&weights);
        let found = self.health.check_batch(&input);
        let summarized = self.summarizer.record_batch(
            report.epoch,
            &[("loss", report.loss), ("accuracy", report.accuracy)],
            &grads,
        );
        self.warnings(&found);
        if let Err(e) = summarized {
            self.problem(format!("epoch summary: {e}"));
        }
    }

    fn epoch_end(&mut self, report: &EpochReport) {
        match self.summarizer.finalize_epoch(report.epoch) {
            Ok(summary) => say!("{}", summary.format_text().trim_end()),
            Err(e) => self.problem(format!("epoch summary: {e}")),
        }
        say!(
            "  Epoch {} result: loss={} val_loss={} accuracy={} val_accuracy={} ({:.3} s)",
            report.epoch,
            num(report.train_loss),
            num(report.val_loss),
            num(report.train_accuracy),
            num(report.val_accuracy),
            report.duration_s
        );
        let found = self.health.check_epoch(report.epoch, report.train_loss, Some(report.val_loss));
        self.warnings(&found);
        self.adaptive.on_epoch_end(
            report.epoch,
            data! {
                "loss" => report.train_loss,
                "val_loss" => report.val_loss,
                "accuracy" => report.train_accuracy,
                "val_accuracy" => report.val_accuracy,
            },
        );
        self.anomalies();
    }

    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.adaptive.on_train_end(outcome.to_data());
        self.anomalies();
    }
}
