//! `text:` and `clock:` — a line of text over the video, with placeholders
//! filled in every frame:
//!
//! | placeholder | value |
//! |---|---|
//! | `{frame}` | output frame number |
//! | `{time}` | seconds since the start, e.g. `12.37` |
//! | `{timecode}` | `HH:MM:SS:FF` from the frame number and fps |
//! | `{fps}` | the stream's frame rate |
//! | `{clock}` | UTC wall time `HH:MM:SS.mmm` |
//! | `{width}`, `{height}` | output size |
//!
//! `--layer 'text:Frame {frame}?size=64&pos=bottom-left&color=yellow&bg=%23000000a0'`

use std::fmt::Write;
use std::sync::Arc;

use async_trait::async_trait;
use streamkit_core::canvas::{Canvas, Color, Paint};
use streamkit_core::text::Font;
use streamkit_core::time::realtime_ns;
use streamkit_core::uri::Uri;
use streamkit_core::{FrameContext, Layer, Result};

use crate::placement::{color_option, Anchor, Placement};

/// Text drawn every frame from a template.
pub struct TextLayer {
    template: String,
    font: Arc<Font>,
    size: f32,
    paint: Paint,
    background: Option<Paint>,
    placement: Placement,
    line: String,
}

impl TextLayer {
    pub fn new(template: impl Into<String>, size: f32, color: Color, placement: Placement) -> TextLayer {
        TextLayer {
            template: template.into(),
            font: Font::default_font(),
            size,
            paint: Paint::fill(color),
            background: None,
            placement,
            line: String::new(),
        }
    }

    /// A box behind the text, for legibility over busy video.
    pub fn with_background(mut self, color: Color) -> TextLayer {
        self.background = Some(Paint::fill(color));
        self
    }

    pub fn with_font(mut self, font: Arc<Font>) -> TextLayer {
        self.font = font;
        self
    }

    /// `text:TEMPLATE?size=&color=&bg=&font=&pos=&x=&y=&margin=`.
    pub fn from_uri(uri: &Uri) -> Result<TextLayer> {
        TextLayer::configured(uri, &uri.body, Anchor::TopLeft)
    }

    /// `clock:` — the wall clock (or `clock:TEMPLATE`), top right by default.
    pub fn clock_from_uri(uri: &Uri) -> Result<TextLayer> {
        let template = if uri.body.is_empty() { "{clock} UTC" } else { uri.body.as_str() };
        TextLayer::configured(uri, template, Anchor::TopRight)
    }

    fn configured(uri: &Uri, template: &str, anchor: Anchor) -> Result<TextLayer> {
        let mut o = uri.options();
        let size = o.parse("size", "a text height in pixels")?.unwrap_or(48.0f32);
        let color = color_option(&mut o, "color")?.unwrap_or(Color::WHITE);
        let background = color_option(&mut o, "bg")?;
        let font = o.string("font").map(Font::from_file).transpose()?;
        let placement = Placement::from_options(&mut o, anchor)?;
        o.finish()?;
        let mut layer = TextLayer::new(template, size, color, placement);
        if let Some(bg) = background {
            layer = layer.with_background(bg);
        }
        if let Some(font) = font {
            layer = layer.with_font(Arc::new(font));
        }
        Ok(layer)
    }
}

/// Fills the template's placeholders into `out` (reused between frames).
pub fn expand(template: &str, ctx: &FrameContext<'_>, out: &mut String) {
    out.clear();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return;
        };
        let key = &after[..end];
        match key {
            "frame" => write!(out, "{}", ctx.frame_number).unwrap(),
            "time" => write!(out, "{:.2}", ctx.time).unwrap(),
            "fps" => write!(out, "{}", (ctx.fps * 100.0).round() / 100.0).unwrap(),
            "timecode" => out.push_str(&timecode(ctx.frame_number, ctx.fps)),
            "clock" => out.push_str(&clock(realtime_ns())),
            "width" => write!(out, "{}", ctx.width).unwrap(),
            "height" => write!(out, "{}", ctx.height).unwrap(),
            _ => write!(out, "{{{key}}}").unwrap(),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
}

/// `HH:MM:SS:FF` (non-drop-frame) for frame `n` at `fps`.
pub fn timecode(n: u64, fps: f64) -> String {
    let per_second = fps.round().max(1.0) as u64;
    let (frames, seconds) = (n % per_second, n / per_second);
    format!("{:02}:{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60, frames)
}

/// UTC `HH:MM:SS.mmm` of a realtime clock reading.
pub fn clock(realtime_ns: u64) -> String {
    let ms = realtime_ns / 1_000_000;
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", s / 3600 % 24, s / 60 % 60, s % 60, ms % 1000)
}

#[async_trait]
impl Layer for TextLayer {
    async fn render(&mut self, canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>) -> Result<()> {
        expand(&self.template, ctx, &mut self.line);
        let width = self.font.measure(&self.line, self.size);
        let (ascent, descent) = (self.font.ascent(self.size), self.font.descent(self.size));
        let (x, y) = self.placement.resolve(ctx.width as f32, ctx.height as f32, width, ascent + descent);
        if let Some(bg) = &self.background {
            let pad = self.size * 0.25;
            canvas.draw_rect(x - pad, y - pad, width + 2.0 * pad, ascent + descent + 2.0 * pad, bg);
        }
        canvas.draw_text(&self.line, x, y + ascent, &self.font, self.size, &self.paint);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamkit_core::{Frame, PixelFormat, Timing};

    fn ctx(timing: &Timing) -> FrameContext<'_> {
        FrameContext {
            time: 65.5,
            frame_number: 1965,
            fps: 30.0,
            width: 320,
            height: 240,
            base_frame: None,
            timing,
            opacity: 1.0,
        }
    }

    #[test]
    fn placeholders() {
        let timing = Timing::default();
        let mut out = String::new();
        expand("F{frame} t={time} {timecode} {fps}fps {width}x{height} {unknown} {", &ctx(&timing), &mut out);
        assert_eq!(out, "F1965 t=65.50 00:01:05:15 30fps 320x240 {unknown} {");
        assert_eq!(clock(((3600 + 61) * 1000 + 7) * 1_000_000), "01:01:01.007");
    }

    #[tokio::test]
    async fn draws_text_where_placed() {
        let uri = Uri::parse("text:Frame {frame}?size=40&pos=bottom-right&margin=0&color=red").unwrap();
        let mut layer = TextLayer::from_uri(&uri).unwrap();
        let mut frame = Frame::new(PixelFormat::Rgba8Premul, 320, 240).unwrap();
        let timing = Timing::default();
        layer.render(&mut Canvas::new(&mut frame).unwrap(), &ctx(&timing)).await.unwrap();
        let inked = |x0: u32, y0: u32, x1: u32, y1: u32| {
            (y0..y1).any(|y| (x0..x1).any(|x| frame.data()[((y * 320 + x) * 4) as usize] > 128))
        };
        assert!(inked(120, 190, 320, 240), "text in the bottom-right corner");
        assert!(!inked(0, 0, 320, 150), "nothing at the top");
    }

    #[test]
    fn options_are_checked() {
        let e = TextLayer::from_uri(&Uri::parse("text:x?colour=red").unwrap()).err().unwrap().to_string();
        assert!(e.contains("unknown option 'colour'") && e.contains("did you mean 'color'"), "{e}");
        let e = TextLayer::from_uri(&Uri::parse("text:x?font=/no/such.ttf").unwrap()).err().unwrap().to_string();
        assert!(e.contains("/no/such.ttf"), "{e}");
    }
}
