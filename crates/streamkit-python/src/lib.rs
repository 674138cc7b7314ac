//! # streamkit-python
//!
//! The native half of the `streamkit` Python package (`streamkit._native`).
//! The Python half (`python/streamkit`) holds the design's API; this module
//! holds what must be fast or must touch the engine:
//!
//! * [`stream`] — a Rust [`streamkit_core::stream::Stream`] run on a shared
//!   tokio runtime without the GIL; Python awaits it through a callback;
//! * [`layer`], [`source`], [`sink`] — Python objects as engine layers,
//!   sources and sinks (they take the GIL only for the call);
//! * [`canvas`] — the skia-style canvas, paint, rect, path, font and image
//!   that the `streamkit.skia` shim re-exports;
//! * [`frames`] — frames as read-only numpy-compatible buffers (no copy) and
//!   numpy arrays as frames (no copy when packed).

use pyo3::prelude::*;

mod aio;
pub mod canvas;
mod context;
mod errors;
pub mod frames;
pub mod layer;
mod runtime;
pub mod sink;
pub mod source;
pub mod stream;

/// Runs the `streamkit` command line in this process (`python -m streamkit`),
/// without the GIL; returns its exit status.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<String>) -> u8 {
    py.allow_threads(|| streamkit_cli::run_cli(args))
}

/// Every registered URI scheme as (kind, scheme, summary, example).
#[pyfunction]
fn schemes() -> Vec<(String, String, String, String)> {
    streamkit_cli::plugins::registry()
        .schemes()
        .into_iter()
        .map(|s| (s.kind.to_string(), s.scheme, s.summary, s.example))
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    runtime::init_logging();
    m.add("StreamError", m.py().get_type::<errors::StreamError>())?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(schemes, m)?)?;
    m.add_class::<stream::NativeStream>()?;
    m.add_class::<layer::LayerHandle>()?;
    m.add_class::<context::Context>()?;
    m.add_class::<frames::FrameView>()?;
    canvas::register(m)?;
    Ok(())
}
