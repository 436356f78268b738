//! The printed report and the targets `cargo xtask detect` enforces.

use std::fmt::Write as _;

use crate::catalogue::{Intent, Split};
use crate::oracle::Problem;
use crate::score::{Engine, RunScore, totals};

/// The targets, judged on the held-out runs with default configurations.
pub mod targets {
    /// Every labelled problem reported.
    pub const RECALL: f64 = 1.0;
    /// At most one false alarm in twenty findings.
    pub const PRECISION: f64 = 0.95;
    /// Adaptive bytes / EXPERT bytes on a healthy run, at most.
    pub const HEALTHY_VOLUME: f64 = 0.10;
    /// The same on a run with a chronic problem, at most.
    pub const CHRONIC_VOLUME: f64 = 0.30;
    /// The same on any run, at most.
    pub const ANY_VOLUME: f64 = 1.0;
}

fn labels(s: &RunScore) -> String {
    if s.labels.is_empty() {
        return "healthy".to_owned();
    }
    s.labels
        .iter()
        .map(|l| format!("{}@{}", l.problem.name(), l.onset))
        .collect::<Vec<_>>()
        .join(" ")
}

fn fired(s: &RunScore, engine: Engine) -> String {
    let e = &s.engines[&engine];
    if e.fired.is_empty() {
        return "-".to_owned();
    }
    e.fired.iter().map(|(n, step)| format!("{n}@{step}")).collect::<Vec<_>>().join(" ")
}

/// One block per run: labels, what each engine fired (name@first step), misses, false alarms,
/// adaptive volume.
pub fn per_run(scores: &[RunScore]) -> String {
    let mut out = String::new();
    for s in scores {
        let _ =
            writeln!(out, "{:<36} {:<11} labels: {}", s.run.id(), s.run.split.name(), labels(s));
        for engine in Engine::ALL {
            let e = &s.engines[&engine];
            let _ = write!(
                out,
                "    {:<19} {:>3} findings  fired: {}",
                engine.name(),
                e.findings,
                fired(s, engine)
            );
            if !e.missed.is_empty() {
                let missed: Vec<&str> = e.missed.iter().map(|p| p.name()).collect();
                let _ = write!(out, "  MISSED: {}", missed.join(" "));
            }
            if !e.false_alarms.is_empty() {
                let _ = write!(out, "  FALSE: {}", e.false_alarms.join(" "));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "    adaptive volume {:>6.2}% of EXPERT, {} of {} batches at EXPERT{}",
            s.volume_ratio * 100.0,
            s.escalated_batches,
            s.batches,
            if s.onsets_not_recorded.is_empty() {
                String::new()
            } else {
                format!("  ONSETS NOT RECORDED: {:?}", s.onsets_not_recorded)
            }
        );
        if let Some(note) = intent_mismatch(s) {
            let _ = writeln!(out, "    NOTE: {note}");
        }
    }
    out
}

/// Every finding of both engines, one line each: step, engine, name, layer, message, and for
/// the adaptive logger whether it escalated.
pub fn trace(scores: &[RunScore]) -> String {
    let mut out = String::new();
    for s in scores {
        let _ = writeln!(out, "{} (labels: {})", s.run.id(), labels(s));
        for engine in Engine::ALL {
            for (step, r) in &s.engines[&engine].trace {
                let esc = match r.escalated {
                    Some(true) => " [escalated]",
                    Some(false) => " [sampled]",
                    None => "",
                };
                let _ = writeln!(
                    out,
                    "  @{step:<5} {:<19} {:<22} {:<10} {}{esc}",
                    engine.name(),
                    r.names.join("/"),
                    r.layer.as_deref().unwrap_or("-"),
                    r.message
                );
            }
        }
    }
    out
}

/// A run whose labels do not include what its family was built to show.
fn intent_mismatch(s: &RunScore) -> Option<String> {
    let has = |p: Problem| s.labels.iter().any(|l| l.problem == p);
    let ok = match s.run.family.intent {
        Intent::Healthy => s.labels.is_empty(),
        Intent::DyingRelu => has(Problem::DyingRelu),
        Intent::BlowUp => has(Problem::Divergence),
        Intent::Exploding => has(Problem::ExplodingGradient),
        Intent::Vanishing => has(Problem::VanishingGradient),
        Intent::Overfitting => has(Problem::Overfitting),
        Intent::ZeroLearningRate => has(Problem::WeightStagnation),
        Intent::Plateau => has(Problem::LossPlateau),
        Intent::Saturation => has(Problem::Saturation),
        Intent::CorruptedBatch => has(Problem::CorruptedBatch),
    };
    (!ok).then(|| {
        format!("built to show {:?}, the evidence says: {}", s.run.family.intent, labels(s))
    })
}

/// The summary table per split and engine, and the first-report delays per problem.
pub fn summary(scores: &[RunScore]) -> String {
    let mut out = String::new();
    for split in [Split::Calibration, Split::HeldOut] {
        let runs: Vec<&RunScore> = scores.iter().filter(|s| s.run.split == split).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} runs: {}", split.name(), runs.len());
        let _ = writeln!(
            out,
            "  {:<19} {:>5} {:>5} {:>5} {:>9} {:>7} {:>15} {:>13}",
            "engine", "TP", "FP", "FN", "precision", "recall", "healthy silent", "findings/run"
        );
        for engine in Engine::ALL {
            let t = totals(runs.iter().copied(), engine);
            let _ = writeln!(
                out,
                "  {:<19} {:>5} {:>5} {:>5} {:>9.3} {:>7.3} {:>9} of {:<3} {:>13.2}",
                engine.name(),
                t.tp,
                t.fp,
                t.fn_,
                t.precision(),
                t.recall(),
                t.healthy_silent,
                t.healthy,
                t.per_run()
            );
        }
        let _ = writeln!(
            out,
            "  first report, batches after onset (health / adaptive): median, max; runs"
        );
        for p in Problem::ALL {
            let delays = |engine: Engine| -> Vec<i64> {
                runs.iter()
                    .filter_map(|s| {
                        let onset = s.labels.iter().find(|l| l.problem == p)?.onset;
                        let at = *s.engines[&engine].detected.get(&p)?;
                        Some(at as i64 - onset as i64)
                    })
                    .collect()
            };
            let (h, a) = (delays(Engine::Health), delays(Engine::Adaptive));
            if h.is_empty() && a.is_empty() {
                continue;
            }
            let fmt = |mut v: Vec<i64>| {
                if v.is_empty() {
                    return "-".to_owned();
                }
                v.sort_unstable();
                format!("{}, {}", v[v.len() / 2], v[v.len() - 1])
            };
            let labelled = runs.iter().filter(|s| s.labels.iter().any(|l| l.problem == p)).count();
            let _ =
                writeln!(out, "    {:<20} {:>12} / {:<12} {labelled:>3}", p.name(), fmt(h), fmt(a));
        }
        let blowups: Vec<&&RunScore> = runs.iter().filter(|s| s.is_blow_up()).collect();
        for engine in Engine::ALL {
            let early = blowups.iter().filter(|s| divergence_before_nan(s, engine)).count();
            let _ = writeln!(
                out,
                "  {}: loss_divergence before the first non-finite loss in {} of {} blow-ups",
                engine.name(),
                early,
                blowups.len()
            );
        }
        let ratio = |f: &dyn Fn(&RunScore) -> bool| {
            runs.iter().filter(|s| f(s)).map(|s| s.volume_ratio).fold(0.0, f64::max)
        };
        let _ = writeln!(
            out,
            "  adaptive volume vs EXPERT, worst run: healthy {:.2}%, chronic {:.2}%, any {:.2}%",
            ratio(&|s| s.is_healthy()) * 100.0,
            ratio(&|s| s.is_chronic()) * 100.0,
            ratio(&|_| true) * 100.0
        );
    }
    out
}

fn divergence_before_nan(s: &RunScore, engine: Engine) -> bool {
    match (s.engines[&engine].fired.get("loss_divergence"), s.first_non_finite) {
        (Some(&at), Some(nan)) => at < nan,
        _ => false,
    }
}

/// Every target the held-out runs miss, one line each; empty when all are met.
pub fn failures(scores: &[RunScore]) -> Vec<String> {
    let held: Vec<&RunScore> = scores.iter().filter(|s| s.run.split == Split::HeldOut).collect();
    let mut out = Vec::new();
    for engine in Engine::ALL {
        let t = totals(held.iter().copied(), engine);
        if t.recall() < targets::RECALL {
            out.push(format!("{}: recall {:.3} < {}", engine.name(), t.recall(), targets::RECALL));
        }
        if t.precision() < targets::PRECISION {
            out.push(format!(
                "{}: precision {:.3} < {}",
                engine.name(),
                t.precision(),
                targets::PRECISION
            ));
        }
        if t.healthy_silent < t.healthy {
            out.push(format!(
                "{}: {} of {} healthy runs had findings",
                engine.name(),
                t.healthy - t.healthy_silent,
                t.healthy
            ));
        }
        for s in held.iter().filter(|s| s.is_blow_up() && !divergence_before_nan(s, engine)) {
            out.push(format!(
                "{}: {} blew up without loss_divergence before its first non-finite loss",
                engine.name(),
                s.run.id()
            ));
        }
    }
    for s in &held {
        let (limit, what) = if s.is_healthy() {
            (targets::HEALTHY_VOLUME, "healthy")
        } else if s.is_chronic() {
            (targets::CHRONIC_VOLUME, "chronic")
        } else {
            (targets::ANY_VOLUME, "sick")
        };
        if s.volume_ratio > limit {
            out.push(format!(
                "{} ({what}): adaptive volume {:.1}% of EXPERT > {:.0}%",
                s.run.id(),
                s.volume_ratio * 100.0,
                limit * 100.0
            ));
        }
        if !s.onsets_not_recorded.is_empty() {
            out.push(format!(
                "{}: findings in batches without EXPERT detail: {:?}",
                s.run.id(),
                s.onsets_not_recorded
            ));
        }
    }
    out
}
