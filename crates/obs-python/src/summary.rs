//! `EpochSummarizer` and `EpochSummary` over [`obs_summary`].

use obs_core::Activation;
use obs_summary::{EpochSummarizer, EpochSummary};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{data_to_py, float_pairs};
use crate::logger::index_arg;
use crate::stats::tensor_stats_arg;

/// Mean, std, min and max of every metric and gradient norm over the batches of one epoch.
#[pyclass(name = "EpochSummary", module = "observatory", frozen)]
pub(crate) struct PyEpochSummary {
    inner: EpochSummary,
}

#[pymethods]
impl PyEpochSummary {
    /// The epoch (0-based).
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// Batches recorded in the epoch.
    #[getter]
    fn num_batches(&self) -> u64 {
        self.inner.batches
    }

    /// ``{name: {"mean", "std", "min", "max", ...}}`` of the batch metrics.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, s) in &self.inner.metrics {
            d.set_item(name, data_to_py(py, &s.to_data())?)?;
        }
        Ok(d)
    }

    /// ``{layer: {"mean", "std", "min", "max", ...}}`` of the gradient norms.
    #[getter]
    fn gradient_norms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, s) in &self.inner.gradient_norms {
            d.set_item(name, data_to_py(py, &s.to_data())?)?;
        }
        Ok(d)
    }

    /// Everything as a dict: ``{"epoch", "num_batches", "metrics": {...}, "gradient_norms":
    /// {...}, ...}``.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        data_to_py(py, &self.inner.to_data())
    }

    /// The reference's text block (``══ Epoch N Summary (B batches) ══`` ...).
    fn format_text(&self) -> String {
        self.inner.format_text()
    }

    fn __repr__(&self) -> String {
        format!("EpochSummary(epoch={}, num_batches={})", self.inner.epoch, self.inner.batches)
    }

    fn __str__(&self) -> String {
        self.inner.format_text()
    }
}

/// Aggregates batch-level numbers into one ``EpochSummary`` per epoch (Welford moments, no
/// batch values kept). Epochs must come in increasing order.
#[pyclass(name = "EpochSummarizer", module = "observatory")]
pub(crate) struct PyEpochSummarizer {
    inner: EpochSummarizer,
}

fn err(e: obs_summary::SummaryError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymethods]
impl PyEpochSummarizer {
    #[new]
    fn new() -> Self {
        PyEpochSummarizer { inner: EpochSummarizer::new() }
    }

    /// Records one batch of ``epoch``: ``metrics`` (``{"loss": 0.3, ...}``), per-layer
    /// ``gradient_norms``, and per-layer ``weight_stats`` / ``activation_stats`` (dicts of
    /// ``mean``, ``std``, ``min``, ``max``, or the arrays themselves, reduced in place).
    #[pyo3(signature = (epoch, *, metrics = None, gradient_norms = None, weight_stats = None, activation_stats = None))]
    fn record_batch(
        &mut self,
        py: Python<'_>,
        epoch: i64,
        metrics: Option<&Bound<'_, PyAny>>,
        gradient_norms: Option<&Bound<'_, PyAny>>,
        weight_stats: Option<&Bound<'_, PyAny>>,
        activation_stats: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let epoch = index_arg(epoch, "epoch")?;
        let m = float_pairs(metrics, "metrics")?;
        let g = float_pairs(gradient_norms, "gradient_norms")?;
        let mut layers = Vec::new();
        for (arg, what, weights) in
            [(weight_stats, "weight_stats", true), (activation_stats, "activation_stats", false)]
        {
            let Some(o) = arg.filter(|o| !o.is_none()) else { continue };
            let d = o.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!("`{what}` must be a dict of layer name -> stats"))
            })?;
            for (k, v) in d.iter() {
                let name: String = k
                    .extract()
                    .map_err(|_| PyTypeError::new_err(format!("`{what}` keys must be strings")))?;
                let label = format!("{what}[{name:?}]");
                layers.push((weights, name, tensor_stats_arg(py, &v, &label, Activation::None)?));
            }
        }
        let m: Vec<(&str, f64)> = m.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let g: Vec<(&str, f64)> = g.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        self.inner.record_batch(epoch, &m, &g).map_err(err)?;
        for (weights, name, stats) in &layers {
            if *weights {
                self.inner.record_weight_stats(epoch, name, stats).map_err(err)?;
            } else {
                self.inner.record_activation_stats(epoch, name, stats).map_err(err)?;
            }
        }
        Ok(())
    }

    /// Closes ``epoch`` and returns its summary.
    fn finalize_epoch(&mut self, epoch: i64) -> PyResult<PyEpochSummary> {
        let s = self.inner.finalize_epoch(index_arg(epoch, "epoch")?).map_err(err)?;
        Ok(PyEpochSummary { inner: s })
    }

    /// Every finalized summary, as dicts.
    fn get_all_summaries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for s in self.inner.get_all_summaries() {
            list.append(data_to_py(py, &s.to_data())?)?;
        }
        Ok(list)
    }

    /// Every finalized summary, as ``EpochSummary`` objects.
    #[getter]
    fn summaries(&self) -> Vec<PyEpochSummary> {
        self.inner.get_all_summaries().iter().map(|s| PyEpochSummary { inner: s.clone() }).collect()
    }

    /// Forgets everything.
    fn reset(&mut self) {
        self.inner.reset();
    }
}
