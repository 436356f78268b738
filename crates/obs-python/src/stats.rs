//! Per-layer statistics given as numpy arrays (reduced in place by the kernel) or as dicts of
//! numbers (the reference's `weight_stats` / `activation_stats`).

use obs_core::{Activation, TensorStats};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::array::Array;
use crate::logger::activation_arg;

/// Statistics of `obj`: a numpy array is reduced by the kernel (GIL released); a dict gives
/// `mean`, `std`, `min`, `max` and optionally `count`, `zeros`, `zeros_pct`, `nan`, `inf`,
/// `l2`/`norm`, `activation`.
pub(crate) fn tensor_stats_arg(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    what: &str,
    activation: Activation,
) -> PyResult<TensorStats> {
    if let Ok(d) = obj.cast::<PyDict>() {
        return stats_from_dict(d, what, activation);
    }
    let arr = Array::extract(obj, what)?;
    let view = arr.view(what)?;
    Ok(py.detach(|| obs_core::tensor_stats(view, activation)))
}

fn get_f64(d: &Bound<'_, PyDict>, key: &str, what: &str) -> PyResult<Option<f64>> {
    match d.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => v
            .extract::<f64>()
            .map(Some)
            .map_err(|_| PyTypeError::new_err(format!("`{what}[{key:?}]` must be a number"))),
    }
}

fn stats_from_dict(
    d: &Bound<'_, PyDict>,
    what: &str,
    activation: Activation,
) -> PyResult<TensorStats> {
    let activation = match d.get_item("activation")?.or(d.get_item("activation_type")?) {
        Some(a) if a.is_instance_of::<PyString>() => activation_arg(Some(&a))?,
        _ => activation,
    };
    let need = |k: &str| -> PyResult<f64> {
        get_f64(d, k, what)?
            .ok_or_else(|| PyValueError::new_err(format!("`{what}` needs a {k:?} entry")))
    };
    let (mean, std, min, max) = (need("mean")?, need("std")?, need("min")?, need("max")?);
    let count = get_f64(d, "count", what)?.unwrap_or(1.0).max(1.0) as u64;
    let nan = get_f64(d, "nan", what)?.unwrap_or(0.0) as u64;
    let inf = get_f64(d, "inf", what)?.unwrap_or(0.0) as u64;
    let zeros = match (get_f64(d, "zeros", what)?, get_f64(d, "zeros_pct", what)?) {
        (Some(z), _) => z as u64,
        (None, Some(p)) => (p / 100.0 * count as f64).round() as u64,
        (None, None) if min == 0.0 && max == 0.0 => count,
        _ => 0,
    };
    let l2 = match get_f64(d, "l2", what)?.or(get_f64(d, "norm", what)?) {
        Some(l) => l,
        // ||x||^2 = n (std^2 + mean^2)
        None => ((count as f64) * (std * std + mean * mean)).sqrt(),
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
        l2,
        saturated: 0,
        activation,
        dead_units: None,
    })
}
