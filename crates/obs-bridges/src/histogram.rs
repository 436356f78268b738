//! Histograms with real bucket counts, and a bounded accumulator for per-epoch distributions.

use std::collections::BTreeMap;

use obs_core::{Data, Value};

/// A histogram: `k + 1` increasing bucket edges and `k` counts, with exact or estimated moments.
///
/// The bridges write a histogram only from real bucket counts: either one carried by an event
/// (the `histogram` entry of a layer event's data, see [`Histogram::from_data`]) or one they
/// accumulate themselves from every value of a series over an epoch. Summary statistics such
/// as min/max/mean/std are never turned into a histogram.
///
/// ```
/// use obs_bridges::Histogram;
/// let h = Histogram::from_values(&[0.0, 0.5, 1.0, 1.0], 2).unwrap();
/// assert_eq!(h.edges(), [0.0, 0.5, 1.0]);
/// assert_eq!(h.counts(), [1.0, 3.0]);
/// assert_eq!(h.sum(), 2.5);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    edges: Vec<f64>,
    counts: Vec<f64>,
    min: f64,
    max: f64,
    sum: f64,
    sum_squares: f64,
}

impl Histogram {
    /// A histogram from bucket edges and counts, as `numpy.histogram` returns them.
    ///
    /// Returns `None` unless there is at least one bucket, `edges.len() == counts.len() + 1`,
    /// the edges are finite and strictly increasing, and the counts are finite and `>= 0`.
    /// Minimum and maximum are the outer edges; sum and sum of squares are estimated from the
    /// bucket midpoints (use [`Histogram::with_moments`] to give exact ones).
    pub fn from_edges(edges: Vec<f64>, counts: Vec<f64>) -> Option<Histogram> {
        let valid = !counts.is_empty()
            && edges.len() == counts.len() + 1
            && edges.iter().all(|e| e.is_finite())
            && edges.windows(2).all(|w| w[0] < w[1])
            && counts.iter().all(|c| c.is_finite() && *c >= 0.0);
        if !valid {
            return None;
        }
        let (mut sum, mut sum_squares) = (0.0, 0.0);
        for (w, c) in edges.windows(2).zip(&counts) {
            let mid = (w[0] + w[1]) / 2.0;
            sum += mid * c;
            sum_squares += mid * mid * c;
        }
        let (min, max) = (edges[0], edges[edges.len() - 1]);
        Some(Histogram { edges, counts, min, max, sum, sum_squares })
    }

    /// Replaces the estimated moments with exact ones (ignored unless all four are finite and
    /// `min <= max`).
    #[must_use]
    pub fn with_moments(mut self, min: f64, max: f64, sum: f64, sum_squares: f64) -> Histogram {
        if [min, max, sum, sum_squares].iter().all(|v| v.is_finite()) && min <= max {
            (self.min, self.max, self.sum, self.sum_squares) = (min, max, sum, sum_squares);
        }
        self
    }

    /// An equal-width histogram of the finite values in `values` with `bins` buckets spanning
    /// their minimum and maximum (a single distinct value gets the bucket `[v - 0.5, v + 0.5]`).
    /// Moments are exact. Returns `None` when there is no finite value or `bins` is 0.
    pub fn from_values<T: Copy + Into<f64>>(values: &[T], bins: usize) -> Option<Histogram> {
        let finite = || values.iter().map(|&v| v.into()).filter(|v: &f64| v.is_finite());
        let (mut min, mut max, mut sum, mut sum_squares, mut n) =
            (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0, 0usize);
        for v in finite() {
            min = min.min(v);
            max = max.max(v);
            sum += v;
            sum_squares += v * v;
            n += 1;
        }
        if n == 0 || bins == 0 {
            return None;
        }
        let (lo, hi) = if min < max { (min, max) } else { (min - 0.5, max + 0.5) };
        let width = (hi - lo) / bins as f64;
        if !width.is_finite() || width <= 0.0 {
            return None;
        }
        let mut edges: Vec<f64> = (0..bins).map(|i| lo + width * i as f64).collect();
        edges.push(hi);
        if !edges.windows(2).all(|w| w[0] < w[1]) {
            return None;
        }
        let mut counts = vec![0.0; bins];
        for v in finite() {
            // The last bucket is closed on the right, as in numpy.
            let i = (((v - lo) / width) as usize).min(bins - 1);
            counts[i] += 1.0;
        }
        Some(Histogram { edges, counts, min, max, sum, sum_squares })
    }

    /// Reads the `histogram` form of event data: `{"edges": [..], "counts": [..]}` with
    /// optional exact `"min"`, `"max"`, `"sum"`, `"sum_squares"`. `None` when malformed.
    pub fn from_data(data: &Data) -> Option<Histogram> {
        let list = |key: &str| -> Option<Vec<f64>> {
            data.get(key)?.as_list()?.iter().map(Value::as_f64).collect()
        };
        let h = Histogram::from_edges(list("edges")?, list("counts")?)?;
        let (min, max, sum, sq) = (
            data.get_f64("min"),
            data.get_f64("max"),
            data.get_f64("sum"),
            data.get_f64("sum_squares"),
        );
        Some(match (min, max, sum, sq) {
            (Some(a), Some(b), Some(c), Some(d)) => h.with_moments(a, max_of(a, b), c, d),
            _ => h,
        })
    }

    /// The event-data form read by [`Histogram::from_data`], to put under a layer event's
    /// `histogram` key.
    pub fn to_data(&self) -> Data {
        let mut d = Data::with_capacity(6);
        d.insert("edges", self.edges.clone());
        d.insert("counts", self.counts.clone());
        d.insert("min", self.min);
        d.insert("max", self.max);
        d.insert("sum", self.sum);
        d.insert("sum_squares", self.sum_squares);
        d
    }

    /// Bucket edges (one more than there are buckets).
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Bucket counts.
    pub fn counts(&self) -> &[f64] {
        &self.counts
    }

    /// Total count.
    pub fn num(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Smallest value.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Largest value.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Sum of the values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Sum of the squared values.
    pub fn sum_squares(&self) -> f64 {
        self.sum_squares
    }
}

fn max_of(a: f64, b: f64) -> f64 {
    if b < a { a } else { b }
}

/// Right edges of TensorFlow's default histogram buckets: ±1e-12 growing by 10% up to 1e20,
/// with ±f64::MAX at the ends. Every bucket is at most 10% wide relative to its edge, so a
/// distribution keeps its shape over twenty orders of magnitude with a fixed bucket count.
fn default_limits() -> &'static [f64] {
    static LIMITS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut pos = Vec::new();
        let mut v = 1e-12;
        while v < 1e20 {
            pos.push(v);
            v *= 1.1;
        }
        pos.push(f64::MAX);
        let mut all: Vec<f64> = pos.iter().rev().map(|v| -v).collect();
        all.extend_from_slice(&pos);
        all
    })
}

/// Counts every finite value of a series into the default buckets: exact counts and moments in
/// memory bounded by the bucket count (about 1 550), however many values arrive.
#[derive(Clone, Debug, Default)]
pub(crate) struct Accumulator {
    counts: BTreeMap<u32, u64>,
    n: u64,
    min: f64,
    max: f64,
    sum: f64,
    sum_squares: f64,
}

impl Accumulator {
    pub(crate) fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let limits = default_limits();
        // Bucket i holds [limits[i-1], limits[i]); the index is the first limit above v.
        let i = limits.partition_point(|&l| l <= v);
        *self.counts.entry(i as u32).or_insert(0) += 1;
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
        self.sum_squares += v * v;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Entries held (for memory accounting).
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }

    /// The histogram so far, with a zero-count bucket standing for each run of empty buckets,
    /// then resets. `None` when nothing was added.
    pub(crate) fn take(&mut self) -> Option<Histogram> {
        if self.n == 0 {
            return None;
        }
        let limits = default_limits();
        let mut edges = vec![self.min];
        let mut counts = Vec::with_capacity(self.counts.len() * 2);
        let mut prev: Option<u32> = None;
        for (&i, &c) in &self.counts {
            if let Some(p) = prev
                && i > p + 1
            {
                edges.push(limits[i as usize - 1]);
                counts.push(0.0);
            }
            let right = limits.get(i as usize).copied().unwrap_or(f64::MAX);
            edges.push(right.min(self.max));
            counts.push(c as f64);
            prev = Some(i);
        }
        // The top bucket ends at the largest value; when that collapses it onto its left edge
        // (all values equal, or the maximum exactly on a limit) it ends at its own limit.
        let k = edges.len() - 1;
        if edges[k] <= edges[k - 1] {
            edges[k] = prev.and_then(|p| limits.get(p as usize)).copied().unwrap_or(f64::MAX);
        }
        let h = Histogram {
            edges,
            counts,
            min: self.min,
            max: self.max,
            sum: self.sum,
            sum_squares: self.sum_squares,
        };
        *self = Accumulator::default();
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bucket_data_is_refused() {
        assert!(Histogram::from_edges(vec![0.0, 1.0], vec![2.0]).is_some());
        for (e, c) in [
            (vec![], vec![]),
            (vec![0.0], vec![]),
            (vec![0.0, 1.0], vec![1.0, 2.0]),
            (vec![1.0, 0.0], vec![1.0]),
            (vec![0.0, 0.0], vec![1.0]),
            (vec![0.0, f64::NAN], vec![1.0]),
            (vec![0.0, 1.0], vec![-1.0]),
            (vec![0.0, 1.0], vec![f64::INFINITY]),
        ] {
            assert!(Histogram::from_edges(e.clone(), c.clone()).is_none(), "{e:?} {c:?}");
        }
        assert!(Histogram::from_values::<f64>(&[], 4).is_none());
        assert!(Histogram::from_values(&[f64::NAN, f64::INFINITY], 4).is_none());
        assert!(Histogram::from_values(&[1.0f32], 0).is_none());
    }

    #[test]
    fn values_fall_in_the_right_buckets_and_moments_are_exact() {
        let h = Histogram::from_values(&[1.0f32, 2.0, 3.0, 4.0, f32::NAN], 3).unwrap();
        assert_eq!(h.edges(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(h.counts(), [1.0, 1.0, 2.0]);
        assert_eq!((h.min(), h.max(), h.sum(), h.sum_squares()), (1.0, 4.0, 10.0, 30.0));
        let same = Histogram::from_values(&[2.0f64; 5], 2).unwrap();
        assert_eq!(same.edges(), [1.5, 2.0, 2.5]);
        assert_eq!(same.counts(), [0.0, 5.0]);
        assert_eq!(same.num(), 5.0);
    }

    #[test]
    fn data_form_round_trips() {
        let h = Histogram::from_values(&[0.1f64, 0.2, 0.9], 4).unwrap();
        assert_eq!(Histogram::from_data(&h.to_data()), Some(h));
        let est = Histogram::from_edges(vec![0.0, 2.0], vec![3.0]).unwrap();
        assert_eq!((est.sum(), est.sum_squares()), (3.0, 3.0));
        assert!(Histogram::from_data(&obs_core::data! { "edges" => vec![0.0] }).is_none());
    }

    #[test]
    fn accumulator_counts_exactly_into_default_buckets() {
        let mut a = Accumulator::default();
        assert!(a.take().is_none());
        let values = [0.5, 0.51, 0.52, 2.0, -3.0, 0.0, f64::NAN, 1e30];
        for v in values {
            a.add(v);
        }
        let h = a.take().unwrap();
        assert!(a.is_empty());
        assert_eq!(h.num(), 7.0);
        assert_eq!((h.min(), h.max()), (-3.0, 1e30));
        assert_eq!(h.sum(), 0.5 + 0.51 + 0.52 + 2.0 - 3.0 + 1e30);
        assert!(h.edges().windows(2).all(|w| w[0] < w[1]), "{:?}", h.edges());
        assert_eq!(h.edges().len(), h.counts().len() + 1);
        // Every value lies within the bucket it was counted in.
        let mut seen = 0.0;
        let last = h.counts().len() - 1;
        for (i, (w, &c)) in h.edges().windows(2).zip(h.counts()).enumerate() {
            let inside = values
                .iter()
                .filter(|v| {
                    v.is_finite() && **v >= w[0] && (**v < w[1] || (i == last && **v == w[1]))
                })
                .count();
            if c > 0.0 {
                assert_eq!(inside as f64, c, "bucket {w:?}");
            }
            seen += c;
        }
        assert_eq!(seen, 7.0);
        // Buckets are at most ~10% wide: 0.5, 0.51 and 0.52 cannot all share one.
        assert!(h.counts().iter().all(|&c| c <= 2.0), "{:?}", h.counts());
    }

    #[test]
    fn accumulator_handles_a_single_repeated_value() {
        let mut a = Accumulator::default();
        for _ in 0..10 {
            a.add(0.25);
        }
        let h = a.take().unwrap();
        assert_eq!(h.counts(), [10.0]);
        assert_eq!(h.edges()[0], 0.25);
        assert!(h.edges()[1] > 0.25);
    }

    #[test]
    fn accumulator_memory_is_bounded_by_the_bucket_count() {
        let mut a = Accumulator::default();
        let mut x = 1e-15f64;
        for _ in 0..200_000 {
            a.add(x);
            a.add(-x);
            x *= 1.0003;
        }
        assert!(a.len() <= default_limits().len() + 1);
    }
}
