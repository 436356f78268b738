//! Scoring: what each engine reported against the labels.
//!
//! - A **true positive** is a labelled problem reported by a finding named in its
//!   [`Problem::detected_by`]; a **false negative** one that was not.
//! - A **false positive** is a finding name fired in a run (counted once per run and name) that
//!   neither reports nor follows from any labelled problem of that run
//!   ([`Problem::consequences`]). On a healthy run every finding is one.
//! - Precision is `TP / (TP + FP)` with TP counted per (run, problem) detected; recall is
//!   `TP / (TP + FN)`.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalogue::Run;
use crate::oracle::{Label, Problem};
use crate::replay::{Observed, Reported};

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// `AutoHealthWarnings`.
    Health,
    /// `AdaptiveLogger`.
    Adaptive,
}

impl Engine {
    /// Both engines.
    pub const ALL: [Engine; 2] = [Engine::Health, Engine::Adaptive];

    /// The type's name.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Health => "AutoHealthWarnings",
            Engine::Adaptive => "AdaptiveLogger",
        }
    }
}

/// One engine on one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineScore {
    /// Finding names fired, with the step each first fired at.
    pub fired: BTreeMap<String, usize>,
    /// Labelled problems reported, with the step of the first report.
    pub detected: BTreeMap<Problem, usize>,
    /// Labelled problems not reported.
    pub missed: Vec<Problem>,
    /// Fired names that no labelled problem explains.
    pub false_alarms: Vec<String>,
    /// Findings reported in all (every warning or emitted anomaly).
    pub findings: usize,
    /// Every finding, in order: step, names, layer, message, whether it escalated.
    pub trace: Vec<(usize, Reported)>,
}

/// One run, scored.
#[derive(Clone, Debug)]
pub struct RunScore {
    /// The run.
    pub run: Run,
    /// Its labels.
    pub labels: Vec<Label>,
    /// Each engine's score.
    pub engines: BTreeMap<Engine, EngineScore>,
    /// The first step with a non-finite loss.
    pub first_non_finite: Option<usize>,
    /// Adaptive log bytes / always-EXPERT log bytes.
    pub volume_ratio: f64,
    /// Batches the adaptive logger recorded at EXPERT.
    pub escalated_batches: u64,
    /// Batches in the run.
    pub batches: usize,
    /// Batch findings of the adaptive logger whose batch has no EXPERT record.
    pub onsets_not_recorded: Vec<(u64, u64)>,
}

impl RunScore {
    /// Whether the run has no labelled problem.
    pub fn is_healthy(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether a labelled problem stays from onset on ([`Problem::is_chronic`]).
    pub fn is_chronic(&self) -> bool {
        self.labels.iter().any(|l| l.problem.is_chronic())
    }

    /// Whether the run blew up to a non-finite loss after diverging.
    pub fn is_blow_up(&self) -> bool {
        self.first_non_finite.is_some()
            && self.labels.iter().any(|l| l.problem == Problem::Divergence)
    }
}

fn step_of(observed: &Observed, r: &Reported) -> usize {
    let e = &observed.evidence;
    match r.batch {
        Some(b) => e.step_of(r.epoch, b),
        None => e.last_step_of_epoch(r.epoch),
    }
    .unwrap_or(e.batches.len())
}

fn score_engine(observed: &Observed, labels: &[Label], found: &[Reported]) -> EngineScore {
    let mut s = EngineScore { findings: found.len(), ..EngineScore::default() };
    for r in found {
        let step = step_of(observed, r);
        s.trace.push((step, r.clone()));
        for n in &r.names {
            s.fired.entry(n.clone()).or_insert(step);
        }
        for l in labels {
            if r.names.iter().any(|n| l.problem.detected_by().contains(&n.as_str())) {
                s.detected.entry(l.problem).or_insert(step);
            }
        }
    }
    s.missed = labels.iter().map(|l| l.problem).filter(|p| !s.detected.contains_key(p)).collect();
    let explained = |name: &str| {
        labels.iter().any(|l| {
            l.problem.detected_by().contains(&name) || l.problem.consequences().contains(&name)
        })
    };
    // A finding is explained when any of its names is (a trigger may stand for several rules).
    let mut alarms = BTreeSet::new();
    for r in found {
        if !r.names.iter().any(|n| explained(n)) {
            alarms.insert(r.names[0].clone());
        }
    }
    s.false_alarms = alarms.into_iter().collect();
    s
}

/// Scores one observed run.
pub fn score(run: Run, labels: Vec<Label>, observed: &Observed) -> RunScore {
    let mut engines = BTreeMap::new();
    engines.insert(Engine::Health, score_engine(observed, &labels, &observed.health));
    engines.insert(Engine::Adaptive, score_engine(observed, &labels, &observed.adaptive));
    let onsets_not_recorded = observed
        .adaptive
        .iter()
        .filter_map(|r| r.batch.map(|b| (r.epoch, b)))
        .filter(|p| !observed.adaptive_volume.expert_batches.contains(p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    RunScore {
        run,
        labels,
        engines,
        first_non_finite: observed.evidence.first_non_finite_loss(),
        volume_ratio: observed.adaptive_volume.bytes as f64
            / observed.expert_volume.bytes.max(1) as f64,
        escalated_batches: observed.adaptive_escalated_batches,
        batches: observed.evidence.batches.len(),
        onsets_not_recorded,
    }
}

/// Totals of one engine over a set of runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Runs.
    pub runs: usize,
    /// Labelled problems reported.
    pub tp: usize,
    /// False alarms (run, name).
    pub fp: usize,
    /// Labelled problems missed.
    pub fn_: usize,
    /// Healthy runs.
    pub healthy: usize,
    /// Healthy runs with no finding.
    pub healthy_silent: usize,
    /// Findings reported in all.
    pub findings: usize,
}

impl Totals {
    /// `TP / (TP + FP)` (1 when nothing fired).
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 }
    }

    /// `TP / (TP + FN)` (1 when nothing was labelled).
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fn_) as f64 }
    }

    /// Findings per run.
    pub fn per_run(&self) -> f64 {
        self.findings as f64 / self.runs.max(1) as f64
    }
}

/// Adds up one engine over `scores`.
pub fn totals<'a>(scores: impl IntoIterator<Item = &'a RunScore>, engine: Engine) -> Totals {
    let mut t = Totals::default();
    for s in scores {
        let e = &s.engines[&engine];
        t.runs += 1;
        t.tp += e.detected.len();
        t.fn_ += e.missed.len();
        t.fp += e.false_alarms.len();
        t.findings += e.findings;
        if s.is_healthy() {
            t.healthy += 1;
            t.healthy_silent += usize::from(e.findings == 0);
        }
    }
    t
}
