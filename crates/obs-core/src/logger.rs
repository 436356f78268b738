//! `TrainingLogger`: the hooks a training loop calls.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::bus::{BusConfig, BusError, CloseReport, EventBus, SendOutcome};
use crate::stats::{Activation, TensorError, TensorStats, TensorView, tensor_stats};
use crate::{
    Backend, BackendError, BatchMetrics, Data, Event, EventType, LogLevel, Severity, unix_now,
};

const NONE: u64 = u64::MAX;

fn opt(v: u64) -> Option<u64> {
    (v != NONE).then_some(v)
}

/// Builds a [`TrainingLogger`].
#[derive(Debug, Default)]
pub struct LoggerBuilder {
    level: Option<LogLevel>,
    bus: BusConfig,
    /// Why the launcher's rank variables could not be read, reported by `build`.
    env_error: Option<String>,
}

impl LoggerBuilder {
    /// The detail level (default [`LogLevel::Basic`]).
    #[must_use]
    pub fn level(mut self, level: LogLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// Queue capacity in events (default 8192).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.bus.capacity = capacity;
        self
    }

    /// Largest batch handed to a backend at once (default 512).
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.bus.batch_size = batch_size;
        self
    }

    /// Drop debug-tier events, counted and reported, instead of waiting when the queue is
    /// full (default `false`: nothing is ever dropped). BASIC and health events always wait.
    #[must_use]
    pub fn drop_debug_when_full(mut self, drop: bool) -> Self {
        self.bus.drop_debug_when_full = drop;
        self
    }

    /// Marks the logger as rank `rank` (0-based) of a multi-process run of `world_size`
    /// processes: every event it records carries both (see `docs/events.md`), stamped on the
    /// bus thread so the training thread pays nothing for it.
    ///
    /// `build` fails with [`BusError::InvalidRank`] unless `world_size >= 1` and
    /// `rank < world_size`.
    #[must_use]
    pub fn rank(mut self, rank: u32, world_size: u32) -> Self {
        self.bus.rank = Some(rank);
        self.bus.world_size = Some(world_size);
        self.env_error = None;
        self
    }

    /// Takes the rank from the variables distributed launchers set: `RANK` and `WORLD_SIZE`
    /// (torchrun, `torch.distributed.launch`, DeepSpeed, Accelerate), else `OMPI_COMM_WORLD_RANK`
    /// and `OMPI_COMM_WORLD_SIZE` (Open MPI's `mpirun`), else `PMI_RANK` and `PMI_SIZE` (MPICH,
    /// Intel MPI). When none is set the logger stays single-process; when a pair is set but
    /// incomplete or not a number, `build` fails with [`BusError::InvalidRank`]. An explicit
    /// [`LoggerBuilder::rank`] given after this call wins.
    #[must_use]
    pub fn rank_from_env(self) -> Self {
        self.rank_from_vars(|name| match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
        })
    }

    /// [`LoggerBuilder::rank_from_env`] over any variable lookup.
    fn rank_from_vars(mut self, var: impl Fn(&str) -> Result<Option<String>, String>) -> Self {
        let env_u32 = |name: &str| -> Result<Option<u32>, String> {
            match var(name)? {
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a non-negative integer")),
                None => Ok(None),
            }
        };
        const PAIRS: [(&str, &str); 3] = [
            ("RANK", "WORLD_SIZE"),
            ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
            ("PMI_RANK", "PMI_SIZE"),
        ];
        for (rank_var, size_var) in PAIRS {
            match (env_u32(rank_var), env_u32(size_var)) {
                (Ok(None), Ok(None)) => continue,
                (Ok(Some(rank)), Ok(Some(world))) => {
                    self.bus.rank = Some(rank);
                    self.bus.world_size = Some(world);
                    self.env_error = None;
                }
                (Ok(Some(_)), Ok(None)) => {
                    self.env_error = Some(format!("{rank_var} is set but {size_var} is not"));
                }
                (Ok(None), Ok(Some(_))) => {
                    self.env_error = Some(format!("{size_var} is set but {rank_var} is not"));
                }
                (Err(e), _) | (_, Err(e)) => self.env_error = Some(e),
            }
            return self;
        }
        self
    }

    /// Starts the logger and its bus thread.
    ///
    /// # Errors
    /// [`BusError::Spawn`] when the bus thread cannot be started; [`BusError::InvalidRank`]
    /// when the rank settings are inconsistent.
    pub fn build(self) -> Result<TrainingLogger, BusError> {
        if let Some(why) = self.env_error {
            return Err(BusError::InvalidRank(why));
        }
        let rank = self.bus.rank.zip(self.bus.world_size);
        let bus = EventBus::spawn(self.bus)?;
        let level = self.level.unwrap_or(LogLevel::Basic);
        Ok(TrainingLogger {
            inner: Arc::new(Inner {
                level: AtomicU8::new(level as u8),
                epoch: AtomicU64::new(NONE),
                batch: AtomicU64::new(NONE),
                origin: Instant::now(),
                train_started: AtomicU64::new(NONE),
                epoch_started: AtomicU64::new(NONE),
                by_type: Default::default(),
                by_severity: Default::default(),
                rank,
                bus,
            }),
        })
    }
}

struct Inner {
    level: AtomicU8,
    epoch: AtomicU64,
    batch: AtomicU64,
    origin: Instant,
    train_started: AtomicU64,
    epoch_started: AtomicU64,
    by_type: [AtomicU64; EventType::ALL.len()],
    by_severity: [AtomicU64; 5],
    rank: Option<(u32, u32)>,
    bus: EventBus,
}

/// Counts of what a logger recorded, kept without keeping the events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoggerSummary {
    /// Events recorded (passed the level gate and queued).
    pub total: u64,
    /// Recorded events by type, in schema order; types never seen are left out.
    pub by_type: Vec<(EventType, u64)>,
    /// Recorded events by severity; severities never seen are left out.
    pub by_severity: Vec<(Severity, u64)>,
    /// Debug-tier events dropped because the queue was full (only with dropping enabled).
    pub dropped: u64,
    /// Events refused because the logger was closed.
    pub rejected: u64,
}

impl LoggerSummary {
    /// Recorded events of one type.
    pub fn count(&self, event_type: EventType) -> u64 {
        self.by_type.iter().find(|(t, _)| *t == event_type).map_or(0, |(_, n)| *n)
    }

    /// Recorded events of one severity.
    pub fn count_severity(&self, severity: Severity) -> u64 {
        self.by_severity.iter().find(|(s, _)| *s == severity).map_or(0, |(_, n)| *n)
    }
}

/// The logger a training loop calls at train, epoch, batch and layer points.
///
/// Cheap to clone: every clone shares one level, one run position (epoch and batch) and one
/// event bus, so data-parallel workers can each hold a handle. Every event is stamped with the
/// run's current epoch and batch. Hooks never block on I/O: they gate by level, reduce tensors
/// with the statistics kernel, and queue a small event for the bus thread. Dropping the last
/// handle closes the logger, writing everything accepted.
///
/// # Examples
/// ```
/// use obs_core::{Activation, LogLevel, TensorView, TrainingLogger, data};
///
/// let logger = TrainingLogger::new(LogLevel::Expert)?;
/// logger.on_train_start(1, data! { "name" => "mlp" });
/// logger.on_epoch_start(0);
/// let acts = vec![0.0f32, 0.5, 1.5, 0.0];
/// let stats = logger
///     .on_layer_forward(0, "dense_0", TensorView::new(&acts, &[2, 2])?, Activation::Relu)?
///     .expect("EXPERT records layer statistics");
/// assert_eq!(stats.zeros, 2);
/// logger.on_epoch_end(0, data! { "loss" => 0.42 });
/// logger.on_train_end(Default::default());
/// logger.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TrainingLogger {
    inner: Arc<Inner>,
}

impl fmt::Debug for TrainingLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainingLogger")
            .field("level", &self.level())
            .field("epoch", &self.current_epoch())
            .field("batch", &self.current_batch())
            .field("bus", &self.inner.bus)
            .finish()
    }
}

impl TrainingLogger {
    /// A logger at `level` with default bus settings.
    ///
    /// # Errors
    /// [`BusError::Spawn`] when the bus thread cannot be started.
    pub fn new(level: LogLevel) -> Result<TrainingLogger, BusError> {
        Self::builder().level(level).build()
    }

    /// A builder for other settings.
    pub fn builder() -> LoggerBuilder {
        LoggerBuilder::default()
    }

    /// `(rank, world_size)` when the logger belongs to a multi-process run.
    pub fn rank(&self) -> Option<(u32, u32)> {
        self.inner.rank
    }

    /// The current level.
    pub fn level(&self) -> LogLevel {
        LogLevel::from_u8(self.inner.level.load(Ordering::Relaxed))
    }

    /// Changes the level for every handle.
    pub fn set_level(&self, level: LogLevel) {
        self.inner.level.store(level as u8, Ordering::Relaxed);
    }

    /// Whether events of `level` are recorded.
    #[inline]
    pub fn enabled(&self, level: LogLevel) -> bool {
        let current = self.level();
        current != LogLevel::Silent && level != LogLevel::Silent && level <= current
    }

    /// The epoch the run is in, if an epoch has started.
    pub fn current_epoch(&self) -> Option<u64> {
        opt(self.inner.epoch.load(Ordering::Relaxed))
    }

    /// The batch the run is in, if a batch has started in this epoch.
    pub fn current_batch(&self) -> Option<u64> {
        opt(self.inner.batch.load(Ordering::Relaxed))
    }

    /// Adds a backend; it receives every event recorded from now on.
    ///
    /// # Errors
    /// [`BusError::Closed`] after [`TrainingLogger::close`].
    pub fn add_backend(&self, backend: impl Backend + 'static) -> Result<(), BusError> {
        self.inner.bus.add_backend(Box::new(backend))
    }

    /// Adds an already boxed backend.
    ///
    /// # Errors
    /// [`BusError::Closed`] after [`TrainingLogger::close`].
    pub fn add_boxed_backend(&self, backend: Box<dyn Backend>) -> Result<(), BusError> {
        self.inner.bus.add_backend(backend)
    }

    /// Calls `callback` with every recorded event of `event_type`.
    ///
    /// Callbacks run on the bus thread, after the events were queued, so a slow callback never
    /// slows the training loop; a panicking callback is disabled and reported like a backend.
    ///
    /// # Errors
    /// [`BusError::Closed`] after [`TrainingLogger::close`].
    pub fn on(
        &self,
        event_type: EventType,
        callback: impl FnMut(&Event) + Send + 'static,
    ) -> Result<(), BusError> {
        self.add_backend(Callback { event_type, name: format!("callback.{event_type}"), callback })
    }

    /// Records an event built elsewhere (by an analyser, say): applies the level gate, stamps
    /// the current epoch and batch when the event has no epoch, counts it and queues it.
    pub fn emit(&self, mut event: Event) -> SendOutcome {
        if !self.enabled(event.level) {
            return SendOutcome::Rejected;
        }
        if event.epoch.is_none() {
            event.epoch = self.current_epoch();
            event.batch = event.batch.or_else(|| self.current_batch());
        }
        let (t, s) = (event.event_type, event.severity);
        let outcome = self.inner.bus.send(event);
        self.count(outcome, t, s);
        outcome
    }

    fn count(&self, outcome: SendOutcome, event_type: EventType, severity: Severity) {
        if outcome == SendOutcome::Queued {
            self.inner.by_type[event_type.index()].fetch_add(1, Ordering::Relaxed);
            self.inner.by_severity[severity as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn here(&self, event_type: EventType) -> Event {
        Event::new(event_type, event_type.default_level())
            .at(self.current_epoch(), self.current_batch())
    }

    fn elapsed_since(&self, mark: &AtomicU64) -> Option<f64> {
        let start = opt(mark.load(Ordering::Relaxed))?;
        let now = self.inner.origin.elapsed().as_nanos() as u64;
        Some(now.saturating_sub(start) as f64 / 1e9)
    }

    fn mark(&self, mark: &AtomicU64) {
        mark.store(self.inner.origin.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Training begins. `model_info` is free-form (name, layers, parameter count...).
    /// Data: `{"total_epochs": n, "model_info": {...}}`.
    pub fn on_train_start(&self, total_epochs: u64, model_info: Data) {
        self.on_train_start_with(total_epochs, model_info, Data::new());
    }

    /// [`TrainingLogger::on_train_start`] with extra top-level data entries, such as
    /// `"fingerprint"` (the run's training fingerprint, which storage writes to
    /// `fingerprint.json`) or `"hyperparameters"`.
    pub fn on_train_start_with(&self, total_epochs: u64, model_info: Data, extra: Data) {
        self.mark(&self.inner.train_started);
        self.inner.epoch.store(NONE, Ordering::Relaxed);
        self.inner.batch.store(NONE, Ordering::Relaxed);
        if self.enabled(LogLevel::Basic) {
            let mut data = Data::with_capacity(2);
            data.insert("total_epochs", total_epochs);
            data.insert("model_info", model_info);
            for (k, v) in &extra {
                data.insert(k.to_owned(), v.clone());
            }
            self.emit(
                self.here(EventType::TrainStart)
                    .message(format!("Training started ({total_epochs} epochs)"))
                    .data(data),
            );
        }
    }

    /// Training ends, with optional final metrics.
    pub fn on_train_end(&self, final_metrics: Data) {
        if self.enabled(LogLevel::Basic) {
            let mut data = Data::with_capacity(2);
            data.insert("metrics", final_metrics);
            if let Some(d) = self.elapsed_since(&self.inner.train_started) {
                data.insert("duration_s", d);
            }
            self.emit(
                self.here(EventType::TrainEnd)
                    .severity(Severity::Success)
                    .message("Training complete")
                    .data(data),
            );
        }
    }

    /// An epoch (0-based) begins.
    pub fn on_epoch_start(&self, epoch: u64) {
        self.inner.epoch.store(epoch, Ordering::Relaxed);
        self.inner.batch.store(NONE, Ordering::Relaxed);
        self.mark(&self.inner.epoch_started);
        if self.enabled(LogLevel::Basic) {
            self.emit(
                Event::new(EventType::EpochStart, LogLevel::Basic)
                    .at(Some(epoch), None)
                    .message(format!("Epoch {} started", epoch.saturating_add(1))),
            );
        }
    }

    /// An epoch ends with its metrics (`loss`, `val_loss`, `accuracy`, ...). The event's data is
    /// `{"metrics": {...}, "duration_s": seconds since on_epoch_start}`.
    pub fn on_epoch_end(&self, epoch: u64, metrics: Data) {
        if self.enabled(LogLevel::Basic) {
            let mut data = Data::with_capacity(2);
            data.insert("metrics", metrics);
            if let Some(d) = self.elapsed_since(&self.inner.epoch_started) {
                data.insert("duration_s", d);
            }
            self.emit(
                Event::new(EventType::EpochEnd, LogLevel::Basic)
                    .at(Some(epoch), None)
                    .message(format!("Epoch {} done", epoch.saturating_add(1)))
                    .data(data),
            );
        }
        self.inner.batch.store(NONE, Ordering::Relaxed);
    }

    /// A batch (0-based within the epoch) begins.
    pub fn on_batch_start(&self, batch: u64) {
        self.inner.batch.store(batch, Ordering::Relaxed);
        if self.enabled(LogLevel::Detailed) {
            self.emit(self.here(EventType::BatchStart));
        }
    }

    /// A batch ends with its metrics (`loss`, ...), a [`Data`] or a [`BatchMetrics`]. Data:
    /// `{"metrics": {...}}`.
    pub fn on_batch_end(&self, batch: u64, metrics: impl Into<BatchMetrics>) {
        self.inner.batch.store(batch, Ordering::Relaxed);
        if self.enabled(LogLevel::Detailed) {
            // The most frequent hook: the bus thread builds its event (see `send_batch_end`).
            let outcome = self.inner.bus.send_batch_end(
                unix_now(),
                self.current_epoch(),
                batch,
                metrics.into(),
            );
            self.count(outcome, EventType::BatchEnd, Severity::Info);
        }
    }

    /// Builds (but does not record) a layer event from statistics: the adaptive logger uses
    /// this to record layers only while escalated.
    pub fn layer_event(
        &self,
        event_type: EventType,
        layer_index: usize,
        layer_name: &str,
        shape: &[usize],
        stats: &TensorStats,
    ) -> Event {
        let mut data = stats.to_data();
        data.insert("shape", shape);
        let severity = if stats.has_non_finite() { Severity::Critical } else { Severity::Info };
        let mut event = self.here(event_type).severity(severity).data(data);
        event.layer_name = Some(layer_name.to_owned());
        event.layer_index = Some(layer_index as u64);
        event
    }

    fn layer_hook(
        &self,
        event_type: EventType,
        layer_index: usize,
        layer_name: &str,
        tensor: TensorView<'_>,
        activation: Activation,
    ) -> Result<Option<TensorStats>, TensorError> {
        if tensor.is_empty() {
            return Err(TensorError::Empty);
        }
        if !self.enabled(event_type.default_level()) {
            return Ok(None);
        }
        let stats = tensor_stats(tensor, activation);
        self.emit(self.layer_event(event_type, layer_index, layer_name, &tensor.shape(), &stats));
        Ok(Some(stats))
    }

    /// A layer's output (EXPERT). Returns its statistics when the level records them.
    /// A tensor containing NaN/Inf is recorded with severity `critical`.
    ///
    /// # Errors
    /// [`TensorError::Empty`] for an empty tensor (shape errors are caught by
    /// [`TensorView::new`]).
    pub fn on_layer_forward(
        &self,
        layer_index: usize,
        layer_name: &str,
        output: TensorView<'_>,
        activation: Activation,
    ) -> Result<Option<TensorStats>, TensorError> {
        self.layer_hook(EventType::LayerForward, layer_index, layer_name, output, activation)
    }

    /// The gradient of a layer's output or weights (EXPERT). Its `l2_norm` is the gradient norm.
    ///
    /// # Errors
    /// [`TensorError::Empty`] for an empty tensor.
    pub fn on_layer_backward(
        &self,
        layer_index: usize,
        layer_name: &str,
        gradient: TensorView<'_>,
    ) -> Result<Option<TensorStats>, TensorError> {
        self.layer_hook(
            EventType::LayerBackward,
            layer_index,
            layer_name,
            gradient,
            Activation::None,
        )
    }

    /// A layer's weights after an optimiser step (EXPERT), with the norm of the update when
    /// known (`update_norm` in the data).
    ///
    /// # Errors
    /// [`TensorError::Empty`] for an empty tensor.
    pub fn on_weight_updated(
        &self,
        layer_index: usize,
        layer_name: &str,
        weights: TensorView<'_>,
        update_norm: Option<f64>,
    ) -> Result<Option<TensorStats>, TensorError> {
        if weights.is_empty() {
            return Err(TensorError::Empty);
        }
        if !self.enabled(LogLevel::Expert) {
            return Ok(None);
        }
        let stats = tensor_stats(weights, Activation::None);
        let mut event = self.layer_event(
            EventType::WeightUpdated,
            layer_index,
            layer_name,
            &weights.shape(),
            &stats,
        );
        if let Some(u) = update_norm {
            event.data.insert("update_norm", u);
        }
        self.emit(event);
        Ok(Some(stats))
    }

    /// A gradient norm for a layer (DETAILED). A non-finite norm is recorded as `critical`.
    pub fn on_gradient_computed(&self, layer_name: &str, grad_norm: f64) {
        if self.enabled(LogLevel::Detailed) {
            let severity = if grad_norm.is_finite() { Severity::Info } else { Severity::Critical };
            let mut event = self
                .here(EventType::GradientComputed)
                .severity(severity)
                .field("grad_norm", grad_norm);
            event.layer_name = Some(layer_name.to_owned());
            self.emit(event);
        }
    }

    /// A health finding (BASIC): always routed to the health tier.
    pub fn on_health_check(
        &self,
        severity: Severity,
        message: impl Into<String>,
        layer_name: Option<&str>,
        data: Data,
    ) {
        if self.enabled(LogLevel::Basic) {
            let mut event =
                self.here(EventType::HealthCheck).severity(severity).message(message).data(data);
            event.layer_name = layer_name.map(str::to_owned);
            self.emit(event);
        }
    }

    /// Counts of what was recorded so far, by type and severity.
    pub fn summary(&self) -> LoggerSummary {
        let by_type: Vec<(EventType, u64)> = EventType::ALL
            .into_iter()
            .map(|t| (t, self.inner.by_type[t.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let by_severity = Severity::ALL
            .into_iter()
            .map(|s| (s, self.inner.by_severity[s as usize].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        LoggerSummary {
            total: by_type.iter().map(|(_, n)| n).sum(),
            by_type,
            by_severity,
            dropped: self.inner.bus.dropped(),
            rejected: self.inner.bus.rejected(),
        }
    }

    /// Waits until every event recorded before this call has been written by every backend.
    ///
    /// # Errors
    /// [`BusError::Backends`] listing backend failures since the last report.
    pub fn flush(&self) -> Result<(), BusError> {
        self.inner.bus.flush()
    }

    /// Writes everything, closes every backend and stops the bus thread. Idempotent; also runs
    /// when the last handle is dropped. Events recorded afterwards are refused and counted.
    ///
    /// # Errors
    /// Only if the bus thread died; backend failures are in the report.
    pub fn close(&self) -> Result<CloseReport, BusError> {
        self.inner.bus.close()
    }

    /// The underlying bus.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }
}

struct Callback<F> {
    event_type: EventType,
    name: String,
    callback: F,
}

impl<F: FnMut(&Event) + Send> Backend for Callback<F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        for e in events.iter().filter(|e| e.event_type == self.event_type) {
            (self.callback)(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<(u32, u32)>, String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let b = LoggerBuilder::default().rank_from_vars(|k| Ok(vars.get(k).cloned()));
        match b.env_error {
            Some(e) => Err(e),
            None => Ok(b.bus.rank.zip(b.bus.world_size)),
        }
    }

    #[test]
    fn launcher_variables_give_the_rank() {
        assert_eq!(from(&[]), Ok(None));
        assert_eq!(from(&[("RANK", "3"), ("WORLD_SIZE", "8")]), Ok(Some((3, 8))));
        assert_eq!(
            from(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", " 2 ")]),
            Ok(Some((1, 2)))
        );
        assert_eq!(from(&[("PMI_RANK", "0"), ("PMI_SIZE", "1")]), Ok(Some((0, 1))));
        // torchrun's pair wins over MPI's.
        assert_eq!(
            from(&[("RANK", "2"), ("WORLD_SIZE", "4"), ("PMI_RANK", "0"), ("PMI_SIZE", "1")]),
            Ok(Some((2, 4)))
        );
        let half = from(&[("RANK", "1")]).unwrap_err();
        assert!(half.contains("WORLD_SIZE"), "{half}");
        let bad = from(&[("RANK", "one"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(bad.contains("RANK=\"one\""), "{bad}");
    }
}
