//! `obs summary DIR`: epoch summaries recomputed from stored logs, and warnings by rule.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use observatory::core::{Data, Event, EventType, Severity, Value};
use observatory::storage::LogReader;
use observatory::summary::{EpochSummarizer, EpochSummary, RankDigest};

use crate::error::{CliError, Context};
use crate::output::{at, num, say};
use crate::{logs, progress};

/// Arguments of `obs summary`.
#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    /// A run directory, or a directory of `run-*` runs (the newest is read).
    dir: PathBuf,
}

/// Gradient norms seen for the batch in progress, before its `batch_end`.
#[derive(Debug, Default)]
struct PendingGrads {
    at: (Option<u64>, Option<u64>),
    norms: Vec<(String, f64)>,
}

impl PendingGrads {
    fn add(&mut self, e: &Event, key: &str) {
        let (Some(layer), Some(norm)) = (&e.layer_name, e.data.get_f64(key)) else { return };
        if self.at != (e.epoch, e.batch) {
            self.at = (e.epoch, e.batch);
            self.norms.clear();
        }
        // `gradient_computed` and `layer_backward` both describe one gradient: keep the first.
        if !self.norms.iter().any(|(n, _)| n == layer) {
            self.norms.push((layer.clone(), norm));
        }
    }
}

/// Warnings of one (source, rule).
#[derive(Debug)]
struct RuleGroup {
    count: u64,
    worst: Severity,
    first: (Option<u64>, Option<u64>),
    last: (Option<u64>, Option<u64>),
    layers: Vec<String>,
    message: String,
}

/// Everything read from the logs, in one pass.
#[derive(Debug, Default)]
struct Digest {
    summarizer: EpochSummarizer,
    pending: PendingGrads,
    /// Epoch-end metrics and duration, by epoch.
    epochs: BTreeMap<u64, (Data, Option<f64>)>,
    /// `(source, rule)` → group, in order of first appearance.
    rules: Vec<((String, String), RuleGroup)>,
    health_events: u64,
    batches: u64,
    unusable_batches: u64,
    model: Option<String>,
    total_epochs: Option<u64>,
    final_metrics: Option<Data>,
}

fn numbers(map: &Data) -> Vec<(&str, f64)> {
    map.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k, x))).collect()
}

impl Digest {
    fn batch_end(&mut self, e: &Event) {
        let (Some(epoch), Some(metrics)) = (e.epoch, e.data.get("metrics").and_then(Value::as_map))
        else {
            self.unusable_batches += 1;
            return;
        };
        let metrics = numbers(metrics);
        let own = e.data.get("grad_norms").and_then(Value::as_map).map(numbers);
        let grads: Vec<(&str, f64)> = match own {
            Some(g) => g,
            None if self.pending.at == (e.epoch, e.batch) => {
                self.pending.norms.iter().map(|(n, v)| (n.as_str(), *v)).collect()
            }
            None => Vec::new(),
        };
        match self.summarizer.record_batch(epoch, &metrics, &grads) {
            Ok(()) => self.batches += 1,
            // Epochs going backwards: an appended second run. Its batches are counted, not mixed.
            Err(_) => self.unusable_batches += 1,
        }
    }

    fn health(&mut self, e: &Event) {
        self.health_events += 1;
        let rule = match e.data.get("rule_name").and_then(Value::as_str) {
            Some(rule) => rule,
            None if e.event_type == EventType::HealthCheck => "(no rule)",
            // Alerts of other events (a NaN in a layer's output) are grouped by event type.
            None => e.event_type.as_str(),
        };
        let source = match e.data.get("source").and_then(Value::as_str) {
            Some("adaptive") => "anomaly",
            _ if e.event_type == EventType::HealthCheck => "health",
            _ => "event",
        };
        let key = (source.to_owned(), rule.to_owned());
        let here = (e.epoch, e.batch);
        let i = match self.rules.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.rules.push((
                    key,
                    RuleGroup {
                        count: 0,
                        worst: e.severity,
                        first: here,
                        last: here,
                        layers: Vec::new(),
                        message: String::new(),
                    },
                ));
                self.rules.len() - 1
            }
        };
        let g = &mut self.rules[i].1;
        g.count += 1;
        g.worst = g.worst.max(e.severity);
        g.last = here;
        g.message.clone_from(&e.message);
        if let Some(layer) = &e.layer_name
            && !g.layers.contains(layer)
        {
            g.layers.push(layer.clone());
        }
    }

    fn ingest(&mut self, e: &Event) {
        match e.event_type {
            EventType::GradientComputed => self.pending.add(e, "grad_norm"),
            EventType::LayerBackward => self.pending.add(e, "l2_norm"),
            EventType::BatchEnd => self.batch_end(e),
            EventType::EpochEnd => {
                if let (Some(epoch), Some(m)) =
                    (e.epoch, e.data.get("metrics").and_then(Value::as_map))
                {
                    self.epochs.insert(epoch, (m.clone(), e.data.get_f64("duration_s")));
                }
            }
            EventType::TrainStart => {
                let info = e.data.get("model_info").and_then(Value::as_map);
                self.model =
                    info.and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_owned);
                self.total_epochs = e.data.get("total_epochs").and_then(Value::as_u64);
            }
            EventType::TrainEnd => {
                self.final_metrics = e.data.get("metrics").and_then(Value::as_map).cloned();
            }
            _ => {}
        }
        if e.tier() == observatory::core::Tier::Health {
            self.health(e);
        }
    }

    fn summaries(&mut self) -> Vec<EpochSummary> {
        if let Some(current) = self.summarizer.current_epoch() {
            let _ = self.summarizer.finalize_epoch(current);
        }
        self.summarizer.get_all_summaries().to_vec()
    }
}

fn metrics_line(metrics: &Data) -> String {
    let shown = metrics.iter().filter_map(|(k, v)| {
        let text = match v {
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Bool(b) => b.to_string(),
            other => num(other.as_f64()?),
        };
        Some(format!("{k}={text}"))
    });
    shown.collect::<Vec<_>>().join(" ")
}

fn print_rules(digest: &Digest) {
    if digest.rules.is_empty() {
        say!("Warnings: none ({} health events)", digest.health_events);
        return;
    }
    say!("Warnings by rule ({} health events):", digest.health_events);
    say!(
        "  {:<8} {:<24} {:<10} {:>6}  {:<10} {:<10} layers",
        "source",
        "rule",
        "severity",
        "count",
        "first",
        "last"
    );
    for ((source, rule), g) in &digest.rules {
        let mut layers = g.layers.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
        if g.layers.len() > 4 {
            layers.push_str(&format!(" (+{})", g.layers.len() - 4));
        }
        say!(
            "  {:<8} {:<24} {:<10} {:>6}  {:<10} {:<10} {}",
            source,
            rule,
            g.worst.as_str(),
            g.count,
            at(g.first.0, g.first.1),
            at(g.last.0, g.last.1),
            if layers.is_empty() { "-" } else { &layers }
        );
    }
    say!();
    say!("Latest message of each rule:");
    for ((source, rule), g) in &digest.rules {
        say!("  {source}:{rule}: {}", g.message);
    }
}

/// Reads every event of `reader` into a digest (and the per-rank digest).
fn digest_of(
    reader: &LogReader,
    ranks: &mut RankDigest,
) -> Result<(Digest, observatory::storage::ReadStats), CliError> {
    let mut events = reader
        .read_all()
        .context(|| format!("cannot read logs in {}", reader.run_dir().display()))?;
    let bar = progress::counter("reading events");
    let mut digest = Digest::default();
    for e in events.by_ref() {
        digest.ingest(&e);
        ranks.add(&e);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((digest, events.total_stats()))
}

/// Prints the epoch summaries, final metrics and warnings of one digest.
fn print_digest(digest: &mut Digest) {
    let summaries = digest.summaries();
    if summaries.is_empty() {
        say!("No batch_end events with metrics: no epoch summaries to compute.");
    }
    let mut shown = std::collections::BTreeSet::new();
    for s in &summaries {
        shown.insert(s.epoch);
        say!("{}", s.format_text().trim_end());
        if let Some((m, d)) = digest.epochs.get(&s.epoch) {
            let took = d.map_or_else(String::new, |d| format!(" ({d:.3} s)"));
            say!("  Epoch end: {}{took}", metrics_line(m));
        }
    }
    for (epoch, (m, _)) in digest.epochs.iter().filter(|(e, _)| !shown.contains(e)) {
        say!("══ Epoch {epoch}: no batch metrics recorded ══");
        say!("  Epoch end: {}", metrics_line(m));
    }
    if let Some(m) = &digest.final_metrics {
        say!();
        say!("Final: {}", metrics_line(m));
    }
    if digest.unusable_batches > 0 {
        say!(
            "({} batch_end events without metrics or out of epoch order were not summarised)",
            digest.unusable_batches
        );
    }
    say!();
    print_rules(digest);
}

/// Prints the per-rank table of a run of several ranks and names the straggler.
fn print_ranks(ranks: &RankDigest) {
    let world = ranks.world_size.map_or_else(String::new, |w| format!(" of world size {w}"));
    say!("Ranks: {}{world}", ranks.ranks.len());
    say!(
        "  {:>4}  {:>12}  {:>7}  {:>14}  {:>8}  rules",
        "rank",
        "final loss",
        "epochs",
        "mean epoch s",
        "findings"
    );
    for r in &ranks.ranks {
        let rules: Vec<String> =
            r.findings_by_rule.iter().map(|(rule, n)| format!("{rule}×{n}")).collect();
        say!(
            "  {:>4}  {:>12}  {:>7}  {:>14}  {:>8}  {}",
            r.rank,
            r.final_loss().map_or_else(|| "-".to_owned(), num),
            r.epoch_seconds.len().max(r.epoch_loss.len()),
            r.mean_epoch_seconds().map_or_else(|| "-".to_owned(), |s| format!("{s:.3}")),
            r.findings,
            if rules.is_empty() { "-".to_owned() } else { rules.join(", ") }
        );
    }
    match ranks.straggler() {
        Some(s) => say!(
            "Straggler: rank {} ({:.3} s per epoch, {:+.3} s = {:+.0}% vs the median {:.3} s)",
            s.rank,
            s.mean_epoch_seconds,
            s.lag_seconds,
            s.lag_ratio * 100.0,
            s.median_epoch_seconds
        ),
        None => say!("Straggler: - (fewer than two ranks with timed epochs)"),
    }
}

/// Runs `obs summary`.
pub(crate) fn run(args: &SummaryArgs) -> Result<ExitCode, CliError> {
    let reader = logs::open(&args.dir)?;
    let rank_list = reader.ranks();
    if !rank_list.is_empty() {
        return run_ranked(&reader, &rank_list);
    }
    let mut ranks = RankDigest::new();
    let (mut digest, stats) = digest_of(&reader, &mut ranks)?;
    logs::note_skipped(&stats);

    say!("Run: {}", reader.run_dir().display());
    let model = digest.model.as_deref().unwrap_or("(no model name)");
    let epochs = digest.total_epochs.map_or_else(String::new, |n| format!(", {n} epochs planned"));
    say!("Model: {model}{epochs}; {} events read", stats.events);
    say!();
    print_digest(&mut digest);
    Ok(ExitCode::SUCCESS)
}

/// `obs summary` of a run of several ranks: the per-rank table and straggler, then each
/// rank's own summary (each rank's epochs are in order only within that rank).
fn run_ranked(reader: &LogReader, rank_list: &[u32]) -> Result<ExitCode, CliError> {
    let mut ranks = RankDigest::new();
    let mut digests = Vec::new();
    let mut total = observatory::storage::ReadStats::default();
    for &r in rank_list {
        let Some(one) = reader.rank(r) else { continue };
        let (digest, stats) = digest_of(&one, &mut ranks)?;
        total.merge(&stats);
        digests.push((r, digest));
    }
    logs::note_skipped(&total);
    say!("Run: {}", reader.run_dir().display());
    let model = digests.iter().find_map(|(_, d)| d.model.as_deref()).unwrap_or("(no model name)");
    let epochs = digests
        .iter()
        .find_map(|(_, d)| d.total_epochs)
        .map_or_else(String::new, |n| format!(", {n} epochs planned"));
    say!("Model: {model}{epochs}; {} events read", total.events);
    say!();
    print_ranks(&ranks);
    for (r, digest) in &mut digests {
        say!();
        say!("──────── Rank {r} ────────");
        print_digest(digest);
    }
    Ok(ExitCode::SUCCESS)
}
