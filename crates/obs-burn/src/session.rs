//! [`Session`]: the whole Observatory pipeline, fed from a burn `Learner` (through
//! [`crate::ObservatoryLogger`]) or from a custom training loop.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use burn::tensor::Device;
use obs_adaptive::{AdaptiveLogger, Anomaly, AnomalyConfig, AnomalySummary};
use obs_core::{
    CloseReport, Data, Event, EventType, HostCopy, LogLevel, TensorStats, TrainingLogger, data,
};
use obs_fingerprint::TrainingFingerprint;
use obs_health::{HealthSummary, HealthWarning, WarningConfig};
use obs_run::RunFiles;
use obs_storage::{StorageHandle, StorageSummary};
use obs_summary::{EpochSummarizer, EpochSummary};

use crate::error::{Error, Result};
use crate::probe::{Probe, ProbeShared, Record};
use crate::tensors::device_name;

/// The burn version this crate is built against (the `burn` requirement in its manifest).
pub const BURN_VERSION: &str = "0.22";

/// A metric or layer name as Observatory series use it: lower case, every run of characters
/// other than letters and digits turned into one `_` (`"Learning Rate"` -> `"learning_rate"`).
///
/// # Errors
/// [`Error::BadName`] for a name with no letter or digit.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<Arc<str>> {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        return Err(Error::BadName { what, name: name.to_owned() });
    }
    Ok(Arc::from(out))
}

/// Where a session's files went.
pub use obs_run::RunPaths;

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
    epochs: u64,
    model_info: Data,
    hyperparameters: Data,
    seeds: Vec<(String, u64)>,
    fingerprint: bool,
    git: bool,
}

impl SessionBuilder {
    fn new() -> Self {
        SessionBuilder {
            out_dir: None,
            run_name: "burn".to_owned(),
            dashboard: true,
            tensorboard: true,
            wandb_project: Some("observatory".to_owned()),
            level: LogLevel::Expert,
            anomaly: AnomalyConfig::default(),
            host_copy: HostCopy::default(),
            epochs: 0,
            model_info: Data::new(),
            hyperparameters: Data::new(),
            seeds: Vec::new(),
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

    /// The run's name, used by the dashboard title and the bridges (default `"burn"`).
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

    /// When layer outputs observed through the [`Probe`] are reduced by the kernel on the
    /// host (default [`HostCopy::default`]: every step on a CPU backend, every 10th step and
    /// while escalated on a GPU).
    #[must_use]
    pub fn host_copy(mut self, policy: HostCopy) -> Self {
        self.host_copy = policy;
        self
    }

    /// The number of epochs, for `train_start` (the `Learner`'s `num_epochs`; default 0,
    /// unknown).
    #[must_use]
    pub fn epochs(mut self, epochs: u64) -> Self {
        self.epochs = epochs;
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
        obs_run::fingerprint(
            &self.model_info,
            hyperparameters,
            &[("burn", BURN_VERSION), ("obs-burn", env!("CARGO_PKG_VERSION"))],
            &self.seeds,
            self.git,
        )
        .capture()
        .map_err(|e| Error::setup("capturing the training fingerprint", e))
    }

    fn open_backends(
        &self,
        logger: &TrainingLogger,
        out: &Path,
    ) -> Result<(RunPaths, StorageHandle)> {
        RunFiles::new(&self.run_name)
            .framework("burn")
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
    /// cannot be written, or a fingerprint that cannot be captured.
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
        let core = Core {
            adaptive,
            summarizer: EpochSummarizer::new(),
            base: logger,
            fingerprint,
            model_info: self.model_info,
            hyperparameters,
            epochs: self.epochs,
            paths,
            storage,
            started: false,
            epoch: None,
            batch: 0,
            step: 0,
            host_steps: 0,
            epoch_acc: EpochAcc::default(),
            steps: Vec::new(),
            epoch_reports: Vec::new(),
            errors: Vec::new(),
            learner: crate::learner::LearnerState::default(),
        };
        Ok(Session {
            shared: Arc::new(Shared {
                core: Mutex::new(core),
                probe: Arc::new(ProbeShared::new(self.host_copy)),
            }),
        })
    }
}

/// What one recorded step measured and found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StepReport {
    /// The epoch.
    pub epoch: u64,
    /// The batch within the epoch (from 0).
    pub batch: u64,
    /// The batch loss, if there was one.
    pub loss: Option<f64>,
    /// The batch metrics as recorded (normalised names, the loss included).
    pub metrics: Vec<(Arc<str>, f64)>,
    /// Each parameter's gradient norm, if the step measured them.
    pub grad_norms: Vec<(Arc<str>, f64)>,
    /// Each parameter's update norm, if the step measured them.
    pub update_norms: Vec<(Arc<str>, f64)>,
    /// The statistics of each observed layer output.
    pub activations: Vec<(Arc<str>, TensorStats)>,
    /// Health warnings of this batch (the warnings of `anomalies`).
    pub warnings: Vec<HealthWarning>,
    /// Anomalies the adaptive logger emitted during this batch (de-duplicated repeats are
    /// counted in its summary, not listed here).
    pub anomalies: Vec<Anomaly>,
}

/// What the end of an epoch found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EpochReport {
    /// The epoch.
    pub epoch: u64,
    /// The epoch's summary (means, spreads, extremes of every metric and gradient norm).
    pub summary: EpochSummary,
    /// The validation loss, if there was one.
    pub val_loss: Option<f64>,
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
    /// Every recorded step, in order.
    pub steps: Vec<StepReport>,
    /// Every finished epoch, in order.
    pub epochs: Vec<EpochReport>,
    /// Steps whose layer outputs went through the kernel on the host.
    pub host_steps: u64,
    /// What could not be recorded while the `Learner` ran (its metric logger cannot return
    /// an error): a metric with an unusable name, an epoch without batches, ... Empty for a
    /// clean run.
    pub errors: Vec<Error>,
    /// Probe measurements dropped because no step took them (more than 1024 pending).
    pub dropped_probe_steps: u64,
}

/// Per-epoch sums for the epoch-end metrics.
#[derive(Debug, Default)]
pub(crate) struct EpochAcc {
    loss_sum: f64,
    loss_n: u64,
}

/// The pipeline's state, behind the session's lock.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) adaptive: AdaptiveLogger,
    summarizer: EpochSummarizer,
    base: TrainingLogger,
    fingerprint: Option<TrainingFingerprint>,
    model_info: Data,
    hyperparameters: Data,
    epochs: u64,
    paths: Option<RunPaths>,
    storage: Option<StorageHandle>,
    started: bool,
    pub(crate) epoch: Option<u64>,
    batch: u64,
    step: u64,
    host_steps: u64,
    epoch_acc: EpochAcc,
    steps: Vec<StepReport>,
    epoch_reports: Vec<EpochReport>,
    pub(crate) errors: Vec<Error>,
    pub(crate) learner: crate::learner::LearnerState,
}

fn emitted(adaptive: &AdaptiveLogger) -> impl Iterator<Item = Anomaly> + '_ {
    adaptive.latest_anomalies().iter().filter(|a| a.emitted).cloned()
}

impl Core {
    pub(crate) fn train_start(&mut self, epochs: u64) {
        let mut extra = data! { "hyperparameters" => self.hyperparameters.clone() };
        if let Some(fp) = &self.fingerprint {
            extra.insert("fingerprint", fp.to_data());
        }
        let epochs = if epochs == 0 { self.epochs } else { epochs };
        self.adaptive.on_train_start_with(epochs, self.model_info.clone(), extra);
        self.started = true;
    }

    pub(crate) fn ensure_started(&mut self) {
        if !self.started {
            self.train_start(0);
        }
    }

    pub(crate) fn epoch_start(&mut self, epoch: u64) {
        self.ensure_started();
        self.epoch = Some(epoch);
        self.batch = 0;
        self.epoch_acc = EpochAcc::default();
        self.adaptive.on_epoch_start(epoch);
    }

    /// Records one training step: the probe's measurements of it, then its metrics.
    pub(crate) fn step(
        &mut self,
        record: Option<Record>,
        metrics: Vec<(Arc<str>, f64)>,
        probe: &ProbeShared,
    ) -> Result<StepReport> {
        let Some(epoch) = self.epoch else {
            return Err(Error::Order("a step was recorded outside an epoch: call epoch_start"));
        };
        let batch = self.batch;
        let mut anomalies: Vec<Anomaly> = Vec::new();
        self.adaptive.on_batch_start(batch);
        anomalies.extend(emitted(&self.adaptive));
        let record = record.unwrap_or_default();
        let mut activations = Vec::with_capacity(record.layers.len());
        for layer in &record.layers {
            self.adaptive.on_layer_stats(layer.index, &layer.name, &layer.shape, &layer.stats);
            anomalies.extend(emitted(&self.adaptive));
            self.summarizer.record_activation_stats(epoch, &layer.name, &layer.stats)?;
            activations.push((Arc::clone(&layer.name), layer.stats));
        }
        let grad_norms = record.grads.unwrap_or_default();
        for (name, norm) in &grad_norms {
            self.adaptive.on_gradient_computed(name, *norm);
            anomalies.extend(emitted(&self.adaptive));
        }
        let update_norms = record.updates.unwrap_or_default();
        for (i, (name, norm)) in update_norms.iter().enumerate() {
            self.adaptive.on_update_norm(i, name, *norm);
            anomalies.extend(emitted(&self.adaptive));
        }

        let loss = metrics.iter().find(|(k, _)| &**k == "loss").map(|(_, v)| *v);
        let mut data = Data::with_capacity(metrics.len());
        for (name, value) in &metrics {
            data.insert(name.to_string(), *value);
        }
        let recorded = self.base.summary().count(EventType::BatchEnd);
        self.adaptive.on_batch_end(batch, data.clone());
        anomalies.extend(emitted(&self.adaptive));
        let grads_ref: Vec<(&str, f64)> = grad_norms.iter().map(|(n, g)| (&**n, *g)).collect();
        if self.base.summary().count(EventType::BatchEnd) == recorded {
            // Calm batch: one BASIC line with the metrics and gradient norms keeps the
            // dashboard's loss chart, the bridges' series and `obs summary` complete.
            let mut norms = Data::with_capacity(grads_ref.len());
            for (name, g) in &grads_ref {
                norms.insert((*name).to_owned(), *g);
            }
            let event = Event::new(EventType::BatchEnd, LogLevel::Basic)
                .at(Some(epoch), Some(batch))
                .data(data! { "metrics" => data, "grad_norms" => norms });
            self.base.emit(event);
        }
        let batch_metrics: Vec<(&str, f64)> = metrics.iter().map(|(k, v)| (&**k, *v)).collect();
        self.summarizer.record_batch(epoch, &batch_metrics, &grads_ref)?;
        if let Some(l) = loss.filter(|l| l.is_finite()) {
            self.epoch_acc.loss_sum += l;
            self.epoch_acc.loss_n += 1;
        }

        self.batch += 1;
        self.step += 1;
        self.host_steps += u64::from(record.host);
        probe.escalated.store(self.adaptive.is_escalated(), Ordering::Relaxed);
        let report = StepReport {
            epoch,
            batch,
            loss,
            metrics,
            grad_norms,
            update_norms,
            activations,
            warnings: anomalies.iter().map(|a| a.warning.clone()).collect(),
            anomalies,
        };
        self.steps.push(report.clone());
        Ok(report)
    }

    /// Ends the current epoch: its summary, the epoch rules, `epoch_end`.
    pub(crate) fn epoch_end(
        &mut self,
        epoch: u64,
        train_loss: Option<f64>,
        val_loss: Option<f64>,
        extra: &[(Arc<str>, f64)],
    ) -> Result<EpochReport> {
        if self.epoch != Some(epoch) {
            return Err(Error::Order("epoch_end for an epoch that was not started"));
        }
        self.epoch = None;
        let summary = self.summarizer.finalize_epoch(epoch)?;
        let mean = (self.epoch_acc.loss_n > 0)
            .then(|| self.epoch_acc.loss_sum / self.epoch_acc.loss_n as f64);
        let mut metrics = Data::with_capacity(extra.len() + 2);
        if let Some(loss) = train_loss.or(mean) {
            metrics.insert("loss", loss);
        }
        if let Some(v) = val_loss {
            metrics.insert("val_loss", v);
        }
        for (name, value) in extra {
            metrics.insert(name.to_string(), *value);
        }
        self.adaptive.on_epoch_end(epoch, metrics);
        let anomalies: Vec<Anomaly> = emitted(&self.adaptive).collect();
        let report = EpochReport {
            epoch,
            summary,
            val_loss,
            warnings: anomalies.iter().map(|a| a.warning.clone()).collect(),
            anomalies,
        };
        self.epoch_reports.push(report.clone());
        Ok(report)
    }

    fn finish(&mut self, final_metrics: &[(&str, f64)], dropped: u64) -> Result<RunReport> {
        self.ensure_started();
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
            steps: std::mem::take(&mut self.steps),
            epochs: std::mem::take(&mut self.epoch_reports),
            host_steps: self.host_steps,
            errors: std::mem::take(&mut self.errors),
            dropped_probe_steps: dropped,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    pub(crate) probe: Arc<ProbeShared>,
}

impl Shared {
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        // A panic elsewhere while the lock was held leaves plain data behind: keep using it.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The Observatory pipeline of one burn training run.
///
/// A session owns a [`TrainingLogger`] with its backends (tiered storage, dashboard,
/// TensorBoard and W&B bridges), the [`AdaptiveLogger`] in front of it (whose rule engine
/// runs the health rules: each finding is reported once, to every backend), an
/// [`EpochSummarizer`] and the run's [`TrainingFingerprint`] (with the burn version and the
/// device). It is fed in one of two ways:
///
/// - **burn's `Learner`**: register [`Session::metric_logger`] with
///   `SupervisedTraining::with_metric_logger`; every train and validation metric burn computes
///   then goes through the pipeline (see [`crate::ObservatoryLogger`]). A model that holds the
///   session's [`Probe`] adds layer outputs, gradient norms and update norms to each step.
/// - **a custom loop**: call [`Session::train_start`], [`Session::epoch_start`], the
///   [`Probe`] during the step, [`Session::record_step`] after it and
///   [`Session::epoch_end`].
///
/// Either way, [`Session::finish`] closes the logger and reports the run. The session is a
/// cheap handle (`Clone + Send + Sync`); every clone drives the same pipeline.
#[derive(Clone, Debug)]
pub struct Session {
    pub(crate) shared: Arc<Shared>,
}

impl Session {
    /// A builder with the defaults: no output directory, every backend on once there is one,
    /// default rules, [`HostCopy::default`].
    pub fn builder() -> SessionBuilder {
        SessionBuilder::new()
    }

    /// A probe for the training step (layer outputs, gradient and update norms).
    pub fn probe(&self) -> Probe {
        Probe { shared: Arc::clone(&self.shared.probe) }
    }

    /// Whether the adaptive logger is escalated now.
    pub fn is_escalated(&self) -> bool {
        self.shared.core().adaptive.is_escalated()
    }

    /// The adaptive logger's anomaly summary so far.
    pub fn anomaly_summary(&self) -> AnomalySummary {
        self.shared.core().adaptive.get_anomaly_summary()
    }

    /// Where the files go, if there is an output directory.
    pub fn paths(&self) -> Option<RunPaths> {
        self.shared.core().paths.clone()
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u64 {
        self.shared.core().step
    }

    /// The fingerprint, if one was captured.
    pub fn fingerprint(&self) -> Option<TrainingFingerprint> {
        self.shared.core().fingerprint.clone()
    }

    /// The base logger (to add a backend or a callback).
    pub fn logger(&self) -> TrainingLogger {
        self.shared.core().base.clone()
    }

    /// Training begins: records `train_start` with the model description, the
    /// hyperparameters and the fingerprint (storage writes it to `fingerprint.json`).
    /// `epochs == 0` uses [`SessionBuilder::epochs`]. The `Learner`'s logger calls it at its
    /// first metric.
    pub fn train_start(&mut self, epochs: u64) {
        self.shared.core().train_start(epochs);
    }

    /// An epoch begins.
    pub fn epoch_start(&mut self, epoch: u64) {
        self.shared.core().epoch_start(epoch);
    }

    /// Records a step of a custom loop: the [`Probe`]'s measurements of it (layer outputs,
    /// gradient norms, update norms), then `loss` and `metrics` (`accuracy`, ...), through the
    /// adaptive logger, the health rules and the summarizer.
    ///
    /// # Errors
    /// [`Error::Order`] outside an epoch; [`Error::BadName`] for a metric name without
    /// letters or digits; [`Error::Summary`] for epochs out of order.
    pub fn record_step(
        &mut self,
        loss: Option<f64>,
        metrics: &[(&str, f64)],
    ) -> Result<StepReport> {
        let mut named = Vec::with_capacity(metrics.len() + 1);
        if let Some(l) = loss {
            named.push((Arc::from("loss"), l));
        }
        for (name, value) in metrics {
            named.push((check_name("metric", name)?, *value));
        }
        let record = self.shared.probe.pop();
        self.shared.core().step(record, named, &self.shared.probe)
    }

    /// An epoch ends: finalizes its summary, runs the epoch rules (overfitting, loss
    /// stagnation, NaN losses) and records `epoch_end` with the train loss (the mean of the
    /// epoch's finite batch losses when `train_loss` is `None`), `val_loss` and `extra`.
    ///
    /// # Errors
    /// [`Error::Order`] for an epoch that is not the current one; [`Error::Summary`] when the
    /// epoch recorded no batch; [`Error::BadName`] for an unusable metric name.
    pub fn epoch_end(
        &mut self,
        epoch: u64,
        train_loss: Option<f64>,
        val_loss: Option<f64>,
        extra: &[(&str, f64)],
    ) -> Result<EpochReport> {
        let extra = extra
            .iter()
            .map(|(n, v)| Ok((check_name("metric", n)?, *v)))
            .collect::<Result<Vec<_>>>()?;
        self.shared.core().epoch_end(epoch, train_loss, val_loss, &extra)
    }

    /// Training ends: closes an epoch the `Learner` left open, records `train_end` with
    /// `final_metrics`, closes the logger (every backend writes its last records: the
    /// dashboard, the bridges) and reports the run. Call it after `SupervisedTraining::launch`
    /// returned (burn has handed every metric to the logger by then).
    ///
    /// # Errors
    /// [`Error::Bus`] when the logger cannot be closed.
    pub fn finish(self, final_metrics: &[(&str, f64)]) -> Result<RunReport> {
        let dropped = self.shared.probe.dropped();
        let mut core = self.shared.core();
        crate::learner::close_open_epoch(&mut core);
        core.finish(final_metrics, dropped)
    }
}
