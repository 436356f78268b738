//! `AnomalyConfig` and `AdaptiveLogger` over [`obs_adaptive`]: one rule engine (obs-health's)
//! judges every hook; EXPERT detail is recorded only around findings.

use obs_adaptive::{AdaptiveLogger, AnomalyConfig};
use obs_core::Data;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::array::Array;
use crate::convert::{kwargs_data, serde_to_py, to_data, with_kwargs};
use crate::errors::IntoPy;
use crate::health::{apply_rules, rule_settings};
use crate::logger::{
    PyTrainingLogger, WeightUpdate, check_name, index_arg, severity_arg, take_activation,
    train_start_extra,
};

/// The reference's `AnomalyConfig` argument names and the rule field each sets.
const ANOMALY_NAMES: &[(&str, &str)] = &[
    ("zeros_pct_threshold", "dead_relu_zeros_pct"),
    ("gradient_spike_factor", "gradient_spike_factor"),
    ("gradient_rolling_window", "gradient_spike_window"),
    ("gradient_vanish_threshold", "vanishing_gradient_threshold"),
    ("gradient_explode_threshold", "exploding_gradient_threshold"),
    ("loss_spike_pct", "loss_spike_pct"),
    ("saturation_threshold", "saturation_pct"),
    ("weight_stagnation_threshold", "weight_stagnation_delta"),
    ("weight_stagnation_window", "weight_stagnation_window"),
];

/// When the adaptive logger escalates to EXPERT detail. The reference's argument names are
/// accepted and set the matching health rules; ``escalation_cooldown`` counts batches (the
/// reference counted hook calls). ``worsen_factor``, ``max_recent``, ``batch_backfill`` and any
/// field of ``WarningConfig`` (by Observatory's name) can be given too. Arguments left out keep
/// Observatory's calibrated defaults.
#[pyclass(name = "AnomalyConfig", module = "observatory", frozen)]
#[derive(Clone)]
pub(crate) struct PyAnomalyConfig {
    inner: AnomalyConfig,
}

#[pymethods]
impl PyAnomalyConfig {
    #[new]
    #[pyo3(signature = (zeros_pct_threshold = None, gradient_spike_factor = None, gradient_rolling_window = None, gradient_vanish_threshold = None, gradient_explode_threshold = None, loss_spike_pct = None, saturation_threshold = None, weight_stagnation_threshold = None, weight_stagnation_window = None, escalation_cooldown = None, **settings))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        zeros_pct_threshold: Option<&Bound<'_, PyAny>>,
        gradient_spike_factor: Option<&Bound<'_, PyAny>>,
        gradient_rolling_window: Option<&Bound<'_, PyAny>>,
        gradient_vanish_threshold: Option<&Bound<'_, PyAny>>,
        gradient_explode_threshold: Option<&Bound<'_, PyAny>>,
        loss_spike_pct: Option<&Bound<'_, PyAny>>,
        saturation_threshold: Option<&Bound<'_, PyAny>>,
        weight_stagnation_threshold: Option<&Bound<'_, PyAny>>,
        weight_stagnation_window: Option<&Bound<'_, PyAny>>,
        escalation_cooldown: Option<i64>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut config = AnomalyConfig::default();
        if let Some(c) = escalation_cooldown {
            config.escalation_cooldown = index_arg(c, "escalation_cooldown")?;
        }
        let mut rules_extra: Option<Bound<'_, PyDict>> = None;
        if let Some(s) = settings {
            let d = PyDict::new(s.py());
            for (k, v) in s.iter() {
                let key: String = k.extract()?;
                match key.as_str() {
                    "worsen_factor" => config.worsen_factor = v.extract()?,
                    "max_recent" => config.max_recent = v.extract()?,
                    "batch_backfill" => config.batch_backfill = v.extract()?,
                    _ => d.set_item(k, v)?,
                }
            }
            rules_extra = Some(d);
        }
        let named = [
            ("zeros_pct_threshold", zeros_pct_threshold),
            ("gradient_spike_factor", gradient_spike_factor),
            ("gradient_rolling_window", gradient_rolling_window),
            ("gradient_vanish_threshold", gradient_vanish_threshold),
            ("gradient_explode_threshold", gradient_explode_threshold),
            ("loss_spike_pct", loss_spike_pct),
            ("saturation_threshold", saturation_threshold),
            ("weight_stagnation_threshold", weight_stagnation_threshold),
            ("weight_stagnation_window", weight_stagnation_window),
        ];
        let s = rule_settings(&named, rules_extra.as_ref(), ANOMALY_NAMES)?;
        config.rules = apply_rules(&config.rules, &s)?;
        config.validate().map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyAnomalyConfig { inner: config })
    }

    /// The cooldown, in batches.
    #[getter]
    fn escalation_cooldown(&self) -> u64 {
        self.inner.escalation_cooldown
    }

    /// Every setting: ``{"escalation_cooldown", "worsen_factor", "max_recent",
    /// "batch_backfill", "rules": {...}}``.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("escalation_cooldown", self.inner.escalation_cooldown)?;
        d.set_item("worsen_factor", self.inner.worsen_factor)?;
        d.set_item("max_recent", self.inner.max_recent)?;
        d.set_item("batch_backfill", self.inner.batch_backfill)?;
        d.set_item("rules", serde_to_py(py, &self.inner.rules)?)?;
        Ok(d)
    }
}

/// Wraps a ``TrainingLogger`` and records EXPERT detail only around anomalies: every hook is
/// judged by the health rules (one statistics pass per tensor, numpy arrays read in place with
/// the GIL released), and the base logger stays at BASIC until a finding starts, moves or
/// worsens. Use it as a drop-in replacement for the logger in the training loop.
#[pyclass(name = "AdaptiveLogger", module = "observatory")]
pub(crate) struct PyAdaptiveLogger {
    inner: AdaptiveLogger,
}

fn usize_index(i: u64) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

#[pymethods]
impl PyAdaptiveLogger {
    #[new]
    #[pyo3(signature = (base_logger, config = None))]
    fn new(
        base_logger: &Bound<'_, PyAny>,
        config: Option<PyRef<'_, PyAnomalyConfig>>,
    ) -> PyResult<Self> {
        let base = base_logger.cast::<PyTrainingLogger>().map_err(|_| {
            PyTypeError::new_err("base_logger must be an observatory.TrainingLogger")
        })?;
        let config = config.map(|c| c.inner.clone()).unwrap_or_default();
        let inner = AdaptiveLogger::new(base.get().inner.clone(), config)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyAdaptiveLogger { inner })
    }

    /// Whether EXPERT detail is being recorded now.
    #[getter]
    fn is_escalated(&self) -> bool {
        self.inner.is_escalated()
    }

    /// The most recent anomalies, as dicts, oldest first.
    #[getter]
    fn anomalies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.inner.get_anomaly_summary().recent)
    }

    /// Training begins (always recorded); starts from a clean state.
    #[pyo3(signature = (*, model_info = None, total_epochs = 0, total_samples = 0, batch_size = 0, **extra))]
    fn on_train_start(
        &mut self,
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

    /// Training ends (always recorded).
    #[pyo3(signature = (*, final_metrics = None, **extra))]
    fn on_train_end(
        &mut self,
        final_metrics: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let m = with_kwargs(final_metrics, extra)?;
        self.inner.on_train_end(m);
        Ok(())
    }

    /// An epoch begins (always recorded).
    #[pyo3(signature = (epoch, **extra))]
    fn on_epoch_start(&mut self, epoch: i64, extra: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let _ = kwargs_data(extra)?;
        self.inner.on_epoch_start(index_arg(epoch, "epoch")?);
        Ok(())
    }

    /// An epoch ends (always recorded); its ``loss`` and ``val_loss`` go to the epoch rules.
    #[pyo3(signature = (epoch, *, metrics = None, **extra))]
    fn on_epoch_end(
        &mut self,
        epoch: i64,
        metrics: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let m = with_kwargs(metrics, extra)?;
        self.inner.on_epoch_end(index_arg(epoch, "epoch")?, m);
        Ok(())
    }

    /// A batch begins (recorded only while escalated).
    #[pyo3(signature = (batch, **extra))]
    fn on_batch_start(&mut self, batch: i64, extra: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let _ = extra;
        self.inner.on_batch_start(index_arg(batch, "batch")?);
        Ok(())
    }

    /// A batch ends; its ``loss`` goes to the loss rules (recorded only while escalated).
    #[pyo3(signature = (batch, *, loss = None, metrics = None, **extra))]
    fn on_batch_end(
        &mut self,
        batch: i64,
        loss: Option<f64>,
        metrics: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let mut m = to_data(metrics)?;
        if let Some(l) = loss {
            m.insert("loss", l);
        }
        if let Some(d) = extra {
            for (k, v) in d.iter() {
                let k: String = k.extract()?;
                if k != "epoch" {
                    m.insert(k, crate::convert::to_value(&v)?);
                }
            }
        }
        self.inner.on_batch_end(index_arg(batch, "batch")?, m);
        Ok(())
    }

    /// A layer's output, always judged (``nan_inf_tensor``, ``dead_relu``,
    /// ``activation_saturation``); recorded only while escalated. Pass
    /// ``activation="relu"`` (``"tanh"``, ``"sigmoid"``, ``"linear"``) for the activation rules.
    #[pyo3(signature = (layer_index, layer_name, *, output_data = None, **extra))]
    fn on_layer_forward(
        &mut self,
        py: Python<'_>,
        layer_index: i64,
        layer_name: &str,
        output_data: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        check_name(layer_name, "layer_name")?;
        let index = usize_index(index_arg(layer_index, "layer_index")?);
        let activation = take_activation(extra)?;
        let Some(out) = output_data.filter(|o| !o.is_none()) else { return Ok(()) };
        let arr = Array::extract(out, "output_data")?;
        let view = arr.view("output_data")?;
        let stats = py.detach(|| obs_core::tensor_stats(view, activation));
        self.inner.on_layer_stats(index, layer_name, arr.shape(), &stats);
        Ok(())
    }

    /// A layer's gradient (``grad_weights``, else ``grad_output``): its L2 norm and NaN/Inf
    /// count go to the gradient rules.
    #[pyo3(signature = (layer_index, layer_name, *, grad_output = None, grad_weights = None, **extra))]
    fn on_layer_backward(
        &mut self,
        py: Python<'_>,
        layer_index: i64,
        layer_name: &str,
        grad_output: Option<&Bound<'_, PyAny>>,
        grad_weights: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let _ = extra;
        check_name(layer_name, "layer_name")?;
        let index = usize_index(index_arg(layer_index, "layer_index")?);
        let (g, what) =
            match (grad_weights.filter(|g| !g.is_none()), grad_output.filter(|g| !g.is_none())) {
                (Some(w), _) => (w, "grad_weights"),
                (None, Some(o)) => (o, "grad_output"),
                (None, None) => return Ok(()),
            };
        let arr = Array::extract(g, what)?;
        let view = arr.view(what)?;
        // The kernel pass runs inside the logger, with the GIL released (the logger stays
        // borrowed: another thread calling it meanwhile gets a RuntimeError, not a race).
        let inner = &mut self.inner;
        py.detach(|| inner.on_layer_backward(index, layer_name, view))
            .map_err(|e| crate::array::tensor_error(e, what))?;
        Ok(())
    }

    /// A gradient norm for a layer or parameter.
    #[pyo3(signature = (param_name, gradient, **extra))]
    fn on_gradient_computed(
        &mut self,
        param_name: &str,
        gradient: f64,
        extra: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let _ = extra;
        check_name(param_name, "param_name")?;
        self.inner.on_gradient_computed(param_name, gradient);
        Ok(())
    }

    /// A parameter after an optimiser step: numbers (the change ``|new - old|`` goes to the
    /// stagnation rules) or the weight arrays before and after.
    #[pyo3(signature = (param_name, old_value, new_value, **extra))]
    fn on_weight_updated(
        &mut self,
        py: Python<'_>,
        param_name: &str,
        old_value: &Bound<'_, PyAny>,
        new_value: &Bound<'_, PyAny>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        check_name(param_name, "param_name")?;
        let index = match extra.map(|d| d.get_item("layer_index")).transpose()?.flatten() {
            Some(i) => usize_index(index_arg(i.extract()?, "layer_index")?),
            None => 0,
        };
        match WeightUpdate::extract(py, old_value, new_value)? {
            WeightUpdate::Scalars { old, new } => {
                self.inner.on_update_norm(index, param_name, (new - old).abs())
            }
            WeightUpdate::Arrays { new, norm } => {
                let view = new.view("new_value")?;
                let inner = &mut self.inner;
                py.detach(|| inner.on_weight_updated(index, param_name, view, Some(norm)))
                    .map_err(|e| crate::array::tensor_error(e, "new_value"))?;
            }
        }
        Ok(())
    }

    /// Passes a health finding to the base logger.
    #[pyo3(signature = (check_name, severity, message, recommendations = None, **extra))]
    fn on_health_check(
        &mut self,
        check_name: &str,
        severity: &str,
        message: &str,
        recommendations: Option<Vec<String>>,
        extra: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let severity = severity_arg(severity)?;
        let mut data: Data = kwargs_data(extra)?;
        let layer = data.remove("layer_name").and_then(|v| v.as_str().map(str::to_owned));
        data.insert("rule_name", check_name);
        if let Some(r) = recommendations {
            data.insert("recommendations", r);
        }
        self.inner.on_health_check(severity, message, layer.as_deref(), data);
        Ok(())
    }

    /// What was found since training started: ``{"total_anomalies", "by_type", "by_rule",
    /// "by_severity", "suppressed", "escalations", "escalated_batches", "batches",
    /// "recent", ...}``.
    fn get_anomaly_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.get_anomaly_summary();
        let d = PyDict::new(py);
        d.set_item("total_anomalies", s.emitted)?;
        d.set_item("total_findings", s.total)?;
        d.set_item("suppressed", s.suppressed)?;
        let counts = |pairs: Vec<(&'static str, u64)>| -> PyResult<Bound<'py, PyDict>> {
            let m = PyDict::new(py);
            for (k, n) in pairs {
                m.set_item(k, n)?;
            }
            Ok(m)
        };
        d.set_item("by_type", counts(s.by_type.iter().map(|(t, n)| (t.as_str(), *n)).collect())?)?;
        d.set_item("by_rule", counts(s.by_rule.iter().map(|(r, n)| (r.as_str(), *n)).collect())?)?;
        d.set_item(
            "by_severity",
            counts(s.by_severity.iter().map(|(v, n)| (v.as_str(), *n)).collect())?,
        )?;
        d.set_item("escalations", s.escalations)?;
        d.set_item("escalated_batches", s.escalated_batches)?;
        d.set_item("sampled_batches", s.sampled_batches)?;
        d.set_item("batches", s.batches)?;
        d.set_item("is_escalated", s.escalated)?;
        d.set_item("recent", serde_to_py(py, &s.recent)?)?;
        Ok(d)
    }

    /// Forgets every finding and history.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// Flushes the base logger.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let base = self.inner.base().clone();
        py.detach(|| base.flush()).py_err()
    }

    /// Closes the base logger.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let base = self.inner.base().clone();
        py.detach(|| base.close()).py_err().map(|_| ())
    }
}
