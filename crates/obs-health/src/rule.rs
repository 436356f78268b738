//! The rule catalogue: names, severities, diagnoses and recommendations.

use std::fmt;
use std::str::FromStr;

use obs_core::Severity;
use serde::{Deserialize, Serialize};

/// One health rule. The snake-case name ([`Rule::as_str`]) is the `rule_name` of its warnings.
///
/// Every rule's exact condition, severity and defaults are documented in `docs/health.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rule {
    /// Most units of a ReLU-type layer output zero for the whole batch.
    DeadRelu,
    /// A layer's gradient norm jumped far above its own rolling average.
    GradientSpike,
    /// A layer's gradient norm is practically zero.
    VanishingGradient,
    /// A layer's gradient norm is very large.
    ExplodingGradient,
    /// Validation loss stays well above training loss for several epochs.
    Overfitting,
    /// The epoch training loss stopped changing.
    LossStagnation,
    /// A layer's weight updates stayed tiny for several batches.
    WeightStagnation,
    /// A loss is NaN or infinite.
    NanInfLoss,
    /// The batch loss rose several-fold over a window of batches.
    LossDivergence,
    /// Most outputs of a sigmoid/tanh layer sit in the flat tails.
    ActivationSaturation,
    /// A gradient norm or gradient tensor holds NaN or infinity.
    GradientNanInf,
    /// A layer receives no updates while the others learn, or its weights are all zero.
    DeadWeights,
    /// One batch's loss jumped far above every loss of the recent batches.
    LossSpike,
    /// A layer's outputs or weights hold NaN or infinity.
    NanInfTensor,
}

/// Number of rules; sizes the per-rule counters.
pub(crate) const RULE_COUNT: usize = 14;

impl Rule {
    /// All rules, in a fixed order (the order of summaries).
    pub const ALL: [Rule; RULE_COUNT] = [
        Rule::DeadRelu,
        Rule::GradientSpike,
        Rule::VanishingGradient,
        Rule::ExplodingGradient,
        Rule::Overfitting,
        Rule::LossStagnation,
        Rule::WeightStagnation,
        Rule::NanInfLoss,
        Rule::LossDivergence,
        Rule::ActivationSaturation,
        Rule::GradientNanInf,
        Rule::DeadWeights,
        Rule::LossSpike,
        Rule::NanInfTensor,
    ];

    /// The rule name used in warnings and events (`"dead_relu"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::DeadRelu => "dead_relu",
            Rule::GradientSpike => "gradient_spike",
            Rule::VanishingGradient => "vanishing_gradient",
            Rule::ExplodingGradient => "exploding_gradient",
            Rule::Overfitting => "overfitting",
            Rule::LossStagnation => "loss_stagnation",
            Rule::WeightStagnation => "weight_stagnation",
            Rule::NanInfLoss => "nan_inf_loss",
            Rule::LossDivergence => "loss_divergence",
            Rule::ActivationSaturation => "activation_saturation",
            Rule::GradientNanInf => "gradient_nan_inf",
            Rule::DeadWeights => "dead_weights",
            Rule::LossSpike => "loss_spike",
            Rule::NanInfTensor => "nan_inf_tensor",
        }
    }

    /// The severity of every warning of this rule.
    pub const fn severity(self) -> Severity {
        match self {
            Rule::DeadRelu
            | Rule::GradientSpike
            | Rule::Overfitting
            | Rule::LossStagnation
            | Rule::WeightStagnation
            | Rule::ActivationSaturation
            | Rule::DeadWeights
            | Rule::LossSpike => Severity::Warning,
            Rule::VanishingGradient | Rule::ExplodingGradient | Rule::LossDivergence => {
                Severity::Danger
            }
            Rule::NanInfLoss | Rule::GradientNanInf | Rule::NanInfTensor => Severity::Critical,
        }
    }

    /// Position in [`Rule::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether the rule is judged per epoch ([`crate::AutoHealthWarnings::check_epoch`]) rather
    /// than per batch. `nan_inf_loss` is judged at both.
    pub const fn is_epoch_rule(self) -> bool {
        matches!(self, Rule::Overfitting | Rule::LossStagnation)
    }

    /// Whether the rule reports non-finite numbers. These are the only rules judged while a
    /// run is poisoned: once a NaN or infinity has appeared, every other measure is garbage.
    pub const fn is_non_finite_rule(self) -> bool {
        matches!(self, Rule::NanInfLoss | Rule::GradientNanInf | Rule::NanInfTensor)
    }

    /// Whether a *smaller* `value` in the rule's warnings is worse: a smaller gradient norm
    /// (`vanishing_gradient`), a smaller weight update (`weight_stagnation`), a flatter loss
    /// (`loss_stagnation`). For every other rule with a `value`, larger is worse.
    pub const fn lower_is_worse(self) -> bool {
        matches!(self, Rule::VanishingGradient | Rule::WeightStagnation | Rule::LossStagnation)
    }

    /// What the finding means, one or two sentences.
    pub const fn diagnosis(self) -> &'static str {
        match self {
            Rule::DeadRelu => {
                "Neurons producing zero outputs will receive zero gradients and never recover."
            }
            Rule::GradientSpike => {
                "A sudden jump in gradient magnitude usually comes from an outlier batch or a \
                 learning rate that is too high; repeated spikes tend to precede divergence."
            }
            Rule::VanishingGradient => {
                "Gradients this small leave the layer's weights effectively frozen, and the \
                 layers before it learn almost nothing."
            }
            Rule::ExplodingGradient => {
                "Very large gradients make the weight updates overshoot, which drives the loss \
                 up and eventually to NaN."
            }
            Rule::Overfitting => {
                "Validation loss is pulling away from training loss: the model is memorising \
                 the training set instead of generalising."
            }
            Rule::LossStagnation => {
                "The training loss has stopped changing: the optimiser is stuck on a plateau or \
                 the learning rate is too small to make progress."
            }
            Rule::WeightStagnation => {
                "The layer's weights are barely changing between batches, so it is no longer \
                 learning."
            }
            Rule::NanInfLoss => {
                "A non-finite loss poisons every gradient and weight it touches; training \
                 cannot recover on its own."
            }
            Rule::LossDivergence => {
                "The loss is rising steadily instead of falling: the optimiser is overshooting \
                 and training is diverging."
            }
            Rule::ActivationSaturation => {
                "Saturated sigmoid/tanh units sit where the derivative is nearly zero, so \
                 gradients through them vanish and the layer learns slowly."
            }
            Rule::GradientNanInf => {
                "A NaN or infinite gradient turns the next weight update into NaN and corrupts \
                 the whole model."
            }
            Rule::DeadWeights => {
                "This layer's weights do not move while the rest of the model learns (or are all \
                 zero), so it contributes nothing and may block gradients to earlier layers."
            }
            Rule::LossSpike => {
                "One batch produced a loss far outside anything recent: usually corrupt or \
                 mislabelled samples in that batch, sometimes a learning-rate step gone wrong."
            }
            Rule::NanInfTensor => {
                "NaN or infinite activations or weights propagate through every later layer and \
                 step; the model is corrupted from here on."
            }
        }
    }

    /// Actionable advice, most likely fix first.
    pub const fn recommendations(self) -> &'static [&'static str] {
        match self {
            Rule::DeadRelu => &[
                "Use LeakyReLU(negative_slope=0.01) instead of ReLU",
                "Lower the learning rate",
                "Use He initialisation",
            ],
            Rule::GradientSpike => &[
                "Clip gradients by global norm (e.g. max_norm=1.0)",
                "Lower the learning rate or add a warm-up",
                "Check the batch for outliers or corrupt labels",
            ],
            Rule::VanishingGradient => &[
                "Use ReLU-family activations instead of sigmoid/tanh in deep stacks",
                "Use He or Xavier initialisation",
                "Add batch normalisation or residual connections",
            ],
            Rule::ExplodingGradient => &[
                "Clip gradients by global norm",
                "Lower the learning rate",
                "Check the initialisation scale and normalise the inputs",
            ],
            Rule::Overfitting => &[
                "Add regularisation (dropout, weight decay)",
                "Use early stopping on the validation loss",
                "Get more training data or use data augmentation",
                "Reduce the model's capacity",
            ],
            Rule::LossStagnation => &[
                "Increase the learning rate or use a schedule with warm restarts",
                "Check that gradients reach every layer",
                "Try an adaptive optimiser such as Adam",
            ],
            Rule::WeightStagnation => &[
                "Increase the learning rate",
                "Check for vanishing gradients or dead activations in this layer",
                "Make sure the optimiser holds this layer's parameters",
            ],
            Rule::NanInfLoss => &[
                "Lower the learning rate",
                "Clip gradients by global norm",
                "Check inputs and labels for NaN/Inf",
                "Add an epsilon inside log/division in the loss",
            ],
            Rule::LossDivergence => &[
                "Lower the learning rate",
                "Clip gradients by global norm",
                "Restore the last good checkpoint and resume with a smaller step size",
            ],
            Rule::ActivationSaturation => &[
                "Normalise the inputs or add batch normalisation",
                "Use smaller initial weights (Xavier/Glorot)",
                "Switch to ReLU-family activations",
                "Lower the learning rate",
            ],
            Rule::GradientNanInf => &[
                "Lower the learning rate",
                "Clip gradients by global norm",
                "Look for log(0), division by zero or overflow in the forward pass",
            ],
            Rule::DeadWeights => &[
                "Check that this layer's parameters are given to the optimiser and not frozen",
                "Check that the layer is on the gradient path",
                "Re-initialise the layer: all-zero weights make every unit identical",
            ],
            Rule::LossSpike => &[
                "Inspect the batch's samples and labels for corruption",
                "Clip gradients by global norm so one bad batch cannot move the weights far",
                "Check the data pipeline: shuffling, label alignment, normalisation",
            ],
            Rule::NanInfTensor => &[
                "Lower the learning rate",
                "Clip gradients by global norm",
                "Look for overflow, log(0) or division by zero in the layer's forward pass",
                "Restore the last good checkpoint",
            ],
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule name that is not one of [`Rule::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown health rule {0:?}")]
pub struct UnknownRule(pub String);

impl FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRule(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_position() {
        for (i, r) in Rule::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.as_str().parse::<Rule>(), Ok(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert!(!r.recommendations().is_empty());
            assert!(!r.diagnosis().is_empty());
        }
        assert!("dying_relu".parse::<Rule>().is_err());
    }

    #[test]
    fn severities_follow_the_seed_table() {
        assert_eq!(Rule::DeadRelu.severity(), Severity::Warning);
        assert_eq!(Rule::VanishingGradient.severity(), Severity::Danger);
        assert_eq!(Rule::ExplodingGradient.severity(), Severity::Danger);
        assert_eq!(Rule::LossDivergence.severity(), Severity::Danger);
        assert_eq!(Rule::NanInfLoss.severity(), Severity::Critical);
        assert_eq!(Rule::GradientNanInf.severity(), Severity::Critical);
    }
}
