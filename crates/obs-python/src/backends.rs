//! The backends a Python user creates and keeps: `TieredStorage`, `DashboardExporter`,
//! `TensorBoardBridge`, `WandBBridge`.
//!
//! A Rust backend belongs to the bus thread once added to a logger, but the reference's users
//! keep calling `storage.flush()`, `storage.summary()`, `dashboard.save()` on their object. So
//! each Python backend owns its Rust backend behind a mutex shared with a thin [`Shared`]
//! adapter that the bus runs; the Python object remembers the loggers it was added to, so
//! `flush()` first waits for their queued events.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use obs_bridges::{TensorBoardBridge, WandbBridge};
use obs_core::{Backend, BackendError, Event, TrainingLogger};
use obs_dashboard::DashboardExporter;
use obs_storage::{FileNames, OpenMode, StorageConfig, StorageHandle, TieredStorage};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::to_data;
use crate::errors::IntoPy;
use crate::logger::event_to_py;

/// The Rust backend and the loggers it was added to.
struct Slot<B> {
    /// `None` once closed.
    backend: Option<B>,
    loggers: Vec<TrainingLogger>,
}

/// A backend shared between its Python object and the bus threads of the loggers it was added
/// to.
pub(crate) struct Owned<B> {
    slot: Arc<Mutex<Slot<B>>>,
    name: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on the bus thread while writing is caught by the bus; the data is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<B: Backend + 'static> Owned<B> {
    fn new(backend: B) -> Self {
        let name = backend.name().to_owned();
        Owned {
            slot: Arc::new(Mutex::new(Slot { backend: Some(backend), loggers: Vec::new() })),
            name,
        }
    }

    /// Adds the backend to `logger`.
    fn attach(&self, logger: &TrainingLogger) -> PyResult<()> {
        let mut slot = lock(&self.slot);
        if slot.backend.is_none() {
            return Err(PyValueError::new_err(format!("{} is closed", self.name)));
        }
        logger
            .add_backend(Shared { slot: Arc::clone(&self.slot), name: self.name.clone() })
            .py_err()?;
        slot.loggers.push(logger.clone());
        Ok(())
    }

    fn loggers(&self) -> Vec<TrainingLogger> {
        lock(&self.slot).loggers.clone()
    }

    /// Waits for the loggers' queued events, then flushes the backend.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let loggers = self.loggers();
        py.detach(|| -> Result<(), String> {
            for l in &loggers {
                // A logger already closed has delivered everything.
                match l.flush() {
                    Ok(()) | Err(obs_core::BusError::Closed) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            let mut slot = lock(&self.slot);
            match slot.backend.as_mut() {
                Some(b) => b.flush().map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
        .map_err(pyo3::exceptions::PyOSError::new_err)
    }

    /// Flushes and closes the backend; later events of its loggers are dropped by it.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.flush(py)?;
        py.detach(|| {
            let mut slot = lock(&self.slot);
            match slot.backend.take() {
                Some(mut b) => b.close().map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
        .map_err(pyo3::exceptions::PyOSError::new_err)
    }

    fn with<R>(&self, f: impl FnOnce(Option<&B>) -> R) -> R {
        f(lock(&self.slot).backend.as_ref())
    }
}

/// The adapter the bus runs.
struct Shared<B> {
    slot: Arc<Mutex<Slot<B>>>,
    name: String,
}

impl<B: Backend> Backend for Shared<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        match lock(&self.slot).backend.as_mut() {
            Some(b) => b.write(events),
            None => Ok(()),
        }
    }
    fn flush(&mut self) -> Result<(), BackendError> {
        match lock(&self.slot).backend.as_mut() {
            Some(b) => b.flush(),
            None => Ok(()),
        }
    }
    fn close(&mut self) -> Result<(), BackendError> {
        // The logger closes: a backend added to several loggers stays open for the others
        // (and is closed by its own `close()`); otherwise it is closed here.
        let mut slot = lock(&self.slot);
        if slot.loggers.len() <= 1 {
            if let Some(mut b) = slot.backend.take() {
                return b.close();
            }
            Ok(())
        } else {
            match slot.backend.as_mut() {
                Some(b) => b.flush(),
                None => Ok(()),
            }
        }
    }
}

/// Adds a Python backend object to `logger`.
pub(crate) fn attach(backend: &Bound<'_, PyAny>, logger: &TrainingLogger) -> PyResult<()> {
    if let Ok(s) = backend.cast::<PyTieredStorage>() {
        return s.get().inner.attach(logger);
    }
    if let Ok(d) = backend.cast::<PyDashboardExporter>() {
        return d.get().inner.attach(logger);
    }
    if let Ok(t) = backend.cast::<PyTensorBoardBridge>() {
        return t.get().inner.attach(logger);
    }
    if let Ok(w) = backend.cast::<PyWandBBridge>() {
        return w.get().inner.attach(logger);
    }
    Err(PyTypeError::new_err(format!(
        "add_backend takes a TieredStorage, DashboardExporter, TensorBoardBridge or WandBBridge, got {}",
        backend.get_type().name()?
    )))
}

fn open_mode(mode: &str) -> PyResult<OpenMode> {
    match mode {
        "append" => Ok(OpenMode::Append),
        "new" => Ok(OpenMode::CreateNew),
        "run_dir" => Ok(OpenMode::RunDir),
        "overwrite" => Ok(OpenMode::Overwrite),
        other => Err(PyValueError::new_err(format!(
            "mode must be \"append\", \"new\", \"run_dir\" or \"overwrite\", got {other:?}"
        ))),
    }
}

/// Three NDJSON files in ``base_dir``: ``basic.log`` (train and epoch boundaries),
/// ``health.log`` (warnings and anomalies) and ``debug.log`` (everything else, when
/// ``write_debug``). Add it to a logger with ``logger.add_backend(storage)``; encoding and file
/// I/O run on the logger's background thread.
///
/// ``mode`` decides what happens to logs already in ``base_dir``: ``"append"`` continues them
/// (the reference's behaviour, the default), ``"new"`` refuses a directory with logs,
/// ``"run_dir"`` writes into a fresh ``run-YYYYMMDD-HHMMSS`` subdirectory, ``"overwrite"``
/// truncates them.
#[pyclass(name = "TieredStorage", module = "observatory", frozen)]
pub(crate) struct PyTieredStorage {
    inner: Owned<TieredStorage>,
    handle: StorageHandle,
}

#[pymethods]
impl PyTieredStorage {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(
        text_signature = "(base_dir='./training_logs', basic_filename='basic.log', health_filename='health.log', debug_filename='debug.log', write_debug=True, buffer_size=50, *, mode='append')"
    )]
    #[pyo3(signature = (base_dir = "./training_logs".into(), basic_filename = "basic.log", health_filename = "health.log", debug_filename = "debug.log", write_debug = true, buffer_size = 50, *, mode = "append"))]
    fn new(
        py: Python<'_>,
        base_dir: PathBuf,
        basic_filename: &str,
        health_filename: &str,
        debug_filename: &str,
        write_debug: bool,
        buffer_size: i64,
        mode: &str,
    ) -> PyResult<Self> {
        let buffer = usize::try_from(buffer_size).ok().filter(|&n| n > 0).ok_or_else(|| {
            PyValueError::new_err(format!("buffer_size must be > 0, got {buffer_size}"))
        })?;
        let config = StorageConfig::new(base_dir)
            .names(FileNames::new(basic_filename, health_filename, debug_filename))
            .write_debug(write_debug)
            .buffer_size(buffer)
            .mode(open_mode(mode)?);
        let storage = py.detach(|| TieredStorage::with_config(config)).py_err()?;
        let handle = storage.handle();
        Ok(PyTieredStorage { inner: Owned::new(storage), handle })
    }

    /// The directory the files are in (a ``run-*`` subdirectory in ``"run_dir"`` mode).
    #[getter]
    fn run_dir(&self) -> PathBuf {
        self.handle.run_dir().to_path_buf()
    }

    /// Writes every buffered event to the files (after the loggers' queued events).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.flush(py)
    }

    /// Flushes and closes the files. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.close(py)
    }

    /// What is on disk: ``{"basic": {"events", "size_bytes"}, "health": {...}, "debug":
    /// {...}, "total_events"}``.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.handle.summary();
        let d = PyDict::new(py);
        for (name, tier) in [("basic", s.basic), ("health", s.health), ("debug", s.debug)] {
            let t = PyDict::new(py);
            t.set_item("events", tier.events)?;
            t.set_item("size_bytes", tier.size_bytes)?;
            d.set_item(name, t)?;
        }
        d.set_item("total_events", s.total_events)?;
        Ok(d)
    }

    /// The events of ``basic.log``, as dicts (flush first to include buffered events).
    fn read_basic<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.read(py, |h| h.read_basic())
    }

    /// The events of ``health.log``, as dicts.
    fn read_health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.read(py, |h| h.read_health())
    }

    /// The events of ``debug.log`` (and its rotated segments), as dicts.
    fn read_debug<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.read(py, |h| h.read_debug())
    }

    fn __repr__(&self) -> String {
        format!("TieredStorage(base_dir={:?})", self.handle.run_dir())
    }
}

impl PyTieredStorage {
    fn read<'py>(
        &self,
        py: Python<'py>,
        open: impl FnOnce(&StorageHandle) -> Result<obs_storage::EventIter, obs_storage::StorageError>
        + Send,
    ) -> PyResult<Bound<'py, PyList>> {
        let handle = &self.handle;
        let events: Vec<Event> = py.detach(|| open(handle).map(Iterator::collect)).py_err()?;
        let list = PyList::empty(py);
        for e in &events {
            list.append(event_to_py(py, e)?)?;
        }
        Ok(list)
    }
}

/// A self-contained interactive HTML dashboard (loss and accuracy curves, epoch timing, batch
/// losses, health timeline) written to ``path`` by ``save()``.
#[pyclass(name = "DashboardExporter", module = "observatory", frozen)]
pub(crate) struct PyDashboardExporter {
    inner: Owned<DashboardExporter>,
    handle: obs_dashboard::DashboardHandle,
    path: PathBuf,
}

#[pymethods]
impl PyDashboardExporter {
    #[new]
    #[pyo3(text_signature = "(path='training_logs/dashboard.html')")]
    #[pyo3(signature = (path = "training_logs/dashboard.html".into()))]
    fn new(path: PathBuf) -> PyResult<Self> {
        if path.as_os_str().is_empty() {
            return Err(PyValueError::new_err("path must not be empty"));
        }
        let exporter = DashboardExporter::new(path.clone());
        let handle = exporter.handle();
        Ok(PyDashboardExporter { inner: Owned::new(exporter), handle, path })
    }

    /// The HTML file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Writes the dashboard with every event logged so far; returns its path. Raises
    /// ``OSError`` when the file cannot be written.
    fn save(&self, py: Python<'_>) -> PyResult<String> {
        for l in self.inner.loggers() {
            match py.detach(|| l.flush()) {
                Ok(()) | Err(obs_core::BusError::Closed) => {}
                Err(e) => return Err(crate::errors::to_py(&e)),
            }
        }
        let handle = &self.handle;
        py.detach(|| handle.save()).py_err()?;
        Ok(self.path.to_string_lossy().into_owned())
    }

    fn __repr__(&self) -> String {
        format!("DashboardExporter(path={:?})", self.path)
    }
}

/// TensorBoard event files under ``log_dir`` (``tensorboard --logdir <log_dir>``), written by
/// Observatory itself: no TensorFlow or tensorboard package is needed, so ``available`` is
/// always true.
#[pyclass(name = "TensorBoardBridge", module = "observatory", frozen)]
pub(crate) struct PyTensorBoardBridge {
    inner: Owned<TensorBoardBridge>,
}

#[pymethods]
impl PyTensorBoardBridge {
    #[new]
    #[pyo3(text_signature = "(log_dir='./tb_logs')")]
    #[pyo3(signature = (log_dir = "./tb_logs".into()))]
    fn new(py: Python<'_>, log_dir: PathBuf) -> PyResult<Self> {
        let bridge = py.detach(|| TensorBoardBridge::create(&log_dir)).py_err()?;
        Ok(PyTensorBoardBridge { inner: Owned::new(bridge) })
    }

    /// Whether the bridge can write (true until closed).
    #[getter]
    fn available(&self) -> bool {
        self.inner.with(|b| b.is_some())
    }

    /// The event file.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.inner.with(|b| b.map(|b| b.path().to_path_buf()))
    }

    /// Flushes and closes the event file.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.close(py)
    }
}

/// A Weights & Biases offline run directory (``wandb/offline-run-*`` under ``dir``, default the
/// current directory), written by Observatory itself; upload it with ``wandb sync``. No wandb
/// package is needed, so ``available`` is always true.
#[pyclass(name = "WandBBridge", module = "observatory", frozen)]
pub(crate) struct PyWandBBridge {
    inner: Owned<WandbBridge>,
}

#[pymethods]
impl PyWandBBridge {
    #[new]
    #[pyo3(signature = (project = "observatory", run_name = None, config = None, *, dir = None))]
    fn new(
        py: Python<'_>,
        project: &str,
        run_name: Option<&str>,
        config: Option<&Bound<'_, PyAny>>,
        dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        if project.is_empty() {
            return Err(PyValueError::new_err("project must not be empty"));
        }
        let mut builder = WandbBridge::builder(project).config(to_data(config)?);
        if let Some(name) = run_name {
            builder = builder.run_name(name);
        }
        if let Some(d) = dir {
            builder = builder.dir(d);
        }
        let bridge = py.detach(|| builder.create()).py_err()?;
        Ok(PyWandBBridge { inner: Owned::new(bridge) })
    }

    /// Whether the bridge can write (true until closed).
    #[getter]
    fn available(&self) -> bool {
        self.inner.with(|b| b.is_some())
    }

    /// The run directory.
    #[getter]
    fn run_dir(&self) -> Option<PathBuf> {
        self.inner.with(|b| b.map(|b| b.run_dir().to_path_buf()))
    }

    /// Finishes the run files.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.close(py)
    }
}
