//! Frames to numpy and numpy to frames, without copies where layout allows.
//!
//! * A [`FrameView`] holds a clone of an engine frame (a reference count, not
//!   the pixels) and exports them through the buffer protocol, read-only:
//!   `numpy.asarray(view)` is an `(height, width, 4)` uint8 array over the
//!   very bytes the engine holds, kept alive by the array's base object.
//!   Read-only because other clones (sinks, queued frames) share the pixels.
//! * [`frame_from_array`] wraps a packed uint8 array's memory as a frame
//!   ([`ExternalMemory`]): the frame holds the buffer export, so the array
//!   lives as long as any clone of the frame.

use std::ffi::{c_int, c_void};
use std::ptr;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use streamkit_core::convert;
use streamkit_core::frame::{Buffer, ExternalMemory};
use streamkit_core::{Frame, PixelFormat};

use crate::errors::to_py;

/// Engine pixels as a read-only buffer (`numpy.asarray(view)` does not copy).
#[pyclass(frozen, module = "streamkit._native")]
pub struct FrameView {
    frame: Frame,
    ndim: c_int,
    shape: [isize; 3],
    strides: [isize; 3],
}

impl FrameView {
    /// A view of `frame` as `(h, w, 4)` RGBA: what the compositor makes
    /// (always RGBA) is shared; other formats from a source that reaches a
    /// sink untouched (I420 from a file, gray) are converted first, the only copy.
    pub fn new(frame: &Frame) -> PyResult<FrameView> {
        let frame = match frame.format() {
            PixelFormat::Rgba8Premul => frame.clone(),
            _ => convert::convert(frame, PixelFormat::Rgba8Premul).map_err(to_py)?,
        };
        let (w, h) = (frame.width() as isize, frame.height() as isize);
        let stride = frame.layout().planes()[0].stride as isize;
        Ok(FrameView { frame, ndim: 3, shape: [h, w, 4], strides: [stride, 4, 1] })
    }

    /// A numpy array over the frame's pixels.
    pub fn to_numpy<'py>(py: Python<'py>, frame: &Frame) -> PyResult<Bound<'py, PyAny>> {
        let view = Bound::new(py, FrameView::new(frame)?)?;
        py.import("numpy")?.call_method1("asarray", (view,))
    }
}

#[pymethods]
impl FrameView {
    /// Address of the first pixel (tests compare it with numpy's to prove no copy).
    #[getter]
    fn address(&self) -> usize {
        self.frame.data().as_ptr() as usize
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.frame.format().name()
    }

    #[getter]
    fn pts_seconds(&self) -> f64 {
        self.frame.timing.pts_ns() as f64 / 1e9
    }

    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut pyo3::ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no Py_buffer to fill"));
        }
        if flags & pyo3::ffi::PyBUF_WRITABLE == pyo3::ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(
                "streamkit frames are read-only (other outputs share the pixels); copy with numpy.array(frame) to modify",
            ));
        }
        let this = slf.get();
        let data = this.frame.data();
        // SAFETY: `view` is a valid Py_buffer the caller owns; the pointers we
        // store (pixels, shape, strides) live in `slf`, which `obj` keeps alive.
        unsafe {
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).buf = data.as_ptr() as *mut c_void;
            (*view).len = data.len() as isize;
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format =
                if flags & pyo3::ffi::PyBUF_FORMAT != 0 { c"B".as_ptr() as *mut _ } else { ptr::null_mut() };
            (*view).ndim = this.ndim;
            (*view).shape = this.shape.as_ptr() as *mut isize;
            (*view).strides = this.strides.as_ptr() as *mut isize;
            (*view).suboffsets = ptr::null_mut();
            (*view).internal = ptr::null_mut();
        }
        Ok(())
    }
}

/// A numpy array's memory lent to the engine. The export keeps the array
/// alive and its memory in place until the last frame clone drops.
struct ArrayMemory {
    _export: PyBuffer<u8>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the exported memory does not move while the export is held, and
// the engine only reads it; PyBuffer releases itself with the GIL on drop.
unsafe impl Send for ArrayMemory {}
unsafe impl Sync for ArrayMemory {}

impl ExternalMemory for ArrayMemory {
    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe the exported, contiguous buffer held above.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Wraps a C-contiguous uint8 array — `(h, w, 4)` RGBA/BGRA or `(h, w)` gray —
/// as a frame without copying. The Python side normalises other layouts.
pub fn frame_from_array(array: &Bound<'_, PyAny>, format: &str) -> PyResult<Frame> {
    let export = PyBuffer::<u8>::get(array)?;
    if !export.is_c_contiguous() {
        return Err(PyValueError::new_err("frame arrays must be C-contiguous (numpy.ascontiguousarray)"));
    }
    let shape = export.shape().to_vec();
    let format = PixelFormat::from_name(format).map_err(to_py)?;
    let (height, width) = match (format, shape.as_slice()) {
        (PixelFormat::Gray8, [h, w]) => (*h, *w),
        (PixelFormat::Rgba8Premul | PixelFormat::Bgra8, [h, w, 4]) => (*h, *w),
        _ => {
            return Err(PyValueError::new_err(format!(
                "a {format} frame must be a uint8 array of shape (height, width{}), got {shape:?}",
                if format == PixelFormat::Gray8 { "" } else { ", 4" }
            )))
        }
    };
    let memory = ArrayMemory { ptr: export.buf_ptr() as *const u8, len: export.len_bytes(), _export: export };
    let layout = format.packed_layout(width as u32, height as u32);
    Frame::from_buffer(format, width as u32, height as u32, layout, Buffer::from_external(memory)).map_err(to_py)
}
