//! [`ObservatoryLogger`]: burn-train's `MetricLogger`, writing a `Learner`'s metrics through
//! the session's pipeline.

use std::collections::HashMap;
use std::sync::Arc;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use crate::session::{Core, Session, check_name};

/// What the logger remembers between burn's calls.
#[derive(Debug, Default)]
pub(crate) struct LearnerState {
    /// Each metric's burn name and its Observatory name.
    names: HashMap<MetricId, (String, Arc<str>)>,
    /// Every numeric entry, by burn name, split and epoch, for `read_numeric` (burn's
    /// checkpointing and early stopping read them back).
    store: HashMap<(String, String, usize), Vec<NumericEntry>>,
    /// Definitions refused once (their name was unusable), so each is reported once.
    refused: Vec<MetricId>,
}

fn split_key(split: &Split) -> String {
    match split {
        Split::Test(Some(tag)) => format!("test/{tag}"),
        other => other.to_string(),
    }
}

/// The epoch value of a metric from its entries, as burn computes it: the final value when
/// there is one, otherwise the mean weighted by each entry's count.
fn epoch_value(entries: &[NumericEntry]) -> Option<f64> {
    if let Some(NumericEntry::Final(v)) = entries.last() {
        return Some(*v);
    }
    let (mut sum, mut n) = (0.0, 0usize);
    for e in entries {
        match e {
            NumericEntry::Value(v) => {
                sum += v;
                n += 1;
            }
            NumericEntry::Aggregated { aggregated_value, count } => {
                sum += aggregated_value * *count as f64;
                n += count;
            }
            NumericEntry::Final(_) => {}
        }
    }
    (n > 0).then(|| sum / n as f64)
}

/// Whether a train update is a step's: burn also sends one at the end of each epoch, with
/// the epoch's final values (`NumericEntry::Final`) only; an update with no numeric entry
/// carries nothing to record.
fn is_step(update: &MetricsUpdate) -> bool {
    !update.entries_numeric.is_empty()
        && !update.entries_numeric.iter().all(|n| {
            matches!(
                NumericEntry::deserialize(&n.entry.serialized_entry.serialized),
                Ok(NumericEntry::Final(_))
            ) || matches!(n.numeric_entry, Some(NumericEntry::Final(_)))
        })
}

/// Ends the epoch the `Learner` is in, if any: the train loss and the validation metrics
/// are the epoch values burn would compute from the entries it logged.
pub(crate) fn close_open_epoch(core: &mut Core) {
    let Some(epoch) = core.epoch else { return };
    let Ok(burn_epoch) = usize::try_from(epoch) else { return };
    let mut train_loss = None;
    let mut val_loss = None;
    let mut extra = Vec::new();
    let mut names: Vec<&(String, Arc<str>)> = core.learner.names.values().collect();
    names.sort();
    for (burn_name, name) in names {
        let value = |split: &str| {
            core.learner
                .store
                .get(&(burn_name.clone(), split.to_owned(), burn_epoch))
                .and_then(|e| epoch_value(e))
        };
        if &**name == "loss" {
            train_loss = value("train");
            val_loss = value("valid");
        } else if let Some(v) = value("valid") {
            extra.push((Arc::from(format!("val_{name}")), v));
        }
    }
    if let Err(e) = core.epoch_end(epoch, train_loss, val_loss, &extra) {
        core.errors.push(e);
    }
}

/// burn-train's metric-logging extension point, implemented by Observatory: register it with
/// `SupervisedTraining::with_metric_logger(session.metric_logger())` and the `Learner` writes
/// through the session's pipeline.
///
/// - Each **train** update is one step (burn's end-of-epoch update, with final values
///   only, is not; a `Learner` needs at least one numeric train metric, `LossMetric`, for
///   its steps to be seen): the batch values of every numeric metric (burn's
///   `Loss` becomes `loss`, `Learning Rate` becomes `learning_rate`: lower case, `_` for
///   spaces and punctuation) go to the adaptive logger's `batch_end`, the health rules and
///   the epoch summaries, together with what the model's [`crate::Probe`] measured during
///   that step (layer outputs, gradient and update norms).
/// - **Validation** entries are kept; when burn ends the validation epoch, the epoch ends in
///   Observatory with the train loss, `val_loss` and `val_<metric>` for the other metrics, so
///   the epoch rules (overfitting, stagnation) run.
/// - Every numeric entry is kept in memory, by metric, split and epoch, so burn's
///   checkpointing and early-stopping strategies can read them back (`read_numeric`); with
///   this logger registered burn does not add its file logger.
///
/// burn's logger interface cannot return an error: what cannot be recorded (a metric whose
/// name has no letter or digit, say) is kept and returned in [`crate::RunReport::errors`] by
/// [`Session::finish`]. Nothing here panics.
#[derive(Debug)]
pub struct ObservatoryLogger {
    session: Session,
}

impl Session {
    /// The `MetricLogger` to register with burn's `SupervisedTraining::with_metric_logger`.
    pub fn metric_logger(&self) -> ObservatoryLogger {
        ObservatoryLogger { session: self.clone() }
    }
}

impl ObservatoryLogger {
    fn train_step(&self, update: &MetricsUpdate, epoch: usize) {
        let shared = &self.session.shared;
        let mut core = shared.core();
        let epoch = epoch as u64;
        if core.epoch != Some(epoch) {
            close_open_epoch(&mut core);
            core.epoch_start(epoch);
        }
        let mut metrics = Vec::with_capacity(update.entries_numeric.len());
        for numeric in &update.entries_numeric {
            let Some(value) = numeric.numeric_entry.as_ref().map(NumericEntry::current) else {
                continue;
            };
            if let Some((_, name)) = core.learner.names.get(&numeric.entry.metric_id) {
                metrics.push((Arc::clone(name), value));
            }
        }
        let record = shared.probe.pop();
        if let Err(e) = core.step(record, metrics, &shared.probe) {
            core.errors.push(e);
        }
    }
}

impl MetricLogger for ObservatoryLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        {
            let mut core = self.session.shared.core();
            let key = split_key(split);
            for numeric in &update.entries_numeric {
                let entry = &numeric.entry;
                let Some((burn_name, _)) = core.learner.names.get(&entry.metric_id) else {
                    continue;
                };
                let burn_name = burn_name.clone();
                let serialized = &entry.serialized_entry;
                let value = if serialized.is_not_available() {
                    None
                } else {
                    NumericEntry::deserialize(&serialized.serialized)
                        .ok()
                        .or_else(|| numeric.numeric_entry.clone())
                };
                if let Some(value) = value {
                    core.learner
                        .store
                        .entry((burn_name, key.clone(), epoch))
                        .or_default()
                        .push(value);
                }
            }
        }
        if *split == Split::Train && is_step(&update) {
            self.train_step(&update, epoch);
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let core = self.session.shared.core();
        let key = (name.to_owned(), split_key(split), epoch);
        Ok(core.learner.store.get(&key).cloned().unwrap_or_default())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        let mut core = self.session.shared.core();
        match check_name("metric", &definition.name) {
            Ok(name) => {
                core.learner
                    .names
                    .insert(definition.metric_id, (definition.name.to_string(), name));
            }
            Err(e) => {
                if !core.learner.refused.contains(&definition.metric_id) {
                    core.learner.refused.push(definition.metric_id);
                    core.errors.push(e);
                }
            }
        }
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        if summary.split == Split::Valid {
            let mut core = self.session.shared.core();
            if core.epoch == Some(summary.epoch_number as u64) {
                close_open_epoch(&mut core);
            }
        }
    }
}
