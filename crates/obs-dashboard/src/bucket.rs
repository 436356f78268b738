//! Bounded min/max-per-bucket downsampling.
//!
//! A series is a vector of at most `capacity` buckets over an integer axis (global step or
//! epoch). Bucket `i` covers `[i * width, (i + 1) * width)`. When a value arrives beyond the last
//! bucket, the width doubles and neighbouring buckets merge pairwise, so memory stays bounded
//! whatever the run length and every extreme value survives: a bucket's `min` and `max` are
//! exact, never sampled.

/// What one bucket remembers of the values that fell into it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    /// Finite values seen.
    pub(crate) n: u64,
    /// NaN or infinite values seen (kept apart so one NaN never hides the finite values).
    pub(crate) nonfinite: u64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    /// Running mean of the finite values (a running mean cannot overflow where a sum could).
    pub(crate) mean: f64,
}

impl Bucket {
    pub(crate) const EMPTY: Bucket =
        Bucket { n: 0, nonfinite: 0, min: f64::INFINITY, max: f64::NEG_INFINITY, mean: 0.0 };

    #[inline]
    pub(crate) fn add(&mut self, v: f64) {
        if !v.is_finite() {
            self.nonfinite += 1;
            return;
        }
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.mean += (v - self.mean) / self.n as f64;
    }

    pub(crate) fn merge(&mut self, other: &Bucket) {
        self.nonfinite += other.nonfinite;
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            self.n = other.n;
            self.min = other.min;
            self.max = other.max;
            self.mean = other.mean;
            return;
        }
        let n = self.n + other.n;
        // Weighted mean written so that neither product can overflow.
        let wa = self.n as f64 / n as f64;
        self.mean = self.mean * wa + other.mean * (1.0 - wa);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.n = n;
    }
}

/// The shared geometry of every series on one axis.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axis {
    pub(crate) width: u64,
    pub(crate) capacity: usize,
    /// The largest coordinate seen, if any.
    pub(crate) max_x: Option<u64>,
}

/// Widths stop doubling here; `u64::MAX / 2^62 < 4` so every index still fits 16+ buckets.
const MAX_WIDTH: u64 = 1 << 62;

impl Axis {
    pub(crate) fn new(capacity: usize) -> Self {
        Axis { width: 1, capacity: capacity.max(16), max_x: None }
    }

    /// How many times the width must double so that `x` fits; doubles it that many times.
    /// Every series on this axis must then be coarsened the same number of times.
    #[inline]
    pub(crate) fn fit(&mut self, x: u64) -> u32 {
        self.max_x = Some(self.max_x.map_or(x, |m| m.max(x)));
        let mut doublings = 0;
        while x / self.width >= self.capacity as u64 && self.width < MAX_WIDTH {
            self.width *= 2;
            doublings += 1;
        }
        doublings
    }

    #[inline]
    pub(crate) fn index(&self, x: u64) -> usize {
        ((x / self.width) as usize).min(self.capacity - 1)
    }
}

/// A downsampled series plus the few exact facts the summary cards need.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub(crate) buckets: Vec<Bucket>,
    /// The most recent value and its coordinate (by arrival), finite or not.
    pub(crate) last: Option<(u64, f64)>,
    /// The smallest and largest finite values with their coordinates.
    pub(crate) min: Option<(u64, f64)>,
    pub(crate) max: Option<(u64, f64)>,
    pub(crate) count: u64,
    pub(crate) nonfinite: u64,
}

impl Series {
    pub(crate) fn new() -> Self {
        Series { buckets: Vec::new(), last: None, min: None, max: None, count: 0, nonfinite: 0 }
    }

    /// Adds `v` at coordinate `x`, whose bucket is `index` on the (already fitted) axis.
    #[inline]
    pub(crate) fn add(&mut self, index: usize, x: u64, v: f64) {
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, Bucket::EMPTY);
        }
        self.buckets[index].add(v);
        self.count += 1;
        self.last = Some((x, v));
        if v.is_finite() {
            if self.min.is_none_or(|(_, m)| v < m) {
                self.min = Some((x, v));
            }
            if self.max.is_none_or(|(_, m)| v > m) {
                self.max = Some((x, v));
            }
        } else {
            self.nonfinite += 1;
        }
    }

    /// Halves the resolution `times` times, merging neighbours pairwise.
    pub(crate) fn coarsen(&mut self, times: u32) {
        for _ in 0..times {
            self.buckets = coarsened(&self.buckets, 2);
        }
    }
}

/// Buckets merged `factor` at a time (the last group may be short).
pub(crate) fn coarsened(buckets: &[Bucket], factor: usize) -> Vec<Bucket> {
    buckets
        .chunks(factor.max(1))
        .map(|group| {
            let mut b = Bucket::EMPTY;
            for g in group {
                b.merge(g);
            }
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(values: &[f64], capacity: usize) -> (Axis, Series) {
        let mut axis = Axis::new(capacity);
        let mut s = Series::new();
        for (x, &v) in values.iter().enumerate() {
            let x = x as u64;
            let d = axis.fit(x);
            s.coarsen(d);
            s.add(axis.index(x), x, v);
        }
        (axis, s)
    }

    #[test]
    fn memory_is_bounded_and_every_spike_survives() {
        let n = 100_000usize;
        let mut values: Vec<f64> = (0..n).map(|i| 1.0 + (i as f64 * 0.01).sin() * 0.1).collect();
        let spikes = [7usize, 33_333, 77_777, 99_999];
        for &i in &spikes {
            values[i] = 1000.0 + i as f64;
        }
        values[50_000] = -500.0;
        let (axis, s) = feed(&values, 64);
        assert!(s.buckets.len() <= 64);
        assert_eq!(axis.width, 2048);
        for &i in &spikes {
            let b = &s.buckets[axis.index(i as u64)];
            assert_eq!(b.max, 1000.0 + i as f64, "spike at {i} lost");
        }
        assert_eq!(s.buckets[axis.index(50_000)].min, -500.0);
        assert_eq!(s.buckets.iter().map(|b| b.n).sum::<u64>(), n as u64);
        assert_eq!(s.max, Some((99_999, 1000.0 + 99_999.0)));
        assert_eq!(s.min, Some((50_000, -500.0)));
    }

    #[test]
    fn means_match_a_naive_reference_after_merging() {
        let values: Vec<f64> = (0..1000).map(|i| (i % 17) as f64 - 3.5).collect();
        let (axis, s) = feed(&values, 16);
        for (i, b) in s.buckets.iter().enumerate() {
            let lo = i * axis.width as usize;
            let hi = ((i + 1) * axis.width as usize).min(values.len());
            let slice = &values[lo..hi];
            let mean = slice.iter().sum::<f64>() / slice.len() as f64;
            assert!((b.mean - mean).abs() < 1e-9, "bucket {i}: {} vs {mean}", b.mean);
            assert_eq!(b.min, slice.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(b.n, slice.len() as u64);
        }
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let (_, s) = feed(&[1.0, f64::NAN, f64::INFINITY, 2.0, f64::NEG_INFINITY], 16);
        assert_eq!(s.nonfinite, 3);
        assert_eq!(s.buckets[1].nonfinite, 1);
        assert_eq!(s.buckets[1].n, 0);
        assert_eq!(s.min, Some((0, 1.0)));
        assert_eq!(s.max, Some((3, 2.0)));
        assert!(s.last.is_some_and(|(x, v)| x == 4 && v == f64::NEG_INFINITY));
        let merged = coarsened(&s.buckets, 8);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].n, merged[0].nonfinite), (2, 3));
        assert_eq!(merged[0].mean, 1.5);
    }

    #[test]
    fn huge_coordinates_do_not_overflow() {
        let mut axis = Axis::new(16);
        let mut s = Series::new();
        for x in [0, u64::MAX, 5] {
            let d = axis.fit(x);
            s.coarsen(d);
            s.add(axis.index(x), x, 1.0);
        }
        assert!(s.buckets.len() <= 16);
        assert_eq!(s.count, 3);
        let extreme = Bucket { n: 1, nonfinite: 0, min: f64::MAX, max: f64::MAX, mean: f64::MAX };
        let mut b = extreme;
        b.merge(&extreme);
        assert_eq!(b.mean, f64::MAX);
    }
}
