//! [`AnomalyConfig`]: when to escalate, and the detection rules it escalates on.

use std::fmt;

use obs_health::WarningConfig;

/// How the adaptive logger escalates, and the rules it decides from.
///
/// The detection thresholds live in [`AnomalyConfig::rules`], an [`obs_health::WarningConfig`]:
/// the adaptive logger runs the same rule engine as [`obs_health::AutoHealthWarnings`], so each
/// rule has one implementation and one configuration (documented in `docs/health.md`). The
/// reference's `AnomalyConfig` parameter names are kept as setters that write into `rules`
/// ([`AnomalyConfig::zeros_pct_threshold`], ...).
///
/// # Examples
/// ```
/// use obs_adaptive::AnomalyConfig;
///
/// let config = AnomalyConfig::default()
///     .zeros_pct_threshold(30.0) // rules.dead_relu_zeros_pct
///     .gradient_spike_factor(3.0)
///     .escalation_cooldown(20);
/// assert_eq!(config.rules.dead_relu_zeros_pct, 30.0);
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AnomalyConfig {
    /// The detection rules. Their de-duplication ([`WarningConfig::dedup_batches`]) also
    /// decides how often a chronic finding is re-reported, and so sampled.
    pub rules: WarningConfig,
    /// Batches recorded at EXPERT detail after the batch where a finding starts, moves to
    /// another layer or worsens. The reference's cooldown of 10 counted hook calls, a third of
    /// a batch of a small MLP; 5 batches show how an episode develops without recording a
    /// chronic condition for long. Default `5`.
    pub escalation_cooldown: u64,
    /// A finding of a rule and layer already reported counts as *worse* when its value is at
    /// least this many times further past its threshold than when it last escalated (for the
    /// rules where lower is worse, [`obs_health::Rule::lower_is_worse`], this many times
    /// further below it). Gradient norms and loss ratios move over orders of magnitude, so a
    /// worsening is one of them. Default `10.0`.
    pub worsen_factor: f64,
    /// Anomalies kept for [`crate::AnomalySummary::recent`] (oldest dropped first).
    /// Default `64`.
    pub max_recent: usize,
    /// Layer hooks of the current batch kept as statistics (never tensors) so that a finding
    /// made later in the batch (a loss spike at `batch_end`, say) still records the whole
    /// batch at EXPERT detail. `0` records only from the finding on. Default `1024`.
    pub batch_backfill: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            rules: WarningConfig::default(),
            escalation_cooldown: 5,
            worsen_factor: 10.0,
            max_recent: 64,
            batch_backfill: 1024,
        }
    }
}

impl AnomalyConfig {
    /// The reference's `zeros_pct_threshold`: sets `rules.dead_relu_zeros_pct`, the
    /// percentage of a ReLU layer's units dead for the whole batch above which it is dying.
    #[must_use]
    pub fn zeros_pct_threshold(mut self, pct: f64) -> Self {
        self.rules.dead_relu_zeros_pct = pct;
        self
    }

    /// The reference's `gradient_spike_factor`: sets `rules.gradient_spike_factor`.
    #[must_use]
    pub fn gradient_spike_factor(mut self, factor: f64) -> Self {
        self.rules.gradient_spike_factor = factor;
        self
    }

    /// The reference's `loss_spike_pct`: sets `rules.loss_spike_pct`, how far (in percent) a
    /// batch loss must rise above the highest recent loss to be a spike.
    #[must_use]
    pub fn loss_spike_pct(mut self, pct: f64) -> Self {
        self.rules.loss_spike_pct = pct;
        self
    }

    /// The reference's `weight_stagnation_window`: sets `rules.weight_stagnation_window`.
    #[must_use]
    pub fn weight_stagnation_window(mut self, batches: usize) -> Self {
        self.rules.weight_stagnation_window = batches;
        self
    }

    /// The reference's `saturation_pct_threshold`: sets `rules.saturation_pct`.
    #[must_use]
    pub fn saturation_pct_threshold(mut self, pct: f64) -> Self {
        self.rules.saturation_pct = pct;
        self
    }

    /// The reference's `vanishing_gradient_l2`: sets `rules.vanishing_gradient_threshold`.
    #[must_use]
    pub fn vanishing_gradient_l2(mut self, norm: f64) -> Self {
        self.rules.vanishing_gradient_threshold = norm;
        self
    }

    /// The reference's `exploding_gradient_l2`: sets `rules.exploding_gradient_threshold`.
    #[must_use]
    pub fn exploding_gradient_l2(mut self, norm: f64) -> Self {
        self.rules.exploding_gradient_threshold = norm;
        self
    }

    /// The reference's `weight_stagnation_delta`: sets `rules.weight_stagnation_delta`.
    #[must_use]
    pub fn weight_stagnation_delta(mut self, delta: f64) -> Self {
        self.rules.weight_stagnation_delta = delta;
        self
    }

    /// The reference's `escalation_cooldown`.
    #[must_use]
    pub fn escalation_cooldown(mut self, batches: u64) -> Self {
        self.escalation_cooldown = batches;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad field: any refused by [`WarningConfig::validate`]
    /// (as `rules`), a `worsen_factor` that is NaN or not above 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.rules.validate().map_err(ConfigError::Rules)?;
        if self.worsen_factor.is_nan() || self.worsen_factor <= 1.0 {
            return Err(ConfigError::Field {
                field: "worsen_factor",
                reason: format!("{} must be above 1", self.worsen_factor),
            });
        }
        Ok(())
    }
}

/// A field of [`AnomalyConfig`] holds a value the logger cannot work with.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rule threshold, refused by [`WarningConfig::validate`].
    Rules(obs_health::ConfigError),
    /// An escalation setting.
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Rules(e) => write!(f, "invalid AnomalyConfig.rules: {e}"),
            ConfigError::Field { field, reason } => {
                write!(f, "invalid AnomalyConfig.{field}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Rules(e) => Some(e),
            ConfigError::Field { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_the_reference_names_set_the_rules() {
        let c = AnomalyConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.escalation_cooldown, 5);
        assert_eq!(c.rules, WarningConfig::default());
        let c = AnomalyConfig::default()
            .zeros_pct_threshold(30.0)
            .gradient_spike_factor(3.0)
            .loss_spike_pct(30.0)
            .weight_stagnation_window(10)
            .saturation_pct_threshold(60.0)
            .vanishing_gradient_l2(1e-9)
            .exploding_gradient_l2(50.0)
            .weight_stagnation_delta(1e-8)
            .escalation_cooldown(20);
        let r = &c.rules;
        assert_eq!(
            (r.dead_relu_zeros_pct, r.gradient_spike_factor, r.loss_spike_pct),
            (30.0, 3.0, 30.0)
        );
        assert_eq!((r.weight_stagnation_window, r.saturation_pct), (10, 60.0));
        assert_eq!((r.vanishing_gradient_threshold, r.exploding_gradient_threshold), (1e-9, 50.0));
        assert_eq!((r.weight_stagnation_delta, c.escalation_cooldown), (1e-8, 20));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = AnomalyConfig::default().zeros_pct_threshold(f64::NAN).validate().unwrap_err();
        assert!(err.to_string().contains("dead_relu_zeros_pct"), "{err}");
        assert!(matches!(err, ConfigError::Rules(_)));
        let err = AnomalyConfig { worsen_factor: 1.0, ..AnomalyConfig::default() }
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("worsen_factor"), "{err}");
        let err = AnomalyConfig::default().gradient_spike_factor(0.5).validate().unwrap_err();
        assert!(err.to_string().contains("gradient_spike_factor"), "{err}");
    }
}
