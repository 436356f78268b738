//! The dashboard as a backend on the event bus.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use obs_core::{Backend, BackendError, Event, EventType};

use crate::{Dashboard, DashboardConfig, DashboardError};

struct State {
    dashboard: Dashboard,
    last_live_render: Option<Instant>,
    /// An epoch ended since the last live render, which the interval postponed.
    live_pending: bool,
}

struct Shared {
    path: PathBuf,
    state: Mutex<State>,
    /// Serialises renders so files are written in the order their snapshots were taken.
    writer: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the dashboard's state consistent enough to draw
    // (every update is a few field writes), so a poisoned lock is still used.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Renders the current state to the file. The state lock is held only while the bounded
    /// state is copied; rendering and I/O happen outside it.
    fn save(&self) -> Result<(), DashboardError> {
        let _writer = lock(&self.writer);
        let snapshot = {
            let mut st = lock(&self.state);
            st.live_pending = false;
            st.last_live_render = Some(Instant::now());
            st.dashboard.clone()
        };
        snapshot.write(&self.path)
    }
}

/// A backend that keeps a bounded summary of the run and renders it as one self-contained,
/// interactive HTML file.
///
/// Once added to a logger the exporter belongs to the bus thread, so take a
/// [`DashboardHandle`] first with [`DashboardExporter::handle`]: its
/// [`save`](DashboardHandle::save) renders the current state from any thread. The file is also
/// rendered when the logger closes and, with [`DashboardConfig::live`], at every epoch end.
/// Every write is atomic (temporary file, then rename).
///
/// # Examples
/// ```
/// use obs_core::{LogLevel, TrainingLogger, data};
/// use obs_dashboard::DashboardExporter;
///
/// let dir = tempfile::tempdir()?;
/// let exporter = DashboardExporter::new(dir.path().join("dashboard.html"));
/// let dashboard = exporter.handle();
/// let logger = TrainingLogger::new(LogLevel::Detailed)?;
/// logger.add_backend(exporter)?;
/// logger.on_train_start(1, data! { "name" => "mlp" });
/// logger.on_epoch_start(0);
/// logger.on_batch_end(0, data! { "loss" => 0.7 });
/// logger.on_epoch_end(0, data! { "loss" => 0.7, "val_loss" => 0.8 });
/// logger.flush()?;
/// dashboard.save()?;
/// assert!(std::fs::read_to_string(dashboard.path())?.contains("val_loss"));
/// logger.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DashboardExporter {
    shared: Arc<Shared>,
}

/// A cloneable handle on a [`DashboardExporter`] that stays with the caller after the exporter
/// itself has been handed to a logger.
#[derive(Clone)]
pub struct DashboardHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for DashboardExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardExporter").field("path", &self.shared.path).finish()
    }
}

impl fmt::Debug for DashboardHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardHandle").field("path", &self.shared.path).finish()
    }
}

impl DashboardExporter {
    /// An exporter writing to `path` with default options.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_config(path, DashboardConfig::default())
    }

    /// An exporter writing to `path`.
    pub fn with_config(path: impl Into<PathBuf>, config: DashboardConfig) -> Self {
        DashboardExporter {
            shared: Arc::new(Shared {
                path: path.into(),
                state: Mutex::new(State {
                    dashboard: Dashboard::new(config),
                    last_live_render: None,
                    live_pending: false,
                }),
                writer: Mutex::new(()),
            }),
        }
    }

    /// A handle to save or inspect the dashboard after the exporter has been added to a
    /// logger.
    pub fn handle(&self) -> DashboardHandle {
        DashboardHandle { shared: Arc::clone(&self.shared) }
    }

    /// The HTML file this exporter writes.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Renders the current state to [`DashboardExporter::path`].
    ///
    /// # Errors
    /// [`DashboardError::Io`] when the file cannot be written.
    pub fn save(&self) -> Result<(), DashboardError> {
        self.shared.save()
    }
}

impl DashboardHandle {
    /// The HTML file the exporter writes.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Renders the current state to [`DashboardHandle::path`], atomically. Events still
    /// queued on the bus are not included: call the logger's `flush()` first to include
    /// everything logged so far.
    ///
    /// # Errors
    /// [`DashboardError::Io`] when the file cannot be written.
    pub fn save(&self) -> Result<(), DashboardError> {
        self.shared.save()
    }

    /// The page as it would be saved now.
    ///
    /// # Errors
    /// [`DashboardError::Template`] on a template failure (a bug).
    pub fn render(&self) -> Result<String, DashboardError> {
        let snapshot = lock(&self.shared.state).dashboard.clone();
        snapshot.render()
    }

    /// Events the exporter has received.
    pub fn events(&self) -> u64 {
        lock(&self.shared.state).dashboard.events()
    }
}

fn backend_error(e: DashboardError) -> BackendError {
    match e {
        DashboardError::Io { path, source } => {
            BackendError::io(format!("writing {}", path.display()), source)
        }
        other => BackendError::other(other),
    }
}

impl Backend for DashboardExporter {
    fn name(&self) -> &str {
        "dashboard.html"
    }

    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        let render = {
            let mut st = lock(&self.shared.state);
            for e in events {
                st.dashboard.ingest(e);
            }
            let live = st.dashboard.config.live;
            let epoch_ended = events.iter().any(|e| e.event_type == EventType::EpochEnd);
            if live && epoch_ended {
                let interval = st.dashboard.config.live_min_interval;
                let due = st.last_live_render.is_none_or(|t| t.elapsed() >= interval);
                st.live_pending = !due;
                due
            } else {
                false
            }
        };
        if render { self.shared.save().map_err(backend_error) } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        let pending = lock(&self.shared.state).live_pending;
        if pending { self.shared.save().map_err(backend_error) } else { Ok(()) }
    }

    fn close(&mut self) -> Result<(), BackendError> {
        lock(&self.shared.state).dashboard.closed = true;
        self.shared.save().map_err(backend_error)
    }
}
