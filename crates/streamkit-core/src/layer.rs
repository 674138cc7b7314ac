//! The [`Layer`] trait and the context a layer renders with.

use async_trait::async_trait;

use crate::canvas::Canvas;
use crate::error::Result;
use crate::frame::Frame;
use crate::time::Timing;

/// What a layer knows about the frame being composed (the design's `ctx`).
#[derive(Clone, Copy, Debug)]
pub struct FrameContext<'a> {
    /// Seconds since the stream started (media time of this frame).
    pub time: f64,
    /// Output frame number, from 0.
    pub frame_number: u64,
    /// The stream's frame rate.
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// The source frame under the layers, as the source produced it
    /// (read-only and shared, never copied). `None` without a source.
    pub base_frame: Option<&'a Frame>,
    /// Timing of the frame being composed.
    pub timing: &'a Timing,
    /// The layer's opacity (0..1), for layers that apply it themselves
    /// (see [`Layer::applies_opacity`]); 1.0 for the others.
    pub opacity: f32,
}

/// Something drawn onto the output: a video, a drawing, an overlay, a model's
/// output. The compositor owns layers and gives each an id, a z-index and an
/// opacity; see [`crate::compositor::Compositor::add_layer`].
#[async_trait]
pub trait Layer: Send {
    /// Draws onto `canvas` (premultiplied RGBA at the output size). An error
    /// skips this layer for this frame only; the stream goes on.
    async fn render(&mut self, canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>) -> Result<()>;

    /// True when the layer scales what it draws by `ctx.opacity` itself
    /// (e.g. blending a picture at that opacity). Other layers with an
    /// opacity below 1 draw onto a scratch surface that is then blended,
    /// which costs a clear and a full-frame blend.
    fn applies_opacity(&self) -> bool {
        false
    }

    /// Releases what the layer holds (e.g. a video layer's source).
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A layer made from a closure: `FnLayer::new(|canvas, ctx| { ...; Ok(()) })`.
pub struct FnLayer<F>(pub F);

impl<F> FnLayer<F>
where
    F: FnMut(&mut Canvas<'_>, &FrameContext<'_>) -> Result<()> + Send,
{
    pub fn new(draw: F) -> FnLayer<F> {
        FnLayer(draw)
    }
}

#[async_trait]
impl<F> Layer for FnLayer<F>
where
    F: FnMut(&mut Canvas<'_>, &FrameContext<'_>) -> Result<()> + Send,
{
    async fn render(&mut self, canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>) -> Result<()> {
        (self.0)(canvas, ctx)
    }
}
