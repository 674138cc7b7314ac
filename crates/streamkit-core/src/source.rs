//! The [`Source`] trait: anything that yields frames.

use async_trait::async_trait;

use crate::error::Result;
use crate::frame::Frame;
use crate::time::Fps;

/// What a source knows about its output before the first frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceInfo {
    /// A short human name, e.g. `test:smpte 1920x1080@30`.
    pub description: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<super::time::Fps>,
    /// A live source paces itself (a camera, a network peer); the runner
    /// paces the others when asked for real time.
    pub live: bool,
}

impl SourceInfo {
    pub fn new(description: impl Into<String>) -> SourceInfo {
        SourceInfo { description: description.into(), ..SourceInfo::default() }
    }

    pub fn sized(mut self, width: u32, height: u32) -> SourceInfo {
        self.width = Some(width);
        self.height = Some(height);
        self
    }

    pub fn with_fps(mut self, fps: Fps) -> SourceInfo {
        self.fps = Some(fps);
        self
    }
}

/// Anything that yields frames: a test pattern, a file, a camera, a peer.
#[async_trait]
pub trait Source: Send {
    fn info(&self) -> SourceInfo;

    /// The next frame, or `Ok(None)` at the end of the stream (not an error).
    async fn next_frame(&mut self) -> Result<Option<Frame>>;

    /// Releases the device, file or connection. Called once, at the end.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl<S: Source + ?Sized> Source for Box<S> {
    fn info(&self) -> SourceInfo {
        (**self).info()
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        (**self).next_frame().await
    }

    async fn close(&mut self) -> Result<()> {
        (**self).close().await
    }
}
