//! The part of the statistics pass that every kernel shares: blocking, the choice between plain
//! and shifted sums, merging blocks, the tail, dead units and the rescaled fallback for extreme
//! magnitudes.
//!
//! A kernel only reduces whole 8-element chunks of one block into eight lane accumulators
//! ([`Lanes`]). Lane `i` receives element `8 * j + i` of the block; everything after that (the tail, the order in which lanes and blocks are combined) happens
//! here, in one place, so two kernels that treat each lane alike produce bit-identical results.
//!
//! Dead units are not the kernels' business either: after each block the driver checks the
//! rows it completed against the units that have been zero so far (usually none after the
//! first few rows), so the chunk loops do the same work for every shape.

use super::{Activation, DeadUnits, TensorStats};

/// Elements per block. A multiple of [`LANES`]; small enough that a block of `f64` (32 KiB)
/// stays in L1 while its dead-unit mask is updated, and that 32-bit lane counters cannot
/// overflow before they are flushed into `u64`.
pub(super) const BLOCK: usize = 4096;

/// Lanes per chunk: two AVX2 registers of `f64`, or one of `f32`.
pub(super) const LANES: usize = 8;

/// Finite elements at the start of a block whose mean is the block's shift.
const SHIFT_SAMPLE: u32 = 8;

/// Tensors at least this large (in bytes) do not fit in the core's caches: the chunk loops then
/// prefetch ahead, which costs a load slot per chunk that in-cache data does not need.
pub(super) const PREFETCH_FROM_BYTES: usize = 1 << 20;

/// How saturation is counted, as a const generic so each kernel loop is specialised.
pub(super) const SAT_NONE: u8 = 0;
/// Sigmoid: `a < 0.01 || a > 0.99`.
pub(super) const SAT_SIGMOID: u8 = 1;
/// Tanh: `|a| > 0.99`.
pub(super) const SAT_TANH: u8 = 2;

/// The sigmoid/tanh thresholds as `f64`, exactly as [`Activation::is_saturated`] uses them.
pub(super) const SAT_LO: f64 = 0.01;
/// Upper saturation threshold.
pub(super) const SAT_HI: f64 = 0.99;

/// The smallest `f32` whose `f64` value is `>= 0.01`: for every `f32` `x`,
/// `f64::from(x) < 0.01` exactly when `x < SAT_LO_F32`, so `f32` data can be compared without
/// widening and still agree with [`Activation::is_saturated`].
pub(super) const SAT_LO_F32: f32 = {
    let r = SAT_LO as f32;
    if (r as f64) < SAT_LO { f32::from_bits(r.to_bits() + 1) } else { r }
};

/// The largest `f32` whose `f64` value is `<= 0.99`: `f64::from(x) > 0.99` exactly when
/// `x > SAT_HI_F32`.
pub(super) const SAT_HI_F32: f32 = {
    let r = SAT_HI as f32;
    if (r as f64) > SAT_HI { f32::from_bits(r.to_bits() - 1) } else { r }
};

/// Magnitudes beyond which the `f64` sums of squares could overflow (above) or lose precision
/// to subnormals (below); such tensors get their moments from the rescaled fallback.
const HUGE: f64 = f64::from_bits((1023 + 450) << 52);
const TINY: f64 = 1.0 / HUGE;

/// `min` as the `vminps`/`vminpd` instructions define it: the second operand unless the first
/// is strictly smaller. Every kernel uses exactly this rule so signed zeros come out alike.
#[inline(always)]
pub(super) fn min_rule<F: PartialOrd>(acc: F, x: F) -> F {
    if acc < x { acc } else { x }
}

/// `max` as `vmaxps`/`vmaxpd` define it.
#[inline(always)]
pub(super) fn max_rule<F: PartialOrd>(acc: F, x: F) -> F {
    if acc > x { acc } else { x }
}

/// The per-lane accumulators of one block, plus its counters.
///
/// `s1` and `s2` are sums of `x` and `x²` (plain sums), or of `x - k` and `(x - k)²` for the
/// block's shift `k` when plain sums would cancel (see [`reduce_block`]). Non-finite elements
/// add `+0.0` to the sums and leave `min`/`max` alone. The `f64` chunk loops fold lane `i + 4`
/// into lane `i` for `min` and `max` (which keeps their accumulators in registers) and leave
/// lanes 4-7 at the identity.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lanes {
    pub(super) s1: [f64; LANES],
    pub(super) s2: [f64; LANES],
    pub(super) min: [f64; LANES],
    pub(super) max: [f64; LANES],
    pub(super) zeros: u64,
    pub(super) saturated: u64,
    pub(super) nan: u64,
    pub(super) finite: u64,
}

impl Lanes {
    pub(super) const fn new() -> Self {
        Lanes {
            s1: [0.0; LANES],
            s2: [0.0; LANES],
            min: [f64::INFINITY; LANES],
            max: [f64::NEG_INFINITY; LANES],
            zeros: 0,
            saturated: 0,
            nan: 0,
            finite: 0,
        }
    }

    /// Adds one tail element to lane `i`, with the careful loops' treatment of NaN and
    /// infinities. Shared code, so the tail is reduced alike whichever kernel ran the chunks.
    #[inline(always)]
    fn push(&mut self, i: usize, x: f64, k: f64, act: Activation) {
        let fin = x.is_finite();
        self.nan += u64::from(x.is_nan());
        self.finite += u64::from(fin);
        self.zeros += u64::from(x == 0.0);
        self.saturated += u64::from(act.is_saturated(x));
        self.min[i] = min_rule(self.min[i], if fin { x } else { f64::INFINITY });
        self.max[i] = max_rule(self.max[i], if fin { x } else { f64::NEG_INFINITY });
        let c = if fin { x - k } else { 0.0 };
        self.s1[i] += c;
        self.s2[i] += c * c;
    }
}

/// Sums eight lanes in a fixed pairwise order.
#[inline]
fn sum8(a: &[f64; LANES]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// An element type the kernels read.
pub(super) trait Elem: Copy + 'static {
    /// Whether values can exceed the range where `f64` squares are safe.
    const CAN_BE_EXTREME: bool;

    fn to_f64(self) -> f64;
    /// Whether the value is `±0.0` (NaN is not).
    fn is_zero(self) -> bool;

    /// Fast chunk loop for finite data. Any NaN or infinity (or an f64 square overflowing)
    /// leaves a non-finite `s2` lane, and the driver then redoes the block with `careful`.
    /// With `H`, the sums are of `x - k`; without, of `x`.
    fn fast<K: BlockKernel, const S: u8, const H: bool, const P: bool>(
        kern: K,
        body: &[[Self; LANES]],
        k: f64,
        out: &mut Lanes,
    );
    /// Chunk loop that handles NaN and infinities.
    fn careful<K: BlockKernel, const S: u8, const H: bool, const P: bool>(
        kern: K,
        body: &[[Self; LANES]],
        k: f64,
        out: &mut Lanes,
    );
}

impl Elem for f32 {
    // |x| <= f32::MAX ≈ 2^128, so x² <= 2^256: no sum of f32 squares can overflow f64, and
    // f32 subnormals (>= 2^-149) square to normal f64 values.
    const CAN_BE_EXTREME: bool = false;

    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn is_zero(self) -> bool {
        self.to_bits() & 0x7fff_ffff == 0
    }
    #[inline(always)]
    fn fast<K: BlockKernel, const S: u8, const H: bool, const P: bool>(
        kern: K,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        kern.f32_fast::<S, H, P>(body, k, out);
    }
    #[inline(always)]
    fn careful<K: BlockKernel, const S: u8, const H: bool, const P: bool>(
        kern: K,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        kern.f32_careful::<S, H, P>(body, k, out);
    }
}

impl Elem for f64 {
    const CAN_BE_EXTREME: bool = true;

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn is_zero(self) -> bool {
        self.to_bits() & 0x7fff_ffff_ffff_ffff == 0
    }
    #[inline(always)]
    fn fast<K: BlockKernel, const S: u8, const H: bool, const P: bool>(
        kern: K,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        kern.f64_fast::<S, H, P>(body, k, out);
    }
    #[inline(always)]
    fn careful<K: BlockKernel, const S: u8, const H: bool, const P: bool>(
        kern: K,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        kern.f64_careful::<S, H, P>(body, k, out);
    }
}

/// The chunk loops a kernel provides. Each starts from a fresh [`Lanes`] and, for each lane,
/// performs exactly the operations of [`Lanes::push`] (the fast loops: of `push` on finite
/// data) in chunk order, without fused multiply-add. Counters may be kept in any layout. `S` selects the saturation test, `H`
/// shifted sums (`x - k`) over plain ones (`x`), `P` prefetching ahead (a hint only).
pub(super) trait BlockKernel: Copy {
    fn f32_fast<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    );
    fn f32_careful<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    );
    fn f64_fast<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    );
    fn f64_careful<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    );
}

/// The mean of the first few finite elements of a block: subtracting it before summing squares
/// avoids the cancellation of `E[x²] - E[x]²` when the mean is large against the spread (the
/// variance error scales with `(mean - k)² / var`). Taken per block, so drifting data stays
/// well conditioned too.
fn shift<T: Elem>(block: &[T]) -> f64 {
    let (mut s, mut n) = (0.0f64, 0u32);
    for v in block.iter().map(|x| x.to_f64()) {
        if v.is_finite() {
            // Divide first so that eight values near f64::MAX cannot overflow the sum.
            s += v / f64::from(SHIFT_SAMPLE);
            n += 1;
            if n == SHIFT_SAMPLE {
                break;
            }
        }
    }
    if n == 0 { 0.0 } else { s * (f64::from(SHIFT_SAMPLE) / f64::from(n)) }
}

/// Running totals across blocks: counts, min/max, the sum of squares, and the mean and sum of
/// squared deviations merged block by block (Chan et al.).
#[derive(Debug)]
struct Totals {
    finite: u64,
    mean: f64,
    m2: f64,
    sq: f64,
    min: f64,
    max: f64,
    zeros: u64,
    saturated: u64,
    nan: u64,
}

impl Totals {
    fn new() -> Self {
        Totals {
            finite: 0,
            mean: 0.0,
            m2: 0.0,
            sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zeros: 0,
            saturated: 0,
            nan: 0,
        }
    }

    /// Adds a block: its lanes, its shift and its sum of squares.
    fn merge(&mut self, l: &Lanes, k: f64, sq: f64) {
        self.zeros += l.zeros;
        self.saturated += l.saturated;
        self.nan += l.nan;
        self.sq += sq;
        self.min = l.min.iter().fold(self.min, |a, &x| min_rule(a, x));
        self.max = l.max.iter().fold(self.max, |a, &x| max_rule(a, x));
        let nb = l.finite;
        if nb == 0 {
            return;
        }
        let (s1, s2) = (sum8(&l.s1), sum8(&l.s2));
        let nbf = nb as f64;
        let d = s1 / nbf;
        let mb = k + d;
        let m2b = (s2 - s1 * d).max(0.0);
        if self.finite == 0 {
            (self.finite, self.mean, self.m2) = (nb, mb, m2b);
            return;
        }
        let total = self.finite + nb;
        let (na, tf) = (self.finite as f64, total as f64);
        let delta = mb - self.mean;
        self.mean += delta * (nbf / tf);
        self.m2 += m2b + delta * delta * (na * (nbf / tf));
        self.finite = total;
    }
}

/// Computes the statistics with `kern`. Shared by every kernel.
pub(super) fn run<K: BlockKernel, T: Elem>(
    kern: K,
    data: &[T],
    units: Option<(usize, usize)>,
    act: Activation,
) -> TensorStats {
    match act {
        Activation::Sigmoid => run_mode::<K, T, SAT_SIGMOID>(kern, data, units, act),
        Activation::Tanh => run_mode::<K, T, SAT_TANH>(kern, data, units, act),
        _ => run_mode::<K, T, SAT_NONE>(kern, data, units, act),
    }
}

fn run_mode<K: BlockKernel, T: Elem, const S: u8>(
    kern: K,
    data: &[T],
    units: Option<(usize, usize)>,
    act: Activation,
) -> TensorStats {
    if size_of_val(data) >= PREFETCH_FROM_BYTES {
        run_blocks::<K, T, S, true>(kern, data, units, act)
    } else {
        run_blocks::<K, T, S, false>(kern, data, units, act)
    }
}

fn run_blocks<K: BlockKernel, T: Elem, const S: u8, const P: bool>(
    kern: K,
    data: &[T],
    units: Option<(usize, usize)>,
    act: Activation,
) -> TensorStats {
    // With no samples there is nothing to call dead; with no units nothing to count. Checked
    // before allocating: a `[0, n]` shape may name any `n`.
    let mut dead = match units {
        Some((rows, cols)) if rows > 0 && cols > 0 => Some(DeadScan::new(cols)),
        _ => None,
    };
    let mut t = Totals::new();
    let mut end = 0;
    for block in data.chunks(BLOCK) {
        end += block.len();
        let (lanes, k, sq) = reduce_block::<K, T, S, P>(kern, block, act);
        t.merge(&lanes, k, sq);
        if let Some(dead) = dead.as_mut() {
            // The block was just read, so the rows it completed are still in cache.
            dead.scan(&data[..end]);
        }
    }

    let count = data.len() as u64;
    let inf = count - t.finite - t.nan;
    let (mut mean, mut std, mut l2) = (f64::NAN, f64::NAN, 0.0);
    let (mut min, mut max) = (f64::NAN, f64::NAN);
    if t.finite > 0 {
        (min, max) = (t.min, t.max);
        let n = t.finite as f64;
        (mean, std, l2) = (t.mean, (t.m2 / n).sqrt(), t.sq.sqrt());
        let big = min.abs().max(max.abs());
        if T::CAN_BE_EXTREME && (big > HUGE || (big < TINY && big > 0.0)) {
            (mean, std, l2) = rescaled_moments(data, big, t.finite);
        }
    }
    TensorStats {
        count,
        zeros: t.zeros,
        nan: t.nan,
        inf,
        min,
        max,
        mean,
        std,
        l2,
        saturated: t.saturated,
        activation: act,
        dead_units: dead.map(|d| d.result()),
    }
}

/// Reduces one block: its lanes, the shift its sums are relative to, and its sum of squares.
///
/// Plain sums (`Σx`, `Σx²`) cost the fewest operations per element and are used whenever they
/// are accurate enough ([`plain_is_accurate`]); otherwise, for data whose mean is large against
/// its spread, the block is summed again, still in cache, relative to a shift.
#[inline(always)]
fn reduce_block<K: BlockKernel, T: Elem, const S: u8, const P: bool>(
    kern: K,
    block: &[T],
    act: Activation,
) -> (Lanes, f64, f64) {
    let plain = chunks::<K, T, S, false, P>(kern, block, 0.0, act);
    if plain_is_accurate(&plain) {
        let sq = sum8(&plain.s2);
        return (plain, 0.0, sq);
    }
    let k = shift(block);
    let lanes = chunks::<K, T, S, true, P>(kern, block, k, act);
    let sq = block_sq(&lanes, k, block);
    (lanes, k, sq)
}

/// Whether a block's plain sums meet the accuracy the module documents.
///
/// Each lane adds at most `BLOCK / 8` terms and the lanes are combined in 3 more levels, so
/// each sum is within `γ = 516 eps ≈ 5.7e-14` of its terms' absolute sum (`+eps` for rounding an
/// `f64` square). With `b = max|x|` and `n` finite elements, `Σx²` is then off by at most
/// `γ n b²` and `(Σx)² / n` by about `2 γ n b²`, so `m2 = Σx² - (Σx)² / n` is within
/// `1.8e-13 n b²`. Requiring `b² <= 5 (max - min)²` bounds that by `9e-13 n (max - min)²`:
/// under the documented `1e-12 (max - min)²` for the variance. The mean (`γ b`) and `l2`
/// (relative `γ`) are always within their bounds. Data far from zero against its spread
/// (`1e6` plus noise, saturated sigmoid outputs near 1) fails the test and is shifted instead.
/// The test reads only the lanes, which every kernel computes alike, so all take one branch.
fn plain_is_accurate(l: &Lanes) -> bool {
    if l.finite == 0 {
        return true;
    }
    let lo = l.min.iter().fold(f64::INFINITY, |a, &x| min_rule(a, x));
    let hi = l.max.iter().fold(f64::NEG_INFINITY, |a, &x| max_rule(a, x));
    let (big, range) = (lo.abs().max(hi.abs()), hi - lo);
    big * big <= 5.0 * range * range && sum8(&l.s2).is_finite()
}

/// The sum of the squares of a block's finite elements, from its shifted sums.
///
/// With `c = x - k`, `Σx² = Σc² + k(2Σc + nk)`: derived from the sums the lanes keep anyway,
/// which saves a multiply and an add per element. Its rounding error is at most about
/// `(512 + 3) eps * M` with `M = Σc² + 2|k|sqrt(nΣc²) + nk²` (Cauchy-Schwarz bounds `Σ|c|`), so
/// it is accepted when `M <= 8 Σx²`, which bounds the relative error by `1e-12`. Otherwise (the
/// block's first elements were far from the rest, or the squares underflow) the block is summed
/// directly, while it is still in cache. The test depends only on the lanes, so every kernel
/// takes the same branch.
fn block_sq<T: Elem>(l: &Lanes, k: f64, block: &[T]) -> f64 {
    let (s1, s2, n) = (sum8(&l.s1), sum8(&l.s2), l.finite as f64);
    let sq = s2 + k * (2.0 * s1 + n * k);
    let bound = s2 + 2.0 * k.abs() * (n * s2).sqrt() + n * k * k;
    if bound <= 8.0 * sq {
        return sq;
    }
    let mut lanes = [0.0f64; LANES];
    let (body, tail) = block.as_chunks::<LANES>();
    for c in body {
        for (acc, x) in lanes.iter_mut().zip(c) {
            let v = x.to_f64();
            *acc += if v.is_finite() { v * v } else { 0.0 };
        }
    }
    for (acc, x) in lanes.iter_mut().zip(tail) {
        let v = x.to_f64();
        *acc += if v.is_finite() { v * v } else { 0.0 };
    }
    sum8(&lanes)
}

/// Runs the chunk loops over a block's whole chunks, then adds its tail.
#[inline(always)]
fn chunks<K: BlockKernel, T: Elem, const S: u8, const H: bool, const P: bool>(
    kern: K,
    block: &[T],
    k: f64,
    act: Activation,
) -> Lanes {
    let (body, tail) = block.as_chunks::<LANES>();
    let mut lanes = Lanes::new();
    T::fast::<K, S, H, P>(kern, body, k, &mut lanes);
    // A NaN or infinity makes its lane's sum of squares NaN or infinite, and it stays so;
    // finite f32 data never overflows it. Every kernel has the same lanes, so every kernel
    // takes the same branch.
    if !lanes.s2.iter().all(|v| v.is_finite()) {
        lanes = Lanes::new();
        T::careful::<K, S, H, P>(kern, body, k, &mut lanes);
    }
    // `x - 0.0` is `x` exactly, so the tail's plain sums are plain too.
    for (i, x) in tail.iter().enumerate() {
        lanes.push(i, x.to_f64(), k, act);
    }
    lanes
}

/// The units of a `[rows, cols]` tensor that were `±0.0` in every row checked so far.
///
/// The first row names the candidates; every later row only visits the units still
/// candidates, so once a layer's units have all been seen nonzero (typically within a few rows)
/// dead units cost nothing more.
#[derive(Debug)]
struct DeadScan {
    cols: usize,
    rows_done: usize,
    candidates: Option<Vec<usize>>,
}

impl DeadScan {
    fn new(cols: usize) -> Self {
        DeadScan { cols, rows_done: 0, candidates: None }
    }

    /// Checks every row that lies wholly inside `data` and was not checked yet.
    fn scan<T: Elem>(&mut self, data: &[T]) {
        let rows = data.len() / self.cols;
        while self.rows_done < rows {
            let start = self.rows_done * self.cols;
            let row = &data[start..start + self.cols];
            match &mut self.candidates {
                None => {
                    self.candidates = Some(
                        row.iter()
                            .enumerate()
                            .filter(|(_, x)| x.is_zero())
                            .map(|(u, _)| u)
                            .collect(),
                    );
                }
                Some(c) if c.is_empty() => {
                    self.rows_done = rows;
                    return;
                }
                Some(c) => c.retain(|&u| row[u].is_zero()),
            }
            self.rows_done += 1;
        }
    }

    fn result(&self) -> DeadUnits {
        DeadUnits {
            dead: self.candidates.as_ref().map_or(0, Vec::len) as u64,
            units: self.cols as u64,
        }
    }
}

/// Multiplies by `2^e`, exactly as long as the result is a normal number (in two steps, since
/// `2^e` itself may not be representable).
fn scale(x: f64, e: i32) -> f64 {
    let h = e / 2;
    x * 2.0f64.powi(h) * 2.0f64.powi(e - h)
}

/// Mean, population std and L2 norm of the finite elements for data whose magnitude would
/// overflow the squares (or underflow them into subnormals): the corrected two-pass algorithm
/// on the elements scaled by a power of two that brings the largest magnitude into `[1, 2)`.
/// Scaling by a power of two is exact; elements smaller than `2^-1022` times the largest one
/// round towards zero, which changes no result by more than that relative amount.
fn rescaled_moments<T: Elem>(data: &[T], big: f64, finite: u64) -> (f64, f64, f64) {
    let e = big.log2().floor() as i32;
    let finite_scaled =
        || data.iter().map(|x| x.to_f64()).filter(|x| x.is_finite()).map(move |x| scale(x, -e));
    let n = finite as f64;
    let m0 = compensated_sum(finite_scaled()) / n;
    let (mut s1, mut s2, mut sq) = (0.0f64, 0.0f64, 0.0f64);
    for x in finite_scaled() {
        let d = x - m0;
        s1 += d;
        s2 += d * d;
        sq += x * x;
    }
    let d = s1 / n;
    let var = ((s2 - s1 * d) / n).max(0.0);
    (scale(m0 + d, e), scale(var.sqrt(), e), scale(sq.sqrt(), e))
}

/// Neumaier's compensated sum: accurate to a few ulps whatever the order of magnitudes.
fn compensated_sum(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in it {
        let t = s + x;
        c += if s.abs() >= x.abs() { (s - t) + x } else { (x - t) + s };
        s = t;
    }
    s + c
}
