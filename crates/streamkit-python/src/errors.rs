//! Engine errors as Python exceptions: a bad argument or URI is a
//! `ValueError`, a missing file `FileNotFoundError`, other I/O `OSError`, and
//! anything that happened while streaming `streamkit.StreamError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use streamkit_core::Error;

create_exception!(streamkit, StreamError, PyRuntimeError, "A stream failed while running (a source or sink error).");

pub fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    match root(&error) {
        Error::Invalid(_) | Error::Uri { .. } | Error::Unsupported(_) => PyValueError::new_err(message),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        Error::Io { .. } => PyOSError::new_err(message),
        _ => StreamError::new_err(message),
    }
}

/// The innermost error under stage wrappers (the message keeps every stage).
fn root(error: &Error) -> &Error {
    match error {
        Error::Stage { source, .. } => root(source),
        other => other,
    }
}
