//! The finished summary of one epoch: statistics, data, serde and text.

use std::fmt::{self, Write as _};

use obs_core::stats::Welford;
use obs_core::{Data, TensorStats};
use serde::{Deserialize, Serialize};

/// Mean, standard deviation, minimum and maximum of one metric over an epoch's batches.
///
/// The moments are over the finite values; NaN and infinite values are counted in
/// [`MetricStats::non_finite`], never mixed in and never dropped silently. With no finite value
/// the moments are NaN.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    /// Mean of the finite values.
    #[serde(with = "crate::float")]
    pub mean: f64,
    /// Population standard deviation of the finite values.
    #[serde(with = "crate::float")]
    pub std: f64,
    /// Smallest finite value.
    #[serde(with = "crate::float")]
    pub min: f64,
    /// Largest finite value.
    #[serde(with = "crate::float")]
    pub max: f64,
    /// Finite values recorded.
    pub count: u64,
    /// NaN or infinite values recorded (left out of the moments).
    pub non_finite: u64,
}

impl MetricStats {
    /// The statistics of a Welford accumulator.
    pub fn from_welford(w: &Welford) -> MetricStats {
        // `Welford::default()` starts min/max at 0.0 (unlike `Welford::new()`), so an
        // accumulator that saw only non-finite values must not report them.
        let (min, max) = if w.count() == 0 { (f64::NAN, f64::NAN) } else { (w.min(), w.max()) };
        MetricStats {
            mean: w.mean(),
            std: w.std(),
            min,
            max,
            count: w.count(),
            non_finite: w.non_finite(),
        }
    }

    /// The statistics as event data: `mean`, `std`, `min`, `max`, `count`, `non_finite`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::with_capacity(6);
        d.insert("mean", self.mean);
        d.insert("std", self.std);
        d.insert("min", self.min);
        d.insert("max", self.max);
        d.insert("count", self.count);
        d.insert("non_finite", self.non_finite);
        d
    }
}

/// Per-layer tensor statistics averaged over the epoch's records (activations or weights).
///
/// Each field is the mean, over the records of the epoch, of the same field of
/// [`TensorStats`]; non-finite per-record values (a tensor with no finite element) are left
/// out of those means and NaN/Inf element counts are summed instead.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// Tensors recorded for the layer this epoch.
    pub records: u64,
    /// Mean of the tensors' means.
    #[serde(with = "crate::float")]
    pub mean: f64,
    /// Mean of the tensors' standard deviations.
    #[serde(with = "crate::float")]
    pub std: f64,
    /// Mean of the tensors' L2 norms.
    #[serde(with = "crate::float")]
    pub l2_norm: f64,
    /// Mean percentage of elements exactly zero.
    #[serde(with = "crate::float")]
    pub zeros_pct: f64,
    /// Mean percentage of saturated elements (for the activation recorded with the tensor).
    #[serde(with = "crate::float")]
    pub saturation_pct: f64,
    /// Mean percentage of units zero for a whole batch, when the tensors had units (`null` in
    /// data and JSON otherwise).
    #[serde(with = "crate::float::option")]
    pub dead_units_pct: Option<f64>,
    /// NaN elements over all records.
    pub nan_count: u64,
    /// Infinite elements over all records.
    pub inf_count: u64,
}

impl LayerSummary {
    /// The summary as event data.
    pub fn to_data(&self) -> Data {
        let mut d = Data::with_capacity(9);
        d.insert("records", self.records);
        d.insert("mean", self.mean);
        d.insert("std", self.std);
        d.insert("l2_norm", self.l2_norm);
        d.insert("zeros_pct", self.zeros_pct);
        d.insert("saturation_pct", self.saturation_pct);
        d.insert("dead_units_pct", self.dead_units_pct);
        d.insert("nan_count", self.nan_count);
        d.insert("inf_count", self.inf_count);
        d
    }
}

/// Running per-layer accumulators behind a [`LayerSummary`].
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerAccumulator {
    mean: Welford,
    std: Welford,
    l2: Welford,
    zeros_pct: Welford,
    saturation_pct: Welford,
    dead_units_pct: Welford,
    nan: u64,
    inf: u64,
    records: u64,
}

impl LayerAccumulator {
    pub(crate) fn push(&mut self, s: &TensorStats) {
        self.records += 1;
        self.mean.push(s.mean);
        self.std.push(s.std);
        self.l2.push(s.l2);
        self.zeros_pct.push(s.zeros_pct());
        self.saturation_pct.push(s.saturation_pct());
        if let Some(dead) = s.dead_units_pct() {
            self.dead_units_pct.push(dead);
        }
        self.nan += s.nan;
        self.inf += s.inf;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub(crate) fn summary(&self) -> LayerSummary {
        let dead = &self.dead_units_pct;
        LayerSummary {
            records: self.records,
            mean: self.mean.mean(),
            std: self.std.mean(),
            l2_norm: self.l2.mean(),
            zeros_pct: self.zeros_pct.mean(),
            saturation_pct: self.saturation_pct.mean(),
            dead_units_pct: (dead.count() > 0).then(|| dead.mean()),
            nan_count: self.nan,
            inf_count: self.inf,
        }
    }
}

/// The summary of one epoch: statistics of every metric and gradient norm over its batches,
/// and (when recorded) per-layer activation and weight statistics.
///
/// Every list keeps the order in which its names were first recorded. Serialises (serde) to an
/// object whose lists are JSON objects keyed by name, with non-finite numbers written as
/// `"NaN"`, `"Infinity"`, `"-Infinity"`; [`EpochSummary::to_data`] gives the same shape as
/// event data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// The epoch, as passed to the summarizer (0-based when the training loop counts from 0).
    pub epoch: u64,
    /// Batches recorded with [`crate::EpochSummarizer::record_batch`].
    pub batches: u64,
    /// Per metric name (`loss`, `accuracy`, ...): statistics over the batches.
    #[serde(with = "crate::named")]
    pub metrics: Vec<(String, MetricStats)>,
    /// Per layer name: statistics of its gradient norm over the batches.
    #[serde(with = "crate::named")]
    pub gradient_norms: Vec<(String, MetricStats)>,
    /// Per layer name: averaged activation statistics (empty unless recorded).
    #[serde(default, with = "crate::named")]
    pub activations: Vec<(String, LayerSummary)>,
    /// Per layer name: averaged weight statistics (empty unless recorded).
    #[serde(default, with = "crate::named")]
    pub weights: Vec<(String, LayerSummary)>,
}

fn find<'a, T>(list: &'a [(String, T)], name: &str) -> Option<&'a T> {
    list.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn named_data<T>(list: &[(String, T)], to_data: impl Fn(&T) -> Data) -> Data {
    let mut d = Data::with_capacity(list.len());
    for (name, v) in list {
        d.insert(name.clone(), to_data(v));
    }
    d
}

/// Width names are padded to in [`EpochSummary::format_text`].
pub const NAME_WIDTH: usize = 22;

impl EpochSummary {
    /// Statistics of one metric.
    pub fn metric(&self, name: &str) -> Option<&MetricStats> {
        find(&self.metrics, name)
    }

    /// Statistics of one layer's gradient norm.
    pub fn gradient_norm(&self, layer: &str) -> Option<&MetricStats> {
        find(&self.gradient_norms, layer)
    }

    /// Averaged activation statistics of one layer.
    pub fn activation(&self, layer: &str) -> Option<&LayerSummary> {
        find(&self.activations, layer)
    }

    /// Averaged weight statistics of one layer.
    pub fn weight(&self, layer: &str) -> Option<&LayerSummary> {
        find(&self.weights, layer)
    }

    /// Non-finite values over all metrics and gradient norms.
    pub fn non_finite(&self) -> u64 {
        self.metrics.iter().chain(&self.gradient_norms).map(|(_, s)| s.non_finite).sum()
    }

    /// The summary as event data (the reference's `to_dict`):
    /// `{"epoch", "batches", "metrics": {name: {"mean", "std", "min", "max", "count",
    /// "non_finite"}}, "gradient_norms": {...}, "activations": {...}, "weights": {...}}`.
    /// All four maps are always present, possibly empty.
    pub fn to_data(&self) -> Data {
        let mut d = Data::with_capacity(6);
        d.insert("epoch", self.epoch);
        d.insert("batches", self.batches);
        d.insert("metrics", named_data(&self.metrics, MetricStats::to_data));
        d.insert("gradient_norms", named_data(&self.gradient_norms, MetricStats::to_data));
        d.insert("activations", named_data(&self.activations, LayerSummary::to_data));
        d.insert("weights", named_data(&self.weights, LayerSummary::to_data));
        d
    }

    /// The summary as text, in the reference's layout:
    ///
    /// ```text
    /// ══ Epoch 5 Summary (32 batches) ══
    ///   Metrics:
    ///     loss                  mean=0.342100  std=0.015200  min=0.310000  max=0.380000
    ///   Gradient Norms:
    ///     dense_0               mean=5.23e-02  std=1.12e-02  min=3.10e-02  max=8.40e-02
    /// ```
    ///
    /// The epoch prints as recorded. Metrics use six decimals, gradient norms two-digit
    /// scientific notation with a signed two-digit exponent (as C's and Python's `%.2e`).
    /// Names are padded to [`NAME_WIDTH`] columns; a longer name is printed whole, followed by
    /// one space. Non-finite numbers print as `nan`, `inf`, `-inf`, and a line whose values
    /// included any ends with `  non_finite=N`. Empty sections are left out; `Activations:` and
    /// `Weights:` sections follow when layer statistics were recorded. Lines end with `\n`.
    pub fn format_text(&self) -> String {
        let mut out =
            String::with_capacity(128 + 96 * (self.metrics.len() + self.gradient_norms.len()));
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "══ Epoch {} Summary ({} batches) ══", self.epoch, self.batches)?;
        metric_section(out, "Metrics", &self.metrics, fixed6)?;
        metric_section(out, "Gradient Norms", &self.gradient_norms, sci2)?;
        if !self.activations.is_empty() {
            writeln!(out, "  Activations:")?;
            for (name, s) in &self.activations {
                layer_line(out, name, s)?;
                write!(out, "  zeros={:.1}%  saturated={:.1}%", s.zeros_pct, s.saturation_pct)?;
                if let Some(dead) = s.dead_units_pct {
                    write!(out, "  dead={dead:.1}%")?;
                }
                layer_tail(out, s)?;
            }
        }
        if !self.weights.is_empty() {
            writeln!(out, "  Weights:")?;
            for (name, s) in &self.weights {
                layer_line(out, name, s)?;
                out.push_str("  l2=");
                sci2(out, s.l2_norm)?;
                layer_tail(out, s)?;
            }
        }
        Ok(())
    }
}

/// Writes one number of a statistics line.
type NumberFormat = fn(&mut String, f64) -> fmt::Result;

fn metric_section(
    out: &mut String,
    title: &str,
    list: &[(String, MetricStats)],
    num: NumberFormat,
) -> fmt::Result {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out, "  {title}:")?;
    for (name, s) in list {
        name_column(out, name)?;
        for (label, v) in [("mean", s.mean), ("  std", s.std), ("  min", s.min), ("  max", s.max)] {
            write!(out, "{label}=")?;
            num(out, v)?;
        }
        if s.non_finite > 0 {
            write!(out, "  non_finite={}", s.non_finite)?;
        }
        out.push('\n');
    }
    Ok(())
}

fn name_column(out: &mut String, name: &str) -> fmt::Result {
    if name.chars().count() >= NAME_WIDTH {
        write!(out, "    {name} ")
    } else {
        write!(out, "    {name:<NAME_WIDTH$}")
    }
}

fn layer_line(out: &mut String, name: &str, s: &LayerSummary) -> fmt::Result {
    name_column(out, name)?;
    out.push_str("mean=");
    fixed6(out, s.mean)?;
    out.push_str("  std=");
    fixed6(out, s.std)
}

fn layer_tail(out: &mut String, s: &LayerSummary) -> fmt::Result {
    if s.nan_count > 0 || s.inf_count > 0 {
        write!(out, "  nan={}  inf={}", s.nan_count, s.inf_count)?;
    }
    out.push('\n');
    Ok(())
}

/// Writes a non-finite number as C and Python do; returns whether it did.
fn non_finite(out: &mut String, x: f64) -> bool {
    if x.is_nan() {
        out.push_str("nan");
    } else if x == f64::INFINITY {
        out.push_str("inf");
    } else if x == f64::NEG_INFINITY {
        out.push_str("-inf");
    } else {
        return false;
    }
    true
}

/// `%.6f`.
fn fixed6(out: &mut String, x: f64) -> fmt::Result {
    if non_finite(out, x) {
        return Ok(());
    }
    write!(out, "{x:.6}")
}

/// `%.2e`: Rust writes `5.23e-2`, C and Python `5.23e-02`.
fn sci2(out: &mut String, x: f64) -> fmt::Result {
    if non_finite(out, x) {
        return Ok(());
    }
    let mut buf = String::with_capacity(12);
    write!(buf, "{x:.2e}")?;
    let (mantissa, exp) = buf.split_once('e').unwrap_or((&buf, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    write!(out, "{mantissa}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sci(x: f64) -> String {
        let mut s = String::new();
        sci2(&mut s, x).expect("string");
        s
    }

    #[test]
    fn scientific_matches_c_printf() {
        assert_eq!(sci(0.0523), "5.23e-02");
        assert_eq!(sci(0.0), "0.00e+00");
        assert_eq!(sci(-1234.5), "-1.23e+03");
        assert_eq!(sci(1e-300), "1.00e-300");
        assert_eq!(sci(9.999e-3), "1.00e-02");
        assert_eq!(sci(f64::NAN), "nan");
        assert_eq!(sci(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn fixed_matches_c_printf() {
        let f = |x| {
            let mut s = String::new();
            fixed6(&mut s, x).expect("string");
            s
        };
        assert_eq!(f(0.3421), "0.342100");
        assert_eq!(f(-2.5), "-2.500000");
        assert_eq!(f(f64::INFINITY), "inf");
    }

    #[test]
    fn long_names_are_kept_whole() {
        let mut s = String::new();
        name_column(&mut s, "a_very_long_layer_name_indeed").expect("string");
        assert_eq!(s, "    a_very_long_layer_name_indeed ");
        s.clear();
        name_column(&mut s, "loss").expect("string");
        assert_eq!(s.len(), 4 + NAME_WIDTH);
    }
}
