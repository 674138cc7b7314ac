//! Drawing surface for layers: tiny-skia over a frame's premultiplied RGBA pixels.
//! (Skeleton: being filled in.)

use tiny_skia::{PixmapMut, Transform};

use crate::error::{Error, Result};
use crate::frame::{Frame, PixelFormat};

pub use tiny_skia::Color;

/// Paint stub; replaced by the full implementation.
#[derive(Clone, Debug)]
pub struct Paint {
    pub color: Color,
}

impl Paint {
    pub fn fill(color: Color) -> Paint {
        Paint { color }
    }
}

/// A drawing surface over premultiplied RGBA pixels.
pub struct Canvas<'a> {
    pixmap: PixmapMut<'a>,
    transform: Transform,
    stack: Vec<Transform>,
}

impl<'a> Canvas<'a> {
    /// A canvas over a packed [`PixelFormat::Rgba8Premul`] frame (copy on write).
    pub fn new(frame: &'a mut Frame) -> Result<Canvas<'a>> {
        if frame.format() != PixelFormat::Rgba8Premul {
            return Err(Error::invalid(format!("a canvas draws on rgba frames, not {}", frame.format())));
        }
        let (w, h) = frame.size();
        Canvas::from_rgba(frame.data_mut(), w, h)
    }

    /// A canvas over `width * height * 4` bytes of premultiplied RGBA.
    pub fn from_rgba(data: &'a mut [u8], width: u32, height: u32) -> Result<Canvas<'a>> {
        let pixmap = PixmapMut::from_bytes(data, width, height)
            .ok_or_else(|| Error::invalid(format!("canvas needs {width}x{height}x4 bytes")))?;
        Ok(Canvas { pixmap, transform: Transform::identity(), stack: Vec::new() })
    }

    pub fn width(&self) -> u32 {
        self.pixmap.width()
    }

    pub fn height(&self) -> u32 {
        self.pixmap.height()
    }

    /// The raw premultiplied RGBA bytes, row after row (stride = width * 4).
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        self.pixmap.data_mut()
    }

    /// tiny-skia's own surface, for anything this API does not wrap.
    pub fn pixmap(&mut self) -> &mut PixmapMut<'a> {
        &mut self.pixmap
    }

    pub fn transform(&self) -> Transform {
        self.transform
    }

    pub fn save(&mut self) {
        self.stack.push(self.transform);
    }

    pub fn restore(&mut self) {
        if let Some(t) = self.stack.pop() {
            self.transform = t;
        }
    }

    pub fn draw_circle(&mut self, _x: f32, _y: f32, _r: f32, _paint: &Paint) {}
}
