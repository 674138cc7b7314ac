//! One tokio runtime for every stream of the process, and log output.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

/// The runtime streams run on. Its worker threads never hold the GIL except
/// while they call into Python.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread().enable_all().thread_name("streamkit").build().expect("tokio runtime")
    })
}

/// Engine warnings (a failing layer, a failing sink) go to stderr;
/// `RUST_LOG` chooses more or less.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
