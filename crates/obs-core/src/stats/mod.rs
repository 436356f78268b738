//! One-pass statistics over borrowed tensors, and the rolling/Welford helpers the analysers use.
//!
//! [`tensor_stats`] reduces a `&[f32]` or `&[f64]` (with its shape) to a [`TensorStats`] in a
//! single pass: count, exact zeros, NaN, Inf, min, max, mean, population std, L2 norm, saturation
//! for the given [`Activation`], and for tensors of two or more dimensions the units (columns)
//! that are zero for every sample. The tensor is never copied; the only allocation is the list
//! of units that were zero in the first sample (the dead-unit candidates).
//!
//! Definitions: `min`, `max`, `mean`, `std` and `l2` are over the **finite** elements (NaN and
//! infinities are counted, not mixed in); with no finite element they are NaN (`l2` is 0).
//! `zeros` counts `0.0` and `-0.0`. A unit is dead when every sample holds `±0.0` there (NaN is
//! not zero); tensors with no samples or no units have no [`DeadUnits`]. Percentages are of all
//! elements. An empty tensor gives `count == 0` and NaN moments; nothing here panics.
//!
//! # Kernels and exactness
//! The work is split into blocks of 4096 elements and each block into chunks of eight lanes.
//! A [`Kernel`] only reduces whole chunks; the tail, the order in which lanes and blocks are
//! combined, and every decision are shared code. [`Kernel::Avx2`] (picked at run time by
//! [`Kernel::detect`] when the CPU has AVX2) and [`Kernel::Portable`] perform the same
//! floating-point operations per lane in the same order, without fused multiply-add, so
//! **they return bit-identical results on every input**, NaN and infinities included.
//!
//! Sums use `f64` accumulators (`f32` data is widened exactly). Each block sums `x` and `x²`
//! directly when that is accurate enough, which holds whenever the block's largest magnitude
//! is within a small factor of its range (activations nearly always are); otherwise, for data
//! such as `1e6` plus tiny noise, it sums `x - k` and `(x - k)²` for a shift `k` (the mean of
//! the block's first eight finite elements) so `std` stays accurate. Blocks are merged with
//! Chan's formula. With shifted sums, the sum of squares for `l2` is derived from the same two
//! sums when that is well conditioned (checked per block with a rounding-error bound) and
//! summed directly otherwise. Dead units are tracked as a list of candidates: the units that
//! were zero in the first sample, dropped as later samples show them nonzero, so the pass does
//! no per-element work for them once every unit has fired.
//! Counts, `min`, `max` and dead units are exact. Against the exact values, `l2` is within a
//! relative `1e-12`, `mean` within `1e-12 * max|x|` and the variance `std²` within
//! `1e-12 * (max - min)²` (typically far closer; `stats/tests.rs` derives these bounds and the
//! property tests check them).
//!
//! # Extreme magnitudes
//! `f32` data can never overflow the `f64` sums. For `f64` data whose largest finite magnitude
//! is above `2^450` (squares could overflow) or below `2^-450` (squares would lose precision to
//! subnormals), `mean`, `std` and `l2` are recomputed by a second, scaled pass, so e.g.
//! `[1e300, -1e300]` gives `std == 1e300` and `l2 == 1.414e300`. Only a result that is itself
//! beyond `f64::MAX` (the L2 norm of `[f64::MAX, f64::MAX]`) comes out infinite.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod driver;
mod portable;
mod rolling;
#[cfg(test)]
mod tests;

pub use rolling::{RollingWindow, Welford};

use std::fmt;
use std::str::FromStr;

use crate::Data;

/// The element data of a borrowed tensor.
#[derive(Clone, Copy, Debug)]
pub enum TensorData<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 64-bit floats.
    F64(&'a [f64]),
}

impl TensorData<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(d) => d.len(),
            TensorData::F64(d) => d.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `"float32"` or `"float64"`.
    pub fn dtype(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "float32",
            TensorData::F64(_) => "float64",
        }
    }
}

impl<'a> From<&'a [f32]> for TensorData<'a> {
    fn from(d: &'a [f32]) -> Self {
        TensorData::F32(d)
    }
}

impl<'a> From<&'a [f64]> for TensorData<'a> {
    fn from(d: &'a [f64]) -> Self {
        TensorData::F64(d)
    }
}

impl<'a> From<&'a Vec<f32>> for TensorData<'a> {
    fn from(d: &'a Vec<f32>) -> Self {
        TensorData::F32(d)
    }
}

impl<'a> From<&'a Vec<f64>> for TensorData<'a> {
    fn from(d: &'a Vec<f64>) -> Self {
        TensorData::F64(d)
    }
}

/// Why a tensor was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TensorError {
    /// The shape's element count differs from the data length.
    ShapeMismatch {
        /// The shape given.
        shape: Vec<usize>,
        /// The number of elements given.
        len: usize,
    },
    /// The shape's element count overflows `usize`.
    ShapeOverflow {
        /// The shape given.
        shape: Vec<usize>,
    },
    /// The tensor has no elements.
    Empty,
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorError::ShapeMismatch { shape, len } => {
                write!(f, "shape {shape:?} does not match {len} elements")
            }
            TensorError::ShapeOverflow { shape } => {
                write!(f, "shape {shape:?} has more elements than fit in memory")
            }
            TensorError::Empty => f.write_str("tensor has no elements"),
        }
    }
}

impl std::error::Error for TensorError {}

/// A borrowed tensor: element data plus a shape (row-major).
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    data: TensorData<'a>,
    shape: Option<&'a [usize]>,
}

impl<'a> TensorView<'a> {
    /// A tensor with an explicit shape.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when the shape's product is not the data length,
    /// [`TensorError::ShapeOverflow`] when the product overflows.
    pub fn new(data: impl Into<TensorData<'a>>, shape: &'a [usize]) -> Result<Self, TensorError> {
        let data = data.into();
        let n = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| TensorError::ShapeOverflow { shape: shape.to_vec() })?;
        if n != data.len() {
            return Err(TensorError::ShapeMismatch { shape: shape.to_vec(), len: data.len() });
        }
        Ok(TensorView { data, shape: Some(shape) })
    }

    /// A one-dimensional tensor.
    pub fn flat(data: impl Into<TensorData<'a>>) -> Self {
        TensorView { data: data.into(), shape: None }
    }

    /// The element data.
    pub fn data(&self) -> TensorData<'a> {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The shape (`[len]` for a flat tensor).
    pub fn shape(&self) -> Vec<usize> {
        self.shape.map_or_else(|| vec![self.len()], <[usize]>::to_vec)
    }

    /// `(samples, units per sample)` for tensors of two or more dimensions.
    pub fn samples_and_units(&self) -> Option<(usize, usize)> {
        match self.shape {
            // The product cannot overflow unless `rows` is 0 (the shape was checked against
            // the data length); saturate rather than panic in that case.
            Some([rows, rest @ ..]) if !rest.is_empty() => {
                Some((*rows, rest.iter().fold(1usize, |a, &d| a.saturating_mul(d))))
            }
            _ => None,
        }
    }
}

impl<'a> From<&'a [f32]> for TensorView<'a> {
    fn from(d: &'a [f32]) -> Self {
        TensorView::flat(d)
    }
}

impl<'a> From<&'a [f64]> for TensorView<'a> {
    fn from(d: &'a [f64]) -> Self {
        TensorView::flat(d)
    }
}

/// The activation function that produced a tensor; decides what counts as saturated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// Unknown or not an activation output: nothing counts as saturated.
    #[default]
    None,
    /// Identity.
    Linear,
    /// ReLU and its variants: nothing counts as saturated (zeros are dead units, not saturation).
    Relu,
    /// Logistic sigmoid (and softmax outputs): saturated when `a < 0.01` or `a > 0.99`.
    Sigmoid,
    /// Hyperbolic tangent: saturated when `|a| > 0.99`.
    Tanh,
}

impl Activation {
    /// The lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// Whether `a` counts as saturated for this activation. NaN and infinities never do.
    #[inline]
    pub fn is_saturated(self, a: f64) -> bool {
        match self {
            Activation::Sigmoid => a.is_finite() && !(0.01..=0.99).contains(&a),
            Activation::Tanh => a.is_finite() && a.abs() > 0.99,
            _ => false,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Activation {
    type Err = std::convert::Infallible;

    /// Recognises common names (`relu`, `leaky_relu`, `gelu`, `sigmoid`, `softmax`, `tanh`,
    /// `linear`, ...), ignoring case; anything else is [`Activation::None`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        Ok(match s.as_str() {
            "relu" | "relu6" | "leaky_relu" | "leakyrelu" | "elu" | "selu" | "gelu" | "silu"
            | "swish" => Activation::Relu,
            "sigmoid" | "logistic" | "softmax" | "hard_sigmoid" => Activation::Sigmoid,
            "tanh" | "hardtanh" => Activation::Tanh,
            "linear" | "identity" => Activation::Linear,
            _ => Activation::None,
        })
    }
}

/// Units that are zero for every sample of a `[samples, units...]` tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadUnits {
    /// Units whose value is exactly zero in every sample.
    pub dead: u64,
    /// Units per sample.
    pub units: u64,
}

/// The result of [`tensor_stats`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorStats {
    /// Number of elements.
    pub count: u64,
    /// Elements exactly equal to zero.
    pub zeros: u64,
    /// NaN elements.
    pub nan: u64,
    /// Infinite elements.
    pub inf: u64,
    /// Smallest finite element (NaN when there is none).
    pub min: f64,
    /// Largest finite element (NaN when there is none).
    pub max: f64,
    /// Mean of the finite elements (NaN when there is none).
    pub mean: f64,
    /// Population standard deviation of the finite elements (NaN when there is none).
    pub std: f64,
    /// L2 norm of the finite elements.
    pub l2: f64,
    /// Elements saturated for [`TensorStats::activation`].
    pub saturated: u64,
    /// The activation the saturation count refers to.
    pub activation: Activation,
    /// Dead units, for tensors of two or more dimensions.
    pub dead_units: Option<DeadUnits>,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

impl TensorStats {
    /// Finite elements.
    pub fn finite(&self) -> u64 {
        self.count - self.nan - self.inf
    }

    /// Percentage of elements that are exactly zero.
    pub fn zeros_pct(&self) -> f64 {
        pct(self.zeros, self.count)
    }

    /// Percentage of elements that are saturated.
    pub fn saturation_pct(&self) -> f64 {
        pct(self.saturated, self.count)
    }

    /// Percentage of units that are zero for every sample, if the tensor had units.
    pub fn dead_units_pct(&self) -> Option<f64> {
        self.dead_units.map(|d| pct(d.dead, d.units))
    }

    /// Whether any element is NaN or infinite.
    pub fn has_non_finite(&self) -> bool {
        self.nan > 0 || self.inf > 0
    }

    /// The statistics as event data (`count`, `zeros_pct`, `mean`, ...).
    pub fn to_data(&self) -> Data {
        let mut d = Data::with_capacity(16);
        d.insert("count", self.count);
        d.insert("mean", self.mean);
        d.insert("std", self.std);
        d.insert("min", self.min);
        d.insert("max", self.max);
        d.insert("l2_norm", self.l2);
        d.insert("zeros_pct", self.zeros_pct());
        d.insert("nan_count", self.nan);
        d.insert("inf_count", self.inf);
        d.insert("activation", self.activation.as_str());
        d.insert("saturation_pct", self.saturation_pct());
        if let Some(dead) = self.dead_units {
            d.insert("dead_units", dead.dead);
            d.insert("units", dead.units);
            d.insert("dead_units_pct", pct(dead.dead, dead.units));
        }
        d
    }
}

/// Which implementation computes [`tensor_stats`].
///
/// Every kernel produces bit-identical results on every input; they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 (x86-64), selected at run time when the CPU has it.
    Avx2,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 2] = [Kernel::Avx2, Kernel::Portable];

    /// The fastest kernel this CPU supports. The CPU is queried once; later calls read a
    /// cached flag.
    pub fn detect() -> Kernel {
        Kernel::ALL.into_iter().find(|k| k.is_available()).unwrap_or(Kernel::Portable)
    }

    /// Whether this CPU can run the kernel. [`tensor_stats_with`] falls back to
    /// [`Kernel::Portable`] for a kernel that is not available.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::Avx2::get().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => false,
        }
    }

    /// The kernels this CPU can run, fastest first.
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// The kernel's name.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Computes the statistics of a tensor in one pass with the fastest kernel for this CPU.
///
/// Never fails: an empty tensor has `count == 0` and NaN moments; NaN and infinities are counted.
pub fn tensor_stats(view: TensorView<'_>, activation: Activation) -> TensorStats {
    tensor_stats_with(Kernel::detect(), view, activation)
}

/// [`tensor_stats`] with a chosen kernel (for tests and benchmarks). A kernel this CPU cannot
/// run is replaced by [`Kernel::Portable`], which gives the same results.
pub fn tensor_stats_with(
    kernel: Kernel,
    view: TensorView<'_>,
    activation: Activation,
) -> TensorStats {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            if let Some(k) = avx2::Avx2::get() {
                return run(k, view, activation);
            }
        }
        _ => {}
    }
    run(portable::Portable, view, activation)
}

fn run<K: driver::BlockKernel>(
    kernel: K,
    view: TensorView<'_>,
    activation: Activation,
) -> TensorStats {
    let units = view.samples_and_units();
    match view.data() {
        TensorData::F32(d) => driver::run(kernel, d, units, activation),
        TensorData::F64(d) => driver::run(kernel, d, units, activation),
    }
}
