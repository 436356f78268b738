#![doc = include_str!("../README.md")]

mod adaptive;
mod array;
mod backends;
mod convert;
mod errors;
mod fingerprint;
mod health;
mod intern;
mod logger;
mod stats;
mod summary;

use pyo3::prelude::*;

/// The native module, `observatory._native`; the `observatory` package re-exports it.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<logger::PyLogLevel>()?;
    m.add_class::<logger::PyTrainingLogger>()?;
    m.add_class::<adaptive::PyAnomalyConfig>()?;
    m.add_class::<adaptive::PyAdaptiveLogger>()?;
    m.add_class::<health::PyWarningConfig>()?;
    m.add_class::<health::PyHealthWarning>()?;
    m.add_class::<health::PyAutoHealthWarnings>()?;
    m.add_class::<summary::PyEpochSummary>()?;
    m.add_class::<summary::PyEpochSummarizer>()?;
    m.add_class::<backends::PyTieredStorage>()?;
    m.add_class::<backends::PyDashboardExporter>()?;
    m.add_class::<backends::PyTensorBoardBridge>()?;
    m.add_class::<backends::PyWandBBridge>()?;
    m.add_class::<fingerprint::PyTrainingFingerprint>()?;
    Ok(())
}
