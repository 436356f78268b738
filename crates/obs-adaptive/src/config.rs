//! [`AnomalyConfig`]: the thresholds and windows of the anomaly triggers.

use std::fmt;

/// How the dead-neuron trigger measures a layer's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadNeuronMode {
    /// Percentage of **units** (columns of a `[samples, units...]` output) that are zero for
    /// every sample of the batch ([`obs_core::TensorStats::dead_units`]). A healthy ReLU layer
    /// has about half of its *elements* at zero but almost no unit that is zero for a whole
    /// batch, so this separates dying layers from healthy ones. Outputs without a sample axis
    /// (one-dimensional tensors) are not checked in this mode.
    #[default]
    DeadUnits,
    /// Percentage of **elements** that are exactly zero, as the reference did. At the default
    /// 50% this fires on healthy ReLU layers; kept for compatibility, opt-in only.
    ElementZeros,
}

/// Thresholds and windows of the anomaly triggers.
///
/// Every threshold has a value that switches its trigger off: `100.0` for the percentages,
/// `f64::INFINITY` for factors, percentages of increase and the exploding-gradient norm, `0.0`
/// for the vanishing-gradient norm and the stagnation delta.
///
/// # Examples
/// ```
/// use obs_adaptive::AnomalyConfig;
///
/// let mut config = AnomalyConfig::default();
/// config.zeros_pct_threshold = 30.0;
/// config.escalation_cooldown = 20;
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AnomalyConfig {
    /// Dead neurons: fires when more than this percentage of a layer's units (or elements, see
    /// [`AnomalyConfig::dead_neuron_mode`]) are zero. Severity warning. Default `50.0`.
    pub zeros_pct_threshold: f64,
    /// What the dead-neuron percentage counts. Default [`DeadNeuronMode::DeadUnits`].
    pub dead_neuron_mode: DeadNeuronMode,
    /// Gradient spike: fires when a layer's gradient L2 norm exceeds this factor times its
    /// baseline: the mean of its last [`AnomalyConfig::gradient_window`] finite norms, or the
    /// mean of all its finite norms in the run when that is larger. Severity warning.
    /// Default `5.0`.
    pub gradient_spike_factor: f64,
    /// Finite gradient norms per layer kept for the spike baseline. Default `20`.
    pub gradient_window: usize,
    /// Norms a layer must have in its window before spikes are judged. Default `5`.
    pub gradient_min_history: usize,
    /// Vanishing gradient: fires when a layer's gradient L2 norm is below this. Severity
    /// danger. Default `1e-7`.
    pub vanishing_gradient_l2: f64,
    /// Exploding gradient: fires when a layer's gradient L2 norm is above this. Severity
    /// danger. Default `100.0`.
    pub exploding_gradient_l2: f64,
    /// Loss spike: fires when a batch loss is more than this percentage above the baseline
    /// (the mean of the last [`AnomalyConfig::loss_window`] finite batch losses) **and**
    /// more than [`AnomalyConfig::loss_spike_min_delta`] above it. Severity warning.
    /// Default `50.0`.
    pub loss_spike_pct: f64,
    /// The smallest absolute increase over the baseline that counts as a loss spike, so that
    /// the relative test does not fire on tiny losses near convergence or on ordinary
    /// mini-batch noise. In loss units: set it for your loss's scale. Default `0.4`.
    pub loss_spike_min_delta: f64,
    /// Finite batch losses kept for the loss baseline. Default `20`.
    pub loss_window: usize,
    /// Losses the window must hold before spikes are judged. Default `5`.
    pub loss_min_history: usize,
    /// Weight stagnation: an update whose norm is below this counts as stagnant. Default `1e-6`.
    pub weight_stagnation_delta: f64,
    /// Weight stagnation fires after this many consecutive stagnant updates of a layer.
    /// Severity warning. Default `5`.
    pub weight_stagnation_window: usize,
    /// Activation saturation: fires when more than this percentage of a layer's outputs are
    /// saturated for its activation type (sigmoid `a < 0.01 || a > 0.99`, tanh `|a| > 0.99`;
    /// ReLU, linear and unknown activations never saturate). Severity warning. Default `40.0`.
    pub saturation_pct_threshold: f64,
    /// Batches to stay escalated after the batch of the last anomaly. Default `10`.
    pub escalation_cooldown: u64,
    /// An anomaly of the same trigger and layer (or metric) within this many batches of the
    /// last one emitted is counted, not emitted again; the next emitted one reports the count
    /// in `repeats`. `0` emits every occurrence. Default `100`.
    pub dedup_window: u64,
    /// Anomalies kept for [`crate::AnomalySummary::recent`] (oldest dropped first).
    /// Default `64`.
    pub max_recent: usize,
    /// Layer hooks of the current batch kept as statistics (never tensors) so that an anomaly
    /// found later in the batch (a loss spike at `batch_end`, say) still records the whole
    /// batch at EXPERT detail. `0` records only from the triggering event on. Default `1024`.
    pub batch_backfill: usize,
    /// Layers whose history (gradient window, stagnation count) is kept; beyond this the layer
    /// seen least recently is forgotten. Default `4096`.
    pub max_layers: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            zeros_pct_threshold: 50.0,
            dead_neuron_mode: DeadNeuronMode::DeadUnits,
            gradient_spike_factor: 5.0,
            gradient_window: 20,
            gradient_min_history: 5,
            vanishing_gradient_l2: 1e-7,
            exploding_gradient_l2: 100.0,
            loss_spike_pct: 50.0,
            loss_spike_min_delta: 0.4,
            loss_window: 20,
            loss_min_history: 5,
            weight_stagnation_delta: 1e-6,
            weight_stagnation_window: 5,
            saturation_pct_threshold: 40.0,
            escalation_cooldown: 10,
            dedup_window: 100,
            max_recent: 64,
            batch_backfill: 1024,
            max_layers: 4096,
        }
    }
}

/// A field of [`AnomalyConfig`] holds a value the triggers cannot work with.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError { field, reason: reason.into() }
    }

    /// The name of the offending field.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid AnomalyConfig.{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn pct(field: &'static str, v: f64) -> Result<(), ConfigError> {
    if (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("{v} is not a percentage in 0..=100")))
    }
}

fn non_negative_finite(field: &'static str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("{v} must be finite and at least 0")))
    }
}

fn history(
    window_field: &'static str,
    field: &'static str,
    window: usize,
    min_history: usize,
) -> Result<(), ConfigError> {
    if window == 0 {
        return Err(ConfigError::new(window_field, "the window must hold at least one value"));
    }
    if min_history == 0 || min_history > window {
        return Err(ConfigError::new(
            field,
            format!("minimum history {min_history} must be in 1..={window} (the window size)"),
        ));
    }
    Ok(())
}

impl AnomalyConfig {
    /// Checks that every field is usable.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad field: a NaN threshold, a percentage outside
    /// `0..=100`, a spike factor of 1 or less, a vanishing threshold not below the exploding
    /// one, an empty window, a minimum history of 0 or larger than its window, or
    /// `max_layers == 0`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        pct("zeros_pct_threshold", self.zeros_pct_threshold)?;
        pct("saturation_pct_threshold", self.saturation_pct_threshold)?;
        if self.gradient_spike_factor.is_nan() || self.gradient_spike_factor <= 1.0 {
            return Err(ConfigError::new(
                "gradient_spike_factor",
                format!("{} must be above 1 (infinity disables)", self.gradient_spike_factor),
            ));
        }
        history(
            "gradient_window",
            "gradient_min_history",
            self.gradient_window,
            self.gradient_min_history,
        )?;
        non_negative_finite("vanishing_gradient_l2", self.vanishing_gradient_l2)?;
        if self.exploding_gradient_l2.is_nan()
            || self.exploding_gradient_l2 <= self.vanishing_gradient_l2
        {
            return Err(ConfigError::new(
                "exploding_gradient_l2",
                format!(
                    "{} must be above vanishing_gradient_l2 ({})",
                    self.exploding_gradient_l2, self.vanishing_gradient_l2
                ),
            ));
        }
        if self.loss_spike_pct.is_nan() || self.loss_spike_pct <= 0.0 {
            return Err(ConfigError::new(
                "loss_spike_pct",
                format!("{} must be above 0 (infinity disables)", self.loss_spike_pct),
            ));
        }
        non_negative_finite("loss_spike_min_delta", self.loss_spike_min_delta)?;
        history("loss_window", "loss_min_history", self.loss_window, self.loss_min_history)?;
        non_negative_finite("weight_stagnation_delta", self.weight_stagnation_delta)?;
        if self.weight_stagnation_window == 0 {
            return Err(ConfigError::new(
                "weight_stagnation_window",
                "at least one update is needed to call weights stagnant",
            ));
        }
        if self.max_layers == 0 {
            return Err(ConfigError::new("max_layers", "at least one layer must be tracked"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference_table_and_validate() {
        let c = AnomalyConfig::default();
        assert_eq!(c.zeros_pct_threshold, 50.0);
        assert_eq!(c.gradient_spike_factor, 5.0);
        assert_eq!(c.vanishing_gradient_l2, 1e-7);
        assert_eq!(c.exploding_gradient_l2, 100.0);
        assert_eq!(c.loss_spike_pct, 50.0);
        assert_eq!(c.weight_stagnation_delta, 1e-6);
        assert_eq!(c.weight_stagnation_window, 5);
        assert_eq!(c.saturation_pct_threshold, 40.0);
        assert_eq!(c.escalation_cooldown, 10);
        assert_eq!(c.dead_neuron_mode, DeadNeuronMode::DeadUnits);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Breaker = Box<dyn Fn(&mut AnomalyConfig)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("zeros_pct_threshold", Box::new(|c| c.zeros_pct_threshold = f64::NAN)),
            ("zeros_pct_threshold", Box::new(|c| c.zeros_pct_threshold = 101.0)),
            ("saturation_pct_threshold", Box::new(|c| c.saturation_pct_threshold = -1.0)),
            ("gradient_spike_factor", Box::new(|c| c.gradient_spike_factor = 1.0)),
            ("gradient_spike_factor", Box::new(|c| c.gradient_spike_factor = f64::NAN)),
            ("gradient_window", Box::new(|c| c.gradient_window = 0)),
            ("gradient_min_history", Box::new(|c| c.gradient_min_history = 21)),
            ("gradient_min_history", Box::new(|c| c.gradient_min_history = 0)),
            ("vanishing_gradient_l2", Box::new(|c| c.vanishing_gradient_l2 = f64::INFINITY)),
            ("exploding_gradient_l2", Box::new(|c| c.exploding_gradient_l2 = 1e-8)),
            ("exploding_gradient_l2", Box::new(|c| c.exploding_gradient_l2 = f64::NAN)),
            ("loss_spike_pct", Box::new(|c| c.loss_spike_pct = 0.0)),
            ("loss_spike_min_delta", Box::new(|c| c.loss_spike_min_delta = -0.1)),
            ("loss_min_history", Box::new(|c| c.loss_min_history = 0)),
            ("weight_stagnation_delta", Box::new(|c| c.weight_stagnation_delta = f64::NAN)),
            ("weight_stagnation_window", Box::new(|c| c.weight_stagnation_window = 0)),
            ("max_layers", Box::new(|c| c.max_layers = 0)),
        ];
        for (field, break_it) in cases {
            let mut c = AnomalyConfig::default();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn switched_off_values_are_valid() {
        let c = AnomalyConfig {
            zeros_pct_threshold: 100.0,
            saturation_pct_threshold: 100.0,
            gradient_spike_factor: f64::INFINITY,
            exploding_gradient_l2: f64::INFINITY,
            vanishing_gradient_l2: 0.0,
            loss_spike_pct: f64::INFINITY,
            weight_stagnation_delta: 0.0,
            dedup_window: 0,
            batch_backfill: 0,
            max_recent: 0,
            ..AnomalyConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
    }
}
