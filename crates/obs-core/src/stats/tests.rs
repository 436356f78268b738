//! Tests of the statistics kernels against a naive two-pass reference.
//!
//! Counts, min, max and dead units must match the reference exactly. Every available kernel
//! must match every other bit for bit. `mean`, `std` and `l2` are compared with tolerances
//! derived from the kernel's summation structure:
//!
//! * The reference sums with Neumaier compensation, so its own error is a few ulps.
//! * The kernel sums blocks of at most 4096 elements in 8 lanes, so each lane adds at most 512
//!   terms recursively, and then combines the lanes pairwise and the blocks with Chan's
//!   formula. A block's sum of squares is either summed directly (relative error at most
//!   `(512 + 3) * eps ≈ 1.2e-13`) or derived from the shifted sums only when their rounding
//!   bound is at most 8 times the result (`driver::block_sq`), i.e. within `9.2e-13`; `l2`, its
//!   square root, is then within `4.6e-13 < 1e-12`.
//! * Plain sums (`k = 0` below) are used for a block only when its `max|x|² <= 5 (max - min)²`
//!   (`driver::plain_is_accurate`), which keeps every bound below; other blocks are shifted.
//! * `mean = k + Σ(x - k) / n` with the shift `k` inside `[min, max]`: the error of `Σ(x - k)`
//!   is at most `515 * eps * Σ|x - k| ≤ 1.2e-13 * n * (max - min)`, so `|Δmean| ≤ 1e-12 *
//!   max|x|`.
//! * The variance is `(Σ(x - k)² - (Σ(x - k))² / n) / n`; both sums carry the relative error
//!   above over terms bounded by `(max - min)²`, so `|Δvar| ≤ 1e-12 * (max - min)²`, plus a
//!   few ulps of `max|x|²` for the rounding of `k` itself (visible only on constant data).
//!   The test compares `std²` with the reference variance under that bound.

use proptest::prelude::*;

use super::driver::{BLOCK, SAT_HI, SAT_HI_F32, SAT_LO, SAT_LO_F32};
use super::*;

const ACTS: [Activation; 5] =
    [Activation::None, Activation::Linear, Activation::Relu, Activation::Sigmoid, Activation::Tanh];

/// Sums with Neumaier's compensation.
fn neumaier(it: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in it {
        let t = s + x;
        c += if s.abs() >= x.abs() { (s - t) + x } else { (x - t) + s };
        s = t;
    }
    s + c
}

#[derive(Debug)]
struct Reference {
    count: u64,
    zeros: u64,
    nan: u64,
    inf: u64,
    saturated: u64,
    min: f64,
    max: f64,
    mean: f64,
    /// Variance in units of `unit²`.
    var: f64,
    l2: f64,
    /// The largest finite magnitude (1 if all are zero).
    unit: f64,
    dead_units: Option<DeadUnits>,
}

/// The obvious two-pass computation over `f64` values.
fn reference(x: &[f64], units: Option<(usize, usize)>, act: Activation) -> Reference {
    let fin: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    let n = fin.len() as f64;
    let mean = if fin.is_empty() { f64::NAN } else { neumaier(fin.iter().copied()) / n };
    // Squares are taken in units of the largest magnitude so that they neither overflow nor
    // underflow: `var` is the variance in those units.
    let big = fin.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let unit = if big > 0.0 { big } else { 1.0 };
    let var = if fin.is_empty() {
        f64::NAN
    } else {
        neumaier(fin.iter().map(|v| ((v - mean) / unit).powi(2))) / n
    };
    let dead_units = units.and_then(|(rows, cols)| {
        (rows > 0 && cols > 0).then(|| DeadUnits {
            dead: (0..cols).filter(|&j| (0..rows).all(|i| x[i * cols + j] == 0.0)).count() as u64,
            units: cols as u64,
        })
    });
    Reference {
        count: x.len() as u64,
        zeros: x.iter().filter(|&&v| v == 0.0).count() as u64,
        nan: x.iter().filter(|v| v.is_nan()).count() as u64,
        inf: x.iter().filter(|v| v.is_infinite()).count() as u64,
        saturated: x.iter().filter(|&&v| act.is_saturated(v)).count() as u64,
        min: fin.iter().copied().reduce(f64::min).unwrap_or(f64::NAN),
        max: fin.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
        mean,
        var,
        l2: unit * neumaier(fin.iter().map(|v| (v / unit).powi(2))).sqrt(),
        unit,
        dead_units,
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

/// Whether two results are equal bit for bit (NaN included).
fn identical(a: &TensorStats, b: &TensorStats) -> bool {
    (a.count, a.zeros, a.nan, a.inf, a.saturated, a.activation, a.dead_units)
        == (b.count, b.zeros, b.nan, b.inf, b.saturated, b.activation, b.dead_units)
        && [(a.min, b.min), (a.max, b.max), (a.mean, b.mean), (a.std, b.std), (a.l2, b.l2)]
            .iter()
            .all(|&(x, y)| same_f64(x, y))
}

/// Runs every available kernel, asserts they agree bit for bit, and returns the result.
fn stats_all(view: TensorView<'_>, act: Activation) -> TensorStats {
    let first = tensor_stats_with(Kernel::Portable, view, act);
    for k in Kernel::available() {
        let s = tensor_stats_with(k, view, act);
        assert!(identical(&s, &first), "kernel {k} differs from portable:\n{s:?}\n{first:?}");
    }
    assert!(identical(&tensor_stats(view, act), &first));
    first
}

fn widened(view: &TensorView<'_>) -> Vec<f64> {
    match view.data() {
        TensorData::F32(d) => d.iter().map(|&v| f64::from(v)).collect(),
        TensorData::F64(d) => d.to_vec(),
    }
}

/// Checks `view` against the reference with the tolerances in the module docs.
fn check(view: TensorView<'_>, act: Activation) -> TensorStats {
    let s = stats_all(view, act);
    let x = widened(&view);
    let r = reference(&x, view.samples_and_units(), act);
    let ctx = || format!("data {x:?}\nshape {:?}\ngot {s:?}\nreference {r:?}", view.shape());
    assert_eq!(
        (s.count, s.zeros, s.nan, s.inf, s.saturated),
        (r.count, r.zeros, r.nan, r.inf, r.saturated),
        "{}",
        ctx()
    );
    assert_eq!(s.dead_units, r.dead_units, "{}", ctx());
    assert_eq!(s.activation, act);
    if r.count == r.nan + r.inf {
        assert!(s.min.is_nan() && s.max.is_nan() && s.mean.is_nan() && s.std.is_nan(), "{}", ctx());
        assert!(same_f64(s.l2, 0.0), "{}", ctx());
        return s;
    }
    // `==` so that -0.0 and 0.0 are the same minimum.
    assert!(s.min == r.min && s.max == r.max, "{}", ctx());
    // A result in the subnormal range is only representable to within its spacing.
    let grain = 2.0 * f64::from_bits(1);
    let big = r.min.abs().max(r.max.abs());
    let range = r.max - r.min;
    assert!((s.mean - r.mean).abs() <= 1e-12 * big + grain, "mean: {}", ctx());
    let ref_std = r.unit * r.var.sqrt();
    let (range, std) = (range / r.unit, s.std / r.unit);
    let var_tol = 1e-12 * range * range + 1e-28;
    let std_ok = (std * std - r.var).abs() <= var_tol || (s.std - ref_std).abs() <= grain;
    assert!(std_ok, "std: {}", ctx());
    assert!((s.l2 - r.l2).abs() <= 1e-12 * r.l2 + grain, "l2: {}", ctx());
    s
}

fn check_all_acts(view: TensorView<'_>) {
    for act in ACTS {
        check(view, act);
    }
}

#[test]
fn empty_tensor_has_count_zero_and_nan_moments() {
    for view in [TensorView::flat(&[] as &[f32]), TensorView::flat(&[] as &[f64])] {
        let s = stats_all(view, Activation::Sigmoid);
        assert_eq!((s.count, s.zeros, s.nan, s.inf, s.saturated), (0, 0, 0, 0, 0));
        assert!(s.min.is_nan() && s.max.is_nan() && s.mean.is_nan() && s.std.is_nan());
        assert!(same_f64(s.l2, 0.0));
        assert_eq!(s.dead_units, None);
        assert_eq!((s.zeros_pct(), s.saturation_pct()), (0.0, 0.0));
    }
}

#[test]
fn one_element() {
    let s = check(TensorView::flat(&[-2.5f32][..]), Activation::Tanh);
    assert_eq!((s.count, s.min, s.max, s.mean, s.std, s.l2), (1, -2.5, -2.5, -2.5, 0.0, 2.5));
    assert_eq!(s.saturated, 1);
    let s = check(TensorView::new(&[0.0f64][..], &[1, 1]).unwrap(), Activation::Relu);
    assert_eq!(s.dead_units, Some(DeadUnits { dead: 1, units: 1 }));
    assert_eq!(s.zeros, 1);
}

#[test]
fn all_nan_and_all_inf() {
    let nan = vec![f32::NAN; 37];
    let s = check(TensorView::flat(&nan), Activation::Sigmoid);
    assert_eq!((s.nan, s.inf, s.saturated, s.finite()), (37, 0, 0, 0));
    assert!(s.has_non_finite());
    let inf: Vec<f64> =
        (0..37).map(|i| if i % 3 == 0 { f64::NEG_INFINITY } else { f64::INFINITY }).collect();
    let s = check(TensorView::flat(&inf), Activation::Tanh);
    assert_eq!((s.nan, s.inf, s.saturated, s.zeros), (0, 37, 0, 0));
    assert!(s.mean.is_nan() && s.min.is_nan());
}

#[test]
fn non_finite_values_are_counted_not_mixed_in() {
    let x = [1.0f64, f64::NAN, 3.0, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 5.0, 7.0];
    let s = check(TensorView::flat(&x[..]), Activation::Sigmoid);
    assert_eq!((s.count, s.nan, s.inf, s.zeros, s.finite()), (9, 1, 2, 2, 6));
    assert_eq!((s.min, s.max), (0.0, 7.0));
    assert!((s.mean - 16.0 / 6.0).abs() < 1e-15);
    assert!((s.l2 / 84f64.sqrt() - 1.0).abs() < 1e-15);
    // Sigmoid saturation: 0, -0, 1, 3, 5, 7 are all outside [0.01, 0.99]; NaN/Inf never count.
    assert_eq!(s.saturated, 6);
}

#[test]
fn negative_zero_is_zero_and_can_be_dead() {
    let x = [-0.0f32, 1.0, -0.0, 0.0, 0.0, -0.0];
    let s = check(TensorView::new(&x[..], &[3, 2]).unwrap(), Activation::Relu);
    assert_eq!(s.zeros, 5);
    assert_eq!(s.dead_units, Some(DeadUnits { dead: 1, units: 2 }));
    let s = check(TensorView::flat(&[-0.0f64; 11][..]), Activation::None);
    assert_eq!((s.min, s.max, s.mean, s.std, s.l2), (0.0, 0.0, 0.0, 0.0, 0.0));
}

#[test]
fn subnormals() {
    let tiny32 = f32::from_bits(1);
    let s = check(TensorView::flat(&[tiny32, -tiny32, tiny32, 0.0][..]), Activation::None);
    assert_eq!((s.min, s.max, s.zeros), (-f64::from(tiny32), f64::from(tiny32), 1));
    // f64 subnormals square to zero in f64; the rescaled fallback keeps the norm exact.
    let tiny = f64::from_bits(3);
    let s = stats_all(TensorView::flat(&[tiny; 16][..]), Activation::None);
    assert_eq!((s.min, s.max, s.mean, s.std), (tiny, tiny, tiny, 0.0));
    assert_eq!(s.l2, 4.0 * tiny);
    // Results below the smallest subnormal round to zero, as they must.
    check(TensorView::flat(&[f64::MIN_POSITIVE][..]), Activation::None);
    let x = [-0.0, 0.0, -0.0, 5e-324, -0.0, f64::INFINITY, -0.0, 0.0];
    check(TensorView::new(&x[..], &[4, 2]).unwrap(), Activation::Linear);
    let s = stats_all(TensorView::flat(&[1e-300, -1e-300, 1e-300, -1e-300][..]), Activation::None);
    assert_eq!(s.mean, 0.0);
    assert!((s.std / 1e-300 - 1.0).abs() < 1e-15 && (s.l2 / 2e-300 - 1.0).abs() < 1e-15, "{s:?}");
}

#[test]
fn huge_values_do_not_overflow_where_the_result_is_representable() {
    let s = stats_all(TensorView::flat(&[1e300, -1e300][..]), Activation::None);
    assert_eq!((s.mean, s.std), (0.0, 1e300));
    assert!((s.l2 / (1e300 * 2f64.sqrt()) - 1.0).abs() < 1e-15, "{s:?}");
    let x = vec![1e200f64; 1000];
    let s = stats_all(TensorView::flat(&x), Activation::None);
    assert_eq!((s.mean, s.std), (1e200, 0.0));
    assert!((s.l2 / (1e200 * 1000f64.sqrt()) - 1.0).abs() < 1e-14, "{s:?}");
    // f32 data can never overflow the f64 sums.
    let x = vec![f32::MAX; 1000];
    let s = check(TensorView::flat(&x), Activation::None);
    assert!(s.l2.is_finite() && s.std == 0.0);
    // A true result beyond f64::MAX is infinite; nothing panics and nothing is NaN.
    let s = stats_all(TensorView::flat(&[f64::MAX, -f64::MAX, f64::MAX][..]), Activation::None);
    assert_eq!((s.min, s.max, s.inf), (-f64::MAX, f64::MAX, 0));
    assert!((s.mean / (f64::MAX / 3.0) - 1.0).abs() < 1e-15, "{s:?}");
    assert!(s.std.is_finite() && s.l2 == f64::INFINITY, "{s:?}");
}

#[test]
fn large_offset_with_tiny_noise_keeps_its_std() {
    let noise = |i: usize| [-3.0, 1.0, 2.0, -1.0, 0.5][i % 5] * 1e-3;
    let x: Vec<f64> = (0..10_000).map(|i| 1e6 + noise(i)).collect();
    let s = check(TensorView::flat(&x), Activation::None);
    let r = reference(&x, None, Activation::None);
    assert!((s.std / (r.unit * r.var.sqrt()) - 1.0).abs() < 1e-6, "{s:?} vs {r:?}");
    // Data that drifts from 0 to 1e9 between blocks: each block has its own shift.
    let x: Vec<f64> =
        (0..3 * BLOCK).map(|i| if i < BLOCK + 17 { noise(i) } else { 1e9 + noise(i) }).collect();
    let s = check(TensorView::flat(&x), Activation::None);
    let r = reference(&x, None, Activation::None);
    assert!((s.std / (r.unit * r.var.sqrt()) - 1.0).abs() < 1e-9, "{s:?} vs {r:?}");
    let x: Vec<f32> = (0..5000).map(|i| 1e6 + [0.0, 0.0625, -0.125][i % 3]).collect();
    let s = check(TensorView::flat(&x), Activation::None);
    let r = reference(&widened(&TensorView::flat(&x)), None, Activation::None);
    assert!((s.std / (r.unit * r.var.sqrt()) - 1.0).abs() < 1e-6, "{s:?} vs {r:?}");
}

#[test]
fn sum_of_squares_stays_accurate_when_a_block_starts_unrepresentatively() {
    // The shift is the mean of a block's first eight values: here far from the rest, so the
    // sum of squares cannot be derived from the shifted sums and is summed directly.
    for head in [1e3, -1e6, 1e12] {
        let x: Vec<f64> = (0..2 * BLOCK + 100)
            .map(|i| if i % BLOCK < 8 { head } else { ((i * 7919) % 1000) as f64 * 1e-6 - 5e-4 })
            .collect();
        let y: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        check(TensorView::flat(&x), Activation::None);
        check(TensorView::flat(&y), Activation::None);
    }
}

#[test]
fn degenerate_shapes_give_no_dead_units_and_never_panic() {
    let empty: &[f32] = &[];
    for shape in [&[0usize, 5][..], &[3, 0], &[0, 0], &[0, usize::MAX, 2], &[2, 0, 7]] {
        let view = TensorView::new(empty, shape).unwrap();
        let s = stats_all(view, Activation::Relu);
        assert_eq!((s.count, s.dead_units), (0, None), "{shape:?}");
    }
    // Wide rows, and rows shorter than a chunk.
    for cols in [1, 3, 7, 8, 9, 100] {
        let x: Vec<f32> =
            (0..cols * 13).map(|i| if i % cols == 1 { 0.0 } else { i as f32 }).collect();
        let shape = [13, cols];
        let s = check(TensorView::new(&x, &shape).unwrap(), Activation::Relu);
        let expected = if cols > 1 { 1 } else { 0 };
        assert_eq!(s.dead_units.unwrap().dead, expected, "cols {cols}");
    }
}

#[test]
fn dead_units_across_blocks_in_both_mask_paths() {
    // Rows of a multiple of 8 and others, rows shorter and longer than a block.
    for cols in [8usize, 24, 4096, 12, 4097] {
        let rows = (3 * BLOCK).div_ceil(cols) + 1;
        let mut x: Vec<f32> = (0..rows * cols)
            .map(|i| if (i % cols) % 5 == 2 { 0.0 } else { ((i % 13) as f32 - 6.0) * 0.25 })
            .collect();
        // Column 2 is dead but for one element in the last row; a NaN forces the careful pass
        // in the second block, which ORs its words a second time.
        x[(rows - 1) * cols + 2] = 1.0;
        x[BLOCK + 3] = f32::NAN;
        let shape = [rows, cols];
        let s = check(TensorView::new(&x, &shape).unwrap(), Activation::Relu);
        // NaN is not zero, so the NaN's unit is alive too.
        let nan_unit = (BLOCK + 3) % cols;
        let dead = (0..cols).filter(|&j| j % 5 == 2 && j != 2 && j != nan_unit).count() as u64;
        assert_eq!(s.dead_units, Some(DeadUnits { dead, units: cols as u64 }), "cols {cols}");
    }
}

#[test]
fn every_length_up_to_40_and_around_a_block() {
    let value = |i: usize| match i % 11 {
        0 => 0.0,
        3 => -0.5,
        5 => 0.995,
        7 => 0.005,
        _ => (i as f64).sin() * 3.0,
    };
    for len in (0..=40).chain([BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 7]) {
        let x: Vec<f64> = (0..len).map(value).collect();
        let y: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        check_all_acts(TensorView::flat(&x));
        check_all_acts(TensorView::flat(&y));
        // One non-finite value at every position of short tensors (tail or body, first or
        // last lane), and at the edges of a block.
        let positions: Vec<usize> =
            if len <= 40 { (0..len).collect() } else { vec![0, 7, 8, len / 2, len - 1] };
        for p in positions {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let mut x = x.clone();
                x[p] = bad;
                let y: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                check(TensorView::flat(&x), Activation::Sigmoid);
                check(TensorView::flat(&y), Activation::Tanh);
            }
        }
    }
}

#[test]
fn f32_saturation_thresholds_agree_with_f64_comparison() {
    for t in [SAT_LO_F32, SAT_HI_F32] {
        let around =
            [t.next_down().next_down(), t.next_down(), t, t.next_up(), t.next_up().next_up()];
        for x in around.into_iter().flat_map(|v| [v, -v]) {
            for act in [Activation::Sigmoid, Activation::Tanh] {
                let expected = act.is_saturated(f64::from(x));
                // A full chunk goes through the SIMD loop, a single element through the tail.
                let s = stats_all(TensorView::flat(&[x; 8][..]), act);
                assert_eq!(s.saturated, if expected { 8 } else { 0 }, "{x} {act}");
                let s = stats_all(TensorView::flat(&[x][..]), act);
                assert_eq!(s.saturated, u64::from(expected), "{x} {act}");
            }
        }
    }
    assert!(f64::from(SAT_LO_F32) >= SAT_LO && f64::from(SAT_LO_F32.next_down()) < SAT_LO);
    assert!(f64::from(SAT_HI_F32) <= SAT_HI && f64::from(SAT_HI_F32.next_up()) > SAT_HI);
}

#[test]
fn counters_add_up_over_many_blocks() {
    let x = vec![0.0f32; 5 * (7 * BLOCK + 3)];
    let s = check(TensorView::new(&x, &[x.len() / 5, 5]).unwrap(), Activation::Sigmoid);
    assert_eq!((s.zeros, s.saturated), (x.len() as u64, x.len() as u64));
    assert_eq!(s.dead_units, Some(DeadUnits { dead: 5, units: 5 }));
}

#[test]
fn kernel_detection_is_cached_and_consistent() {
    let k = Kernel::detect();
    assert!(k.is_available());
    assert_eq!(Kernel::detect(), k);
    assert!(Kernel::available().contains(&Kernel::Portable));
    assert_eq!(Kernel::available()[0], k);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(Kernel::Avx2.is_available(), std::arch::is_x86_feature_detected!("avx2"));
    assert_eq!(Kernel::Avx2.to_string(), "avx2");
}

#[test]
fn samples_and_units_saturates_instead_of_overflowing() {
    let empty: &[f64] = &[];
    let v = TensorView::new(empty, &[0, usize::MAX, 3]).unwrap();
    assert_eq!(v.samples_and_units(), Some((0, usize::MAX)));
}

/// Values that exercise every branch: ordinary numbers, zeros of both signs, NaN, infinities,
/// subnormals, the saturation thresholds and a large offset.
fn value_f64() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        8 => -1e3f64..1e3,
        2 => Just(0.0),
        1 => Just(-0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => prop::sample::select(vec![
            f64::MIN_POSITIVE, 5e-324, -1e-310, SAT_LO, SAT_HI, -SAT_HI, 0.995, 0.005, 1.0, -1.0,
            1e100, -1e100,
        ]),
        1 => (-1.0f64..1.0).prop_map(|e| 1e6 + e * 1e-3),
    ]
}

fn value_f32() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        8 => -1e3f32..1e3,
        2 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => prop::sample::select(vec![
            f32::MIN_POSITIVE, f32::from_bits(1), -f32::from_bits(77), SAT_LO_F32, SAT_HI_F32,
            SAT_HI_F32.next_up(), -SAT_HI_F32, 0.995, 0.005, f32::MAX, -f32::MAX,
        ]),
        1 => (-1.0f32..1.0).prop_map(|e| 1e6 + e * 64.0),
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop::sample::select(ACTS.to_vec())
}

/// A `[rows, cols]` tensor with some columns forced to (signed) zero so that dead units occur.
fn matrix<T: Copy + std::fmt::Debug + 'static>(
    value: impl Strategy<Value = T> + Clone,
    zero: T,
) -> impl Strategy<Value = (Vec<T>, usize, usize)> {
    (0usize..12, 0usize..24).prop_flat_map(move |(rows, cols)| {
        (
            prop::collection::vec(value.clone(), rows * cols),
            prop::collection::vec(any::<bool>(), cols),
            Just(rows),
            Just(cols),
        )
            .prop_map(move |(mut x, dead, rows, cols)| {
                for (j, d) in dead.iter().enumerate() {
                    if *d {
                        for i in 0..rows {
                            x[i * cols + j] = zero;
                        }
                    }
                }
                (x, rows, cols)
            })
    })
}

/// XorShift: the default ChaCha generator dominates the run time in unoptimised builds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_algorithm: prop::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn flat_f64_matches_reference(x in prop::collection::vec(value_f64(), 0..300), act in activation()) {
        check(TensorView::flat(&x), act);
    }

    #[test]
    fn flat_f32_matches_reference(x in prop::collection::vec(value_f32(), 0..300), act in activation()) {
        check(TensorView::flat(&x), act);
    }

    #[test]
    fn matrix_f64_matches_reference((x, rows, cols) in matrix(value_f64(), -0.0), act in activation()) {
        let shape = [rows, cols];
        check(TensorView::new(&x, &shape).unwrap(), act);
    }

    #[test]
    fn matrix_f32_matches_reference((x, rows, cols) in matrix(value_f32(), 0.0), act in activation()) {
        let shape = [rows, cols, 1];
        check(TensorView::new(&x, &shape).unwrap(), act);
    }

    /// Scaling by a power of two is exact, so the statistics must scale with it, including
    /// into the range where squares overflow or underflow and the rescaled fallback runs.
    #[test]
    fn f64_statistics_scale_with_powers_of_two(
        x in prop::collection::vec((0.5f64..2.0, any::<bool>()).prop_map(|(v, neg)| if neg { -v } else { v }), 1..200),
        e in -1020i32..1020,
    ) {
        let base = stats_all(TensorView::flat(&x), Activation::None);
        let scaled: Vec<f64> = x.iter().map(|v| v * 2f64.powi(e / 2) * 2f64.powi(e - e / 2)).collect();
        let s = stats_all(TensorView::flat(&scaled), Activation::None);
        let f = |v: f64| v * 2f64.powi(e / 2) * 2f64.powi(e - e / 2);
        prop_assert_eq!((s.min, s.max), (f(base.min), f(base.max)));
        let big = f(base.min.abs().max(base.max.abs()));
        prop_assert!((s.mean - f(base.mean)).abs() <= 1e-12 * big, "{:?} {:?}", s, base);
        prop_assert!((s.std - f(base.std)).abs() <= 1e-6 * big, "{:?} {:?}", s, base);
        prop_assert!((s.l2 - f(base.l2)).abs() <= 1e-12 * f(base.l2), "{:?} {:?}", s, base);
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Tensors spanning several blocks, with a few non-finite values scattered in.
    #[test]
    fn multi_block_tensors_match_reference(
        len in BLOCK - 9..3 * BLOCK + 9,
        seed in any::<u64>(),
        bad in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 0..4),
        act in activation(),
    ) {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x: Vec<f64> = (0..len).map(|_| next() * 2.0 - 0.5).collect();
        for (i, kind) in &bad {
            x[i.index(len)] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][usize::from(*kind)];
        }
        let y: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let cols = 1 + len % 97;
        let shape = [len / cols, cols];
        let n = shape[0] * cols;
        check(TensorView::flat(&x), act);
        check(TensorView::new(&y[..n], &shape).unwrap(), act);
    }
}
