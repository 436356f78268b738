//! Log levels, severities, event types and storage tiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How much detail a logger records. Ordered: `Silent < Basic < Detailed < Expert < Debug`.
///
/// An event is recorded when its own level is at most the logger's level and the logger is not
/// [`LogLevel::Silent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Nothing is recorded.
    Silent = 0,
    /// Train and epoch boundaries, epoch metrics and health events.
    Basic = 1,
    /// Adds batch boundaries, batch metrics and gradient norms.
    Detailed = 2,
    /// Adds per-layer statistics of activations, gradients and weights.
    Expert = 3,
    /// Everything, including debug-only detail.
    Debug = 4,
}

impl LogLevel {
    /// All levels, from least to most detailed.
    pub const ALL: [LogLevel; 5] =
        [LogLevel::Silent, LogLevel::Basic, LogLevel::Detailed, LogLevel::Expert, LogLevel::Debug];

    /// The name used in NDJSON (`"BASIC"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Silent => "SILENT",
            LogLevel::Basic => "BASIC",
            LogLevel::Detailed => "DETAILED",
            LogLevel::Expert => "EXPERT",
            LogLevel::Debug => "DEBUG",
        }
    }

    pub(crate) const fn from_u8(v: u8) -> LogLevel {
        match v {
            0 => LogLevel::Silent,
            1 => LogLevel::Basic,
            2 => LogLevel::Detailed,
            3 => LogLevel::Expert,
            _ => LogLevel::Debug,
        }
    }
}

/// How serious an event is. Ordered: `Info < Success < Warning < Danger < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine information.
    Info,
    /// Something went well (for example training finished).
    Success,
    /// Worth a look; training may still be fine.
    Warning,
    /// Training is very likely harmed.
    Danger,
    /// Training is broken (NaN/Inf, divergence).
    Critical,
}

impl Severity {
    /// All severities, from least to most serious.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Success,
        Severity::Warning,
        Severity::Danger,
        Severity::Critical,
    ];

    /// The name used in NDJSON (`"info"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Success => "success",
            Severity::Warning => "warning",
            Severity::Danger => "danger",
            Severity::Critical => "critical",
        }
    }

    /// Whether events of this severity are routed to the health tier.
    pub const fn is_alert(self) -> bool {
        matches!(self, Severity::Warning | Severity::Danger | Severity::Critical)
    }
}

/// The kinds of training event: the reference's eleven plus `epoch_summary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Training begins.
    TrainStart,
    /// Training ends.
    TrainEnd,
    /// An epoch begins.
    EpochStart,
    /// An epoch ends; carries the epoch's metrics.
    EpochEnd,
    /// A batch begins.
    BatchStart,
    /// A batch ends; carries the batch's metrics.
    BatchEnd,
    /// Statistics of a layer's output.
    LayerForward,
    /// Statistics of the gradient flowing out of a layer.
    LayerBackward,
    /// A gradient norm for a layer.
    GradientComputed,
    /// Statistics of a layer's weights after an update.
    WeightUpdated,
    /// A health warning or anomaly.
    HealthCheck,
    /// Per-epoch statistics of the batch metrics (mean/std/min/max), from an epoch summarizer.
    EpochSummary,
}

impl EventType {
    /// All event types, in schema order.
    pub const ALL: [EventType; 12] = [
        EventType::TrainStart,
        EventType::TrainEnd,
        EventType::EpochStart,
        EventType::EpochEnd,
        EventType::BatchStart,
        EventType::BatchEnd,
        EventType::LayerForward,
        EventType::LayerBackward,
        EventType::GradientComputed,
        EventType::WeightUpdated,
        EventType::HealthCheck,
        EventType::EpochSummary,
    ];

    /// The name used in NDJSON (`"epoch_end"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::TrainStart => "train_start",
            EventType::TrainEnd => "train_end",
            EventType::EpochStart => "epoch_start",
            EventType::EpochEnd => "epoch_end",
            EventType::BatchStart => "batch_start",
            EventType::BatchEnd => "batch_end",
            EventType::LayerForward => "layer_forward",
            EventType::LayerBackward => "layer_backward",
            EventType::GradientComputed => "gradient_computed",
            EventType::WeightUpdated => "weight_updated",
            EventType::HealthCheck => "health_check",
            EventType::EpochSummary => "epoch_summary",
        }
    }

    /// Position in [`EventType::ALL`]; used for counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The level at which [`crate::TrainingLogger`] records this event type.
    pub const fn default_level(self) -> LogLevel {
        match self {
            EventType::TrainStart
            | EventType::TrainEnd
            | EventType::EpochStart
            | EventType::EpochEnd
            | EventType::EpochSummary
            | EventType::HealthCheck => LogLevel::Basic,
            EventType::BatchStart | EventType::BatchEnd | EventType::GradientComputed => {
                LogLevel::Detailed
            }
            EventType::LayerForward | EventType::LayerBackward | EventType::WeightUpdated => {
                LogLevel::Expert
            }
        }
    }
}

/// Which storage file an event belongs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// `basic.log`: train and epoch boundaries and epoch summaries.
    Basic,
    /// `health.log`: health checks and anything of severity warning or worse.
    Health,
    /// `debug.log`: everything else.
    Debug,
}

impl Tier {
    /// All tiers.
    pub const ALL: [Tier; 3] = [Tier::Basic, Tier::Health, Tier::Debug];

    /// The lower-case name (`"basic"`, `"health"`, `"debug"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Health => "health",
            Tier::Debug => "debug",
        }
    }

    /// Routing as in the reference: health checks and alerts go to health, train/epoch
    /// boundaries to basic, the rest to debug.
    pub const fn route(event_type: EventType, severity: Severity) -> Tier {
        if matches!(event_type, EventType::HealthCheck) || severity.is_alert() {
            return Tier::Health;
        }
        match event_type {
            EventType::TrainStart
            | EventType::TrainEnd
            | EventType::EpochStart
            | EventType::EpochEnd
            | EventType::EpochSummary => Tier::Basic,
            _ => Tier::Debug,
        }
    }
}

/// The error returned when a level, severity, event type or tier name is not recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseNameError {
    kind: &'static str,
    given: String,
}

impl fmt::Display for ParseNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.given)
    }
}

impl std::error::Error for ParseNameError {}

macro_rules! name_impls {
    ($ty:ident, $kind:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseNameError;

            /// Parses the NDJSON name, ignoring ASCII case.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL
                    .into_iter()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| ParseNameError { kind: $kind, given: s.to_owned() })
            }
        }
    };
}

name_impls!(LogLevel, "log level");
name_impls!(Severity, "severity");
name_impls!(EventType, "event type");
name_impls!(Tier, "tier");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_match_the_schema() {
        assert!(LogLevel::Silent < LogLevel::Basic && LogLevel::Expert < LogLevel::Debug);
        assert!(Severity::Info < Severity::Success && Severity::Danger < Severity::Critical);
    }

    #[test]
    fn names_round_trip_and_unknown_names_fail() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
        }
        assert_eq!("expert".parse::<LogLevel>().unwrap(), LogLevel::Expert);
        let err = "loud".parse::<LogLevel>().unwrap_err();
        assert_eq!(err.to_string(), "unknown log level \"loud\"");
    }

    #[test]
    fn routing_follows_the_reference() {
        assert_eq!(Tier::route(EventType::HealthCheck, Severity::Info), Tier::Health);
        assert_eq!(Tier::route(EventType::LayerForward, Severity::Warning), Tier::Health);
        assert_eq!(Tier::route(EventType::EpochEnd, Severity::Info), Tier::Basic);
        assert_eq!(Tier::route(EventType::TrainStart, Severity::Success), Tier::Basic);
        assert_eq!(Tier::route(EventType::BatchEnd, Severity::Info), Tier::Debug);
    }
}
