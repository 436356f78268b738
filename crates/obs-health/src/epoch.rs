//! The epoch detectors: overfitting and loss stagnation, as plain state machines.

use obs_core::stats::RollingWindow;

use crate::WarningConfig;
use crate::loss::median;

/// An overfitting verdict, on losses averaged over the last `overfit_patience` epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Overfit {
    pub(crate) train: f64,
    pub(crate) val: f64,
    /// The lowest averaged validation loss so far, and the averaged training loss then.
    pub(crate) best_val: f64,
    pub(crate) train_at_best: f64,
    pub(crate) epochs: usize,
}

/// A stagnation verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stagnation {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
    pub(crate) first: f64,
    pub(crate) epochs: usize,
}

/// State of the epoch detectors.
#[derive(Debug)]
pub(crate) struct EpochRules {
    /// The last `overfit_patience` finite `(train, val)` pairs.
    recent: std::collections::VecDeque<(f64, f64)>,
    /// `(val, train)` medians when the median validation loss was lowest.
    best: Option<(f64, f64)>,
    /// Consecutive epochs that looked overfit.
    run: usize,
    /// Recent finite epoch training losses.
    losses: RollingWindow,
    /// The first finite epoch training loss of the run.
    first: Option<f64>,
}

impl EpochRules {
    pub(crate) fn new(c: &WarningConfig) -> Self {
        EpochRules {
            recent: std::collections::VecDeque::with_capacity(c.overfit_patience),
            best: None,
            run: 0,
            losses: RollingWindow::new(c.loss_stagnation_patience),
            first: None,
        }
    }

    /// Judges an epoch with a validation loss, on the averages of the last
    /// `overfit_patience` epochs: a noisy validation set makes single epochs jump by 50%.
    /// Non-finite or non-positive losses have no meaningful ratio and restart the average.
    pub(crate) fn overfitting(
        &mut self,
        train: f64,
        val: f64,
        c: &WarningConfig,
    ) -> Option<Overfit> {
        if !(train.is_finite() && train > 0.0 && val.is_finite()) {
            self.recent.clear();
            self.run = 0;
            return None;
        }
        let latest_train = train;
        if self.recent.len() == c.overfit_patience {
            self.recent.pop_front();
        }
        self.recent.push_back((train, val));
        let n = self.recent.len();
        if n < c.overfit_patience {
            return None;
        }
        // Medians: one wild epoch (an unstable step, a noisy validation set) cannot make or
        // break the verdict.
        let mut scratch = [0.0f64; 16];
        let (train, val) = if n <= scratch.len() {
            let s = &mut scratch[..n];
            s.iter_mut().zip(&self.recent).for_each(|(d, p)| *d = p.0);
            let train = median(s);
            s.iter_mut().zip(&self.recent).for_each(|(d, p)| *d = p.1);
            (train, median(s))
        } else {
            let mut v: Vec<f64> = self.recent.iter().map(|p| p.0).collect();
            let train = median(&mut v);
            v.iter_mut().zip(&self.recent).for_each(|(d, p)| *d = p.1);
            (train, median(&mut v))
        };
        let (best_val, train_at_best) = match self.best {
            Some((v, t)) if v <= val => (v, t),
            _ => {
                self.best = Some((val, train));
                (val, train)
            }
        };
        // Training must still be improving, this epoch included: when both losses jump, the
        // training is unstable, not memorising.
        let rising = c.overfit_min_rise == 0.0
            || (val >= (1.0 + c.overfit_min_rise) * best_val
                && train < train_at_best
                && latest_train < train_at_best);
        let over = val / train > c.overfit_ratio && val - train > c.overfit_min_gap && rising;
        self.run = if over { self.run + 1 } else { 0 };
        (self.run >= c.overfit_patience).then_some(Overfit {
            train,
            val,
            best_val,
            train_at_best,
            epochs: self.run + n - 1,
        })
    }

    /// Judges an epoch's training loss for stagnation. A non-finite loss empties the window.
    pub(crate) fn stagnation(&mut self, train: f64, c: &WarningConfig) -> Option<Stagnation> {
        if !train.is_finite() {
            self.losses.clear();
            return None;
        }
        let first = *self.first.get_or_insert(train);
        self.losses.push(train);
        if !self.losses.is_full() {
            return None;
        }
        let (min, max, mean) = (self.losses.min(), self.losses.max(), self.losses.mean());
        let range = max - min;
        let flat =
            range < c.loss_stagnation_delta || range < c.loss_stagnation_rel_delta * mean.abs();
        // Only a loss still near where it started is stuck; a low flat loss has converged.
        let stuck = train.abs() >= c.loss_stagnation_max_progress * first.abs();
        (flat && stuck).then_some(Stagnation { min, max, mean, first, epochs: self.losses.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_gap_with_rising_validation_loss_is_overfitting() {
        let c = WarningConfig::default();
        let mut r = EpochRules::new(&c);
        let epochs = [
            (0.9, 0.8),
            (0.6, 0.6),
            (0.5, 0.55),
            (0.4, 0.7),
            (0.3, 0.8),
            (0.2, 0.9),
            (0.15, 1.0),
            (0.1, 1.1),
        ];
        let found: Vec<_> = epochs.iter().map(|&(t, v)| r.overfitting(t, v, &c)).collect();
        // Medians (0.4, 0.7) against the lowest median (0.6, 0.6) at epoch 4: 17% higher, not
        // yet 20%; epochs 5, 6 and 7 qualify, so the third of them fires.
        assert!(found[..7].iter().all(Option::is_none), "{found:?}");
        let o = found[7].expect("three consecutive epochs");
        assert_eq!(o.epochs, 5);
        assert_eq!((o.best_val, o.train_at_best, o.val, o.train), (0.6, 0.6, 1.0, 0.15));
    }

    #[test]
    fn one_wild_epoch_is_not_overfitting() {
        let c = WarningConfig::default();
        let mut r = EpochRules::new(&c);
        let epochs = [
            (1.5, 0.3),
            (0.23, 0.2),
            (0.1, 0.11),
            (0.096, 0.67),
            (0.25, 0.18),
            (0.11, 0.1),
            (0.16, 0.33),
            (0.48, 0.33),
            (0.25, 0.23),
        ];
        assert!(epochs.iter().all(|&(t, v)| r.overfitting(t, v, &c).is_none()));
    }

    #[test]
    fn a_noisy_validation_loss_is_not_overfitting() {
        let c = WarningConfig::default();
        let mut r = EpochRules::new(&c);
        // Validation loss swings 0.1 <-> 0.35 around a flat level while training improves.
        for i in 0..20 {
            let t = 0.3 * 0.9f64.powi(i);
            let v = if i % 3 == 0 { 0.1 } else { 0.2 + 0.05 * f64::from(i % 2) };
            assert_eq!(r.overfitting(t, v, &c), None, "epoch {i}");
        }
    }

    #[test]
    fn a_steady_generalisation_gap_is_not() {
        let c = WarningConfig::default();
        let mut r = EpochRules::new(&c);
        // val/train = 2 with a gap of 0.3 every epoch, but validation loss keeps improving.
        for i in 0..10 {
            let t = 0.5 - 0.02 * f64::from(i);
            assert_eq!(r.overfitting(t, t + 0.3, &c), None);
        }
    }

    #[test]
    fn a_noisy_plateau_at_the_initial_loss_is_stagnation() {
        let c = WarningConfig::default();
        let mut r = EpochRules::new(&c);
        let losses = [1.0986, 1.0991, 1.0979, 1.0988, 1.0983];
        let found: Vec<_> = losses.iter().map(|&l| r.stagnation(l, &c)).collect();
        assert!(found[4].is_some(), "{found:?}");
    }

    #[test]
    fn a_converging_loss_is_not_stagnation_however_small() {
        let c = WarningConfig::default();
        let mut r = EpochRules::new(&c);
        assert_eq!(r.stagnation(0.7, &c), None);
        // 4e-4 falling 5% per epoch: tiny absolute changes, far below the start.
        for i in 0..10 {
            assert_eq!(r.stagnation(4e-4 * 0.95f64.powi(i), &c), None);
        }
        // Converged and flat: still not stagnation.
        for _ in 0..10 {
            assert_eq!(r.stagnation(1e-3, &c), None);
        }
    }
}
