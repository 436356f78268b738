//! `AutoHealthWarnings`: the rule engine, its per-layer history and de-duplication.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use obs_core::stats::RollingWindow;
use obs_core::{Activation, Data, Severity, TensorStats, TrainingLogger, data};
use serde::{Deserialize, Serialize};

use crate::epoch::EpochRules;
use crate::loss::{Divergence, LossRules};
use crate::rule::RULE_COUNT;
use crate::{ActivationStats, BatchInput, ConfigError, HealthWarning, Rule, WarningConfig};

/// De-duplication state of one (rule, layer) pair.
#[derive(Clone, Copy, Debug, Default)]
struct Dedup {
    /// The step (batch or epoch check) at which it last fired.
    last: Option<u64>,
    /// Repeats suppressed since then.
    suppressed: u64,
}

/// History of one layer.
#[derive(Debug)]
struct LayerState {
    /// Shared so a finding can name the layer without allocating.
    name: Arc<str>,
    /// Previous finite gradient norms: the spike baseline.
    grads: RollingWindow,
    /// Consecutive batches with the dead-unit percentage over the threshold.
    dead_run: u64,
    /// Consecutive batches with the saturation percentage over the threshold.
    saturation_run: u64,
    /// Consecutive batches with the gradient norm below the vanishing threshold.
    vanishing_run: u64,
    /// Consecutive reported update norms below the stagnation delta.
    small_updates: u64,
    /// Consecutive reported update norms exactly zero while another layer moved.
    frozen_updates: u64,
    dedup: [Dedup; RULE_COUNT],
}

impl LayerState {
    fn new(name: &str, window: usize) -> Self {
        LayerState {
            name: name.into(),
            grads: RollingWindow::new(window),
            dead_run: 0,
            saturation_run: 0,
            vanishing_run: 0,
            small_updates: 0,
            frozen_updates: 0,
            dedup: Default::default(),
        }
    }
}

/// Where a finding is de-duplicated.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// A run-wide batch finding (the loss rules, spikes, non-finite values).
    Batch,
    /// A run-wide epoch finding.
    Epoch,
    /// A layer: its own slot when tracked, the shared untracked slot otherwise.
    Layer(Option<usize>),
}

/// Counts of warnings and suppressed repeats, and the most recent warnings.
///
/// Returned by [`AutoHealthWarnings::get_summary`]; serialises to JSON with rules and severities
/// as map keys (`{"total_warnings": 3, "by_rule": {"dead_relu": 2, ...}, ...}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthSummary {
    /// Warnings returned (suppressed repeats not included).
    pub total_warnings: u64,
    /// Warnings per rule; rules that never fired are left out.
    pub by_rule: BTreeMap<Rule, u64>,
    /// Warnings per severity; severities never seen are left out.
    pub by_severity: BTreeMap<Severity, u64>,
    /// Repeats suppressed by de-duplication.
    pub suppressed: u64,
    /// Suppressed repeats per rule; rules never suppressed are left out.
    pub suppressed_by_rule: BTreeMap<Rule, u64>,
    /// Calls to [`AutoHealthWarnings::check_batch`].
    pub batches_checked: u64,
    /// Calls to [`AutoHealthWarnings::check_epoch`].
    pub epochs_checked: u64,
    /// The most recent warnings, oldest first, at most [`WarningConfig::max_recent`].
    pub recent: Vec<HealthWarning>,
}

impl HealthSummary {
    /// Warnings of one rule.
    pub fn count(&self, rule: Rule) -> u64 {
        self.by_rule.get(&rule).copied().unwrap_or(0)
    }
}

/// The health-rule engine: call [`check_batch`](Self::check_batch) every batch and
/// [`check_epoch`](Self::check_epoch) at every epoch end; each returns the warnings that fired.
///
/// The rules, their conditions and defaults are listed in `docs/health.md`. State is bounded:
/// per-layer history for at most [`WarningConfig::max_layers`] layer names, fixed-size windows,
/// and at most [`WarningConfig::max_recent`] kept warnings. De-duplication is counted in checks
/// (never wall-clock time), so a run gives the same warnings on any machine.
///
/// Once a NaN or infinity appears (in the loss, a gradient, an output or a weight) only the
/// non-finite rules are judged until a batch is finite again: every other number of a poisoned
/// run is garbage, and warning about it would bury the one finding that matters.
///
/// When a [`TrainingLogger`] is attached ([`with_logger`](Self::with_logger)), every warning is
/// also emitted through it as a `health_check` event and reaches every backend.
///
/// # Streaming
/// A loop that learns a batch's numbers one at a time (an adaptive logger, a framework
/// integration) can feed them as they come instead of building a [`BatchInput`]:
/// [`open_batch`](Self::open_batch), then any of the `observe_*` methods, then
/// [`close_batch`](Self::close_batch); [`take_warnings`](Self::take_warnings) hands out what
/// fired so far. `check_batch` is exactly that sequence.
///
/// # Examples
/// ```
/// use obs_core::Activation;
/// use obs_health::{ActivationStats, AutoHealthWarnings, BatchInput, WarningConfig};
///
/// let mut config = WarningConfig::default();
/// config.dead_relu_patience = 1; // judge every batch on its own
/// let mut engine = AutoHealthWarnings::new(config)?;
/// let grads = [("dense_0", 0.05), ("dense_1", 0.03)];
/// let acts = [("dense_0", ActivationStats::new(Activation::Relu).dead_units_pct(62.0))];
/// let input = BatchInput::new(5, 10).loss(0.4).gradient_norms(&grads).activations(&acts);
/// let warnings = engine.check_batch(&input);
/// assert_eq!(warnings.len(), 1);
/// assert_eq!(warnings[0].rule_name, "dead_relu");
/// assert_eq!(warnings[0].message, "Possible dying ReLU in 'dense_0' (62.0% dead units)");
/// assert_eq!(engine.get_summary().total_warnings, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AutoHealthWarnings {
    config: WarningConfig,
    logger: Option<TrainingLogger>,
    batch_step: u64,
    epoch_step: u64,
    layers: Vec<LayerState>,
    index: HashMap<Box<str>, usize>,
    untracked: [Dedup; RULE_COUNT],
    global_batch: [Dedup; RULE_COUNT],
    global_epoch: [Dedup; RULE_COUNT],
    loss: LossRules,
    epoch_rules: EpochRules,
    batch: Batch,
    /// Whether the last closed batch held a NaN or infinity.
    poisoned: bool,
    /// Warnings fired and not yet handed out by `take_warnings`.
    found: Vec<HealthWarning>,
    fired: [u64; RULE_COUNT],
    suppressed: [u64; RULE_COUNT],
    by_severity: [u64; 5],
    recent: VecDeque<HealthWarning>,
}

/// The batch being checked.
#[derive(Debug, Default)]
struct Batch {
    open: bool,
    epoch: u64,
    batch: u64,
    step: u64,
    /// Whether a NaN or infinity was seen in it.
    non_finite: bool,
    loss: Option<f64>,
    /// Layers whose gradient norm was judged for a spike, and those that jumped.
    spike_judged: u32,
    spike_jumped: u32,
    /// The largest jump: ratio, norm, rolling average, layer slot.
    biggest_jump: Option<(f64, f64, f64, usize)>,
    /// `(layer slot, update norm)` of the layers that reported an update.
    updates: Vec<(usize, f64)>,
    /// Findings suppressed as repeats in this batch.
    repeats: u64,
}

impl Default for AutoHealthWarnings {
    /// An engine with the default configuration.
    fn default() -> Self {
        Self::build(WarningConfig::default())
    }
}

impl AutoHealthWarnings {
    /// An engine with `config`.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not pass [`WarningConfig::validate`]: a NaN
    /// or negative threshold would silently disable its rule.
    pub fn new(config: WarningConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config))
    }

    fn build(config: WarningConfig) -> Self {
        AutoHealthWarnings {
            logger: None,
            batch_step: 0,
            epoch_step: 0,
            layers: Vec::new(),
            index: HashMap::new(),
            untracked: Default::default(),
            global_batch: Default::default(),
            global_epoch: Default::default(),
            loss: LossRules::new(&config),
            epoch_rules: EpochRules::new(&config),
            batch: Batch::default(),
            poisoned: false,
            found: Vec::new(),
            fired: [0; RULE_COUNT],
            suppressed: [0; RULE_COUNT],
            by_severity: [0; 5],
            recent: VecDeque::new(),
            config,
        }
    }

    /// Attaches `logger`: every warning from now on is also emitted through it.
    #[must_use]
    pub fn with_logger(mut self, logger: TrainingLogger) -> Self {
        self.attach(logger);
        self
    }

    /// Attaches `logger` (replacing an attached one): every warning from now on is also
    /// emitted through it as a `health_check` event.
    pub fn attach(&mut self, logger: TrainingLogger) {
        self.logger = Some(logger);
    }

    /// Detaches the logger, returning it.
    pub fn detach(&mut self) -> Option<TrainingLogger> {
        self.logger.take()
    }

    /// How many layer names have per-layer history (at most [`WarningConfig::max_layers`]).
    pub fn tracked_layers(&self) -> usize {
        self.layers.len()
    }

    /// The configuration.
    pub fn config(&self) -> &WarningConfig {
        &self.config
    }

    /// Whether the run is poisoned: the last closed batch (or the open one so far) held a NaN
    /// or infinity, so only the non-finite rules are judged.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned || self.batch.non_finite
    }

    /// Forgets all history, counters and kept warnings (the configuration and an attached
    /// logger stay), as if the engine had just been created.
    pub fn reset(&mut self) {
        let logger = self.logger.take();
        *self = Self::build(self.config.clone());
        self.logger = logger;
    }

    /// Counts of warnings by rule and severity, suppressed repeats, and the recent warnings.
    pub fn get_summary(&self) -> HealthSummary {
        let nonzero = |counts: &[u64; RULE_COUNT]| -> BTreeMap<Rule, u64> {
            Rule::ALL.into_iter().map(|r| (r, counts[r.index()])).filter(|(_, n)| *n > 0).collect()
        };
        HealthSummary {
            total_warnings: self.fired.iter().sum(),
            by_rule: nonzero(&self.fired),
            by_severity: Severity::ALL
                .into_iter()
                .map(|s| (s, self.by_severity[s as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            suppressed: self.suppressed.iter().sum(),
            suppressed_by_rule: nonzero(&self.suppressed),
            batches_checked: self.batch_step,
            epochs_checked: self.epoch_step,
            recent: self.recent.iter().cloned().collect(),
        }
    }

    /// The per-layer state slot of `name`, creating it if there is room. `hint` is where the
    /// layer was last time in the same position, so the usual lookup is one comparison.
    fn layer(&mut self, hint: usize, name: &str) -> Option<usize> {
        if let Some(l) = self.layers.get(hint)
            && *l.name == *name
        {
            return Some(hint);
        }
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if self.layers.len() >= self.config.max_layers {
            return None;
        }
        let i = self.layers.len();
        self.layers.push(LayerState::new(name, self.config.gradient_spike_window));
        self.index.insert(name.into(), i);
        Some(i)
    }

    /// Applies de-duplication at `step`: `Some(repeats)` when the finding may fire (with the
    /// repeats suppressed since it last fired), `None` (counted) when it is a repeat.
    fn admit(&mut self, rule: Rule, scope: Scope, step: u64) -> Option<u64> {
        let (slot, window) = match scope {
            Scope::Batch => (&mut self.global_batch[rule.index()], self.config.dedup_batches),
            Scope::Epoch => (&mut self.global_epoch[rule.index()], self.config.dedup_epochs),
            Scope::Layer(Some(i)) => {
                (&mut self.layers[i].dedup[rule.index()], self.config.dedup_batches)
            }
            Scope::Layer(None) => (&mut self.untracked[rule.index()], self.config.dedup_batches),
        };
        if let Some(last) = slot.last
            && step.saturating_sub(last) < window
        {
            slot.suppressed += 1;
            self.suppressed[rule.index()] += 1;
            self.batch.repeats += 1;
            return None;
        }
        slot.last = Some(step);
        Some(std::mem::take(&mut slot.suppressed))
    }

    /// Whether `rule` may be judged now: non-finite rules always, the others only while the
    /// run is not poisoned.
    fn judged(&self, rule: Rule) -> bool {
        rule.is_non_finite_rule() || !self.is_poisoned()
    }

    /// De-duplicates a finding of `rule` in the open batch and, when it passes, builds it with
    /// `build` and records it. A repeat costs a counter: no message is formatted for it.
    fn finding<'a>(
        &mut self,
        rule: Rule,
        scope: Scope,
        build: impl FnOnce(&WarningConfig) -> Finding<'a>,
    ) {
        let step = self.batch.step;
        if let Some(repeats) = self.admit(rule, scope, step) {
            let (epoch, batch) = (self.batch.epoch, Some(self.batch.batch));
            let f = build(&self.config);
            self.fire(f, epoch, batch, repeats);
        }
    }

    /// Records a warning that passed de-duplication.
    fn fire(&mut self, f: Finding<'_>, epoch: u64, batch: Option<u64>, repeats: u64) {
        let mut data = f.data;
        if let Some((value, threshold)) = f.value {
            data.insert("value", value);
            data.insert("threshold", threshold);
        }
        data.insert("repeats", repeats);
        let mut w = HealthWarning::new(f.rule, f.message);
        w.layer_name = f.layer.map(str::to_owned);
        w.epoch = Some(epoch);
        w.batch = batch;
        w.data = data;
        self.fired[f.rule.index()] += 1;
        self.by_severity[w.severity as usize] += 1;
        if self.config.max_recent > 0 {
            if self.recent.len() >= self.config.max_recent {
                self.recent.pop_front();
            }
            self.recent.push_back(w.clone());
        }
        if let Some(logger) = &self.logger {
            logger.emit(w.to_event());
        }
        self.found.push(w);
    }

    /// The warnings fired since the last call, oldest first (no allocation when none fired).
    pub fn take_warnings(&mut self) -> Vec<HealthWarning> {
        std::mem::take(&mut self.found)
    }

    /// Findings suppressed as repeats of an earlier warning in the open (or last) batch: a
    /// condition still present but already reported.
    pub fn batch_repeats(&self) -> u64 {
        self.batch.repeats
    }

    /// Runs every batch rule on one batch and returns the warnings that fired, in a fixed
    /// order: the non-finite rules, loss divergence, then gradient, activation, update and
    /// weight rules in input order, then the rules that compare layers (gradient spike, loss
    /// spike, weight stagnation).
    ///
    /// Allocates nothing when no rule fires, apart from growing per-layer state the first time
    /// a layer name is seen. Never panics: NaN, infinities, negative or huge numbers, empty
    /// slices, unknown and repeated layer names all have defined behaviour (`docs/health.md`).
    pub fn check_batch(&mut self, input: &BatchInput<'_>) -> Vec<HealthWarning> {
        self.open_batch(input.epoch, input.batch);
        // A NaN anywhere in the batch mutes every other rule for the whole batch.
        self.batch.non_finite |= batch_has_non_finite(input);
        if let Some(loss) = input.loss {
            self.observe_loss(loss);
        }
        for (i, &(name, norm)) in input.gradient_norms.iter().enumerate() {
            self.observe_gradient_at(i, name, norm);
        }
        for (i, &(name, count)) in input.gradient_non_finite.iter().enumerate() {
            // A layer whose norm was already non-finite in this batch has been reported.
            let norm_reported =
                input.gradient_norms.iter().any(|&(n, norm)| n == name && !norm.is_finite());
            if !norm_reported {
                self.observe_gradient_non_finite_at(i, name, count);
            }
        }
        for (i, &(name, stats)) in input.activations.iter().enumerate() {
            self.observe_activation_at(i, name, stats);
        }
        for (i, (name, stats)) in input.activation_tensors.iter().enumerate() {
            self.observe_activation_at(i, name, stats.into());
        }
        for (i, &(name, update)) in input.update_norms.iter().enumerate() {
            self.observe_update_at(i, name, update);
        }
        for (i, (name, stats)) in input.weight_tensors.iter().enumerate() {
            self.observe_weights_at(i, name, stats);
        }
        self.close_batch();
        self.take_warnings()
    }

    /// Starts checking a batch (`epoch` and `batch` are labels for the warnings). A batch still
    /// open is closed first.
    pub fn open_batch(&mut self, epoch: u64, batch: u64) {
        if self.batch.open {
            self.close_batch();
        }
        let mut updates = std::mem::take(&mut self.batch.updates);
        updates.clear();
        self.batch =
            Batch { open: true, epoch, batch, step: self.batch_step, updates, ..Batch::default() };
        self.batch_step += 1;
    }

    fn ensure_open(&mut self) {
        if !self.batch.open {
            let (epoch, batch) = (self.batch.epoch, self.batch.batch);
            self.open_batch(epoch, batch);
        }
    }

    /// The batch loss: `nan_inf_loss` and `loss_divergence` are judged at once, `loss_spike`
    /// (and the loss half of `gradient_spike`) at [`close_batch`](Self::close_batch).
    pub fn observe_loss(&mut self, loss: f64) {
        self.ensure_open();
        self.batch.loss = Some(loss);
        if !loss.is_finite() {
            self.batch.non_finite = true;
            self.finding(Rule::NanInfLoss, Scope::Batch, |_| {
                Finding::new(Rule::NanInfLoss, None, "NaN/Inf detected in loss!".to_owned())
                    .data(data! { "loss" => loss, "source" => "batch" })
            });
            return;
        }
        if !self.judged(Rule::LossDivergence) {
            return;
        }
        let Some(d) = self.loss.divergence(loss, &self.config) else { return };
        self.finding(Rule::LossDivergence, Scope::Batch, |c| match d {
            Divergence::Fast { loss, reference, first, steps } => {
                let ratio = loss / reference;
                Finding::new(
                    Rule::LossDivergence,
                    None,
                    format!(
                        "Loss diverging: {loss:.4e} after {steps} climbing batches, {ratio:.0}x \
                         the recent level {reference:.4} and above the first loss {first:.4}"
                    ),
                )
                .value(ratio, c.loss_divergence_fast_factor)
                .data(data! {
                    "mode" => "fast",
                    "loss" => loss,
                    "reference" => reference,
                    "first_loss" => first,
                    "steps" => steps,
                })
            }
            Divergence::Slow { loss, older, recent, initial, window } => {
                let ratio = recent / older;
                Finding::new(
                    Rule::LossDivergence,
                    None,
                    format!(
                        "Loss diverging: median batch loss rose {ratio:.1}x over the last \
                         {window} batches ({older:.4} -> {recent:.4})"
                    ),
                )
                .value(ratio, c.loss_divergence_factor)
                .data(data! {
                    "mode" => "slow",
                    "loss" => loss,
                    "older_median" => older,
                    "recent_median" => recent,
                    "initial_level" => initial,
                    "window" => window,
                })
            }
        });
    }

    /// A layer's gradient L2 norm: `gradient_nan_inf`, `exploding_gradient` and
    /// `vanishing_gradient` at once; its share of `gradient_spike` at `close_batch`.
    pub fn observe_gradient(&mut self, name: &str, norm: f64) {
        self.observe_gradient_at(usize::MAX, name, norm);
    }

    fn observe_gradient_at(&mut self, hint: usize, name: &str, norm: f64) {
        self.ensure_open();
        let slot = self.layer(hint, name);
        if !norm.is_finite() {
            self.batch.non_finite = true;
            // One warning per batch, not one per layer: a NaN reaches every layer at once.
            self.finding(Rule::GradientNanInf, Scope::Batch, |_| {
                Finding::new(
                    Rule::GradientNanInf,
                    Some(name),
                    format!("NaN/Inf in gradient of '{name}' (norm {norm})"),
                )
                .data(data! { "grad_norm" => norm })
            });
            return;
        }
        // A negative value is not a norm: no rule can judge it, and it stays out of the baseline.
        if norm < 0.0 || !self.judged(Rule::ExplodingGradient) {
            return;
        }
        let (exploding, vanishing) =
            (self.config.exploding_gradient_threshold, self.config.vanishing_gradient_threshold);
        if norm > exploding {
            self.finding(Rule::ExplodingGradient, Scope::Layer(slot), |_| {
                Finding::new(
                    Rule::ExplodingGradient,
                    Some(name),
                    format!("Exploding gradient in '{name}' (norm {norm:.3e} > {exploding})"),
                )
                .value(norm, exploding)
                .data(data! { "grad_norm" => norm })
            });
        }
        let run = self.persist(slot, |l| &mut l.vanishing_run, norm < vanishing);
        if norm < vanishing && run >= self.config.vanishing_gradient_patience as u64 {
            self.finding(Rule::VanishingGradient, Scope::Layer(slot), |_| {
                Finding::new(
                    Rule::VanishingGradient,
                    Some(name),
                    format!(
                        "Vanishing gradient in '{name}' (norm {norm:.3e} < {vanishing:e} for \
                         {run} batches)"
                    ),
                )
                .value(norm, vanishing)
                .data(data! { "grad_norm" => norm, "batches" => run })
            });
        }
        let Some(i) = slot else { return };
        let c = &self.config;
        let (factor, min_history, min_norm) =
            (c.gradient_spike_factor, c.gradient_spike_min_history, c.gradient_spike_min_norm);
        let grads = &mut self.layers[i].grads;
        let history = grads.len();
        let average = grads.mean();
        grads.push(norm);
        if history >= min_history && average > 0.0 {
            self.batch.spike_judged += 1;
            if norm > factor * average && norm >= min_norm {
                self.batch.spike_jumped += 1;
                let ratio = norm / average;
                if self.batch.biggest_jump.is_none_or(|(r, ..)| ratio > r) {
                    self.batch.biggest_jump = Some((ratio, norm, average, i));
                }
            }
        }
    }

    /// The number of NaN/Inf elements in a layer's gradient tensor (`gradient_nan_inf`).
    pub fn observe_gradient_non_finite(&mut self, name: &str, count: u64) {
        self.observe_gradient_non_finite_at(usize::MAX, name, count);
    }

    fn observe_gradient_non_finite_at(&mut self, _hint: usize, name: &str, count: u64) {
        self.ensure_open();
        if count == 0 {
            return;
        }
        self.batch.non_finite = true;
        self.finding(Rule::GradientNanInf, Scope::Batch, |_| {
            Finding::new(
                Rule::GradientNanInf,
                Some(name),
                format!("NaN/Inf in gradient of '{name}' ({count} non-finite elements)"),
            )
            .data(data! { "non_finite_count" => count })
        });
    }

    /// A layer's output statistics: `nan_inf_tensor`, `dead_relu` and `activation_saturation`.
    pub fn observe_activation(&mut self, name: &str, stats: ActivationStats) {
        self.observe_activation_at(usize::MAX, name, stats);
    }

    fn observe_activation_at(&mut self, hint: usize, name: &str, stats: ActivationStats) {
        self.ensure_open();
        let slot = self.layer(hint, name);
        if let Some(count) = stats.non_finite.filter(|&n| n > 0) {
            self.non_finite_tensor(name, "outputs", count);
            return;
        }
        if !self.judged(Rule::DeadRelu) {
            return;
        }
        let c = &self.config;
        match stats.activation {
            Activation::Relu => {
                let (pct, what, key) = match (stats.dead_units_pct, stats.zeros_pct) {
                    (Some(p), _) => (p, "dead units", "dead_units_pct"),
                    (None, Some(p)) if c.dead_relu_element_zeros => (p, "zeros", "zeros_pct"),
                    _ => return,
                };
                let (threshold, patience) = (c.dead_relu_zeros_pct, c.dead_relu_patience as u64);
                // NaN compares false, so garbage percentages never fire.
                let run = self.persist(slot, |l| &mut l.dead_run, pct > threshold);
                // A layer with every unit dead needs no patience: chance cannot do that.
                if pct > threshold && (run >= patience || pct >= 100.0) {
                    let act = stats.activation.as_str();
                    self.finding(Rule::DeadRelu, Scope::Layer(slot), |_| {
                        Finding::new(
                            Rule::DeadRelu,
                            Some(name),
                            format!("Possible dying ReLU in '{name}' ({pct:.1}% {what})"),
                        )
                        .value(pct, threshold)
                        .data(data! { key => pct, "batches" => run, "activation" => act })
                    });
                }
            }
            Activation::Sigmoid | Activation::Tanh => {
                let Some(pct) = stats.saturation_pct else { return };
                let (threshold, patience) = (c.saturation_pct, c.saturation_patience as u64);
                let run = self.persist(slot, |l| &mut l.saturation_run, pct > threshold);
                if pct > threshold && run >= patience {
                    let act = stats.activation.as_str();
                    self.finding(Rule::ActivationSaturation, Scope::Layer(slot), |_| Finding::new(
                            Rule::ActivationSaturation,
                            Some(name),
                            format!("Activations saturated in '{name}' ({pct:.1}% of {act} outputs)"),
                        )
                        .value(pct, threshold)
                        .data(data! { "saturation_pct" => pct, "batches" => run, "activation" => act }));
                }
            }
            // Zeros and large values are normal for linear or unknown outputs.
            _ => {}
        }
    }

    /// Advances a layer's run of consecutive batches over a threshold; untracked layers have
    /// no history and count one batch.
    fn persist(
        &mut self,
        slot: Option<usize>,
        run: fn(&mut LayerState) -> &mut u64,
        over: bool,
    ) -> u64 {
        let Some(i) = slot else { return u64::from(over) };
        let r = run(&mut self.layers[i]);
        *r = if over { *r + 1 } else { 0 };
        *r
    }

    fn non_finite_tensor(&mut self, name: &str, what: &str, count: u64) {
        self.batch.non_finite = true;
        self.finding(Rule::NanInfTensor, Scope::Batch, |_| {
            Finding::new(
                Rule::NanInfTensor,
                Some(name),
                format!("NaN/Inf in the {what} of '{name}' ({count} non-finite elements)"),
            )
            .data(data! { "non_finite_count" => count, "tensor" => what })
        });
    }

    /// The L2 norm of a layer's weight update: `nan_inf_tensor` at once, `weight_stagnation`
    /// and `dead_weights` at `close_batch` (they compare the layers).
    pub fn observe_update(&mut self, name: &str, update_norm: f64) {
        self.observe_update_at(usize::MAX, name, update_norm);
    }

    fn observe_update_at(&mut self, hint: usize, name: &str, update: f64) {
        self.ensure_open();
        if !update.is_finite() {
            self.batch.non_finite = true;
            self.finding(Rule::NanInfTensor, Scope::Batch, |_| {
                Finding::new(
                    Rule::NanInfTensor,
                    Some(name),
                    format!("NaN/Inf in the weight update of '{name}' (norm {update})"),
                )
                .data(data! { "update_norm" => update, "tensor" => "update" })
            });
            return;
        }
        if let Some(slot) = self.layer(hint, name) {
            self.batch.updates.push((slot, update));
        }
    }

    /// Statistics of a layer's weights after the update: `nan_inf_tensor`, and `dead_weights`
    /// when every weight is exactly 0 (pass weight matrices, not biases, which start at 0).
    pub fn observe_weights(&mut self, name: &str, stats: &TensorStats) {
        self.observe_weights_at(usize::MAX, name, stats);
    }

    fn observe_weights_at(&mut self, hint: usize, name: &str, stats: &TensorStats) {
        self.ensure_open();
        if stats.has_non_finite() {
            self.non_finite_tensor(name, "weights", stats.nan + stats.inf);
            return;
        }
        if stats.count > 0 && stats.zeros == stats.count && self.judged(Rule::DeadWeights) {
            let slot = self.layer(hint, name);
            self.finding(Rule::DeadWeights, Scope::Layer(slot), |_| {
                Finding::new(
                    Rule::DeadWeights,
                    Some(name),
                    format!("All {} weights of '{name}' are zero", stats.count),
                )
                .data(data! { "reason" => "all_zero", "count" => stats.count })
            });
        }
    }

    /// Ends the batch: judges the rules that compare layers or need the whole batch
    /// (`gradient_spike`, `loss_spike`, `weight_stagnation`, `dead_weights`), and decides whether
    /// the run is poisoned. Closing a batch that is not open does nothing.
    pub fn close_batch(&mut self) {
        if !self.batch.open {
            return;
        }
        if !self.is_poisoned() {
            self.judge_spikes();
            self.judge_updates();
        }
        self.poisoned = self.batch.non_finite;
        self.batch.open = false;
    }

    fn judge_spikes(&mut self) {
        let c = &self.config;
        let b = &self.batch;
        let loss = b.loss.filter(|l| l.is_finite());
        // Strictly more than the share: of two layers, both must jump.
        let coincident = b.spike_jumped > 0
            && f64::from(b.spike_jumped) * 100.0
                > c.gradient_spike_layers_pct * f64::from(b.spike_judged);
        // The gradients jumping together is the signature of a bad batch only if its loss jumped
        // too; without a loss, the gradients decide alone.
        let loss_spike = loss.and_then(|l| self.loss.would_spike(l, c));
        let gradient_spike = coincident && (loss.is_none() || loss_spike.is_some());
        if let Some(l) = loss {
            self.loss.spike(l, &self.config);
        }
        let (jumped, judged) = (b.spike_jumped, b.spike_judged);
        if gradient_spike && let Some((ratio, norm, average, slot)) = b.biggest_jump {
            let name = Arc::clone(&self.layers[slot].name);
            self.finding(Rule::GradientSpike, Scope::Batch, |c| {
                let mut message = format!(
                    "Gradient spike in {jumped} of {judged} layers at once: '{name}' norm \
                     {norm:.3e} is {ratio:.1}x its rolling average {average:.3e}"
                );
                let mut d = data! {
                    "grad_norm" => norm,
                    "rolling_average" => average,
                    "layers_jumped" => jumped,
                    "layers_judged" => judged,
                };
                if let Some(s) = loss_spike {
                    message.push_str(&format!(
                        ", with the loss at {:.4} ({:.0}x the recent maximum)",
                        s.loss,
                        s.loss / s.recent_max
                    ));
                    d.insert("loss", s.loss);
                    d.insert("recent_max_loss", s.recent_max);
                }
                Finding::new(Rule::GradientSpike, Some(&name), message)
                    .value(ratio, c.gradient_spike_factor)
                    .data(d)
            });
        } else if let Some(s) = loss_spike {
            let ratio = s.loss / s.recent_max;
            self.finding(Rule::LossSpike, Scope::Batch, |c| Finding::new(
                    Rule::LossSpike,
                    None,
                    format!(
                        "Loss spike: {:.4} is {ratio:.0}x the highest loss of the last {} batches ({:.4})",
                        s.loss,
                        c.loss_spike_window,
                        s.recent_max
                    ),
                )
                .value(ratio, 1.0 + c.loss_spike_pct / 100.0)
                .data(data! { "loss" => s.loss, "recent_max" => s.recent_max }));
        }
    }

    fn judge_updates(&mut self) {
        let delta = self.config.weight_stagnation_delta;
        let (stag_window, dead_window) =
            (self.config.weight_stagnation_window as u64, self.config.dead_weights_window as u64);
        let updates = std::mem::take(&mut self.batch.updates);
        // "Moving" means an update at least the stagnation delta (and non-zero).
        let moving = updates.iter().filter(|&&(_, u)| u >= delta && u > 0.0).count();
        for &(slot, update) in &updates {
            let layer = &mut self.layers[slot];
            let valid = update >= 0.0;
            layer.small_updates = if valid && update < delta { layer.small_updates + 1 } else { 0 };
            layer.frozen_updates =
                if update == 0.0 && moving > 0 { layer.frozen_updates + 1 } else { 0 };
            let (small, frozen) = (layer.small_updates, layer.frozen_updates);
            if frozen >= dead_window {
                let name = Arc::clone(&layer.name);
                self.finding(Rule::DeadWeights, Scope::Layer(Some(slot)), |_| {
                    Finding::new(
                        Rule::DeadWeights,
                        Some(&name),
                        format!(
                            "Layer '{name}' is not being updated (update norm exactly 0 for \
                             {frozen} batches while {moving} other layer(s) moved)"
                        ),
                    )
                    .data(data! {
                        "reason" => "frozen",
                        "batches" => frozen,
                        "window" => dead_window,
                        "moving_layers" => moving,
                    })
                });
            } else if small >= stag_window && frozen < small {
                // A run made only of exact zeros while others moved belongs to dead_weights.
                let name = Arc::clone(&layer.name);
                self.finding(Rule::WeightStagnation, Scope::Layer(Some(slot)), |_| Finding::new(
                        Rule::WeightStagnation,
                        Some(&name),
                        format!(
                            "Optimizer may have stagnated: '{name}' weight updates below {delta:e} \
                             for {small} batches (last {update:.3e})"
                        ),
                    )
                    .value(update, delta)
                    .data(data! { "update_norm" => update, "batches" => small, "window" => stag_window }));
            }
        }
        self.batch.updates = updates;
    }

    /// Runs the epoch rules (`nan_inf_loss`, `overfitting`, `loss_stagnation`) at the end of an
    /// epoch. `epoch` is a label: histories follow the order of calls, so epochs repeated or out
    /// of order are judged as they come. An epoch without a validation loss neither extends nor
    /// breaks an overfitting run. Closes an open batch first.
    pub fn check_epoch(
        &mut self,
        epoch: u64,
        train_loss: f64,
        val_loss: Option<f64>,
    ) -> Vec<HealthWarning> {
        self.close_batch();
        let step = self.epoch_step;
        self.epoch_step += 1;
        let val_bad = val_loss.is_some_and(|v| !v.is_finite());
        let bad = !train_loss.is_finite() || val_bad;
        if bad && let Some(repeats) = self.admit(Rule::NanInfLoss, Scope::Epoch, step) {
            let which = if train_loss.is_finite() { "validation" } else { "training" };
            let f = Finding::new(
                Rule::NanInfLoss,
                None,
                format!("NaN/Inf detected in loss! (epoch {which} loss)"),
            )
            .data(
                data! { "train_loss" => train_loss, "val_loss" => val_loss, "source" => "epoch" },
            );
            self.fire(f, epoch, None, repeats);
        }
        let c = self.config.clone();
        if let Some(val) = val_loss
            && let Some(o) = self.epoch_rules.overfitting(train_loss, val, &c)
            && let Some(repeats) = self.admit(Rule::Overfitting, Scope::Epoch, step)
        {
            let rise = o.val / o.best_val - 1.0;
            let ratio = o.val / o.train;
            let f = Finding::new(
                Rule::Overfitting,
                None,
                format!(
                    "Possible overfitting: over the last {} epochs val/train loss ratio {ratio:.2} \
                     > {}, validation loss {:.0}% above its best ({:.4}) while training loss fell",
                    o.epochs,
                    c.overfit_ratio,
                    rise * 100.0,
                    o.best_val
                ),
            )
            .value(ratio, c.overfit_ratio)
            .data(data! {
                "train_loss" => train_loss,
                "val_loss" => val,
                "mean_train_loss" => o.train,
                "mean_val_loss" => o.val,
                "best_mean_val_loss" => o.best_val,
                "mean_train_loss_at_best" => o.train_at_best,
                "epochs" => o.epochs,
            });
            self.fire(f, epoch, None, repeats);
        }
        if let Some(s) = self.epoch_rules.stagnation(train_loss, &c)
            && let Some(repeats) = self.admit(Rule::LossStagnation, Scope::Epoch, step)
        {
            let range = s.max - s.min;
            let rel = if s.mean == 0.0 { 0.0 } else { range / s.mean.abs() };
            let f = Finding::new(
                Rule::LossStagnation,
                None,
                format!(
                    "Loss stagnant: training loss moved {:.2}% ({range:.2e}) over the last {} \
                     epochs and is still {:.0}% of the first epoch's",
                    rel * 100.0,
                    s.epochs,
                    train_loss / s.first * 100.0
                ),
            )
            .value(rel, c.loss_stagnation_rel_delta)
            .data(data! {
                "train_loss" => train_loss,
                "min" => s.min,
                "max" => s.max,
                "range" => range,
                "first_epoch_loss" => s.first,
                "epochs" => s.epochs,
            });
            self.fire(f, epoch, None, repeats);
        }
        self.take_warnings()
    }
}

/// Whether any number of `input` is NaN or infinite.
fn batch_has_non_finite(input: &BatchInput<'_>) -> bool {
    input.loss.is_some_and(|l| !l.is_finite())
        || input.gradient_norms.iter().any(|(_, g)| !g.is_finite())
        || input.gradient_non_finite.iter().any(|&(_, n)| n > 0)
        || input.activations.iter().any(|(_, a)| a.non_finite.is_some_and(|n| n > 0))
        || input.activation_tensors.iter().any(|(_, s)| s.has_non_finite())
        || input.update_norms.iter().any(|(_, u)| !u.is_finite())
        || input.weight_tensors.iter().any(|(_, s)| s.has_non_finite())
}

/// A finding before de-duplication.
struct Finding<'a> {
    rule: Rule,
    layer: Option<&'a str>,
    message: String,
    /// The measured value and the bound it crossed, recorded as `value` and `threshold`.
    value: Option<(f64, f64)>,
    data: Data,
}

impl<'a> Finding<'a> {
    fn new(rule: Rule, layer: Option<&'a str>, message: String) -> Self {
        Finding { rule, layer, message, value: None, data: Data::new() }
    }

    fn value(mut self, value: f64, threshold: f64) -> Self {
        self.value = Some((value, threshold));
        self
    }

    fn data(mut self, data: Data) -> Self {
        self.data = data;
        self
    }
}
