//! A Python `StreamSource` as an engine [`Source`]: `next_frame()` (async or
//! not) returns a numpy array, a `TimestampedFrame`, or None at the end.
//! `streamkit._frames.normalise` turns the result into a packed array and its
//! timing; the array's memory becomes the frame's (no copy).

use async_trait::async_trait;
use pyo3::prelude::*;
use streamkit_core::time::{monotonic_ns, TimeBase};
use streamkit_core::{Error, Fps, Frame, Result, Source, SourceInfo, Timing};

use crate::aio::{self, LoopSlot};
use crate::frames::frame_from_array;
use crate::layer::describe;

/// What `streamkit._frames.normalise` returns: the packed array, its format,
/// pts (ns), capture time (ns), PTP time (ns) and frame number.
type Normalised<'py> = (Bound<'py, PyAny>, String, Option<i64>, Option<u64>, Option<u64>, Option<u64>);

pub struct PySource {
    object: Py<PyAny>,
    info: SourceInfo,
    fps: Fps,
    frames: u64,
    event_loop: LoopSlot,
}

impl PySource {
    /// `object` is the user's source; size, fps and liveness come from its
    /// optional `width`, `height`, `fps` and `live` attributes.
    pub fn new(py: Python<'_>, object: Py<PyAny>, event_loop: LoopSlot) -> PyResult<PySource> {
        let bound = object.bind(py);
        let attr = |name: &str| bound.getattr(name).ok().filter(|v| !v.is_none());
        let width: Option<u32> = attr("width").map(|v| v.extract()).transpose()?;
        let height: Option<u32> = attr("height").map(|v| v.extract()).transpose()?;
        let fps: Option<f64> = attr("fps").map(|v| v.extract()).transpose()?;
        let live: bool = attr("live").map(|v| v.is_truthy()).transpose()?.unwrap_or(false);
        let name = bound.get_type().name()?.to_string();
        let fps = fps.and_then(|f| Fps::parse(&f.to_string()));
        let mut info = SourceInfo::new(format!("python:{name}"));
        if let (Some(w), Some(h)) = (width, height) {
            info = info.sized(w, h);
        }
        if let Some(fps) = fps {
            info = info.with_fps(fps);
        }
        info.live = live;
        Ok(PySource { object, info, fps: fps.unwrap_or(Fps::new(30, 1)), frames: 0, event_loop })
    }

    fn convert(&self, py: Python<'_>, value: Py<PyAny>) -> PyResult<Option<Frame>> {
        if value.is_none(py) {
            return Ok(None);
        }
        let normalised = py.import("streamkit._frames")?.call_method1("normalise", (value,))?;
        let (array, format, pts, capture_ns, ptp_ns, number): Normalised<'_> = normalised.extract()?;
        let mut frame = frame_from_array(&array, &format)?;
        let number = number.unwrap_or(self.frames);
        let mut timing = Timing::for_frame(number, self.fps);
        if let Some(pts_ns) = pts {
            timing.pts = pts_ns;
            timing.time_base = TimeBase::NANOS;
        }
        timing.capture_time_ns = capture_ns.unwrap_or_else(monotonic_ns);
        timing.ptp_time_ns = ptp_ns;
        frame.timing = timing;
        Ok(Some(frame))
    }
}

#[async_trait]
impl Source for PySource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        let object = &self.object;
        let value = aio::call(&self.event_loop, |py| object.call_method0(py, "next_frame"))
            .await
            .map_err(|e| Error::invalid(describe(e)))?;
        let frame = Python::with_gil(|py| self.convert(py, value)).map_err(|e| Error::invalid(describe(e)))?;
        if frame.is_some() {
            self.frames += 1;
        }
        Ok(frame)
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
