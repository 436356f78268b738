//! The portable kernel: plain Rust, any CPU.

use super::{Activation, DeadUnits, TensorData, TensorStats, TensorView};

/// Elements used to estimate the shift that keeps the variance sum well conditioned.
const SHIFT_SAMPLE: usize = 64;

trait Elem: Copy {
    fn to_f64(self) -> f64;
}
impl Elem for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
impl Elem for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

pub(super) fn stats(view: TensorView<'_>, activation: Activation) -> TensorStats {
    match view.data() {
        TensorData::F32(d) => run(d, view.samples_and_units(), activation),
        TensorData::F64(d) => run(d, view.samples_and_units(), activation),
    }
}

/// Mean of the first few finite elements: subtracting it before summing squares avoids the
/// cancellation of `E[x²] - E[x]²` when the mean is large against the spread.
fn shift<T: Elem>(data: &[T]) -> f64 {
    let (mut s, mut n) = (0.0, 0u32);
    for x in data.iter().map(|x| x.to_f64()).filter(|x| x.is_finite()).take(SHIFT_SAMPLE) {
        s += x;
        n += 1;
    }
    if n == 0 { 0.0 } else { s / f64::from(n) }
}

fn run<T: Elem>(data: &[T], units: Option<(usize, usize)>, act: Activation) -> TensorStats {
    let k = shift(data);
    let (mut zeros, mut nan, mut inf, mut sat) = (0u64, 0u64, 0u64, 0u64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut s1, mut s2, mut sq) = (0.0f64, 0.0f64, 0.0f64);
    for x in data.iter().map(|x| x.to_f64()) {
        if x.is_nan() {
            nan += 1;
            continue;
        }
        if x.is_infinite() {
            inf += 1;
            continue;
        }
        zeros += u64::from(x == 0.0);
        sat += u64::from(act.is_saturated(x));
        min = min.min(x);
        max = max.max(x);
        let c = x - k;
        s1 += c;
        s2 += c * c;
        sq += x * x;
    }
    let count = data.len() as u64;
    let finite = count - nan - inf;
    let (mean, std) = if finite == 0 {
        (f64::NAN, f64::NAN)
    } else {
        let n = finite as f64;
        let m = s1 / n;
        (k + m, ((s2 / n) - m * m).max(0.0).sqrt())
    };
    if finite == 0 {
        min = f64::NAN;
        max = f64::NAN;
    }
    let dead_units = units.and_then(|(rows, cols)| {
        if cols == 0 || rows == 0 {
            return None;
        }
        let mut alive = vec![false; cols];
        for row in data.chunks_exact(cols) {
            for (a, x) in alive.iter_mut().zip(row) {
                *a |= x.to_f64() != 0.0;
            }
        }
        let dead = alive.iter().filter(|a| !**a).count() as u64;
        Some(DeadUnits { dead, units: cols as u64 })
    });
    TensorStats {
        count,
        zeros,
        nan,
        inf,
        min,
        max,
        mean,
        std,
        l2: sq.sqrt(),
        saturated: sat,
        activation: act,
        dead_units,
    }
}
