//! The x-axis both bridges share: epoch steps and global batch steps, derived from the events.
//!
//! * The **global batch step** of a `batch_end` event is the number of `batch_end` events seen
//!   before it (0, 1, 2, ... across epochs). Counting, rather than
//!   `epoch * batches_per_epoch + batch`, needs no knowledge of the epoch length and stays
//!   increasing when epochs have different lengths.
//! * Any other event stamped with the same epoch and batch as the last `batch_end` belongs to
//!   that batch (a health check run after the batch ended); an event stamped with another batch
//!   belongs to the batch in progress, whose step is the count so far; an event with no batch
//!   stamp belongs to the last batch that ended.
//! * Before any `batch_end` has been seen (a run logged at BASIC level), the step is the event's
//!   epoch (or the last epoch that ended, or 0).
//! * The **epoch step** of an `epoch_end` event is its epoch, or the number of `epoch_end`
//!   events before it when the event carries none.

use std::collections::BTreeMap;

use obs_core::{Data, Event, Value};

use crate::histogram::Accumulator;

/// The layer statistics the bridges write, in this order, when a layer event carries them
/// (`layer_forward`, `layer_backward`, `weight_updated`; the latter also `update_norm`).
pub const LAYER_STATS: [&str; 10] = [
    "mean",
    "std",
    "min",
    "max",
    "l2_norm",
    "zeros_pct",
    "saturation_pct",
    "dead_units_pct",
    "nan_count",
    "inf_count",
];

/// The name a layer event is filed under: its layer name, else `layer_<index>`, else
/// `unnamed`.
pub(crate) fn layer_name(e: &Event) -> String {
    match (&e.layer_name, e.layer_index) {
        (Some(n), _) if !n.is_empty() => n.clone(),
        (_, Some(i)) => format!("layer_{i}"),
        _ => "unnamed".to_owned(),
    }
}

/// Adds `x` to the distribution `prefix + name`, building the key in a reused buffer so a
/// series allocates its key only once.
pub(crate) fn accumulate(
    dists: &mut BTreeMap<String, Accumulator>,
    key: &mut String,
    prefix: &str,
    name: &str,
    x: f64,
) {
    key.clear();
    key.push_str(prefix);
    key.push_str(name);
    match dists.get_mut(key.as_str()) {
        Some(acc) => acc.add(x),
        None => dists.entry(key.clone()).or_default().add(x),
    }
}

/// Tracks the run position as events go by.
#[derive(Clone, Debug, Default)]
pub(crate) struct Steps {
    batches: u64,
    last_batch: Option<(Option<u64>, Option<u64>)>,
    epochs_ended: u64,
    last_epoch: Option<u64>,
}

impl Steps {
    /// The global step of a `batch_end` event; counts it.
    pub(crate) fn batch_end(&mut self, e: &Event) -> u64 {
        let step = self.batches;
        self.batches += 1;
        self.last_batch = Some((e.epoch, e.batch));
        step
    }

    /// The epoch step of an `epoch_end` event; counts it.
    pub(crate) fn epoch_end(&mut self, e: &Event) -> u64 {
        let step = e.epoch.unwrap_or(self.epochs_ended);
        self.epochs_ended += 1;
        self.last_epoch = Some(step);
        step
    }

    /// The epoch step of the last `epoch_end`, or of the epoch an event is stamped with.
    pub(crate) fn epoch_of(&self, e: &Event) -> u64 {
        e.epoch.or(self.last_epoch).unwrap_or(0)
    }

    /// The global step of any event other than `batch_end`/`epoch_end` (see the module docs).
    pub(crate) fn global(&self, e: &Event) -> u64 {
        if self.batches == 0 {
            return self.epoch_of(e);
        }
        match e.batch {
            Some(_) if self.last_batch == Some((e.epoch, e.batch)) => self.batches - 1,
            Some(_) => self.batches,
            None => self.batches - 1,
        }
    }

    /// The epoch after the last `epoch_end` (0 before any): where values of an unfinished
    /// epoch belong.
    pub(crate) fn next_epoch(&self) -> u64 {
        self.last_epoch.map_or(0, |e| e.saturating_add(1))
    }
}

/// Calls `f(name, value)` for every leaf of a metrics map, nested maps joined with `/`
/// (`{"val": {"loss": 1}}` gives `val/loss`).
pub(crate) fn for_each_leaf(data: &Data, f: &mut impl FnMut(&str, &Value)) {
    fn walk(prefix: &mut String, data: &Data, f: &mut impl FnMut(&str, &Value)) {
        for (k, v) in data {
            match v {
                Value::Map(inner) => {
                    let len = prefix.len();
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(k);
                    walk(prefix, inner, f);
                    prefix.truncate(len);
                }
                leaf if prefix.is_empty() => f(k, leaf),
                leaf => {
                    let len = prefix.len();
                    prefix.push('/');
                    prefix.push_str(k);
                    f(prefix, leaf);
                    prefix.truncate(len);
                }
            }
        }
    }
    walk(&mut String::new(), data, f);
}

/// The rule that produced a health event: `data.rule_name`, else `data.trigger`, else
/// `"general"`.
pub(crate) fn health_rule(e: &Event) -> &str {
    e.data
        .get("rule_name")
        .and_then(Value::as_str)
        .or_else(|| e.data.get("trigger").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("general")
}

/// `data.recommendations` as strings (a list of strings, or one string).
pub(crate) fn recommendations(e: &Event) -> Vec<String> {
    match e.data.get("recommendations") {
        Some(Value::List(l)) => l
            .iter()
            .map(|v| match v {
                Value::Str(s) => s.clone(),
                other => {
                    let mut s = String::new();
                    crate::json::value(&mut s, other);
                    s
                }
            })
            .collect(),
        Some(Value::Str(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::{EventType, LogLevel, data};

    fn ev(t: EventType, epoch: Option<u64>, batch: Option<u64>) -> Event {
        Event::new(t, LogLevel::Expert).at(epoch, batch)
    }

    #[test]
    fn global_steps_follow_the_documented_rules() {
        let mut s = Steps::default();
        // BASIC-only: epoch steps.
        assert_eq!(s.global(&ev(EventType::HealthCheck, Some(3), None)), 3);
        assert_eq!(s.global(&ev(EventType::HealthCheck, None, None)), 0);
        // Two epochs of three batches.
        let mut steps = Vec::new();
        for epoch in 0..2 {
            for batch in 0..3 {
                let layer = ev(EventType::LayerForward, Some(epoch), Some(batch));
                let in_progress = s.global(&layer);
                let end = s.batch_end(&ev(EventType::BatchEnd, Some(epoch), Some(batch)));
                assert_eq!(in_progress, end);
                let after = s.global(&ev(EventType::HealthCheck, Some(epoch), Some(batch)));
                assert_eq!(after, end, "a check after the batch belongs to it");
                steps.push(end);
            }
            let epoch_end = ev(EventType::EpochEnd, Some(epoch), None);
            assert_eq!(s.global(&epoch_end), steps[steps.len() - 1]);
            assert_eq!(s.epoch_end(&epoch_end), epoch);
        }
        assert_eq!(steps, [0, 1, 2, 3, 4, 5]);
        assert_eq!(s.epoch_of(&ev(EventType::TrainEnd, None, None)), 1);
    }

    #[test]
    fn epoch_steps_count_when_events_carry_no_epoch() {
        let mut s = Steps::default();
        assert_eq!(s.epoch_end(&ev(EventType::EpochEnd, None, None)), 0);
        assert_eq!(s.epoch_end(&ev(EventType::EpochEnd, None, None)), 1);
        assert_eq!(s.epoch_end(&ev(EventType::EpochEnd, Some(7), None)), 7);
    }

    #[test]
    fn leaves_are_flattened_with_slashes() {
        let d = data! { "loss" => 0.5, "val" => data! { "loss" => 0.7, "deep" => data! { "x" => 1 } }, "acc" => 0.9 };
        let mut got = Vec::new();
        for_each_leaf(&d, &mut |k, v| got.push((k.to_owned(), v.as_f64())));
        assert_eq!(
            got,
            [
                ("loss".to_owned(), Some(0.5)),
                ("val/loss".to_owned(), Some(0.7)),
                ("val/deep/x".to_owned(), Some(1.0)),
                ("acc".to_owned(), Some(0.9))
            ]
        );
    }

    #[test]
    fn health_fields_have_fallbacks() {
        let e = ev(EventType::HealthCheck, None, None);
        assert_eq!(health_rule(&e), "general");
        let e = e.data(data! { "trigger" => "nan_loss", "recommendations" => "lower lr" });
        assert_eq!(health_rule(&e), "nan_loss");
        assert_eq!(recommendations(&e), ["lower lr"]);
        let e = e.data(
            data! { "rule_name" => "dead", "trigger" => "x", "recommendations" => vec!["a", "b"] },
        );
        assert_eq!(health_rule(&e), "dead");
        assert_eq!(recommendations(&e), ["a", "b"]);
    }
}
