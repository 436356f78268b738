//! [`Session`]: the whole Observatory pipeline, fed from a candle training loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, DeviceLocation, Tensor};
use candle_nn::{Optimizer, VarMap};
use obs_adaptive::{AdaptiveLogger, Anomaly, AnomalyConfig, AnomalySummary};
use obs_core::{
    Activation, CloseReport, Data, Event, EventType, LogLevel, TensorStats, TrainingLogger, data,
};
use obs_fingerprint::{Dataset, TrainingFingerprint};
use obs_health::{AutoHealthWarnings, HealthSummary, HealthWarning, WarningConfig};
use obs_run::RunFiles;
use obs_storage::{StorageHandle, StorageSummary};
use obs_summary::{EpochSummarizer, EpochSummary};

use crate::device::device_stats;
use crate::error::{Error, Result};
use crate::host::{check, with_host_view};
use crate::tap::{LayerTap, Tapped};
use crate::vars::{Snapshot, TrackedVars};
use obs_core::HostCopy;

/// The version of `candle-core` this crate was built with (from the build's `Cargo.lock`).
pub const CANDLE_VERSION: &str = env!("OBS_CANDLE_CANDLE_VERSION");

/// `"cpu"`, `"cuda:0"`, `"metal:0"`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".to_owned(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Where a session's files went.
pub use obs_run::RunPaths;

/// A handle to the model's `VarMap` (which has no `Debug`).
#[derive(Clone)]
struct SharedVarMap(VarMap);

impl std::fmt::Debug for SharedVarMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VarMap")
    }
}

/// Configures a [`Session`]. Made by [`Session::builder`].
#[derive(Debug)]
pub struct SessionBuilder {
    out_dir: Option<PathBuf>,
    run_name: String,
    dashboard: bool,
    tensorboard: bool,
    wandb_project: Option<String>,
    level: LogLevel,
    anomaly: AnomalyConfig,
    host_copy: HostCopy,
    device_stats: bool,
    update_norms: bool,
    vars: TrackedVars,
    varmap: Option<SharedVarMap>,
    tap: LayerTap,
    model_info: Data,
    hyperparameters: Data,
    seeds: Vec<(String, u64)>,
    dataset: Option<Tensor>,
    fingerprint: bool,
    git: bool,
}

impl SessionBuilder {
    fn new() -> Self {
        SessionBuilder {
            out_dir: None,
            run_name: "candle".to_owned(),
            dashboard: true,
            tensorboard: true,
            wandb_project: Some("observatory".to_owned()),
            level: LogLevel::Expert,
            anomaly: AnomalyConfig::default(),
            host_copy: HostCopy::default(),
            device_stats: true,
            update_norms: true,
            vars: TrackedVars::default(),
            varmap: None,
            tap: LayerTap::new(),
            model_info: Data::new(),
            hyperparameters: Data::new(),
            seeds: Vec::new(),
            dataset: None,
            fingerprint: true,
            git: true,
        }
    }

    /// Writes the run's files into a fresh `run-*` directory inside `dir` (created if
    /// needed): the tiered logs and the fingerprint, and the dashboard and bridge files unless
    /// turned off. Without an output directory nothing is written (the rules, the adaptive
    /// logger and the summaries still run, and their findings are returned).
    #[must_use]
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The run's name, used by the dashboard title and the bridges (default `"candle"`).
    #[must_use]
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = name.into();
        self
    }

    /// Whether to write `dashboard.html` (default `true`).
    #[must_use]
    pub fn dashboard(mut self, on: bool) -> Self {
        self.dashboard = on;
        self
    }

    /// Whether to write TensorBoard event files under `tensorboard/` (default `true`).
    #[must_use]
    pub fn tensorboard(mut self, on: bool) -> Self {
        self.tensorboard = on;
        self
    }

    /// The W&B project of the offline run written in the run directory (default
    /// `"observatory"`); `None` writes no W&B run.
    #[must_use]
    pub fn wandb(mut self, project: Option<&str>) -> Self {
        self.wandb_project = project.map(str::to_owned);
        self
    }

    /// The detail level while escalated (default EXPERT; see [`AdaptiveLogger`]).
    #[must_use]
    pub fn level(mut self, level: LogLevel) -> Self {
        self.level = level;
        self
    }

    /// The adaptive logger's thresholds (default: `AnomalyConfig::default()`).
    #[must_use]
    pub fn anomaly_config(mut self, config: AnomalyConfig) -> Self {
        self.anomaly = config;
        self
    }

    /// The health rules' thresholds (default: `WarningConfig::default()`): the rules of the
    /// adaptive logger's engine, `AnomalyConfig::rules`. Call it after
    /// [`SessionBuilder::anomaly_config`], which sets them too.
    #[must_use]
    pub fn warning_config(mut self, config: WarningConfig) -> Self {
        self.anomaly.rules = config;
        self
    }

    /// When layer outputs and weights are reduced by the kernel on the host (default
    /// [`HostCopy::default`]).
    #[must_use]
    pub fn host_copy(mut self, policy: HostCopy) -> Self {
        self.host_copy = policy;
        self
    }

    /// Whether observed layer outputs get [`device_stats`] on the steps the host-copy policy
    /// skips (default `true`). Off, those steps judge gradients, updates and the loss only.
    #[must_use]
    pub fn device_stats(mut self, on: bool) -> Self {
        self.device_stats = on;
        self
    }

    /// Whether [`Session::step`] measures each variable's update (default `true`). It costs a
    /// device copy of the tracked variables per step; turn it off for models too large for
    /// that.
    #[must_use]
    pub fn update_norms(mut self, on: bool) -> Self {
        self.update_norms = on;
        self
    }

    /// Tracks every variable of `varmap` (sorted by name). The variables are read at
    /// [`Session::train_start`] (or the first step), so the model may be built after the
    /// session, with its [`Session::tap`].
    #[must_use]
    pub fn varmap(mut self, varmap: &VarMap) -> Self {
        self.varmap = Some(SharedVarMap(varmap.clone()));
        self
    }

    /// Tracks exactly these variables (instead of a [`VarMap`]'s).
    #[must_use]
    pub fn vars(mut self, vars: TrackedVars) -> Self {
        self.vars = vars;
        self.varmap = None;
        self
    }

    /// Uses `tap` (a model built before the session already holds it) instead of a new one.
    #[must_use]
    pub fn tap(mut self, tap: &LayerTap) -> Self {
        self.tap = tap.clone();
        self
    }

    /// The model description for `train_start` and the fingerprint's model hash.
    #[must_use]
    pub fn model_info(mut self, info: Data) -> Self {
        self.model_info = info;
        self
    }

    /// The hyperparameters, recorded in the fingerprint and `train_start` (the session adds
    /// `device`).
    #[must_use]
    pub fn hyperparameters(mut self, hyperparameters: Data) -> Self {
        self.hyperparameters = hyperparameters;
        self
    }

    /// Records a random seed in the fingerprint.
    #[must_use]
    pub fn seed(mut self, name: impl Into<String>, value: u64) -> Self {
        self.seeds.push((name.into(), value));
        self
    }

    /// The training inputs, hashed into the fingerprint (borrowed on the CPU device, copied
    /// from a GPU once; `f16`/`bf16` data is hashed as its `f32` values).
    #[must_use]
    pub fn dataset(mut self, x: &Tensor) -> Self {
        self.dataset = Some(x.clone());
        self
    }

    /// Whether to capture a fingerprint (default `true`).
    #[must_use]
    pub fn fingerprint(mut self, on: bool) -> Self {
        self.fingerprint = on;
        self
    }

    /// Whether the fingerprint records the git state of the current directory (default
    /// `true`).
    #[must_use]
    pub fn git(mut self, on: bool) -> Self {
        self.git = on;
        self
    }

    fn capture_fingerprint(&self, hyperparameters: &Data) -> Result<TrainingFingerprint> {
        let fp = obs_run::fingerprint(
            &self.model_info,
            hyperparameters,
            &[("candle", CANDLE_VERSION), ("obs-candle", env!("CARGO_PKG_VERSION"))],
            &self.seeds,
            self.git,
        );
        let captured = match &self.dataset {
            Some(x) => {
                with_host_view("dataset", x, |view| fp.dataset(Dataset::tensor(view)).capture())?
            }
            None => fp.capture(),
        };
        captured.map_err(|e| Error::setup("capturing the training fingerprint", e))
    }

    fn open_backends(
        &self,
        logger: &TrainingLogger,
        out: &Path,
    ) -> Result<(RunPaths, StorageHandle)> {
        RunFiles::new(&self.run_name)
            .framework("candle")
            .dashboard(self.dashboard)
            .tensorboard(self.tensorboard)
            .wandb(self.wandb_project.as_deref())
            .config(self.hyperparameters.clone())
            .attach(logger, out)
            .map_err(|e| Error::Setup { context: e.context, source: e.source })
    }

    /// Starts the logger and its backends, captures the fingerprint and builds the rules.
    /// `device` is the device the model trains on (recorded in the fingerprint).
    ///
    /// # Errors
    /// [`Error::Setup`] for a configuration that does not validate, an output directory that
    /// cannot be written, or a fingerprint that cannot be captured; [`Error::Candle`] when the
    /// dataset cannot be read.
    pub fn build(self, device: &Device) -> Result<Session> {
        self.anomaly.validate().map_err(|e| Error::setup("configuring the adaptive logger", e))?;
        let mut hyperparameters = self.hyperparameters.clone();
        hyperparameters.insert("device", device_name(device));
        let fingerprint =
            if self.fingerprint { Some(self.capture_fingerprint(&hyperparameters)?) } else { None };
        let logger =
            TrainingLogger::new(self.level).map_err(|e| Error::setup("starting the logger", e))?;
        let (paths, storage) = match &self.out_dir {
            Some(out) => {
                let (p, s) = self.open_backends(&logger, out)?;
                (Some(p), Some(s))
            }
            None => (None, None),
        };
        let adaptive = AdaptiveLogger::new(logger.clone(), self.anomaly.clone())
            .map_err(|e| Error::setup("configuring the adaptive logger", e))?;
        Ok(Session {
            adaptive,
            summarizer: EpochSummarizer::new(),
            base: logger,
            tap: self.tap,
            vars: self.vars,
            varmap: self.varmap,
            host_copy: self.host_copy,
            device_stats: self.device_stats,
            update_norms: self.update_norms,
            device: device.clone(),
            fingerprint,
            model_info: self.model_info,
            hyperparameters,
            paths,
            storage,
            epoch: 0,
            batch: None,
            step: 0,
            scratch: Scratch::default(),
            tally: Tally::default(),
            snapshot: Snapshot::default(),
        })
    }
}

/// What one [`Session::step`] measured and found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StepReport {
    /// The epoch.
    pub epoch: u64,
    /// The batch within the epoch.
    pub batch: u64,
    /// The batch loss.
    pub loss: f64,
    /// Each tracked variable's gradient norm (variables without a gradient are left out).
    pub grad_norms: Vec<(Arc<str>, f64)>,
    /// Each tracked variable's update norm (empty when update norms are off).
    pub update_norms: Vec<(Arc<str>, f64)>,
    /// The statistics of each observed layer output, with where they were computed.
    pub activations: Vec<(Arc<str>, TensorStats, StatsSource)>,
    /// Health warnings of this batch (the warnings of `anomalies`).
    pub warnings: Vec<HealthWarning>,
    /// Anomalies the adaptive logger emitted during this batch (de-duplicated repeats are
    /// counted in its summary, not listed here).
    pub anomalies: Vec<Anomaly>,
}

/// Where a layer's statistics were computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsSource {
    /// By the kernel, on a host view (borrowed or copied).
    Host,
    /// By candle reductions on the tensor's device ([`device_stats`]).
    Device,
}

/// What [`Session::epoch_end`] found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EpochReport {
    /// The epoch's summary (means, spreads, extremes of every metric and gradient norm).
    pub summary: EpochSummary,
    /// Epoch-level health warnings (overfitting, loss stagnation, NaN losses): the warnings
    /// of `anomalies`.
    pub warnings: Vec<HealthWarning>,
    /// Anomalies of the epoch-end metrics.
    pub anomalies: Vec<Anomaly>,
}

/// What the whole run found, from [`Session::finish`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RunReport {
    /// The logger's close report (backend failures, dropped events).
    pub close: CloseReport,
    /// The adaptive logger's anomalies.
    pub anomalies: AnomalySummary,
    /// The health rules' warnings.
    pub health: HealthSummary,
    /// What storage wrote, if there was an output directory.
    pub storage: Option<StorageSummary>,
    /// Where the files are, if there was an output directory.
    pub paths: Option<RunPaths>,
    /// Steps recorded.
    pub steps: u64,
    /// Steps whose layer outputs and weights went through the kernel on the host.
    pub host_steps: u64,
}

/// Per-batch numbers collected before the step's rules run.
#[derive(Debug, Default)]
struct Scratch {
    activations: Vec<(Arc<str>, TensorStats, StatsSource)>,
    anomalies: Vec<Anomaly>,
    host_step: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    host_steps: u64,
}

/// The Observatory pipeline of one candle training run.
///
/// A session owns a [`TrainingLogger`] with its backends (tiered storage, dashboard,
/// TensorBoard and W&B bridges), the [`AdaptiveLogger`] in front of it, the
/// health rules (the adaptive logger's [`AutoHealthWarnings`] engine: each finding is reported
/// once, to every backend), an
/// [`EpochSummarizer`] and the run's [`TrainingFingerprint`] (with the candle version and the
/// device). A loop calls it at five points:
///
/// ```text
/// session.train_start(epochs);
/// for epoch { session.epoch_start(epoch);
///     for batch { session.batch_start(batch);
///         let loss = ...forward through Observed layers...;
///         let report = session.step(&mut optimizer, &loss)?;   // backward + optimiser step
///     }
///     session.epoch_end(epoch, train_loss, Some(val_loss), &[])?;
/// }
/// let report = session.finish(&[])?;
/// ```
///
/// [`Session::step`] runs `loss.backward()` and `optimizer.step`, and around them measures, on
/// the tensors' own device, each tracked variable's gradient norm and the norm of its update
/// (one reduction per tensor, the scalars brought back in one copy), reduces the observed
/// layer outputs as the [`HostCopy`] policy says, and feeds all of it to the adaptive logger,
/// the health rules and the summarizer. A loop that runs the optimiser itself calls
/// [`Session::record_step`] instead.
///
/// A session runs on the training thread; it is `Send`, so it can move there.
#[derive(Debug)]
pub struct Session {
    adaptive: AdaptiveLogger,
    summarizer: EpochSummarizer,
    base: TrainingLogger,
    tap: LayerTap,
    vars: TrackedVars,
    varmap: Option<SharedVarMap>,
    host_copy: HostCopy,
    device_stats: bool,
    update_norms: bool,
    device: Device,
    fingerprint: Option<TrainingFingerprint>,
    model_info: Data,
    hyperparameters: Data,
    paths: Option<RunPaths>,
    storage: Option<StorageHandle>,
    epoch: u64,
    batch: Option<u64>,
    step: u64,
    scratch: Scratch,
    tally: Tally,
    snapshot: Snapshot,
}

fn metrics_data(loss: f64, metrics: &[(&str, f64)]) -> Data {
    let mut d = Data::with_capacity(metrics.len() + 1);
    d.insert("loss", loss);
    for (name, value) in metrics {
        d.insert((*name).to_owned(), *value);
    }
    d
}

/// The value of a one-element loss tensor, read from its device.
fn scalar(loss: &Tensor) -> Result<f64> {
    if loss.elem_count() != 1 {
        return Err(Error::Order("the loss must be a tensor with exactly one element"));
    }
    let flat = loss.flatten_all()?;
    Ok(match loss.dtype() {
        DType::F64 => flat.to_vec1::<f64>()?[0],
        _ => f64::from(flat.to_dtype(DType::F32)?.to_vec1::<f32>()?[0]),
    })
}

impl Session {
    /// A builder with the defaults: no output directory, every backend on once there is one,
    /// default rules, [`HostCopy::default`].
    pub fn builder() -> SessionBuilder {
        SessionBuilder::new()
    }

    /// The tap [`crate::Observed`] layers leave their outputs on.
    pub fn tap(&self) -> &LayerTap {
        &self.tap
    }

    /// The tracked variables.
    pub fn vars(&self) -> &TrackedVars {
        &self.vars
    }

    /// The adaptive logger (its anomaly summary, whether it is escalated).
    pub fn adaptive(&self) -> &AdaptiveLogger {
        &self.adaptive
    }

    /// The health rules: the adaptive logger's engine (its summary counts every warning).
    pub fn health(&self) -> &AutoHealthWarnings {
        self.adaptive.health()
    }

    /// The epoch summaries so far.
    pub fn summarizer(&self) -> &EpochSummarizer {
        &self.summarizer
    }

    /// The base logger (to add a backend or a callback).
    pub fn logger(&self) -> &TrainingLogger {
        &self.base
    }

    /// The fingerprint, if one was captured.
    pub fn fingerprint(&self) -> Option<&TrainingFingerprint> {
        self.fingerprint.as_ref()
    }

    /// Where the files go, if there is an output directory.
    pub fn paths(&self) -> Option<&RunPaths> {
        self.paths.as_ref()
    }

    /// The device given to [`SessionBuilder::build`].
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    fn collect_anomalies(&mut self) -> Vec<Anomaly> {
        self.adaptive.latest_anomalies().iter().filter(|a| a.emitted).cloned().collect()
    }

    fn note_anomalies(&mut self) {
        let found = self.collect_anomalies();
        self.scratch.anomalies.extend(found);
    }

    /// Training begins: records `train_start` with the model description, the
    /// hyperparameters and the fingerprint (storage writes it to `fingerprint.json`).
    pub fn train_start(&mut self, epochs: u64) {
        let mut extra = data! { "hyperparameters" => self.hyperparameters.clone() };
        if let Some(fp) = &self.fingerprint {
            extra.insert("fingerprint", fp.to_data());
        }
        self.adaptive.on_train_start_with(epochs, self.model_info.clone(), extra);
        self.step = 0;
        self.resolve_vars();
    }

    /// Reads the tracked variables from the `VarMap`, if the session tracks one.
    fn resolve_vars(&mut self) {
        if let Some(SharedVarMap(varmap)) = &self.varmap {
            self.vars = TrackedVars::from_varmap(varmap);
        }
    }

    /// An epoch begins.
    pub fn epoch_start(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.adaptive.on_epoch_start(epoch);
    }

    /// A training batch begins: arms the tap, so the forward pass that follows is observed.
    pub fn batch_start(&mut self, batch: u64) {
        self.batch = Some(batch);
        self.scratch.activations.clear();
        self.scratch.anomalies.clear();
        self.scratch.host_step = false;
        self.adaptive.on_batch_start(batch);
        self.note_anomalies();
        self.tap.arm();
    }

    /// Whether this step reduces a tensor on `device` through the host kernel.
    fn host_now(&self, device: &Device) -> bool {
        self.host_copy.copy_now(self.step, self.adaptive.is_escalated(), device.is_cpu())
    }

    /// Observes a layer output of the current batch: its statistics are computed now (by the
    /// kernel on a host view, or on the device, as the [`HostCopy`] policy says), judged by
    /// the adaptive logger when computed on the host, and kept for the step's health rules
    /// and summary. Returns the statistics, or `None` when the policy skipped this tensor.
    ///
    /// [`crate::Observed`] layers call the same code through the tap at the step.
    ///
    /// # Errors
    /// [`Error::Order`] outside a batch; [`Error::NonContiguous`], [`Error::Empty`],
    /// [`Error::UnsupportedDType`] for a tensor that cannot be observed (nothing is recorded);
    /// [`Error::DuplicateLayer`] for a name already observed in this batch; candle errors.
    pub fn observe(
        &mut self,
        index: usize,
        name: &str,
        output: &Tensor,
        activation: Activation,
    ) -> Result<Option<TensorStats>> {
        let Some(batch) = self.batch else {
            return Err(Error::Order("observe called outside a batch: call batch_start first"));
        };
        check(name, output)?;
        if self.scratch.activations.iter().any(|(n, _, _)| &**n == name) {
            return Err(Error::DuplicateLayer { name: name.to_owned(), batch });
        }
        let (stats, source) = if self.host_now(output.device()) {
            let adaptive = &mut self.adaptive;
            let stats = with_host_view(name, output, |view| {
                adaptive.on_layer_forward(index, name, view, activation)
            })??;
            self.note_anomalies();
            self.scratch.host_step = true;
            (stats, StatsSource::Host)
        } else if self.device_stats {
            let stats = device_stats(name, output, activation)?;
            self.adaptive.on_layer_stats(index, name, output.dims(), &stats);
            self.note_anomalies();
            (stats, StatsSource::Device)
        } else {
            return Ok(None);
        };
        self.summarizer.record_activation_stats(self.epoch, name, &stats)?;
        self.scratch.activations.push((Arc::from(name), stats, source));
        Ok(Some(stats))
    }

    fn observe_tapped(&mut self) -> Result<()> {
        for Tapped { index, name, output, activation } in self.tap.take() {
            self.observe(index, &name, &output, activation)?;
        }
        Ok(())
    }

    /// One training step: observes the tapped layer outputs, runs `loss.backward()`, measures
    /// the gradient norms, snapshots the variables, runs `optimizer.step`, measures the
    /// update norms, and records the batch (see [`Session::record_step`]).
    ///
    /// # Errors
    /// [`Error::Order`] outside a batch or for a loss with more than one element; errors of
    /// the observed layers (see [`Session::observe`]); candle errors of the backward pass, the
    /// optimiser or the reductions; [`Error::Summary`] for epochs out of order.
    pub fn step<O: Optimizer>(&mut self, optimizer: &mut O, loss: &Tensor) -> Result<StepReport> {
        self.step_with(optimizer, loss, &[])
    }

    /// [`Session::step`] with more batch metrics (`accuracy`, ...) next to the loss.
    ///
    /// # Errors
    /// As [`Session::step`].
    pub fn step_with<O: Optimizer>(
        &mut self,
        optimizer: &mut O,
        loss: &Tensor,
        metrics: &[(&str, f64)],
    ) -> Result<StepReport> {
        if self.batch.is_none() {
            return Err(Error::Order("step called outside a batch: call batch_start first"));
        }
        self.observe_tapped()?;
        if self.vars.is_empty() {
            self.resolve_vars();
        }
        let loss_value = scalar(loss)?;
        let grads = loss.backward()?;
        // The session's snapshot buffers are reused from step to step.
        let mut snapshot = std::mem::take(&mut self.snapshot);
        if self.update_norms {
            self.vars.snapshot_into(&mut snapshot)?;
        }
        optimizer.step(&grads)?;
        let report =
            self.record_step(loss_value, &grads, self.update_norms.then_some(&snapshot), metrics);
        self.snapshot = snapshot;
        report
    }

    /// A snapshot of the tracked variables, for [`Session::record_step`] when the loop runs
    /// the optimiser itself.
    ///
    /// # Errors
    /// A candle error (out of device memory, say).
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.vars.snapshot()?)
    }

    /// Records a step whose backward pass and optimiser step the loop ran itself: `grads` is
    /// the batch's gradient store, `before` the snapshot taken before the optimiser step
    /// (`None`: no update norms). Observes the tapped layer outputs, then feeds the gradient
    /// norms, the update norms and (when the host-copy policy says so) the weights to the
    /// adaptive logger, records `batch_end`, runs the health rules and the summarizer.
    ///
    /// # Errors
    /// As [`Session::step`].
    pub fn record_step(
        &mut self,
        loss: f64,
        grads: &GradStore,
        before: Option<&Snapshot>,
        metrics: &[(&str, f64)],
    ) -> Result<StepReport> {
        if self.batch.is_none() {
            return Err(Error::Order("record_step called outside a batch: call batch_start first"));
        }
        self.observe_tapped()?;
        let Some(batch) = self.batch.take() else {
            return Err(Error::Order("record_step called outside a batch: call batch_start first"));
        };
        if self.vars.is_empty() {
            self.resolve_vars();
        }
        let names: Vec<Arc<str>> = self.vars.name_arcs().to_vec();
        let grad_norms: Vec<(Arc<str>, f64)> = names
            .iter()
            .zip(self.vars.grad_norms(grads)?)
            .filter_map(|(n, g)| g.map(|g| (Arc::clone(n), g)))
            .collect();
        let update_norms: Vec<(Arc<str>, f64)> = match before {
            Some(s) => names.iter().cloned().zip(self.vars.update_norms(s)?).collect(),
            None => Vec::new(),
        };

        for (name, norm) in &grad_norms {
            self.adaptive.on_gradient_computed(name, *norm);
            self.note_anomalies();
        }
        let mut weights: Vec<(Arc<str>, TensorStats)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let Some(var) = self.vars.vars().get(i).cloned() else { continue };
            let t = var.as_tensor();
            let update = update_norms.get(i).map(|(_, u)| *u);
            if t.elem_count() == 0 || !t.is_contiguous() || !self.host_now(t.device()) {
                // The weights stay on their device: the update norm alone is judged.
                if let Some(u) = update {
                    self.adaptive.on_update_norm(i, name, u);
                    self.note_anomalies();
                }
                continue;
            }
            let adaptive = &mut self.adaptive;
            let stats =
                with_host_view(name, t, |view| adaptive.on_weight_updated(i, name, view, update))??;
            self.note_anomalies();
            self.scratch.host_step = true;
            self.summarizer.record_weight_stats(self.epoch, name, &stats)?;
            weights.push((Arc::clone(name), stats));
        }

        let metrics = metrics_data(loss, metrics);
        let recorded = self.base.summary().count(EventType::BatchEnd);
        self.adaptive.on_batch_end(batch, metrics.clone());
        self.note_anomalies();
        let grads_ref: Vec<(&str, f64)> = grad_norms.iter().map(|(n, g)| (&**n, *g)).collect();
        if self.base.summary().count(EventType::BatchEnd) == recorded {
            // Calm batch: one BASIC line with the metrics and gradient norms keeps the
            // dashboard's loss chart, the bridges' series and `obs summary` complete, as
            // `obs demo` does.
            let mut norms = Data::with_capacity(grads_ref.len());
            for (name, g) in &grads_ref {
                norms.insert((*name).to_owned(), *g);
            }
            let event = Event::new(EventType::BatchEnd, LogLevel::Basic)
                .at(Some(self.epoch), Some(batch))
                .data(data! { "metrics" => metrics.clone(), "grad_norms" => norms });
            self.base.emit(event);
        }

        let batch_metrics: Vec<(&str, f64)> =
            metrics.iter().filter_map(|(k, v)| v.as_f64().map(|v| (k, v))).collect();
        self.summarizer.record_batch(self.epoch, &batch_metrics, &grads_ref)?;

        self.step += 1;
        self.tally.host_steps += u64::from(self.scratch.host_step);
        Ok(StepReport {
            epoch: self.epoch,
            batch,
            loss,
            grad_norms,
            update_norms,
            activations: std::mem::take(&mut self.scratch.activations),
            warnings: self.scratch.anomalies.iter().map(|a| a.warning.clone()).collect(),
            anomalies: std::mem::take(&mut self.scratch.anomalies),
        })
    }

    /// An epoch ends: finalizes its summary, runs the epoch rules (overfitting, loss
    /// stagnation, NaN losses) and records `epoch_end` with `loss`, `val_loss` and `extra`.
    ///
    /// # Errors
    /// [`Error::Summary`] when the epoch recorded no batch or was finalized before.
    pub fn epoch_end(
        &mut self,
        epoch: u64,
        train_loss: f64,
        val_loss: Option<f64>,
        extra: &[(&str, f64)],
    ) -> Result<EpochReport> {
        let summary = self.summarizer.finalize_epoch(epoch)?;
        let mut metrics = metrics_data(train_loss, extra);
        if let Some(v) = val_loss {
            metrics.insert("val_loss", v);
        }
        self.adaptive.on_epoch_end(epoch, metrics);
        let anomalies = self.collect_anomalies();
        let warnings = anomalies.iter().map(|a| a.warning.clone()).collect();
        Ok(EpochReport { summary, warnings, anomalies })
    }

    /// Training ends: records `train_end` with `final_metrics`, closes the logger (every
    /// backend writes its last records: the dashboard, the bridges) and reports the run.
    ///
    /// # Errors
    /// [`Error::Bus`] when the logger cannot be closed.
    pub fn finish(mut self, final_metrics: &[(&str, f64)]) -> Result<RunReport> {
        let mut metrics = Data::with_capacity(final_metrics.len());
        for (name, value) in final_metrics {
            metrics.insert((*name).to_owned(), *value);
        }
        self.adaptive.on_train_end(metrics);
        let close = self.adaptive.close()?;
        Ok(RunReport {
            close,
            anomalies: self.adaptive.get_anomaly_summary(),
            health: self.adaptive.health().get_summary(),
            storage: self.storage.as_ref().map(StorageHandle::summary),
            paths: self.paths.take(),
            steps: self.step,
            host_steps: self.tally.host_steps,
        })
    }
}
