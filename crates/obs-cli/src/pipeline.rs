//! The [`TrainObserver`] that drives every Observatory feature from obs-testkit's hooks.
//!
//! One base [`TrainingLogger`] (EXPERT) carries the backends; the [`AdaptiveLogger`] wrapping it
//! runs the health rules (obs-health's engine, the one implementation of each rule), emits their
//! warnings to every backend and decides how much of each batch is recorded; [`EpochSummarizer`]
//! aggregates every batch. The findings are printed as they happen.

use obs_testkit::{BatchReport, EpochReport, LayerInfo, RunConfig, TrainObserver, TrainOutcome};
use observatory::adaptive::AdaptiveLogger;
use observatory::core::{Data, Event, EventType, LogLevel, TensorView, TrainingLogger, data};
use observatory::summary::EpochSummarizer;

use crate::output::{num, say, say_warning};

/// What the run found, counted as it was printed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    /// Findings the rules reported (de-duplicated repeats are not printed).
    pub(crate) findings: u64,
    /// Batches whose `batch_end` the demo recorded itself because the adaptive logger was calm.
    pub(crate) calm_batches: u64,
}

/// Observes a testkit run with the whole Observatory pipeline.
#[derive(Debug)]
pub(crate) struct Pipeline {
    adaptive: AdaptiveLogger,
    base: TrainingLogger,
    summarizer: EpochSummarizer,
    /// `model_info` and the extra `train_start` data (the fingerprint), used once.
    start: Option<(Data, Data)>,
    epoch: u64,
    tally: Tally,
    /// Hook errors (an empty tensor, a summary out of order): reported, never fatal.
    problems: Vec<String>,
}

impl Pipeline {
    /// Drives `adaptive` (whose base logger carries the backends) and `summarizer`.
    /// `model_info` and `extra` go into `train_start`.
    pub(crate) fn new(
        adaptive: AdaptiveLogger,
        summarizer: EpochSummarizer,
        model_info: Data,
        extra: Data,
    ) -> Self {
        Pipeline {
            base: adaptive.base().clone(),
            adaptive,
            summarizer,
            start: Some((model_info, extra)),
            epoch: 0,
            tally: Tally::default(),
            problems: Vec::new(),
        }
    }

    /// The adaptive logger (for its anomaly summary, its rule engine, and to close it).
    pub(crate) fn adaptive(&self) -> &AdaptiveLogger {
        &self.adaptive
    }

    /// What was printed.
    pub(crate) fn tally(&self) -> Tally {
        self.tally
    }

    /// Hook errors met on the way.
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Prints the findings the last adaptive hook reported.
    fn findings(&mut self) {
        for a in self.adaptive.latest_anomalies() {
            self.tally.findings += 1;
            say_warning(&a.warning);
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
    fn train_start(&mut self, config: &RunConfig, _layers: &[LayerInfo]) {
        let (model_info, extra) = self.start.take().unwrap_or_default();
        self.adaptive.on_train_start_with(config.epochs, model_info, extra);
        self.findings();
    }

    fn epoch_start(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.adaptive.on_epoch_start(epoch);
        self.findings();
    }

    fn batch_start(&mut self, _epoch: u64, batch: u64) {
        self.adaptive.on_batch_start(batch);
        self.findings();
    }

    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        match self.adaptive.on_layer_forward(layer.index, &layer.name, output, layer.activation) {
            Ok(stats) => {
                if let Err(e) =
                    self.summarizer.record_activation_stats(self.epoch, &layer.name, &stats)
                {
                    self.problem(format!("epoch summary: {e}"));
                }
            }
            Err(e) => self.problem(format!("layer_forward of {}: {e}", layer.name)),
        }
        self.findings();
    }

    fn layer_backward(&mut self, layer: &LayerInfo, weight_grad: TensorView<'_>) {
        match self.adaptive.on_layer_backward(layer.index, &layer.name, weight_grad) {
            Ok(stats) => {
                self.findings();
                // The scalar norm too, so escalated batches record `gradient_computed` events
                // (the dashboard's gradient chart); a non-finite gradient was judged above.
                if !stats.has_non_finite() {
                    self.adaptive.on_gradient_computed(&layer.name, stats.l2);
                    self.findings();
                }
            }
            Err(e) => self.problem(format!("layer_backward of {}: {e}", layer.name)),
        }
    }

    fn weight_updated(&mut self, layer: &LayerInfo, weights: TensorView<'_>, update_norm: f64) {
        match self.adaptive.on_weight_updated(layer.index, &layer.name, weights, Some(update_norm))
        {
            Ok(stats) => {
                if let Err(e) = self.summarizer.record_weight_stats(self.epoch, &layer.name, &stats)
                {
                    self.problem(format!("epoch summary: {e}"));
                }
            }
            Err(e) => self.problem(format!("weight_updated of {}: {e}", layer.name)),
        }
        self.findings();
    }

    fn batch_end(&mut self, report: &BatchReport) {
        let metrics = data! { "loss" => report.loss, "accuracy" => report.accuracy };
        let recorded = self.base.summary().count(EventType::BatchEnd);
        self.adaptive.on_batch_end(report.batch, metrics.clone());
        self.findings();
        if self.base.summary().count(EventType::BatchEnd) == recorded {
            self.record_calm_batch(report, metrics);
        }

        let grads: Vec<(&str, f64)> =
            report.grad_norms.iter().map(|(name, norm)| (name.as_str(), *norm)).collect();
        let summarized = self.summarizer.record_batch(
            report.epoch,
            &[("loss", report.loss), ("accuracy", report.accuracy)],
            &grads,
        );
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
        self.adaptive.on_epoch_end(
            report.epoch,
            data! {
                "loss" => report.train_loss,
                "val_loss" => report.val_loss,
                "accuracy" => report.train_accuracy,
                "val_accuracy" => report.val_accuracy,
            },
        );
        self.findings();
    }

    fn train_end(&mut self, outcome: &TrainOutcome) {
        self.adaptive.on_train_end(outcome.to_data());
        self.findings();
    }
}
