//! `video:` — any source as a layer: picture-in-picture.
//!
//! `--layer 'video:test:ball?size=640x360&pos=bottom-right&scale=0.5&opacity=0.9'`
//!
//! The layer's own options (`x`, `y`, `pos`, `margin`, `scale`, `width`,
//! `height`) are taken out of the query; the rest goes to the inner source.
//! One inner frame is pulled per output frame; when the inner source ends,
//! its last frame stays on screen.

use async_trait::async_trait;
use streamkit_core::canvas::Canvas;
use streamkit_core::registry::Registry;
use streamkit_core::uri::Uri;
use streamkit_core::{blend, scale, Error, Frame, FrameContext, Layer, Result, Source};

use crate::placement::{Anchor, Placement};

/// How big the inner video is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VideoSize {
    /// The inner frames' own size times a factor.
    Scale(f32),
    /// A fixed size in output pixels.
    Fixed(u32, u32),
    /// The whole output.
    Full,
}

/// A source drawn as a layer.
pub struct VideoLayer {
    source: Box<dyn Source>,
    size: VideoSize,
    placement: Placement,
    /// The last inner frame, scaled, kept after the source ends.
    current: Option<Frame>,
    ended: bool,
}

impl VideoLayer {
    pub fn new(source: Box<dyn Source>, size: VideoSize, placement: Placement) -> VideoLayer {
        VideoLayer { source, size, placement, current: None, ended: false }
    }

    /// `video:INNER-URI?scale=|width=&height=|full&pos=&x=&y=&margin=`.
    pub fn from_uri(uri: &Uri, registry: &Registry) -> Result<VideoLayer> {
        let mut inner = Uri::parse(&uri.body)?;
        inner.query = uri.query.clone();
        let own_keys = ["x", "y", "pos", "margin", "scale", "width", "height", "full"];
        let mut layer_uri = uri.clone();
        layer_uri.query.retain(|(k, _)| own_keys.contains(&k.as_str()));
        inner.query.retain(|(k, _)| !own_keys.contains(&k.as_str()));
        let mut o = layer_uri.options();
        let placement = Placement::from_options(&mut o, Anchor::BottomRight)?;
        let scale: Option<f32> = o.parse("scale", "a factor such as 0.5")?;
        let width: Option<u32> = o.parse("width", "a width in pixels")?;
        let height: Option<u32> = o.parse("height", "a height in pixels")?;
        let full = o.flag("full")?.unwrap_or(false);
        o.finish()?;
        let size = match (full, scale, width, height) {
            (true, ..) => VideoSize::Full,
            (_, _, Some(w), Some(h)) => VideoSize::Fixed(w, h),
            (_, Some(s), None, None) if s > 0.0 && s <= 16.0 => VideoSize::Scale(s),
            (_, None, None, None) => VideoSize::Scale(1.0),
            _ => return Err(Error::uri(&uri.raw, "use either scale=F (0 < F ≤ 16), or width=W&height=H, or full")),
        };
        inner.raw = format!("{}{}", uri.body, query_text(&inner.query));
        let source = registry.build_source(&inner.raw)?;
        Ok(VideoLayer::new(source, size, placement))
    }

    fn target_size(&self, frame: &Frame, ctx: &FrameContext<'_>) -> (u32, u32) {
        match self.size {
            VideoSize::Full => (ctx.width, ctx.height),
            VideoSize::Fixed(w, h) => (w, h),
            VideoSize::Scale(s) => {
                let scaled = |v: u32| ((v as f32 * s).round() as u32).max(1);
                (scaled(frame.width()), scaled(frame.height()))
            }
        }
    }
}

fn query_text(query: &[(String, String)]) -> String {
    if query.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> =
        query.iter().map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") }).collect();
    format!("?{}", pairs.join("&"))
}

#[async_trait]
impl Layer for VideoLayer {
    async fn render(&mut self, canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>) -> Result<()> {
        if !self.ended {
            match self.source.next_frame().await? {
                Some(frame) => {
                    let (w, h) = self.target_size(&frame, ctx);
                    self.current = Some(scale::resize(&frame, w, h)?);
                }
                None => self.ended = true,
            }
        }
        let Some(frame) = &self.current else { return Ok(()) };
        let (w, h) = frame.size();
        let (x, y) = self.placement.resolve(ctx.width as f32, ctx.height as f32, w as f32, h as f32);
        let (pixels, stride) = frame.plane(0);
        let (cw, ch) = (canvas.width(), canvas.height());
        let alpha = (ctx.opacity * 255.0).round() as u8;
        blend::over_rect(canvas.pixels_mut(), cw, ch, pixels, w, h, stride, x.round() as i32, y.round() as i32, alpha);
        Ok(())
    }

    fn applies_opacity(&self) -> bool {
        true
    }

    async fn close(&mut self) -> Result<()> {
        self.source.close().await
    }
}
