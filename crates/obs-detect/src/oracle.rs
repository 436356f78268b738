//! The labels: which problems a run really had, decided from its [`Evidence`] with hindsight.
//!
//! The oracle looks at the whole run at once (every batch, every epoch, every training sample
//! of an epoch) and never at what a rule engine said. Each [`Problem`] has a written definition
//! (the `definition` text, also in `docs/health.md`), the step where it started, and the names
//! of the findings that count as reporting it.

use obs_core::Activation;

use crate::evidence::Evidence;

/// A problem a run can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Problem {
    /// At least half of a ReLU hidden layer's units output 0 for every training sample of a
    /// whole epoch.
    DyingRelu,
    /// The loss escaped upwards: it became non-finite or exploded after a sustained rise.
    Divergence,
    /// A batch loss was NaN or infinite.
    NonFiniteLoss,
    /// A finite gradient norm above 100 while the loss was finite.
    ExplodingGradient,
    /// A layer's typical gradient is a million times smaller than the output layer's.
    VanishingGradient,
    /// At least half of a tanh/sigmoid hidden layer's outputs over a whole epoch were
    /// saturated.
    Saturation,
    /// Validation loss climbed well above its best while training loss kept falling.
    Overfitting,
    /// A layer's weight updates were below 1e-6 in at least 90% of the batches.
    WeightStagnation,
    /// The training loss stayed at its first epoch's level for five epochs.
    LossPlateau,
    /// One batch was corrupted and its loss jumped far above its neighbours.
    CorruptedBatch,
}

impl Problem {
    /// Every problem.
    pub const ALL: [Problem; 10] = [
        Problem::DyingRelu,
        Problem::Divergence,
        Problem::NonFiniteLoss,
        Problem::ExplodingGradient,
        Problem::VanishingGradient,
        Problem::Saturation,
        Problem::Overfitting,
        Problem::WeightStagnation,
        Problem::LossPlateau,
        Problem::CorruptedBatch,
    ];

    /// Kebab-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Problem::DyingRelu => "dying-relu",
            Problem::Divergence => "divergence",
            Problem::NonFiniteLoss => "non-finite-loss",
            Problem::ExplodingGradient => "exploding-gradient",
            Problem::VanishingGradient => "vanishing-gradient",
            Problem::Saturation => "saturation",
            Problem::Overfitting => "overfitting",
            Problem::WeightStagnation => "weight-stagnation",
            Problem::LossPlateau => "loss-plateau",
            Problem::CorruptedBatch => "corrupted-batch",
        }
    }

    /// Finding names (health rule names and adaptive trigger names) that report the problem.
    pub const fn detected_by(self) -> &'static [&'static str] {
        match self {
            Problem::DyingRelu => &["dead_relu", "dead_neurons"],
            Problem::Divergence => &["loss_divergence"],
            Problem::NonFiniteLoss => &["nan_inf_loss", "nan_inf"],
            Problem::ExplodingGradient => &["exploding_gradient"],
            Problem::VanishingGradient => &["vanishing_gradient"],
            Problem::Saturation => &["activation_saturation"],
            Problem::Overfitting => &["overfitting"],
            Problem::WeightStagnation => &["weight_stagnation", "dead_weights"],
            Problem::LossPlateau => &["loss_stagnation"],
            Problem::CorruptedBatch => &["gradient_spike", "loss_spike"],
        }
    }

    /// Finding names that are true consequences of the problem: not how it is reported, but
    /// not false alarms either when the problem is present.
    pub const fn consequences(self) -> &'static [&'static str] {
        match self {
            // Dead units pass no gradient, so their weights stop moving.
            Problem::DyingRelu => &["vanishing_gradient", "weight_stagnation", "dead_weights"],
            Problem::Divergence => &[
                "exploding_gradient",
                "gradient_spike",
                "loss_spike",
                "nan_inf_loss",
                "gradient_nan_inf",
                "nan_inf_tensor",
                "nan_inf",
            ],
            Problem::NonFiniteLoss => &["gradient_nan_inf", "nan_inf_tensor"],
            Problem::ExplodingGradient => &["gradient_spike", "loss_spike"],
            Problem::VanishingGradient => &["weight_stagnation", "dead_weights"],
            Problem::Saturation => &["vanishing_gradient", "weight_stagnation"],
            Problem::Overfitting | Problem::WeightStagnation | Problem::LossPlateau => &[],
            Problem::CorruptedBatch => &[],
        }
    }

    /// Conditions that persist once present (the "chronic" ones: dying ReLU,
    /// saturation, vanishing gradients, weights that do not move, a loss that does not move):
    /// the adaptive logger must save at least 70% against always-EXPERT logging on such runs.
    /// A blow-up is an episode, not a condition: its run must only never cost more than EXPERT.
    pub const fn is_chronic(self) -> bool {
        matches!(
            self,
            Problem::DyingRelu
                | Problem::VanishingGradient
                | Problem::Saturation
                | Problem::WeightStagnation
                | Problem::LossPlateau
        )
    }

    /// The written definition.
    pub const fn definition(self) -> &'static str {
        match self {
            Problem::DyingRelu => {
                "a ReLU hidden layer has at least half of its units at exactly 0 for every \
                 training sample of one whole epoch (all losses of the epoch finite); onset: the \
                 epoch's first batch"
            }
            Problem::Divergence => {
                "the loss escapes: the batches right before the first non-finite loss, or 10 \
                 consecutive batches, all sit above both the first batch's loss and 3x the best \
                 loss before them, and the last of them is at least 100x that best loss; onset: \
                 the first of those batches"
            }
            Problem::NonFiniteLoss => "a batch loss is NaN or infinite; onset: that batch",
            Problem::ExplodingGradient => {
                "a layer's gradient norm is finite and above 100 in a batch before the first \
                 non-finite loss; onset: the first such batch"
            }
            Problem::VanishingGradient => {
                "over the batches before the first non-finite loss (at least 10), a layer's median \
                 gradient norm is below 1e-6 times the output layer's median gradient norm; \
                 onset: the first batch"
            }
            Problem::Saturation => {
                "at least half of all outputs of a tanh/sigmoid hidden layer over one whole epoch \
                 (all losses finite) are saturated (tanh |a| > 0.99, sigmoid a < 0.01 or \
                 a > 0.99: the derivative there is below 2% of its maximum); onset: the epoch's \
                 first batch"
            }
            Problem::Overfitting => {
                "on 3-epoch moving averages of the training and validation losses: after the \
                 epoch of the lowest averaged validation loss, an epoch whose averaged validation \
                 loss is at least 1.2x that lowest, whose averaged training loss is below the one \
                 at that epoch, with averaged val/train >= 1.3 and val - train >= 0.1; onset: the \
                 last batch of that epoch"
            }
            Problem::WeightStagnation => {
                "a layer's weight-update norm is below 1e-6 in at least 90% of the batches with \
                 a finite loss (at least 5 of them); onset: the fifth consecutive small update"
            }
            Problem::LossPlateau => {
                "5 consecutive epochs whose training losses are all finite and within 5% of the \
                 first epoch's: the model is not learning; onset: the last batch of the fifth"
            }
            Problem::CorruptedBatch => {
                "the run corrupted a batch on purpose, and that batch's loss is at least 5x the \
                 median of the 10 batches before it; onset: that batch"
            }
        }
    }
}

/// A problem found in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// The problem.
    pub problem: Problem,
    /// The step (run-wide batch index) where it started.
    pub onset: usize,
    /// The layer concerned, for layer problems.
    pub layer: Option<String>,
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every problem of the run, each once (the earliest occurrence), in [`Problem::ALL`] order.
pub fn label(e: &Evidence) -> Vec<Label> {
    let mut out = Vec::new();
    let finite_until = e.first_non_finite_loss().unwrap_or(e.batches.len());
    let hidden = e.layers.len().saturating_sub(1);
    let name = |l: usize| e.layers.get(l).map(|l| l.name.clone());

    // Dying ReLU and saturation: whole-epoch evidence, epochs with finite losses only.
    let finite_epoch = |ep: &crate::evidence::EpochEvidence| {
        ep.finite_outputs && ep.last_step < finite_until && ep.train_loss.is_finite()
    };
    let dying = e.epochs.iter().filter(|ep| finite_epoch(ep)).find_map(|ep| {
        (0..hidden)
            .find(|&l| ep.dead_all_inputs[l].is_some_and(|d| d >= 0.5))
            .map(|l| (ep.first_step, l))
    });
    if let Some((onset, l)) = dying {
        out.push(Label { problem: Problem::DyingRelu, onset, layer: name(l) });
    }

    // Divergence: a sustained escape above the starting loss and the best loss so far.
    if let Some(onset) = divergence_onset(e, finite_until) {
        out.push(Label { problem: Problem::Divergence, onset, layer: None });
    }
    if finite_until < e.batches.len() {
        out.push(Label { problem: Problem::NonFiniteLoss, onset: finite_until, layer: None });
    }

    let exploding = e.batches[..finite_until].iter().enumerate().find_map(|(s, b)| {
        b.grads.iter().position(|g| g.is_finite() && *g > 100.0).map(|l| (s, l))
    });
    if let Some((onset, l)) = exploding {
        out.push(Label { problem: Problem::ExplodingGradient, onset, layer: name(l) });
    }

    let typical = |l: usize| {
        let norms: Vec<f64> = e.batches[..finite_until].iter().map(|b| b.grads[l]).collect();
        median(&norms)
    };
    if finite_until >= 10 && !e.layers.is_empty() {
        let output = typical(e.layers.len() - 1);
        let vanishing = (0..e.layers.len() - 1).find(|&l| typical(l) < 1e-6 * output);
        if let Some(l) = vanishing {
            out.push(Label { problem: Problem::VanishingGradient, onset: 0, layer: name(l) });
        }
    }

    let saturated = e.epochs.iter().filter(|ep| finite_epoch(ep)).find_map(|ep| {
        (0..hidden)
            .find(|&l| {
                matches!(e.layers[l].activation, Activation::Tanh | Activation::Sigmoid)
                    && ep.saturated[l].is_some_and(|s| s >= 0.5)
            })
            .map(|l| (ep.first_step, l))
    });
    if let Some((onset, l)) = saturated {
        out.push(Label { problem: Problem::Saturation, onset, layer: name(l) });
    }

    if let Some(onset) = overfitting_onset(e) {
        out.push(Label { problem: Problem::Overfitting, onset, layer: None });
    }

    let stagnant = (0..e.layers.len()).find_map(|l| {
        let updates: Vec<f64> = e.batches[..finite_until].iter().map(|b| b.updates[l]).collect();
        let small = updates.iter().filter(|u| **u < 1e-6).count();
        if updates.len() < 5 || (small as f64) < 0.9 * updates.len() as f64 {
            return None;
        }
        let mut run = 0;
        updates
            .iter()
            .position(|u| {
                run = if *u < 1e-6 { run + 1 } else { 0 };
                run >= 5
            })
            .map(|s| (s, l))
    });
    if let Some((onset, l)) = stagnant {
        out.push(Label { problem: Problem::WeightStagnation, onset, layer: name(l) });
    }

    if let Some(first) = e.epochs.first().map(|ep| ep.train_loss).filter(|l| l.is_finite()) {
        let level = |ep: &&crate::evidence::EpochEvidence| {
            ep.train_loss.is_finite() && (ep.train_loss - first).abs() <= 0.05 * first.abs()
        };
        let mut run = 0;
        let plateau = e.epochs.iter().find(|ep| {
            run = if level(ep) { run + 1 } else { 0 };
            run >= 5
        });
        if let Some(ep) = plateau {
            out.push(Label { problem: Problem::LossPlateau, onset: ep.last_step, layer: None });
        }
    }

    let corrupted = e.corrupted.and_then(|(ep, b)| e.step_of(ep, b)).filter(|&s| {
        let before: Vec<f64> = e.batches[s.saturating_sub(10)..s].iter().map(|b| b.loss).collect();
        let m = median(&before);
        s < finite_until && m.is_finite() && e.batches[s].loss >= 5.0 * m
    });
    if let Some(onset) = corrupted {
        out.push(Label { problem: Problem::CorruptedBatch, onset, layer: None });
    }
    out
}

/// The first step of the loss's final escape, if it escaped.
fn divergence_onset(e: &Evidence, finite_until: usize) -> Option<usize> {
    let losses: Vec<f64> = e.batches[..finite_until].iter().map(|b| b.loss).collect();
    let initial = *losses.first()?;
    // escaped[s]: the loss at s is above the initial loss and 3x the best loss before s.
    let mut best = f64::INFINITY;
    let mut bests = Vec::with_capacity(losses.len());
    let escaped: Vec<bool> = losses
        .iter()
        .map(|&l| {
            let up = best.is_finite() && l > initial && l > 3.0 * best;
            bests.push(best);
            if !up {
                best = best.min(l);
            }
            up
        })
        .collect();
    let starts = |end: usize| {
        let mut s = end;
        while s > 0 && escaped[s - 1] {
            s -= 1;
        }
        s
    };
    let big = |s: usize, end: usize| losses[end - 1] >= 100.0 * bests[s];
    // The batches right before the first non-finite loss.
    if finite_until < e.batches.len() && finite_until > 0 && escaped[finite_until - 1] {
        let s = starts(finite_until);
        if big(s, finite_until) {
            return Some(s);
        }
    }
    // Or any 10 consecutive escaped batches.
    let mut run = 0;
    for (i, &up) in escaped.iter().enumerate() {
        run = if up { run + 1 } else { 0 };
        if run >= 10 && big(i + 1 - run, i + 1) {
            return Some(i + 1 - run);
        }
    }
    None
}

fn overfitting_onset(e: &Evidence) -> Option<usize> {
    let epochs: Vec<_> =
        e.epochs.iter().filter(|ep| ep.train_loss.is_finite() && ep.val_loss.is_finite()).collect();
    // (averaged train, averaged val, last step) for every epoch with two epochs before it.
    let smooth: Vec<(f64, f64, usize)> = epochs
        .windows(3)
        .map(|w| {
            let t = w.iter().map(|ep| ep.train_loss).sum::<f64>() / 3.0;
            let v = w.iter().map(|ep| ep.val_loss).sum::<f64>() / 3.0;
            (t, v, w[2].last_step)
        })
        .collect();
    let (best, _) = smooth.iter().enumerate().min_by(|a, b| a.1.1.total_cmp(&b.1.1))?;
    let (best_train, best_val, _) = smooth[best];
    smooth[best + 1..]
        .iter()
        .find(|&&(t, v, _)| v >= 1.2 * best_val && t < best_train && v >= 1.3 * t && v - t >= 0.1)
        .map(|&(_, _, step)| step)
}

#[cfg(test)]
mod tests {
    use obs_testkit::LayerInfo;

    use super::*;
    use crate::evidence::{BatchEvidence, EpochEvidence};

    /// A two-layer run (ReLU hidden, linear output) with these batch losses, 4 batches an
    /// epoch, ordinary gradients and updates.
    fn run(losses: &[f64]) -> Evidence {
        let layers = vec![
            LayerInfo { index: 0, name: "dense_0".into(), activation: Activation::Relu },
            LayerInfo { index: 1, name: "dense_1".into(), activation: Activation::Linear },
        ];
        let batches = losses
            .iter()
            .enumerate()
            .map(|(s, &loss)| BatchEvidence {
                epoch: s as u64 / 4,
                batch: s as u64 % 4,
                loss,
                grads: vec![0.1, 0.2],
                updates: vec![1e-3, 1e-3],
            })
            .collect();
        let epochs = losses
            .chunks(4)
            .enumerate()
            .map(|(e, l)| EpochEvidence {
                epoch: e as u64,
                train_loss: l.iter().sum::<f64>() / l.len() as f64,
                val_loss: l.iter().sum::<f64>() / l.len() as f64 * 1.1,
                first_step: e * 4,
                last_step: e * 4 + l.len() - 1,
                dead_all_inputs: vec![Some(0.1), None],
                saturated: vec![None, None],
                mean_slope: vec![None, None],
                finite_outputs: l.iter().all(|x| x.is_finite()),
            })
            .collect();
        Evidence { layers, batches, epochs, corrupted: None, classes: 2 }
    }

    fn problems(e: &Evidence) -> Vec<Problem> {
        label(e).into_iter().map(|l| l.problem).collect()
    }

    #[test]
    fn a_learning_run_has_no_problem() {
        let losses: Vec<f64> = (0..40).map(|i| 0.7 * 0.93f64.powi(i)).collect();
        assert!(problems(&run(&losses)).is_empty());
    }

    #[test]
    fn a_blow_up_is_divergence_from_its_escape_and_non_finite_at_its_nan() {
        let mut losses = vec![1.0, 0.6, 0.4, 0.3];
        losses.extend([4.0, 300.0, 1e5, f64::NAN, f64::NAN]);
        let labels = label(&run(&losses));
        let find = |p| labels.iter().find(|l| l.problem == p).map(|l| l.onset);
        assert_eq!(find(Problem::Divergence), Some(4));
        assert_eq!(find(Problem::NonFiniteLoss), Some(7));
        // One high batch that recovers is neither.
        let mut losses = vec![1.0, 0.6, 0.4, 0.3, 8.0, 0.3, 0.3, 0.3];
        losses.extend(vec![0.25; 12]);
        assert!(problems(&run(&losses)).is_empty());
    }

    #[test]
    fn five_epochs_at_the_first_epochs_level_are_a_plateau() {
        let losses: Vec<f64> =
            (0..24).map(|i| 1.0986 + if i % 2 == 0 { 0.005 } else { -0.005 }).collect();
        let labels = label(&run(&losses));
        assert_eq!(labels.len(), 1);
        assert_eq!((labels[0].problem, labels[0].onset), (Problem::LossPlateau, 19));
    }

    #[test]
    fn overfitting_is_judged_on_three_epoch_averages() {
        let mut e = run(&vec![0.5; 40]);
        let curve = [(0.9, 0.9), (0.6, 0.7), (0.5, 0.6), (0.4, 0.6), (0.3, 0.7), (0.2, 0.8)];
        for (ep, (t, v)) in
            e.epochs.iter_mut().zip(curve.into_iter().chain(std::iter::repeat((0.1, 0.9))))
        {
            ep.train_loss = t;
            ep.val_loss = v;
        }
        // Averages: lowest validation 0.633 (epochs 1-3); epochs 3-5 average 0.70 (10%
        // higher), epochs 4-6 0.80 (26%): onset at epoch 6's last batch.
        let labels = label(&e);
        assert_eq!(
            labels.iter().map(|l| (l.problem, l.onset)).collect::<Vec<_>>(),
            [(Problem::Overfitting, 27)]
        );
    }

    #[test]
    fn half_the_units_dead_on_every_input_of_an_epoch_is_dying_relu() {
        let mut e = run(&(0..20).map(|i| 0.7 * 0.9f64.powi(i)).collect::<Vec<_>>());
        e.epochs[2].dead_all_inputs[0] = Some(0.5);
        let labels = label(&e);
        assert_eq!(labels.len(), 1);
        assert_eq!(
            (labels[0].problem, labels[0].onset, labels[0].layer.as_deref()),
            (Problem::DyingRelu, 8, Some("dense_0"))
        );
    }
}
