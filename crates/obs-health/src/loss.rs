//! The batch-loss detectors: spikes and divergence (fast and slow), as plain state machines.
//! The engine feeds them finite losses and turns their verdicts into warnings.

use obs_core::stats::RollingWindow;

use crate::WarningConfig;

/// Median of `values` (reordered in place); NaN when empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lower, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        below / 2.0 + upper / 2.0
    }
}

/// A loss far above every recent loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spike {
    pub(crate) loss: f64,
    /// The highest finite loss of the window before it.
    pub(crate) recent_max: f64,
}

/// Why the loss is diverging.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Divergence {
    /// Consecutive losses each above the first loss and `fast_factor` x the recent median of
    /// the losses that did not escape, each higher than the last: a blow-up in progress.
    Fast { loss: f64, reference: f64, first: f64, steps: usize },
    /// The median of the newer half of the window is `factor` x the older half's and above
    /// the run's initial level.
    Slow { loss: f64, older: f64, recent: f64, initial: f64, window: usize },
}

/// State of the loss detectors.
#[derive(Debug)]
pub(crate) struct LossRules {
    /// Recent finite losses that were not spikes: the spike baseline.
    spike_window: RollingWindow,
    /// A spike kept out of the baseline; it joins it if the next loss is high too (a level
    /// shift, not a one-batch spike).
    held_spike: Option<f64>,
    /// The first finite loss of the run.
    first: Option<f64>,
    /// Recent losses that did not escape: the fast divergence reference.
    fast_window: RollingWindow,
    /// Consecutive escaping losses, and the last of them.
    escapes: usize,
    last_escape: f64,
    /// Recent finite losses: the slow divergence window.
    slow_window: RollingWindow,
    /// Median of the first full slow window: the run's initial level.
    initial_level: Option<f64>,
    /// Reused buffer for medians, so judging allocates nothing.
    scratch: Vec<f64>,
}

impl LossRules {
    pub(crate) fn new(c: &WarningConfig) -> Self {
        let scratch = c.loss_divergence_window.max(c.loss_spike_window);
        LossRules {
            spike_window: RollingWindow::new(c.loss_spike_window),
            held_spike: None,
            first: None,
            fast_window: RollingWindow::new(c.loss_divergence_window),
            escapes: 0,
            last_escape: f64::NAN,
            slow_window: RollingWindow::new(c.loss_divergence_window),
            initial_level: None,
            scratch: Vec::with_capacity(scratch),
        }
    }

    /// Judges a finite `loss` for divergence and adds it to the divergence windows.
    pub(crate) fn divergence(&mut self, loss: f64, c: &WarningConfig) -> Option<Divergence> {
        // Both run every time, so each window sees every loss.
        let fast = self.fast(loss, c);
        let slow = self.slow(loss, c);
        fast.or(slow)
    }

    fn fast(&mut self, loss: f64, c: &WarningConfig) -> Option<Divergence> {
        let Some(first) = self.first else {
            self.first = Some(loss);
            self.fast_window.push(loss);
            return None;
        };
        self.scratch.clear();
        self.scratch.extend(self.fast_window.iter());
        let reference = median(&mut self.scratch);
        let escaping = loss > first && loss > c.loss_divergence_fast_factor * reference;
        if !escaping {
            self.escapes = 0;
            self.fast_window.push(loss);
            return None;
        }
        // Escaping losses stay out of the reference, so a blow-up is judged against the level
        // it left; each step must climb, or the run starts over from this loss.
        self.escapes =
            if self.escapes > 0 && loss > self.last_escape { self.escapes + 1 } else { 1 };
        self.last_escape = loss;
        (self.escapes >= c.loss_divergence_fast_steps).then_some(Divergence::Fast {
            loss,
            reference,
            first,
            steps: self.escapes,
        })
    }

    fn slow(&mut self, loss: f64, c: &WarningConfig) -> Option<Divergence> {
        self.slow_window.push(loss);
        if !self.slow_window.is_full() {
            return None;
        }
        let initial = match self.initial_level {
            Some(level) => level,
            None => {
                self.scratch.clear();
                self.scratch.extend(self.slow_window.iter());
                let level = median(&mut self.scratch);
                self.initial_level = Some(level);
                level
            }
        };
        let factor = c.loss_divergence_factor;
        // Cheap necessary condition first: the older median is at least the window minimum.
        if loss <= factor * self.slow_window.min() {
            return None;
        }
        let n = self.slow_window.len();
        let older_len = n / 2;
        self.scratch.clear();
        self.scratch.extend(self.slow_window.iter().take(older_len));
        let older = median(&mut self.scratch);
        self.scratch.clear();
        self.scratch.extend(self.slow_window.iter().skip(older_len));
        let recent = median(&mut self.scratch);
        let floor = c.loss_divergence_min_fraction * initial;
        (older > 0.0 && recent > factor * older && loss > factor * older && recent >= floor)
            .then_some(Divergence::Slow { loss, older, recent, initial, window: n })
    }

    /// Judges a finite `loss` for a spike and adds it to the spike baseline (unless it is one).
    pub(crate) fn spike(&mut self, loss: f64, c: &WarningConfig) -> Option<Spike> {
        let spike = self.would_spike(loss, c);
        match (spike, self.held_spike.take()) {
            (Some(s), None) => {
                self.held_spike = Some(loss);
                return Some(s);
            }
            // Two high losses in a row: the level moved. Both join the baseline.
            (Some(_), Some(held)) => {
                self.spike_window.push(held);
            }
            (None, _) => {}
        }
        self.spike_window.push(loss);
        None
    }

    /// Whether `loss` counts as a spike now, without changing any state: far above every
    /// recent loss, or well above every recent loss and worse than where training started.
    pub(crate) fn would_spike(&self, loss: f64, c: &WarningConfig) -> Option<Spike> {
        let w = &self.spike_window;
        let recent_max = w.max();
        if w.len() < c.loss_spike_min_history || !recent_max.is_finite() {
            return None;
        }
        let far = loss > recent_max * (1.0 + c.loss_spike_pct / 100.0);
        let worse_than_start = self.first.is_some_and(|first| {
            loss > c.loss_spike_start_factor * first
                && loss > recent_max * (1.0 + c.loss_spike_start_pct / 100.0)
        });
        (far || worse_than_start).then_some(Spike { loss, recent_max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
        assert_eq!(median(&mut [f64::MAX, f64::MAX]), f64::MAX);
    }

    fn run(losses: &[f64]) -> Vec<Option<Divergence>> {
        let c = WarningConfig::default();
        let mut r = LossRules::new(&c);
        losses.iter().map(|&l| r.divergence(l, &c)).collect()
    }

    #[test]
    fn a_blow_up_is_caught_on_its_second_climbing_step() {
        // The shape of a learning rate 100x too high: 1.1 -> 43 -> 7.6e3 -> 1e15 -> NaN.
        let verdicts = run(&[1.1, 43.0, 7.6e3, 1e15]);
        assert_eq!(verdicts[1], None);
        assert!(matches!(verdicts[2], Some(Divergence::Fast { steps: 2, .. })), "{verdicts:?}");
    }

    #[test]
    fn a_blow_up_from_a_low_loss_is_judged_against_where_it_left() {
        let verdicts = run(&[1.04, 0.049, 0.014, 0.289, 67.7, 312.0]);
        assert!(verdicts[..5].iter().all(Option::is_none), "{verdicts:?}");
        assert!(matches!(verdicts[5], Some(Divergence::Fast { .. })));
    }

    #[test]
    fn one_high_batch_or_a_high_plateau_that_does_not_climb_is_not_a_blow_up() {
        // A corrupted batch at convergence: far above the reference, once.
        let mut losses = vec![0.7, 0.3, 0.1, 0.06, 0.05, 0.05, 4.4, 0.05, 0.04, 0.05];
        assert!(run(&losses).iter().all(Option::is_none));
        // High but never above the first loss.
        losses = vec![5.0, 0.1, 0.1, 2.0, 3.0, 4.0];
        assert!(run(&losses).iter().all(Option::is_none));
    }

    #[test]
    fn a_slow_climb_above_the_initial_level_is_divergence() {
        let mut losses: Vec<f64> = (0..20).map(|i| 1.0 - 0.01 * f64::from(i)).collect();
        losses.extend((0..20).map(|i| 0.8 * 1.2f64.powi(i)));
        let found = run(&losses);
        assert!(found.iter().any(|v| matches!(v, Some(Divergence::Slow { .. }))), "{found:?}");
    }

    #[test]
    fn a_slow_climb_far_below_the_initial_level_is_not() {
        // 0.05 -> 0.2 after starting at 1.0: a bad patch, still far better than the start.
        let mut losses: Vec<f64> = vec![1.0; 20];
        losses.extend(vec![0.05; 20]);
        losses.extend(vec![0.2; 20]);
        assert!(run(&losses).iter().all(Option::is_none));
    }

    #[test]
    fn a_loss_worse_than_the_start_needs_less_of_a_jump() {
        let c = WarningConfig::default();
        let mut r = LossRules::new(&c);
        // Divergence tracking records the first loss (0.69, an untrained two-class model).
        for l in [0.69, 0.5, 0.4, 0.35, 0.3, 0.45] {
            r.divergence(l, &c);
            assert_eq!(r.spike(l, &c), None);
        }
        // 2.3 is only 5x the highest recent loss, but 3.3x where training started.
        assert!(r.spike(2.3, &c).is_some());
        r.spike(0.3, &c);
        // 1.3 is worse than the start but only 1.9x the recent maximum (0.69): under 3x.
        assert_eq!(r.spike(1.3, &c), None);
    }

    #[test]
    fn spikes_are_judged_against_the_recent_maximum_and_kept_out_of_it() {
        let c = WarningConfig::default();
        let mut r = LossRules::new(&c);
        for l in [0.05, 0.2, 0.04, 0.06, 0.05] {
            assert_eq!(r.spike(l, &c), None);
        }
        // 1.9 is 38x the mean but under 10x the highest recent loss (0.2).
        assert_eq!(r.spike(1.9, &c), None);
        let s = r.spike(25.0, &c).expect("25 > 10 x 1.9");
        assert_eq!(s.recent_max, 1.9);
        // The spike did not raise the bar for the next one.
        assert!(r.would_spike(20.0, &c).is_some());
        assert_eq!(r.spike(0.05, &c), None);
        // Two high losses in a row are a new level, not two spikes.
        assert!(r.spike(30.0, &c).is_some());
        assert_eq!(r.spike(31.0, &c), None);
        assert_eq!(r.spike(32.0, &c), None);
    }
}
