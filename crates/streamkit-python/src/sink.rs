//! A Python `StreamSink` as an engine [`Sink`]: `write_frame(frame,
//! timestamp)` gets a read-only numpy view of the engine's pixels (no copy)
//! and the frame's media time in seconds.

use async_trait::async_trait;
use pyo3::prelude::*;
use streamkit_core::{Error, Frame, Result, Sink};

use crate::aio::{self, LoopSlot};
use crate::frames::FrameView;
use crate::layer::describe;

pub struct PySink {
    object: Py<PyAny>,
    name: String,
    event_loop: LoopSlot,
}

impl PySink {
    pub fn new(py: Python<'_>, object: Py<PyAny>, event_loop: LoopSlot) -> PyResult<PySink> {
        let name = format!("python:{}", object.bind(py).get_type().name()?);
        Ok(PySink { object, name, event_loop })
    }
}

#[async_trait]
impl Sink for PySink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        let object = &self.object;
        let timestamp = frame.timing.pts_ns() as f64 / 1e9;
        aio::call(&self.event_loop, |py| {
            let array = FrameView::to_numpy(py, frame)?;
            object.call_method1(py, "write_frame", (array, timestamp))
        })
        .await
        .map_err(|e| Error::invalid(describe(e)))?;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let object = &self.object;
        let has_close = Python::with_gil(|py| object.bind(py).hasattr("close").unwrap_or(false));
        if has_close {
            aio::call(&self.event_loop, |py| object.call_method0(py, "close"))
                .await
                .map_err(|e| Error::invalid(describe(e)))?;
        }
        Ok(())
    }
}
