//! Every scenario shows its behaviour in the real numbers (not in any warning), at the onset
//! `Scenario::expected_onset` documents.

use obs_core::tensor_stats;
use obs_testkit::{
    Activation, BatchReport, EpochReport, LayerInfo, RunConfig, Scenario, TensorView,
    TrainObserver, TrainOutcome, train,
};

/// Per batch: the report plus per-hidden-layer statistics of the forward outputs and the
/// weight-update norms.
#[derive(Debug, Default)]
struct Probe {
    layers: Vec<LayerInfo>,
    batches: Vec<Batch>,
    epochs: Vec<EpochReport>,
    current: Batch,
}

#[derive(Clone, Debug, Default)]
struct Batch {
    report: Option<BatchReport>,
    /// Dead-unit percentage of each hidden layer (units zero for the whole batch).
    dead_pct: Vec<f64>,
    /// Saturation percentage of each hidden layer.
    saturation_pct: Vec<f64>,
    update_norms: Vec<f64>,
}

impl Batch {
    fn report(&self) -> &BatchReport {
        self.report.as_ref().expect("batch_end was called")
    }
    fn at(&self) -> (u64, u64) {
        (self.report().epoch, self.report().batch)
    }
    fn grad(&self, layer: usize) -> f64 {
        self.report().grad_norms[layer].1
    }
}

impl TrainObserver for Probe {
    fn train_start(&mut self, _config: &RunConfig, layers: &[LayerInfo]) {
        self.layers = layers.to_vec();
    }
    fn layer_forward(&mut self, layer: &LayerInfo, output: TensorView<'_>) {
        if layer.index + 1 < self.layers.len() {
            let s = tensor_stats(output, layer.activation);
            self.current.dead_pct.push(s.dead_units_pct().expect("2-D output"));
            self.current.saturation_pct.push(s.saturation_pct());
        }
    }
    fn weight_updated(&mut self, _layer: &LayerInfo, _w: TensorView<'_>, update_norm: f64) {
        self.current.update_norms.push(update_norm);
    }
    fn batch_end(&mut self, report: &BatchReport) {
        self.current.report = Some(report.clone());
        self.batches.push(std::mem::take(&mut self.current));
    }
    fn epoch_end(&mut self, report: &EpochReport) {
        self.epochs.push(report.clone());
    }
}

fn run(scenario: Scenario) -> (Probe, TrainOutcome) {
    let mut probe = Probe::default();
    let outcome = train(&RunConfig::for_scenario(scenario), &mut probe);
    (probe, outcome)
}

fn onset(scenario: Scenario) -> (u64, u64) {
    scenario.expected_onset().expect("pathological scenarios document an onset")
}

#[test]
fn healthy_relu_learns_the_spirals_with_few_dead_units() {
    let (p, out) = run(Scenario::Healthy);
    assert!(!out.diverged);
    assert!(out.final_val_accuracy > 0.95, "{out:?}");
    assert!(out.final_val_loss < 0.1, "{out:?}");
    assert!(p.epochs[0].train_loss > 3.0 * out.final_train_loss, "loss must fall");
    let max_dead = p.batches.iter().flat_map(|b| b.dead_pct.iter().copied()).fold(0.0, f64::max);
    assert!(max_dead < 30.0, "max dead units {max_dead}%");
    let max_grad = p.batches.iter().flat_map(|b| b.report().grad_norms.iter().map(|g| g.1));
    assert!(max_grad.fold(0.0, f64::max) < 10.0);
    // Stable: once learnt (from epoch 4), no batch loss leaves a small absolute band. Relative
    // wobbles near convergence are large (0.002 to 0.02), as in any real run.
    let late = p.batches.iter().filter(|b| b.report().epoch >= 4).map(|b| b.report().loss);
    let worst = late.fold(0.0, f64::max);
    assert!(worst < 0.3, "worst late batch loss {worst}");
    assert_eq!(Scenario::Healthy.expected_onset(), None);
}

#[test]
fn healthy_tanh_learns_with_little_saturation() {
    let (p, out) = run(Scenario::HealthyTanh);
    assert!(!out.diverged);
    assert!(out.final_val_accuracy > 0.9, "{out:?}");
    assert_eq!(p.layers[0].activation, Activation::Tanh);
    assert_eq!(p.layers[1].activation, Activation::Sigmoid);
    let max_sat =
        p.batches.iter().flat_map(|b| b.saturation_pct.iter().copied()).fold(0.0, f64::max);
    assert!(max_sat < 40.0, "max saturation {max_sat}%");
    assert!(p.batches.iter().all(|b| b.dead_pct.iter().all(|&d| d == 0.0)));
}

#[test]
fn dying_relu_kills_most_units_from_its_onset() {
    let (p, out) = run(Scenario::DyingRelu);
    let start = onset(Scenario::DyingRelu);
    assert!(!out.diverged);
    assert!(p.batches[0].dead_pct.iter().all(|&d| d < 10.0), "starts healthy");
    let first =
        p.batches.iter().position(|b| b.dead_pct.iter().all(|&d| d > 50.0)).expect("units die");
    assert_eq!(p.batches[first].at(), start);
    for b in &p.batches[first..] {
        assert!(b.dead_pct.iter().all(|&d| d > 50.0), "{:?}: {:?}", b.at(), b.dead_pct);
    }
}

#[test]
fn exploding_gradients_exceed_100_while_the_loss_is_finite() {
    let (p, out) = run(Scenario::Exploding);
    let first = p
        .batches
        .iter()
        .position(|b| b.report().grad_norms.iter().any(|g| g.1 > 100.0))
        .expect("gradients explode");
    assert_eq!(p.batches[first].at(), onset(Scenario::Exploding));
    assert!(p.batches[..=first].iter().all(|b| b.report().loss.is_finite()));
    let exploded =
        p.batches.iter().filter(|b| b.report().grad_norms.iter().any(|g| g.1 > 100.0)).count();
    assert!(exploded >= 5, "{exploded} batches");
    assert!(!out.diverged, "no NaN in this scenario");
}

#[test]
fn vanishing_gradients_fall_below_1e_minus_7_in_the_first_layers() {
    let (p, out) = run(Scenario::Vanishing);
    assert_eq!(onset(Scenario::Vanishing), (0, 0));
    assert!(!out.diverged);
    for b in &p.batches {
        assert!(b.grad(0) < 1e-7 && b.grad(1) < 1e-7, "{:?}: {}", b.at(), b.grad(0));
        let last = b.report().grad_norms.last().expect("layers").1;
        assert!(last > 1e-3, "the output layer still learns ({last})");
        assert!(b.report().grad_norms.iter().all(|g| g.1.is_finite()));
    }
}

#[test]
fn nan_divergence_reaches_nan_without_panicking_and_keeps_reporting() {
    let config = RunConfig::for_scenario(Scenario::NanDivergence);
    let (p, out) = run(Scenario::NanDivergence);
    assert!(out.diverged);
    assert!(out.final_train_loss.is_nan());
    let first = p.batches.iter().position(|b| !b.report().loss.is_finite()).expect("diverges");
    assert_eq!(p.batches[first].at(), onset(Scenario::NanDivergence));
    assert!(first > 0 && p.batches[..first].iter().all(|b| b.report().loss.is_finite()));
    // Every batch of every epoch is still reported after the divergence.
    let per_epoch = config.train_samples.div_ceil(config.batch_size);
    assert_eq!(p.batches.len(), per_epoch * config.epochs as usize);
    assert_eq!(p.epochs.len(), config.epochs as usize);
    assert!(p.batches.last().expect("batches").report().loss.is_nan());
}

#[test]
fn overfit_validation_loss_climbs_above_training_loss() {
    let (p, out) = run(Scenario::Overfit);
    let ratio: Vec<f64> = p.epochs.iter().map(|e| e.val_loss / e.train_loss).collect();
    let from = (0..ratio.len()).find(|&e| ratio[e..].iter().all(|&r| r > 1.3)).expect("overfits");
    assert_eq!((from as u64, 0), onset(Scenario::Overfit), "ratios {ratio:?}");
    assert!(ratio.len() - from >= 5, "several consecutive epochs");
    assert!(ratio[..3].iter().all(|&r| r < 1.3), "starts healthy: {ratio:?}");
    assert!(out.final_val_loss > 5.0 * out.final_train_loss, "{out:?}");
}

#[test]
fn stagnant_never_changes_a_weight() {
    let (p, _) = run(Scenario::Stagnant);
    assert_eq!(onset(Scenario::Stagnant), (0, 0));
    assert!(p.batches.iter().all(|b| b.update_norms.iter().all(|&u| u == 0.0)));
    assert!(p.batches.iter().all(|b| b.grad(0) > 0.0), "gradients exist, nothing moves");
    let first = p.epochs[0].val_loss;
    assert!(p.epochs.iter().all(|e| e.val_loss == first), "validation loss is flat");
    let t0 = p.epochs[0].train_loss;
    assert!(p.epochs.iter().all(|e| (e.train_loss - t0).abs() < 1e-9));
}

#[test]
fn loss_spike_jumps_far_above_the_rolling_baseline_once() {
    let (p, out) = run(Scenario::LossSpike);
    let at = onset(Scenario::LossSpike);
    assert_eq!(RunConfig::for_scenario(Scenario::LossSpike).inject_spike_at, Some(at));
    assert!(!out.diverged);
    assert!(out.final_val_accuracy > 0.95, "recovers: {out:?}");
    let i = p.batches.iter().position(|b| b.at() == at).expect("spike batch exists");
    let base = |j: usize| p.batches[j - 10..j].iter().map(|b| b.report().loss).sum::<f64>() / 10.0;
    let loss = |j: usize| p.batches[j].report().loss;
    assert!(loss(i) > 5.0 * base(i), "spike {} over baseline {}", loss(i), base(i));
    for j in (10..p.batches.len()).filter(|&j| j != i) {
        assert!(loss(j) < 2.0 * base(j) + 0.05, "second spike at {:?}", p.batches[j].at());
    }
}

#[test]
fn every_default_config_is_small() {
    for s in Scenario::ALL {
        let c = RunConfig::for_scenario(s);
        assert_eq!(c.scenario, s);
        let batches = c.train_samples.div_ceil(c.batch_size) as u64 * c.epochs;
        assert!(batches <= 400, "{s}: {batches} batches");
        assert!(c.parameter_count() < 50_000, "{s}");
    }
}

#[test]
fn same_seed_gives_bit_identical_runs_and_another_seed_differs() {
    let losses = |config: &RunConfig| {
        let mut p = Probe::default();
        train(config, &mut p);
        p.batches
            .iter()
            .map(|b| (b.report().loss.to_bits(), b.grad(0).to_bits()))
            .collect::<Vec<_>>()
    };
    for s in [Scenario::Healthy, Scenario::NanDivergence] {
        let mut c = RunConfig::for_scenario(s);
        c.epochs = 3;
        assert_eq!(losses(&c), losses(&c), "{s}");
        let a = losses(&c);
        c.seed += 1;
        assert_ne!(losses(&c), a, "{s}");
    }
}
