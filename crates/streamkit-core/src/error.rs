//! One error type for the engine. Each variant says what went wrong and
//! where, so a message read alone (in a log, in a Python traceback) is enough
//! to act on.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument, option or configuration.
    #[error("{0}")]
    Invalid(String),

    /// A URI that could not be turned into a source, sink or layer.
    #[error("bad URI '{uri}': {message}")]
    Uri { uri: String, message: String },

    /// An I/O failure, with what we were doing at the time.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// Input bytes that do not follow their format.
    #[error("{what}: malformed input at byte {offset}: {message}")]
    Malformed { what: String, offset: u64, message: String },

    /// Something valid that streamkit does not handle (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A layer returned an error or panicked while rendering.
    #[error("layer '{id}' failed: {message}")]
    Layer { id: String, message: String },

    /// A pipeline stage (source or sink) failed; `stage` names it.
    #[error("{stage}: {source}")]
    Stage {
        stage: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    pub fn uri(uri: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Uri { uri: uri.into(), message: message.into() }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn malformed(what: impl Into<String>, offset: u64, message: impl Into<String>) -> Error {
        Error::Malformed { what: what.into(), offset, message: message.into() }
    }

    /// Wraps this error with the name of the stage it came from.
    pub fn in_stage(self, stage: impl Into<String>) -> Error {
        Error::Stage { stage: stage.into(), source: Box::new(self) }
    }
}

/// Adds context to I/O results: `file.read(..).context("reading clip.y4m")?`.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
