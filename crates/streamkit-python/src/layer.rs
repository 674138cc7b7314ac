//! Python code as an engine [`Layer`]: a `DrawingLayer`'s `draw(canvas, ctx)`,
//! a `Layer` subclass's `render`, an `MLLayer`.
//!
//! A plain function is called on the compositor's thread with the GIL held
//! for the call only; a coroutine (`async def render`) runs on the asyncio
//! loop of `Stream.run()` while the compositor waits without the GIL. The
//! canvas is lent for the call and revoked after it (see [`Lent`]).
//! A Python exception is described with the user's file and line, counted,
//! and skips the layer for that frame; the stream goes on.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pyo3::prelude::*;
use streamkit_core::canvas::Canvas as EngineCanvas;
use streamkit_core::{Error, FrameContext, Layer};

use crate::aio::{self, LoopSlot};
use crate::canvas::{Canvas, Lent};
use crate::context::Context;

/// What Python sees of a layer inside a stream: its target, its errors.
#[derive(Default)]
struct Status {
    renders: u64,
    errors: u64,
    last_error: Option<String>,
}

/// Shared between the engine layer and the Python object that made it.
#[pyclass(module = "streamkit._native", frozen)]
pub struct LayerHandle {
    target: Arc<Mutex<Py<PyAny>>>,
    status: Arc<Mutex<Status>>,
}

#[pymethods]
impl LayerHandle {
    /// Replaces the callable `(canvas, ctx)` from the next frame on.
    fn set_target(&self, target: Py<PyAny>) {
        *self.target.lock().unwrap() = target;
    }

    /// Frames this layer rendered without error.
    #[getter]
    fn renders(&self) -> u64 {
        self.status.lock().unwrap().renders
    }

    /// Frames on which it raised (and was skipped).
    #[getter]
    fn error_count(&self) -> u64 {
        self.status.lock().unwrap().errors
    }

    /// The last error, with the user's file and line.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.status.lock().unwrap().last_error.clone()
    }
}

/// The engine side of a Python layer.
pub struct PyLayer {
    target: Arc<Mutex<Py<PyAny>>>,
    status: Arc<Mutex<Status>>,
    event_loop: LoopSlot,
}

impl PyLayer {
    pub fn new(target: Py<PyAny>, event_loop: LoopSlot) -> (PyLayer, LayerHandle) {
        let target = Arc::new(Mutex::new(target));
        let status = Arc::new(Mutex::new(Status::default()));
        let handle = LayerHandle { target: target.clone(), status: status.clone() };
        (PyLayer { target, status, event_loop }, handle)
    }
}

#[async_trait]
impl Layer for PyLayer {
    async fn render(&mut self, canvas: &mut EngineCanvas<'_>, ctx: &FrameContext<'_>) -> streamkit_core::Result<()> {
        let (width, height) = (canvas.width(), canvas.height());
        let lent = Lent::new(canvas);
        let context = Context::new(ctx);
        let target = &self.target;
        let result = aio::call(&self.event_loop, |py| {
            let canvas = Py::new(py, Canvas::new(&lent, width, height))?;
            let context = Py::new(py, context)?;
            let target = target.lock().unwrap().clone_ref(py);
            target.call1(py, (canvas, context))
        })
        .await;
        drop(lent);
        let mut status = self.status.lock().unwrap();
        match result {
            Ok(_) => {
                status.renders += 1;
                Ok(())
            }
            Err(e) => {
                let message = describe(e);
                status.errors += 1;
                status.last_error = Some(message.clone());
                Err(Error::invalid(message))
            }
        }
    }
}

/// "<draw_code:id> line 7, in draw: NameError: …", from `streamkit._errors`.
pub fn describe(error: PyErr) -> String {
    Python::with_gil(|py| {
        let described = py
            .import("streamkit._errors")
            .and_then(|m| m.call_method1("describe", (error.clone_ref(py).into_value(py),)))
            .and_then(|s| s.extract::<String>());
        described.unwrap_or_else(|_| error.to_string())
    })
}
