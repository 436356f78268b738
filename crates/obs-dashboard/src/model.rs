//! The dashboard's bounded state: what it keeps of a stream of events.

use std::collections::VecDeque;

use obs_core::{Data, Event, EventType, Severity, Value};

use crate::DashboardConfig;
use crate::bucket::{Axis, Series};

/// Longest user string kept (message, diagnosis, recommendation), in characters.
pub(crate) const MAX_TEXT: usize = 2000;
/// Longest name kept (metric, layer, rule), in characters.
pub(crate) const MAX_NAME: usize = 200;
const MAX_RECOMMENDATIONS: usize = 12;
const RECENT_MESSAGES: usize = 5;
const MAX_RULE_LAYERS: usize = 12;
/// Name of the group that collects rules past [`DashboardConfig::max_rules`].
pub(crate) const OTHER_RULES: &str = "other";
/// Group of `health_check` events that name no rule.
pub(crate) const UNNAMED_RULE: &str = "health_check";

/// Cuts `s` to at most `max` characters (on a character boundary), marking the cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => {
            let mut out = s[..cut].to_owned();
            out.push('…');
            out
        }
    }
}

/// The name a series is stored under: `name` itself, or its clipped form when very long (so
/// that later values of the same long name find the same series).
fn key(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= MAX_NAME { name.into() } else { clip(name, MAX_NAME).into() }
}

/// Assigns every event a global step: `batch` plus the batches of the earlier epochs.
///
/// The number of batches of an epoch is the largest batch index seen in it, plus one, so the
/// step axis is exact whenever each epoch's last batch is recorded and events sharing an
/// (epoch, batch) position, from several workers say, share a step. Events without a batch
/// (epoch ends, epoch-level health checks) sit at the latest step seen.
#[derive(Clone, Debug, Default)]
struct StepClock {
    epoch: Option<u64>,
    offset: u64,
    max_batch: Option<u64>,
    last_step: Option<u64>,
    /// Offsets of a few recent epochs, for late events of an earlier epoch.
    history: VecDeque<(u64, u64)>,
}

impl StepClock {
    #[inline]
    fn step(&mut self, epoch: Option<u64>, batch: Option<u64>) -> u64 {
        let mut offset = self.offset;
        if let Some(e) = epoch {
            match self.epoch {
                Some(cur) if cur == e => {}
                Some(cur) if e < cur => {
                    // A late event from an earlier epoch: use that epoch's offset if we still
                    // know it, and never move the clock backwards.
                    offset = self.history.iter().find(|(he, _)| *he == e).map_or(0, |(_, o)| *o);
                    return match batch {
                        Some(b) => offset.saturating_add(b),
                        None => self.last_step.unwrap_or(0),
                    };
                }
                _ => {
                    if let Some(cur) = self.epoch {
                        if self.history.len() == 8 {
                            self.history.pop_front();
                        }
                        self.history.push_back((cur, self.offset));
                    }
                    if let Some(mb) = self.max_batch {
                        self.offset = self.offset.saturating_add(mb).saturating_add(1);
                    }
                    offset = self.offset;
                    self.epoch = Some(e);
                    self.max_batch = None;
                }
            }
        }
        match batch {
            Some(b) => {
                self.max_batch = Some(self.max_batch.map_or(b, |m| m.max(b)));
                let s = offset.saturating_add(b);
                self.last_step = Some(self.last_step.map_or(s, |l| l.max(s)));
                s
            }
            None => self.last_step.unwrap_or(offset),
        }
    }
}

/// A named series on one axis.
#[derive(Clone, Debug)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) series: Series,
}

/// Where a layer's gradient norm came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GradSource {
    /// `gradient_computed` events, `data.grad_norm`.
    Norm,
    /// `layer_backward` events, `data.l2_norm`.
    Backward,
}

/// One layer's gradient norms.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) name: String,
    pub(crate) source: GradSource,
    pub(crate) series: Series,
}

/// Where in the run something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) step: u64,
    pub(crate) epoch: Option<u64>,
    pub(crate) batch: Option<u64>,
}

/// One recent message of a health group.
#[derive(Clone, Debug)]
pub(crate) struct Recent {
    pub(crate) pos: Pos,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) layer: Option<String>,
}

/// All `health_check` events of one rule.
#[derive(Clone, Debug)]
pub(crate) struct RuleGroup {
    pub(crate) name: String,
    pub(crate) count: u64,
    pub(crate) by_severity: [u64; 5],
    pub(crate) first: Pos,
    pub(crate) last: Pos,
    pub(crate) diagnosis: Option<String>,
    pub(crate) recommendations: Vec<String>,
    pub(crate) recent: VecDeque<Recent>,
    pub(crate) layers: Vec<String>,
    pub(crate) more_layers: bool,
    /// Events per step bucket; the bucket's `max` is the highest severity rank.
    pub(crate) timeline: Series,
}

impl RuleGroup {
    pub(crate) fn max_severity(&self) -> Severity {
        Severity::ALL
            .into_iter()
            .rev()
            .find(|s| self.by_severity[*s as usize] > 0)
            .unwrap_or(Severity::Info)
    }
}

/// What the run said about itself at start and end.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunInfo {
    pub(crate) started: bool,
    pub(crate) ended: bool,
    pub(crate) total_epochs: Option<u64>,
    pub(crate) model_info: Option<Value>,
    pub(crate) fingerprint: Option<Value>,
    /// Other `train_start` data entries (hyperparameters, ...).
    pub(crate) extra: Vec<(String, Value)>,
    pub(crate) final_metrics: Option<Data>,
    pub(crate) duration_s: Option<f64>,
}

/// The state a dashboard is rendered from: bounded whatever the length of the run.
///
/// Feed it events with [`Dashboard::ingest`] (in the order they were logged), then render it
/// with [`Dashboard::render`] or [`Dashboard::write`]. Series are kept as min/max/mean buckets
/// (see [`DashboardConfig::step_buckets`]), never as raw events, so memory does not grow with
/// the number of batches.
///
/// # Examples
/// ```
/// use obs_core::{Event, EventType, LogLevel, data};
/// use obs_dashboard::Dashboard;
///
/// let mut dash = Dashboard::default();
/// for b in 0..1000u64 {
///     let loss = 1.0 / (1.0 + b as f64);
///     dash.ingest(&Event::new(EventType::BatchEnd, LogLevel::Detailed)
///         .at(Some(0), Some(b))
///         .field("metrics", data! { "loss" => loss }));
/// }
/// let html = dash.render()?;
/// assert!(html.starts_with("<!DOCTYPE html>"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dashboard {
    pub(crate) config: DashboardConfig,
    clock: StepClock,
    pub(crate) step_axis: Axis,
    pub(crate) epoch_axis: Axis,
    pub(crate) epoch_metrics: Vec<Named>,
    pub(crate) epoch_time: Series,
    pub(crate) batch_metrics: Vec<Named>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) health: Vec<RuleGroup>,
    pub(crate) health_total: u64,
    pub(crate) run: RunInfo,
    pub(crate) counts: [u64; EventType::ALL.len()],
    pub(crate) first_timestamp: Option<f64>,
    pub(crate) last_timestamp: Option<f64>,
    pub(crate) last_epoch: Option<u64>,
    /// Values of metric names past `max_metrics`, skipped.
    pub(crate) omitted_metric_values: u64,
    /// Values of layers past `max_layers`, skipped.
    pub(crate) omitted_layer_values: u64,
    /// Extra facts shown with the run information (the log directory, the reader's counts).
    pub(crate) notes: Vec<(String, String)>,
    /// No more events will come (the exporter closed, or the logs were read to the end).
    pub(crate) closed: bool,
    /// Built from stored logs rather than live events.
    pub(crate) from_logs: bool,
    /// Per-rank loss, epoch time and findings (empty for a single-process run).
    pub(crate) ranks: obs_summary::RankDigest,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard::new(DashboardConfig::default())
    }
}

impl Dashboard {
    /// An empty dashboard.
    pub fn new(config: DashboardConfig) -> Self {
        Dashboard {
            step_axis: Axis::new(config.step_capacity()),
            epoch_axis: Axis::new(config.epoch_capacity()),
            config,
            clock: StepClock::default(),
            epoch_metrics: Vec::new(),
            epoch_time: Series::new(),
            batch_metrics: Vec::new(),
            layers: Vec::new(),
            health: Vec::new(),
            health_total: 0,
            run: RunInfo::default(),
            counts: [0; EventType::ALL.len()],
            first_timestamp: None,
            last_timestamp: None,
            last_epoch: None,
            omitted_metric_values: 0,
            omitted_layer_values: 0,
            ranks: obs_summary::RankDigest::new(),
            notes: Vec::new(),
            closed: false,
            from_logs: false,
        }
    }

    /// A dashboard of every event in `events`.
    pub fn from_events<I>(config: DashboardConfig, events: I) -> Self
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<Event>,
    {
        let mut dash = Dashboard::new(config);
        for e in events {
            dash.ingest(std::borrow::Borrow::borrow(&e));
        }
        dash
    }

    /// The options this dashboard was made with.
    pub fn config(&self) -> &DashboardConfig {
        &self.config
    }

    /// Events ingested so far.
    pub fn events(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds a fact shown in the run-information table (for example where the logs came from).
    pub fn add_note(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.notes.push((clip(&key.into(), MAX_NAME), clip(&value.into(), MAX_TEXT)));
    }

    /// Takes one event into account.
    pub fn ingest(&mut self, e: &Event) {
        self.counts[e.event_type.index()] += 1;
        self.ranks.add(e);
        if e.timestamp.is_finite() {
            self.first_timestamp =
                Some(self.first_timestamp.map_or(e.timestamp, |t| t.min(e.timestamp)));
            self.last_timestamp =
                Some(self.last_timestamp.map_or(e.timestamp, |t| t.max(e.timestamp)));
        }
        let step = self.clock.step(e.epoch, e.batch);
        match e.event_type {
            EventType::BatchEnd => {
                if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
                    self.fit_step(step);
                    let index = self.step_axis.index(step);
                    for (k, v) in metrics {
                        if let Some(v) = v.as_f64() {
                            self.omitted_metric_values += u64::from(!add_named(
                                &mut self.batch_metrics,
                                self.config.max_metrics,
                                k,
                                index,
                                step,
                                v,
                            ));
                        }
                    }
                }
            }
            EventType::GradientComputed => self.gradient(e, step, GradSource::Norm, "grad_norm"),
            EventType::LayerBackward => self.gradient(e, step, GradSource::Backward, "l2_norm"),
            EventType::EpochEnd => self.epoch_end(e),
            EventType::HealthCheck => self.health_check(e, step),
            EventType::TrainStart => self.train_start(e),
            EventType::TrainEnd => {
                self.run.ended = true;
                self.run.final_metrics = e.data.get("metrics").and_then(Value::as_map).cloned();
                self.run.duration_s = e.data.get_f64("duration_s");
            }
            EventType::EpochStart
            | EventType::BatchStart
            | EventType::LayerForward
            | EventType::WeightUpdated
            | EventType::EpochSummary => {}
        }
        if let Some(ep) = e.epoch {
            self.last_epoch = Some(self.last_epoch.map_or(ep, |l| l.max(ep)));
        }
    }

    /// Fits `step` on the step axis, coarsening every step series together.
    fn fit_step(&mut self, step: u64) {
        let d = self.step_axis.fit(step);
        if d > 0 {
            for n in &mut self.batch_metrics {
                n.series.coarsen(d);
            }
            for l in &mut self.layers {
                l.series.coarsen(d);
            }
            for g in &mut self.health {
                g.timeline.coarsen(d);
            }
        }
    }

    fn fit_epoch(&mut self, epoch: u64) -> usize {
        let d = self.epoch_axis.fit(epoch);
        if d > 0 {
            for n in &mut self.epoch_metrics {
                n.series.coarsen(d);
            }
            self.epoch_time.coarsen(d);
        }
        self.epoch_axis.index(epoch)
    }

    fn gradient(&mut self, e: &Event, step: u64, source: GradSource, field: &str) {
        let Some(v) = e.data.get_f64(field) else { return };
        self.fit_step(step);
        let index = self.step_axis.index(step);
        let name = key(e.layer_name.as_deref().unwrap_or("(unnamed layer)"));
        let found = self.layers.iter().position(|l| l.source == source && l.name == name);
        let slot = match found {
            Some(i) => i,
            None if self.layers.len() < self.config.max_layers => {
                self.layers.push(Layer { name: name.into_owned(), source, series: Series::new() });
                self.layers.len() - 1
            }
            None => {
                self.omitted_layer_values += 1;
                return;
            }
        };
        self.layers[slot].series.add(index, step, v);
    }

    fn epoch_end(&mut self, e: &Event) {
        let Some(epoch) = e.epoch else { return };
        let index = self.fit_epoch(epoch);
        if let Some(metrics) = e.data.get("metrics").and_then(Value::as_map) {
            for (k, v) in metrics {
                if let Some(v) = v.as_f64() {
                    self.omitted_metric_values += u64::from(!add_named(
                        &mut self.epoch_metrics,
                        self.config.max_metrics,
                        k,
                        index,
                        epoch,
                        v,
                    ));
                }
            }
        }
        if let Some(d) = e.data.get_f64("duration_s") {
            self.epoch_time.add(index, epoch, d);
        }
        // A run of several ranks: each rank's loss and epoch time as curves of their own.
        if let Some(rank) = e.rank {
            let loss =
                e.data.get("metrics").and_then(Value::as_map).and_then(|m| m.get_f64("loss"));
            let own = [("loss", loss), ("epoch_s", e.data.get_f64("duration_s"))];
            for (what, v) in own {
                if let Some(v) = v {
                    let name = format!("rank {rank} {what}");
                    self.omitted_metric_values += u64::from(!add_named(
                        &mut self.epoch_metrics,
                        self.config.max_metrics,
                        &name,
                        index,
                        epoch,
                        v,
                    ));
                }
            }
        }
    }

    fn train_start(&mut self, e: &Event) {
        self.run.started = true;
        self.run.ended = false;
        self.run.total_epochs = e.data.get("total_epochs").and_then(Value::as_u64);
        self.run.model_info = e.data.get("model_info").filter(|v| !v.is_null()).cloned();
        self.run.fingerprint = e.data.get("fingerprint").filter(|v| !v.is_null()).cloned();
        self.run.extra = e
            .data
            .iter()
            .filter(|(k, _)| !matches!(*k, "total_epochs" | "model_info" | "fingerprint"))
            .map(|(k, v)| (clip(k, MAX_NAME), v.clone()))
            .collect();
    }

    fn health_check(&mut self, e: &Event, step: u64) {
        self.health_total += 1;
        self.fit_step(step);
        let index = self.step_axis.index(step);
        let rule = e
            .data
            .get("rule_name")
            .and_then(Value::as_str)
            .or_else(|| e.data.get("trigger").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .unwrap_or(UNNAMED_RULE);
        let rule = key(rule);
        let pos = Pos { step, epoch: e.epoch, batch: e.batch };
        let found = self.health.iter().position(|g| g.name == rule);
        let slot = match found {
            Some(i) => i,
            None => {
                let name = if self.health.len() < self.config.max_rules.max(1) - 1 {
                    rule.into_owned()
                } else {
                    OTHER_RULES.to_owned()
                };
                match self.health.iter().position(|g| g.name == name) {
                    Some(i) => i,
                    None => {
                        self.health.push(RuleGroup {
                            name,
                            count: 0,
                            by_severity: [0; 5],
                            first: pos,
                            last: pos,
                            diagnosis: None,
                            recommendations: Vec::new(),
                            recent: VecDeque::new(),
                            layers: Vec::new(),
                            more_layers: false,
                            timeline: Series::new(),
                        });
                        self.health.len() - 1
                    }
                }
            }
        };
        let g = &mut self.health[slot];
        g.count += 1;
        g.by_severity[e.severity as usize] += 1;
        g.last = pos;
        g.timeline.add(index, step, e.severity as usize as f64);
        if g.diagnosis.is_none() {
            g.diagnosis = e
                .data
                .get("diagnosis")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(|d| clip(d, MAX_TEXT));
        }
        let recs: Vec<&str> = match e.data.get("recommendations") {
            Some(Value::List(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::Str(s)) => vec![s.as_str()],
            _ => Vec::new(),
        };
        for r in recs {
            if g.recommendations.len() >= MAX_RECOMMENDATIONS {
                break;
            }
            let r = clip(r, MAX_TEXT);
            if !r.is_empty() && !g.recommendations.contains(&r) {
                g.recommendations.push(r);
            }
        }
        if let Some(layer) = e.layer_name.as_deref()
            && !g.layers.iter().any(|l| l == layer)
        {
            if g.layers.len() < MAX_RULE_LAYERS {
                g.layers.push(clip(layer, MAX_NAME));
            } else {
                g.more_layers = true;
            }
        }
        if g.recent.len() == RECENT_MESSAGES {
            g.recent.pop_front();
        }
        g.recent.push_back(Recent {
            pos,
            severity: e.severity,
            message: clip(&e.message, MAX_TEXT),
            layer: e.layer_name.as_deref().map(|l| clip(l, MAX_NAME)),
        });
    }
}

/// Adds `v` to the series called `name`, creating it when there is room. Returns `false` when
/// the name was new and there was no room.
#[inline]
fn add_named(list: &mut Vec<Named>, cap: usize, name: &str, index: usize, x: u64, v: f64) -> bool {
    let name = key(name);
    if let Some(n) = list.iter_mut().find(|n| n.name == name) {
        n.series.add(index, x, v);
        return true;
    }
    if list.len() >= cap {
        return false;
    }
    let mut series = Series::new();
    series.add(index, x, v);
    list.push(Named { name: name.into_owned(), series });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_core::{LogLevel, data};

    fn at(t: EventType, epoch: Option<u64>, batch: Option<u64>) -> Event {
        Event::new(t, LogLevel::Basic).at(epoch, batch)
    }

    #[test]
    fn global_steps_count_batches_of_earlier_epochs() {
        let mut c = StepClock::default();
        assert_eq!(c.step(None, None), 0);
        assert_eq!(c.step(Some(0), Some(0)), 0);
        assert_eq!(c.step(Some(0), Some(9)), 9);
        assert_eq!(c.step(Some(0), None), 9);
        assert_eq!(c.step(Some(1), None), 9);
        assert_eq!(c.step(Some(1), Some(0)), 10);
        assert_eq!(c.step(Some(1), Some(4)), 14);
        // A late event from epoch 0 keeps its own step and does not rewind the clock.
        assert_eq!(c.step(Some(0), Some(3)), 3);
        assert_eq!(c.step(Some(2), Some(0)), 15);
        // An epoch with no batches adds nothing.
        assert_eq!(c.step(Some(3), None), 15);
        assert_eq!(c.step(Some(4), Some(1)), 17);
    }

    #[test]
    fn absent_metrics_stay_absent_and_caps_hold() {
        let config = DashboardConfig { max_metrics: 2, max_layers: 1, ..Default::default() };
        let mut d = Dashboard::new(config);
        d.ingest(
            &at(EventType::EpochEnd, Some(0), None)
                .field("metrics", data! { "loss" => 1.0, "a" => 2.0, "b" => 3.0 }),
        );
        assert_eq!(
            d.epoch_metrics.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["loss", "a"]
        );
        assert_eq!(d.omitted_metric_values, 1);
        let mut g = at(EventType::GradientComputed, Some(0), Some(0)).field("grad_norm", 0.5);
        g.layer_name = Some("l0".into());
        d.ingest(&g);
        g.layer_name = Some("l1".into());
        d.ingest(&g);
        assert_eq!(d.layers.len(), 1);
        assert_eq!(d.omitted_layer_values, 1);
    }

    #[test]
    fn health_groups_by_rule_and_keeps_bounded_detail() {
        let config = DashboardConfig { max_rules: 3, ..Default::default() };
        let mut d = Dashboard::new(config);
        for i in 0..100u64 {
            let rule = format!("rule_{}", i % 5);
            let mut e = at(EventType::HealthCheck, Some(0), Some(i))
                .severity(if i == 52 { Severity::Critical } else { Severity::Warning })
                .message(format!("message {i}"))
                .data(data! {
                    "rule_name" => rule,
                    "diagnosis" => "why",
                    "recommendations" => vec!["do a", "do b"],
                });
            e.layer_name = Some(format!("layer_{i}"));
            d.ingest(&e);
        }
        let names: Vec<&str> = d.health.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["rule_0", "rule_1", OTHER_RULES]);
        assert_eq!(d.health.iter().map(|g| g.count).sum::<u64>(), 100);
        let other = &d.health[2];
        assert_eq!(other.count, 60);
        assert_eq!(other.max_severity(), Severity::Critical);
        assert_eq!(other.recent.len(), RECENT_MESSAGES);
        assert_eq!(other.recent.back().map(|r| r.message.as_str()), Some("message 99"));
        assert_eq!(other.layers.len(), MAX_RULE_LAYERS);
        assert!(other.more_layers);
        assert_eq!(d.health[0].recommendations, ["do a", "do b"]);
        assert_eq!(d.health[0].first.step, 0);
        assert_eq!(d.health[0].last.step, 95);
    }

    #[test]
    fn trigger_names_a_group_and_clip_respects_characters() {
        let mut d = Dashboard::default();
        d.ingest(&at(EventType::HealthCheck, None, None).field("trigger", "loss_spike"));
        d.ingest(&at(EventType::HealthCheck, None, None));
        let names: Vec<&str> = d.health.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["loss_spike", UNNAMED_RULE]);
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hé", 2), "hé");
    }
}
