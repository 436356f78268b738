//! `AutoHealthWarnings`: the rule engine, its per-layer history and de-duplication.

use std::collections::{BTreeMap, HashMap, VecDeque};

use obs_core::stats::RollingWindow;
use obs_core::{Activation, Data, Severity, TrainingLogger, data};
use serde::{Deserialize, Serialize};

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
    name: Box<str>,
    /// Previous finite gradient norms: the spike baseline.
    grads: RollingWindow,
    /// Consecutive reported update norms below the stagnation delta.
    small_updates: u64,
    /// Consecutive reported update norms exactly zero while another layer moved.
    frozen_updates: u64,
    dedup: [Dedup; RULE_COUNT],
}

/// Where a finding is de-duplicated.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// A run-wide batch finding (the loss rules).
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
/// When a [`TrainingLogger`] is attached ([`with_logger`](Self::with_logger)), every warning is
/// also emitted through it as a `health_check` event and reaches every backend.
///
/// # Examples
/// ```
/// use obs_core::Activation;
/// use obs_health::{ActivationStats, AutoHealthWarnings, BatchInput, WarningConfig};
///
/// let mut engine = AutoHealthWarnings::new(WarningConfig::default())?;
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
    /// Recent finite batch losses: the divergence window.
    losses: RollingWindow,
    /// Reused buffer for medians, so judging divergence does not allocate.
    scratch: Vec<f64>,
    /// Median of the first full divergence window: the run's initial loss level.
    initial_loss: Option<f64>,
    /// Recent finite epoch training losses: the stagnation window.
    epoch_losses: RollingWindow,
    /// Consecutive epochs with `val/train` above the ratio.
    overfit_run: u64,
    fired: [u64; RULE_COUNT],
    suppressed: [u64; RULE_COUNT],
    by_severity: [u64; 5],
    recent: VecDeque<HealthWarning>,
}

impl Default for AutoHealthWarnings {
    /// An engine with the default configuration.
    fn default() -> Self {
        Self::build(WarningConfig::default())
    }
}

fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lower, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        below / 2.0 + upper / 2.0
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
            losses: RollingWindow::new(config.loss_divergence_window),
            scratch: Vec::with_capacity(config.loss_divergence_window),
            initial_loss: None,
            epoch_losses: RollingWindow::new(config.loss_stagnation_patience),
            overfit_run: 0,
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
        self.layers.push(LayerState {
            name: name.into(),
            grads: RollingWindow::new(self.config.gradient_spike_window),
            small_updates: 0,
            frozen_updates: 0,
            dedup: Default::default(),
        });
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
            return None;
        }
        slot.last = Some(step);
        Some(std::mem::take(&mut slot.suppressed))
    }

    /// Records a warning that passed de-duplication and hands it out.
    #[allow(clippy::too_many_arguments)] // A private sink for every rule; a struct adds nothing.
    fn fire(
        &mut self,
        out: &mut Vec<HealthWarning>,
        rule: Rule,
        layer: Option<&str>,
        epoch: u64,
        batch: Option<u64>,
        repeats: u64,
        message: String,
        mut data: Data,
    ) {
        data.insert("repeats", repeats);
        let mut w = HealthWarning::new(rule, message);
        w.layer_name = layer.map(str::to_owned);
        w.epoch = Some(epoch);
        w.batch = batch;
        w.data = data;
        self.fired[rule.index()] += 1;
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
        out.push(w);
    }

    /// Runs every batch rule on one batch and returns the warnings that fired, in a fixed
    /// order: loss rules, then gradient, activation, update and weight rules in input order.
    ///
    /// Allocates nothing when no rule fires, apart from growing per-layer state the first time
    /// a layer name is seen. Never panics: NaN, infinities, negative or huge numbers, empty
    /// slices, unknown and repeated layer names all have defined behaviour (`docs/health.md`).
    pub fn check_batch(&mut self, input: &BatchInput<'_>) -> Vec<HealthWarning> {
        let mut out = Vec::new();
        let step = self.batch_step;
        self.batch_step += 1;
        let (epoch, batch) = (input.epoch, Some(input.batch));

        if let Some(loss) = input.loss {
            self.check_loss(&mut out, step, epoch, batch, loss);
        }

        for (i, &(name, norm)) in input.gradient_norms.iter().enumerate() {
            self.check_gradient(&mut out, step, epoch, batch, i, name, norm);
        }
        for (i, &(name, count)) in input.gradient_non_finite.iter().enumerate() {
            if count == 0 {
                continue;
            }
            // A layer whose norm was already non-finite in this batch has been reported.
            let norm_reported =
                input.gradient_norms.iter().any(|&(n, norm)| n == name && !norm.is_finite());
            if !norm_reported {
                let slot = self.layer(i, name);
                if let Some(repeats) = self.admit(Rule::GradientNanInf, Scope::Layer(slot), step) {
                    self.fire(
                        &mut out,
                        Rule::GradientNanInf,
                        Some(name),
                        epoch,
                        batch,
                        repeats,
                        format!("NaN/Inf in gradient of '{name}' ({count} non-finite elements)"),
                        data! { "non_finite_count" => count },
                    );
                }
            }
        }

        for (i, &(name, stats)) in input.activations.iter().enumerate() {
            self.check_activation(&mut out, step, epoch, batch, i, name, stats);
        }
        for (i, (name, stats)) in input.activation_tensors.iter().enumerate() {
            self.check_activation(&mut out, step, epoch, batch, i, name, stats.into());
        }

        self.check_updates(&mut out, step, epoch, batch, input.update_norms);

        for (i, (name, stats)) in input.weight_tensors.iter().enumerate() {
            if stats.count > 0 && stats.zeros == stats.count {
                let slot = self.layer(i, name);
                if let Some(repeats) = self.admit(Rule::DeadWeights, Scope::Layer(slot), step) {
                    self.fire(
                        &mut out,
                        Rule::DeadWeights,
                        Some(name),
                        epoch,
                        batch,
                        repeats,
                        format!("All {} weights of '{name}' are zero", stats.count),
                        data! { "reason" => "all_zero", "count" => stats.count },
                    );
                }
            }
        }
        out
    }

    fn check_loss(
        &mut self,
        out: &mut Vec<HealthWarning>,
        step: u64,
        epoch: u64,
        batch: Option<u64>,
        loss: f64,
    ) {
        if !loss.is_finite() {
            // Never enters the divergence window, so later checks are unaffected.
            if let Some(repeats) = self.admit(Rule::NanInfLoss, Scope::Batch, step) {
                self.fire(
                    out,
                    Rule::NanInfLoss,
                    None,
                    epoch,
                    batch,
                    repeats,
                    "NaN/Inf detected in loss!".to_owned(),
                    data! { "loss" => loss, "source" => "batch" },
                );
            }
            return;
        }
        self.losses.push(loss);
        if !self.losses.is_full() {
            return;
        }
        let initial = match self.initial_loss {
            Some(level) => level,
            None => {
                self.scratch.clear();
                self.scratch.extend(self.losses.iter());
                let level = median(&mut self.scratch);
                self.initial_loss = Some(level);
                level
            }
        };
        let factor = self.config.loss_divergence_factor;
        // Cheap necessary condition first: the current loss must exceed factor x the window
        // minimum (the older median is at least that minimum).
        if loss <= factor * self.losses.min() {
            return;
        }
        let n = self.losses.len();
        let older_len = n / 2;
        self.scratch.clear();
        self.scratch.extend(self.losses.iter().take(older_len));
        let older = median(&mut self.scratch);
        self.scratch.clear();
        self.scratch.extend(self.losses.iter().skip(older_len));
        let recent = median(&mut self.scratch);
        let floor = self.config.loss_divergence_min_fraction * initial;
        if older > 0.0 && recent > factor * older && loss > factor * older && recent >= floor {
            let ratio = recent / older;
            if let Some(repeats) = self.admit(Rule::LossDivergence, Scope::Batch, step) {
                self.fire(
                    out,
                    Rule::LossDivergence,
                    None,
                    epoch,
                    batch,
                    repeats,
                    format!(
                        "Loss diverging: median batch loss rose {ratio:.1}x over the last {n} \
                         batches ({older:.4} -> {recent:.4})"
                    ),
                    data! {
                        "loss" => loss,
                        "older_median" => older,
                        "recent_median" => recent,
                        "ratio" => ratio,
                        "factor" => factor,
                        "initial_level" => initial,
                        "window" => n,
                    },
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // Private; mirrors `fire`.
    fn check_gradient(
        &mut self,
        out: &mut Vec<HealthWarning>,
        step: u64,
        epoch: u64,
        batch: Option<u64>,
        hint: usize,
        name: &str,
        norm: f64,
    ) {
        let slot = self.layer(hint, name);
        if !norm.is_finite() {
            if let Some(repeats) = self.admit(Rule::GradientNanInf, Scope::Layer(slot), step) {
                self.fire(
                    out,
                    Rule::GradientNanInf,
                    Some(name),
                    epoch,
                    batch,
                    repeats,
                    format!("NaN/Inf in gradient of '{name}' (norm {norm})"),
                    data! { "grad_norm" => norm },
                );
            }
            return;
        }
        // A negative value is not a norm: no rule can judge it, and it stays out of the baseline.
        if norm < 0.0 {
            return;
        }
        let c = &self.config;
        let (exploding, vanishing) =
            (c.exploding_gradient_threshold, c.vanishing_gradient_threshold);
        let (factor, min_history, min_norm) =
            (c.gradient_spike_factor, c.gradient_spike_min_history, c.gradient_spike_min_norm);
        if norm > exploding
            && let Some(repeats) = self.admit(Rule::ExplodingGradient, Scope::Layer(slot), step)
        {
            self.fire(
                out,
                Rule::ExplodingGradient,
                Some(name),
                epoch,
                batch,
                repeats,
                format!("Exploding gradient in '{name}' (norm {norm:.3e} > {exploding})"),
                data! { "grad_norm" => norm, "threshold" => exploding },
            );
        }
        if norm < vanishing
            && let Some(repeats) = self.admit(Rule::VanishingGradient, Scope::Layer(slot), step)
        {
            self.fire(
                out,
                Rule::VanishingGradient,
                Some(name),
                epoch,
                batch,
                repeats,
                format!("Vanishing gradient in '{name}' (norm {norm:.3e} < {vanishing:e})"),
                data! { "grad_norm" => norm, "threshold" => vanishing },
            );
        }
        let Some(i) = slot else { return };
        let grads = &mut self.layers[i].grads;
        let history = grads.len();
        let average = grads.mean();
        grads.push(norm);
        if history >= min_history
            && average > 0.0
            && norm > factor * average
            && norm >= min_norm
            && let Some(repeats) = self.admit(Rule::GradientSpike, Scope::Layer(slot), step)
        {
            let ratio = norm / average;
            self.fire(
                out,
                Rule::GradientSpike,
                Some(name),
                epoch,
                batch,
                repeats,
                format!(
                    "Possible exploding gradient in '{name}': norm {norm:.3e} is {ratio:.1}x \
                     its rolling average {average:.3e}"
                ),
                data! {
                    "grad_norm" => norm,
                    "rolling_average" => average,
                    "ratio" => ratio,
                    "factor" => factor,
                    "min_norm" => min_norm,
                    "history" => history,
                },
            );
        }
    }

    #[allow(clippy::too_many_arguments)] // Private; mirrors `fire`.
    fn check_activation(
        &mut self,
        out: &mut Vec<HealthWarning>,
        step: u64,
        epoch: u64,
        batch: Option<u64>,
        hint: usize,
        name: &str,
        stats: ActivationStats,
    ) {
        let c = &self.config;
        let (dead_threshold, sat_threshold) = (c.dead_relu_zeros_pct, c.saturation_pct);
        match stats.activation {
            Activation::Relu => {
                let (pct, what, key) = match (stats.dead_units_pct, stats.zeros_pct) {
                    (Some(p), _) => (p, "dead units", "dead_units_pct"),
                    (None, Some(p)) if c.dead_relu_element_zeros => (p, "zeros", "zeros_pct"),
                    _ => return,
                };
                // NaN compares false, so garbage percentages never fire.
                if pct > dead_threshold {
                    let slot = self.layer(hint, name);
                    if let Some(repeats) = self.admit(Rule::DeadRelu, Scope::Layer(slot), step) {
                        self.fire(
                            out,
                            Rule::DeadRelu,
                            Some(name),
                            epoch,
                            batch,
                            repeats,
                            format!("Possible dying ReLU in '{name}' ({pct:.1}% {what})"),
                            data! {
                                key => pct,
                                "threshold" => dead_threshold,
                                "activation" => stats.activation.as_str(),
                            },
                        );
                    }
                }
            }
            Activation::Sigmoid | Activation::Tanh => {
                let Some(pct) = stats.saturation_pct else { return };
                if pct > sat_threshold {
                    let slot = self.layer(hint, name);
                    let act = stats.activation.as_str();
                    if let Some(repeats) =
                        self.admit(Rule::ActivationSaturation, Scope::Layer(slot), step)
                    {
                        self.fire(
                            out,
                            Rule::ActivationSaturation,
                            Some(name),
                            epoch,
                            batch,
                            repeats,
                            format!(
                                "Activations saturated in '{name}' ({pct:.1}% of {act} outputs)"
                            ),
                            data! {
                                "saturation_pct" => pct,
                                "threshold" => sat_threshold,
                                "activation" => act,
                            },
                        );
                    }
                }
            }
            // Zeros and large values are normal for linear or unknown outputs.
            _ => {}
        }
    }

    fn check_updates(
        &mut self,
        out: &mut Vec<HealthWarning>,
        step: u64,
        epoch: u64,
        batch: Option<u64>,
        updates: &[(&str, f64)],
    ) {
        let delta = self.config.weight_stagnation_delta;
        let (stag_window, dead_window) =
            (self.config.weight_stagnation_window as u64, self.config.dead_weights_window as u64);
        // "Moving" means a finite update at least the stagnation delta (and non-zero).
        let moving =
            updates.iter().filter(|&&(_, u)| u.is_finite() && u >= delta && u > 0.0).count();
        for (i, &(name, update)) in updates.iter().enumerate() {
            let Some(slot) = self.layer(i, name) else { continue };
            let layer = &mut self.layers[slot];
            let valid = update.is_finite() && update >= 0.0;
            layer.small_updates = if valid && update < delta { layer.small_updates + 1 } else { 0 };
            layer.frozen_updates =
                if update == 0.0 && moving > 0 { layer.frozen_updates + 1 } else { 0 };
            let (small, frozen) = (layer.small_updates, layer.frozen_updates);
            if frozen >= dead_window {
                if let Some(repeats) = self.admit(Rule::DeadWeights, Scope::Layer(Some(slot)), step)
                {
                    self.fire(
                        out,
                        Rule::DeadWeights,
                        Some(name),
                        epoch,
                        batch,
                        repeats,
                        format!(
                            "Layer '{name}' is not being updated (update norm exactly 0 for \
                             {frozen} batches while {moving} other layer(s) moved)"
                        ),
                        data! {
                            "reason" => "frozen",
                            "batches" => frozen,
                            "window" => dead_window,
                            "moving_layers" => moving,
                        },
                    );
                }
            } else if small >= stag_window
                // A run made only of exact zeros while others moved belongs to dead_weights.
                && frozen < small
                && let Some(repeats) =
                    self.admit(Rule::WeightStagnation, Scope::Layer(Some(slot)), step)
            {
                self.fire(
                    out,
                    Rule::WeightStagnation,
                    Some(name),
                    epoch,
                    batch,
                    repeats,
                    format!(
                        "Optimizer may have stagnated: '{name}' weight updates below {delta:e} \
                         for {small} batches (last {update:.3e})"
                    ),
                    data! {
                        "update_norm" => update,
                        "delta" => delta,
                        "batches" => small,
                        "window" => stag_window,
                    },
                );
            }
        }
    }

    /// Runs the epoch rules (`nan_inf_loss`, `overfitting`, `loss_stagnation`) at the end of an
    /// epoch. `epoch` is a label: histories follow the order of calls, so epochs repeated or out
    /// of order are judged as they come. An epoch without a validation loss neither extends nor
    /// breaks an overfitting run.
    pub fn check_epoch(
        &mut self,
        epoch: u64,
        train_loss: f64,
        val_loss: Option<f64>,
    ) -> Vec<HealthWarning> {
        let mut out = Vec::new();
        let step = self.epoch_step;
        self.epoch_step += 1;

        let val_bad = val_loss.is_some_and(|v| !v.is_finite());
        if (!train_loss.is_finite() || val_bad)
            && let Some(repeats) = self.admit(Rule::NanInfLoss, Scope::Epoch, step)
        {
            let which = if train_loss.is_finite() { "validation" } else { "training" };
            self.fire(
                &mut out,
                Rule::NanInfLoss,
                None,
                epoch,
                None,
                repeats,
                format!("NaN/Inf detected in loss! (epoch {which} loss)"),
                data! {
                    "train_loss" => train_loss,
                    "val_loss" => val_loss,
                    "source" => "epoch",
                },
            );
        }

        let (ratio_limit, min_gap) = (self.config.overfit_ratio, self.config.overfit_min_gap);
        match val_loss {
            None => {}
            Some(val) if train_loss.is_finite() && train_loss > 0.0 && val.is_finite() => {
                let ratio = val / train_loss;
                let gap = val - train_loss;
                let over = ratio > ratio_limit && gap > min_gap;
                self.overfit_run = if over { self.overfit_run + 1 } else { 0 };
                let run = self.overfit_run;
                if run >= self.config.overfit_patience as u64
                    && let Some(repeats) = self.admit(Rule::Overfitting, Scope::Epoch, step)
                {
                    self.fire(
                        &mut out,
                        Rule::Overfitting,
                        None,
                        epoch,
                        None,
                        repeats,
                        format!(
                            "Possible overfitting: val/train loss ratio {ratio:.2} > \
                             {ratio_limit} for {run} consecutive epochs"
                        ),
                        data! {
                            "train_loss" => train_loss,
                            "val_loss" => val,
                            "ratio" => ratio,
                            "threshold" => ratio_limit,
                            "gap" => gap,
                            "min_gap" => min_gap,
                            "epochs" => run,
                        },
                    );
                }
            }
            // A non-finite or non-positive loss has no meaningful ratio.
            Some(_) => self.overfit_run = 0,
        }

        if train_loss.is_finite() {
            self.epoch_losses.push(train_loss);
            let delta = self.config.loss_stagnation_delta;
            let (min, max) = (self.epoch_losses.min(), self.epoch_losses.max());
            let range = max - min;
            let n = self.epoch_losses.len();
            if self.epoch_losses.is_full()
                && range < delta
                && let Some(repeats) = self.admit(Rule::LossStagnation, Scope::Epoch, step)
            {
                self.fire(
                    &mut out,
                    Rule::LossStagnation,
                    None,
                    epoch,
                    None,
                    repeats,
                    format!(
                        "Loss stagnant: training loss moved {range:.2e} (< {delta:e}) over the \
                         last {n} epochs"
                    ),
                    data! {
                        "train_loss" => train_loss,
                        "min" => min,
                        "max" => max,
                        "range" => range,
                        "delta" => delta,
                        "epochs" => n,
                    },
                );
            }
        } else {
            // A non-finite epoch breaks the run of stable epochs.
            self.epoch_losses.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
        assert_eq!(median(&mut [f64::MAX, f64::MAX]), f64::MAX);
    }
}
