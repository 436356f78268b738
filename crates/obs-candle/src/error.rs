//! [`Error`]: what the candle integration refuses, and how it becomes a `candle_core::Error`.

use candle_core::DType;

/// Why a tensor was refused or a step could not be observed.
///
/// Converts into [`candle_core::Error`] (`?` works in a function returning
/// `candle_core::Result`): candle's own errors come back unchanged, the others are wrapped
/// with their message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tensor's elements are not laid out row-major without gaps (a transpose, a
    /// narrowed or broadcast view). The statistics read the storage in place, so they refuse
    /// such a view rather than copying it behind the caller's back.
    #[error(
        "tensor '{name}' is not contiguous (shape {shape:?}, stride {stride:?}): call \
         `.contiguous()` on it before observing it"
    )]
    NonContiguous {
        /// The layer or variable name.
        name: String,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The tensor's strides.
        stride: Vec<usize>,
    },
    /// The tensor has no elements: nothing can be judged.
    #[error("tensor '{name}' has no elements (shape {shape:?})")]
    Empty {
        /// The layer or variable name.
        name: String,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// The tensor is not a floating-point tensor.
    #[error(
        "tensor '{name}' has dtype {dtype:?}: statistics need a floating-point tensor (f16, \
         bf16, f32 or f64)"
    )]
    UnsupportedDType {
        /// The layer or variable name.
        name: String,
        /// The tensor's dtype.
        dtype: DType,
    },
    /// The same name was observed twice in one batch.
    #[error("layer '{name}' was observed twice in batch {batch}")]
    DuplicateLayer {
        /// The layer name.
        name: String,
        /// The batch.
        batch: u64,
    },
    /// A hook was called out of order (a step before `train_start`, say).
    #[error("{0}")]
    Order(&'static str),
    /// A candle operation failed (a device error, out of memory, a shape error).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The shape does not fit the data (cannot happen for a tensor candle built; kept so
    /// nothing here panics).
    #[error(transparent)]
    Tensor(#[from] obs_core::TensorError),
    /// The epoch summaries refused a record (epochs out of order).
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
}

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(inner) => inner,
            other => candle_core::Error::wrap(other),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
