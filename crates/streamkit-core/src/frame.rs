//! Video frames: pixel format, plane layout, a shared pixel buffer and timing.
//!
//! A [`Frame`] is cheap to clone: the pixels live in a reference-counted
//! [`Buffer`], so a clone shares them. Writing through [`Frame::data_mut`]
//! copies the pixels first only when another clone still holds them
//! (copy on write), so a frame that flows through a pipeline with a single
//! owner is never copied.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, Result};
use crate::time::Timing;

/// Largest width or height a frame may have. Guards every allocation that is
/// sized from untrusted input (a file header, a URI, a network peer).
pub const MAX_DIMENSION: u32 = 16384;

/// Pixel layouts streamkit understands.
///
/// Compositing happens in [`PixelFormat::Rgba8Premul`]; codecs use
/// [`PixelFormat::I420`] / [`PixelFormat::Nv12`]. Conversions between them
/// live in [`crate::convert`], and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 8-bit R, G, B, A per pixel, colour premultiplied by alpha.
    Rgba8Premul,
    /// 8-bit B, G, R, A per pixel, straight (not premultiplied) alpha.
    Bgra8,
    /// Planar Y, then U and V at quarter resolution (4:2:0), BT.709 limited range.
    I420,
    /// Y plane, then one plane of interleaved U/V at quarter resolution.
    Nv12,
    /// One 8-bit luma plane.
    Gray8,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 5] =
        [PixelFormat::Rgba8Premul, PixelFormat::Bgra8, PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Gray8];

    /// The short name used in URIs, files and the wire format.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgba8Premul => "rgba",
            PixelFormat::Bgra8 => "bgra",
            PixelFormat::I420 => "i420",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Gray8 => "gray8",
        }
    }

    pub fn from_name(name: &str) -> Result<PixelFormat> {
        let lower = name.to_ascii_lowercase();
        let found = match lower.as_str() {
            "yuv420p" => Some(PixelFormat::I420),
            "gray" => Some(PixelFormat::Gray8),
            _ => PixelFormat::ALL.into_iter().find(|f| f.name() == lower),
        };
        found.ok_or_else(|| {
            Error::invalid(format!(
                "unknown pixel format '{name}'; known: {}",
                PixelFormat::ALL.map(|f| f.name()).join(", ")
            ))
        })
    }

    /// Number of planes in memory.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::Rgba8Premul | PixelFormat::Bgra8 | PixelFormat::Gray8 => 1,
            PixelFormat::Nv12 => 2,
            PixelFormat::I420 => 3,
        }
    }

    /// Whether widths and heights must be even (chroma subsampling).
    pub fn needs_even_size(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }

    /// Tightly packed layout of a `width` x `height` image.
    pub fn packed_layout(self, width: u32, height: u32) -> Layout {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut planes = [Plane::default(); 3];
        match self {
            PixelFormat::Rgba8Premul | PixelFormat::Bgra8 => {
                planes[0] = Plane { offset: 0, stride: w * 4, rows: h };
            }
            PixelFormat::Gray8 => planes[0] = Plane { offset: 0, stride: w, rows: h },
            PixelFormat::I420 => {
                planes[0] = Plane { offset: 0, stride: w, rows: h };
                planes[1] = Plane { offset: w * h, stride: cw, rows: ch };
                planes[2] = Plane { offset: w * h + cw * ch, stride: cw, rows: ch };
            }
            PixelFormat::Nv12 => {
                planes[0] = Plane { offset: 0, stride: w, rows: h };
                planes[1] = Plane { offset: w * h, stride: cw * 2, rows: ch };
            }
        }
        Layout { planes, count: self.plane_count() }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one plane lives inside a frame's buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plane {
    pub offset: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    pub rows: usize,
}

impl Plane {
    pub fn len(&self) -> usize {
        self.stride * self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The planes of a frame (up to three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    planes: [Plane; 3],
    count: usize,
}

impl Layout {
    pub fn planes(&self) -> &[Plane] {
        &self.planes[..self.count]
    }

    /// Bytes needed to hold every plane.
    pub fn byte_len(&self) -> usize {
        self.planes().iter().map(|p| p.offset + p.len()).max().unwrap_or(0)
    }
}

/// Memory that someone else owns (a numpy array, a mapped file) lent to a frame
/// without a copy.
pub trait ExternalMemory: Send + Sync + 'static {
    fn bytes(&self) -> &[u8];
}

enum Storage {
    Owned(Vec<u8>),
    /// Memory that goes back to its [`BufferPool`] when the last frame using it drops.
    Pooled(Vec<u8>, Weak<Mutex<Vec<Vec<u8>>>>),
    External(Box<dyn ExternalMemory>),
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Storage::Pooled(data, pool) = self {
            if let Some(pool) = pool.upgrade() {
                pool.lock().unwrap().push(std::mem::take(data));
            }
        }
    }
}

/// Recycles frame-sized buffers so that a steady stream allocates nothing per
/// frame: a buffer returns here when the last frame holding it is dropped.
/// At most `max_free` idle buffers are kept; more are freed.
pub struct BufferPool {
    len: usize,
    max_free: usize,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BufferPool {
    pub fn new(len: usize, max_free: usize) -> BufferPool {
        BufferPool { len, max_free, free: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Bytes per buffer.
    pub fn buffer_len(&self) -> usize {
        self.len
    }

    /// A unique buffer of `buffer_len()` bytes. Its contents are whatever the
    /// last user left: overwrite them.
    pub fn acquire(&self) -> Buffer {
        let data = {
            let mut free = self.free.lock().unwrap();
            free.truncate(self.max_free);
            free.pop()
        };
        let data = data.unwrap_or_else(|| vec![0; self.len]);
        Buffer(Arc::new(Storage::Pooled(data, Arc::downgrade(&self.free))))
    }

    /// Idle buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

/// Reference-counted pixel memory. Cloning shares; [`Buffer::make_mut`]
/// copies only while shared.
#[derive(Clone)]
pub struct Buffer(Arc<Storage>);

impl Buffer {
    pub fn from_vec(data: Vec<u8>) -> Buffer {
        Buffer(Arc::new(Storage::Owned(data)))
    }

    pub fn zeroed(len: usize) -> Buffer {
        Buffer::from_vec(vec![0; len])
    }

    pub fn from_external(memory: impl ExternalMemory) -> Buffer {
        Buffer(Arc::new(Storage::External(Box::new(memory))))
    }

    pub fn as_slice(&self) -> &[u8] {
        match &*self.0 {
            Storage::Owned(v) | Storage::Pooled(v, _) => v,
            Storage::External(m) => m.bytes(),
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no other clone shares this memory.
    pub fn is_unique(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }

    /// True when both handles point at the very same memory.
    pub fn ptr_eq(a: &Buffer, b: &Buffer) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// Mutable bytes, copying first if the memory is shared or borrowed.
    pub fn make_mut(&mut self) -> &mut [u8] {
        let owned_and_unique = matches!(Arc::get_mut(&mut self.0), Some(Storage::Owned(_) | Storage::Pooled(..)));
        if !owned_and_unique {
            let copy = self.as_slice().to_vec();
            self.0 = Arc::new(Storage::Owned(copy));
        }
        match Arc::get_mut(&mut self.0) {
            Some(Storage::Owned(v) | Storage::Pooled(v, _)) => v,
            _ => unreachable!("buffer was just made unique and owned"),
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes @ {:p})", self.len(), self.as_slice().as_ptr())
    }
}

/// A small string map carried with each frame (`source_id`, anything a stage
/// adds). Shared between clones; copied only when a stage writes to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata(Arc<BTreeMap<String, String>>);

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        Arc::make_mut(&mut self.0).insert(key.into(), value.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A video frame with its timing: the design's `TimestampedFrame`.
#[derive(Clone, Debug)]
pub struct Frame {
    format: PixelFormat,
    width: u32,
    height: u32,
    layout: Layout,
    buffer: Buffer,
    pub timing: Timing,
    pub metadata: Metadata,
}

/// The design calls a frame with its timing a `TimestampedFrame`; every
/// streamkit frame carries its timing.
pub type TimestampedFrame = Frame;

impl Frame {
    /// A zero-filled frame (transparent black for RGBA).
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Result<Frame> {
        check_size(format, width, height)?;
        let layout = format.packed_layout(width, height);
        Ok(Frame::from_parts(format, width, height, layout, Buffer::zeroed(layout.byte_len())))
    }

    /// A packed frame whose memory comes from `pool` (contents unspecified:
    /// overwrite every pixel).
    pub fn from_pool(pool: &BufferPool, format: PixelFormat, width: u32, height: u32) -> Result<Frame> {
        check_size(format, width, height)?;
        let layout = format.packed_layout(width, height);
        if pool.buffer_len() < layout.byte_len() {
            return Err(Error::invalid(format!(
                "pool buffers hold {} bytes, {format} {width}x{height} needs {}",
                pool.buffer_len(),
                layout.byte_len()
            )));
        }
        Ok(Frame::from_parts(format, width, height, layout, pool.acquire()))
    }

    /// Wraps tightly packed pixels without copying them.
    pub fn from_vec(format: PixelFormat, width: u32, height: u32, data: Vec<u8>) -> Result<Frame> {
        Frame::from_buffer(format, width, height, format.packed_layout(width, height), Buffer::from_vec(data))
    }

    /// Wraps an existing buffer with an explicit plane layout (custom strides).
    pub fn from_buffer(format: PixelFormat, width: u32, height: u32, layout: Layout, buffer: Buffer) -> Result<Frame> {
        check_size(format, width, height)?;
        let min = format.packed_layout(width, height);
        for (plane, packed) in layout.planes().iter().zip(min.planes()) {
            if plane.stride < packed.stride || plane.rows < packed.rows {
                return Err(Error::invalid(format!(
                    "{format} {width}x{height}: plane stride {} / rows {} smaller than the minimum {} / {}",
                    plane.stride, plane.rows, packed.stride, packed.rows
                )));
            }
        }
        if layout.planes().len() != format.plane_count() {
            return Err(Error::invalid(format!("{format} needs {} planes", format.plane_count())));
        }
        if buffer.len() < layout.byte_len() {
            return Err(Error::invalid(format!(
                "{format} {width}x{height} needs {} bytes, the buffer has {}",
                layout.byte_len(),
                buffer.len()
            )));
        }
        Ok(Frame::from_parts(format, width, height, layout, buffer))
    }

    fn from_parts(format: PixelFormat, width: u32, height: u32, layout: Layout, buffer: Buffer) -> Frame {
        Frame { format, width, height, layout, buffer, timing: Timing::default(), metadata: Metadata::default() }
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// The whole buffer, every plane.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_slice()[..self.layout.byte_len()]
    }

    /// Mutable access to every plane; copies first if the pixels are shared.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.layout.byte_len();
        &mut self.buffer.make_mut()[..len]
    }

    /// One plane's bytes and its stride.
    pub fn plane(&self, index: usize) -> (&[u8], usize) {
        let p = self.layout.planes()[index];
        (&self.buffer.as_slice()[p.offset..p.offset + p.len()], p.stride)
    }

    /// Every plane mutably at once (copy on write), with their strides.
    pub fn planes_mut(&mut self) -> Vec<(&mut [u8], usize)> {
        let layout = self.layout;
        let mut rest = self.buffer.make_mut();
        let mut consumed = 0;
        let mut out = Vec::with_capacity(3);
        for p in layout.planes() {
            let (_, tail) = rest.split_at_mut(p.offset - consumed);
            let (plane, tail) = tail.split_at_mut(p.len());
            out.push((plane, p.stride));
            rest = tail;
            consumed = p.offset + p.len();
        }
        out
    }

    /// Tightly packed pixels, copying only when the layout has padding.
    pub fn into_packed(self) -> Frame {
        let packed = self.format.packed_layout(self.width, self.height);
        if packed == self.layout {
            return self;
        }
        let mut out = Frame::new(self.format, self.width, self.height).expect("size already validated");
        out.timing = self.timing.clone();
        out.metadata = self.metadata.clone();
        let mut dst_planes = out.planes_mut();
        for (i, (dst, dst_stride)) in dst_planes.iter_mut().enumerate() {
            let (src, src_stride) = self.plane(i);
            for (d, s) in dst.chunks_mut(*dst_stride).zip(src.chunks(src_stride)) {
                d.copy_from_slice(&s[..d.len()]);
            }
        }
        drop(dst_planes);
        out
    }

    /// The same pixels with new timing, sharing the buffer.
    pub fn with_timing(mut self, timing: Timing) -> Frame {
        self.timing = timing;
        self
    }
}

/// Rejects sizes that are zero, odd where chroma needs even, or larger than
/// [`MAX_DIMENSION`].
pub fn check_size(format: PixelFormat, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Error::invalid(format!(
            "frame size {width}x{height} is out of range (1..={MAX_DIMENSION} on each side)"
        )));
    }
    if format.needs_even_size() && (!width.is_multiple_of(2) || !height.is_multiple_of(2)) {
        return Err(Error::invalid(format!("{format} needs an even width and height, got {width}x{height}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_shares_pixels() {
        let a = Frame::new(PixelFormat::Rgba8Premul, 64, 32).unwrap();
        let b = a.clone();
        assert!(Buffer::ptr_eq(a.buffer(), b.buffer()));
        assert_eq!(a.data().as_ptr(), b.data().as_ptr());
    }

    #[test]
    fn write_to_shared_frame_copies_once() {
        let a = Frame::new(PixelFormat::Gray8, 8, 8).unwrap();
        let mut b = a.clone();
        b.data_mut()[0] = 7;
        assert_ne!(a.data().as_ptr(), b.data().as_ptr());
        assert_eq!(a.data()[0], 0);
        let before = b.data().as_ptr();
        b.data_mut()[1] = 9; // unique now: no second copy
        assert_eq!(before, b.data().as_ptr());
    }

    #[test]
    fn unique_frame_is_written_in_place() {
        let mut a = Frame::new(PixelFormat::Gray8, 8, 8).unwrap();
        let before = a.data().as_ptr();
        a.data_mut()[3] = 1;
        assert_eq!(before, a.data().as_ptr());
    }

    #[test]
    fn pool_recycles_buffers() {
        let pool = BufferPool::new(64, 2);
        let a = pool.acquire();
        let ptr = a.as_slice().as_ptr();
        let shared = a.clone();
        drop(a);
        assert_eq!(pool.idle(), 0, "still held by a clone");
        drop(shared);
        assert_eq!(pool.idle(), 1);
        let mut b = pool.acquire();
        assert_eq!(b.as_slice().as_ptr(), ptr, "the same memory comes back");
        assert_eq!(b.make_mut().as_ptr(), ptr, "a unique pooled buffer is written in place");
        let held: Vec<_> = (0..5).map(|_| pool.acquire()).collect();
        drop(held);
        drop(b);
        let _ = pool.acquire();
        assert!(pool.idle() <= 2, "idle buffers are bounded");
    }

    #[test]
    fn i420_layout() {
        let l = PixelFormat::I420.packed_layout(4, 2);
        assert_eq!(l.byte_len(), 8 + 2 + 2);
        assert_eq!(l.planes()[2].offset, 10);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(Frame::new(PixelFormat::I420, 3, 2).unwrap_err().to_string().contains("even"));
        assert!(Frame::new(PixelFormat::Rgba8Premul, 0, 2).is_err());
        assert!(Frame::new(PixelFormat::Rgba8Premul, MAX_DIMENSION + 1, 2).is_err());
        assert!(Frame::from_vec(PixelFormat::Gray8, 4, 4, vec![0; 15]).is_err());
    }

    #[test]
    fn metadata_is_copy_on_write() {
        let mut a = Frame::new(PixelFormat::Gray8, 2, 2).unwrap();
        a.metadata.insert("source_id", "cam0");
        let mut b = a.clone();
        b.metadata.insert("source_id", "cam1");
        assert_eq!(a.metadata.get("source_id"), Some("cam0"));
        assert_eq!(b.metadata.get("source_id"), Some("cam1"));
    }

    #[test]
    fn pixel_format_names_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_name(f.name()).unwrap(), f);
        }
        let err = PixelFormat::from_name("rgb48").unwrap_err().to_string();
        assert!(err.contains("rgb48") && err.contains("nv12"), "{err}");
    }

    #[test]
    fn external_memory_is_borrowed_then_copied_on_write() {
        struct Static(Vec<u8>);
        impl ExternalMemory for Static {
            fn bytes(&self) -> &[u8] {
                &self.0
            }
        }
        let buf = Buffer::from_external(Static(vec![5; 16]));
        let ptr = buf.as_slice().as_ptr();
        let mut f = Frame::from_buffer(PixelFormat::Gray8, 4, 4, PixelFormat::Gray8.packed_layout(4, 4), buf).unwrap();
        assert_eq!(f.data().as_ptr(), ptr);
        f.data_mut()[0] = 1;
        assert_ne!(f.data().as_ptr(), ptr);
    }
}
