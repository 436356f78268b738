//! Per-rank digest of a multi-process run: loss, epoch time and findings of every rank, and
//! the straggler (the rank whose epochs take longest) with its lag behind the median.

use std::collections::BTreeMap;

use obs_core::{Event, EventType, Tier, Value};
use serde::Serialize;

/// What one rank of a run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RankStats {
    /// The rank.
    pub rank: u32,
    /// `(epoch, batch, loss)` of every `batch_end` event with a numeric `metrics.loss`, in
    /// reading order.
    pub batch_loss: Vec<(u64, u64, f64)>,
    /// `metrics.loss` of every `epoch_end`, by epoch.
    pub epoch_loss: BTreeMap<u64, f64>,
    /// `duration_s` of every `epoch_end`, by epoch.
    pub epoch_seconds: BTreeMap<u64, f64>,
    /// Health-tier events (findings and alerts) of this rank.
    pub findings: u64,
    /// Findings by rule (`rule_name`, or the event type for alerts without one).
    pub findings_by_rule: BTreeMap<String, u64>,
}

impl RankStats {
    /// The mean epoch duration in seconds, if any epoch ended with one.
    pub fn mean_epoch_seconds(&self) -> Option<f64> {
        let n = self.epoch_seconds.len();
        (n > 0).then(|| self.epoch_seconds.values().sum::<f64>() / n as f64)
    }

    /// The last epoch's loss, else the last batch's.
    pub fn final_loss(&self) -> Option<f64> {
        self.epoch_loss.values().next_back().copied().or(self.batch_loss.last().map(|b| b.2))
    }
}

/// The slowest rank of a run and how far it lags.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Straggler {
    /// The rank with the largest mean epoch time.
    pub rank: u32,
    /// Its mean epoch time in seconds.
    pub mean_epoch_seconds: f64,
    /// The median over the ranks of their mean epoch times.
    pub median_epoch_seconds: f64,
    /// How much longer its epochs take than the median, in seconds.
    pub lag_seconds: f64,
    /// The lag as a fraction of the median (0.5 = 50 % slower).
    pub lag_ratio: f64,
}

/// The per-rank digest of a run; empty when no event carries a rank.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RankDigest {
    /// One entry per rank seen, by rank.
    pub ranks: Vec<RankStats>,
    /// The largest `world_size` an event declared.
    pub world_size: Option<u32>,
}

impl RankDigest {
    /// An empty digest.
    pub fn new() -> Self {
        RankDigest::default()
    }

    /// Digests every event of `events`.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut d = RankDigest::new();
        for e in events {
            d.add(e);
        }
        d
    }

    /// Adds one event; events without a rank are ignored.
    pub fn add(&mut self, e: &Event) {
        let Some(rank) = e.rank else { return };
        if let Some(w) = e.world_size {
            self.world_size = Some(self.world_size.map_or(w, |c| c.max(w)));
        }
        let i = match self.ranks.binary_search_by_key(&rank, |r| r.rank) {
            Ok(i) => i,
            Err(i) => {
                self.ranks.insert(i, RankStats { rank, ..RankStats::default() });
                i
            }
        };
        let r = &mut self.ranks[i];
        let loss = e.data.get("metrics").and_then(Value::as_map).and_then(|m| m.get_f64("loss"));
        match e.event_type {
            EventType::BatchEnd => {
                if let (Some(epoch), Some(batch), Some(loss)) = (e.epoch, e.batch, loss) {
                    r.batch_loss.push((epoch, batch, loss));
                }
            }
            EventType::EpochEnd => {
                if let Some(epoch) = e.epoch {
                    if let Some(loss) = loss {
                        r.epoch_loss.insert(epoch, loss);
                    }
                    if let Some(s) = e.data.get_f64("duration_s").filter(|s| s.is_finite()) {
                        r.epoch_seconds.insert(epoch, s);
                    }
                }
            }
            _ => {}
        }
        if e.tier() == Tier::Health {
            r.findings += 1;
            let rule = e
                .data
                .get("rule_name")
                .and_then(Value::as_str)
                .map_or_else(|| e.event_type.as_str().to_owned(), str::to_owned);
            *r.findings_by_rule.entry(rule).or_default() += 1;
        }
    }

    /// Whether the run has ranks at all.
    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// The rank whose mean epoch time is largest, with its lag behind the median of the ranks'
    /// means; `None` with fewer than two timed ranks.
    pub fn straggler(&self) -> Option<Straggler> {
        let mut timed: Vec<(u32, f64)> =
            self.ranks.iter().filter_map(|r| Some((r.rank, r.mean_epoch_seconds()?))).collect();
        if timed.len() < 2 {
            return None;
        }
        let (rank, slowest) =
            timed.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
        timed.sort_by(|a, b| a.1.total_cmp(&b.1));
        let n = timed.len();
        let median =
            if n % 2 == 1 { timed[n / 2].1 } else { (timed[n / 2 - 1].1 + timed[n / 2].1) / 2.0 };
        let lag = slowest - median;
        Some(Straggler {
            rank,
            mean_epoch_seconds: slowest,
            median_epoch_seconds: median,
            lag_seconds: lag,
            lag_ratio: if median > 0.0 { lag / median } else { 0.0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use obs_core::{LogLevel, Severity, data};

    use super::*;

    fn epoch_end(rank: u32, epoch: u64, loss: f64, secs: f64) -> Event {
        Event::new(EventType::EpochEnd, LogLevel::Basic)
            .at(Some(epoch), None)
            .data(data! { "metrics" => data! { "loss" => loss }, "duration_s" => secs })
            .ranked(Some(rank), Some(4))
    }

    #[test]
    fn the_slowest_rank_is_the_straggler_with_its_lag() {
        let mut events = Vec::new();
        for rank in 0..4 {
            let secs = if rank == 2 { 3.0 } else { 1.0 + f64::from(rank) * 0.1 };
            for epoch in 0..2 {
                events.push(epoch_end(rank, epoch, 1.0 / f64::from(rank + 1), secs));
            }
        }
        events.push(
            Event::new(EventType::HealthCheck, LogLevel::Basic)
                .severity(Severity::Warning)
                .field("rule_name", "loss_plateau")
                .ranked(Some(3), Some(4)),
        );
        events.push(Event::new(EventType::EpochEnd, LogLevel::Basic).at(Some(0), None));
        let d = RankDigest::from_events(&events);
        assert_eq!(d.ranks.iter().map(|r| r.rank).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(d.world_size, Some(4));
        assert_eq!(d.ranks[1].final_loss(), Some(0.5));
        assert_eq!(d.ranks[3].findings_by_rule.get("loss_plateau"), Some(&1));
        assert_eq!(d.ranks[0].findings, 0);
        let s = d.straggler().unwrap();
        assert_eq!(s.rank, 2);
        // Means 1.0, 1.1, 3.0, 1.3: median (1.1 + 1.3) / 2.
        assert!((s.median_epoch_seconds - 1.2).abs() < 1e-12);
        assert!((s.lag_seconds - 1.8).abs() < 1e-12);
        assert!((s.lag_ratio - 1.5).abs() < 1e-12);
    }

    #[test]
    fn unranked_events_give_an_empty_digest() {
        let d = RankDigest::from_events(&[epoch_end(0, 0, 1.0, 1.0).ranked(None, None)]);
        assert!(d.is_empty());
        assert_eq!(d.straggler(), None);
    }
}
