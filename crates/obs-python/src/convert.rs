//! Python objects to Observatory values and back: dicts become [`Data`], JSON-like values come
//! back as native `dict`, `list`, `float`, `int`, `str`, `bool` and `None`.

use obs_core::{BatchMetrics, Data, Key, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A Python value as an event value. Numpy scalars and arrays become numbers and lists through
/// `tolist()`; any other object is recorded as its `str()`.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_depth(obj, 0)
}

const MAX_DEPTH: usize = 64;

fn to_value_depth(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    // Metrics are floats nearly always: one type comparison settles them.
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err("value nested more than 64 levels deep"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract::<bool>()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::UInt(u));
        }
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(Value::Map(dict_depth(d, depth + 1)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in obj.try_iter()? {
            out.push(to_value_depth(&item?, depth + 1)?);
        }
        return Ok(Value::List(out));
    }
    // numpy scalars, 0-d arrays and arrays: `tolist()` gives native values.
    if obj.hasattr("tolist")? && obj.hasattr("dtype")? {
        let native = obj.call_method0("tolist")?;
        return to_value_depth(&native, depth + 1);
    }
    // Anything else (an Ellipsis in a model description, an enum, a path...) is recorded as
    // its `str()`, as `json.dumps(default=str)` would.
    Ok(Value::Str(obj.str()?.to_cow()?.into_owned()))
}

fn dict_depth(d: &Bound<'_, PyDict>, depth: usize) -> PyResult<Data> {
    let mut data = Data::with_capacity(d.len());
    for_each_entry(d, depth, |k, v| {
        data.insert(k, v);
    })?;
    Ok(data)
}

/// Calls `f` with each entry of `d` as a key (non-string keys as their `str()`) and a value.
fn for_each_entry(
    d: &Bound<'_, PyDict>,
    depth: usize,
    mut f: impl FnMut(Key, Value),
) -> PyResult<()> {
    for (k, v) in d.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => crate::intern::py_key(s)?,
            Err(_) => crate::intern::key(&k.str()?.to_cow()?),
        };
        f(key, to_value_depth(&v, depth)?);
    }
    Ok(())
}

/// A `metrics=` dict (or `None`) as a batch's metrics: no allocation for a few floats.
pub(crate) fn to_batch_metrics(obj: Option<&Bound<'_, PyAny>>) -> PyResult<BatchMetrics> {
    let mut metrics = BatchMetrics::new();
    if let Some(d) = as_dict(obj)? {
        for_each_entry(d, 0, |k, v| {
            metrics.insert(k, v);
        })?;
    }
    Ok(metrics)
}

/// A dict argument that may be `None`; anything else is a `TypeError`.
pub(crate) fn as_dict<'a, 'py>(
    obj: Option<&'a Bound<'py, PyAny>>,
) -> PyResult<Option<&'a Bound<'py, PyDict>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match o.cast::<PyDict>() {
            Ok(d) => Ok(Some(d)),
            Err(_) => {
                Err(PyTypeError::new_err(format!("expected a dict, got {}", o.get_type().name()?)))
            }
        },
    }
}

/// A Python dict (or `None`, an empty map) as [`Data`].
pub(crate) fn to_data(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Data> {
    match as_dict(obj)? {
        None => Ok(Data::new()),
        Some(d) => dict_depth(d, 0),
    }
}

/// A `**kwargs` dict as [`Data`].
pub(crate) fn kwargs_data(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Data> {
    match kwargs {
        None => Ok(Data::new()),
        Some(d) => dict_depth(d, 0),
    }
}

/// A hook's dict argument (`metrics=`, `final_metrics=`) with its `**kwargs` added on top.
pub(crate) fn with_kwargs(
    base: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Data> {
    let mut data = to_data(base)?;
    for (k, v) in &kwargs_data(kwargs)? {
        data.insert(k.to_owned(), v.clone());
    }
    Ok(data)
}

/// `{name: float}` as `(name, value)` pairs, in the dict's order. A value that is not a
/// number is a `TypeError` naming the key.
pub(crate) fn float_pairs(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Vec<(String, f64)>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else { return Ok(Vec::new()) };
    let d = o
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("`{what}` must be a dict of name -> float")))?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let name = k
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("`{what}` keys must be strings")))?;
        let value = v
            .extract::<f64>()
            .map_err(|_| PyTypeError::new_err(format!("`{what}[{name}]` must be a number")))?;
        out.push((name.to_cow()?.into_owned(), value));
    }
    Ok(out)
}

/// An event value as a native Python object.
pub(crate) fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::UInt(u) => u.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(d) => data_to_py(py, d)?.into_any(),
    })
}

/// [`Data`] as a Python dict.
pub(crate) fn data_to_py<'py>(py: Python<'py>, d: &Data) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in d {
        dict.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(dict)
}

/// A JSON value as a native Python object. The strings `"NaN"`, `"Infinity"` and
/// `"-Infinity"` are left as strings (only event values encode floats that way).
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    v: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        J::String(s) => PyString::new(py, s).into_any(),
        J::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        J::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Anything serialisable (a summary, a fingerprint) as native Python objects.
pub(crate) fn serde_to_py<'py, T: serde::Serialize>(
    py: Python<'py>,
    t: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(t)
        .map_err(|e| PyValueError::new_err(format!("could not convert to Python: {e}")))?;
    // Event values encode non-finite floats as strings; bring them back as floats.
    json_to_py(py, &json)
}

/// A native Python value as JSON (through [`to_value`]).
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let v = to_value(obj)?;
    serde_json::to_value(&v).map_err(|e| PyValueError::new_err(format!("not JSON: {e}")))
}
