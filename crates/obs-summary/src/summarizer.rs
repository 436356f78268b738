//! `EpochSummarizer`: accumulates batch values for the epoch in progress.

use obs_core::stats::Welford;
use obs_core::{Event, EventType, LogLevel, TensorStats, TrainingLogger};

use crate::summary::{EpochSummary, LayerAccumulator, MetricStats};

/// Why the summarizer refused a call. Nothing is recorded or changed when an error is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// The epoch was already finalized; its summary is in
    /// [`EpochSummarizer::get_all_summaries`].
    #[error("epoch {epoch} was already finalized")]
    AlreadyFinalized {
        /// The epoch given.
        epoch: u64,
    },
    /// Nothing was recorded for the epoch, so there is nothing to finalize.
    #[error("no batches were recorded for epoch {epoch}")]
    NoBatches {
        /// The epoch given.
        epoch: u64,
    },
    /// The epoch is earlier than one already recorded: epochs must not go backwards.
    #[error("epoch {epoch} comes after epoch {latest}, which was already recorded")]
    EpochOutOfOrder {
        /// The epoch given.
        epoch: u64,
        /// The latest epoch recorded so far.
        latest: u64,
    },
}

/// Named accumulators, found by `&str` without allocating once a name is known.
///
/// Names usually arrive in the same order every batch, so the `i`-th value of a batch is first
/// compared with the `i`-th slot; otherwise the (short) list is scanned. Name and accumulator
/// sit side by side so a lookup touches one cache line.
#[derive(Clone, Debug, Default)]
struct Slots<A> {
    slots: Vec<(Box<str>, A)>,
}

impl<A: Default> Slots<A> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn get(&mut self, hint: usize, name: &str) -> &mut A {
        let hit = self.slots.get(hint).is_some_and(|(n, _)| same(n.as_bytes(), name.as_bytes()));
        let i = if hit { hint } else { self.find_or_insert(name) };
        &mut self.slots[i].1
    }

    #[cold]
    #[inline(never)]
    fn find_or_insert(&mut self, name: &str) -> usize {
        match self.slots.iter().position(|(n, _)| **n == *name) {
            Some(i) => i,
            None => {
                self.slots.push((name.into(), A::default()));
                self.slots.len() - 1
            }
        }
    }

    /// Keeps the names that were recorded (so the next epoch reuses them without allocating)
    /// and drops the others (so memory stays bounded by the names in use), resetting values.
    fn reset_keeping(&mut self, used: impl Fn(&A) -> bool) {
        self.slots.retain(|(_, v)| used(v));
        self.slots.iter_mut().for_each(|(_, v)| *v = A::default());
    }

    fn clear(&mut self) {
        self.slots.clear();
    }

    fn collect<T>(&self, used: impl Fn(&A) -> bool, f: impl Fn(&A) -> T) -> Vec<(String, T)> {
        self.slots.iter().filter(|(_, v)| used(v)).map(|(n, v)| (n.to_string(), f(v))).collect()
    }
}

/// Byte equality without a `memcmp` call for the short names metrics and layers have: two
/// overlapping word loads cover lengths 4 to 16.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    fn word8(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_ne_bytes)
    }
    fn word4(s: &[u8], at: usize) -> u32 {
        s.get(at..at + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_ne_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        _ => a == b,
    }
}

fn welford_used(w: &Welford) -> bool {
    w.count() + w.non_finite() > 0
}

/// Aggregates batch-level values into per-epoch [`EpochSummary`]s: mean, standard deviation,
/// minimum and maximum of every metric and gradient norm, plus averaged layer statistics.
///
/// Epochs go forwards: record batches of an epoch, then [`EpochSummarizer::finalize_epoch`] it.
/// Recording a later epoch first finalizes the one in progress (its summary is stored and
/// emitted as if finalized explicitly); recording or finalizing an earlier or already
/// finalized epoch is an error and changes nothing. Memory holds one accumulator per name for
/// the epoch in progress, plus the finalized summaries.
///
/// # Examples
/// ```
/// use obs_summary::EpochSummarizer;
///
/// let mut summarizer = EpochSummarizer::new();
/// for batch in 0..4 {
///     let loss = 1.0 / (1.0 + batch as f64);
///     summarizer.record_batch(0, &[("loss", loss)], &[("dense_0", 0.05)])?;
/// }
/// let summary = summarizer.finalize_epoch(0)?;
/// assert_eq!(summary.batches, 4);
/// assert_eq!(summary.metric("loss").map(|s| s.max), Some(1.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct EpochSummarizer {
    epoch: Option<u64>,
    batches: u64,
    metrics: Slots<Welford>,
    gradients: Slots<Welford>,
    activations: Slots<LayerAccumulator>,
    weights: Slots<LayerAccumulator>,
    last_finalized: Option<u64>,
    summaries: Vec<EpochSummary>,
    logger: Option<TrainingLogger>,
}

impl EpochSummarizer {
    /// An empty summarizer.
    pub fn new() -> EpochSummarizer {
        EpochSummarizer::default()
    }

    /// Also emits every finalized summary on `logger`, as an `epoch_end` event (level BASIC,
    /// severity info) whose data is `{"summary": EpochSummary::to_data()}`; see
    /// `docs/summary.md`.
    #[must_use]
    pub fn with_logger(mut self, logger: TrainingLogger) -> EpochSummarizer {
        self.logger = Some(logger);
        self
    }

    /// The epoch in progress (recorded but not finalized), if any.
    pub fn current_epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Prepares recording for `epoch`: finalizes an earlier epoch in progress, refuses epochs
    /// that go backwards.
    fn enter(&mut self, epoch: u64) -> Result<(), SummaryError> {
        match self.epoch {
            Some(current) if current == epoch => return Ok(()),
            Some(current) if epoch < current => {
                return Err(SummaryError::EpochOutOfOrder { epoch, latest: current });
            }
            Some(current) => {
                self.finalize(current);
            }
            None => {}
        }
        if let Some(last) = self.last_finalized
            && epoch <= last
        {
            return Err(self.finalized_error(epoch, last));
        }
        self.epoch = Some(epoch);
        Ok(())
    }

    fn finalized_error(&self, epoch: u64, last: u64) -> SummaryError {
        if self.summary(epoch).is_some() {
            SummaryError::AlreadyFinalized { epoch }
        } else {
            SummaryError::EpochOutOfOrder { epoch, latest: last }
        }
    }

    /// Records one batch of `epoch`: its metrics (`loss`, `accuracy`, ...) and per-layer gradient
    /// norms, as borrowed `(name, value)` slices.
    ///
    /// Does not allocate once every name has been seen (in the previous epoch or earlier in
    /// this one). Non-finite values are counted per name, not mixed into the moments.
    ///
    /// # Errors
    /// [`SummaryError::EpochOutOfOrder`] or [`SummaryError::AlreadyFinalized`] when `epoch` is
    /// earlier than, or equal to, an epoch already finalized or in progress.
    pub fn record_batch(
        &mut self,
        epoch: u64,
        metrics: &[(&str, f64)],
        gradient_norms: &[(&str, f64)],
    ) -> Result<(), SummaryError> {
        self.enter(epoch)?;
        self.batches += 1;
        for (i, &(name, v)) in metrics.iter().enumerate() {
            self.metrics.get(i, name).push(v);
        }
        for (i, &(name, v)) in gradient_norms.iter().enumerate() {
            self.gradients.get(i, name).push(v);
        }
        Ok(())
    }

    /// Records the statistics of one layer's activations (a forward output) in `epoch`; the
    /// summary keeps their per-layer means. Does not count as a batch.
    ///
    /// # Errors
    /// As [`EpochSummarizer::record_batch`].
    pub fn record_activation_stats(
        &mut self,
        epoch: u64,
        layer: &str,
        stats: &TensorStats,
    ) -> Result<(), SummaryError> {
        self.enter(epoch)?;
        self.activations.get(self.activations.len(), layer).push(stats);
        Ok(())
    }

    /// Records the statistics of one layer's weights in `epoch`; the summary keeps their
    /// per-layer means. Does not count as a batch.
    ///
    /// # Errors
    /// As [`EpochSummarizer::record_batch`].
    pub fn record_weight_stats(
        &mut self,
        epoch: u64,
        layer: &str,
        stats: &TensorStats,
    ) -> Result<(), SummaryError> {
        self.enter(epoch)?;
        self.weights.get(self.weights.len(), layer).push(stats);
        Ok(())
    }

    /// Builds, stores and emits the summary of the epoch in progress and resets the
    /// accumulators for the next one.
    fn finalize(&mut self, epoch: u64) -> EpochSummary {
        let layer_used = |a: &LayerAccumulator| !a.is_empty();
        let summary = EpochSummary {
            epoch,
            batches: self.batches,
            metrics: self.metrics.collect(welford_used, MetricStats::from_welford),
            gradient_norms: self.gradients.collect(welford_used, MetricStats::from_welford),
            activations: self.activations.collect(layer_used, LayerAccumulator::summary),
            weights: self.weights.collect(layer_used, LayerAccumulator::summary),
        };
        self.metrics.reset_keeping(welford_used);
        self.gradients.reset_keeping(welford_used);
        self.activations.reset_keeping(layer_used);
        self.weights.reset_keeping(layer_used);
        self.batches = 0;
        self.epoch = None;
        self.last_finalized = Some(epoch);
        if let Some(logger) = &self.logger {
            logger.emit(summary_event(&summary));
        }
        self.summaries.push(summary.clone());
        summary
    }

    /// Finishes `epoch`: returns its summary and keeps a copy for
    /// [`EpochSummarizer::get_all_summaries`] (and emits it when a logger is attached).
    ///
    /// # Errors
    /// [`SummaryError::AlreadyFinalized`] for an epoch finalized before (explicitly or by
    /// recording a later epoch); [`SummaryError::NoBatches`] when nothing was recorded for it.
    /// Neither changes any state.
    pub fn finalize_epoch(&mut self, epoch: u64) -> Result<EpochSummary, SummaryError> {
        if self.epoch == Some(epoch) {
            return Ok(self.finalize(epoch));
        }
        if self.summary(epoch).is_some() {
            return Err(SummaryError::AlreadyFinalized { epoch });
        }
        Err(SummaryError::NoBatches { epoch })
    }

    /// Every finalized summary, in epoch order.
    pub fn get_all_summaries(&self) -> &[EpochSummary] {
        &self.summaries
    }

    /// The finalized summary of `epoch`.
    pub fn summary(&self, epoch: u64) -> Option<&EpochSummary> {
        // Epochs are finalized in increasing order, so the list is sorted.
        self.summaries.binary_search_by_key(&epoch, |s| s.epoch).ok().map(|i| &self.summaries[i])
    }

    /// Forgets everything (the epoch in progress and every summary), keeping the logger.
    pub fn reset(&mut self) {
        self.epoch = None;
        self.batches = 0;
        self.metrics.clear();
        self.gradients.clear();
        self.activations.clear();
        self.weights.clear();
        self.last_finalized = None;
        self.summaries.clear();
    }
}

/// The event a finalized summary becomes on a logger.
pub fn summary_event(summary: &EpochSummary) -> Event {
    let mut data = obs_core::Data::with_capacity(1);
    data.insert("summary", summary.to_data());
    let severity = if summary.non_finite() > 0 {
        obs_core::Severity::Warning
    } else {
        obs_core::Severity::Info
    };
    Event::new(EventType::EpochSummary, LogLevel::Basic)
        .at(Some(summary.epoch), None)
        .severity(severity)
        .message(format!("Epoch {} summary ({} batches)", summary.epoch, summary.batches))
        .data(data)
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn same_agrees_with_slice_equality() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "loss",
            "lossy",
            "dense_0",
            "dense_1",
            "accuracy",
            "accuracx",
            "val_accuracy",
            "encoder.layer_1",
            "encoder.layer_10",
            "encoder.layer_100",
            "λ",
        ];
        for a in names {
            for b in names {
                assert_eq!(same(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
            }
        }
        // Differences in the middle of a 16-byte name are caught by the overlapping words.
        assert!(!same(b"abcdefghXjklmnop", b"abcdefghijklmnop"));
        assert!(!same(b"abcXefg", b"abcdefg"));
    }
}
