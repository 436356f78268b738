//! The portable kernel: plain Rust, any CPU.
//!
//! Its loops mirror the AVX2 kernel lane for lane (eight lanes; lane `i` takes element `i` of
//! every chunk; the same operations in the same order; no fused multiply-add), so the two give
//! bit-identical results. The compiler is free to vectorise these loops; that never changes a
//! result, because it may not reorder floating-point operations.

use super::driver::{
    BlockKernel, LANES, Lanes, SAT_HI, SAT_HI_F32, SAT_LO, SAT_LO_F32, SAT_SIGMOID, SAT_TANH,
    max_rule, min_rule,
};

/// Lanes per AVX2 register of `f64`.
const HALF: usize = LANES / 2;

/// The portable kernel.
#[derive(Clone, Copy, Debug)]
pub(super) struct Portable;

// Written as the two comparisons the SIMD kernel makes (false for NaN), not as a range.
#[allow(clippy::manual_range_contains)]
#[inline(always)]
fn sat_f32<const S: u8>(x: f32) -> bool {
    match S {
        SAT_SIGMOID => x < SAT_LO_F32 || x > SAT_HI_F32,
        SAT_TANH => x.abs() > SAT_HI_F32,
        _ => false,
    }
}

#[allow(clippy::manual_range_contains)]
#[inline(always)]
fn sat_f64<const S: u8>(x: f64) -> bool {
    match S {
        SAT_SIGMOID => x < SAT_LO || x > SAT_HI,
        SAT_TANH => x.abs() > SAT_HI,
        _ => false,
    }
}

/// Sums the per-lane counters of a block. Lane counts are bounded by the block size.
#[inline(always)]
fn total(c: &[u32; LANES]) -> u64 {
    c.iter().map(|&n| u64::from(n)).sum()
}

/// The term a lane adds to its sums: `x - k` with `H`, else `x`.
#[inline(always)]
fn term<const H: bool>(x: f64, k: f64) -> f64 {
    if H { x - k } else { x }
}

impl BlockKernel for Portable {
    fn f32_fast<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (mut mn, mut mx) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
        let (mut zeros, mut sat) = ([0u32; LANES], [0u32; LANES]);
        for c in body {
            for i in 0..LANES {
                let x = c[i];
                zeros[i] += u32::from(x == 0.0);
                sat[i] += u32::from(sat_f32::<S>(x));
                mn[i] = min_rule(mn[i], x);
                mx[i] = max_rule(mx[i], x);
                let xd = f64::from(x);
                let d = term::<H>(xd, k);
                s1[i] += d;
                s2[i] += d * d;
            }
        }
        *out = Lanes {
            s1,
            s2,
            min: mn.map(f64::from),
            max: mx.map(f64::from),
            zeros: total(&zeros),
            saturated: total(&sat),
            nan: 0,
            finite: (body.len() * LANES) as u64,
        };
    }

    fn f32_careful<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (mut mn, mut mx) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
        let (mut zeros, mut sat) = ([0u32; LANES], [0u32; LANES]);
        let (mut nan, mut finite) = ([0u32; LANES], [0u32; LANES]);
        for c in body {
            for i in 0..LANES {
                let x = c[i];
                let fin = x.abs() < f32::INFINITY;
                nan[i] += u32::from(x.is_nan());
                finite[i] += u32::from(fin);
                zeros[i] += u32::from(x == 0.0);
                sat[i] += u32::from(sat_f32::<S>(x) && fin);
                mn[i] = min_rule(mn[i], if fin { x } else { f32::INFINITY });
                mx[i] = max_rule(mx[i], if fin { x } else { f32::NEG_INFINITY });
                let xd = f64::from(x);
                let d = if fin { term::<H>(xd, k) } else { 0.0 };
                s1[i] += d;
                s2[i] += d * d;
            }
        }
        *out = Lanes {
            s1,
            s2,
            min: mn.map(f64::from),
            max: mx.map(f64::from),
            zeros: total(&zeros),
            saturated: total(&sat),
            nan: total(&nan),
            finite: total(&finite),
        };
    }

    fn f64_fast<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (mut mn, mut mx) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
        let (mut zeros, mut sat) = ([0u32; LANES], [0u32; LANES]);
        for c in body {
            // Min and max pair lanes i and i + 4 first: half the accumulators, which keeps the
            // AVX2 loop's in registers.
            for i in 0..HALF {
                mn[i] = min_rule(mn[i], min_rule(c[i], c[i + HALF]));
                mx[i] = max_rule(mx[i], max_rule(c[i], c[i + HALF]));
            }
            for i in 0..LANES {
                let x = c[i];
                zeros[i] += u32::from(x == 0.0);
                sat[i] += u32::from(sat_f64::<S>(x));
                let d = term::<H>(x, k);
                s1[i] += d;
                s2[i] += d * d;
            }
        }
        *out = Lanes {
            s1,
            s2,
            min: mn,
            max: mx,
            zeros: total(&zeros),
            saturated: total(&sat),
            nan: 0,
            finite: (body.len() * LANES) as u64,
        };
    }

    fn f64_careful<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (mut mn, mut mx) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
        let (mut zeros, mut sat) = ([0u32; LANES], [0u32; LANES]);
        let (mut nan, mut finite) = ([0u32; LANES], [0u32; LANES]);
        for c in body {
            let lo = c.map(|x| if x.is_finite() { x } else { f64::INFINITY });
            let hi = c.map(|x| if x.is_finite() { x } else { f64::NEG_INFINITY });
            for i in 0..HALF {
                mn[i] = min_rule(mn[i], min_rule(lo[i], lo[i + HALF]));
                mx[i] = max_rule(mx[i], max_rule(hi[i], hi[i + HALF]));
            }
            for i in 0..LANES {
                let x = c[i];
                let fin = x.abs() < f64::INFINITY;
                nan[i] += u32::from(x.is_nan());
                finite[i] += u32::from(fin);
                zeros[i] += u32::from(x == 0.0);
                sat[i] += u32::from(sat_f64::<S>(x) && fin);
                let d = if fin { term::<H>(x, k) } else { 0.0 };
                s1[i] += d;
                s2[i] += d * d;
            }
        }
        *out = Lanes {
            s1,
            s2,
            min: mn,
            max: mx,
            zeros: total(&zeros),
            saturated: total(&sat),
            nan: total(&nan),
            finite: total(&finite),
        };
    }
}
