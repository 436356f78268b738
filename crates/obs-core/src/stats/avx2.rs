//! The AVX2 kernel (x86-64).
//!
//! Eight lanes per chunk: for `f32` one 256-bit register, widened to two registers of `f64`
//! (elements 0-3 and 4-7) for the sums; for `f64` two registers. Each lane performs exactly the
//! operations of the portable kernel in the same order, so the results are bit-identical.
//! Counters are 32- or 64-bit lane integers (a compare mask is -1, so subtracting it counts),
//! flushed into `u64` at the end of every block.

use std::arch::x86_64::{
    __m256, __m256d, __m256i, _CMP_EQ_OQ, _CMP_GT_OQ, _CMP_LT_OQ, _CMP_UNORD_Q, _MM_HINT_T0,
    _mm_loadu_ps, _mm_prefetch, _mm256_add_pd, _mm256_and_pd, _mm256_and_ps, _mm256_blendv_pd,
    _mm256_blendv_ps, _mm256_castpd_si256, _mm256_castps_si256, _mm256_castsi256_pd,
    _mm256_castsi256_ps, _mm256_cmp_pd, _mm256_cmp_ps, _mm256_cvtps_pd, _mm256_loadu_pd,
    _mm256_loadu_ps, _mm256_max_pd, _mm256_max_ps, _mm256_min_pd, _mm256_min_ps, _mm256_mul_pd,
    _mm256_or_pd, _mm256_or_ps, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_set1_pd,
    _mm256_set1_ps, _mm256_setzero_pd, _mm256_setzero_ps, _mm256_setzero_si256, _mm256_storeu_pd,
    _mm256_storeu_ps, _mm256_storeu_si256, _mm256_sub_epi32, _mm256_sub_epi64, _mm256_sub_pd,
};
use std::sync::atomic::{AtomicU8, Ordering};

use super::driver::{
    BlockKernel, LANES, Lanes, SAT_HI, SAT_HI_F32, SAT_LO, SAT_LO_F32, SAT_SIGMOID, SAT_TANH,
};

/// Proof that the CPU supports AVX2: only [`Avx2::get`] creates one.
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx2(());

/// 0: not yet detected, 1: absent, 2: present.
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Avx2 {
    /// The kernel, if this CPU has AVX2. Detection runs once; later calls read a cached flag.
    pub(super) fn get() -> Option<Avx2> {
        let state = match DETECTED.load(Ordering::Relaxed) {
            0 => {
                let s = if is_x86_feature_detected!("avx2") { 2 } else { 1 };
                DETECTED.store(s, Ordering::Relaxed);
                s
            }
            s => s,
        };
        (state == 2).then_some(Avx2(()))
    }
}

// Loads and stores take raw pointers, which is why they are `unsafe`; everything else the
// kernels use is a safe intrinsic inside an AVX2 function.

#[inline]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn load_ps(c: &[f32; 8]) -> __m256 {
    // SAFETY: `c` is a reference to 8 initialised f32 (32 readable bytes); `loadu` accepts any
    // alignment.
    unsafe { _mm256_loadu_ps(c.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn load_pd(c: &[f64; 4]) -> __m256d {
    // SAFETY: `c` is a reference to 4 initialised f64 (32 readable bytes); `loadu` accepts any
    // alignment.
    unsafe { _mm256_loadu_pd(c.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn store_pd(dst: &mut [f64], v: __m256d) {
    let dst: &mut [f64; 4] = dst.first_chunk_mut().expect("4 lanes");
    // SAFETY: `dst` is an exclusive reference to 4 f64 (32 writable bytes); `storeu` accepts
    // any alignment.
    unsafe { _mm256_storeu_pd(dst.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn store_ps(dst: &mut [f32; 8], v: __m256) {
    // SAFETY: `dst` is an exclusive reference to 8 f32 (32 writable bytes); `storeu` accepts
    // any alignment.
    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
}

/// How far ahead of the chunk being reduced to prefetch. The loops do enough arithmetic per
/// cache line that the hardware prefetcher alone leaves them waiting on memory for tensors
/// larger than the cache.
const PREFETCH_BYTES: usize = 4096;

/// Asks for the cache line `PREFETCH_BYTES` after `c` (which may lie past the data).
#[inline]
#[target_feature(enable = "avx2")]
fn prefetch<T>(c: &T) {
    // A prefetch is only a hint and never faults, so any address will do.
    _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(c).cast::<i8>().wrapping_add(PREFETCH_BYTES));
}

/// The sum of the eight 32-bit or four 64-bit lane counters of `v`.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn count_si256<const WIDE: bool>(v: __m256i) -> u64 {
    let mut a = [0u64; 4];
    // SAFETY: `a` is an exclusive reference to 32 writable bytes; `storeu` accepts any
    // alignment.
    unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
    if WIDE { a.iter().sum() } else { a.iter().map(|w| (w & 0xffff_ffff) + (w >> 32)).sum() }
}

/// A lane-wise compare mask as an integer vector (each true lane is -1).
#[inline]
#[target_feature(enable = "avx2")]
fn mask_i(m: __m256) -> __m256i {
    _mm256_castps_si256(m)
}

#[inline]
#[target_feature(enable = "avx2")]
fn mask_il(m: __m256d) -> __m256i {
    _mm256_castpd_si256(m)
}

/// Lanes 0-3 and 4-7 of a chunk of `f32`, widened to `f64`. Converting straight from memory
/// saves the shuffle that splitting a loaded register would cost.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
fn widen(c: &[f32; 8]) -> (__m256d, __m256d) {
    let p = c.as_ptr();
    // SAFETY: `c` is a reference to 8 initialised f32, so `p..p + 4` and `p + 4..p + 8` are
    // readable; `loadu` accepts any alignment.
    let (l, h) = unsafe { (_mm_loadu_ps(p), _mm_loadu_ps(p.add(4))) };
    (_mm256_cvtps_pd(l), _mm256_cvtps_pd(h))
}

/// The saturation mask of `f32` lanes (`a` is `|x|`), before excluding non-finite values.
#[inline]
#[target_feature(enable = "avx2")]
fn sat_ps<const S: u8>(x: __m256, a: __m256) -> __m256 {
    match S {
        SAT_SIGMOID => _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(SAT_LO_F32)),
            _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(SAT_HI_F32)),
        ),
        SAT_TANH => _mm256_cmp_ps::<_CMP_GT_OQ>(a, _mm256_set1_ps(SAT_HI_F32)),
        _ => _mm256_setzero_ps(),
    }
}

/// The saturation mask of `f64` lanes (`a` is `|x|`), before excluding non-finite values.
#[inline]
#[target_feature(enable = "avx2")]
fn sat_pd<const S: u8>(x: __m256d, a: __m256d) -> __m256d {
    match S {
        SAT_SIGMOID => _mm256_or_pd(
            _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_set1_pd(SAT_LO)),
            _mm256_cmp_pd::<_CMP_GT_OQ>(x, _mm256_set1_pd(SAT_HI)),
        ),
        SAT_TANH => _mm256_cmp_pd::<_CMP_GT_OQ>(a, _mm256_set1_pd(SAT_HI)),
        _ => _mm256_setzero_pd(),
    }
}

/// Sums of one register of `f64` lanes.
#[derive(Clone, Copy)]
struct Sums {
    s1: __m256d,
    s2: __m256d,
}

impl Sums {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        Sums { s1: _mm256_setzero_pd(), s2: _mm256_setzero_pd() }
    }

    /// `d = x - k` (with `H`) or `d = x`, then `s1 += d`, `s2 += d * d`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add<const H: bool>(&mut self, x: __m256d, k: __m256d) {
        let d = if H { _mm256_sub_pd(x, k) } else { x };
        self.s1 = _mm256_add_pd(self.s1, d);
        self.s2 = _mm256_add_pd(self.s2, _mm256_mul_pd(d, d));
    }

    /// As [`Sums::add`], with `+0.0` in place of `d` where `fin` is false.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add_masked<const H: bool>(&mut self, x: __m256d, k: __m256d, fin: __m256d) {
        let d = _mm256_and_pd(if H { _mm256_sub_pd(x, k) } else { x }, fin);
        self.s1 = _mm256_add_pd(self.s1, d);
        self.s2 = _mm256_add_pd(self.s2, _mm256_mul_pd(d, d));
    }

    /// Stores into lanes `at..at + 4`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store(&self, out: &mut Lanes, at: usize) {
        store_pd(&mut out.s1[at..], self.s1);
        store_pd(&mut out.s2[at..], self.s2);
    }
}

#[target_feature(enable = "avx2")]
fn f32_fast<const S: u8, const H: bool, const P: bool>(body: &[[f32; 8]], k: f64, out: &mut Lanes) {
    let kv = _mm256_set1_pd(k);
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let zero = _mm256_setzero_ps();
    let (mut lo, mut hi) = (Sums::new(), Sums::new());
    let (mut mn, mut mx) = (inf, _mm256_set1_ps(f32::NEG_INFINITY));
    let (mut zeros, mut sat) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for c in body {
        if P {
            prefetch(c);
        }
        let x = load_ps(c);
        let a = _mm256_and_ps(x, abs);
        zeros = _mm256_sub_epi32(zeros, mask_i(_mm256_cmp_ps::<_CMP_EQ_OQ>(x, zero)));
        if S != 0 {
            sat = _mm256_sub_epi32(sat, mask_i(sat_ps::<S>(x, a)));
        }
        mn = _mm256_min_ps(mn, x);
        mx = _mm256_max_ps(mx, x);
        let (xl, xh) = widen(c);
        lo.add::<H>(xl, kv);
        hi.add::<H>(xh, kv);
    }
    lo.store(out, 0);
    hi.store(out, 4);
    let (mut m, mut n) = ([0f32; LANES], [0f32; LANES]);
    store_ps(&mut m, mn);
    store_ps(&mut n, mx);
    out.min = m.map(f64::from);
    out.max = n.map(f64::from);
    out.zeros = count_si256::<false>(zeros);
    out.saturated = count_si256::<false>(sat);
    out.nan = 0;
    out.finite = (body.len() * LANES) as u64;
}

#[target_feature(enable = "avx2")]
fn f32_careful<const S: u8, const H: bool, const P: bool>(
    body: &[[f32; 8]],
    k: f64,
    out: &mut Lanes,
) {
    let kv = _mm256_set1_pd(k);
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let absd = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fff_ffff_ffff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let infd = _mm256_set1_pd(f64::INFINITY);
    let zero = _mm256_setzero_ps();
    let (mut lo, mut hi) = (Sums::new(), Sums::new());
    let (mut mn, mut mx) = (inf, ninf);
    let (mut zeros, mut sat) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (mut nan, mut finite) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for c in body {
        if P {
            prefetch(c);
        }
        let x = load_ps(c);
        let a = _mm256_and_ps(x, abs);
        let fin = _mm256_cmp_ps::<_CMP_LT_OQ>(a, inf);
        nan = _mm256_sub_epi32(nan, mask_i(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x)));
        finite = _mm256_sub_epi32(finite, mask_i(fin));
        zeros = _mm256_sub_epi32(zeros, mask_i(_mm256_cmp_ps::<_CMP_EQ_OQ>(x, zero)));
        if S != 0 {
            sat = _mm256_sub_epi32(sat, mask_i(_mm256_and_ps(sat_ps::<S>(x, a), fin)));
        }
        mn = _mm256_min_ps(mn, _mm256_blendv_ps(inf, x, fin));
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, x, fin));
        let (xl, xh) = widen(c);
        // Finiteness survives widening, so the f64 masks equal the f32 one lane for lane.
        let fl = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(xl, absd), infd);
        let fh = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(xh, absd), infd);
        lo.add_masked::<H>(xl, kv, fl);
        hi.add_masked::<H>(xh, kv, fh);
    }
    lo.store(out, 0);
    hi.store(out, 4);
    let (mut m, mut n) = ([0f32; LANES], [0f32; LANES]);
    store_ps(&mut m, mn);
    store_ps(&mut n, mx);
    out.min = m.map(f64::from);
    out.max = n.map(f64::from);
    out.zeros = count_si256::<false>(zeros);
    out.saturated = count_si256::<false>(sat);
    out.nan = count_si256::<false>(nan);
    out.finite = count_si256::<false>(finite);
}

/// Splits a chunk of eight `f64` into lanes 0-3 and 4-7.
#[inline]
#[target_feature(enable = "avx2")]
fn load_halves(c: &[f64; 8]) -> (__m256d, __m256d) {
    let (l, h) = c.split_at(4);
    (load_pd(l.try_into().expect("4 lanes")), load_pd(h.try_into().expect("4 lanes")))
}

#[target_feature(enable = "avx2")]
fn f64_fast<const S: u8, const H: bool, const P: bool>(body: &[[f64; 8]], k: f64, out: &mut Lanes) {
    let kv = _mm256_set1_pd(k);
    let abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fff_ffff_ffff_ffff));
    let inf = _mm256_set1_pd(f64::INFINITY);
    let zero = _mm256_setzero_pd();
    let (mut lo, mut hi) = (Sums::new(), Sums::new());
    // Lanes 4-7 of min and max stay at their identity: lanes i and i + 4 are paired first.
    let (mut mn, mut mx) = (inf, _mm256_set1_pd(f64::NEG_INFINITY));
    let (mut zeros, mut sat) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for c in body {
        if P {
            prefetch(c);
        }
        let (xl, xh) = load_halves(c);
        let (al, ah) = (_mm256_and_pd(xl, abs), _mm256_and_pd(xh, abs));
        zeros = _mm256_sub_epi64(zeros, mask_il(_mm256_cmp_pd::<_CMP_EQ_OQ>(xl, zero)));
        zeros = _mm256_sub_epi64(zeros, mask_il(_mm256_cmp_pd::<_CMP_EQ_OQ>(xh, zero)));
        if S != 0 {
            sat = _mm256_sub_epi64(sat, mask_il(sat_pd::<S>(xl, al)));
            sat = _mm256_sub_epi64(sat, mask_il(sat_pd::<S>(xh, ah)));
        }
        mn = _mm256_min_pd(mn, _mm256_min_pd(xl, xh));
        mx = _mm256_max_pd(mx, _mm256_max_pd(xl, xh));
        lo.add::<H>(xl, kv);
        hi.add::<H>(xh, kv);
    }
    lo.store(out, 0);
    hi.store(out, 4);
    store_pd(&mut out.min[..], mn);
    store_pd(&mut out.max[..], mx);
    out.min[4..].fill(f64::INFINITY);
    out.max[4..].fill(f64::NEG_INFINITY);
    out.zeros = count_si256::<true>(zeros);
    out.saturated = count_si256::<true>(sat);
    out.nan = 0;
    out.finite = (body.len() * LANES) as u64;
}

#[target_feature(enable = "avx2")]
fn f64_careful<const S: u8, const H: bool, const P: bool>(
    body: &[[f64; 8]],
    k: f64,
    out: &mut Lanes,
) {
    let kv = _mm256_set1_pd(k);
    let abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fff_ffff_ffff_ffff));
    let inf = _mm256_set1_pd(f64::INFINITY);
    let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
    let zero = _mm256_setzero_pd();
    let (mut lo, mut hi) = (Sums::new(), Sums::new());
    let (mut mn, mut mx) = (inf, ninf);
    let (mut zeros, mut sat) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let (mut nan, mut finite) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for c in body {
        if P {
            prefetch(c);
        }
        let (xl, xh) = load_halves(c);
        let mut fins = [_mm256_setzero_pd(); 2];
        for ((x, s), f) in [(xl, &mut lo), (xh, &mut hi)].into_iter().zip(&mut fins) {
            let a = _mm256_and_pd(x, abs);
            let fin = _mm256_cmp_pd::<_CMP_LT_OQ>(a, inf);
            nan = _mm256_sub_epi64(nan, mask_il(_mm256_cmp_pd::<_CMP_UNORD_Q>(x, x)));
            finite = _mm256_sub_epi64(finite, mask_il(fin));
            zeros = _mm256_sub_epi64(zeros, mask_il(_mm256_cmp_pd::<_CMP_EQ_OQ>(x, zero)));
            if S != 0 {
                sat = _mm256_sub_epi64(sat, mask_il(_mm256_and_pd(sat_pd::<S>(x, a), fin)));
            }
            s.add_masked::<H>(x, kv, fin);
            *f = fin;
        }
        let [fl, fh] = fins;
        let pair_min = _mm256_min_pd(_mm256_blendv_pd(inf, xl, fl), _mm256_blendv_pd(inf, xh, fh));
        let pair_max =
            _mm256_max_pd(_mm256_blendv_pd(ninf, xl, fl), _mm256_blendv_pd(ninf, xh, fh));
        mn = _mm256_min_pd(mn, pair_min);
        mx = _mm256_max_pd(mx, pair_max);
    }
    lo.store(out, 0);
    hi.store(out, 4);
    store_pd(&mut out.min[..], mn);
    store_pd(&mut out.max[..], mx);
    out.min[4..].fill(f64::INFINITY);
    out.max[4..].fill(f64::NEG_INFINITY);
    out.zeros = count_si256::<true>(zeros);
    out.saturated = count_si256::<true>(sat);
    out.nan = count_si256::<true>(nan);
    out.finite = count_si256::<true>(finite);
}

// The trait methods are safe to call because an `Avx2` value only exists when the CPU has
// AVX2; each forwards to the matching `#[target_feature]` function.
impl BlockKernel for Avx2 {
    #[allow(unsafe_code)]
    fn f32_fast<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        // SAFETY: `self` proves AVX2 is available (see `Avx2::get`).
        unsafe { f32_fast::<S, H, P>(body, k, out) };
    }

    #[allow(unsafe_code)]
    fn f32_careful<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f32; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        // SAFETY: `self` proves AVX2 is available (see `Avx2::get`).
        unsafe { f32_careful::<S, H, P>(body, k, out) }
    }

    #[allow(unsafe_code)]
    fn f64_fast<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        // SAFETY: `self` proves AVX2 is available (see `Avx2::get`).
        unsafe { f64_fast::<S, H, P>(body, k, out) };
    }

    #[allow(unsafe_code)]
    fn f64_careful<const S: u8, const H: bool, const P: bool>(
        self,
        body: &[[f64; 8]],
        k: f64,
        out: &mut Lanes,
    ) {
        // SAFETY: `self` proves AVX2 is available (see `Avx2::get`).
        unsafe { f64_careful::<S, H, P>(body, k, out) }
    }
}
