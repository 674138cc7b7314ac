//! The [`Sink`] trait: anything that consumes frames.

use async_trait::async_trait;

use crate::error::Result;
use crate::frame::Frame;
use crate::queue::QueuePolicy;

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

    /// Writes one frame. The frame is shared: keep a clone rather than copying.
    async fn write(&mut self, frame: &Frame) -> Result<()>;

    /// Finalises the output (trailers, playlists, flushes). Called once.
    async fn close(&mut self) -> Result<()>;
}
