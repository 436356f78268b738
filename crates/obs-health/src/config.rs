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
    /// are zero for every sample of the batch... Default 50.
    pub dead_relu_zeros_pct: f64,
    /// `dead_relu`: ...in this many consecutive batches (a layer with every unit dead fires at
    /// once). In a small batch a healthy unit is often zero for every sample by chance (a unit
    /// active on a third of the inputs is dead in a batch of 4 one time in five); a unit dead
    /// on every input stays dead. Default 5.
    pub dead_relu_patience: usize,
    /// `dead_relu`: when a layer reports no per-unit dead fraction, judge the percentage of
    /// zero *elements* instead (the reference's behaviour, which fires on healthy ReLU layers).
    /// Default `false`.
    pub dead_relu_element_zeros: bool,
    /// `gradient_spike`: a layer jumps when its norm exceeds this multiple of its rolling
    /// average. Default 5.
    pub gradient_spike_factor: f64,
    /// `gradient_spike`: how many previous finite norms per layer form the rolling average.
    /// Default 20 batches.
    pub gradient_spike_window: usize,
    /// `gradient_spike`: how many previous norms a layer needs before it is judged. Default 5.
    pub gradient_spike_min_history: usize,
    /// `gradient_spike`: fires only when more than this percentage (0-100) of the layers
    /// judged in the batch jump together (of two layers, both). A single layer's norm jumping 14x is ordinary small-batch
    /// noise; a corrupted batch moves every layer at once. Default 50.
    pub gradient_spike_layers_pct: f64,
    /// `gradient_spike`: a spike must also reach this absolute norm. 0 judges every jump.
    /// Default 0.
    pub gradient_spike_min_norm: f64,
    /// `loss_spike`, and the loss half of `gradient_spike`: a batch loss counts as a spike when
    /// it is more than this percentage above the *highest* finite loss of the last
    /// `loss_spike_window` batches. The highest, not the mean: near convergence healthy losses
    /// jump by 5-8x their rolling mean from one batch to the next. Default 900 (10x).
    pub loss_spike_pct: f64,
    /// `loss_spike`: a loss also counts as a spike when it is more than this many times the
    /// run's first loss (worse than the untrained model: the batch contradicts what was
    /// learned)... Default 2.
    pub loss_spike_start_factor: f64,
    /// `loss_spike`: ...and more than this percentage above the highest recent loss.
    /// Default 200 (3x).
    pub loss_spike_start_pct: f64,
    /// `loss_spike`: the window of recent batch losses. Default 20.
    pub loss_spike_window: usize,
    /// `loss_spike`: losses the window must hold before spikes are judged. Default 5.
    pub loss_spike_min_history: usize,
    /// `vanishing_gradient`: fires when a finite norm is below this... Default 1e-7.
    pub vanishing_gradient_threshold: f64,
    /// `vanishing_gradient`: ...in this many consecutive batches: a converged layer can dip
    /// below it once. Default 5.
    pub vanishing_gradient_patience: usize,
    /// `exploding_gradient`: fires when a finite norm is above this. Default 100.
    pub exploding_gradient_threshold: f64,
    /// `overfitting`: fires when `val_loss / train_loss` exceeds this... Default 1.3.
    pub overfit_ratio: f64,
    /// `overfitting`: ...for this many consecutive epochs, with both losses taken as medians
    /// of the last this-many epochs (a small validation set makes single epochs swing by
    /// 20-50%). Default 3.
    pub overfit_patience: usize,
    /// `overfitting`: ...with `val_loss - train_loss` above this, in loss units. Near zero
    /// loss the ratio is meaningless (0.015 against 0.001 is 15x for a near-perfect model).
    /// Suits cross-entropy-like losses; lower it for losses on a smaller scale, 0 keeps the
    /// ratio alone. Default 0.1.
    pub overfit_min_gap: f64,
    /// `overfitting`: ...with the median validation loss at least this fraction above its
    /// lowest so far, and the median and latest training losses below the median then: a gap
    /// that is not growing is ordinary generalisation error, and both losses rising together
    /// is instability, not overfitting. 0 drops the condition.
    /// Default 0.2 (20%).
    pub overfit_min_rise: f64,
    /// `loss_stagnation`: the window's epoch training losses span less than this (max - min)
    /// counts as flat (the reference's absolute test; `loss_stagnation_rel_delta` is what
    /// judges by default)... Default 0 (off).
    pub loss_stagnation_delta: f64,
    /// `loss_stagnation`: ...and so does a span below this fraction of their mean (a noisy
    /// plateau at 1.0986 moves far more than 1e-4). Default 0.03.
    pub loss_stagnation_rel_delta: f64,
    /// `loss_stagnation`: fires only while the loss is still at least this fraction of the
    /// first epoch's: a loss that fell to 4e-4 has converged, and one that fell by half has
    /// learned something; a loss still where it started has not. Default 0.9.
    pub loss_stagnation_max_progress: f64,
    /// `loss_stagnation`: the window, in epochs (at least 2). Default 5.
    pub loss_stagnation_patience: usize,
    /// `weight_stagnation`: fires when every update norm of a layer in the window is below
    /// this. Default 1e-6.
    pub weight_stagnation_delta: f64,
    /// `weight_stagnation`: the window, in batches that report the layer's update. Default 5.
    pub weight_stagnation_window: usize,
    /// `loss_divergence` (slow): fires when the recent batch loss level reaches this multiple
    /// of the earlier level. Default 3.
    pub loss_divergence_factor: f64,
    /// `loss_divergence` (slow): the window of finite batch losses whose halves are compared.
    /// Default 20.
    pub loss_divergence_window: usize,
    /// `loss_divergence` (slow): the recent level must also be at least this multiple of the
    /// run's initial level: a loss that climbs from 0.05 to 0.2 and stays far below where
    /// training started is noise or a bad patch, not divergence. Default 1.0.
    pub loss_divergence_min_fraction: f64,
    /// `loss_divergence` (fast): a loss escapes when it is above the run's first loss and
    /// more than this multiple of the median of the recent losses that did not escape.
    /// Default 10.
    pub loss_divergence_fast_factor: f64,
    /// `loss_divergence` (fast): fires after this many consecutive escaping losses, each
    /// higher than the one before: a blow-up, reported before it reaches NaN. Default 2.
    pub loss_divergence_fast_steps: usize,
    /// `activation_saturation`: fires when more than this percentage (0-100) of a sigmoid or
    /// tanh layer's outputs are saturated... Default 40.
    pub saturation_pct: f64,
    /// `activation_saturation`: ...in this many consecutive batches. Default 5.
    pub saturation_patience: usize,
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
            dead_relu_patience: 5,
            dead_relu_element_zeros: false,
            gradient_spike_factor: 5.0,
            gradient_spike_window: 20,
            gradient_spike_min_history: 5,
            gradient_spike_layers_pct: 50.0,
            gradient_spike_min_norm: 0.0,
            loss_spike_pct: 900.0,
            loss_spike_start_factor: 2.0,
            loss_spike_start_pct: 200.0,
            loss_spike_window: 20,
            loss_spike_min_history: 5,
            vanishing_gradient_threshold: 1e-7,
            vanishing_gradient_patience: 5,
            exploding_gradient_threshold: 100.0,
            overfit_ratio: 1.3,
            overfit_patience: 3,
            overfit_min_gap: 0.1,
            overfit_min_rise: 0.2,
            loss_stagnation_delta: 0.0,
            loss_stagnation_rel_delta: 0.03,
            loss_stagnation_max_progress: 0.9,
            loss_stagnation_patience: 5,
            weight_stagnation_delta: 1e-6,
            weight_stagnation_window: 5,
            loss_divergence_factor: 3.0,
            loss_divergence_window: 20,
            loss_divergence_min_fraction: 1.0,
            loss_divergence_fast_factor: 10.0,
            loss_divergence_fast_steps: 2,
            saturation_pct: 40.0,
            saturation_patience: 5,
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
    /// A spike rule would need more history than its window holds.
    #[error("`{field}` ({min_history}) must not exceed `{window_field}` ({window})")]
    HistoryExceedsWindow {
        /// The minimum-history field.
        field: &'static str,
        /// Its value.
        min_history: usize,
        /// The window field.
        window_field: &'static str,
        /// Its value.
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

/// A minimum history of at least 1 that fits in a window of at least 1.
fn history(
    (field, min_history): (&'static str, usize),
    (window_field, window): (&'static str, usize),
) -> Result<(), ConfigError> {
    at_least(window_field, window, 1)?;
    at_least(field, min_history, 1)?;
    if min_history > window {
        return Err(ConfigError::HistoryExceedsWindow { field, min_history, window_field, window });
    }
    Ok(())
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
        in_range("gradient_spike_layers_pct", self.gradient_spike_layers_pct, 0.0, 100.0)?;
        in_range("loss_spike_pct", self.loss_spike_pct, 0.0, inf)?;
        in_range("loss_spike_start_factor", self.loss_spike_start_factor, 1.0, inf)?;
        in_range("loss_spike_start_pct", self.loss_spike_start_pct, 0.0, inf)?;
        in_range("loss_divergence_fast_factor", self.loss_divergence_fast_factor, 1.0, inf)?;
        in_range("overfit_min_rise", self.overfit_min_rise, 0.0, inf)?;
        in_range("loss_stagnation_rel_delta", self.loss_stagnation_rel_delta, 0.0, 1.0)?;
        in_range("loss_stagnation_max_progress", self.loss_stagnation_max_progress, 0.0, 1.0)?;
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
        history(
            ("gradient_spike_min_history", self.gradient_spike_min_history),
            ("gradient_spike_window", self.gradient_spike_window),
        )?;
        history(
            ("loss_spike_min_history", self.loss_spike_min_history),
            ("loss_spike_window", self.loss_spike_window),
        )?;
        at_least("dead_relu_patience", self.dead_relu_patience, 1)?;
        at_least("vanishing_gradient_patience", self.vanishing_gradient_patience, 1)?;
        at_least("saturation_patience", self.saturation_patience, 1)?;
        at_least("loss_divergence_fast_steps", self.loss_divergence_fast_steps, 1)?;
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
    fn defaults_keep_the_seed_thresholds_and_validate() {
        let c = WarningConfig::default();
        assert_eq!(c.dead_relu_zeros_pct, 50.0);
        assert_eq!(c.gradient_spike_factor, 5.0);
        assert_eq!(c.vanishing_gradient_threshold, 1e-7);
        assert_eq!(c.exploding_gradient_threshold, 100.0);
        assert_eq!((c.overfit_ratio, c.overfit_patience), (1.3, 3));
        // The seed's absolute 1e-4 misreads a converging 4e-4 loss; the relative test replaces it.
        assert_eq!((c.loss_stagnation_delta, c.loss_stagnation_rel_delta), (0.0, 0.03));
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
            (|c| c.gradient_spike_layers_pct = 120.0, "gradient_spike_layers_pct"),
            (|c| c.loss_spike_pct = f64::NAN, "loss_spike_pct"),
            (|c| c.loss_spike_start_factor = 0.5, "loss_spike_start_factor"),
            (|c| c.loss_spike_start_pct = -1.0, "loss_spike_start_pct"),
            (|c| c.loss_spike_min_history = 30, "loss_spike_min_history"),
            (|c| c.loss_spike_window = 0, "loss_spike_window"),
            (|c| c.loss_divergence_fast_factor = 0.5, "loss_divergence_fast_factor"),
            (|c| c.loss_divergence_fast_steps = 0, "loss_divergence_fast_steps"),
            (|c| c.overfit_min_rise = -0.1, "overfit_min_rise"),
            (|c| c.loss_stagnation_rel_delta = 2.0, "loss_stagnation_rel_delta"),
            (|c| c.loss_stagnation_max_progress = f64::NAN, "loss_stagnation_max_progress"),
            (|c| c.dead_relu_patience = 0, "dead_relu_patience"),
            (|c| c.saturation_patience = 0, "saturation_patience"),
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
