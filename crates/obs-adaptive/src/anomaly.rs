//! What the adaptive logger finds: [`Trigger`], [`Anomaly`] and [`AnomalySummary`].

use std::fmt;
use std::str::FromStr;

use obs_core::{Data, Event, EventType, Severity};
use obs_health::{HealthWarning, Rule};
use serde::Serialize;

/// The anomaly triggers, with the severity each one is reported at.
///
/// The first eight are the reference's triggers; the rest name the health rules that have no
/// reference trigger. Every finding comes from one [`Rule`] of obs-health, see
/// [`Trigger::from_rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trigger {
    /// Too many dead units (or zero elements) in a layer's output. Warning.
    DeadNeurons,
    /// A gradient norm far above the layer's rolling mean. Warning.
    GradientSpike,
    /// A gradient norm below the vanishing threshold. Danger.
    VanishingGradient,
    /// A gradient norm above the exploding threshold. Danger.
    ExplodingGradient,
    /// A batch loss far above the rolling baseline. Warning.
    LossSpike,
    /// NaN or infinity in a loss, metric, activation, gradient or weight. Critical.
    NanInf,
    /// Weight updates below the stagnation delta for several consecutive updates. Warning.
    WeightStagnation,
    /// Too many saturated outputs for the layer's activation type. Warning.
    ActivationSaturation,
    /// The loss is climbing away: a blow-up in progress or a sustained rise. Danger.
    LossDivergence,
    /// Validation loss rising while training loss falls. Warning.
    Overfitting,
    /// The epoch loss stopped moving near where it started. Warning.
    LossStagnation,
    /// A health rule this version of the adaptive logger has no trigger name for (its
    /// `rule_name` says which). Severity as the rule's.
    OtherRule,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 12] = [
        Trigger::DeadNeurons,
        Trigger::GradientSpike,
        Trigger::VanishingGradient,
        Trigger::ExplodingGradient,
        Trigger::LossSpike,
        Trigger::NanInf,
        Trigger::WeightStagnation,
        Trigger::ActivationSaturation,
        Trigger::LossDivergence,
        Trigger::Overfitting,
        Trigger::LossStagnation,
        Trigger::OtherRule,
    ];

    /// The trigger a health rule's findings are reported under: `dead_relu` is
    /// `dead_neurons`, the three NaN/Inf rules are `nan_inf`, `dead_weights` is
    /// `weight_stagnation`; the others keep their name.
    pub const fn from_rule(rule: Rule) -> Trigger {
        match rule {
            Rule::DeadRelu => Trigger::DeadNeurons,
            Rule::GradientSpike => Trigger::GradientSpike,
            Rule::VanishingGradient => Trigger::VanishingGradient,
            Rule::ExplodingGradient => Trigger::ExplodingGradient,
            Rule::LossSpike => Trigger::LossSpike,
            Rule::NanInfLoss | Rule::GradientNanInf | Rule::NanInfTensor => Trigger::NanInf,
            Rule::WeightStagnation | Rule::DeadWeights => Trigger::WeightStagnation,
            Rule::ActivationSaturation => Trigger::ActivationSaturation,
            Rule::LossDivergence => Trigger::LossDivergence,
            Rule::Overfitting => Trigger::Overfitting,
            Rule::LossStagnation => Trigger::LossStagnation,
            _ => Trigger::OtherRule,
        }
    }

    /// The snake-case name used in event data (`"dead_neurons"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::DeadNeurons => "dead_neurons",
            Trigger::GradientSpike => "gradient_spike",
            Trigger::VanishingGradient => "vanishing_gradient",
            Trigger::ExplodingGradient => "exploding_gradient",
            Trigger::LossSpike => "loss_spike",
            Trigger::NanInf => "nan_inf",
            Trigger::WeightStagnation => "weight_stagnation",
            Trigger::ActivationSaturation => "activation_saturation",
            Trigger::LossDivergence => "loss_divergence",
            Trigger::Overfitting => "overfitting",
            Trigger::LossStagnation => "loss_stagnation",
            Trigger::OtherRule => "other_rule",
        }
    }

    /// The severity this trigger is reported at (the reference's table; the added triggers
    /// take their rule's severity).
    pub const fn severity(self) -> Severity {
        match self {
            Trigger::VanishingGradient | Trigger::ExplodingGradient | Trigger::LossDivergence => {
                Severity::Danger
            }
            Trigger::NanInf => Severity::Critical,
            _ => Severity::Warning,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trigger {
    type Err = UnknownTrigger;

    /// Parses the snake-case name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTrigger(s.to_owned()))
    }
}

/// The error returned when a trigger name is not recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTrigger(String);

impl fmt::Display for UnknownTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown anomaly trigger {:?}", self.0)
    }
}

impl std::error::Error for UnknownTrigger {}

/// One finding of the adaptive logger: a health warning of its rule engine, with where the
/// logger saw it and what it did about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Anomaly {
    /// The trigger it is reported under ([`Trigger::from_rule`]).
    pub trigger: Trigger,
    /// The health rule that found it.
    pub rule: Rule,
    /// How serious it is (the rule's severity).
    pub severity: Severity,
    /// The hook that saw it (`layer_forward`, `batch_end`, `epoch_end`, ...).
    pub source: EventType,
    /// The layer, for layer findings.
    pub layer_name: Option<String>,
    /// The layer's index, when the hook was given one.
    pub layer_index: Option<u64>,
    /// `"loss"` for the loss rules.
    pub metric: Option<String>,
    /// The measured value (a percentage, a norm, a ratio...), NaN when the rule has none.
    pub value: f64,
    /// The threshold the value crossed, NaN when the rule has none.
    pub threshold: f64,
    /// The epoch of the run when it was found, if one had started.
    pub epoch: Option<u64>,
    /// The batch within the epoch (`None` for epoch findings).
    pub batch: Option<u64>,
    /// The adaptive logger's batch counter since the run started (never resets per epoch).
    pub step: u64,
    /// Repeats of the same rule and layer suppressed since it was last reported.
    pub repeats: u64,
    /// Always `true`: repeats are counted in [`AnomalySummary::suppressed`], not returned.
    pub emitted: bool,
    /// Whether it escalated the logger: the finding started, moved to another layer or
    /// worsened. A chronic finding re-reported after its de-duplication window does not
    /// escalate; its batch is recorded as one sampled EXPERT batch instead.
    pub escalated: bool,
    /// A one-line human-readable description.
    pub message: String,
    /// The health warning, with its diagnosis, recommendations and the rule's numbers.
    pub warning: HealthWarning,
}

impl Anomaly {
    /// The data of the `health_check` event this anomaly is emitted as: the warning's own
    /// (`rule_name`, `diagnosis`, `recommendations`, the rule's numbers, `repeats`) followed by
    /// `source: "adaptive"`, `trigger`, `hook`, `step` and `escalated`.
    pub fn to_data(&self) -> Data {
        let mut d = self.to_event().data;
        d.insert("source", "adaptive");
        d.insert("trigger", self.trigger.as_str());
        d.insert("hook", self.source.as_str());
        d.insert("step", self.step);
        d.insert("escalated", self.escalated);
        d
    }

    /// The `health_check` event this anomaly is emitted as.
    pub fn to_event(&self) -> Event {
        let mut e = self.warning.to_event();
        e.layer_index = self.layer_index;
        e
    }
}

/// What the adaptive logger found so far (since the run started or [`crate::AdaptiveLogger::reset`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AnomalySummary {
    /// Findings, de-duplicated repeats included.
    pub total: u64,
    /// Findings emitted as `health_check` events.
    pub emitted: u64,
    /// Repeats counted but not emitted because of de-duplication.
    pub suppressed: u64,
    /// Emitted findings per trigger; triggers that never fired are left out.
    pub by_type: Vec<(Trigger, u64)>,
    /// Emitted findings per health rule; rules that never fired are left out.
    pub by_rule: Vec<(Rule, u64)>,
    /// Emitted findings per severity; severities never seen are left out.
    pub by_severity: Vec<(Severity, u64)>,
    /// The most recent anomalies, oldest first (at most [`crate::AnomalyConfig::max_recent`]).
    pub recent: Vec<Anomaly>,
    /// Batches recorded (at least partly) at EXPERT detail, sampled ones included.
    pub escalated_batches: u64,
    /// Of those, batches recorded because a chronic finding was re-reported in them.
    pub sampled_batches: u64,
    /// Findings that escalated the logger (a start, a new layer, a worsening).
    pub escalations: u64,
    /// Batches seen.
    pub batches: u64,
    /// Whether the logger is escalated now.
    pub escalated: bool,
}

impl AnomalySummary {
    /// Emitted findings of one trigger.
    pub fn count(&self, trigger: Trigger) -> u64 {
        self.by_type.iter().find(|(t, _)| *t == trigger).map_or(0, |(_, n)| *n)
    }

    /// Emitted findings of one health rule.
    pub fn count_rule(&self, rule: Rule) -> u64 {
        self.by_rule.iter().find(|(r, _)| *r == rule).map_or(0, |(_, n)| *n)
    }

    /// Anomalies found of one severity.
    pub fn count_severity(&self, severity: Severity) -> u64 {
        self.by_severity.iter().find(|(s, _)| *s == severity).map_or(0, |(_, n)| *n)
    }
}

impl fmt::Display for AnomalySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} anomalies ({} emitted, {} de-duplicated); {} of {} batches at EXPERT ({} sampled)",
            self.total,
            self.emitted,
            self.suppressed,
            self.escalated_batches,
            self.batches,
            self.sampled_batches
        )?;
        for (t, n) in &self.by_type {
            write!(f, "\n  {:<22} {n}", t.as_str())?;
        }
        Ok(())
    }
}
