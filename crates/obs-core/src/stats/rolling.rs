//! Streaming statistics: Welford's running moments and a fixed-size rolling window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Running count, mean, variance, min and max in O(1) memory (Welford's algorithm).
///
/// Non-finite values are not mixed into the moments: they are counted in
/// [`Welford::non_finite`] so a NaN loss is reported rather than poisoning the mean.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welford {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    non_finite: u64,
}

/// Same as [`Welford::new`]: min and max start as NaN, not 0.
impl Default for Welford {
    fn default() -> Self {
        Welford::new()
    }
}

impl Welford {
    /// An empty accumulator.
    pub const fn new() -> Self {
        Welford { count: 0, mean: 0.0, m2: 0.0, min: f64::NAN, max: f64::NAN, non_finite: 0 }
    }

    /// Adds one value.
    #[inline]
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
        if self.count == 1 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
    }

    /// Combines two accumulators as if every value had been pushed into one (Chan et al.).
    pub fn merge(&mut self, other: &Welford) {
        self.non_finite += other.non_finite;
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            let nf = self.non_finite;
            *self = *other;
            self.non_finite = nf;
            return;
        }
        let n = (self.count + other.count) as f64;
        let d = other.mean - self.mean;
        self.mean += d * other.count as f64 / n;
        self.m2 += other.m2 + d * d * self.count as f64 * other.count as f64 / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Finite values pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Non-finite values seen (and left out of the moments).
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// Mean of the finite values (NaN when there are none).
    pub fn mean(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.mean }
    }

    /// Population variance (NaN when there are no values).
    pub fn variance(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { (self.m2 / self.count as f64).max(0.0) }
    }

    /// Population standard deviation (NaN when there are no values).
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Smallest finite value (NaN when there are none).
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Largest finite value (NaN when there are none).
    pub fn max(&self) -> f64 {
        self.max
    }
}

/// The last `capacity` values, with their mean. Memory is bounded by the capacity.
#[derive(Clone, Debug, PartialEq)]
pub struct RollingWindow {
    values: VecDeque<f64>,
    capacity: usize,
    sum: f64,
}

impl RollingWindow {
    /// A window of at most `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RollingWindow { values: VecDeque::with_capacity(capacity), capacity, sum: 0.0 }
    }

    /// Adds a value, evicting and returning the oldest when full. Non-finite values are refused
    /// (returns `None` and leaves the window unchanged) so one NaN cannot poison the baseline.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        let evicted =
            if self.values.len() == self.capacity { self.values.pop_front() } else { None };
        self.values.push_back(x);
        // Recomputing from the values keeps the sum exact-ish over millions of pushes, where an
        // add/subtract running sum would drift; windows are small.
        self.sum = self.values.iter().sum();
        evicted
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether the window holds `capacity` values.
    pub fn is_full(&self) -> bool {
        self.values.len() == self.capacity
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Mean of the values (NaN when empty).
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() { f64::NAN } else { self.sum / self.values.len() as f64 }
    }

    /// Smallest value (NaN when empty).
    pub fn min(&self) -> f64 {
        self.values.iter().copied().reduce(f64::min).unwrap_or(f64::NAN)
    }

    /// Largest value (NaN when empty).
    pub fn max(&self) -> f64 {
        self.values.iter().copied().reduce(f64::max).unwrap_or(f64::NAN)
    }

    /// Oldest value, if any.
    pub fn first(&self) -> Option<f64> {
        self.values.front().copied()
    }

    /// Newest value, if any.
    pub fn last(&self) -> Option<f64> {
        self.values.back().copied()
    }

    /// The values, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.values.iter().copied()
    }

    /// Empties the window.
    pub fn clear(&mut self) {
        self.values.clear();
        self.sum = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_two_pass_and_skips_nan() {
        let xs = [1.0, 2.0, 4.0, f64::NAN, 8.0, f64::INFINITY];
        let mut w = Welford::new();
        xs.iter().for_each(|&x| w.push(x));
        let finite: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let mean = finite.iter().sum::<f64>() / 4.0;
        let var = finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0;
        assert_eq!(w.count(), 4);
        assert_eq!(w.non_finite(), 2);
        assert!((w.mean() - mean).abs() < 1e-12);
        assert!((w.variance() - var).abs() < 1e-12);
        assert_eq!((w.min(), w.max()), (1.0, 8.0));
    }

    #[test]
    fn welford_merge_equals_sequential() {
        let (mut a, mut b, mut all) = (Welford::new(), Welford::new(), Welford::new());
        for i in 0..10 {
            let x = f64::from(i) * 1.5 - 3.0;
            if i < 4 {
                a.push(x)
            } else {
                b.push(x)
            }
            all.push(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert!((a.mean() - all.mean()).abs() < 1e-12);
        assert!((a.variance() - all.variance()).abs() < 1e-12);
        let mut empty = Welford::new();
        empty.merge(&all);
        assert_eq!(empty.count(), all.count());
    }

    #[test]
    fn empty_welford_and_window_are_nan_not_panics() {
        assert!(Welford::new().mean().is_nan());
        assert!(Welford::new().std().is_nan());
        assert!(Welford::default().min().is_nan() && Welford::default().max().is_nan());
        let w = RollingWindow::new(0);
        assert_eq!(w.capacity(), 1);
        assert!(w.mean().is_nan() && w.min().is_nan());
    }

    #[test]
    fn window_evicts_oldest_and_refuses_non_finite() {
        let mut w = RollingWindow::new(3);
        assert_eq!(w.push(1.0), None);
        w.push(2.0);
        w.push(3.0);
        assert_eq!(w.push(4.0), Some(1.0));
        assert_eq!(w.push(f64::NAN), None);
        assert_eq!(w.iter().collect::<Vec<_>>(), [2.0, 3.0, 4.0]);
        assert_eq!(w.mean(), 3.0);
        assert_eq!((w.first(), w.last()), (Some(2.0), Some(4.0)));
    }
}
