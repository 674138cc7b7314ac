//! `test:` — deterministic generated video: SMPTE colour bars, a moving ball,
//! a gradient, a checkerboard with a frame counter, a solid colour, or frames
//! drawn by a closure.
//!
//! `streamkit run 'test:smpte?size=1920x1080&fps=30' --frames 300 -o out.y4m`
//!
//! Static patterns are drawn once and shared by every frame (no copy); moving
//! ones draw into pooled buffers, so a long run allocates nothing per frame.

use std::sync::Arc;

use async_trait::async_trait;
use streamkit_core::canvas::{Canvas, Color, Paint, Shader, TextAlign};
use streamkit_core::frame::BufferPool;
use streamkit_core::layer::FrameContext;
use streamkit_core::text::Font;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result, Source, SourceInfo, Timing};

use crate::placement::color_option;

/// What a [`TestSource`] draws.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// SMPTE RP 219-style colour bars (static).
    Smpte,
    /// A ball circling over a gradient, with the frame number (moving).
    Ball,
    /// A diagonal colour gradient (static).
    Gradient,
    /// A checkerboard that shifts every frame, with a large frame counter.
    Checker,
    /// One colour everywhere (static).
    Solid(Color),
}

pub const PATTERNS: [&str; 5] = ["smpte", "ball", "gradient", "checker", "solid"];

/// A closure that draws each frame of a drawing source.
pub type DrawFn = Box<dyn FnMut(&mut Canvas<'_>, &FrameContext<'_>) -> Result<()> + Send>;

enum Painter {
    Pattern(Pattern),
    Drawing(DrawFn),
}

/// Generated frames at any size and rate.
pub struct TestSource {
    width: u32,
    height: u32,
    fps: Fps,
    painter: Painter,
    /// Stop after this many frames (`None`: endless).
    limit: Option<u64>,
    next: u64,
    /// The frame of a static pattern, drawn once.
    still: Option<Frame>,
    pool: BufferPool,
    font: Arc<Font>,
}

impl TestSource {
    pub fn new(pattern: Pattern, width: u32, height: u32, fps: Fps) -> Result<TestSource> {
        TestSource::build(Painter::Pattern(pattern), width, height, fps)
    }

    /// Frames drawn by `draw` on an opaque black canvas (the design's
    /// `TestSource(width, height, fps, draw_func)`).
    pub fn drawing(
        width: u32,
        height: u32,
        fps: Fps,
        draw: impl FnMut(&mut Canvas<'_>, &FrameContext<'_>) -> Result<()> + Send + 'static,
    ) -> Result<TestSource> {
        TestSource::build(Painter::Drawing(Box::new(draw)), width, height, fps)
    }

    fn build(painter: Painter, width: u32, height: u32, fps: Fps) -> Result<TestSource> {
        streamkit_core::frame::check_size(PixelFormat::Rgba8Premul, width, height)?;
        let len = PixelFormat::Rgba8Premul.packed_layout(width, height).byte_len();
        Ok(TestSource {
            width,
            height,
            fps,
            painter,
            limit: None,
            next: 0,
            still: None,
            pool: BufferPool::new(len, 4),
            font: Font::default_font(),
        })
    }

    /// Ends the stream after `frames` frames.
    pub fn with_limit(mut self, frames: u64) -> TestSource {
        self.limit = Some(frames);
        self
    }

    /// `test:PATTERN?size=WxH&fps=N&frames=N&color=C`.
    pub fn from_uri(uri: &Uri) -> Result<TestSource> {
        let mut o = uri.options();
        let (width, height) = o.size("size")?.unwrap_or((1280, 720));
        let fps = o.fps("fps")?.unwrap_or(Fps::new(30, 1));
        let frames: Option<u64> = o.parse("frames", "a frame count")?;
        let color = color_option(&mut o, "color")?;
        o.finish()?;
        let pattern = match uri.body.as_str() {
            "" | "smpte" | "bars" => Pattern::Smpte,
            "ball" => Pattern::Ball,
            "gradient" => Pattern::Gradient,
            "checker" | "checkerboard" => Pattern::Checker,
            "solid" => Pattern::Solid(color.unwrap_or(Color::BLACK)),
            other => {
                let hint = streamkit_core::uri::closest(other, PATTERNS)
                    .map(|p| format!("; did you mean '{p}'?"))
                    .unwrap_or_default();
                return Err(Error::uri(
                    &uri.raw,
                    format!("unknown test pattern '{other}'; known: {}{hint}", PATTERNS.join(", ")),
                ));
            }
        };
        let source = TestSource::new(pattern, width, height, fps)?;
        Ok(match frames {
            Some(n) => source.with_limit(n),
            None => source,
        })
    }

    fn is_static(&self) -> bool {
        matches!(self.painter, Painter::Pattern(Pattern::Smpte | Pattern::Gradient | Pattern::Solid(_)))
    }

    fn draw(&mut self, n: u64, timing: &Timing) -> Result<Frame> {
        let mut frame = Frame::from_pool(&self.pool, PixelFormat::Rgba8Premul, self.width, self.height)?;
        let ctx = FrameContext {
            time: self.fps.frame_time_ns(n) as f64 / 1e9,
            frame_number: n,
            fps: self.fps.as_f64(),
            width: self.width,
            height: self.height,
            base_frame: None,
            timing,
            opacity: 1.0,
        };
        let mut canvas = Canvas::new(&mut frame)?;
        match &mut self.painter {
            Painter::Drawing(draw) => {
                canvas.clear(Color::BLACK);
                draw(&mut canvas, &ctx)?;
            }
            Painter::Pattern(pattern) => draw_pattern(pattern, &mut canvas, &ctx, &self.font),
        }
        Ok(frame)
    }
}

#[async_trait]
impl Source for TestSource {
    fn info(&self) -> SourceInfo {
        let name = match &self.painter {
            Painter::Pattern(Pattern::Solid(_)) => "solid".to_string(),
            Painter::Pattern(p) => format!("{p:?}").to_lowercase(),
            Painter::Drawing(_) => "drawing".to_string(),
        };
        SourceInfo::new(format!("test:{name} {}x{}@{}", self.width, self.height, self.fps))
            .sized(self.width, self.height)
            .with_fps(self.fps)
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        let n = self.next;
        if self.limit.is_some_and(|limit| n >= limit) {
            return Ok(None);
        }
        self.next += 1;
        let timing = Timing::for_frame(n, self.fps);
        let frame = match &self.still {
            Some(still) => still.clone(),
            None => {
                let frame = self.draw(n, &timing)?;
                if self.is_static() {
                    self.still = Some(frame.clone());
                }
                frame
            }
        };
        let mut frame = frame.with_timing(timing);
        frame.metadata.insert("source_id", "test");
        Ok(Some(frame))
    }
}

fn draw_pattern(pattern: &Pattern, canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>, font: &Font) {
    match pattern {
        Pattern::Smpte => smpte_bars(canvas),
        Pattern::Solid(color) => canvas.clear(*color),
        Pattern::Gradient => gradient(canvas),
        Pattern::Ball => ball(canvas, ctx, font),
        Pattern::Checker => checker(canvas, ctx, font),
    }
}

fn rgb(r: u8, g: u8, b: u8) -> Paint {
    Paint::fill(Color::from_rgba8(r, g, b, 255))
}

/// Bars as in SMPTE RP 219 / EG 1: seven 75% bars, a row of reversed blue
/// bars, then -I, white, +Q and the PLUGE blacks.
fn smpte_bars(canvas: &mut Canvas<'_>) {
    let (w, h) = (canvas.width() as f32, canvas.height() as f32);
    let top = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)];
    let middle = [(0, 0, 191), (19, 19, 19), (191, 0, 191), (19, 19, 19), (0, 191, 191), (19, 19, 19), (191, 191, 191)];
    let bar = w / 7.0;
    let (h1, h2) = ((h * 2.0 / 3.0).round(), (h * 0.75).round());
    for (i, (&(r, g, b), &(mr, mg, mb))) in top.iter().zip(&middle).enumerate() {
        let x = (i as f32 * bar).round();
        let next = ((i + 1) as f32 * bar).round();
        canvas.draw_rect(x, 0.0, next - x, h1, &rgb(r, g, b));
        canvas.draw_rect(x, h1, next - x, h2 - h1, &rgb(mr, mg, mb));
    }
    let bottom = [
        (0.0, 5.0 / 4.0, (0, 33, 76)),
        (5.0 / 4.0, 5.0 / 2.0, (255, 255, 255)),
        (5.0 / 2.0, 15.0 / 4.0, (50, 0, 106)),
        (15.0 / 4.0, 5.0, (19, 19, 19)),
        (5.0, 5.0 + 1.0 / 3.0, (9, 9, 9)),
        (5.0 + 1.0 / 3.0, 5.0 + 2.0 / 3.0, (19, 19, 19)),
        (5.0 + 2.0 / 3.0, 6.0, (29, 29, 29)),
        (6.0, 7.0, (19, 19, 19)),
    ];
    for (from, to, (r, g, b)) in bottom {
        let (x0, x1) = ((from * bar).round(), (to * bar).round());
        canvas.draw_rect(x0, h2, x1 - x0, h - h2, &rgb(r, g, b));
    }
}

fn gradient(canvas: &mut Canvas<'_>) {
    let (w, h) = (canvas.width() as f32, canvas.height() as f32);
    let paint = Paint {
        shader: Some(Shader::LinearGradient {
            start: (0.0, 0.0),
            end: (w, h),
            stops: vec![
                (0.0, Color::from_rgba8(20, 30, 120, 255)),
                (0.5, Color::from_rgba8(180, 40, 140, 255)),
                (1.0, Color::from_rgba8(250, 200, 60, 255)),
            ],
            mode: tiny_skia::SpreadMode::Pad,
        }),
        ..Paint::default()
    };
    canvas.draw_paint(&paint);
}

fn ball(canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>, font: &Font) {
    let (w, h) = (ctx.width as f32, ctx.height as f32);
    canvas.clear(Color::from_rgba8(16, 24, 48, 255));
    let t = ctx.time as f32;
    let r = h.min(w) * 0.08;
    let (x, y) = (w / 2.0 + w * 0.35 * (t * 1.3).cos(), h / 2.0 + h * 0.3 * (t * 2.1).sin());
    canvas.draw_circle(x, y, r, &rgb(240, 180, 40));
    let size = h / 12.0;
    canvas.draw_text(&format!("frame {}", ctx.frame_number), size * 0.5, size * 1.3, font, size, &rgb(255, 255, 255));
}

fn checker(canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>, font: &Font) {
    let (w, h) = (ctx.width as f32, ctx.height as f32);
    let cell = (h / 9.0).max(8.0).round();
    canvas.clear(Color::from_rgba8(40, 40, 40, 255));
    let light = rgb(200, 200, 200);
    let shift = (ctx.frame_number % (2 * cell as u64)) as f32;
    let (cols, rows) = ((w / cell) as i32 + 2, (h / cell) as i32 + 1);
    for row in 0..rows {
        for col in -1..cols {
            if (row + col) % 2 == 0 {
                canvas.draw_rect(col as f32 * cell + shift, row as f32 * cell, cell, cell, &light);
            }
        }
    }
    let size = h / 4.0;
    let text = ctx.frame_number.to_string();
    let box_w = font.measure(&text, size) + size * 0.5;
    canvas.draw_rect((w - box_w) / 2.0, h / 2.0 - size * 0.75, box_w, size * 1.1, &rgb(0, 0, 0));
    canvas.draw_text_aligned(&text, w / 2.0, h / 2.0 + size * 0.2, font, size, TextAlign::Center, &rgb(255, 255, 255));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(f: &Frame, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * f.width() + x) * 4) as usize;
        f.data()[i..i + 4].try_into().unwrap()
    }

    #[tokio::test]
    async fn smpte_bars_have_the_right_colours_and_share_memory() {
        let mut s = TestSource::from_uri(&Uri::parse("test:smpte?size=700x480&fps=25").unwrap()).unwrap();
        assert_eq!(s.info().fps, Some(Fps::new(25, 1)));
        let a = s.next_frame().await.unwrap().unwrap();
        let b = s.next_frame().await.unwrap().unwrap();
        assert_eq!(pixel(&a, 50, 100), [191, 191, 191, 255]);
        assert_eq!(pixel(&a, 150, 100), [191, 191, 0, 255]);
        assert_eq!(pixel(&a, 650, 100), [0, 0, 191, 255]);
        assert_eq!(pixel(&a, 150, 470), [255, 255, 255, 255]);
        assert!(streamkit_core::frame::Buffer::ptr_eq(a.buffer(), b.buffer()), "static pattern is shared");
        assert_eq!((a.timing.frame_number, b.timing.frame_number), (0, 1));
        assert_eq!(b.timing.pts_ns(), 40_000_000);
    }

    #[tokio::test]
    async fn moving_patterns_change_and_limits_end_the_stream() {
        for name in ["ball", "checker"] {
            let uri = Uri::parse(&format!("test:{name}?size=320x240&frames=3")).unwrap();
            let mut s = TestSource::from_uri(&uri).unwrap();
            let a = s.next_frame().await.unwrap().unwrap();
            let b = s.next_frame().await.unwrap().unwrap();
            assert_ne!(a.data(), b.data(), "{name} moves");
            assert!(s.next_frame().await.unwrap().is_some());
            assert!(s.next_frame().await.unwrap().is_none(), "{name} ends after frames=3");
        }
    }

    #[tokio::test]
    async fn drawing_source_runs_the_closure() {
        let mut s = TestSource::drawing(64, 32, Fps::new(10, 1), |canvas, ctx| {
            let x = ctx.frame_number as f32 * 10.0;
            canvas.draw_rect(x, 0.0, 10.0, 32.0, &rgb(255, 0, 0));
            Ok(())
        })
        .unwrap();
        let f0 = s.next_frame().await.unwrap().unwrap();
        let f1 = s.next_frame().await.unwrap().unwrap();
        assert_eq!(pixel(&f0, 5, 5), [255, 0, 0, 255]);
        assert_eq!(pixel(&f1, 5, 5), [0, 0, 0, 255]);
        assert_eq!(pixel(&f1, 15, 5), [255, 0, 0, 255]);
    }

    #[test]
    fn bad_uris_are_explained() {
        let e = TestSource::from_uri(&Uri::parse("test:smtpe").unwrap()).err().unwrap().to_string();
        assert!(e.contains("unknown test pattern 'smtpe'") && e.contains("did you mean 'smpte'"), "{e}");
        let e = TestSource::from_uri(&Uri::parse("test:smpte?size=0x10").unwrap()).err().unwrap().to_string();
        assert!(e.contains("size=0x10"), "{e}");
    }
}
