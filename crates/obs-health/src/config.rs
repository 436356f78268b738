//! `WarningConfig`: every threshold, window and de-duplication setting of the rules.

use serde::{Deserialize, Serialize};

/// Thresholds, windows and de-duplication of the health rules.
///
/// `Default` gives the reference (seed) defaults. Take `default()` and set the fields you want;
/// [`WarningConfig::validate`] (called by [`crate::AutoHealthWarnings::new`]) refuses values that
/// would silently disable or break a rule. Every window is counted in calls (batches or epochs),
/// never in wall-clock time. `docs/health.md` gives each rule's exact condition.
///
/// # Examples
/// ```
/// use obs_health::WarningConfig;
///
/// let mut config = WarningConfig::default();
/// config.overfit_patience = 5;
/// config.dedup_batches = 200;
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WarningConfig {
    /// `dead_relu`: fires when more than this percentage (0-100) of a ReLU-type layer's units
    /// are zero for every sample of the batch. Default 50.
    pub dead_relu_zeros_pct: f64,
    /// `dead_relu`: when a layer reports no per-unit dead fraction, judge the percentage of
    /// zero *elements* instead (the reference's behaviour, which fires on healthy ReLU layers).
    /// Default `false`.
    pub dead_relu_element_zeros: bool,
    /// `gradient_spike`: fires when a norm exceeds this multiple of the layer's rolling average.
    /// Default 5.
    pub gradient_spike_factor: f64,
    /// `gradient_spike`: how many previous finite norms per layer form the rolling average.
    /// Default 20 batches.
    pub gradient_spike_window: usize,
    /// `gradient_spike`: how many previous norms a layer needs before it is judged. Default 5.
    pub gradient_spike_min_history: usize,
    /// `gradient_spike`: a spike must also reach this absolute norm. Near convergence small
    /// gradients jump by large factors without harm (healthy MLPs show 5-16x jumps at norms
    /// of 0.1-0.65); 1.0 is the usual gradient-clipping norm, below which a gradient is not
    /// considered dangerous. 0 judges every jump. Default 1.0.
    pub gradient_spike_min_norm: f64,
    /// `vanishing_gradient`: fires when a finite norm is below this. Default 1e-7.
    pub vanishing_gradient_threshold: f64,
    /// `exploding_gradient`: fires when a finite norm is above this. Default 100.
    pub exploding_gradient_threshold: f64,
    /// `overfitting`: fires when `val_loss / train_loss` exceeds this... Default 1.3.
    pub overfit_ratio: f64,
    /// `overfitting`: ...for this many consecutive epochs. Default 3.
    pub overfit_patience: usize,
    /// `overfitting`: ...with `val_loss - train_loss` above this, in loss units. Near zero
    /// loss the ratio is meaningless (0.015 against 0.001 is 15x for a near-perfect model).
    /// Suits cross-entropy-like losses; lower it for losses on a smaller scale, 0 keeps the
    /// ratio alone. Default 0.1.
    pub overfit_min_gap: f64,
    /// `loss_stagnation`: fires when the epoch training losses of the whole window span less
    /// than this (max - min). Default 1e-4.
    pub loss_stagnation_delta: f64,
    /// `loss_stagnation`: the window, in epochs (at least 2). Default 5.
    pub loss_stagnation_patience: usize,
    /// `weight_stagnation`: fires when every update norm of a layer in the window is below
    /// this. Default 1e-6.
    pub weight_stagnation_delta: f64,
    /// `weight_stagnation`: the window, in batches that report the layer's update. Default 5.
    pub weight_stagnation_window: usize,
    /// `loss_divergence`: fires when the recent batch loss level reaches this multiple of the
    /// earlier level. Default 3.
    pub loss_divergence_factor: f64,
    /// `loss_divergence`: the window, in batches with a finite loss (at least 2). Default 20.
    pub loss_divergence_window: usize,
    /// `loss_divergence`: the recent median must also reach this fraction of the run's
    /// initial loss level (the median of the first full window), so that wobbles of a
    /// converged loss (0.002 to 0.008) are not divergence. 0 turns the floor off. Default 0.25.
    pub loss_divergence_min_fraction: f64,
    /// `activation_saturation`: fires when more than this percentage (0-100) of a sigmoid or
    /// tanh layer's outputs are saturated. Default 40.
    pub saturation_pct: f64,
    /// `dead_weights`: how many consecutive batches a layer's update norm must be exactly zero
    /// while another layer moves. Default 5.
    pub dead_weights_window: usize,
    /// After a (rule, layer) pair fires in a batch check, the same pair stays quiet for this
    /// many batch checks; repeats are counted. 0 turns batch de-duplication off. Default 50.
    pub dedup_batches: u64,
    /// The same for epoch checks, counted in epoch checks. 0 turns it off. Default 5.
    pub dedup_epochs: u64,
    /// How many recent warnings [`crate::AutoHealthWarnings::get_summary`] keeps. Default 100.
    pub max_recent: usize,
    /// How many distinct layer names get per-layer history (rolling averages, stagnation
    /// counters, de-duplication). Further layers are still checked by the rules that need no
    /// history, and share one de-duplication slot per rule. Default 1024.
    pub max_layers: usize,
}

impl Default for WarningConfig {
    fn default() -> Self {
        WarningConfig {
            dead_relu_zeros_pct: 50.0,
            dead_relu_element_zeros: false,
            gradient_spike_factor: 5.0,
            gradient_spike_window: 20,
            gradient_spike_min_history: 5,
            gradient_spike_min_norm: 1.0,
            vanishing_gradient_threshold: 1e-7,
            exploding_gradient_threshold: 100.0,
            overfit_ratio: 1.3,
            overfit_patience: 3,
            overfit_min_gap: 0.1,
            loss_stagnation_delta: 1e-4,
            loss_stagnation_patience: 5,
            weight_stagnation_delta: 1e-6,
            weight_stagnation_window: 5,
            loss_divergence_factor: 3.0,
            loss_divergence_window: 20,
            loss_divergence_min_fraction: 0.25,
            saturation_pct: 40.0,
            dead_weights_window: 5,
            dedup_batches: 50,
            dedup_epochs: 5,
            max_recent: 100,
            max_layers: 1024,
        }
    }
}

/// Why a [`WarningConfig`] was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A threshold is NaN or infinite.
    #[error("`{field}` must be a finite number (got {value})")]
    NotFinite {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A threshold is outside its meaningful range.
    #[error("`{field}` must be between {min} and {max} (got {value})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A window or patience is too short to judge anything.
    #[error("`{field}` must be at least {min} (got {value})")]
    WindowTooSmall {
        /// The field.
        field: &'static str,
        /// The value given.
        value: usize,
        /// Smallest allowed value.
        min: usize,
    },
    /// The spike rule would need more history than its window holds.
    #[error(
        "`gradient_spike_min_history` ({min_history}) must not exceed `gradient_spike_window` ({window})"
    )]
    HistoryExceedsWindow {
        /// `gradient_spike_min_history`.
        min_history: usize,
        /// `gradient_spike_window`.
        window: usize,
    },
    /// The vanishing threshold is not below the exploding one.
    #[error(
        "`vanishing_gradient_threshold` ({vanishing}) must be below `exploding_gradient_threshold` ({exploding})"
    )]
    InvertedGradientThresholds {
        /// `vanishing_gradient_threshold`.
        vanishing: f64,
        /// `exploding_gradient_threshold`.
        exploding: f64,
    },
}

fn in_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::NotFinite { field, value });
    }
    if value < min || value > max {
        return Err(ConfigError::OutOfRange { field, value, min, max });
    }
    Ok(())
}

fn at_least(field: &'static str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value < min { Err(ConfigError::WindowTooSmall { field, value, min }) } else { Ok(()) }
}

impl WarningConfig {
    /// Checks every field.
    ///
    /// Percentages must be finite and within 0-100; norms and deltas finite and non-negative;
    /// factors and ratios finite and at least 1 (a smaller factor would fire on every batch);
    /// windows and patiences at least 1 (2 for the loss-stagnation and divergence windows,
    /// which compare values); the spike history at most its window; the vanishing threshold
    /// below the exploding one. De-duplication windows, `max_recent` and `max_layers` may be 0.
    ///
    /// # Errors
    /// The first offending field, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inf = f64::INFINITY;
        in_range("dead_relu_zeros_pct", self.dead_relu_zeros_pct, 0.0, 100.0)?;
        in_range("saturation_pct", self.saturation_pct, 0.0, 100.0)?;
        in_range("gradient_spike_factor", self.gradient_spike_factor, 1.0, inf)?;
        in_range("loss_divergence_factor", self.loss_divergence_factor, 1.0, inf)?;
        in_range("overfit_ratio", self.overfit_ratio, 1.0, inf)?;
        in_range("gradient_spike_min_norm", self.gradient_spike_min_norm, 0.0, inf)?;
        in_range("vanishing_gradient_threshold", self.vanishing_gradient_threshold, 0.0, inf)?;
        in_range("exploding_gradient_threshold", self.exploding_gradient_threshold, 0.0, inf)?;
        in_range("overfit_min_gap", self.overfit_min_gap, 0.0, inf)?;
        in_range("loss_divergence_min_fraction", self.loss_divergence_min_fraction, 0.0, inf)?;
        in_range("loss_stagnation_delta", self.loss_stagnation_delta, 0.0, inf)?;
        in_range("weight_stagnation_delta", self.weight_stagnation_delta, 0.0, inf)?;
        if self.vanishing_gradient_threshold >= self.exploding_gradient_threshold {
            return Err(ConfigError::InvertedGradientThresholds {
                vanishing: self.vanishing_gradient_threshold,
                exploding: self.exploding_gradient_threshold,
            });
        }
        at_least("gradient_spike_window", self.gradient_spike_window, 1)?;
        at_least("gradient_spike_min_history", self.gradient_spike_min_history, 1)?;
        if self.gradient_spike_min_history > self.gradient_spike_window {
            return Err(ConfigError::HistoryExceedsWindow {
                min_history: self.gradient_spike_min_history,
                window: self.gradient_spike_window,
            });
        }
        at_least("overfit_patience", self.overfit_patience, 1)?;
        at_least("loss_stagnation_patience", self.loss_stagnation_patience, 2)?;
        at_least("weight_stagnation_window", self.weight_stagnation_window, 1)?;
        at_least("loss_divergence_window", self.loss_divergence_window, 2)?;
        at_least("dead_weights_window", self.dead_weights_window, 1)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_values_and_valid() {
        let c = WarningConfig::default();
        assert_eq!(c.dead_relu_zeros_pct, 50.0);
        assert_eq!(c.gradient_spike_factor, 5.0);
        assert_eq!(c.vanishing_gradient_threshold, 1e-7);
        assert_eq!(c.exploding_gradient_threshold, 100.0);
        assert_eq!((c.overfit_ratio, c.overfit_patience), (1.3, 3));
        assert_eq!(c.loss_stagnation_delta, 1e-4);
        assert_eq!((c.weight_stagnation_delta, c.weight_stagnation_window), (1e-6, 5));
        assert_eq!(c.loss_divergence_factor, 3.0);
        assert_eq!(c.saturation_pct, 40.0);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        type Set = fn(&mut WarningConfig);
        let cases: Vec<(Set, &str)> = vec![
            (|c| c.dead_relu_zeros_pct = f64::NAN, "dead_relu_zeros_pct"),
            (|c| c.dead_relu_zeros_pct = -1.0, "dead_relu_zeros_pct"),
            (|c| c.saturation_pct = 100.5, "saturation_pct"),
            (|c| c.gradient_spike_factor = 0.5, "gradient_spike_factor"),
            (|c| c.gradient_spike_factor = f64::INFINITY, "gradient_spike_factor"),
            (|c| c.gradient_spike_min_norm = -0.5, "gradient_spike_min_norm"),
            (|c| c.vanishing_gradient_threshold = -1e-7, "vanishing_gradient_threshold"),
            (|c| c.exploding_gradient_threshold = f64::NAN, "exploding_gradient_threshold"),
            (|c| c.loss_stagnation_delta = -0.1, "loss_stagnation_delta"),
            (|c| c.weight_stagnation_delta = f64::NEG_INFINITY, "weight_stagnation_delta"),
            (|c| c.overfit_ratio = f64::NAN, "overfit_ratio"),
            (|c| c.overfit_min_gap = -0.1, "overfit_min_gap"),
            (|c| c.loss_divergence_min_fraction = f64::NAN, "loss_divergence_min_fraction"),
            (|c| c.loss_divergence_factor = 0.0, "loss_divergence_factor"),
            (|c| c.gradient_spike_window = 0, "gradient_spike_window"),
            (|c| c.gradient_spike_min_history = 0, "gradient_spike_min_history"),
            (|c| c.overfit_patience = 0, "overfit_patience"),
            (|c| c.loss_stagnation_patience = 1, "loss_stagnation_patience"),
            (|c| c.weight_stagnation_window = 0, "weight_stagnation_window"),
            (|c| c.loss_divergence_window = 1, "loss_divergence_window"),
            (|c| c.dead_weights_window = 0, "dead_weights_window"),
            (|c| c.gradient_spike_min_history = 21, "gradient_spike_min_history"),
            (|c| c.vanishing_gradient_threshold = 200.0, "vanishing_gradient_threshold"),
        ];
        for (set, field) in cases {
            let mut c = WarningConfig::default();
            set(&mut c);
            let err = c.validate().expect_err(field);
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn zero_dedup_and_zero_bounds_are_allowed() {
        let c = WarningConfig {
            dedup_batches: 0,
            dedup_epochs: 0,
            max_recent: 0,
            max_layers: 0,
            ..WarningConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn serde_fills_missing_fields_with_defaults() {
        let c: WarningConfig = serde_json::from_str(r#"{"overfit_patience": 7}"#).unwrap();
        assert_eq!(c.overfit_patience, 7);
        assert_eq!(c.dead_relu_zeros_pct, 50.0);
    }
}
