//! The backend (sink) trait that storage, dashboards and bridges implement.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::Event;

/// A destination for events: a log file, a dashboard, a bridge to another tool.
///
/// # Lifecycle and threads
/// A backend is added to a logger with [`crate::TrainingLogger::add_backend`] and from then on is
/// owned by that logger's **bus thread**; every method below runs on the bus thread, never on the
/// training thread, so a backend may block on I/O and needs `Send` but not `Sync`.
///
/// 1. [`Backend::write`] is called with batches of events, in the order the training threads
///    sent them (per sending thread). Encoding and buffering belong here.
/// 2. [`Backend::flush`] is called when the user calls `flush()` on the logger: when it returns
///    `Ok`, everything written so far must be on its way to durable storage (handed to the OS).
/// 3. [`Backend::close`] is called exactly once, when the logger is closed or dropped, after
///    the last `write`. It should flush and release resources. No method is called after it.
///
/// # Errors and panics
/// An `Err` from any method is recorded and reported from the logger's next `flush()`/`close()`
/// and as a `health_check` event to the other backends; the backend keeps receiving events (a
/// full disk may recover). A panic is caught: that backend is disabled, reported the same way,
/// and the other backends carry on.
///
/// # Examples
/// ```
/// use obs_core::{Backend, BackendError, Event};
///
/// #[derive(Debug, Default)]
/// struct Count(usize);
///
/// impl Backend for Count {
///     fn name(&self) -> &str { "count" }
///     fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
///         self.0 += events.len();
///         Ok(())
///     }
/// }
/// ```
pub trait Backend: Send {
    /// A short dotted name used in reports, such as `"storage.tiered"`.
    fn name(&self) -> &str;

    /// Receives a batch of events, in send order. Called on the bus thread.
    ///
    /// # Errors
    /// Whatever went wrong; the bus records and reports it.
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError>;

    /// Makes everything written so far durable to the degree the backend promises.
    ///
    /// # Errors
    /// Whatever went wrong; the bus records and reports it.
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Flushes and releases resources. Called once, last.
    ///
    /// # Errors
    /// Whatever went wrong; the bus records and reports it.
    fn close(&mut self) -> Result<(), BackendError> {
        self.flush()
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn write(&mut self, events: &[Event]) -> Result<(), BackendError> {
        (**self).write(events)
    }
    fn flush(&mut self) -> Result<(), BackendError> {
        (**self).flush()
    }
    fn close(&mut self) -> Result<(), BackendError> {
        (**self).close()
    }
}

/// What a backend reports when it cannot do its work.
#[derive(Debug)]
#[non_exhaustive]
pub enum BackendError {
    /// An I/O operation failed.
    Io {
        /// What was being done, for example `"writing logs/basic.log"`.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An event could not be encoded.
    Encode(String),
    /// The backend was already closed.
    Closed,
    /// Anything else.
    Other(Box<dyn StdError + Send + Sync>),
}

impl BackendError {
    /// An I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        BackendError::Io { context: context.into(), source }
    }

    /// Any other error.
    pub fn other(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        BackendError::Other(error.into())
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Io { context, source } => write!(f, "{context}: {source}"),
            BackendError::Encode(msg) => write!(f, "could not encode event: {msg}"),
            BackendError::Closed => f.write_str("backend is closed"),
            BackendError::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BackendError::Io { source, .. } => Some(source),
            BackendError::Other(e) => Some(&**e),
            _ => None,
        }
    }
}
