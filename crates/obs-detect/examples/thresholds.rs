//! The measurements behind the default thresholds of `docs/health.md`, on the calibration
//! seeds only: for each persistence rule, the longest streak over its threshold in healthy runs
//! and in the runs that have the problem; for spikes, how far healthy losses and gradients jump
//! against corrupted batches; for stagnation, how flat learning and stuck runs are.
//!
//! `cargo run -p obs-detect --example thresholds`

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use obs_core::{Activation, TensorView, tensor_stats};
use obs_detect::catalogue::{Split, runs};
use obs_detect::evidence::{Evidence, EvidenceObserver};
use obs_detect::oracle::{Problem, label};
use obs_testkit::{BatchReport, LayerInfo, RunConfig, TrainObserver, train};

/// Per batch and hidden layer: the dead-unit percentage (ReLU) and the saturation percentage
/// (tanh, sigmoid); NaN where the layer has none.
#[derive(Debug, Default)]
struct PerBatch {
    layers: usize,
    dead: Vec<Vec<f64>>,
    saturated: Vec<Vec<f64>>,
    current: (Vec<f64>, Vec<f64>),
}

impl TrainObserver for PerBatch {
    fn train_start(&mut self, _config: &RunConfig, layers: &[LayerInfo]) {
        self.layers = layers.len();
    }
    fn batch_start(&mut self, _epoch: u64, _batch: u64) {
        self.current = (vec![f64::NAN; self.layers], vec![f64::NAN; self.layers]);
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        if layer.index + 1 >= self.layers {
            return;
        }
        let s = tensor_stats(output, layer.activation);
        match layer.activation {
            Activation::Relu => self.current.0[layer.index] = s.dead_units_pct().unwrap_or(0.0),
            Activation::Tanh | Activation::Sigmoid => {
                self.current.1[layer.index] = s.saturation_pct();
            }
            _ => {}
        }
    }
    fn batch_end(&mut self, _report: &BatchReport) {
        let (dead, saturated) = std::mem::take(&mut self.current);
        self.dead.push(dead);
        self.saturated.push(saturated);
    }
}

/// The longest run of consecutive batches in which `over` holds for one layer.
fn longest_streak(series: &[Vec<f64>], over: impl Fn(f64) -> bool) -> usize {
    let layers = series.first().map_or(0, Vec::len);
    (0..layers)
        .map(|l| {
            let mut run = 0;
            series
                .iter()
                .map(|b| {
                    run = if over(b[l]) { run + 1 } else { 0 };
                    run
                })
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

/// For every batch after the first 20: (loss / highest of the 20 before, loss / first loss,
/// whether more than half of the layers' norms jumped over 5x their 20-batch mean).
fn jumps(e: &Evidence, until: usize) -> Vec<(usize, f64, f64, bool)> {
    let first = e.batches.first().map_or(f64::NAN, |b| b.loss);
    (20..until)
        .map(|s| {
            let window = &e.batches[s - 20..s];
            let max = window.iter().map(|b| b.loss).fold(0.0, f64::max);
            let layers = e.layers.len();
            let jumped = (0..layers)
                .filter(|&l| {
                    let mean = window.iter().map(|b| b.grads[l]).sum::<f64>() / 20.0;
                    e.batches[s].grads[l] > 5.0 * mean
                })
                .count();
            (s, e.batches[s].loss / max, e.batches[s].loss / first, jumped * 2 > layers)
        })
        .collect()
}

/// The smallest span (as a fraction of the mean) of 5 consecutive epoch losses while the loss
/// is at least `floor` times the first epoch's.
fn flattest_window(e: &Evidence, floor: f64) -> f64 {
    let first = e.epochs.first().map_or(f64::NAN, |ep| ep.train_loss);
    e.epochs
        .windows(5)
        .filter_map(|w| {
            let l: Vec<f64> = w.iter().map(|ep| ep.train_loss).collect();
            if l.iter().any(|x| !x.is_finite()) || l[4] < floor * first {
                return None;
            }
            let (min, max) =
                l.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
            Some((max - min) / (l.iter().sum::<f64>() / 5.0))
        })
        .fold(f64::INFINITY, f64::min)
}

#[derive(Debug, Default)]
struct Extremes {
    healthy_runs: usize,
    healthy_dead: (usize, String),
    healthy_saturated: (usize, String),
    healthy_vanishing: (usize, String),
    sick_dead: Option<usize>,
    sick_saturated: Option<usize>,
    healthy_loss_vs_max: (f64, String),
    healthy_coincident_loss_vs_max: (f64, String),
    healthy_loss_vs_first: (f64, String),
    corrupted: Vec<(String, f64, f64)>,
    learning_flattest: (f64, String),
    stuck_flattest: (f64, String),
}

fn worse(slot: &mut (usize, String), value: usize, id: &str) {
    if value > slot.0 {
        *slot = (value, id.to_owned());
    }
}

fn worse_f(slot: &mut (f64, String), value: f64, id: &str) {
    if value > slot.0 {
        *slot = (value, id.to_owned());
    }
}

fn main() {
    let mut x =
        Extremes { learning_flattest: (f64::INFINITY, String::new()), ..Extremes::default() };
    for run in runs().into_iter().filter(|r| r.split == Split::Calibration) {
        let (mut evidence, mut per_batch) = (EvidenceObserver::new(), PerBatch::default());
        {
            let mut both: Vec<&mut dyn TrainObserver> = vec![&mut evidence, &mut per_batch];
            train(&run.config(), &mut both);
        }
        let e = evidence.into_evidence();
        let labels = label(&e);
        let has = |p: Problem| labels.iter().any(|l| l.problem == p);
        let id = run.id();
        let until = e.first_non_finite_loss().unwrap_or(e.batches.len());
        let dead = longest_streak(&per_batch.dead[..until], |p| p > 50.0);
        let saturated = longest_streak(&per_batch.saturated[..until], |p| p > 40.0);
        let grads: Vec<Vec<f64>> = e.batches[..until].iter().map(|b| b.grads.clone()).collect();
        let vanishing = longest_streak(&grads, |g| g < 1e-7);
        let corrupted = e.corrupted.and_then(|(ep, b)| e.step_of(ep, b));
        if labels.is_empty() {
            x.healthy_runs += 1;
            worse(&mut x.healthy_dead, dead, &id);
            worse(&mut x.healthy_saturated, saturated, &id);
            worse(&mut x.healthy_vanishing, vanishing, &id);
        }
        if has(Problem::DyingRelu) {
            x.sick_dead = Some(x.sick_dead.map_or(dead, |m| m.min(dead)));
        }
        if has(Problem::Saturation) {
            x.sick_saturated = Some(x.sick_saturated.map_or(saturated, |m| m.min(saturated)));
        }
        // Spikes: every run without a divergence, outside the corrupted batch and the 5 after.
        if !has(Problem::Divergence) {
            for (s, vs_max, vs_first, coincident) in jumps(&e, until) {
                if corrupted.is_some_and(|c| s >= c && s <= c + 5) {
                    if corrupted == Some(s) {
                        x.corrupted.push((id.clone(), vs_max, vs_first));
                    }
                    continue;
                }
                worse_f(&mut x.healthy_loss_vs_max, vs_max, &id);
                worse_f(&mut x.healthy_loss_vs_first, vs_first, &id);
                if coincident {
                    worse_f(&mut x.healthy_coincident_loss_vs_max, vs_max, &id);
                }
            }
        }
        let flattest = flattest_window(&e, 0.9);
        if has(Problem::LossPlateau) {
            println!("  stuck run {id}: flattest 5-epoch span {:.2}%", flattest * 100.0);
            worse_f(&mut x.stuck_flattest, flattest, &id);
        } else if flattest < x.learning_flattest.0 {
            x.learning_flattest = (flattest, id.clone());
        }
    }
    println!("calibration runs (seeds 1-3), {} healthy:", x.healthy_runs);
    println!(
        "  dead_relu: longest streak over 50% dead units, healthy {} ({}), dying ReLU at least {:?}",
        x.healthy_dead.0, x.healthy_dead.1, x.sick_dead
    );
    println!(
        "  activation_saturation: longest streak over 40%, healthy {} ({}), saturated at least {:?}",
        x.healthy_saturated.0, x.healthy_saturated.1, x.sick_saturated
    );
    println!(
        "  vanishing_gradient: longest streak under 1e-7, healthy {} ({})",
        x.healthy_vanishing.0, x.healthy_vanishing.1
    );
    println!(
        "  loss / highest of the last 20: uncorrupted batches up to {:.1} ({}); with most layers \
         jumping 5x up to {:.1} ({})",
        x.healthy_loss_vs_max.0,
        x.healthy_loss_vs_max.1,
        x.healthy_coincident_loss_vs_max.0,
        x.healthy_coincident_loss_vs_max.1
    );
    println!(
        "  loss / first loss: uncorrupted batches up to {:.2} ({})",
        x.healthy_loss_vs_first.0, x.healthy_loss_vs_first.1
    );
    for (id, vs_max, vs_first) in &x.corrupted {
        println!(
            "  corrupted batch {id}: {vs_max:.1}x the highest recent loss, {vs_first:.2}x the first"
        );
    }
    println!(
        "  loss_stagnation: flattest 5-epoch span at 90%+ of the first loss, other runs {:.1}% \
         ({}), stuck runs at most {:.1}% ({})",
        x.learning_flattest.0 * 100.0,
        x.learning_flattest.1,
        x.stuck_flattest.0 * 100.0,
        x.stuck_flattest.1
    );
}
