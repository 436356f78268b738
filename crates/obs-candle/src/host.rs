//! Host views of candle tensors: borrowed in place on the CPU device, copied from a GPU.

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use obs_core::{Activation, TensorStats, TensorView, tensor_stats};

use crate::error::{Error, Result};

/// Checks what every observed tensor must be: a non-empty, contiguous float tensor.
pub(crate) fn check(name: &str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {}
        dtype => return Err(Error::UnsupportedDType { name: name.to_owned(), dtype }),
    }
    if t.elem_count() == 0 {
        return Err(Error::Empty { name: name.to_owned(), shape: t.dims().to_vec() });
    }
    if !t.is_contiguous() {
        return Err(Error::NonContiguous {
            name: name.to_owned(),
            shape: t.dims().to_vec(),
            stride: t.stride().to_vec(),
        });
    }
    Ok(())
}

/// Calls `f` with a [`TensorView`] of `t`'s elements in host memory.
///
/// - An `f32` or `f64` tensor on the CPU device is **borrowed**: `f` reads candle's storage in
///   place (under its read lock), nothing is copied.
/// - An `f16` or `bf16` tensor on the CPU device is converted to `f32` first (the kernel reads
///   `f32` and `f64`), which is one pass and one allocation.
/// - A tensor on another device is copied to the host in its own dtype (half the bytes for
///   `f16`/`bf16`), then converted there if needed.
///
/// # Errors
/// [`Error::UnsupportedDType`], [`Error::Empty`] and [`Error::NonContiguous`] for tensors that
/// cannot be observed, [`Error::Candle`] when the copy or conversion fails.
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use obs_candle::with_host_view;
///
/// let t = Tensor::new(&[[1f32, 0.0], [3.0, 4.0]], &Device::Cpu)?;
/// let (len, shape) = with_host_view("t", &t, |view| (view.len(), view.shape()))?;
/// assert_eq!((len, shape), (4, vec![2, 2]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_host_view<R>(name: &str, t: &Tensor, f: impl FnOnce(TensorView<'_>) -> R) -> Result<R> {
    check(name, t)?;
    let on_host;
    let t = if t.device().is_cpu() {
        t
    } else {
        on_host = t.to_device(&Device::Cpu)?;
        &on_host
    };
    let converted;
    let t = match t.dtype() {
        DType::F32 | DType::F64 => t,
        _ => {
            converted = t.to_dtype(DType::F32)?;
            &converted
        }
    };
    borrow(name, t, f)
}

/// Borrows a contiguous `f32`/`f64` CPU tensor's elements.
fn borrow<R>(name: &str, t: &Tensor, f: impl FnOnce(TensorView<'_>) -> R) -> Result<R> {
    let dims = t.dims();
    let (storage, layout) = t.storage_and_layout();
    let non_contiguous = || Error::NonContiguous {
        name: name.to_owned(),
        shape: dims.to_vec(),
        stride: layout.stride().to_vec(),
    };
    let (start, end) = layout.contiguous_offsets().ok_or_else(non_contiguous)?;
    let view = match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => {
            TensorView::new(v.get(start..end).ok_or_else(non_contiguous)?, dims)?
        }
        Storage::Cpu(CpuStorage::F64(v)) => {
            TensorView::new(v.get(start..end).ok_or_else(non_contiguous)?, dims)?
        }
        // `with_host_view` only calls this for f32/f64 tensors on the CPU device.
        _ => return Err(Error::UnsupportedDType { name: name.to_owned(), dtype: t.dtype() }),
    };
    Ok(f(view))
}

/// The full statistics of `t` (see [`obs_core::tensor_stats`]), computed by Observatory's
/// kernel on a host view of the tensor ([`with_host_view`]: borrowed on the CPU device,
/// copied from a GPU).
///
/// # Errors
/// As [`with_host_view`].
///
/// # Examples
/// ```
/// use candle_core::{Device, Tensor};
/// use obs_candle::host_stats;
/// use obs_core::Activation;
///
/// let out = Tensor::new(&[[0f32, 2.0], [0.0, 1.0]], &Device::Cpu)?;
/// let stats = host_stats("dense_0", &out, Activation::Relu)?;
/// assert_eq!(stats.zeros, 2);
/// assert_eq!(stats.dead_units_pct(), Some(50.0)); // column 0 is zero for every sample
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn host_stats(name: &str, t: &Tensor, activation: Activation) -> Result<TensorStats> {
    with_host_view(name, t, |view| tensor_stats(view, activation))
}
