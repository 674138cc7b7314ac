//! `streamkit._native.NativeStream`: a Rust stream built from URIs and Python
//! objects, run on the shared tokio runtime without the GIL.
//!
//! `start(callback)` returns at once; when the run ends (end of source,
//! frame limit, `stop()`), the callback gets a report dict or an exception.
//! The Python `Stream.run()` turns that into an awaitable with
//! `loop.call_soon_threadsafe`, and on cancellation calls `stop()` and waits
//! for the sinks to be finalised.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures::FutureExt;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use streamkit_core::compositor::LayerControl;
use streamkit_core::registry::Registry;
use streamkit_core::stream::{RunReport, StopHandle, Stream, StreamOptions};
use streamkit_core::{Fps, Sink, Source};

use crate::aio::LoopSlot;
use crate::errors::{to_py, StreamError};
use crate::layer::{LayerHandle, PyLayer};
use crate::runtime::runtime;
use crate::sink::PySink;
use crate::source::PySource;

/// The plugin registry, built once (every scheme the CLI knows).
fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(streamkit_cli::plugins::registry)
}

#[pyclass(module = "streamkit._native", frozen)]
pub struct NativeStream {
    /// Until `start`: the stream; afterwards None.
    stream: Mutex<Option<Stream>>,
    layers: LayerControl,
    stop: StopHandle,
    stats: Arc<streamkit_core::stats::Stats>,
    event_loop: LoopSlot,
    /// Set once the runtime thread has called back and let go of the GIL.
    finished: Arc<(Mutex<bool>, Condvar)>,
    width: Option<u32>,
    height: Option<u32>,
    fps: f64,
}

#[pymethods]
impl NativeStream {
    /// `source`: a URI, a Python source object, or None (layers on a
    /// background); `sinks`: URIs and/or Python sink objects.
    #[new]
    #[pyo3(signature = (source, sinks, width = None, height = None, fps = None, realtime = false, frames = None, duration = None, queue = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        source: Option<Bound<'_, PyAny>>,
        sinks: Vec<Bound<'_, PyAny>>,
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<f64>,
        realtime: bool,
        frames: Option<u64>,
        duration: Option<f64>,
        queue: Option<usize>,
    ) -> PyResult<NativeStream> {
        let event_loop: LoopSlot = Arc::default();
        let fps = match fps {
            Some(f) => Some(
                Fps::parse(&f.to_string())
                    .filter(|_| f > 0.0)
                    .ok_or_else(|| PyValueError::new_err(format!("fps must be a positive number, got {f}")))?,
            ),
            None => None,
        };
        let size = match (width, height) {
            (Some(w), Some(h)) => Some((w, h)),
            (None, None) => None,
            _ => return Err(PyValueError::new_err("give both width and height, or neither")),
        };
        if let Some((w, h)) = size {
            streamkit_core::frame::check_size(streamkit_core::PixelFormat::Rgba8Premul, w, h).map_err(to_py)?;
        }
        if sinks.is_empty() {
            return Err(PyValueError::new_err("a stream needs at least one sink, e.g. sink=FileSink('out.mp4')"));
        }
        let duration = match duration {
            Some(d) if !(d.is_finite() && d >= 0.0) => {
                return Err(PyValueError::new_err(format!("duration must be seconds ≥ 0, got {d}")))
            }
            d => d.map(Duration::from_secs_f64),
        };
        // Python objects are wrapped with the GIL; URIs are built without it
        // and inside the runtime: building some connects (a NetworkSource
        // waits for its sender) or spawns tasks.
        let sinks = sinks.iter().map(|s| Part::sink(py, s, &event_loop)).collect::<PyResult<Vec<_>>>()?;
        let source = source.map(|s| Part::source(py, &s, &event_loop)).transpose()?;
        let options = StreamOptions { size, fps, realtime, max_frames: frames, duration, queue_capacity: queue };
        let stream = py
            .allow_threads(move || -> streamkit_core::Result<Stream> {
                let _runtime = runtime().enter();
                let sinks = sinks.into_iter().map(Part::build_sink).collect::<streamkit_core::Result<Vec<_>>>()?;
                Ok(match source {
                    Some(source) => Stream::new(source.build_source()?, sinks, options),
                    None => Stream::generated(sinks, options),
                })
            })
            .map_err(to_py)?;
        Ok(NativeStream {
            layers: stream.layers(),
            stop: stream.stop_handle(),
            stats: stream.stats(),
            fps: stream.fps().as_f64(),
            width,
            height,
            stream: Mutex::new(Some(stream)),
            event_loop,
            finished: Arc::default(),
        })
    }

    /// Adds a Python layer: `target(canvas, ctx)` is called for every frame.
    #[pyo3(signature = (layer_id, z_index, target, opacity = 1.0))]
    fn add_python_layer(&self, layer_id: String, z_index: i32, target: Py<PyAny>, opacity: f32) -> LayerHandle {
        let (layer, handle) = PyLayer::new(target, self.event_loop.clone());
        self.layers.add_boxed(layer_id, z_index, opacity, Box::new(layer));
        handle
    }

    /// Adds a layer from a URI (`text:Hello?size=48`); returns its id.
    #[pyo3(signature = (uri, layer_id = None, z_index = None, opacity = None))]
    fn add_uri_layer(
        &self,
        uri: &str,
        layer_id: Option<String>,
        z_index: Option<i32>,
        opacity: Option<f32>,
    ) -> PyResult<String> {
        let spec = registry().build_layer(uri).map_err(to_py)?;
        let id = layer_id.or(spec.id).unwrap_or_else(|| uri.split(':').next().unwrap_or("layer").to_string());
        let z = z_index.or(spec.z_index).unwrap_or(1);
        self.layers.add_boxed(id.clone(), z, opacity.unwrap_or(spec.opacity), spec.layer);
        Ok(id)
    }

    /// A Rust closure drawing the design's Example 1 circle (benchmarks
    /// compare it with the same drawing in Python).
    fn add_rust_circle_layer(&self, layer_id: String, z_index: i32) {
        use streamkit_core::canvas::{Color, Paint};
        let paint = Paint::fill(Color::from_rgba8(0, 0, 255, 255));
        self.layers.add_layer(
            layer_id,
            z_index,
            streamkit_core::layer::FnLayer::new(move |canvas, ctx| {
                let x = 960.0 + 400.0 * (ctx.time * 2.0).cos();
                let y = 540.0 + 400.0 * (ctx.time * 2.0).sin();
                canvas.draw_circle(x as f32, y as f32, 50.0, &paint);
                Ok(())
            }),
        );
    }

    fn remove_layer(&self, layer_id: String) {
        self.layers.remove_layer(layer_id);
    }

    fn set_z_index(&self, layer_id: String, z_index: i32) {
        self.layers.set_z_index(layer_id, z_index);
    }

    fn set_opacity(&self, layer_id: String, opacity: f32) {
        self.layers.set_opacity(layer_id, opacity);
    }

    fn set_visible(&self, layer_id: String, visible: bool) {
        self.layers.set_visible(layer_id, visible);
    }

    /// Ids of the layers, bottom to top, as of the last composed frame.
    fn layer_ids(&self) -> Vec<String> {
        self.layers.layers().into_iter().map(|l| l.id).collect()
    }

    /// Starts the stream on the runtime; `callback(report_or_exception)` is
    /// called from a runtime thread when it ends. `event_loop` runs the
    /// Python coroutines of layers, sources and sinks.
    fn start(&self, event_loop: Py<PyAny>, callback: Py<PyAny>) -> PyResult<()> {
        let stream = self
            .stream
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this stream already ran; make a new Stream to run again"))?;
        *self.event_loop.lock().unwrap() = Some(event_loop);
        let finished = self.finished.clone();
        runtime().spawn(async move {
            // A panic must still settle the Python future, or run() would wait forever.
            let result = AssertUnwindSafe(stream.run()).catch_unwind().await;
            Python::with_gil(|py| {
                let outcome = match result {
                    Ok(Ok(report)) => report_dict(py, &report).map(|d| d.into_any()),
                    Ok(Err(e)) => Ok(to_py(e).into_value(py).into_bound(py).into_any()),
                    Err(_) => Ok(StreamError::new_err("the stream panicked; see stderr")
                        .into_value(py)
                        .into_bound(py)
                        .into_any()),
                };
                let outcome = outcome.unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any());
                if let Err(e) = callback.call1(py, (outcome,)) {
                    e.print(py);
                }
            });
            let (done, signal) = &*finished;
            *done.lock().unwrap() = true;
            signal.notify_all();
        });
        Ok(())
    }

    /// Blocks (without the GIL) until the runtime thread has left Python
    /// after its callback. `Stream.run()` calls it before returning: if the
    /// interpreter shut down while that thread still waited for the GIL,
    /// CPython would end the thread by unwinding through Rust (an abort).
    fn wait_finished(&self, py: Python<'_>) {
        let finished = self.finished.clone();
        py.allow_threads(move || {
            let (done, signal) = &*finished;
            let guard = done.lock().unwrap();
            let _ = signal.wait_timeout_while(guard, Duration::from_secs(10), |done| !*done);
        });
    }

    /// Asks the stream to stop after the frame in flight; sinks are finalised.
    fn stop(&self) {
        self.stop.stop();
    }

    /// Live statistics (fps, frames, per-stage mean ms, drops, layer errors).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.stats.snapshot())
    }

    #[getter]
    fn fps(&self) -> f64 {
        self.fps
    }

    #[getter]
    fn size(&self) -> Option<(u32, u32)> {
        self.width.zip(self.height)
    }
}

/// A source or sink argument: a URI to build, or an already wrapped Python object.
enum Part {
    Uri(String),
    Source(Box<dyn Source>),
    Sink(Box<dyn Sink>),
}

impl Part {
    fn source(py: Python<'_>, source: &Bound<'_, PyAny>, event_loop: &LoopSlot) -> PyResult<Part> {
        if let Ok(uri) = source.extract::<String>() {
            return Ok(Part::Uri(uri));
        }
        Ok(Part::Source(Box::new(PySource::new(py, source.clone().unbind(), event_loop.clone())?)))
    }

    fn sink(py: Python<'_>, sink: &Bound<'_, PyAny>, event_loop: &LoopSlot) -> PyResult<Part> {
        if let Ok(uri) = sink.extract::<String>() {
            return Ok(Part::Uri(uri));
        }
        Ok(Part::Sink(Box::new(PySink::new(py, sink.clone().unbind(), event_loop.clone())?)))
    }

    fn build_source(self) -> streamkit_core::Result<Box<dyn Source>> {
        match self {
            Part::Uri(uri) => registry().build_source(&uri),
            Part::Source(source) => Ok(source),
            Part::Sink(_) => unreachable!("sinks are built with build_sink"),
        }
    }

    fn build_sink(self) -> streamkit_core::Result<Box<dyn Sink>> {
        match self {
            Part::Uri(uri) => registry().build_sink(&uri),
            Part::Sink(sink) => Ok(sink),
            Part::Source(_) => unreachable!("sources are built with build_source"),
        }
    }
}

fn report_dict<'py>(py: Python<'py>, report: &RunReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("frames", report.frames_out)?;
    d.set_item("end", format!("{:?}", report.end))?;
    d.set_item("failures", report.failures.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    d.set_item("stats", stats_dict(py, &report.stats)?)?;
    Ok(d)
}

fn stats_dict<'py>(py: Python<'py>, s: &streamkit_core::stats::StatsSnapshot) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("frames_in", s.frames_in)?;
    d.set_item("frames_out", s.frames_out)?;
    d.set_item("elapsed", s.elapsed.as_secs_f64())?;
    d.set_item("fps", s.average_fps)?;
    d.set_item("dropped", s.dropped)?;
    let stages = PyDict::new(py);
    for stage in &s.stages {
        stages.set_item(&stage.name, stage.mean_ms)?;
    }
    d.set_item("stage_ms", stages)?;
    let errors = PyDict::new(py);
    for (layer, count) in &s.layer_errors {
        errors.set_item(layer, count)?;
    }
    d.set_item("layer_errors", errors)?;
    Ok(d)
}
