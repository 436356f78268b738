//! Reductions on the tensor's own device, with one small copy of the results to the host.

use candle_core::{CpuStorage, DType, DeviceLocation, Storage, Tensor};
use obs_core::{Activation, TensorStats, stats::DeadUnits};

use crate::error::{Error, Result};
use crate::host::check;

/// `t` in a dtype safe to square and sum: `f16` and `bf16` overflow (or lose every digit) long
/// before the sum of squares of a real gradient does, so they are widened to `f32` first.
fn widened(t: &Tensor) -> candle_core::Result<Tensor> {
    match t.dtype() {
        DType::F16 | DType::BF16 => t.to_dtype(DType::F32),
        _ => Ok(t.clone()),
    }
}

/// Copies 0-d tensors to the host, one copy per (device, dtype) group: the scalars of a group
/// are stacked on their device and read with a single `to_vec1`.
fn scalars_to_host(scalars: &[Tensor]) -> candle_core::Result<Vec<f64>> {
    let mut out = vec![0.0; scalars.len()];
    let mut groups: Vec<((DeviceLocation, DType), Vec<usize>)> = Vec::new();
    for (i, s) in scalars.iter().enumerate() {
        let key = (s.device().location(), s.dtype());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    for ((_, dtype), members) in groups {
        let parts: Vec<&Tensor> = members.iter().map(|&i| &scalars[i]).collect();
        let stacked = Tensor::stack(&parts, 0)?;
        let values: Vec<f64> = match dtype {
            DType::F64 => stacked.to_vec1::<f64>()?,
            DType::U32 => stacked.to_vec1::<u32>()?.into_iter().map(f64::from).collect(),
            _ => {
                stacked.to_dtype(DType::F32)?.to_vec1::<f32>()?.into_iter().map(f64::from).collect()
            }
        };
        for (&i, v) in members.iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out)
}

/// A contiguous `f32`/`f64` tensor on the CPU device, read in place: `f` gets its elements.
/// `None` for any other tensor (another device, dtype or layout).
pub(crate) fn with_cpu_slice<R>(t: &Tensor, f: impl FnOnce(CpuSlice<'_>) -> R) -> Option<R> {
    if !t.device().is_cpu() || !t.is_contiguous() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => v.get(start..end).map(|d| f(CpuSlice::F32(d))),
        Storage::Cpu(CpuStorage::F64(v)) => v.get(start..end).map(|d| f(CpuSlice::F64(d))),
        _ => None,
    }
}

/// The elements of a CPU tensor, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CpuSlice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// `sum(a²)` in `f64` with eight independent accumulators, so the loop vectorises; `f32`
/// values widen exactly.
fn sum_squares<T: Copy + Into<f64>>(a: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = a.chunks_exact(8);
    for chunk in &mut chunks {
        for (slot, &x) in acc.iter_mut().zip(chunk) {
            let x: f64 = x.into();
            *slot += x * x;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| x.into() * x.into()).sum();
    acc.iter().sum::<f64>() + tail
}

/// `sum((a - b)²)` in `f64`, as [`sum_squares`]; `a` and `b` have the same length.
fn sum_squared_differences<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x8, y8) in (&mut ca).zip(&mut cb) {
        for ((slot, &x), &y) in acc.iter_mut().zip(x8).zip(y8) {
            let d = x.into() - y.into();
            *slot += d * d;
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| (x.into() - y.into()) * (x.into() - y.into()))
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// The sum of squares of a CPU tensor read in place, without a temporary tensor.
fn host_sum_squares(t: &Tensor) -> Option<f64> {
    with_cpu_slice(t, |s| match s {
        CpuSlice::F32(d) => sum_squares(d),
        CpuSlice::F64(d) => sum_squares(d),
    })
}

/// `sum((after - before)²)` of a CPU tensor against a saved host copy, read in place.
pub(crate) fn host_diff_squares(after: &Tensor, before: CpuSlice<'_>) -> Option<f64> {
    with_cpu_slice(after, |a| match (a, before) {
        (CpuSlice::F32(a), CpuSlice::F32(b)) if a.len() == b.len() => {
            Some(sum_squared_differences(a, b))
        }
        (CpuSlice::F64(a), CpuSlice::F64(b)) if a.len() == b.len() => {
            Some(sum_squared_differences(a, b))
        }
        _ => None,
    })
    .flatten()
}

/// The L2 norm of each tensor, reduced on the tensor's own device, with the square root taken
/// on the host:
///
/// - a contiguous `f32`/`f64` tensor on the CPU device is read in place (its device *is* the
///   host): one pass summing squares in `f64`, no temporary tensor;
/// - any other tensor is reduced with candle ops on its device (`sqr`, `sum_all`; `f16`/`bf16`
///   summed in `f32`), and the sums are brought to the host in one copy per device and dtype.
///
/// An empty tensor has norm 0; a NaN or infinite element makes the norm NaN or infinite, which
/// the health rules report.
///
/// # Errors
/// A candle error from the reductions or the copy.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
///
/// let a = Tensor::new(&[3f32, 4.0], &Device::Cpu)?;
/// let b = Tensor::new(&[[1f64, 1.0], [1.0, 1.0]], &Device::Cpu)?;
/// assert_eq!(obs_candle::l2_norms(&[&a, &b])?, vec![5.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn l2_norms(tensors: &[&Tensor]) -> candle_core::Result<Vec<f64>> {
    let mut out = vec![0.0; tensors.len()];
    let mut on_device = Vec::new();
    let mut sums = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        if t.elem_count() == 0 {
            continue;
        }
        match host_sum_squares(t) {
            Some(s) => out[i] = s.sqrt(),
            None => {
                on_device.push(i);
                sums.push(widened(t)?.sqr()?.sum_all()?);
            }
        }
    }
    for (i, s) in on_device.into_iter().zip(scalars_to_host(&sums)?) {
        out[i] = s.sqrt();
    }
    Ok(out)
}

/// The L2 norm of `after - before` for each pair, reduced on the device like [`l2_norms`].
///
/// # Errors
/// A candle error (shapes or devices that differ, say).
pub fn difference_norms(pairs: &[(&Tensor, &Tensor)]) -> candle_core::Result<Vec<f64>> {
    let diffs = pairs
        .iter()
        .map(|(after, before)| after.sub(before))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let refs: Vec<&Tensor> = diffs.iter().collect();
    l2_norms(&refs)
}

/// The statistics of `t` computed **on its own device** with candle reductions, then read back
/// in two small copies (the float moments and the counts): what the health rules need of a
/// layer output without copying the tensor to the host.
///
/// The counts (zeros, NaN, Inf, saturated elements, dead units) are exact. The moments are
/// computed in the tensor's float type (`f32` for `f16`/`bf16`) with plain sums, so they are
/// within that type's rounding of the kernel's values rather than bit-identical to them
/// (the kernel sums in `f64` with shifted moments; use [`crate::host_stats`] when that
/// matters). The definitions are the kernel's: moments over the finite elements, `std` the
/// population standard deviation, saturation by `activation`, dead units for tensors of two
/// or more dimensions (`[samples, units...]`).
///
/// # Errors
/// As [`crate::with_host_view`] for tensors that cannot be observed, and candle errors.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use obs_candle::device_stats;
/// use obs_core::Activation;
///
/// let out = Tensor::new(&[[0f32, 0.995], [0.0, 0.2]], &Device::Cpu)?;
/// let stats = device_stats("dense_0", &out, Activation::Tanh)?;
/// assert_eq!((stats.zeros, stats.saturated), (2, 1));
/// assert_eq!(stats.dead_units_pct(), Some(50.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn device_stats(name: &str, t: &Tensor, activation: Activation) -> Result<TensorStats> {
    check(name, t)?;
    device_stats_checked(t, activation).map_err(Error::Candle)
}

fn count(mask: &Tensor) -> candle_core::Result<Tensor> {
    mask.to_dtype(DType::U32)?.sum_all()
}

fn device_stats_checked(t: &Tensor, activation: Activation) -> candle_core::Result<TensorStats> {
    let x = widened(t)?;
    let n = x.elem_count();
    let abs = x.abs()?;
    // NaN compares false with everything, so `|x| < inf` is exactly "finite".
    let finite = abs.lt(f64::INFINITY)?;
    let nan = x.ne(&x)?;
    let inf = abs.eq(f64::INFINITY)?;
    let zero = x.eq(0.0)?;
    let zeros_like = x.zeros_like()?;
    let finite_x = finite.where_cond(&x, &zeros_like)?;
    let plus_inf = zeros_like.affine(1.0, f64::INFINITY)?;
    let minus_inf = zeros_like.affine(1.0, f64::NEG_INFINITY)?;
    let floats = [
        finite_x.sum_all()?,
        finite_x.sqr()?.sum_all()?,
        finite.where_cond(&x, &plus_inf)?.min_all()?,
        finite.where_cond(&x, &minus_inf)?.max_all()?,
    ];
    let saturated = match activation {
        Activation::Sigmoid => {
            let outside =
                (x.lt(0.01)?.to_dtype(DType::U32)? + x.gt(0.99)?.to_dtype(DType::U32)?)?;
            Some((outside * finite.to_dtype(DType::U32)?)?.sum_all()?)
        }
        Activation::Tanh => Some(count(&(abs.gt(0.99)? * &finite)?)?),
        _ => None,
    };
    let dims = x.dims();
    let units = (dims.len() >= 2 && dims[0] > 0).then(|| (dims[0], n / dims[0]));
    let dead = match units {
        Some((samples, per)) => {
            Some(zero.reshape((samples, per))?.to_dtype(DType::U32)?.min(0)?.sum_all()?)
        }
        None => None,
    };
    let mut counts = vec![count(&nan)?, count(&inf)?, count(&zero)?];
    counts.extend(saturated);
    counts.extend(dead);
    let mut all: Vec<Tensor> = floats.to_vec();
    all.extend(counts);
    let v = scalars_to_host(&all)?;
    let (sum, sumsq, min, max) = (v[0], v[1], v[2], v[3]);
    let (nan, inf, zeros) = (v[4] as u64, v[5] as u64, v[6] as u64);
    let mut rest = v[7..].iter().map(|&c| c as u64);
    let saturated = if matches!(activation, Activation::Sigmoid | Activation::Tanh) {
        rest.next().unwrap_or(0)
    } else {
        0
    };
    let dead_units =
        units.map(|(_, per)| DeadUnits { dead: rest.next().unwrap_or(0), units: per as u64 });
    let count = n as u64;
    let finite_n = count - nan - inf;
    let (mean, std, min, max) = if finite_n == 0 {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        let mean = sum / finite_n as f64;
        let var = (sumsq / finite_n as f64 - mean * mean).max(0.0);
        (mean, var.sqrt(), min, max)
    };
    Ok(TensorStats {
        count,
        zeros,
        nan,
        inf,
        min,
        max,
        mean,
        std,
        l2: sumsq.sqrt(),
        saturated,
        activation,
        dead_units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn host_sums_match_candle_reductions() {
        let values: Vec<f32> = (0..1003).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let a = Tensor::from_vec(values.clone(), (17, 59), &Device::Cpu).unwrap();
        let b = a.affine(0.5, 0.25).unwrap();
        let candle_sum =
            |t: &Tensor| f64::from(t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap());
        let host = host_sum_squares(&a).unwrap();
        assert!((host - candle_sum(&a)).abs() <= 1e-5 * host, "{host}");
        let saved = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let diff = host_diff_squares(&a, CpuSlice::F32(&saved)).unwrap();
        let expected = candle_sum(&(&a - &b).unwrap());
        assert!((diff - expected).abs() <= 1e-5 * diff, "{diff} vs {expected}");
        // Not applicable: another dtype, a view with gaps, a mismatched saved buffer.
        assert!(host_sum_squares(&a.to_dtype(DType::F16).unwrap()).is_none());
        assert!(host_sum_squares(&a.t().unwrap()).is_none());
        assert!(host_diff_squares(&a, CpuSlice::F32(&saved[1..])).is_none());
        assert!(host_diff_squares(&a, CpuSlice::F64(&[0.0])).is_none());
    }
}
