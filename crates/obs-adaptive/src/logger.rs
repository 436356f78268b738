//! [`AdaptiveLogger`]: BASIC detail while training is calm, EXPERT detail around the onset of
//! problems, as found by obs-health's rule engine.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use obs_core::{
    Activation, Data, Event, EventType, LogLevel, Severity, TensorError, TensorStats, TensorView,
    TrainingLogger, Value, tensor_stats, unix_now,
};
use obs_health::{ActivationStats, AutoHealthWarnings, HealthWarning, Rule};

use crate::anomaly::{Anomaly, AnomalySummary, Trigger};
use crate::config::{AnomalyConfig, ConfigError};

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
    emitted: u64,
    by_type: [u64; Trigger::ALL.len()],
    by_rule: HashMap<Rule, u64>,
    by_severity: [u64; Severity::ALL.len()],
    escalated_batches: u64,
    sampled_batches: u64,
    escalations: u64,
    batches: u64,
}

/// What the logger knows of one layer between hooks.
#[derive(Clone, Debug, Default)]
struct LayerMemo {
    /// The step whose gradient norm was last given to the engine, so a layer reported through
    /// both `on_layer_backward` and `on_gradient_computed` in one batch is judged once.
    grad_step: Option<u64>,
    /// The step of the last forward, to find step boundaries when no batch hooks are called.
    forward_step: Option<u64>,
    /// `(l2, mean, min, max)` of the weights after the last update: the update-size proxy when
    /// no update norm is given.
    last_weights: Option<[f64; 4]>,
}

/// How bad a finding is relative to its threshold (>= 1 when it fires; larger is worse).
fn badness(rule: Rule, w: &HealthWarning) -> f64 {
    let get = |k: &str| w.data.get(k).and_then(Value::as_f64);
    match (get("value"), get("threshold")) {
        (Some(v), Some(t)) if rule.lower_is_worse() && v > 0.0 => t / v,
        (Some(_), Some(_)) if rule.lower_is_worse() => f64::INFINITY,
        (Some(v), Some(t)) if t > 0.0 => v / t,
        _ => 1.0,
    }
}

/// Wraps a [`TrainingLogger`] and records EXPERT detail only around the onset of problems.
///
/// # Findings
/// Every hook's numbers go to an [`obs_health::AutoHealthWarnings`] engine (configured by
/// [`AnomalyConfig::rules`]): layer outputs and weights are reduced with one pass of the
/// statistics kernel, gradients to their L2 norm, the batch loss and the epoch losses are
/// passed on. Its warnings are this logger's anomalies, reported under the reference's trigger
/// names ([`Trigger::from_rule`]) and emitted as `health_check` events. Use the engine through
/// [`AdaptiveLogger::health`]; attaching a separate `AutoHealthWarnings` to the same base logger
/// reports everything twice.
///
/// # Levels
/// The adaptive logger drives the base logger's level: **BASIC** while training is calm (train
/// and epoch events, health checks), and the *detail level* while escalated. The detail level
/// is the base's level when the adaptive logger is created, raised to EXPERT if it was lower
/// (a DEBUG base escalates to DEBUG; a SILENT base stays silent, while anomalies are still
/// found and summarised). Other handles of the same base logger follow the same level.
///
/// # Escalation
/// A finding **escalates** when its rule fires for a layer (or the run) for the first time,
/// or fires again at least [`AnomalyConfig::worsen_factor`] times further past its threshold.
/// The hooks of the current batch seen before it (kept as statistics, see
/// [`AnomalyConfig::batch_backfill`]) are recorded with their original time and position, then
/// the rest of the batch, and the next [`AnomalyConfig::escalation_cooldown`] batches; then the
/// logger drops back to BASIC. A finding already reported that persists does not hold the
/// logger escalated: the engine de-duplicates it, and when it is re-reported (every
/// `rules.dedup_batches` batches while it lasts) only that batch is recorded at EXPERT, as a
/// sample.
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
/// let mut config = AnomalyConfig::default();
/// config.rules.dead_relu_patience = 1; // judge each batch on its own
/// let mut adaptive = AdaptiveLogger::new(base, config)?;
/// adaptive.on_train_start(1, data! { "name" => "mlp" });
/// adaptive.on_epoch_start(0);
/// adaptive.on_batch_start(0);
/// let healthy = [0.0f32, 0.4, 1.2, 0.0, 0.7, 0.6];
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
    engine: AutoHealthWarnings,

    step: u64,
    /// Whether the current step has seen any hook (and the engine has a batch open).
    open: bool,
    /// Whether batch hooks mark the steps (otherwise repeated forwards do).
    batch_hooks: bool,
    /// Whether the current step is recorded at the detail level.
    escalated: bool,
    /// The last step the cooldown covers.
    escalated_until: Option<u64>,
    /// Whether the current step was recorded at the detail level at any point, and whether
    /// only because of a chronic re-report.
    step_escalated: bool,
    step_sampled: bool,
    /// The batch `on_batch_end` was given, for findings made before the base logger learns it.
    batch_hint: Option<u64>,
    /// The hook being run, for the anomalies it reports.
    hook: EventType,
    /// The layer index the hook was given.
    hook_index: Option<usize>,

    layers: HashMap<String, LayerMemo>,
    /// Badness of each (rule, layer) finding when it last escalated.
    known: HashMap<(Rule, Option<String>), f64>,
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
            .field("anomalies", &self.counts.emitted)
            .finish_non_exhaustive()
    }
}

impl AdaptiveLogger {
    /// Wraps `base`, setting its level to BASIC until a finding escalates it (see the type's
    /// documentation for the levels).
    ///
    /// # Errors
    /// [`ConfigError`] when [`AnomalyConfig::validate`] refuses `config`.
    pub fn new(base: TrainingLogger, config: AnomalyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let engine = AutoHealthWarnings::new(config.rules.clone()).map_err(ConfigError::Rules)?;
        let given = base.level();
        let (calm_level, detail_level) = if given == LogLevel::Silent {
            (LogLevel::Silent, LogLevel::Silent)
        } else {
            (LogLevel::Basic, given.max(LogLevel::Expert))
        };
        base.set_level(calm_level);
        Ok(AdaptiveLogger {
            base,
            calm_level,
            detail_level,
            engine,
            step: 0,
            open: false,
            batch_hooks: false,
            escalated: false,
            escalated_until: None,
            step_escalated: false,
            step_sampled: false,
            batch_hint: None,
            hook: EventType::BatchEnd,
            hook_index: None,
            layers: HashMap::new(),
            known: HashMap::new(),
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

    /// The rule engine the findings come from (its summary counts every warning and repeat).
    pub fn health(&self) -> &AutoHealthWarnings {
        &self.engine
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

    /// The anomalies found by the most recent hook call (empty when it found none).
    pub fn latest_anomalies(&self) -> &[Anomaly] {
        &self.latest
    }

    /// What was found since the run started (or the last [`AdaptiveLogger::reset`]).
    pub fn get_anomaly_summary(&self) -> AnomalySummary {
        let c = &self.counts;
        let current = u64::from(self.open);
        let suppressed = self.engine.get_summary().suppressed;
        let mut by_rule: Vec<(Rule, u64)> = c.by_rule.iter().map(|(r, n)| (*r, *n)).collect();
        by_rule.sort();
        AnomalySummary {
            total: c.emitted + suppressed,
            emitted: c.emitted,
            suppressed,
            by_type: Trigger::ALL
                .into_iter()
                .map(|t| (t, c.by_type[t.index()]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            by_rule,
            by_severity: Severity::ALL
                .into_iter()
                .map(|s| (s, c.by_severity[s as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            recent: self.recent.iter().cloned().collect(),
            escalated_batches: c.escalated_batches + current * u64::from(self.step_escalated),
            sampled_batches: c.sampled_batches + current * u64::from(self.step_sampled),
            escalations: c.escalations,
            batches: c.batches + current,
            escalated: self.escalated,
        }
    }

    /// Forgets every history, count and finding and drops back to BASIC. The base logger's
    /// backends and counters are untouched.
    pub fn reset(&mut self) {
        self.engine.reset();
        self.step = 0;
        self.open = false;
        self.batch_hooks = false;
        self.escalated = false;
        self.escalated_until = None;
        self.step_escalated = false;
        self.step_sampled = false;
        self.batch_hint = None;
        self.layers.clear();
        self.known.clear();
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
        if self.open {
            self.advance();
        }
        self.base.on_train_end(final_metrics);
    }

    /// An epoch begins (BASIC, always recorded).
    pub fn on_epoch_start(&mut self, epoch: u64) {
        self.latest.clear();
        self.base.on_epoch_start(epoch);
    }

    /// An epoch ends (BASIC, always recorded). Its `loss` and `val_loss` metrics go to the
    /// epoch rules (`nan_inf_loss`, `overfitting`, `loss_stagnation`); a finding escalates the
    /// batches that follow.
    pub fn on_epoch_end(&mut self, epoch: u64, metrics: Data) {
        self.latest.clear();
        if self.open {
            self.advance();
        }
        self.hook = EventType::EpochEnd;
        self.hook_index = None;
        let get = |k: &str| metrics.get(k).and_then(Value::as_f64);
        if let Some(train) = get("loss") {
            let found = self.engine.check_epoch(epoch, train, get("val_loss"));
            self.handle(found);
        }
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
        self.base.on_batch_start(batch);
        self.begin(Some(batch));
        if !self.escalated {
            let epoch = self.base.current_epoch();
            self.backfill(Pending::BatchStart { at: unix_now(), epoch, batch });
        }
    }

    /// A batch ends with its metrics. The `loss` metric goes to the loss rules
    /// (`nan_inf_loss`, `loss_divergence`, `loss_spike`, and with the gradients
    /// `gradient_spike`); the rules that compare layers are judged. Recorded only while
    /// escalated; ends the step.
    pub fn on_batch_end(&mut self, batch: u64, metrics: Data) {
        self.latest.clear();
        self.batch_hooks = true;
        self.begin(Some(batch));
        self.batch_hint = Some(batch);
        self.hook = EventType::BatchEnd;
        self.hook_index = None;
        if let Some(loss) = metrics.get("loss").and_then(Value::as_f64) {
            self.engine.observe_loss(loss);
        }
        self.engine.close_batch();
        let found = self.engine.take_warnings();
        self.handle(found);
        self.batch_hint = None;
        self.base.on_batch_end(batch, metrics);
        self.emit_latest();
        self.advance();
    }

    /// A layer's output. Always reduced with one pass of [`tensor_stats`] and checked
    /// (`nan_inf_tensor`, `dead_relu` by units, `activation_saturation` by activation type);
    /// the `layer_forward` event is recorded only while escalated, including the event that
    /// escalates.
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
        let stats = tensor_stats(output, activation);
        self.forward_stats(layer_index, layer_name, output.shape(), &stats);
        Ok(stats)
    }

    /// A layer's output, as statistics computed elsewhere (on a GPU, say, where the tensor
    /// never reaches the host). Judged and recorded exactly like
    /// [`AdaptiveLogger::on_layer_forward`]'s kernel statistics; `shape` is the output's shape
    /// (recorded in the event). Statistics of an empty tensor (`count == 0`) are ignored.
    pub fn on_layer_stats(
        &mut self,
        layer_index: usize,
        layer_name: &str,
        shape: &[usize],
        stats: &TensorStats,
    ) {
        if stats.count == 0 {
            return;
        }
        self.latest.clear();
        if !self.batch_hooks {
            self.implicit_step(layer_name);
        }
        self.forward_stats(layer_index, layer_name, shape.to_vec(), stats);
    }

    fn forward_stats(&mut self, index: usize, name: &str, shape: Vec<usize>, stats: &TensorStats) {
        self.begin(None);
        self.hook = EventType::LayerForward;
        self.hook_index = Some(index);
        self.engine.observe_activation(name, ActivationStats::from(stats));
        let found = self.engine.take_warnings();
        self.handle(found);
        self.record_layer(EventType::LayerForward, index, name, shape, stats, None);
        self.emit_latest();
    }

    /// The norm of a layer's weight update, when the loop has only the scalar (the weights
    /// stay on their device). Judged by the update rules (`weight_stagnation`,
    /// `dead_weights`, `nan_inf_tensor`) like the update norm of
    /// [`AdaptiveLogger::on_weight_updated`]; nothing is recorded for it.
    pub fn on_update_norm(&mut self, layer_index: usize, layer_name: &str, update_norm: f64) {
        self.latest.clear();
        self.begin(None);
        self.hook = EventType::WeightUpdated;
        self.hook_index = Some(layer_index);
        self.engine.observe_update(layer_name, update_norm);
        let found = self.engine.take_warnings();
        self.handle(found);
        self.emit_latest();
    }

    /// A layer's gradient. Its L2 norm (from the kernel) and NaN/Inf count go to the gradient
    /// rules. Recorded only while escalated.
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
        self.begin(None);
        let stats = tensor_stats(gradient, Activation::None);
        self.hook = EventType::LayerBackward;
        self.hook_index = Some(layer_index);
        if stats.has_non_finite() {
            self.engine.observe_gradient_non_finite(layer_name, stats.nan + stats.inf);
        } else {
            self.engine.observe_gradient(layer_name, stats.l2);
        }
        self.memo(layer_name).grad_step = Some(self.step);
        let found = self.engine.take_warnings();
        self.handle(found);
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

    /// A layer's gradient norm, when the loop has only the scalar. Judged like
    /// [`AdaptiveLogger::on_layer_backward`] unless that hook already gave this layer's
    /// gradient in the current batch. Recorded (DETAILED) only while escalated.
    pub fn on_gradient_computed(&mut self, layer_name: &str, grad_norm: f64) {
        self.latest.clear();
        self.begin(None);
        self.hook = EventType::GradientComputed;
        self.hook_index = None;
        let step = self.step;
        let judged = self.layers.get(layer_name).is_some_and(|l| l.grad_step == Some(step));
        if !judged {
            self.engine.observe_gradient(layer_name, grad_norm);
            self.memo(layer_name).grad_step = Some(step);
            let found = self.engine.take_warnings();
            self.handle(found);
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

    /// A layer's weights after an optimiser step, with the norm of the update when known. The
    /// weights (NaN/Inf, all zero) and the update norm (stagnation) go to the rules; without an
    /// update norm the change of the weights' L2 norm, mean, min and max since the last update
    /// stands in for it. Recorded only while escalated.
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
        self.begin(None);
        let stats = tensor_stats(weights, Activation::None);
        self.hook = EventType::WeightUpdated;
        self.hook_index = Some(layer_index);
        self.engine.observe_weights(layer_name, &stats);
        let now = [stats.l2, stats.mean, stats.min, stats.max];
        let memo = self.memo(layer_name);
        let change = update_norm.or_else(|| {
            memo.last_weights.map(|before| {
                before.iter().zip(&now).map(|(b, a)| (a - b).abs()).fold(0.0, f64::max)
            })
        });
        memo.last_weights = (!stats.has_non_finite()).then_some(now);
        if let Some(change) = change {
            self.engine.observe_update(layer_name, change);
        }
        let found = self.engine.take_warnings();
        self.handle(found);
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

    // ---- state -------------------------------------------------------------------------

    fn memo(&mut self, name: &str) -> &mut LayerMemo {
        if !self.layers.contains_key(name) && self.layers.len() >= self.config.rules.max_layers {
            // Names beyond the model's layers are usually generated; bounded memory matters
            // more than their memo, which only saves a double judgement.
            self.layers.clear();
        }
        self.layers.entry(name.to_owned()).or_default()
    }

    /// Opens the step (and the engine's batch) if no hook has yet.
    fn begin(&mut self, batch: Option<u64>) {
        if self.open {
            return;
        }
        self.open = true;
        let epoch = self.base.current_epoch().unwrap_or(0);
        let batch = batch.or(self.base.current_batch()).unwrap_or(self.step);
        self.engine.open_batch(epoch, batch);
    }

    /// Without batch hooks, a second forward of the same layer starts a new step.
    fn implicit_step(&mut self, name: &str) {
        let step = self.step;
        if self.open && self.layers.get(name).is_some_and(|m| m.forward_step == Some(step)) {
            self.advance();
        }
        let step = self.step;
        self.memo(name).forward_step = Some(step);
    }

    /// Turns the engine's warnings into anomalies and decides what each does to the level.
    fn handle(&mut self, found: Vec<HealthWarning>) {
        for w in found {
            let Some(rule) = w.rule() else { continue };
            let score = badness(rule, &w);
            let key = (rule, w.layer_name.clone());
            // Past its threshold "infinitely" (a zero update, a zero gradient) cannot get worse.
            let escalates = match self.known.get(&key) {
                None => true,
                Some(&at) => at.is_finite() && score >= self.config.worsen_factor * at,
            };
            if escalates {
                self.known.insert(key, score);
                self.counts.escalations += 1;
                self.escalate(true);
            } else {
                // A chronic finding re-reported: its batch is a sample, not a new episode.
                self.escalate(false);
            }
            self.record(rule, w, escalates);
        }
    }

    fn record(&mut self, rule: Rule, w: HealthWarning, escalated: bool) {
        let trigger = Trigger::from_rule(rule);
        let get = |k: &str| w.data.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let (value, threshold) = (get("value"), get("threshold"));
        let metric = matches!(
            rule,
            Rule::NanInfLoss | Rule::LossDivergence | Rule::LossSpike | Rule::LossStagnation
        )
        .then(|| "loss".to_owned());
        let c = &mut self.counts;
        c.emitted += 1;
        c.by_type[trigger.index()] += 1;
        *c.by_rule.entry(rule).or_default() += 1;
        c.by_severity[w.severity as usize] += 1;
        let layer_index =
            if w.layer_name.is_some() { self.hook_index.map(|i| i as u64) } else { None };
        let mut warning = w;
        if warning.batch.is_some() {
            warning.batch = self.batch_hint.or(warning.batch);
        }
        let anomaly = Anomaly {
            trigger,
            rule,
            severity: warning.severity,
            source: self.hook,
            layer_name: warning.layer_name.clone(),
            layer_index,
            metric,
            value,
            threshold,
            epoch: warning.epoch,
            batch: warning.batch,
            step: self.step,
            repeats: warning.repeats(),
            emitted: true,
            escalated,
            message: warning.message.clone(),
            warning,
        };
        if self.config.max_recent > 0 {
            if self.recent.len() >= self.config.max_recent {
                self.recent.pop_front();
            }
            self.recent.push_back(anomaly.clone());
        }
        self.latest.push(anomaly);
    }

    /// Records the current step at the detail level; with `cooldown`, the next
    /// `escalation_cooldown` steps too.
    fn escalate(&mut self, cooldown: bool) {
        if cooldown {
            let until = self.step.saturating_add(self.config.escalation_cooldown);
            self.escalated_until = Some(self.escalated_until.map_or(until, |u| u.max(until)));
            self.step_sampled = false;
        } else if !self.step_escalated {
            self.step_sampled = true;
        }
        self.step_escalated = true;
        if self.escalated {
            return;
        }
        self.escalated = true;
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
        for a in &self.latest {
            let mut e = a.to_event();
            e.data = a.to_data();
            self.base.emit(e);
        }
    }

    /// Ends the current step and decides whether the next one is escalated.
    fn advance(&mut self) {
        self.engine.close_batch();
        self.counts.batches += 1;
        self.counts.escalated_batches += u64::from(self.step_escalated);
        self.counts.sampled_batches += u64::from(self.step_sampled);
        self.step += 1;
        self.open = false;
        self.pending.clear();
        let covered = self.escalated_until.is_some_and(|until| self.step <= until);
        if self.escalated && !covered {
            self.escalated = false;
            self.base.set_level(self.calm_level);
        }
        self.step_escalated = self.escalated;
        self.step_sampled = false;
    }
}
