//! `LogLevel` and `TrainingLogger`: the reference's hooks and keyword names over
//! [`obs_core::TrainingLogger`].

use numpy::PyArrayMethods;
use obs_core::{
    Activation, BatchMetrics, Data, Event, EventType, LogLevel, Severity, TrainingLogger,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::array::Array;
use crate::backends;
use crate::convert::{as_dict, data_to_py, kwargs_data, to_batch_metrics, to_data, with_kwargs};
use crate::errors::IntoPy;

/// How much a logger records: SILENT < BASIC < DETAILED < EXPERT < DEBUG.
///
/// BASIC records train and epoch boundaries, epoch metrics and health events; DETAILED adds
/// batches and gradient norms; EXPERT adds per-layer statistics of activations, gradients and
/// weights; DEBUG everything.
#[pyclass(name = "LogLevel", module = "observatory", eq, eq_int, ord, frozen, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PyLogLevel {
    /// Nothing is recorded.
    #[pyo3(name = "SILENT")]
    Silent = 0,
    /// Train and epoch boundaries, epoch metrics and health events.
    #[pyo3(name = "BASIC")]
    Basic = 1,
    /// Adds batch boundaries, batch metrics and gradient norms.
    #[pyo3(name = "DETAILED")]
    Detailed = 2,
    /// Adds per-layer statistics.
    #[pyo3(name = "EXPERT")]
    Expert = 3,
    /// Everything.
    #[pyo3(name = "DEBUG")]
    Debug = 4,
}

impl From<PyLogLevel> for LogLevel {
    fn from(l: PyLogLevel) -> Self {
        match l {
            PyLogLevel::Silent => LogLevel::Silent,
            PyLogLevel::Basic => LogLevel::Basic,
            PyLogLevel::Detailed => LogLevel::Detailed,
            PyLogLevel::Expert => LogLevel::Expert,
            PyLogLevel::Debug => LogLevel::Debug,
        }
    }
}

impl From<LogLevel> for PyLogLevel {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Silent => PyLogLevel::Silent,
            LogLevel::Basic => PyLogLevel::Basic,
            LogLevel::Detailed => PyLogLevel::Detailed,
            LogLevel::Expert => PyLogLevel::Expert,
            LogLevel::Debug => PyLogLevel::Debug,
        }
    }
}

/// A level given as `LogLevel.X`, its integer value or its name (`"expert"`).
pub(crate) fn level_arg(obj: &Bound<'_, PyAny>) -> PyResult<LogLevel> {
    if let Ok(l) = obj.extract::<PyLogLevel>() {
        return Ok(l.into());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_cow()?
            .parse::<LogLevel>()
            .map_err(|e| PyValueError::new_err(format!("unknown log level: {e}")));
    }
    if let Ok(i) = obj.extract::<i64>() {
        return match i {
            0 => Ok(LogLevel::Silent),
            1 => Ok(LogLevel::Basic),
            2 => Ok(LogLevel::Detailed),
            3 => Ok(LogLevel::Expert),
            4 => Ok(LogLevel::Debug),
            _ => Err(PyValueError::new_err(format!("log level must be 0-4, got {i}"))),
        };
    }
    Err(PyTypeError::new_err("level must be a LogLevel, an int 0-4 or a level name"))
}

/// An activation name (`"relu"`, `"tanh"`, ...) or `None`.
pub(crate) fn activation_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Activation> {
    match obj {
        None => Ok(Activation::None),
        Some(o) if o.is_none() => Ok(Activation::None),
        Some(o) => {
            let s = o.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err("`activation` must be a string such as \"relu\" or \"tanh\"")
            })?;
            s.to_cow()?
                .parse::<Activation>()
                .map_err(|e| PyValueError::new_err(format!("unknown activation: {e}")))
        }
    }
}

/// A severity name (`"info"`, `"warning"`, `"danger"`, `"critical"`, `"success"`).
pub(crate) fn severity_arg(s: &str) -> PyResult<Severity> {
    s.parse::<Severity>().map_err(|e| PyValueError::new_err(format!("unknown severity: {e}")))
}

/// Checks a layer or parameter name: non-empty, at most 1024 bytes, no control characters.
pub(crate) fn check_name(name: &str, what: &str) -> PyResult<()> {
    if name.is_empty() {
        return Err(PyValueError::new_err(format!("`{what}` must not be empty")));
    }
    if name.len() > 1024 {
        return Err(PyValueError::new_err(format!("`{what}` is longer than 1024 bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(PyValueError::new_err(format!(
            "`{what}` contains control characters: {name:?}"
        )));
    }
    Ok(())
}

/// Pops `activation` from the extra keyword arguments.
pub(crate) fn take_activation(extra: Option<&Bound<'_, PyDict>>) -> PyResult<Activation> {
    let Some(d) = extra else { return Ok(Activation::None) };
    match d.get_item("activation")? {
        Some(a) => {
            d.del_item("activation")?;
            activation_arg(Some(&a))
        }
        None => Ok(Activation::None),
    }
}

/// What the reference's `on_train_start` records besides the epochs and the model: its
/// `total_samples` and `batch_size` when given (non-zero) and any extra keywords.
pub(crate) fn train_start_extra(
    total_samples: i64,
    batch_size: i64,
    extra: Option<&Bound<'_, PyDict>>,
) -> PyResult<Data> {
    let mut more = kwargs_data(extra)?;
    if total_samples != 0 {
        more.insert("total_samples", index_arg(total_samples, "total_samples")?);
    }
    if batch_size != 0 {
        more.insert("batch_size", index_arg(batch_size, "batch_size")?);
    }
    Ok(more)
}

/// A non-negative index.
pub(crate) fn index_arg(i: i64, what: &str) -> PyResult<u64> {
    u64::try_from(i).map_err(|_| PyValueError::new_err(format!("`{what}` must be >= 0, got {i}")))
}

/// Records training events and hands them to its backends (storage, dashboard, bridges).
///
/// The hooks are the reference's: ``on_train_start(total_epochs=, model_info=)``,
/// ``on_epoch_start(epoch)``, ``on_epoch_end(epoch, metrics=)``, ``on_batch_start(batch)``,
/// ``on_batch_end(batch, loss=, metrics=)``, ``on_layer_forward(index, name, output_data=)``,
/// ``on_layer_backward(index, name, grad_output=/grad_weights=)``,
/// ``on_gradient_computed(name, gradient)``, ``on_weight_updated(name, old_value, new_value)``,
/// ``on_health_check(check_name, severity, message)``, ``on_train_end(final_metrics=)``.
///
/// Events go to a background thread that runs the backends, so file I/O never blocks the
/// training loop. Call ``flush()`` to wait for them and ``close()`` at the end.
#[pyclass(name = "TrainingLogger", module = "observatory", frozen)]
pub(crate) struct PyTrainingLogger {
    pub(crate) inner: TrainingLogger,
}

impl PyTrainingLogger {
    #[allow(clippy::too_many_arguments)]
    fn tensor_hook(
        &self,
        py: Python<'_>,
        event_type: EventType,
        layer_index: u64,
        layer_name: &str,
        array: &Bound<'_, PyAny>,
        what: &str,
        activation: Activation,
        extra: Data,
    ) -> PyResult<()> {
        if !self.inner.enabled(event_type.default_level()) {
            // Still validate the argument: a bad tensor is a bug whatever the level.
            Array::extract(array, what)?.view(what)?;
            return Ok(());
        }
        let arr = Array::extract(array, what)?;
        let view = arr.view(what)?;
        let stats = py.detach(|| obs_core::tensor_stats(view, activation));
        let mut event = self.inner.layer_event(
            event_type,
            usize::try_from(layer_index).unwrap_or(usize::MAX),
            layer_name,
            arr.shape(),
            &stats,
        );
        for (k, v) in &extra {
            event.data.insert(k.to_owned(), v.clone());
        }
        self.inner.emit(event);
        Ok(())
    }
}

#[pymethods]
impl PyTrainingLogger {
    /// A logger recording at ``level`` (a ``LogLevel``, default BASIC), with optional
    /// ``backends`` added at once.
    #[new]
    #[pyo3(signature = (level = None, backends = None))]
    fn new(
        level: Option<&Bound<'_, PyAny>>,
        backends: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let level = match level {
            Some(l) => level_arg(l)?,
            None => LogLevel::Basic,
        };
        let inner = TrainingLogger::new(level).py_err()?;
        let logger = PyTrainingLogger { inner };
        if let Some(list) = backends.filter(|b| !b.is_none()) {
            for b in list.try_iter()? {
                backends::attach(&b?, &logger.inner)?;
            }
        }
        Ok(logger)
    }

    /// The current level.
    #[getter]
    fn level(&self) -> PyLogLevel {
        self.inner.level().into()
    }

    /// Changes the level.
    #[setter]
    fn set_level(&self, level: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set_level(level_arg(level)?);
        Ok(())
    }

    /// Adds a backend (``TieredStorage``, ``DashboardExporter``, ``TensorBoardBridge``,
    /// ``WandBBridge``); it receives every event recorded from now on. Returns the logger.
    fn add_backend<'py>(
        slf: Bound<'py, Self>,
        backend: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        backends::attach(backend, &slf.get().inner)?;
        Ok(slf)
    }

    /// Training begins.
    #[pyo3(signature = (*, model_info = None, total_epochs = 0, total_samples = 0, batch_size = 0, **extra))]
    fn on_train_start(
        &self,
        model_info: Option<&Bound<'_, PyAny>>,
        total_epochs: i64,
        total_samples: i64,
        batch_size: i64,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let epochs = index_arg(total_epochs, "total_epochs")?;
        let more = train_start_extra(total_samples, batch_size, extra)?;
        self.inner.on_train_start_with(epochs, to_data(model_info)?, more);
        Ok(())
    }

    /// Training ends, with optional final metrics.
    #[pyo3(signature = (*, final_metrics = None, **extra))]
    fn on_train_end(
        &self,
        final_metrics: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let metrics = with_kwargs(final_metrics, extra)?;
        self.inner.on_train_end(metrics);
        Ok(())
    }

    /// An epoch (0-based) begins. Extra keywords are accepted and not recorded.
    #[pyo3(signature = (epoch, **extra))]
    fn on_epoch_start(&self, epoch: i64, extra: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let _ = kwargs_data(extra)?;
        self.inner.on_epoch_start(index_arg(epoch, "epoch")?);
        Ok(())
    }

    /// An epoch ends with its metrics (``loss``, ``val_loss``, ``accuracy``, ...).
    #[pyo3(signature = (epoch, *, metrics = None, **extra))]
    fn on_epoch_end(
        &self,
        epoch: i64,
        metrics: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let m = with_kwargs(metrics, extra)?;
        self.inner.on_epoch_end(index_arg(epoch, "epoch")?, m);
        Ok(())
    }

    /// A batch (0-based within the epoch) begins (DETAILED). ``epoch``, ``X_batch``,
    /// ``y_batch`` and extra keywords are accepted for the reference's signature and not
    /// recorded (the epoch comes from ``on_epoch_start``).
    #[pyo3(signature = (batch, *, epoch = None, X_batch = None, y_batch = None, **extra))]
    #[allow(non_snake_case)]
    fn on_batch_start(
        &self,
        batch: i64,
        epoch: Option<i64>,
        X_batch: Option<&Bound<'_, PyAny>>,
        y_batch: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let _ = (epoch, X_batch, y_batch, kwargs_data(extra)?);
        self.inner.on_batch_start(index_arg(batch, "batch")?);
        Ok(())
    }

    /// A batch ends with its loss and metrics.
    #[pyo3(signature = (batch, *, epoch = None, loss = None, metrics = None, **extra))]
    fn on_batch_end(
        &self,
        batch: i64,
        epoch: Option<i64>,
        loss: Option<f64>,
        metrics: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let batch = index_arg(batch, "batch")?;
        let mut m = to_data(metrics)?;
        if let Some(l) = loss {
            m.insert("loss", l);
        }
        let extra = kwargs_data(extra)?;
        let epoch = epoch.map(|e| index_arg(e, "epoch")).transpose()?;
        let current = self.inner.current_epoch();
        // The logger's own hook covers the common case; an explicit other epoch or extra
        // keywords need the event built here.
        if extra.is_empty() && epoch.is_none_or(|e| Some(e) == current) {
            self.inner.on_batch_end(batch, m);
        } else if self.inner.enabled(LogLevel::Detailed) {
            let mut data = Data::with_capacity(1 + extra.len());
            data.insert("metrics", m);
            for (k, v) in &extra {
                data.insert(k.to_owned(), v.clone());
            }
            self.inner.emit(
                Event::new(EventType::BatchEnd, LogLevel::Detailed)
                    .at(epoch.or(current), Some(batch))
                    .data(data),
            );
        }
        Ok(())
    }

    /// The common case of ``on_batch_end`` (no ``epoch=``, no extra keywords), positional:
    /// the package's ``on_batch_end`` calls this. PyO3 parses keyword arguments of an
    /// abi3-py39 method by encoding every keyword's name to a new bytes object; positional
    /// arguments cost none of that, which halves the price of the most frequent hook.
    #[pyo3(signature = (batch, loss, metrics, /))]
    fn _batch_end(
        &self,
        batch: i64,
        loss: Option<f64>,
        metrics: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let batch = index_arg(batch, "batch")?;
        if !self.inner.enabled(LogLevel::Detailed) {
            // Checked, not converted: the event would not be recorded.
            as_dict(metrics)?;
            self.inner.on_batch_end(batch, Data::new());
            return Ok(());
        }
        let mut m = to_batch_metrics(metrics)?;
        if let Some(l) = loss {
            m.insert("loss", l);
        }
        self.inner.on_batch_end(batch, m);
        Ok(())
    }

    /// Many batch ends at once: ``batches[i]`` ended with ``loss[i]`` and ``metrics[k][i]``.
    /// Records exactly the events that ``on_batch_end(batches[i], loss=loss[i],
    /// metrics={k: metrics[k][i]})`` would, in order, in one call (for metrics gathered on a
    /// device or in a buffer and logged later, or replayed). Returns the number of batches.
    #[pyo3(signature = (batches, *, loss = None, metrics = None))]
    fn on_batch_end_many<'py>(
        &self,
        py: Python<'py>,
        batches: &Bound<'py, PyAny>,
        loss: Option<&Bound<'py, PyAny>>,
        metrics: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<usize> {
        let np = py.import("numpy")?;
        let b = column(&np, batches, "int64", "batches")?;
        let b = b.cast::<numpy::PyArray1<i64>>()?.try_readonly()?;
        let batches = b.as_slice().map_err(|e| PyTypeError::new_err(e.to_string()))?;
        if let Some(neg) = batches.iter().find(|&&x| x < 0) {
            return Err(PyValueError::new_err(format!("`batches` must be >= 0, got {neg}")));
        }
        let n = batches.len();
        let mut columns: Vec<(String, numpy::PyReadonlyArray1<'py, f64>)> = Vec::new();
        if let Some(m) = metrics.filter(|m| !m.is_none()) {
            let d = m
                .cast::<PyDict>()
                .map_err(|_| PyTypeError::new_err("`metrics` must be a dict of name -> array"))?;
            for (k, v) in d.iter() {
                let name: String = k
                    .extract()
                    .map_err(|_| PyTypeError::new_err("`metrics` keys must be strings"))?;
                let a = column(&np, &v, "float64", &format!("metrics[{name:?}]"))?;
                columns.push((name, a.cast_into::<numpy::PyArray1<f64>>()?.try_readonly()?));
            }
        }
        if let Some(l) = loss.filter(|l| !l.is_none()) {
            let a = column(&np, l, "float64", "loss")?;
            columns
                .push(("loss".to_owned(), a.cast_into::<numpy::PyArray1<f64>>()?.try_readonly()?));
        }
        let mut slices: Vec<(obs_core::Key, &[f64])> = Vec::with_capacity(columns.len());
        for (name, col) in &columns {
            let s = col.as_slice().map_err(|e| PyTypeError::new_err(e.to_string()))?;
            if s.len() != n {
                return Err(PyValueError::new_err(format!(
                    "`{name}` has {} values for {n} batches",
                    s.len()
                )));
            }
            slices.push((crate::intern::key(name), s));
        }
        let logger = &self.inner;
        py.detach(|| {
            for (i, &batch) in batches.iter().enumerate() {
                let mut m = BatchMetrics::new();
                for (name, col) in &slices {
                    m.insert(name.clone(), col[i]);
                }
                logger.on_batch_end(batch as u64, m);
            }
        });
        Ok(n)
    }

    /// A layer's output (EXPERT): one pass of the statistics kernel over ``output_data`` read
    /// in place, with the GIL released; ``input_data``, ``weights`` and ``bias`` are accepted for
    /// the reference's signature and not reduced. ``formula`` and extra keywords are recorded in
    /// the event's data. Pass ``activation="relu"`` (or ``"tanh"``,
    /// ``"sigmoid"``, ``"linear"``) so saturation and dead units are judged for it.
    #[pyo3(signature = (layer_index, layer_name, *, input_data = None, output_data = None, weights = None, bias = None, formula = "", **extra))]
    #[allow(clippy::too_many_arguments)]
    fn on_layer_forward(
        &self,
        py: Python<'_>,
        layer_index: i64,
        layer_name: &str,
        input_data: Option<&Bound<'_, PyAny>>,
        output_data: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
        bias: Option<&Bound<'_, PyAny>>,
        formula: &str,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let _ = (input_data, weights, bias);
        check_name(layer_name, "layer_name")?;
        let index = index_arg(layer_index, "layer_index")?;
        let activation = take_activation(extra)?;
        let mut more = kwargs_data(extra)?;
        if !formula.is_empty() {
            more.insert("formula", formula);
        }
        let Some(out) = output_data.filter(|o| !o.is_none()) else { return Ok(()) };
        self.tensor_hook(
            py,
            EventType::LayerForward,
            index,
            layer_name,
            out,
            "output_data",
            activation,
            more,
        )
    }

    /// The gradient of a layer (EXPERT): statistics of ``grad_weights`` (else
    /// ``grad_output``), whose ``l2_norm`` is the gradient norm.
    #[pyo3(signature = (layer_index, layer_name, *, grad_output = None, grad_weights = None, grad_bias = None, formula = "", **extra))]
    #[allow(clippy::too_many_arguments)]
    fn on_layer_backward(
        &self,
        py: Python<'_>,
        layer_index: i64,
        layer_name: &str,
        grad_output: Option<&Bound<'_, PyAny>>,
        grad_weights: Option<&Bound<'_, PyAny>>,
        grad_bias: Option<&Bound<'_, PyAny>>,
        formula: &str,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let _ = grad_bias;
        check_name(layer_name, "layer_name")?;
        let index = index_arg(layer_index, "layer_index")?;
        let mut more = kwargs_data(extra)?;
        if !formula.is_empty() {
            more.insert("formula", formula);
        }
        let (g, what) =
            match (grad_weights.filter(|g| !g.is_none()), grad_output.filter(|g| !g.is_none())) {
                (Some(w), _) => (w, "grad_weights"),
                (None, Some(o)) => (o, "grad_output"),
                (None, None) => return Ok(()),
            };
        self.tensor_hook(
            py,
            EventType::LayerBackward,
            index,
            layer_name,
            g,
            what,
            Activation::None,
            more,
        )
    }

    /// A gradient norm for a parameter or layer (DETAILED). A non-finite norm is recorded as
    /// critical.
    #[pyo3(signature = (param_name, gradient, **extra))]
    fn on_gradient_computed(
        &self,
        param_name: &str,
        gradient: f64,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        check_name(param_name, "param_name")?;
        let _ = kwargs_data(extra)?;
        self.inner.on_gradient_computed(param_name, gradient);
        Ok(())
    }

    /// A parameter after an optimiser step (EXPERT). ``old_value`` and ``new_value`` are
    /// numbers (a norm, a scalar weight) or numpy arrays of the weights before and after; the
    /// norm of the change is recorded as ``update_norm``.
    #[pyo3(signature = (param_name, old_value, new_value, **extra))]
    fn on_weight_updated(
        &self,
        py: Python<'_>,
        param_name: &str,
        old_value: &Bound<'_, PyAny>,
        new_value: &Bound<'_, PyAny>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        check_name(param_name, "param_name")?;
        let more = kwargs_data(extra)?;
        let update = WeightUpdate::extract(py, old_value, new_value)?;
        if !self.inner.enabled(LogLevel::Expert) {
            return Ok(());
        }
        let mut event = match &update {
            WeightUpdate::Scalars { old, new } => {
                let mut e = Event::new(EventType::WeightUpdated, LogLevel::Expert)
                    .at(self.inner.current_epoch(), self.inner.current_batch())
                    .field("old_value", *old)
                    .field("new_value", *new)
                    .field("update_norm", (new - old).abs());
                if !(old.is_finite() && new.is_finite()) {
                    e = e.severity(Severity::Critical);
                }
                e
            }
            WeightUpdate::Arrays { new, norm } => {
                let view = new.view("new_value")?;
                let stats = py.detach(|| obs_core::tensor_stats(view, Activation::None));
                let mut e = self.inner.layer_event(
                    EventType::WeightUpdated,
                    usize::MAX,
                    param_name,
                    new.shape(),
                    &stats,
                );
                e.layer_index = None;
                e.data.insert("update_norm", *norm);
                e
            }
        };
        event.layer_name = Some(param_name.to_owned());
        for (k, v) in &more {
            event.data.insert(k.to_owned(), v.clone());
        }
        self.inner.emit(event);
        Ok(())
    }

    /// A health finding (BASIC), routed to the health tier.
    #[pyo3(signature = (check_name, severity, message, recommendations = None, **extra))]
    fn on_health_check(
        &self,
        check_name: &str,
        severity: &str,
        message: &str,
        recommendations: Option<Vec<String>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let severity = severity_arg(severity)?;
        let mut data = kwargs_data(extra)?;
        let layer = data.remove("layer_name").and_then(|v| v.as_str().map(str::to_owned));
        data.insert("rule_name", check_name);
        if let Some(r) = recommendations {
            data.insert("recommendations", r);
        }
        self.inner.on_health_check(severity, message, layer.as_deref(), data);
        Ok(())
    }

    /// Counts of what was recorded: ``{"total_events", "by_type", "by_severity", "dropped",
    /// "rejected"}``.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.summary();
        let d = PyDict::new(py);
        d.set_item("total_events", s.total)?;
        let by_type = PyDict::new(py);
        for (t, n) in &s.by_type {
            by_type.set_item(t.as_str(), n)?;
        }
        d.set_item("by_type", by_type)?;
        let by_sev = PyDict::new(py);
        for (sev, n) in &s.by_severity {
            by_sev.set_item(sev.as_str(), n)?;
        }
        d.set_item("by_severity", by_sev)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("rejected", s.rejected)?;
        Ok(d)
    }

    /// Waits until every event recorded so far has been handed to every backend. Raises
    /// ``OSError`` when a backend failed since the last flush.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.flush()).py_err()
    }

    /// Writes everything, closes every backend and stops the background thread. Idempotent.
    /// Returns a dict with the counts of events delivered and any backend failures.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = py.detach(|| self.inner.close()).py_err()?;
        let d = PyDict::new(py);
        d.set_item(
            "failures",
            report.failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )?;
        Ok(d)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        py.detach(|| self.inner.close()).py_err().map(|_| ())
    }

    fn __repr__(&self) -> String {
        format!("TrainingLogger(level=LogLevel.{})", self.inner.level().as_str().to_uppercase())
    }
}

/// `o` as a contiguous 1-d numpy array of `dtype` (converted once if it is not one).
fn column<'py>(
    np: &Bound<'py, PyModule>,
    o: &Bound<'py, PyAny>,
    dtype: &str,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let a = np.call_method1("ascontiguousarray", (o, dtype)).map_err(|e| {
        PyTypeError::new_err(format!("`{what}` must be a 1-d array of numbers: {e}"))
    })?;
    let ndim: usize = a.getattr("ndim")?.extract()?;
    if ndim != 1 {
        return Err(PyValueError::new_err(format!("`{what}` must be 1-d, got {ndim} dimensions")));
    }
    Ok(a)
}

/// What `on_weight_updated` was given.
pub(crate) enum WeightUpdate<'py> {
    /// Two numbers.
    Scalars {
        /// Before.
        old: f64,
        /// After.
        new: f64,
    },
    /// Two arrays: the new weights and the norm of the change.
    Arrays {
        /// After.
        new: Array<'py>,
        /// `||new - old||`.
        norm: f64,
    },
}

impl<'py> WeightUpdate<'py> {
    pub(crate) fn extract(
        py: Python<'_>,
        old: &Bound<'py, PyAny>,
        new: &Bound<'py, PyAny>,
    ) -> PyResult<Self> {
        if let (Ok(o), Ok(n)) = (old.extract::<f64>(), new.extract::<f64>()) {
            return Ok(WeightUpdate::Scalars { old: o, new: n });
        }
        let o = Array::extract(old, "old_value")?;
        let n = Array::extract(new, "new_value")?;
        let (ov, nv) = (o.view("old_value")?, n.view("new_value")?);
        if ov.len() != nv.len() {
            return Err(PyValueError::new_err(format!(
                "`old_value` has {} elements but `new_value` has {}",
                ov.len(),
                nv.len()
            )));
        }
        let norm = py.detach(|| diff_norm(ov, nv));
        drop(o);
        Ok(WeightUpdate::Arrays { new: n, norm })
    }
}

fn diff_norm(a: obs_core::TensorView<'_>, b: obs_core::TensorView<'_>) -> f64 {
    use obs_core::TensorData as T;
    fn go<A: Copy + Into<f64>, B: Copy + Into<f64>>(a: &[A], b: &[B]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (y.into() - x.into()).powi(2)).sum::<f64>().sqrt()
    }
    match (a.data(), b.data()) {
        (T::F32(x), T::F32(y)) => go(x, y),
        (T::F32(x), T::F64(y)) => go(x, y),
        (T::F64(x), T::F32(y)) => go(x, y),
        (T::F64(x), T::F64(y)) => go(x, y),
    }
}

/// An event as the reference's dict (the NDJSON fields).
pub(crate) fn event_to_py<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("event_type", e.event_type.as_str())?;
    d.set_item("level", e.level.as_str().to_uppercase())?;
    d.set_item("timestamp", e.timestamp)?;
    d.set_item("epoch", e.epoch)?;
    d.set_item("batch", e.batch)?;
    d.set_item("layer_name", e.layer_name.as_deref())?;
    d.set_item("layer_index", e.layer_index)?;
    d.set_item("severity", e.severity.as_str())?;
    d.set_item("message", &e.message)?;
    d.set_item("data", data_to_py(py, &e.data)?)?;
    Ok(d)
}
