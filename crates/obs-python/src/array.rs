//! numpy arrays read in place.
//!
//! A C-contiguous `float32` or `float64` array is borrowed as it is: the kernels read numpy's
//! buffer directly, with the GIL released. Any other numeric array (integers, `float16`,
//! booleans, or a non-contiguous view) is converted once to a contiguous `float64` copy; an
//! array of objects or strings, or something that is not an array, is a `TypeError`.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use obs_core::{TensorError, TensorView};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A numpy array held for reading, f32 or f64.
pub(crate) enum Array<'py> {
    /// 32-bit floats.
    F32(PyReadonlyArrayDyn<'py, f32>),
    /// 64-bit floats.
    F64(PyReadonlyArrayDyn<'py, f64>),
}

impl<'py> Array<'py> {
    /// Borrows `obj` (converting it once when it is not C-contiguous f32/f64). `what` names the
    /// argument in error messages.
    pub(crate) fn extract(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(a) = obj.cast::<PyArrayDyn<f32>>()
            && a.is_c_contiguous()
        {
            return Ok(Array::F32(a.try_readonly()?));
        }
        if let Ok(a) = obj.cast::<PyArrayDyn<f64>>()
            && a.is_c_contiguous()
        {
            return Ok(Array::F64(a.try_readonly()?));
        }
        let py = obj.py();
        let np = py.import("numpy")?;
        if !obj.is_instance(&np.getattr("ndarray")?)? {
            return Err(PyTypeError::new_err(format!(
                "`{what}` must be a numpy array, got {}",
                obj.get_type().name()?
            )));
        }
        let kind: String = obj.getattr("dtype")?.getattr("kind")?.extract()?;
        if !matches!(kind.as_str(), "f" | "i" | "u" | "b") {
            let dtype = obj.getattr("dtype")?.str()?.to_string();
            return Err(PyTypeError::new_err(format!(
                "`{what}` must hold numbers (float32 or float64 are read in place), got dtype {dtype}"
            )));
        }
        let is_f32 = obj.getattr("dtype")?.str()?.to_cow()?.as_ref() == "float32";
        let dtype = if is_f32 { "float32" } else { "float64" };
        let copy = np.call_method1("ascontiguousarray", (obj, dtype))?;
        if is_f32 {
            Ok(Array::F32(copy.cast_into::<PyArrayDyn<f32>>()?.try_readonly()?))
        } else {
            Ok(Array::F64(copy.cast_into::<PyArrayDyn<f64>>()?.try_readonly()?))
        }
    }

    /// The array's shape.
    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Array::F32(a) => a.shape(),
            Array::F64(a) => a.shape(),
        }
    }

    /// A view of the elements, valid while `self` lives. An empty array is a `ValueError`.
    pub(crate) fn view(&self, what: &str) -> PyResult<TensorView<'_>> {
        let shape = self.shape();
        let view = match self {
            Array::F32(a) => TensorView::new(slice(a.as_slice())?, shape),
            Array::F64(a) => TensorView::new(slice(a.as_slice())?, shape),
        };
        let view = view.map_err(|e| tensor_error(e, what))?;
        if view.is_empty() {
            return Err(PyValueError::new_err(format!("`{what}` is empty (shape {shape:?})")));
        }
        Ok(view)
    }
}

fn slice<T, E: std::fmt::Display>(r: Result<&[T], E>) -> PyResult<&[T]> {
    r.map_err(|e| PyTypeError::new_err(e.to_string()))
}

/// A tensor error as a `ValueError` naming the argument.
pub(crate) fn tensor_error(e: TensorError, what: &str) -> PyErr {
    PyValueError::new_err(format!("`{what}`: {e}"))
}
