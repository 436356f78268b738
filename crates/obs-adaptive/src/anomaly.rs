//! What the adaptive logger finds: [`Trigger`], [`Anomaly`] and [`AnomalySummary`].

use std::fmt;
use std::str::FromStr;

use obs_core::{Data, EventType, Severity};
use serde::Serialize;

/// The anomaly triggers, with the severity each one is reported at.
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
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 8] = [
        Trigger::DeadNeurons,
        Trigger::GradientSpike,
        Trigger::VanishingGradient,
        Trigger::ExplodingGradient,
        Trigger::LossSpike,
        Trigger::NanInf,
        Trigger::WeightStagnation,
        Trigger::ActivationSaturation,
    ];

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
        }
    }

    /// The severity this trigger is reported at (the reference's table).
    pub const fn severity(self) -> Severity {
        match self {
            Trigger::VanishingGradient | Trigger::ExplodingGradient => Severity::Danger,
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

/// One anomaly the adaptive logger found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Anomaly {
    /// What fired.
    pub trigger: Trigger,
    /// How serious it is ([`Trigger::severity`]).
    pub severity: Severity,
    /// The hook that saw it (`layer_forward`, `batch_end`, ...).
    pub source: EventType,
    /// The layer, for layer anomalies.
    pub layer_name: Option<String>,
    /// The layer's index, when the hook was given one.
    pub layer_index: Option<u64>,
    /// The batch metric, for loss and metric anomalies (`"loss"`, ...).
    pub metric: Option<String>,
    /// The measured value (a percentage, a norm, a loss...).
    pub value: f64,
    /// The threshold the value crossed.
    pub threshold: f64,
    /// The epoch of the run when it was found, if one had started.
    pub epoch: Option<u64>,
    /// The batch within the epoch, if one had started.
    pub batch: Option<u64>,
    /// The adaptive logger's batch counter since the run started (never resets per epoch).
    pub step: u64,
    /// Earlier occurrences of the same trigger and layer (or metric) that were de-duplicated
    /// since the last one emitted.
    pub repeats: u64,
    /// Whether it was emitted as a `health_check` event (false when de-duplicated).
    pub emitted: bool,
    /// A one-line human-readable description.
    pub message: String,
    /// Extra numbers for the event data (`baseline`, `consecutive`, `nan_count`, ...); read
    /// them through [`Anomaly::to_data`].
    pub(crate) extra: Data,
}

impl Anomaly {
    /// The data of the `health_check` event this anomaly is emitted as.
    pub fn to_data(&self) -> Data {
        let mut d = Data::with_capacity(10 + self.extra.len());
        d.insert("source", "adaptive");
        d.insert("trigger", self.trigger.as_str());
        d.insert("rule_name", self.trigger.as_str());
        d.insert("hook", self.source.as_str());
        d.insert("layer", self.layer_name.as_deref());
        if let Some(m) = &self.metric {
            d.insert("metric", m.as_str());
        }
        d.insert("value", self.value);
        d.insert("threshold", self.threshold);
        d.insert("repeats", self.repeats);
        d.insert("step", self.step);
        for (k, v) in &self.extra {
            d.insert(k.to_owned(), v.clone());
        }
        d
    }
}

/// What the adaptive logger found so far (since the run started or [`crate::AdaptiveLogger::reset`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AnomalySummary {
    /// Anomalies found, de-duplicated ones included.
    pub total: u64,
    /// Anomalies emitted as `health_check` events.
    pub emitted: u64,
    /// Anomalies counted but not emitted because of de-duplication.
    pub suppressed: u64,
    /// Anomalies found per trigger; triggers that never fired are left out.
    pub by_type: Vec<(Trigger, u64)>,
    /// Anomalies found per severity; severities never seen are left out.
    pub by_severity: Vec<(Severity, u64)>,
    /// The most recent anomalies, oldest first (at most [`crate::AnomalyConfig::max_recent`]).
    pub recent: Vec<Anomaly>,
    /// Batches recorded (at least partly) at escalated detail.
    pub escalated_batches: u64,
    /// Times the logger went from calm to escalated.
    pub escalations: u64,
    /// Batches seen.
    pub batches: u64,
    /// Whether the logger is escalated now.
    pub escalated: bool,
}

impl AnomalySummary {
    /// Anomalies found of one trigger.
    pub fn count(&self, trigger: Trigger) -> u64 {
        self.by_type.iter().find(|(t, _)| *t == trigger).map_or(0, |(_, n)| *n)
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
            "{} anomalies ({} emitted, {} de-duplicated); {} of {} batches escalated",
            self.total, self.emitted, self.suppressed, self.escalated_batches, self.batches
        )?;
        for (t, n) in &self.by_type {
            write!(f, "\n  {:<22} {n}", t.as_str())?;
        }
        Ok(())
    }
}
