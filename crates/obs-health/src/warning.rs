//! `HealthWarning`: one finding, with its diagnosis and advice.

use obs_core::{Data, Event, EventType, LogLevel, Severity, Value};
use serde::{Deserialize, Serialize};

use crate::Rule;

/// One health finding, as returned by the checks and sent to an attached logger.
///
/// `data` holds the numbers the rule judged (the value, the threshold, the window...) and
/// `repeats`: how many times the same (rule, layer) was suppressed by de-duplication since it
/// last fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthWarning {
    /// The rule's name (`"dead_relu"`, ...); see [`Rule::as_str`].
    pub rule_name: String,
    /// The rule's severity.
    pub severity: Severity,
    /// A short message naming the layer and the number that tripped the rule.
    pub message: String,
    /// What the finding means.
    pub diagnosis: String,
    /// What to try, most likely fix first.
    pub recommendations: Vec<String>,
    /// The layer concerned, for per-layer rules.
    pub layer_name: Option<String>,
    /// The epoch label of the check that fired.
    pub epoch: Option<u64>,
    /// The batch label of the check that fired (`None` for epoch checks).
    pub batch: Option<u64>,
    /// The rule's numbers.
    #[serde(default)]
    pub data: Data,
}

impl HealthWarning {
    /// A warning of `rule` with the rule's severity, diagnosis and recommendations.
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        HealthWarning {
            rule_name: rule.as_str().to_owned(),
            severity: rule.severity(),
            message: message.into(),
            diagnosis: rule.diagnosis().to_owned(),
            recommendations: rule.recommendations().iter().map(|s| (*s).to_owned()).collect(),
            layer_name: None,
            epoch: None,
            batch: None,
            data: Data::new(),
        }
    }

    /// The rule, if `rule_name` names a known one.
    pub fn rule(&self) -> Option<Rule> {
        self.rule_name.parse().ok()
    }

    /// How many repeats of this (rule, layer) were suppressed before this warning.
    pub fn repeats(&self) -> u64 {
        self.data.get("repeats").and_then(Value::as_u64).unwrap_or(0)
    }

    /// The warning as a `health_check` event (level BASIC, the rule's severity, routed to the
    /// health tier). Its data starts with `rule_name`, `diagnosis` and `recommendations`,
    /// followed by the rule's numbers.
    pub fn to_event(&self) -> Event {
        let mut data = Data::with_capacity(3 + self.data.len());
        data.insert("rule_name", self.rule_name.as_str());
        data.insert("diagnosis", self.diagnosis.as_str());
        data.insert("recommendations", self.recommendations.clone());
        for (k, v) in &self.data {
            data.insert(k.to_owned(), v.clone());
        }
        let mut event = Event::new(EventType::HealthCheck, LogLevel::Basic)
            .severity(self.severity)
            .message(self.message.as_str())
            .at(self.epoch, self.batch)
            .data(data);
        event.layer_name.clone_from(&self.layer_name);
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::{Tier, data};

    #[test]
    fn event_carries_rule_diagnosis_advice_and_numbers() {
        let mut w = HealthWarning::new(Rule::DeadRelu, "Possible dying ReLU in 'dense_0'");
        w.layer_name = Some("dense_0".into());
        w.epoch = Some(5);
        w.batch = Some(10);
        w.data = data! { "dead_units_pct" => 62.0, "threshold" => 50.0, "repeats" => 3u64 };
        let e = w.to_event();
        assert_eq!(e.event_type, EventType::HealthCheck);
        assert_eq!(e.level, LogLevel::Basic);
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.tier(), Tier::Health);
        assert_eq!((e.epoch, e.batch), (Some(5), Some(10)));
        assert_eq!(e.layer_name.as_deref(), Some("dense_0"));
        let keys: Vec<&str> = e.data.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["rule_name", "diagnosis", "recommendations", "dead_units_pct", "threshold", "repeats"]
        );
        assert_eq!(e.data.get("rule_name").and_then(Value::as_str), Some("dead_relu"));
        assert_eq!(e.data.get("recommendations").and_then(Value::as_list).map(<[_]>::len), Some(3));
        assert_eq!(w.repeats(), 3);
        assert_eq!(w.rule(), Some(Rule::DeadRelu));
        // The NDJSON line parses back into the same event.
        assert_eq!(Event::from_ndjson(&e.to_ndjson()).unwrap(), e);
    }

    #[test]
    fn serde_round_trip_keeps_non_finite_numbers() {
        let mut w = HealthWarning::new(Rule::NanInfLoss, "NaN/Inf detected in loss!");
        w.data = data! { "loss" => f64::NAN };
        let json = serde_json::to_string(&w).unwrap();
        assert!(json.contains(r#""loss":"NaN""#), "{json}");
        let back: HealthWarning = serde_json::from_str(&json).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.severity, Severity::Critical);
    }
}
