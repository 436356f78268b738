//! [`Error`]: what the burn integration refuses, and why a run could not be observed.

/// Why a tensor or a metric was refused, or a run could not be observed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tensor has no elements: nothing can be judged.
    #[error("tensor '{name}' has no elements (shape {shape:?})")]
    Empty {
        /// The layer or parameter name.
        name: String,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A name that cannot label a series: empty, or only punctuation and spaces.
    #[error("{what} name {name:?} is empty once normalised: give it letters or digits")]
    BadName {
        /// What was being named (`"layer"`, `"metric"`).
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// The same layer was observed twice in one step.
    #[error("layer '{name}' was observed twice in step {step}")]
    DuplicateLayer {
        /// The layer name.
        name: String,
        /// The step (counted from 0 over the run).
        step: u64,
    },
    /// Reading a tensor from its device failed (or its elements are not floats).
    #[error("reading tensor '{name}': {message}")]
    Read {
        /// The layer or parameter name.
        name: String,
        /// burn's error message.
        message: String,
    },
    /// A hook was called out of order (a step before `train_start`, say).
    #[error("{0}")]
    Order(&'static str),
    /// The shape does not fit the data (cannot happen for a tensor burn built; kept so
    /// nothing here panics).
    #[error(transparent)]
    Tensor(#[from] obs_core::TensorError),
    /// The epoch summaries refused a record (an epoch with no batch, epochs out of order).
    #[error("epoch summary: {0}")]
    Summary(#[from] obs_summary::SummaryError),
    /// Building the pipeline failed: a configuration that does not validate, a log directory
    /// that cannot be created, a fingerprint that cannot be captured.
    #[error("{context}: {source}")]
    Setup {
        /// What was being set up.
        context: &'static str,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Flushing or closing the logger failed.
    #[error("closing the logger: {0}")]
    Bus(#[from] obs_core::BusError),
}

impl Error {
    pub(crate) fn setup(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Setup { context, source: Box::new(source) }
    }

    pub(crate) fn read(name: &str, e: impl std::fmt::Display) -> Self {
        Error::Read { name: name.to_owned(), message: e.to_string() }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
