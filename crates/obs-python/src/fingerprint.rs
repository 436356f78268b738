//! `TrainingFingerprint` over [`obs_fingerprint`]: datasets hashed in place with the GIL
//! released.

use obs_fingerprint::{Dataset, TrainingFingerprint};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::convert::{data_to_py, serde_to_py, to_data};
use crate::errors::IntoPy;

/// A dataset array borrowed for hashing (its bytes as they are in memory, little-endian).
enum Borrowed<'py> {
    F32(numpy::PyReadonlyArrayDyn<'py, f32>),
    F64(numpy::PyReadonlyArrayDyn<'py, f64>),
    I32(numpy::PyReadonlyArrayDyn<'py, i32>),
    I64(numpy::PyReadonlyArrayDyn<'py, i64>),
    U8(numpy::PyReadonlyArrayDyn<'py, u8>),
}

fn borrow<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Borrowed<'py>> {
    use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
    let py = obj.py();
    let np = py.import("numpy")?;
    if !obj.is_instance(&np.getattr("ndarray")?)? {
        return Err(PyTypeError::new_err(format!(
            "`dataset` must be a numpy array or a path, got {}",
            obj.get_type().name()?
        )));
    }
    // A non-contiguous view is hashed as its C-ordered copy (same dtype, so the same hash as
    // the contiguous array).
    let obj = if obj.getattr("flags")?.get_item("C_CONTIGUOUS")?.extract::<bool>()? {
        obj.clone()
    } else {
        np.call_method1("ascontiguousarray", (obj,))?
    };
    macro_rules! try_as {
        ($t:ty, $v:ident) => {
            if let Ok(a) = obj.cast::<PyArrayDyn<$t>>() {
                debug_assert!(a.is_c_contiguous());
                return Ok(Borrowed::$v(a.try_readonly()?));
            }
        };
    }
    try_as!(f32, F32);
    try_as!(f64, F64);
    try_as!(i32, I32);
    try_as!(i64, I64);
    try_as!(u8, U8);
    let dtype = obj.getattr("dtype")?.str()?.to_string();
    Err(PyTypeError::new_err(format!(
        "`dataset` must be float32, float64, int32, int64 or uint8 (got {dtype}); convert it with .astype()"
    )))
}

/// The borrowed elements, sent to the GIL-free hashing closure.
#[derive(Clone, Copy)]
enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
}

/// Everything needed to reproduce a run: seeds, dataset hash, versions, hardware, OS, model
/// hash, hyperparameters and git state. Make one with ``TrainingFingerprint.capture(...)``.
#[pyclass(name = "TrainingFingerprint", module = "observatory", frozen)]
pub(crate) struct PyTrainingFingerprint {
    pub(crate) inner: TrainingFingerprint,
}

#[pymethods]
impl PyTrainingFingerprint {
    /// Captures the environment. ``dataset`` is a numpy array (hashed in place, GIL released)
    /// or a path to a file or directory; ``random_seed`` is recorded as the ``random_seed``
    /// seed, ``numpy_seed`` too when given.
    #[classmethod]
    #[pyo3(signature = (*, model_info = None, hyperparameters = None, dataset = None, random_seed = None, numpy_seed = None, run_id = None))]
    #[allow(clippy::too_many_arguments)]
    fn capture(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        model_info: Option<&Bound<'_, PyAny>>,
        hyperparameters: Option<&Bound<'_, PyAny>>,
        dataset: Option<&Bound<'_, PyAny>>,
        random_seed: Option<u64>,
        numpy_seed: Option<u64>,
        run_id: Option<String>,
    ) -> PyResult<Self> {
        let model = match model_info.filter(|m| !m.is_none()) {
            Some(m) => Some(to_data(Some(m))?),
            None => None,
        };
        let hyper = to_data(hyperparameters)?;
        let sys = py.import("sys")?;
        let version: String = sys.getattr("version")?.extract()?;
        let mut frameworks =
            vec![("python".to_owned(), version.split_whitespace().next().unwrap_or("").to_owned())];
        if let Ok(np) = py.import("numpy") {
            frameworks.push(("numpy".to_owned(), np.getattr("__version__")?.extract()?));
        }
        let borrowed;
        let mut shape = Vec::new();
        let mut path = None;
        let mut elements = None;
        match dataset.filter(|d| !d.is_none()) {
            None => {}
            Some(d) if d.is_instance_of::<PyString>() || d.hasattr("__fspath__")? => {
                path = Some(d.extract::<std::path::PathBuf>()?);
            }
            Some(d) => {
                use numpy::PyUntypedArrayMethods;
                borrowed = borrow(d)?;
                let bad = |e: numpy::AsSliceError| PyTypeError::new_err(e.to_string());
                elements = Some(match &borrowed {
                    Borrowed::F32(a) => {
                        shape.extend_from_slice(a.shape());
                        Slice::F32(a.as_slice().map_err(bad)?)
                    }
                    Borrowed::F64(a) => {
                        shape.extend_from_slice(a.shape());
                        Slice::F64(a.as_slice().map_err(bad)?)
                    }
                    Borrowed::I32(a) => {
                        shape.extend_from_slice(a.shape());
                        Slice::I32(a.as_slice().map_err(bad)?)
                    }
                    Borrowed::I64(a) => {
                        shape.extend_from_slice(a.shape());
                        Slice::I64(a.as_slice().map_err(bad)?)
                    }
                    Borrowed::U8(a) => {
                        shape.extend_from_slice(a.shape());
                        Slice::U8(a.as_slice().map_err(bad)?)
                    }
                });
            }
        }
        let fp = py
            .detach(|| {
                let mut builder = TrainingFingerprint::builder().hyperparameters(hyper);
                if let Some(m) = model {
                    builder = builder.model_info(m);
                }
                if let Some(s) = random_seed {
                    builder = builder.seed("random_seed", s);
                }
                if let Some(s) = numpy_seed {
                    builder = builder.seed("numpy_seed", s);
                }
                if let Some(id) = run_id {
                    builder = builder.run_id(id);
                }
                for (name, v) in frameworks {
                    builder = builder.framework(name, v);
                }
                if let Some(p) = path {
                    builder = builder.dataset(Dataset::path(p));
                }
                if let Some(e) = elements {
                    builder = builder.dataset(match e {
                        Slice::F32(d) => Dataset::slice(d, &shape),
                        Slice::F64(d) => Dataset::slice(d, &shape),
                        Slice::I32(d) => Dataset::slice(d, &shape),
                        Slice::I64(d) => Dataset::slice(d, &shape),
                        Slice::U8(d) => Dataset::slice(d, &shape),
                    });
                }
                builder.capture()
            })
            .py_err()?;
        Ok(PyTrainingFingerprint { inner: fp })
    }

    /// The fingerprint as JSON-ready dicts (``json.dump(fp.to_dict(), f)``).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        data_to_py(py, &self.inner.to_data())
    }

    /// A fingerprint from ``to_dict()``'s output (``json.load``). Raises ``ValueError`` for a
    /// dict that is not one.
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, pyo3::types::PyType>, d: &Bound<'_, PyAny>) -> PyResult<Self> {
        if d.cast::<PyDict>().is_err() {
            return Err(PyTypeError::new_err("from_dict takes a dict"));
        }
        // Through `Data`, which keeps the dict's order (the model hash covers the model
        // description canonically, but the description is kept as given).
        let inner = TrainingFingerprint::from_data(&to_data(Some(d))?).py_err()?;
        Ok(PyTrainingFingerprint { inner })
    }

    /// The fingerprint as JSON text.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Writes the fingerprint as JSON to ``path``.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save(&path)).py_err()
    }

    /// The boxed text block of the reference (``╔══ Training Fingerprint ══╗`` ...).
    fn format_text(&self) -> String {
        self.inner.format_text()
    }

    /// The run id.
    #[getter]
    fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The seed given as ``random_seed``.
    #[getter]
    fn random_seed(&self) -> Option<u64> {
        self.inner.seeds.get("random_seed").copied()
    }

    /// SHA-256 of the dataset (64 hex digits), if one was given.
    #[getter]
    fn dataset_hash(&self) -> Option<&str> {
        self.inner.dataset.as_ref().map(|d| d.sha256.as_str())
    }

    /// The dataset's shape, if one was given.
    #[getter]
    fn dataset_shape(&self) -> Option<Vec<u64>> {
        self.inner.dataset.as_ref().map(|d| d.shape.clone())
    }

    /// The dataset's dtype, if one was given.
    #[getter]
    fn dataset_dtype(&self) -> Option<&str> {
        self.inner.dataset.as_ref().map(|d| d.dtype.as_str())
    }

    /// The model description, as given (an empty dict without one).
    #[getter]
    fn model_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner.model {
            Some(m) => serde_to_py(py, &m.info),
            None => Ok(PyDict::new(py).into_any()),
        }
    }

    /// SHA-256 of the model description, if one was given.
    #[getter]
    fn model_architecture_hash(&self) -> Option<&str> {
        self.inner.model.as_ref().map(|m| m.sha256.as_str())
    }

    /// The hyperparameters, as given.
    #[getter]
    fn hyperparameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        data_to_py(py, &self.inner.hyperparameters)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        // By their JSON: the fields hold floats that may be NaN (no GPU memory, say).
        other.cast::<Self>().is_ok_and(|o| o.get().inner.to_json() == self.inner.to_json())
    }

    fn __repr__(&self) -> String {
        format!("TrainingFingerprint(run_id={:?})", self.inner.run_id)
    }
}
