//! [`AdaptiveLogger`]: BASIC detail while training is calm, EXPERT detail around anomalies.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use obs_core::stats::{RollingWindow, Welford};
use obs_core::{
    Activation, Data, Event, EventType, LogLevel, Severity, TensorError, TensorStats, TensorView,
    TrainingLogger, tensor_stats, unix_now,
};

use crate::anomaly::{Anomaly, AnomalySummary, Trigger};
use crate::config::{AnomalyConfig, ConfigError, DeadNeuronMode};

/// Dedup entries are pruned of expired keys once the map grows past this many.
const DEDUP_PRUNE_AT: usize = 256;

/// What an anomaly is about, for de-duplication: a layer or a metric.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Layer(String),
    Metric(String),
}

#[derive(Clone, Copy, Debug)]
struct DedupState {
    last_emitted_step: u64,
    suppressed: u64,
}

/// Per-layer history. Keyed by layer name; created on first sight.
#[derive(Clone, Debug)]
struct LayerState {
    grad: RollingWindow,
    /// Every finite gradient norm of the run: the spike baseline never drops below its mean.
    grad_run: Welford,
    /// The step whose gradient norm was last judged, so a layer reported through both
    /// `on_layer_backward` and `on_gradient_computed` in one batch is judged once.
    grad_step: Option<u64>,
    /// The step of the last forward, to find step boundaries when no batch hooks are called.
    forward_step: Option<u64>,
    stagnant_updates: u64,
    /// `(l2, mean, min, max)` of the weights after the last update: the stagnation proxy when
    /// no update norm is given.
    last_weights: Option<[f64; 4]>,
    last_seen: u64,
}

impl LayerState {
    fn new(window: usize, step: u64) -> Self {
        LayerState {
            grad: RollingWindow::new(window),
            grad_run: Welford::new(),
            grad_step: None,
            forward_step: None,
            stagnant_updates: 0,
            last_weights: None,
            last_seen: step,
        }
    }
}

/// A hook of the current batch kept as numbers, to be recorded if the batch escalates later.
#[derive(Clone, Debug)]
enum Pending {
    BatchStart {
        at: f64,
        epoch: Option<u64>,
        batch: u64,
    },
    Layer {
        at: f64,
        epoch: Option<u64>,
        batch: Option<u64>,
        event_type: EventType,
        index: usize,
        name: String,
        shape: Vec<usize>,
        stats: TensorStats,
        update_norm: Option<f64>,
    },
    Gradient {
        at: f64,
        epoch: Option<u64>,
        batch: Option<u64>,
        name: String,
        norm: f64,
    },
}

#[derive(Clone, Debug, Default)]
struct Counts {
    total: u64,
    emitted: u64,
    suppressed: u64,
    by_type: [u64; Trigger::ALL.len()],
    by_severity: [u64; Severity::ALL.len()],
    escalated_batches: u64,
    escalations: u64,
    batches: u64,
}

/// Where an anomaly was found; the fields every trigger shares.
struct Finding<'a> {
    trigger: Trigger,
    source: EventType,
    layer: Option<(&'a str, Option<usize>)>,
    metric: Option<&'a str>,
    value: f64,
    threshold: f64,
    message: String,
    extra: Data,
}

/// Wraps a [`TrainingLogger`] and records EXPERT detail only around anomalies.
///
/// # Levels
/// The adaptive logger drives the base logger's level: **BASIC** while training is calm (train
/// and epoch events, health checks), and the *detail level* while escalated. The detail level
/// is the base's level when the adaptive logger is created, raised to EXPERT if it was lower
/// (a DEBUG base escalates to DEBUG; a SILENT base stays silent, while anomalies are still
/// found and summarised). Other handles of the same base logger follow the same level.
///
/// # Escalation
/// Every hook's data is checked against [`AnomalyConfig`], whatever the level. An anomaly
/// escalates at once: the hooks of the current batch seen before it (kept as statistics, see
/// [`AnomalyConfig::batch_backfill`]) are recorded with their original time and position, then
/// the triggering event, then the anomaly itself as a `health_check` event. The logger stays
/// escalated for [`AnomalyConfig::escalation_cooldown`] batches after the batch of the last
/// anomaly and then drops back to BASIC.
///
/// # Steps
/// A step is one batch: it ends at [`AdaptiveLogger::on_batch_end`] (or, when a loop calls
/// only [`AdaptiveLogger::on_batch_start`], at the next batch start). Loops that call no batch
/// hook at all get a new step whenever a layer is forwarded a second time. Cooldown and
/// de-duplication count steps, never wall-clock time, so results do not depend on speed.
///
/// # Examples
/// ```
/// use obs_adaptive::{AdaptiveLogger, AnomalyConfig, Trigger};
/// use obs_core::{Activation, LogLevel, TensorView, TrainingLogger, data};
///
/// let base = TrainingLogger::new(LogLevel::Expert)?;
/// let mut adaptive = AdaptiveLogger::new(base, AnomalyConfig::default())?;
/// adaptive.on_train_start(1, data! { "name" => "mlp" });
/// adaptive.on_epoch_start(0);
/// adaptive.on_batch_start(0);
/// let healthy = [0.0f32, 0.4, 1.2, 0.0, 0.7, 0.0];
/// adaptive.on_layer_forward(0, "dense_0", TensorView::new(&healthy[..], &[2, 3])?, Activation::Relu)?;
/// assert!(!adaptive.is_escalated());
/// let dead = [0.0f32; 6];
/// adaptive.on_layer_forward(1, "dense_1", TensorView::new(&dead[..], &[2, 3])?, Activation::Relu)?;
/// assert!(adaptive.is_escalated());
/// adaptive.on_batch_end(0, data! { "loss" => 0.7 });
/// assert_eq!(adaptive.get_anomaly_summary().count(Trigger::DeadNeurons), 1);
/// adaptive.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AdaptiveLogger {
    base: TrainingLogger,
    config: AnomalyConfig,
    calm_level: LogLevel,
    detail_level: LogLevel,

    step: u64,
    /// Whether the current step has seen any hook.
    open: bool,
    /// Whether batch hooks mark the steps (otherwise repeated forwards do).
    batch_hooks: bool,
    escalated: bool,
    last_anomaly_step: Option<u64>,
    /// Whether the current step was escalated at any point.
    step_escalated: bool,
    /// The batch `on_batch_end` was given, for anomalies found before the base logger learns it.
    batch_hint: Option<u64>,

    layers: HashMap<String, LayerState>,
    losses: RollingWindow,
    dedup: HashMap<(Trigger, Subject), DedupState>,
    pending: Vec<Pending>,
    latest: Vec<Anomaly>,

    counts: Counts,
    recent: VecDeque<Anomaly>,
}

impl fmt::Debug for AdaptiveLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLogger")
            .field("base", &self.base)
            .field("escalated", &self.escalated)
            .field("step", &self.step)
            .field("layers", &self.layers.len())
            .field("anomalies", &self.counts.total)
            .finish_non_exhaustive()
    }
}

fn non_finite_counts(stats: &TensorStats) -> Data {
    let mut d = Data::with_capacity(2);
    d.insert("nan_count", stats.nan);
    d.insert("inf_count", stats.inf);
    d
}

impl AdaptiveLogger {
    /// Wraps `base`, setting its level to BASIC until an anomaly escalates it (see the type's
    /// documentation for the levels).
    ///
    /// # Errors
    /// [`ConfigError`] when [`AnomalyConfig::validate`] refuses `config`.
    pub fn new(base: TrainingLogger, config: AnomalyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let given = base.level();
        let (calm_level, detail_level) = if given == LogLevel::Silent {
            (LogLevel::Silent, LogLevel::Silent)
        } else {
            (LogLevel::Basic, given.max(LogLevel::Expert))
        };
        base.set_level(calm_level);
        Ok(AdaptiveLogger {
            losses: RollingWindow::new(config.loss_window),
            base,
            calm_level,
            detail_level,
            step: 0,
            open: false,
            batch_hooks: false,
            escalated: false,
            last_anomaly_step: None,
            step_escalated: false,
            batch_hint: None,
            layers: HashMap::new(),
            dedup: HashMap::new(),
            pending: Vec::new(),
            latest: Vec::new(),
            counts: Counts::default(),
            recent: VecDeque::new(),
            config,
        })
    }

    /// The wrapped logger (to add backends, flush, read its summary...).
    pub fn base(&self) -> &TrainingLogger {
        &self.base
    }

    /// The configuration in use.
    pub fn config(&self) -> &AnomalyConfig {
        &self.config
    }

    /// Whether EXPERT detail is being recorded now.
    pub fn is_escalated(&self) -> bool {
        self.escalated
    }

    /// The level events are recorded at while escalated.
    pub fn detail_level(&self) -> LogLevel {
        self.detail_level
    }

    /// The anomalies found by the most recent hook call (empty when it found none), including
    /// de-duplicated ones (`emitted == false`).
    pub fn latest_anomalies(&self) -> &[Anomaly] {
        &self.latest
    }

    /// What was found since the run started (or the last [`AdaptiveLogger::reset`]).
    pub fn get_anomaly_summary(&self) -> AnomalySummary {
        let c = &self.counts;
        let current = u64::from(self.open);
        AnomalySummary {
            total: c.total,
            emitted: c.emitted,
            suppressed: c.suppressed,
            by_type: Trigger::ALL
                .into_iter()
                .map(|t| (t, c.by_type[t.index()]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            by_severity: Severity::ALL
                .into_iter()
                .map(|s| (s, c.by_severity[s as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            recent: self.recent.iter().cloned().collect(),
            escalated_batches: c.escalated_batches + current * u64::from(self.step_escalated),
            escalations: c.escalations,
            batches: c.batches + current,
            escalated: self.escalated,
        }
    }

    /// Forgets every history, count and de-duplication entry and drops back to BASIC. The base
    /// logger's backends and counters are untouched.
    pub fn reset(&mut self) {
        self.step = 0;
        self.open = false;
        self.batch_hooks = false;
        self.escalated = false;
        self.last_anomaly_step = None;
        self.step_escalated = false;
        self.layers.clear();
        self.losses.clear();
        self.dedup.clear();
        self.pending.clear();
        self.latest.clear();
        self.counts = Counts::default();
        self.recent.clear();
        self.base.set_level(self.calm_level);
    }

    /// Waits until everything recorded so far is written (see [`TrainingLogger::flush`]).
    ///
    /// # Errors
    /// As [`TrainingLogger::flush`].
    pub fn flush(&self) -> Result<(), obs_core::BusError> {
        self.base.flush()
    }

    /// Closes the base logger (see [`TrainingLogger::close`]).
    ///
    /// # Errors
    /// As [`TrainingLogger::close`].
    pub fn close(&self) -> Result<obs_core::CloseReport, obs_core::BusError> {
        self.base.close()
    }

    // ---- hooks -------------------------------------------------------------------------

    /// Training begins (BASIC, always recorded). Starts from a clean state, as
    /// [`AdaptiveLogger::reset`] does.
    pub fn on_train_start(&mut self, total_epochs: u64, model_info: Data) {
        self.on_train_start_with(total_epochs, model_info, Data::new());
    }

    /// [`AdaptiveLogger::on_train_start`] with extra top-level data (see
    /// [`TrainingLogger::on_train_start_with`]).
    pub fn on_train_start_with(&mut self, total_epochs: u64, model_info: Data, extra: Data) {
        self.reset();
        self.base.on_train_start_with(total_epochs, model_info, extra);
    }

    /// Training ends (BASIC, always recorded).
    pub fn on_train_end(&mut self, final_metrics: Data) {
        self.latest.clear();
        self.check_metrics(EventType::TrainEnd, &final_metrics, false);
        self.base.on_train_end(final_metrics);
        self.emit_latest();
    }

    /// An epoch begins (BASIC, always recorded).
    pub fn on_epoch_start(&mut self, epoch: u64) {
        self.latest.clear();
        self.base.on_epoch_start(epoch);
    }

    /// An epoch ends (BASIC, always recorded). A non-finite metric is a NaN/Inf anomaly.
    pub fn on_epoch_end(&mut self, epoch: u64, metrics: Data) {
        self.latest.clear();
        self.check_metrics(EventType::EpochEnd, &metrics, false);
        self.base.on_epoch_end(epoch, metrics);
        self.emit_latest();
    }

    /// A batch begins. Recorded only while escalated.
    pub fn on_batch_start(&mut self, batch: u64) {
        self.latest.clear();
        self.batch_hooks = true;
        if self.open {
            // The previous batch had no `on_batch_end`: this start is its end.
            self.advance();
        }
        self.open = true;
        self.base.on_batch_start(batch);
        if !self.escalated {
            let epoch = self.base.current_epoch();
            self.backfill(Pending::BatchStart { at: unix_now(), epoch, batch });
        }
    }

    /// A batch ends with its metrics. The `loss` metric is checked for spikes against the
    /// rolling baseline; any non-finite metric (a NaN loss, say) is a critical NaN/Inf anomaly
    /// and never enters the baseline. Recorded only while escalated; ends the step.
    pub fn on_batch_end(&mut self, batch: u64, metrics: Data) {
        self.latest.clear();
        self.batch_hooks = true;
        self.open = true;
        self.batch_hint = Some(batch);
        self.check_metrics(EventType::BatchEnd, &metrics, true);
        self.batch_hint = None;
        self.base.on_batch_end(batch, metrics);
        self.emit_latest();
        self.advance();
    }

    /// A layer's output. Always reduced with one pass of [`tensor_stats`] and checked for
    /// NaN/Inf, dead neurons and saturation (by `activation`); the `layer_forward` event is
    /// recorded only while escalated, including the event that escalates.
    ///
    /// # Errors
    /// [`TensorError::Empty`] for an empty tensor (nothing is checked or recorded).
    pub fn on_layer_forward(
        &mut self,
        layer_index: usize,
        layer_name: &str,
        output: TensorView<'_>,
        activation: Activation,
    ) -> Result<TensorStats, TensorError> {
        if output.is_empty() {
            return Err(TensorError::Empty);
        }
        self.latest.clear();
        if !self.batch_hooks {
            self.implicit_step(layer_name);
        }
        self.open = true;
        let stats = tensor_stats(output, activation);
        self.check_forward(layer_index, layer_name, &stats);
        self.record_layer(
            EventType::LayerForward,
            layer_index,
            layer_name,
            output.shape(),
            &stats,
            None,
        );
        self.emit_latest();
        Ok(stats)
    }

    /// A layer's gradient. Its L2 norm (from the kernel) is checked for vanishing, exploding
    /// and spikes, and its elements for NaN/Inf. Recorded only while escalated.
    ///
    /// # Errors
    /// [`TensorError::Empty`] for an empty tensor.
    pub fn on_layer_backward(
        &mut self,
        layer_index: usize,
        layer_name: &str,
        gradient: TensorView<'_>,
    ) -> Result<TensorStats, TensorError> {
        if gradient.is_empty() {
            return Err(TensorError::Empty);
        }
        self.latest.clear();
        self.open = true;
        let stats = tensor_stats(gradient, Activation::None);
        let layer = Some((layer_name, Some(layer_index)));
        if stats.has_non_finite() {
            self.found(Finding {
                trigger: Trigger::NanInf,
                source: EventType::LayerBackward,
                layer,
                metric: None,
                value: (stats.nan + stats.inf) as f64,
                threshold: 0.0,
                message: format!(
                    "NaN/Inf in the gradient of '{layer_name}' ({} NaN, {} Inf)",
                    stats.nan, stats.inf
                ),
                extra: non_finite_counts(&stats),
            });
        } else {
            self.check_grad_norm(EventType::LayerBackward, layer_name, Some(layer_index), stats.l2);
        }
        self.record_layer(
            EventType::LayerBackward,
            layer_index,
            layer_name,
            gradient.shape(),
            &stats,
            None,
        );
        self.emit_latest();
        Ok(stats)
    }

    /// A layer's gradient norm, when the loop has only the scalar. Checked like
    /// [`AdaptiveLogger::on_layer_backward`] unless that hook already judged this layer's
    /// gradient in the current batch. Recorded (DETAILED) only while escalated.
    pub fn on_gradient_computed(&mut self, layer_name: &str, grad_norm: f64) {
        self.latest.clear();
        self.open = true;
        if !grad_norm.is_finite() {
            self.found(Finding {
                trigger: Trigger::NanInf,
                source: EventType::GradientComputed,
                layer: Some((layer_name, None)),
                metric: None,
                value: grad_norm,
                threshold: 0.0,
                message: format!("NaN/Inf gradient norm in '{layer_name}'"),
                extra: Data::new(),
            });
        } else {
            let judged =
                self.layers.get(layer_name).is_some_and(|l| l.grad_step == Some(self.step));
            if !judged {
                self.check_grad_norm(EventType::GradientComputed, layer_name, None, grad_norm);
            }
        }
        if self.escalated {
            self.base.on_gradient_computed(layer_name, grad_norm);
        } else {
            let (epoch, batch) = (self.base.current_epoch(), self.base.current_batch());
            self.backfill(Pending::Gradient {
                at: unix_now(),
                epoch,
                batch,
                name: layer_name.to_owned(),
                norm: grad_norm,
            });
        }
        self.emit_latest();
    }

    /// A layer's weights after an optimiser step, with the norm of the update when known.
    /// Checked for NaN/Inf and for stagnation: an update below
    /// [`AnomalyConfig::weight_stagnation_delta`] for
    /// [`AnomalyConfig::weight_stagnation_window`] consecutive updates. Without an update norm
    /// the change of the weights' L2 norm, mean, min and max since the last update stands in
    /// for it. Recorded only while escalated.
    ///
    /// # Errors
    /// [`TensorError::Empty`] for an empty tensor.
    pub fn on_weight_updated(
        &mut self,
        layer_index: usize,
        layer_name: &str,
        weights: TensorView<'_>,
        update_norm: Option<f64>,
    ) -> Result<TensorStats, TensorError> {
        if weights.is_empty() {
            return Err(TensorError::Empty);
        }
        self.latest.clear();
        self.open = true;
        let stats = tensor_stats(weights, Activation::None);
        self.check_weights(layer_index, layer_name, &stats, update_norm);
        self.record_layer(
            EventType::WeightUpdated,
            layer_index,
            layer_name,
            weights.shape(),
            &stats,
            update_norm,
        );
        self.emit_latest();
        Ok(stats)
    }

    /// Passes a health finding (from another analyser, say) straight to the base logger.
    pub fn on_health_check(
        &mut self,
        severity: Severity,
        message: impl Into<String>,
        layer_name: Option<&str>,
        data: Data,
    ) {
        self.base.on_health_check(severity, message, layer_name, data);
    }

    // ---- checks ------------------------------------------------------------------------

    fn check_metrics(&mut self, source: EventType, metrics: &Data, judge_loss: bool) {
        for (name, value) in metrics {
            let Some(x) = value.as_f64() else { continue };
            if !x.is_finite() {
                self.found(Finding {
                    trigger: Trigger::NanInf,
                    source,
                    layer: None,
                    metric: Some(name),
                    value: x,
                    threshold: 0.0,
                    message: format!("NaN/Inf detected in {name}: {x}"),
                    extra: Data::new(),
                });
            } else if judge_loss && name == "loss" {
                self.check_loss(x);
            }
        }
    }

    fn check_loss(&mut self, loss: f64) {
        let c = &self.config;
        // An infinite percentage switches the trigger off (and would make `0 * inf` NaN).
        if c.loss_spike_pct.is_finite() && self.losses.len() >= c.loss_min_history {
            let baseline = self.losses.mean();
            // `abs` keeps the relative test meaningful for losses that can be negative.
            let relative = baseline + baseline.abs() * c.loss_spike_pct / 100.0;
            let threshold = relative.max(baseline + c.loss_spike_min_delta);
            if loss > threshold {
                let pct = if baseline == 0.0 {
                    f64::INFINITY
                } else {
                    (loss - baseline) / baseline.abs() * 100.0
                };
                self.found(Finding {
                    trigger: Trigger::LossSpike,
                    source: EventType::BatchEnd,
                    layer: None,
                    metric: Some("loss"),
                    value: loss,
                    threshold,
                    message: format!(
                        "Loss spike: {loss:.4} is {pct:.0}% above the rolling baseline {baseline:.4}"
                    ),
                    extra: Data::new().with("baseline", baseline).with("increase_pct", pct),
                });
            }
        }
        // A spike enters the window too: a lasting level shift becomes the new normal instead
        // of firing forever, and a repeat right after a spike is judged against a raised bar.
        self.losses.push(loss);
    }

    fn check_forward(&mut self, index: usize, name: &str, stats: &TensorStats) {
        let layer = Some((name, Some(index)));
        if stats.has_non_finite() {
            self.found(Finding {
                trigger: Trigger::NanInf,
                source: EventType::LayerForward,
                layer,
                metric: None,
                value: (stats.nan + stats.inf) as f64,
                threshold: 0.0,
                message: format!(
                    "NaN/Inf in the output of '{name}' ({} NaN, {} Inf)",
                    stats.nan, stats.inf
                ),
                extra: non_finite_counts(stats),
            });
        }
        let threshold = self.config.zeros_pct_threshold;
        match self.config.dead_neuron_mode {
            DeadNeuronMode::DeadUnits => {
                if let Some(dead) = stats.dead_units {
                    let pct = stats.dead_units_pct().unwrap_or(0.0);
                    if pct > threshold {
                        self.found(Finding {
                            trigger: Trigger::DeadNeurons,
                            source: EventType::LayerForward,
                            layer,
                            metric: None,
                            value: pct,
                            threshold,
                            message: format!(
                                "Dead neurons in '{name}': {pct:.1}% of units ({} of {}) are zero for the whole batch",
                                dead.dead, dead.units
                            ),
                            extra: Data::new()
                                .with("dead_units", dead.dead)
                                .with("units", dead.units)
                                .with("mode", "dead_units"),
                        });
                    }
                }
            }
            DeadNeuronMode::ElementZeros => {
                let pct = stats.zeros_pct();
                if pct > threshold {
                    self.found(Finding {
                        trigger: Trigger::DeadNeurons,
                        source: EventType::LayerForward,
                        layer,
                        metric: None,
                        value: pct,
                        threshold,
                        message: format!("Dead neurons in '{name}': {pct:.1}% of outputs are zero"),
                        extra: Data::new().with("mode", "element_zeros"),
                    });
                }
            }
        }
        let sat = stats.saturation_pct();
        let threshold = self.config.saturation_pct_threshold;
        if sat > threshold {
            self.found(Finding {
                trigger: Trigger::ActivationSaturation,
                source: EventType::LayerForward,
                layer,
                metric: None,
                value: sat,
                threshold,
                message: format!(
                    "Activations saturated in '{name}': {sat:.1}% of {} outputs",
                    stats.activation
                ),
                extra: Data::new().with("activation", stats.activation.as_str()),
            });
        }
    }

    fn check_grad_norm(&mut self, source: EventType, name: &str, index: Option<usize>, norm: f64) {
        let c = &self.config;
        let (vanishing, exploding, factor) =
            (c.vanishing_gradient_l2, c.exploding_gradient_l2, c.gradient_spike_factor);
        let min_history = c.gradient_min_history;
        let layer = Some((name, index));
        if norm < vanishing {
            self.found(Finding {
                trigger: Trigger::VanishingGradient,
                source,
                layer,
                metric: None,
                value: norm,
                threshold: vanishing,
                message: format!("Vanishing gradient in '{name}': norm {norm:.3e} < {vanishing:e}"),
                extra: Data::new(),
            });
        }
        if norm > exploding {
            self.found(Finding {
                trigger: Trigger::ExplodingGradient,
                source,
                layer,
                metric: None,
                value: norm,
                threshold: exploding,
                message: format!("Exploding gradient in '{name}': norm {norm:.3e} > {exploding}"),
                extra: Data::new(),
            });
        }
        let step = self.step;
        let Some(state) = self.layer_state(name) else { return };
        state.grad_step = Some(step);
        // Near convergence a layer's recent norms can be tiny and heavy-tailed: a routine batch
        // is then many times the rolling mean. Judging against the larger of the rolling mean
        // and the run's mean keeps such batches quiet while real spikes still stand out.
        let baseline =
            (state.grad.len() >= min_history).then(|| state.grad.mean().max(state.grad_run.mean()));
        state.grad.push(norm);
        state.grad_run.push(norm);
        if let Some(mean) = baseline {
            let threshold = factor * mean;
            if mean > 0.0 && norm > threshold {
                self.found(Finding {
                    trigger: Trigger::GradientSpike,
                    source,
                    layer,
                    metric: None,
                    value: norm,
                    threshold,
                    message: format!(
                        "Gradient spike in '{name}': norm {norm:.3e} is {:.1}x its baseline {mean:.3e}",
                        norm / mean
                    ),
                    extra: Data::new().with("baseline", mean).with("factor", norm / mean),
                });
            }
        }
    }

    fn check_weights(
        &mut self,
        index: usize,
        name: &str,
        stats: &TensorStats,
        update_norm: Option<f64>,
    ) {
        let layer = Some((name, Some(index)));
        let bad_update = update_norm.filter(|u| !u.is_finite());
        if stats.has_non_finite() || bad_update.is_some() {
            let mut extra = non_finite_counts(stats);
            if let Some(u) = bad_update {
                extra.insert("update_norm", u);
            }
            self.found(Finding {
                trigger: Trigger::NanInf,
                source: EventType::WeightUpdated,
                layer,
                metric: None,
                value: (stats.nan + stats.inf) as f64,
                threshold: 0.0,
                message: format!(
                    "NaN/Inf in the weights or update of '{name}' ({} NaN, {} Inf)",
                    stats.nan, stats.inf
                ),
                extra,
            });
        }
        let (delta, window) =
            (self.config.weight_stagnation_delta, self.config.weight_stagnation_window as u64);
        let now = [stats.l2, stats.mean, stats.min, stats.max];
        let Some(state) = self.layer_state(name) else { return };
        let change = match update_norm {
            Some(u) => Some(u),
            None => state.last_weights.map(|before| {
                before.iter().zip(&now).map(|(b, a)| (a - b).abs()).fold(0.0, f64::max)
            }),
        };
        state.last_weights = (!stats.has_non_finite()).then_some(now);
        let consecutive = match change {
            Some(d) if d.is_finite() && d < delta => {
                state.stagnant_updates += 1;
                state.stagnant_updates
            }
            Some(_) => {
                state.stagnant_updates = 0;
                0
            }
            // The first update without a norm has nothing to compare with.
            None => state.stagnant_updates,
        };
        if consecutive >= window {
            let d = change.unwrap_or(0.0);
            self.found(Finding {
                trigger: Trigger::WeightStagnation,
                source: EventType::WeightUpdated,
                layer,
                metric: None,
                value: d,
                threshold: delta,
                message: format!(
                    "Weight stagnation in '{name}': updates below {delta:e} for {consecutive} consecutive steps"
                ),
                extra: Data::new()
                    .with("consecutive", consecutive)
                    .with("measure", if update_norm.is_some() { "update_norm" } else { "stats_change" }),
            });
        }
    }

    // ---- state -------------------------------------------------------------------------

    fn layer_state(&mut self, name: &str) -> Option<&mut LayerState> {
        let step = self.step;
        if !self.layers.contains_key(name) {
            if self.layers.len() >= self.config.max_layers {
                // Forget the layer seen least recently; names beyond the model's layers are
                // usually generated, and bounded memory matters more than their history.
                if let Some(oldest) =
                    self.layers.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone())
                {
                    self.layers.remove(&oldest);
                }
            }
            self.layers.insert(name.to_owned(), LayerState::new(self.config.gradient_window, step));
        }
        // Always `Some`: the key was inserted above when missing.
        let state = self.layers.get_mut(name)?;
        state.last_seen = step;
        Some(state)
    }

    /// Without batch hooks, a second forward of the same layer starts a new step.
    fn implicit_step(&mut self, name: &str) {
        let step = self.step;
        let repeated = self.layer_state(name).is_some_and(|s| s.forward_step == Some(step));
        if repeated {
            self.advance();
        }
        let step = self.step;
        if let Some(state) = self.layer_state(name) {
            state.forward_step = Some(step);
        }
    }

    fn found(&mut self, f: Finding<'_>) {
        let step = self.step;
        let subject = match (f.layer, f.metric) {
            (Some((name, _)), _) => Subject::Layer(name.to_owned()),
            (None, Some(m)) => Subject::Metric(m.to_owned()),
            (None, None) => Subject::Metric(String::new()),
        };
        let window = self.config.dedup_window;
        let (emitted, repeats) = match self.dedup.get_mut(&(f.trigger, subject.clone())) {
            Some(d) if window > 0 && step < d.last_emitted_step.saturating_add(window) => {
                d.suppressed += 1;
                (false, 0)
            }
            Some(d) => {
                let repeats = d.suppressed;
                *d = DedupState { last_emitted_step: step, suppressed: 0 };
                (true, repeats)
            }
            None => {
                self.dedup.insert(
                    (f.trigger, subject),
                    DedupState { last_emitted_step: step, suppressed: 0 },
                );
                (true, 0)
            }
        };
        let severity = f.trigger.severity();
        let c = &mut self.counts;
        c.total += 1;
        c.by_type[f.trigger.index()] += 1;
        c.by_severity[severity as usize] += 1;
        if emitted {
            c.emitted += 1;
        } else {
            c.suppressed += 1;
        }
        let anomaly = Anomaly {
            trigger: f.trigger,
            severity,
            source: f.source,
            layer_name: f.layer.map(|(n, _)| n.to_owned()),
            layer_index: f.layer.and_then(|(_, i)| i).map(|i| i as u64),
            metric: f.metric.map(str::to_owned),
            value: f.value,
            threshold: f.threshold,
            epoch: self.base.current_epoch(),
            batch: self.batch_hint.or_else(|| self.base.current_batch()),
            step,
            repeats,
            emitted,
            message: f.message,
            extra: f.extra,
        };
        if emitted && self.config.max_recent > 0 {
            if self.recent.len() >= self.config.max_recent {
                self.recent.pop_front();
            }
            self.recent.push_back(anomaly.clone());
        }
        self.latest.push(anomaly);
        self.escalate();
    }

    fn escalate(&mut self) {
        self.last_anomaly_step = Some(self.step);
        self.step_escalated = true;
        if self.escalated {
            return;
        }
        self.escalated = true;
        self.counts.escalations += 1;
        self.base.set_level(self.detail_level);
        for pending in std::mem::take(&mut self.pending) {
            let event = self.pending_event(pending);
            self.base.emit(event);
        }
    }

    fn pending_event(&self, pending: Pending) -> Event {
        match pending {
            Pending::BatchStart { at, epoch, batch } => {
                let mut e =
                    Event::new(EventType::BatchStart, LogLevel::Detailed).at(epoch, Some(batch));
                e.timestamp = at;
                e
            }
            Pending::Layer {
                at,
                epoch,
                batch,
                event_type,
                index,
                name,
                shape,
                stats,
                update_norm,
            } => {
                let mut e = self.base.layer_event(event_type, index, &name, &shape, &stats);
                if let Some(u) = update_norm {
                    e.data.insert("update_norm", u);
                }
                e.timestamp = at;
                e.epoch = epoch;
                e.batch = batch;
                e
            }
            Pending::Gradient { at, epoch, batch, name, norm } => {
                // The same event `TrainingLogger::on_gradient_computed` records.
                let severity = if norm.is_finite() { Severity::Info } else { Severity::Critical };
                let mut e = Event::new(EventType::GradientComputed, LogLevel::Detailed)
                    .at(epoch, batch)
                    .severity(severity)
                    .field("grad_norm", norm);
                e.layer_name = Some(name);
                e.timestamp = at;
                e
            }
        }
    }

    fn backfill(&mut self, pending: Pending) {
        if self.pending.len() < self.config.batch_backfill {
            self.pending.push(pending);
        }
    }

    fn record_layer(
        &mut self,
        event_type: EventType,
        index: usize,
        name: &str,
        shape: Vec<usize>,
        stats: &TensorStats,
        update_norm: Option<f64>,
    ) {
        if self.escalated {
            let mut e = self.base.layer_event(event_type, index, name, &shape, stats);
            if let Some(u) = update_norm {
                e.data.insert("update_norm", u);
            }
            self.base.emit(e);
        } else if self.pending.len() < self.config.batch_backfill {
            let (epoch, batch) = (self.base.current_epoch(), self.base.current_batch());
            self.pending.push(Pending::Layer {
                at: unix_now(),
                epoch,
                batch,
                event_type,
                index,
                name: name.to_owned(),
                shape,
                stats: *stats,
                update_norm,
            });
        }
    }

    fn emit_latest(&self) {
        for a in self.latest.iter().filter(|a| a.emitted) {
            let mut e = Event::new(EventType::HealthCheck, LogLevel::Basic)
                .severity(a.severity)
                .message(a.message.clone())
                .at(a.epoch, a.batch)
                .data(a.to_data());
            e.layer_name = a.layer_name.clone();
            e.layer_index = a.layer_index;
            self.base.emit(e);
        }
    }

    /// Ends the current step and decides whether the next one is escalated.
    fn advance(&mut self) {
        self.counts.batches += 1;
        self.counts.escalated_batches += u64::from(self.step_escalated);
        self.step += 1;
        self.open = false;
        self.pending.clear();
        if self.escalated {
            let until = self
                .last_anomaly_step
                .map_or(0, |s| s.saturating_add(self.config.escalation_cooldown));
            if self.step > until {
                self.escalated = false;
                self.base.set_level(self.calm_level);
            }
        }
        self.step_escalated = self.escalated;
        if self.dedup.len() > DEDUP_PRUNE_AT {
            let (step, window) = (self.step, self.config.dedup_window);
            self.dedup.retain(|_, d| step < d.last_emitted_step.saturating_add(window));
        }
    }
}
