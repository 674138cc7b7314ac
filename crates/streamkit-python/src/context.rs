//! The design's `ctx`: `ctx.time`, `ctx.fps`, `ctx.frame`, `ctx.width`,
//! `ctx.height`, `ctx.frame_number`, also as `ctx['time']`.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use streamkit_core::{Frame, FrameContext};

use crate::frames::FrameView;

const KEYS: [&str; 6] = ["time", "fps", "frame", "frame_number", "width", "height"];

/// What a layer knows about the frame being composed.
#[pyclass(module = "streamkit._native")]
pub struct Context {
    /// Seconds since the stream started (media time of this frame).
    #[pyo3(get)]
    time: f64,
    #[pyo3(get)]
    fps: f64,
    #[pyo3(get)]
    frame_number: u64,
    #[pyo3(get)]
    width: u32,
    #[pyo3(get)]
    height: u32,
    /// The source frame under the layers (shared, never copied).
    base: Option<Frame>,
    /// Its numpy view, made on first access.
    array: Option<Py<PyAny>>,
}

impl Context {
    pub fn new(ctx: &FrameContext<'_>) -> Context {
        Context {
            time: ctx.time,
            fps: ctx.fps,
            frame_number: ctx.frame_number,
            width: ctx.width,
            height: ctx.height,
            base: ctx.base_frame.cloned(),
            array: None,
        }
    }
}

#[pymethods]
impl Context {
    /// The source frame as a read-only `(height, width, 4)` uint8 numpy array
    /// over the engine's pixels (no copy), or None without a source.
    #[getter]
    fn frame(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if let Some(array) = &self.array {
            return Ok(Some(array.clone_ref(py)));
        }
        let Some(base) = &self.base else { return Ok(None) };
        let array = FrameView::to_numpy(py, base)?.unbind();
        self.array = Some(array.clone_ref(py));
        Ok(Some(array))
    }

    fn __getitem__(&mut self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        Ok(match key {
            "time" => self.time.into_pyobject(py)?.into_any().unbind(),
            "fps" => self.fps.into_pyobject(py)?.into_any().unbind(),
            "frame_number" => self.frame_number.into_pyobject(py)?.into_any().unbind(),
            "width" => self.width.into_pyobject(py)?.into_any().unbind(),
            "height" => self.height.into_pyobject(py)?.into_any().unbind(),
            "frame" => self.frame(py)?.unwrap_or_else(|| py.None()),
            _ => return Err(PyKeyError::new_err(format!("ctx has no '{key}'; it has {}", KEYS.join(", ")))),
        })
    }

    /// `'frame' in ctx` is true only when there is a source frame (as in the design).
    fn __contains__(&self, key: &str) -> bool {
        if key == "frame" {
            self.base.is_some()
        } else {
            KEYS.contains(&key)
        }
    }

    fn get(&mut self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        if self.__contains__(key) {
            self.__getitem__(py, key)
        } else {
            Ok(default.unwrap_or_else(|| py.None()))
        }
    }

    fn keys(&self) -> Vec<&'static str> {
        KEYS.to_vec()
    }

    fn __repr__(&self) -> String {
        format!(
            "Context(time={:.3}, frame_number={}, fps={}, width={}, height={}, frame={})",
            self.time,
            self.frame_number,
            self.fps,
            self.width,
            self.height,
            if self.base.is_some() { "<array>" } else { "None" }
        )
    }
}
