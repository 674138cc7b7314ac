//! The [`Sink`] trait: anything that consumes frames.

use async_trait::async_trait;

use crate::error::Result;
use crate::frame::{Frame, PixelFormat};
use crate::queue::QueuePolicy;
use crate::time::Fps;

/// What a sink learns about the stream before its first frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub fps: Fps,
    /// Output size, when known before the first frame.
    pub size: Option<(u32, u32)>,
}

/// A destination for frames: a file, a player, a network peer.
#[async_trait]
pub trait Sink: Send {
    /// A short human name, e.g. `y4m:out.y4m`.
    fn describe(&self) -> String;

    /// What the runner does when this sink falls behind. Files want every
    /// frame ([`QueuePolicy::Block`]); live outputs prefer fresh frames.
    fn queue_policy(&self) -> QueuePolicy {
        QueuePolicy::Block
    }

    /// The pixel format this sink consumes, when it would convert what it
    /// gets (an H.264 encoder wants I420). The stream runner then converts
    /// each composed frame once for every sink that names the same format,
    /// on its own task, so the conversion of the next frame overlaps this
    /// sink's work on the current one. Sinks still accept any format.
    fn input_format(&self) -> Option<PixelFormat> {
        None
    }

    /// Called once before the first frame: sinks whose format records the
    /// frame rate (Y4M, MP4, HLS) take it from here.
    fn set_stream_info(&mut self, _info: &StreamInfo) {}

    /// Writes one frame. The frame is shared: keep a clone rather than copying.
    async fn write(&mut self, frame: &Frame) -> Result<()>;

    /// Finalises the output (trailers, playlists, flushes). Called once.
    async fn close(&mut self) -> Result<()>;
}
