//! `WarningConfig`, `AutoHealthWarnings` and `HealthWarning` over [`obs_health`].

use obs_core::{Activation, unix_now};
use obs_health::{ActivationStats, AutoHealthWarnings, BatchInput, HealthWarning, WarningConfig};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{data_to_py, float_pairs, serde_to_py, to_data, to_json};
use crate::logger::{activation_arg, index_arg, severity_arg};
use crate::stats::tensor_stats_arg;

/// The reference's `WarningConfig` argument names and the Rust field each sets.
pub(crate) const WARNING_NAMES: &[(&str, &str)] = &[
    ("dead_relu_zeros_pct", "dead_relu_zeros_pct"),
    ("gradient_vanish_thresh", "vanishing_gradient_threshold"),
    ("gradient_explode_thresh", "exploding_gradient_threshold"),
    ("gradient_spike_factor", "gradient_spike_factor"),
    ("gradient_rolling_window", "gradient_spike_window"),
    ("overfit_patience", "overfit_patience"),
    ("overfit_ratio", "overfit_ratio"),
    ("weight_stagnation_eps", "weight_stagnation_delta"),
    ("weight_stagnation_window", "weight_stagnation_window"),
    ("loss_stagnation_eps", "loss_stagnation_delta"),
    ("loss_stagnation_window", "loss_stagnation_patience"),
    ("loss_divergence_window", "loss_divergence_window"),
    ("saturation_pct_thresh", "saturation_pct"),
    ("lr_too_high_loss_factor", "loss_divergence_factor"),
];

/// Applies `(field, value)` settings to `config` through its serde form. Unknown fields and
/// values of the wrong type are `ValueError`s; the result is validated.
pub(crate) fn apply_rules(
    config: &WarningConfig,
    settings: &[(String, serde_json::Value)],
) -> PyResult<WarningConfig> {
    let mut json =
        serde_json::to_value(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let map = json.as_object_mut().ok_or_else(|| PyValueError::new_err("config is not a map"))?;
    for (k, v) in settings {
        if !map.contains_key(k) {
            let mut known: Vec<&str> = WARNING_NAMES.iter().map(|(r, _)| *r).collect();
            known.extend(map.keys().map(String::as_str));
            return Err(PyTypeError::new_err(format!(
                "unknown setting {k:?}; known: {}",
                known.join(", ")
            )));
        }
        map.insert(k.clone(), v.clone());
    }
    let out: WarningConfig = serde_json::from_value(json)
        .map_err(|e| PyValueError::new_err(format!("invalid setting: {e}")))?;
    out.validate().map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(out)
}

/// Collects `name=value` pairs, translating the reference's names.
pub(crate) fn rule_settings(
    named: &[(&str, Option<&Bound<'_, PyAny>>)],
    extra: Option<&Bound<'_, PyDict>>,
    names: &[(&str, &str)],
) -> PyResult<Vec<(String, serde_json::Value)>> {
    let mut out = Vec::new();
    for (name, value) in named {
        if let Some(v) = value.filter(|v| !v.is_none()) {
            let field = names.iter().find(|(r, _)| r == name).map_or(*name, |(_, f)| f);
            out.push((field.to_owned(), to_json(v)?));
        }
    }
    if let Some(d) = extra {
        for (k, v) in d.iter() {
            let k: String = k.extract()?;
            let field =
                names.iter().find(|(r, _)| *r == k).map_or(k.as_str(), |(_, f)| f).to_owned();
            out.push((field, to_json(&v)?));
        }
    }
    Ok(out)
}

/// Thresholds of the health rules. The reference's argument names are accepted (and mapped to
/// Observatory's rules); any other field of Observatory's rule configuration (for example
/// ``dead_relu_patience=1`` or ``dedup_batches=0``) can be given by its own name. An argument
/// left out keeps Observatory's calibrated default (``docs/health.md``).
#[pyclass(name = "WarningConfig", module = "observatory", frozen)]
#[derive(Clone)]
pub(crate) struct PyWarningConfig {
    pub(crate) inner: WarningConfig,
}

#[pymethods]
impl PyWarningConfig {
    #[new]
    #[pyo3(signature = (dead_relu_zeros_pct = None, gradient_vanish_thresh = None, gradient_explode_thresh = None, gradient_spike_factor = None, gradient_rolling_window = None, overfit_patience = None, overfit_ratio = None, weight_stagnation_eps = None, weight_stagnation_window = None, loss_stagnation_eps = None, loss_stagnation_window = None, loss_divergence_window = None, saturation_pct_thresh = None, lr_too_high_loss_factor = None, **settings))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dead_relu_zeros_pct: Option<&Bound<'_, PyAny>>,
        gradient_vanish_thresh: Option<&Bound<'_, PyAny>>,
        gradient_explode_thresh: Option<&Bound<'_, PyAny>>,
        gradient_spike_factor: Option<&Bound<'_, PyAny>>,
        gradient_rolling_window: Option<&Bound<'_, PyAny>>,
        overfit_patience: Option<&Bound<'_, PyAny>>,
        overfit_ratio: Option<&Bound<'_, PyAny>>,
        weight_stagnation_eps: Option<&Bound<'_, PyAny>>,
        weight_stagnation_window: Option<&Bound<'_, PyAny>>,
        loss_stagnation_eps: Option<&Bound<'_, PyAny>>,
        loss_stagnation_window: Option<&Bound<'_, PyAny>>,
        loss_divergence_window: Option<&Bound<'_, PyAny>>,
        saturation_pct_thresh: Option<&Bound<'_, PyAny>>,
        lr_too_high_loss_factor: Option<&Bound<'_, PyAny>>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let named = [
            ("dead_relu_zeros_pct", dead_relu_zeros_pct),
            ("gradient_vanish_thresh", gradient_vanish_thresh),
            ("gradient_explode_thresh", gradient_explode_thresh),
            ("gradient_spike_factor", gradient_spike_factor),
            ("gradient_rolling_window", gradient_rolling_window),
            ("overfit_patience", overfit_patience),
            ("overfit_ratio", overfit_ratio),
            ("weight_stagnation_eps", weight_stagnation_eps),
            ("weight_stagnation_window", weight_stagnation_window),
            ("loss_stagnation_eps", loss_stagnation_eps),
            ("loss_stagnation_window", loss_stagnation_window),
            ("loss_divergence_window", loss_divergence_window),
            ("saturation_pct_thresh", saturation_pct_thresh),
            ("lr_too_high_loss_factor", lr_too_high_loss_factor),
        ];
        let s = rule_settings(&named, settings, WARNING_NAMES)?;
        Ok(PyWarningConfig { inner: apply_rules(&WarningConfig::default(), &s)? })
    }

    /// Every setting, by Observatory's field names.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.inner)
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let field = WARNING_NAMES.iter().find(|(r, _)| *r == name).map_or(name, |(_, f)| f);
        let d = serde_to_py(py, &self.inner)?;
        d.get_item(field).map_err(|_| {
            pyo3::exceptions::PyAttributeError::new_err(format!(
                "WarningConfig has no setting {name:?}"
            ))
        })
    }

    fn __repr__(&self) -> String {
        format!("WarningConfig({})", serde_json::to_string(&self.inner).unwrap_or_default())
    }
}

/// One finding of a health rule: ``rule_name``, ``severity``, ``message``, ``diagnosis``,
/// ``recommendations``, ``layer_name``, ``epoch``, ``batch``, ``timestamp``, ``data``.
#[pyclass(name = "HealthWarning", module = "observatory", frozen)]
#[derive(Clone)]
pub(crate) struct PyHealthWarning {
    pub(crate) inner: HealthWarning,
    timestamp: f64,
}

impl PyHealthWarning {
    pub(crate) fn from_rust(inner: HealthWarning) -> Self {
        PyHealthWarning { inner, timestamp: unix_now() }
    }
}

#[pymethods]
impl PyHealthWarning {
    #[new]
    #[pyo3(signature = (rule_name, severity, message, diagnosis, recommendations = None, layer_name = None, epoch = None, batch = None, timestamp = None, data = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        rule_name: String,
        severity: &str,
        message: String,
        diagnosis: String,
        recommendations: Option<Vec<String>>,
        layer_name: Option<String>,
        epoch: Option<u64>,
        batch: Option<u64>,
        timestamp: Option<f64>,
        data: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut inner = match rule_name.parse::<obs_health::Rule>() {
            Ok(rule) => HealthWarning::new(rule, message),
            Err(_) => {
                let mut w = HealthWarning::new(obs_health::Rule::NanInfLoss, message);
                w.rule_name = rule_name;
                w.recommendations.clear();
                w
            }
        };
        inner.severity = severity_arg(severity)?;
        inner.diagnosis = diagnosis;
        if let Some(r) = recommendations {
            inner.recommendations = r;
        }
        inner.layer_name = layer_name;
        inner.epoch = epoch;
        inner.batch = batch;
        inner.data = to_data(data)?;
        Ok(PyHealthWarning { inner, timestamp: timestamp.unwrap_or_else(unix_now) })
    }

    /// The rule's name (``"dead_relu"``, ...).
    #[getter]
    fn rule_name(&self) -> &str {
        &self.inner.rule_name
    }
    /// ``"info"``, ``"warning"``, ``"danger"`` or ``"critical"``.
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }
    /// A short message naming the layer and the number that tripped the rule.
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }
    /// What the finding means.
    #[getter]
    fn diagnosis(&self) -> &str {
        &self.inner.diagnosis
    }
    /// What to try, most likely fix first.
    #[getter]
    fn recommendations(&self) -> Vec<String> {
        self.inner.recommendations.clone()
    }
    /// The layer concerned, for per-layer rules.
    #[getter]
    fn layer_name(&self) -> Option<&str> {
        self.inner.layer_name.as_deref()
    }
    /// The epoch of the check that fired.
    #[getter]
    fn epoch(&self) -> Option<u64> {
        self.inner.epoch
    }
    /// The batch of the check that fired (``None`` for epoch checks).
    #[getter]
    fn batch(&self) -> Option<u64> {
        self.inner.batch
    }
    /// When the warning was made (Unix seconds).
    #[getter]
    fn timestamp(&self) -> f64 {
        self.timestamp
    }
    /// The numbers the rule judged.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        data_to_py(py, &self.inner.data)
    }
    /// Suppressed repeats of the same rule and layer since it last fired.
    #[getter]
    fn repeats(&self) -> u64 {
        self.inner.repeats()
    }

    /// Every field as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = serde_to_py(py, &self.inner)?;
        d.set_item("timestamp", self.timestamp)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let w = &self.inner;
        format!(
            "HealthWarning(rule_name={:?}, severity={:?}, message={:?}, layer_name={:?}, epoch={:?}, batch={:?})",
            w.rule_name,
            w.severity.as_str(),
            w.message,
            w.layer_name,
            w.epoch,
            w.batch
        )
    }

    fn __str__(&self) -> String {
        format!("[{}] {}", self.inner.severity.as_str(), self.inner.message)
    }
}

fn list_of(py: Python<'_>, warnings: Vec<HealthWarning>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for w in warnings {
        list.append(Bound::new(py, PyHealthWarning::from_rust(w))?)?;
    }
    Ok(list)
}

/// Per-layer `activation_stats` entries: a dict of numbers (``zeros_pct``, ``dead_units_pct``,
/// ``saturation_pct``, ``non_finite``, ``activation_type``), a dict with the layer's ``output``
/// array and its ``activation_type``, or the output array alone.
pub(crate) fn activation_entries(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<(String, ActivationStats)>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else { return Ok(Vec::new()) };
    let d = o.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("`activation_stats` must be a dict of layer name -> stats")
    })?;
    let mut out_stats = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let name: String = k
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("`activation_stats` keys must be strings"))?
            .to_cow()?
            .into_owned();
        let what = format!("activation_stats[{name:?}]");
        let stats = match v.cast::<PyDict>() {
            Ok(s) => {
                let act = match s.get_item("activation_type")?.or(s.get_item("activation")?) {
                    Some(a) => activation_arg(Some(&a))?,
                    None => Activation::None,
                };
                if let Some(out) = s.get_item("output")? {
                    // The layer's output itself, reduced in place for `act`.
                    let stats = tensor_stats_arg(py, &out, &what, act)?;
                    out_stats.push((name, ActivationStats::from(stats)));
                    continue;
                }
                let num = |key: &str| -> PyResult<Option<f64>> {
                    match s.get_item(key)? {
                        Some(x) if !x.is_none() => x.extract::<f64>().map(Some).map_err(|_| {
                            PyTypeError::new_err(format!("`{what}[{key:?}]` must be a number"))
                        }),
                        _ => Ok(None),
                    }
                };
                let mut a = ActivationStats::new(act);
                if let Some(p) = num("zeros_pct")? {
                    a = a.zeros_pct(p);
                }
                if let Some(p) = num("dead_units_pct")?.or(num("dead_pct")?) {
                    a = a.dead_units_pct(p);
                }
                if let Some(p) = num("saturation_pct")?.or(num("saturated_pct")?) {
                    a = a.saturation_pct(p);
                }
                if let Some(n) = num("non_finite")? {
                    a = a.non_finite(n.max(0.0) as u64);
                }
                a
            }
            Err(_) => ActivationStats::from(tensor_stats_arg(py, &v, &what, Activation::None)?),
        };
        out_stats.push((name, stats));
    }
    Ok(out_stats)
}

fn weight_entries(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<(String, obs_core::TensorStats)>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else { return Ok(Vec::new()) };
    let d = o.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("`weight_stats` must be a dict of layer name -> stats")
    })?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let name: String =
            k.extract().map_err(|_| PyTypeError::new_err("`weight_stats` keys must be strings"))?;
        let what = format!("weight_stats[{name:?}]");
        out.push((name, tensor_stats_arg(py, &v, &what, Activation::None)?));
    }
    Ok(out)
}

/// Threshold-based health rules run on every batch and epoch, returning ``HealthWarning``
/// objects with a diagnosis and recommendations. A repeat of the same rule and layer is
/// suppressed (and counted) for ``dedup_batches`` checks.
#[pyclass(name = "AutoHealthWarnings", module = "observatory")]
pub(crate) struct PyAutoHealthWarnings {
    inner: AutoHealthWarnings,
}

#[pymethods]
impl PyAutoHealthWarnings {
    #[new]
    #[pyo3(signature = (config = None))]
    fn new(config: Option<PyRef<'_, PyWarningConfig>>) -> PyResult<Self> {
        let config = config.map(|c| c.inner.clone()).unwrap_or_default();
        let inner =
            AutoHealthWarnings::new(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyAutoHealthWarnings { inner })
    }

    /// Runs the batch rules; returns the warnings that fired (a list, often empty).
    /// ``gradient_norms`` and ``weight_deltas`` map layer names to floats;
    /// ``activation_stats`` maps them to dicts of numbers (``zeros_pct``, ``dead_units_pct``,
    /// ``saturation_pct``, ``activation_type``), to ``{"output": array, "activation_type":
    /// "relu"}`` (the array is reduced in place) or to the output arrays alone;
    /// ``weight_stats`` to dicts (``mean``, ``std``, ``min``, ``max``) or weight arrays.
    #[pyo3(signature = (*, epoch = None, batch = None, loss = None, gradient_norms = None, weight_stats = None, activation_stats = None, weight_deltas = None))]
    #[allow(clippy::too_many_arguments)]
    fn check_batch<'py>(
        &mut self,
        py: Python<'py>,
        epoch: Option<i64>,
        batch: Option<i64>,
        loss: Option<f64>,
        gradient_norms: Option<&Bound<'py, PyAny>>,
        weight_stats: Option<&Bound<'py, PyAny>>,
        activation_stats: Option<&Bound<'py, PyAny>>,
        weight_deltas: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let epoch = epoch.map(|e| index_arg(e, "epoch")).transpose()?.unwrap_or(0);
        let batch = batch.map(|b| index_arg(b, "batch")).transpose()?.unwrap_or(0);
        let grads = float_pairs(gradient_norms, "gradient_norms")?;
        let deltas = float_pairs(weight_deltas, "weight_deltas")?;
        let acts = activation_entries(py, activation_stats)?;
        let weights = weight_entries(py, weight_stats)?;
        let grads: Vec<(&str, f64)> = grads.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let deltas: Vec<(&str, f64)> = deltas.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let acts: Vec<(&str, ActivationStats)> =
            acts.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let weights: Vec<(&str, obs_core::TensorStats)> =
            weights.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let mut input = BatchInput::new(epoch, batch)
            .gradient_norms(&grads)
            .activations(&acts)
            .update_norms(&deltas)
            .weight_tensors(&weights);
        if let Some(l) = loss {
            input = input.loss(l);
        }
        let found = self.inner.check_batch(&input);
        list_of(py, found)
    }

    /// Runs the epoch rules (``nan_inf_loss``, ``overfitting``, ``loss_stagnation``) on the
    /// epoch's losses. Without ``train_loss`` there is nothing to judge. Accuracies and
    /// per-layer numbers are accepted for the reference's signature; per-layer rules run in
    /// ``check_batch``.
    #[pyo3(signature = (*, epoch, train_loss = None, val_loss = None, train_acc = None, val_acc = None, gradient_norms = None, weight_stats = None, activation_stats = None))]
    #[allow(clippy::too_many_arguments)]
    fn check_epoch<'py>(
        &mut self,
        py: Python<'py>,
        epoch: i64,
        train_loss: Option<f64>,
        val_loss: Option<f64>,
        train_acc: Option<f64>,
        val_acc: Option<f64>,
        gradient_norms: Option<&Bound<'py, PyAny>>,
        weight_stats: Option<&Bound<'py, PyAny>>,
        activation_stats: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let _ = (train_acc, val_acc, float_pairs(gradient_norms, "gradient_norms")?);
        let _ = (weight_entries(py, weight_stats)?, activation_entries(py, activation_stats)?);
        let epoch = index_arg(epoch, "epoch")?;
        let Some(train) = train_loss else { return Ok(PyList::empty(py)) };
        let found = self.inner.check_epoch(epoch, train, val_loss);
        list_of(py, found)
    }

    /// Counts of warnings and suppressed repeats, and the most recent warnings:
    /// ``{"total_warnings", "by_rule", "by_severity", "suppressed", ...}``.
    fn get_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.inner.get_summary())
    }

    /// The most recent warnings (at most ``max_recent``), oldest first.
    #[getter]
    fn warnings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of(py, self.inner.get_summary().recent)
    }

    /// Forgets every history and count.
    fn reset(&mut self) {
        self.inner.reset();
    }
}
