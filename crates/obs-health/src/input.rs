//! The borrowed per-batch input of [`crate::AutoHealthWarnings::check_batch`].

use obs_core::{Activation, TensorStats};

/// What a layer's output looked like in one batch, as plain numbers.
///
/// Build it from a [`TensorStats`] (`ActivationStats::from(&stats)`) or from numbers you already
/// have. Percentages are 0-100. A `None` field is simply not judged.
///
/// # Examples
/// ```
/// use obs_core::Activation;
/// use obs_health::ActivationStats;
///
/// let relu = ActivationStats::new(Activation::Relu).dead_units_pct(62.0);
/// let tanh = ActivationStats::new("tanh".parse()?).saturation_pct(12.5);
/// assert_eq!(tanh.activation, Activation::Tanh);
/// # let _ = relu;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ActivationStats {
    /// The activation function that produced the output; decides which rules apply.
    pub activation: Activation,
    /// Percentage of output elements that are exactly zero.
    pub zeros_pct: Option<f64>,
    /// Percentage of units (columns) that are zero for every sample of the batch.
    pub dead_units_pct: Option<f64>,
    /// Percentage of output elements saturated for `activation`.
    pub saturation_pct: Option<f64>,
    /// Number of NaN or infinite output elements.
    pub non_finite: Option<u64>,
}

impl ActivationStats {
    /// No numbers yet, for an output of `activation`.
    pub const fn new(activation: Activation) -> Self {
        ActivationStats {
            activation,
            zeros_pct: None,
            dead_units_pct: None,
            saturation_pct: None,
            non_finite: None,
        }
    }

    /// Sets the percentage of zero elements.
    #[must_use]
    pub const fn zeros_pct(mut self, pct: f64) -> Self {
        self.zeros_pct = Some(pct);
        self
    }

    /// Sets the percentage of units dead for the whole batch.
    #[must_use]
    pub const fn dead_units_pct(mut self, pct: f64) -> Self {
        self.dead_units_pct = Some(pct);
        self
    }

    /// Sets the percentage of saturated elements.
    #[must_use]
    pub const fn saturation_pct(mut self, pct: f64) -> Self {
        self.saturation_pct = Some(pct);
        self
    }

    /// Sets the number of NaN or infinite elements.
    #[must_use]
    pub const fn non_finite(mut self, count: u64) -> Self {
        self.non_finite = Some(count);
        self
    }
}

impl From<&TensorStats> for ActivationStats {
    /// Takes the zeros, dead-unit and saturation percentages and the NaN/Inf count of the
    /// kernel's statistics. An empty tensor gives no numbers at all.
    fn from(s: &TensorStats) -> Self {
        if s.count == 0 {
            return ActivationStats::new(s.activation);
        }
        ActivationStats {
            activation: s.activation,
            zeros_pct: Some(s.zeros_pct()),
            dead_units_pct: s.dead_units_pct(),
            saturation_pct: Some(s.saturation_pct()),
            non_finite: Some(s.nan + s.inf),
        }
    }
}

impl From<TensorStats> for ActivationStats {
    fn from(s: TensorStats) -> Self {
        ActivationStats::from(&s)
    }
}

/// Everything [`crate::AutoHealthWarnings::check_batch`] looks at for one batch, borrowed.
///
/// Per-layer values are slices of `(layer_name, value)` pairs, so a caller can keep them in
/// stack arrays or reused vectors and a check allocates nothing unless a rule fires. Every part
/// is optional: leave a slice empty and its rules are skipped. Passing the layers in the same
/// order in every slice and every batch makes the layer lookup a single comparison.
///
/// # Examples
/// ```
/// use obs_core::Activation;
/// use obs_health::{ActivationStats, BatchInput};
///
/// let grads = [("dense_0", 0.05), ("dense_1", 0.03)];
/// let acts = [("dense_0", ActivationStats::new(Activation::Relu).dead_units_pct(12.0))];
/// let input = BatchInput::new(5, 10).loss(0.42).gradient_norms(&grads).activations(&acts);
/// assert_eq!(input.loss, Some(0.42));
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct BatchInput<'a> {
    /// The epoch (0-based); a label only, reported in warnings.
    pub epoch: u64,
    /// The batch within the epoch (0-based); a label only, reported in warnings.
    pub batch: u64,
    /// The batch loss, if known.
    pub loss: Option<f64>,
    /// L2 norm of each layer's gradient.
    pub gradient_norms: &'a [(&'a str, f64)],
    /// Number of NaN/Inf elements in each layer's gradient tensor.
    pub gradient_non_finite: &'a [(&'a str, u64)],
    /// Output statistics of each layer, as numbers.
    pub activations: &'a [(&'a str, ActivationStats)],
    /// Output statistics of each layer, straight from [`obs_core::tensor_stats`].
    pub activation_tensors: &'a [(&'a str, TensorStats)],
    /// L2 norm of each layer's weight update in this batch.
    pub update_norms: &'a [(&'a str, f64)],
    /// Statistics of each layer's weights after the update (for all-zero weights).
    pub weight_tensors: &'a [(&'a str, TensorStats)],
}

impl<'a> BatchInput<'a> {
    /// An input for `batch` of `epoch` with nothing in it yet.
    pub const fn new(epoch: u64, batch: u64) -> Self {
        BatchInput {
            epoch,
            batch,
            loss: None,
            gradient_norms: &[],
            gradient_non_finite: &[],
            activations: &[],
            activation_tensors: &[],
            update_norms: &[],
            weight_tensors: &[],
        }
    }

    /// Sets the batch loss.
    #[must_use]
    pub const fn loss(mut self, loss: f64) -> Self {
        self.loss = Some(loss);
        self
    }

    /// Sets the gradient norms per layer.
    #[must_use]
    pub const fn gradient_norms(mut self, norms: &'a [(&'a str, f64)]) -> Self {
        self.gradient_norms = norms;
        self
    }

    /// Sets the NaN/Inf element counts of each layer's gradient.
    #[must_use]
    pub const fn gradient_non_finite(mut self, counts: &'a [(&'a str, u64)]) -> Self {
        self.gradient_non_finite = counts;
        self
    }

    /// Sets the activation statistics per layer, as numbers.
    #[must_use]
    pub const fn activations(mut self, stats: &'a [(&'a str, ActivationStats)]) -> Self {
        self.activations = stats;
        self
    }

    /// Sets the activation statistics per layer, as kernel statistics.
    #[must_use]
    pub const fn activation_tensors(mut self, stats: &'a [(&'a str, TensorStats)]) -> Self {
        self.activation_tensors = stats;
        self
    }

    /// Sets the weight-update norms per layer.
    #[must_use]
    pub const fn update_norms(mut self, norms: &'a [(&'a str, f64)]) -> Self {
        self.update_norms = norms;
        self
    }

    /// Sets the weight statistics per layer.
    #[must_use]
    pub const fn weight_tensors(mut self, stats: &'a [(&'a str, TensorStats)]) -> Self {
        self.weight_tensors = stats;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::{TensorView, tensor_stats};

    #[test]
    fn tensor_stats_convert_with_dead_units() {
        let out = [0.0f32, 1.0, 0.0, 2.0, 0.0, 0.5];
        let shape = [3, 2];
        let s = tensor_stats(TensorView::new(&out[..], &shape).unwrap(), Activation::Relu);
        let a = ActivationStats::from(&s);
        assert_eq!(a.activation, Activation::Relu);
        assert_eq!(a.dead_units_pct, Some(50.0));
        assert_eq!(a.zeros_pct, Some(50.0));
        assert_eq!(a.saturation_pct, Some(0.0));
        assert_eq!(a.non_finite, Some(0));
    }

    #[test]
    fn empty_tensor_gives_no_numbers() {
        let s = tensor_stats(TensorView::flat(&[] as &[f32]), Activation::Tanh);
        assert_eq!(ActivationStats::from(s), ActivationStats::new(Activation::Tanh));
    }
}
