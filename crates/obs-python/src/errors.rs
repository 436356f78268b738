//! Rust errors as Python exceptions: anything caused by an I/O error is an `OSError`, the rest
//! a `ValueError`; the message is the whole chain of causes.

use std::error::Error as StdError;
use std::io;

use pyo3::PyErr;
use pyo3::exceptions::{PyOSError, PyValueError};

/// `error` and its causes, joined with `": "`, as a Python exception.
pub(crate) fn to_py(error: &(dyn StdError + 'static)) -> PyErr {
    let mut message = error.to_string();
    let mut io_cause = error.downcast_ref::<io::Error>().is_some();
    let mut cause = error.source();
    while let Some(c) = cause {
        io_cause |= c.downcast_ref::<io::Error>().is_some();
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    if io_cause { PyOSError::new_err(message) } else { PyValueError::new_err(message) }
}

/// `Result<T, E>` to `PyResult<T>` through [`to_py`].
pub(crate) trait IntoPy<T> {
    /// The result with its error converted.
    fn py_err(self) -> pyo3::PyResult<T>;
}

impl<T, E: StdError + 'static> IntoPy<T> for Result<T, E> {
    fn py_err(self) -> pyo3::PyResult<T> {
        self.map_err(|e| to_py(&e))
    }
}
