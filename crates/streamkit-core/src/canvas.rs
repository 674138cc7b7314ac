//! Drawing surface for layers: tiny-skia over a frame's premultiplied RGBA pixels.
//!
//! The API follows skia's semantics (paint styles, a save/restore stack of
//! transform and clip, shapes, images, text) so a skia-style binding maps onto
//! it one-to-one. Colours are straight-alpha [`Color`]s; the pixels are
//! premultiplied, and tiny-skia does the conversion.
//!
//! Where tiny-skia's general pipeline is slow for a common case, the canvas
//! blends directly with [`crate::blend`]: images placed on whole pixels, and
//! pixel-aligned rectangles of a plain colour or an axis-aligned gradient.

use std::ops::Range;
use std::sync::Arc;

use tiny_skia::{
    FillRule, FilterQuality, GradientStop, LinearGradient, Mask, Pixmap, PixmapMut, PixmapPaint, PixmapRef, Point,
    PremultipliedColorU8, RadialGradient, Stroke, StrokeDash,
};

pub use tiny_skia::{BlendMode, Color, LineCap, LineJoin, Path, PathBuilder, Rect, SpreadMode, Transform};

pub use crate::text::Font;

use crate::error::{Error, Result};
use crate::frame::{check_size, Buffer, Frame, PixelFormat};

/// What a paint does with a shape: fill its inside, stroke its outline, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaintStyle {
    #[default]
    Fill,
    Stroke,
    StrokeAndFill,
}

impl PaintStyle {
    fn fills(self) -> bool {
        matches!(self, PaintStyle::Fill | PaintStyle::StrokeAndFill)
    }

    fn strokes(self) -> bool {
        matches!(self, PaintStyle::Stroke | PaintStyle::StrokeAndFill)
    }
}

/// A gradient that colours a shape instead of the paint's solid colour.
/// Coordinates are in the canvas's user space (they follow the transform).
#[derive(Clone, Debug, PartialEq)]
pub enum Shader {
    LinearGradient { start: (f32, f32), end: (f32, f32), stops: Vec<(f32, Color)>, mode: SpreadMode },
    RadialGradient { center: (f32, f32), radius: f32, stops: Vec<(f32, Color)>, mode: SpreadMode },
}

impl Shader {
    /// The tiny-skia shader with every stop's alpha scaled by `alpha` (skia
    /// modulates a shader by the paint's alpha). `None` for a gradient
    /// without stops or with a non-positive radius: skia draws nothing then.
    fn to_skia(&self, alpha: f32) -> Option<tiny_skia::Shader<'static>> {
        let point = |(x, y): (f32, f32)| Point::from_xy(x, y);
        let identity = Transform::identity();
        match self {
            Shader::LinearGradient { start, end, stops, mode } => {
                LinearGradient::new(point(*start), point(*end), gradient_stops(stops, alpha), *mode, identity)
            }
            Shader::RadialGradient { center, radius, stops, mode } => RadialGradient::new(
                point(*center),
                point(*center),
                *radius,
                gradient_stops(stops, alpha),
                *mode,
                identity,
            ),
        }
    }
}

fn gradient_stops(stops: &[(f32, Color)], alpha: f32) -> Vec<GradientStop> {
    let faded = |mut color: Color| {
        color.apply_opacity(alpha);
        color
    };
    stops.iter().map(|&(position, color)| GradientStop::new(position, faded(color))).collect()
}

/// How to draw: colour or gradient, fill or stroke, stroke geometry, blending.
#[derive(Clone, Debug, PartialEq)]
pub struct Paint {
    /// The solid colour; with a `shader`, only its alpha is used.
    pub color: Color,
    pub shader: Option<Shader>,
    pub style: PaintStyle,
    /// Stroke width in user units; 0 draws a one-pixel hairline, as in skia.
    pub stroke_width: f32,
    pub anti_alias: bool,
    pub blend_mode: BlendMode,
    pub stroke_cap: LineCap,
    pub stroke_join: LineJoin,
    /// Dash intervals (on, off, …; an even count) and the phase into them.
    /// An invalid pattern strokes a solid line, as skia does.
    pub dash: Option<(Vec<f32>, f32)>,
}

impl Default for Paint {
    /// Opaque black, filled, anti-aliased, source-over.
    fn default() -> Paint {
        Paint {
            color: Color::BLACK,
            shader: None,
            style: PaintStyle::Fill,
            stroke_width: 0.0,
            anti_alias: true,
            blend_mode: BlendMode::SourceOver,
            stroke_cap: LineCap::Butt,
            stroke_join: LineJoin::Miter,
            dash: None,
        }
    }
}

impl Paint {
    pub fn fill(color: Color) -> Paint {
        Paint { color, ..Paint::default() }
    }

    pub fn stroke(color: Color, width: f32) -> Paint {
        Paint { color, style: PaintStyle::Stroke, stroke_width: width, ..Paint::default() }
    }

    /// The same paint with its alpha set to `alpha` (0 transparent … 255 opaque).
    pub fn with_alpha(mut self, alpha: u8) -> Paint {
        self.set_alpha(alpha);
        self
    }

    pub fn set_alpha(&mut self, alpha: u8) {
        self.color.set_alpha(f32::from(alpha) / 255.0);
    }

    /// tiny-skia's paint; `None` when the shader is invalid and nothing should be drawn.
    fn to_skia(&self) -> Option<tiny_skia::Paint<'static>> {
        let shader = match &self.shader {
            None => tiny_skia::Shader::SolidColor(self.color),
            Some(shader) => shader.to_skia(self.color.alpha())?,
        };
        Some(tiny_skia::Paint {
            shader,
            blend_mode: self.blend_mode,
            anti_alias: self.anti_alias,
            force_hq_pipeline: false,
        })
    }

    fn to_stroke(&self) -> Stroke {
        let dash = self.dash.as_ref().and_then(|(intervals, phase)| StrokeDash::new(intervals.clone(), *phase));
        Stroke {
            width: self.stroke_width,
            line_cap: self.stroke_cap,
            line_join: self.stroke_join,
            dash,
            ..Stroke::default()
        }
    }
}

/// Where the anchor x of [`Canvas::draw_text_aligned`] sits on the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextAlign {
    #[default]
    Left,
    Center,
    Right,
}

impl TextAlign {
    /// How far left of the anchor a line `width` wide starts.
    fn shift(self, width: f32) -> f32 {
        match self {
            TextAlign::Left => 0.0,
            TextAlign::Center => width / 2.0,
            TextAlign::Right => width,
        }
    }
}

/// Premultiplied RGBA pixels to draw with [`Canvas::draw_image`]. Cloning
/// shares the pixels.
#[derive(Clone, Debug)]
pub struct Image {
    width: u32,
    height: u32,
    /// At least `width * height * 4` bytes, tightly packed from offset 0.
    pixels: Buffer,
}

impl Image {
    /// Wraps tightly packed premultiplied RGBA (each colour ≤ its alpha).
    pub fn from_rgba_premul(width: u32, height: u32, pixels: Vec<u8>) -> Result<Image> {
        check_size(PixelFormat::Rgba8Premul, width, height)?;
        let needed = width as usize * height as usize * 4;
        if pixels.len() != needed {
            return Err(Error::invalid(format!(
                "a {width}x{height} image needs {needed} bytes of RGBA, got {}",
                pixels.len()
            )));
        }
        Ok(Image { width, height, pixels: Buffer::from_vec(pixels) })
    }

    /// The pixels of an [`PixelFormat::Rgba8Premul`] frame, shared without a
    /// copy when the frame is tightly packed. Other formats are an error:
    /// convert them first with [`crate::convert`].
    pub fn from_frame(frame: &Frame) -> Result<Image> {
        if frame.format() != PixelFormat::Rgba8Premul {
            return Err(Error::invalid(format!(
                "an image needs rgba (premultiplied) pixels, the frame is {}; convert it first",
                frame.format()
            )));
        }
        let packed = frame.clone().into_packed();
        Ok(Image { width: packed.width(), height: packed.height(), pixels: packed.buffer().clone() })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The premultiplied RGBA bytes, row after row (stride = width * 4).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels.as_slice()[..self.width as usize * self.height as usize * 4]
    }

    /// The pixels as tiny-skia's read-only pixmap.
    pub fn as_pixmap(&self) -> PixmapRef<'_> {
        PixmapRef::from_bytes(self.pixels(), self.width, self.height).expect("image size was checked")
    }
}

/// Device pixel columns and rows.
type PixelArea = (Range<usize>, Range<usize>);

/// A device axis along which a gradient varies.
#[derive(Clone, Copy)]
enum Axis {
    Horizontal,
    Vertical,
}

/// What `save` stores and `restore` brings back.
#[derive(Clone)]
struct State {
    transform: Transform,
    /// Coverage of the clip; `None` means no clip, so unclipped drawing pays
    /// nothing. Shared between saved states until one of them narrows it.
    clip: Option<Arc<Mask>>,
}

/// A drawing surface over premultiplied RGBA pixels.
pub struct Canvas<'a> {
    pixmap: PixmapMut<'a>,
    state: State,
    saved: Vec<State>,
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
        Ok(Canvas { pixmap, state: State { transform: Transform::identity(), clip: None }, saved: Vec::new() })
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

    // --- transform and clip stack ---

    /// The current user-space → pixel transform.
    pub fn transform(&self) -> Transform {
        self.state.transform
    }

    /// Pushes the transform and clip; [`Canvas::restore`] brings them back.
    pub fn save(&mut self) {
        self.saved.push(self.state.clone());
    }

    /// Pops the last [`Canvas::save`]; does nothing when nothing is saved.
    pub fn restore(&mut self) {
        if let Some(state) = self.saved.pop() {
            self.state = state;
        }
    }

    /// skia's save count: 1 plus the number of unrestored saves.
    pub fn save_count(&self) -> usize {
        self.saved.len() + 1
    }

    /// Restores until [`Canvas::save_count`] is `count` (at least 1).
    pub fn restore_to_count(&mut self, count: usize) {
        while self.save_count() > count.max(1) {
            self.restore();
        }
    }

    pub fn translate(&mut self, dx: f32, dy: f32) {
        self.state.transform = self.state.transform.pre_translate(dx, dy);
    }

    pub fn scale(&mut self, sx: f32, sy: f32) {
        self.state.transform = self.state.transform.pre_scale(sx, sy);
    }

    /// Rotates clockwise (y points down) by `degrees` about the user-space origin.
    pub fn rotate(&mut self, degrees: f32) {
        self.state.transform = self.state.transform.pre_rotate(degrees);
    }

    /// Rotates clockwise by `degrees` about (`cx`, `cy`) in user space.
    pub fn rotate_about(&mut self, degrees: f32, cx: f32, cy: f32) {
        self.state.transform = self.state.transform.pre_rotate_at(degrees, cx, cy);
    }

    /// Applies `transform` before the current one (skia's `concat`).
    pub fn concat(&mut self, transform: Transform) {
        self.state.transform = self.state.transform.pre_concat(transform);
    }

    pub fn set_transform(&mut self, transform: Transform) {
        self.state.transform = transform;
    }

    pub fn reset_transform(&mut self) {
        self.state.transform = Transform::identity();
    }

    /// Narrows the clip to a rectangle in user space (it follows the
    /// transform, so a rotated canvas clips to a rotated rectangle);
    /// `anti_alias` softens its edges, like skia's `doAntiAlias`.
    pub fn clip_rect(&mut self, x: f32, y: f32, w: f32, h: f32, anti_alias: bool) {
        let transform = self.state.transform;
        let area = rect_from_xywh(x, y, w, h).map(PathBuilder::from_rect);
        let Some(clip) = &mut self.state.clip else {
            let mut mask = Mask::new(self.pixmap.width(), self.pixmap.height()).expect("canvas size is non-zero");
            if let Some(area) = area {
                mask.fill_path(&area, FillRule::Winding, anti_alias, transform);
            }
            self.state.clip = Some(Arc::new(mask));
            return;
        };
        let mask = Arc::make_mut(clip);
        match area {
            Some(area) => mask.intersect_path(&area, FillRule::Winding, anti_alias, transform),
            None => mask.clear(),
        }
    }

    // --- shapes ---

    /// Sets every pixel inside the clip to `color` (no blending, no transform).
    pub fn clear(&mut self, color: Color) {
        match self.state.clip.as_deref() {
            None => self.pixmap.fill(color),
            Some(mask) => {
                let paint = tiny_skia::Paint {
                    shader: tiny_skia::Shader::SolidColor(color),
                    blend_mode: BlendMode::Source,
                    ..tiny_skia::Paint::default()
                };
                let everything = self.device_rect();
                self.pixmap.fill_rect(everything, &paint, Transform::identity(), Some(mask));
            }
        }
    }

    /// Fills the whole clip with `paint` (skia's `drawPaint`; the style is ignored).
    pub fn draw_paint(&mut self, paint: &Paint) {
        let everything = (0..self.width() as usize, 0..self.height() as usize);
        if self.fill_directly(everything, paint) {
            return;
        }
        let Some(mut skia) = paint.to_skia() else {
            return;
        };
        skia.shader.transform(self.state.transform);
        let everything = self.device_rect();
        self.pixmap.fill_rect(everything, &skia, Transform::identity(), self.state.clip.as_deref());
    }

    pub fn draw_rect(&mut self, x: f32, y: f32, w: f32, h: f32, paint: &Paint) {
        let Some(rect) = rect_from_xywh(x, y, w, h) else {
            return;
        };
        if paint.style != PaintStyle::Fill {
            return self.draw_path(&PathBuilder::from_rect(rect), paint);
        }
        if self.whole_pixel_area(rect).is_some_and(|area| self.fill_directly(area, paint)) {
            return;
        }
        let Some(skia) = paint.to_skia() else { return };
        self.pixmap.fill_rect(rect, &skia, self.state.transform, self.state.clip.as_deref());
    }

    /// A rectangle with elliptical corners of radii `rx`, `ry` (clamped to
    /// half the sides); square corners when either radius is ≤ 0.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_round_rect(&mut self, x: f32, y: f32, w: f32, h: f32, rx: f32, ry: f32, paint: &Paint) {
        if rx <= 0.0 || ry <= 0.0 {
            return self.draw_rect(x, y, w, h, paint);
        }
        if let Some(path) = rect_from_xywh(x, y, w, h).and_then(|rect| round_rect_path(rect, rx, ry)) {
            self.draw_path(&path, paint);
        }
    }

    pub fn draw_circle(&mut self, cx: f32, cy: f32, radius: f32, paint: &Paint) {
        if let Some(path) = PathBuilder::from_circle(cx, cy, radius) {
            self.draw_path(&path, paint);
        }
    }

    /// The ellipse inscribed in the rectangle (`x`, `y`, `w`, `h`).
    pub fn draw_oval(&mut self, x: f32, y: f32, w: f32, h: f32, paint: &Paint) {
        if let Some(path) = rect_from_xywh(x, y, w, h).and_then(PathBuilder::from_oval) {
            self.draw_path(&path, paint);
        }
    }

    /// A straight line, always stroked whatever the paint's style (as in skia).
    pub fn draw_line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, paint: &Paint) {
        let mut builder = PathBuilder::new();
        builder.move_to(x0, y0);
        builder.line_to(x1, y1);
        let (Some(path), Some(skia)) = (builder.finish(), paint.to_skia()) else {
            return;
        };
        self.stroke_path(&path, &skia, &paint.to_stroke());
    }

    /// Fills (non-zero winding) and/or strokes `path` as the paint's style says.
    pub fn draw_path(&mut self, path: &Path, paint: &Paint) {
        let Some(skia) = paint.to_skia() else { return };
        if paint.style.fills() {
            self.fill_path(path, &skia);
        }
        if paint.style.strokes() {
            self.stroke_path(path, &skia, &paint.to_stroke());
        }
    }

    fn fill_path(&mut self, path: &Path, paint: &tiny_skia::Paint<'_>) {
        let clip = self.state.clip.as_deref();
        self.pixmap.fill_path(path, paint, FillRule::Winding, self.state.transform, clip);
    }

    fn stroke_path(&mut self, path: &Path, paint: &tiny_skia::Paint<'_>, stroke: &Stroke) {
        let clip = self.state.clip.as_deref();
        self.pixmap.stroke_path(path, paint, stroke, self.state.transform, clip);
    }

    /// Fills whole pixels with [`crate::blend`] instead of tiny-skia's general
    /// pipeline, which measured ~10x slower for a translucent colour and ~20x
    /// for a vertical gradient on a full 1080p frame. Only for source-over
    /// without a clip, with a plain colour or a linear gradient that varies
    /// along one device axis; returns false (nothing drawn) otherwise.
    fn fill_directly(&mut self, area: PixelArea, paint: &Paint) -> bool {
        if paint.blend_mode != BlendMode::SourceOver || self.state.clip.is_some() {
            return false;
        }
        let Some(shader) = &paint.shader else {
            self.blend_solid(area, paint.color.premultiply().to_color_u8());
            return true;
        };
        let Some(axis) = self.device_gradient_axis(shader) else {
            return false;
        };
        if let Some(skia) = paint.to_skia() {
            self.blend_axis_gradient(area, skia, axis);
        }
        true
    }

    /// The columns and rows `rect` covers, clamped to the canvas, when the
    /// transform maps its edges onto whole pixels (so no edge is anti-aliased).
    fn whole_pixel_area(&self, rect: Rect) -> Option<PixelArea> {
        let t = self.state.transform;
        if t.has_skew() {
            return None;
        }
        let span = |start: f32, end: f32, scale: f32, offset: f32, len: u32| {
            let (a, b) = (start * scale + offset, end * scale + offset);
            let (low, high) = (a.min(b), a.max(b));
            let clamp = |v: f32| v.clamp(0.0, len as f32) as usize;
            (low.fract() == 0.0 && high.fract() == 0.0).then(|| clamp(low)..clamp(high))
        };
        let columns = span(rect.left(), rect.right(), t.sx, t.tx, self.width())?;
        let rows = span(rect.top(), rect.bottom(), t.sy, t.ty, self.height())?;
        Some((columns, rows))
    }

    fn blend_solid(&mut self, area: PixelArea, color: PremultipliedColorU8) {
        if color.alpha() == 0 {
            return;
        }
        let span = [color.red(), color.green(), color.blue(), color.alpha()].repeat(area.0.len());
        self.blend_span(area, &span, color.is_opaque());
    }

    /// Which device axis a linear gradient varies along, when only one.
    fn device_gradient_axis(&self, shader: &Shader) -> Option<Axis> {
        let Shader::LinearGradient { start, end, .. } = shader else {
            return None;
        };
        let t = self.state.transform;
        let (dx, dy) = ((end.0 - start.0) * t.sx, (end.1 - start.1) * t.sy);
        if t.has_skew() {
            None
        } else if dy == 0.0 {
            Some(Axis::Horizontal)
        } else if dx == 0.0 {
            Some(Axis::Vertical)
        } else {
            None
        }
    }

    /// tiny-skia shades a single row (or column) of the gradient; the rows
    /// are then blended directly.
    fn blend_axis_gradient(&mut self, (columns, rows): PixelArea, mut paint: tiny_skia::Paint<'_>, axis: Axis) {
        let (strip_width, strip_height) = match axis {
            Axis::Horizontal => (columns.len() as u32, 1),
            Axis::Vertical => (1, rows.len() as u32),
        };
        let Some(mut strip) = Pixmap::new(strip_width, strip_height) else {
            return;
        };
        let to_strip = self.state.transform.post_translate(-(columns.start as f32), -(rows.start as f32));
        paint.shader.transform(to_strip);
        paint.blend_mode = BlendMode::Source;
        let whole_strip =
            Rect::from_xywh(0.0, 0.0, strip_width as f32, strip_height as f32).expect("strip is non-empty");
        strip.fill_rect(whole_strip, &paint, Transform::identity(), None);
        match axis {
            Axis::Horizontal => self.blend_span((columns, rows), strip.data(), false),
            Axis::Vertical => {
                for (row, &color) in rows.zip(strip.pixels()) {
                    self.blend_solid((columns.clone(), row..row + 1), color);
                }
            }
        }
    }

    /// Blends the same premultiplied `span` (one row of the area's width) over every row.
    fn blend_span(&mut self, (columns, rows): PixelArea, span: &[u8], opaque: bool) {
        let stride = self.width() as usize * 4;
        let bytes = columns.start * 4..columns.end * 4;
        for row in self.pixmap.data_mut().chunks_exact_mut(stride).take(rows.end).skip(rows.start) {
            let dst = &mut row[bytes.clone()];
            if opaque {
                dst.copy_from_slice(span);
            } else {
                crate::blend::over_row(dst, span, 255);
            }
        }
    }

    fn device_rect(&self) -> Rect {
        Rect::from_xywh(0.0, 0.0, self.width() as f32, self.height() as f32).expect("canvas size is non-zero")
    }

    // --- images ---

    /// Draws `image` with its top-left corner at (`x`, `y`) in user space,
    /// its alpha scaled by `opacity` (0…1).
    pub fn draw_image(&mut self, image: &Image, x: f32, y: f32, opacity: f32) {
        let placement = self.state.transform.pre_translate(x, y);
        self.draw_image_placed(image, placement, opacity);
    }

    /// Draws `image` scaled (bilinear) to fill `dst` in user space.
    pub fn draw_image_rect(&mut self, image: &Image, dst: Rect, opacity: f32) {
        let sx = dst.width() / image.width() as f32;
        let sy = dst.height() / image.height() as f32;
        let placement = self.state.transform.pre_translate(dst.x(), dst.y()).pre_scale(sx, sy);
        self.draw_image_placed(image, placement, opacity);
    }

    /// Blends directly when the image lands on whole pixels unclipped:
    /// tiny-skia's `draw_pixmap` measured 5x slower for that common case.
    fn draw_image_placed(&mut self, image: &Image, placement: Transform, opacity: f32) {
        let opacity = opacity.clamp(0.0, 1.0);
        if opacity.is_nan() || opacity == 0.0 {
            return;
        }
        match whole_pixel_offset(placement) {
            Some((x, y)) if self.state.clip.is_none() => self.blend_image_at(image, x, y, opacity),
            _ => self.draw_image_resampled(image, placement, opacity),
        }
    }

    fn blend_image_at(&mut self, image: &Image, x: i32, y: i32, opacity: f32) {
        let (width, height) = (self.width(), self.height());
        let opacity = (opacity * 255.0).round() as u8;
        let stride = image.width as usize * 4;
        let dst = self.pixmap.data_mut();
        crate::blend::over_rect(dst, width, height, image.pixels(), image.width, image.height, stride, x, y, opacity);
    }

    /// The general path: any transform, any clip, bilinear filtering.
    pub(crate) fn draw_image_resampled(&mut self, image: &Image, placement: Transform, opacity: f32) {
        let paint = PixmapPaint { opacity, blend_mode: BlendMode::SourceOver, quality: FilterQuality::Bilinear };
        let clip = self.state.clip.as_deref();
        self.pixmap.draw_pixmap(0, 0, image.as_pixmap(), &paint, placement, clip);
    }

    // --- text ---

    /// Draws one line of `text` with the left end of its baseline at
    /// (`x`, `y`), like skia's `drawText`. Follows the paint's style and
    /// shader and the transform, like any path.
    pub fn draw_text(&mut self, text: &str, x: f32, y: f32, font: &Font, size: f32, paint: &Paint) {
        if let Some(path) = font.text_path(text, x, y, size) {
            self.draw_path(&path, paint);
        }
    }

    /// [`Canvas::draw_text`] with `x` at the left end, centre or right end of the line.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_text_aligned(
        &mut self,
        text: &str,
        x: f32,
        y: f32,
        font: &Font,
        size: f32,
        align: TextAlign,
        paint: &Paint,
    ) {
        let left = x - align.shift(font.measure(text, size));
        self.draw_text(text, left, y, font, size, paint);
    }

    /// The advance width of `text` (where the next character would start).
    pub fn measure_text(&self, text: &str, font: &Font, size: f32) -> f32 {
        font.measure(text, size)
    }
}

/// A rectangle from a corner and a size; a negative size extends left/up, as in skia.
fn rect_from_xywh(x: f32, y: f32, w: f32, h: f32) -> Option<Rect> {
    Rect::from_ltrb(x.min(x + w), y.min(y + h), x.max(x + w), y.max(y + h))
}

/// The integer (x, y) when `placement` only moves by whole pixels.
fn whole_pixel_offset(placement: Transform) -> Option<(i32, i32)> {
    let (tx, ty) = (placement.tx, placement.ty);
    let whole = |v: f32| v.fract() == 0.0 && v.abs() <= i32::MAX as f32 / 2.0;
    let moves_only = !placement.has_scale() && !placement.has_skew();
    (moves_only && whole(tx) && whole(ty)).then_some((tx as i32, ty as i32))
}

/// A rounded rectangle from four elliptical quarter arcs (cubic approximation).
fn round_rect_path(rect: Rect, rx: f32, ry: f32) -> Option<Path> {
    /// Control-point distance of a cubic approximating a quarter circle.
    const KAPPA: f32 = 0.552_284_8;
    let rx = rx.min(rect.width() / 2.0);
    let ry = ry.min(rect.height() / 2.0);
    let (l, t, r, b) = (rect.left(), rect.top(), rect.right(), rect.bottom());
    let (kx, ky) = (rx * (1.0 - KAPPA), ry * (1.0 - KAPPA));
    let mut p = PathBuilder::new();
    p.move_to(l + rx, t);
    p.line_to(r - rx, t);
    p.cubic_to(r - kx, t, r, t + ky, r, t + ry);
    p.line_to(r, b - ry);
    p.cubic_to(r, b - ky, r - kx, b, r - rx, b);
    p.line_to(l + rx, b);
    p.cubic_to(l + kx, b, l, b - ky, l, b - ry);
    p.line_to(l, t + ry);
    p.cubic_to(l, t + ky, l + kx, t, l + rx, t);
    p.close();
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 64;
    const H: u32 = 64;

    fn red() -> Color {
        Color::from_rgba8(255, 0, 0, 255)
    }

    /// Draws on a transparent `W`x`H` canvas and returns its pixels.
    fn render(draw: impl FnOnce(&mut Canvas<'_>)) -> Vec<u8> {
        let mut pixels = vec![0; (W * H * 4) as usize];
        draw(&mut Canvas::from_rgba(&mut pixels, W, H).unwrap());
        pixels
    }

    fn pixel(pixels: &[u8], x: u32, y: u32) -> [u8; 4] {
        let i = ((y * W + x) * 4) as usize;
        pixels[i..i + 4].try_into().unwrap()
    }

    fn alpha(pixels: &[u8], x: u32, y: u32) -> u8 {
        pixel(pixels, x, y)[3]
    }

    /// Pixels with any coverage, as (x, y).
    fn inked(pixels: &[u8]) -> Vec<(u32, u32)> {
        (0..H).flat_map(|y| (0..W).map(move |x| (x, y))).filter(|&(x, y)| alpha(pixels, x, y) > 0).collect()
    }

    #[test]
    fn filled_circle_covers_its_centre_only() {
        let px = render(|c| c.draw_circle(32.0, 32.0, 10.0, &Paint::fill(red())));
        assert_eq!(pixel(&px, 32, 32), [255, 0, 0, 255]);
        assert_eq!(pixel(&px, 0, 0), [0, 0, 0, 0]);
        assert_eq!(pixel(&px, 63, 63), [0, 0, 0, 0]);
    }

    #[test]
    fn stroked_circle_leaves_its_centre_empty() {
        let px = render(|c| c.draw_circle(32.0, 32.0, 10.0, &Paint::stroke(red(), 2.0)));
        assert_eq!(alpha(&px, 32, 32), 0);
        assert_eq!(pixel(&px, 42, 32), [255, 0, 0, 255]);
    }

    #[test]
    fn stroke_and_fill_covers_both() {
        let paint = Paint { style: PaintStyle::StrokeAndFill, stroke_width: 6.0, ..Paint::fill(red()) };
        let px = render(|c| c.draw_circle(32.0, 32.0, 10.0, &paint));
        assert_eq!(alpha(&px, 32, 32), 255);
        assert_eq!(alpha(&px, 44, 32), 255, "the stroke reaches past the radius");
    }

    #[test]
    fn anti_aliased_edges_are_partial_and_aliased_ones_are_not() {
        let partial = |px: &[u8]| inked(px).iter().filter(|&&(x, y)| alpha(px, x, y) < 255).count();
        let smooth = render(|c| c.draw_circle(32.0, 32.0, 10.3, &Paint::fill(red())));
        assert!(partial(&smooth) > 10);
        let hard = render(|c| c.draw_circle(32.0, 32.0, 10.3, &Paint { anti_alias: false, ..Paint::fill(red()) }));
        assert_eq!(partial(&hard), 0);
    }

    #[test]
    fn translucent_paint_stays_premultiplied() {
        let paint = Paint::fill(Color::from_rgba8(200, 100, 50, 255)).with_alpha(128);
        let px = render(|c| {
            c.draw_circle(30.0, 30.0, 12.0, &paint);
            c.draw_rect(20.0, 20.0, 30.0, 30.0, &paint);
        });
        for chunk in px.chunks_exact(4) {
            assert!(chunk[0] <= chunk[3] && chunk[1] <= chunk[3] && chunk[2] <= chunk[3], "{chunk:?}");
        }
        assert_eq!(pixel(&px, 5, 5), [0, 0, 0, 0]);
        let [r, _, _, a] = pixel(&px, 40, 40);
        assert!((127..=129).contains(&a) && (99..=101).contains(&r), "{r} {a}");
    }

    #[test]
    fn whole_pixel_rect_fast_path_matches_tiny_skia() {
        let paint = Paint::fill(Color::from_rgba8(200, 100, 50, 255)).with_alpha(77);
        let draw = |direct: bool| {
            render(|c| {
                c.clear(Color::from_rgba8(10, 90, 200, 180));
                c.translate(3.0, -4.0);
                c.scale(2.0, 1.0);
                let rect = Rect::from_xywh(1.0, 2.0, 40.0, 80.0).unwrap();
                match direct {
                    true => c.draw_rect(1.0, 2.0, 40.0, 80.0, &paint),
                    false => c.draw_path(&PathBuilder::from_rect(rect), &paint),
                }
            })
        };
        let (direct, reference) = (draw(true), draw(false));
        assert_close(&direct, &reference);
        assert_ne!(pixel(&direct, 10, 10), pixel(&direct, 2, 10), "the rect starts at x = 5");
    }

    fn gradient(start: (f32, f32), end: (f32, f32)) -> Paint {
        let stops = vec![
            (0.0, Color::from_rgba8(255, 0, 0, 40)),
            (0.3, Color::from_rgba8(0, 255, 0, 255)),
            (1.0, Color::from_rgba8(0, 0, 255, 160)),
        ];
        Paint {
            shader: Some(Shader::LinearGradient { start, end, stops, mode: SpreadMode::Repeat }),
            ..Paint::default()
        }
    }

    #[test]
    fn axis_gradient_fast_path_matches_tiny_skia() {
        for paint in [gradient((5.0, 0.0), (20.0, 0.0)), gradient((0.0, 40.0), (0.0, 3.0))] {
            let draw = |direct: bool| {
                render(|c| {
                    backdrop(c);
                    c.translate(2.0, 1.0);
                    c.scale(1.0, 2.0);
                    match direct {
                        true => c.draw_rect(3.0, 4.0, 50.0, 25.0, &paint),
                        false => {
                            c.draw_path(&PathBuilder::from_rect(Rect::from_xywh(3.0, 4.0, 50.0, 25.0).unwrap()), &paint)
                        }
                    }
                })
            };
            let direct = draw(true);
            assert_close(&direct, &draw(false));
            assert_ne!(direct, render(backdrop), "the gradient was drawn");
        }
    }

    #[test]
    fn gradient_draw_paint_matches_a_full_rect() {
        for paint in [gradient((0.0, 0.0), (0.0, 64.0)), gradient((0.0, 0.0), (64.0, 64.0))] {
            let everything = render(|c| c.draw_paint(&paint));
            let reference = render(|c| {
                c.draw_path(&PathBuilder::from_rect(Rect::from_xywh(0.0, 0.0, 64.0, 64.0).unwrap()), &paint)
            });
            assert_close(&everything, &reference);
        }
    }

    #[test]
    fn solid_draw_paint_covers_everything_and_respects_clip() {
        let paint = Paint::fill(red()).with_alpha(128);
        let px = render(|c| c.draw_paint(&paint));
        assert!(px.chunks_exact(4).all(|p| p == [128, 0, 0, 128]), "{:?}", pixel(&px, 0, 0));
        let clipped = render(|c| {
            c.clip_rect(0.0, 0.0, 10.0, 10.0, false);
            c.draw_paint(&paint);
        });
        assert_eq!(inked(&clipped).len(), 100);
    }

    #[test]
    fn restore_undoes_a_translate() {
        let px = render(|c| {
            c.save();
            c.translate(40.0, 40.0);
            c.draw_rect(0.0, 0.0, 4.0, 4.0, &Paint::fill(red()));
            c.restore();
            c.draw_rect(0.0, 0.0, 4.0, 4.0, &Paint::fill(red()));
        });
        assert_eq!(alpha(&px, 42, 42), 255);
        assert_eq!(alpha(&px, 2, 2), 255);
        assert_eq!(inked(&px).len(), 32);
    }

    #[test]
    fn scale_and_rotation_follow_skia_order() {
        let px = render(|c| {
            c.translate(32.0, 32.0);
            c.rotate(90.0);
            c.scale(2.0, 1.0);
            c.draw_rect(0.0, -1.0, 10.0, 2.0, &Paint::fill(red()));
        });
        // A 20x2 bar pointing right, turned a quarter clockwise: it points down.
        assert_eq!(alpha(&px, 32, 50), 255);
        assert_eq!(alpha(&px, 50, 32), 0);
    }

    #[test]
    fn rotate_about_keeps_the_pivot() {
        let px = render(|c| {
            c.rotate_about(180.0, 32.0, 32.0);
            c.draw_rect(0.0, 0.0, 8.0, 8.0, &Paint::fill(red()));
        });
        assert_eq!(alpha(&px, 60, 60), 255);
        assert_eq!(alpha(&px, 2, 2), 0);
    }

    #[test]
    fn save_count_and_restore_to_count() {
        let px = render(|c| {
            assert_eq!(c.save_count(), 1);
            c.save();
            c.translate(10.0, 0.0);
            c.save();
            c.translate(10.0, 0.0);
            assert_eq!(c.save_count(), 3);
            c.restore_to_count(1);
            assert_eq!(c.transform(), Transform::identity());
            c.restore(); // nothing saved: a no-op
            c.draw_rect(0.0, 0.0, 1.0, 1.0, &Paint::fill(red()));
        });
        assert_eq!(inked(&px), vec![(0, 0)]);
    }

    #[test]
    fn clip_rect_limits_drawing_until_restore() {
        let px = render(|c| {
            c.save();
            c.clip_rect(10.0, 10.0, 20.0, 20.0, false);
            c.clear(red());
            c.restore();
            c.draw_rect(50.0, 50.0, 4.0, 4.0, &Paint::fill(red()));
        });
        let ink = inked(&px);
        assert_eq!(ink.len(), 400 + 16);
        assert!(ink.iter().all(|&(x, y)| (10..30).contains(&x) && (10..30).contains(&y) || x >= 50 && y >= 50));
    }

    #[test]
    fn nested_clips_intersect_and_follow_the_transform() {
        let px = render(|c| {
            c.translate(8.0, 8.0);
            c.clip_rect(0.0, 0.0, 20.0, 20.0, false);
            c.clip_rect(10.0, 10.0, 40.0, 40.0, false);
            c.draw_paint(&Paint::fill(red()));
        });
        let ink = inked(&px);
        assert_eq!(ink.len(), 100);
        assert!(ink.iter().all(|&(x, y)| (18..28).contains(&x) && (18..28).contains(&y)));
    }

    #[test]
    fn linear_gradient_varies_along_its_axis_only() {
        let paint = Paint {
            shader: Some(Shader::LinearGradient {
                start: (0.0, 0.0),
                end: (64.0, 0.0),
                stops: vec![(0.0, Color::from_rgba8(255, 0, 0, 255)), (1.0, Color::from_rgba8(0, 0, 255, 255))],
                mode: SpreadMode::Pad,
            }),
            ..Paint::default()
        };
        let px = render(|c| c.draw_rect(0.0, 0.0, 64.0, 64.0, &paint));
        let (left, right) = (pixel(&px, 2, 10), pixel(&px, 61, 10));
        assert!(left[0] > 240 && left[2] < 15, "{left:?}");
        assert!(right[2] > 240 && right[0] < 15, "{right:?}");
        assert_eq!(pixel(&px, 30, 5), pixel(&px, 30, 60));
        let reds: Vec<u8> = (0..W).step_by(8).map(|x| pixel(&px, x, 30)[0]).collect();
        assert!(reds.windows(2).all(|w| w[0] > w[1]), "{reds:?}");
    }

    #[test]
    fn radial_gradient_fades_from_its_centre_and_honours_paint_alpha() {
        let paint = Paint {
            color: Color::BLACK,
            shader: Some(Shader::RadialGradient {
                center: (32.0, 32.0),
                radius: 30.0,
                stops: vec![(0.0, Color::WHITE), (1.0, Color::TRANSPARENT)],
                mode: SpreadMode::Pad,
            }),
            ..Paint::default()
        }
        .with_alpha(128);
        let px = render(|c| c.draw_paint(&paint));
        assert!((120..=128).contains(&alpha(&px, 32, 32)), "{:?}", pixel(&px, 32, 32));
        assert!(alpha(&px, 32, 32) > alpha(&px, 45, 32));
        assert_eq!(alpha(&px, 0, 0), 0);
    }

    #[test]
    fn invalid_gradient_draws_nothing() {
        let paint = Paint {
            shader: Some(Shader::RadialGradient {
                center: (32.0, 32.0),
                radius: 0.0,
                stops: vec![(0.0, red()), (1.0, Color::WHITE)],
                mode: SpreadMode::Pad,
            }),
            ..Paint::default()
        };
        assert!(inked(&render(|c| c.draw_rect(0.0, 0.0, 64.0, 64.0, &paint))).is_empty());
    }

    #[test]
    fn lines_are_stroked_even_with_a_fill_paint() {
        let paint = Paint { stroke_width: 4.0, ..Paint::fill(red()) };
        let px = render(|c| c.draw_line(10.0, 32.0, 50.0, 32.0, &paint));
        assert_eq!(alpha(&px, 30, 31), 255);
        assert_eq!(alpha(&px, 30, 40), 0);
        assert_eq!(alpha(&px, 5, 32), 0, "butt caps end at the endpoints");
    }

    #[test]
    fn dashed_line_has_gaps() {
        let paint = Paint { dash: Some((vec![4.0, 4.0], 0.0)), ..Paint::stroke(red(), 2.0) };
        let px = render(|c| c.draw_line(0.0, 32.0, 64.0, 32.0, &paint));
        assert_eq!(alpha(&px, 2, 32), 255);
        assert_eq!(alpha(&px, 6, 32), 0);
        assert_eq!(alpha(&px, 10, 32), 255);
    }

    #[test]
    fn round_rect_corners_are_cut() {
        let px = render(|c| c.draw_round_rect(10.0, 10.0, 40.0, 40.0, 10.0, 10.0, &Paint::fill(red())));
        assert_eq!(alpha(&px, 10, 10), 0);
        assert_eq!(alpha(&px, 30, 11), 255);
        assert_eq!(alpha(&px, 30, 30), 255);
    }

    #[test]
    fn oval_fits_its_rectangle() {
        let px = render(|c| c.draw_oval(0.0, 24.0, 64.0, 16.0, &Paint::fill(red())));
        assert_eq!(alpha(&px, 2, 32), 255);
        assert_eq!(alpha(&px, 32, 20), 0);
        assert_eq!(alpha(&px, 2, 25), 0);
    }

    #[test]
    fn negative_sizes_extend_up_and_left() {
        let px = render(|c| c.draw_rect(20.0, 20.0, -10.0, -10.0, &Paint::fill(red())));
        assert_eq!(alpha(&px, 15, 15), 255);
        assert_eq!(inked(&px).len(), 100);
    }

    #[test]
    fn clear_replaces_instead_of_blending() {
        let px = render(|c| {
            c.clear(red());
            c.clear(Color::from_rgba8(0, 0, 255, 51));
        });
        assert_eq!(pixel(&px, 7, 7), [0, 0, 51, 51]);
    }

    #[test]
    fn blend_mode_is_applied() {
        let px = render(|c| {
            c.clear(red());
            c.draw_rect(0.0, 0.0, 8.0, 8.0, &Paint { blend_mode: BlendMode::Clear, ..Paint::default() });
        });
        assert_eq!(pixel(&px, 4, 4), [0, 0, 0, 0]);
        assert_eq!(pixel(&px, 9, 9), [255, 0, 0, 255]);
    }

    /// A 16x12 image with varied, translucent premultiplied pixels.
    fn test_image() -> Image {
        let (w, h) = (16, 12);
        let pixels = (0..w * h)
            .flat_map(|i| {
                let a = (i * 37 % 256) as u8;
                [a / 2, a / 3, a, a]
            })
            .collect();
        Image::from_rgba_premul(w, h, pixels).unwrap()
    }

    fn assert_close(a: &[u8], b: &[u8]) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(x.abs_diff(*y) <= 1, "byte {i}: {x} vs {y}");
        }
    }

    fn backdrop(c: &mut Canvas<'_>) {
        c.clear(Color::from_rgba8(20, 200, 90, 255));
        c.draw_rect(0.0, 0.0, 32.0, 64.0, &Paint::fill(Color::from_rgba8(90, 10, 30, 120)));
    }

    #[test]
    fn image_fast_path_matches_tiny_skia() {
        let image = test_image();
        for (x, y) in [(5, 7), (-4, -3), (56, 58)] {
            let fast = render(|c| {
                backdrop(c);
                c.draw_image(&image, x as f32, y as f32, 0.6);
            });
            let slow = render(|c| {
                backdrop(c);
                c.draw_image_resampled(&image, Transform::from_translate(x as f32, y as f32), 0.6);
            });
            assert_close(&fast, &slow);
            assert_ne!(fast, render(backdrop), "the image was drawn");
        }
    }

    #[test]
    fn unscaled_image_rect_takes_the_fast_path_too() {
        let image = test_image();
        let via_rect = render(|c| {
            c.translate(3.0, 2.0);
            c.draw_image_rect(&image, Rect::from_xywh(4.0, 5.0, 16.0, 12.0).unwrap(), 1.0);
        });
        let direct = render(|c| c.draw_image(&image, 7.0, 7.0, 1.0));
        assert_eq!(via_rect, direct);
    }

    #[test]
    fn scaled_image_fills_its_rect() {
        let image = Image::from_rgba_premul(2, 2, [255, 0, 0, 255].repeat(4)).unwrap();
        let px = render(|c| c.draw_image_rect(&image, Rect::from_xywh(10.0, 10.0, 20.0, 30.0).unwrap(), 1.0));
        assert_eq!(pixel(&px, 12, 12), [255, 0, 0, 255]);
        assert_eq!(pixel(&px, 28, 38), [255, 0, 0, 255]);
        assert_eq!(alpha(&px, 31, 20), 0);
        assert_eq!(alpha(&px, 20, 41), 0);
    }

    #[test]
    fn clipped_image_stays_inside_the_clip() {
        let image = Image::from_rgba_premul(40, 40, [255, 0, 0, 255].repeat(1600)).unwrap();
        let px = render(|c| {
            c.clip_rect(0.0, 0.0, 20.0, 64.0, false);
            c.draw_image(&image, 10.0, 10.0, 1.0);
        });
        assert_eq!(alpha(&px, 15, 15), 255);
        assert_eq!(alpha(&px, 25, 15), 0);
    }

    #[test]
    fn image_from_frame_shares_rgba_and_refuses_other_formats() {
        let mut frame = Frame::new(PixelFormat::Rgba8Premul, 4, 2).unwrap();
        frame.data_mut()[..4].copy_from_slice(&[1, 2, 3, 4]);
        let image = Image::from_frame(&frame).unwrap();
        assert_eq!((image.width(), image.height()), (4, 2));
        assert_eq!(image.pixels().as_ptr(), frame.data().as_ptr());
        assert_eq!(image.as_pixmap().pixel(0, 0).unwrap().alpha(), 4);

        let yuv = Frame::new(PixelFormat::I420, 4, 2).unwrap();
        let err = Image::from_frame(&yuv).unwrap_err().to_string();
        assert!(err.contains("rgba") && err.contains("i420"), "{err}");
        assert!(Image::from_rgba_premul(2, 2, vec![0; 15]).is_err());
    }

    #[test]
    fn canvas_refuses_non_rgba_frames() {
        let mut frame = Frame::new(PixelFormat::Gray8, 4, 4).unwrap();
        assert!(Canvas::new(&mut frame).is_err());
        let mut frame = Frame::new(PixelFormat::Rgba8Premul, 4, 4).unwrap();
        Canvas::new(&mut frame).unwrap().clear(red());
        assert_eq!(&frame.data()[..4], &[255, 0, 0, 255]);
    }

    /// Ink bounds (min x, min y, max x, max y) of a 256x96 text rendering.
    fn text_ink(draw: impl FnOnce(&mut Canvas<'_>, &Font)) -> (u32, u32, u32, u32) {
        let (w, h) = (256, 96);
        let mut pixels = vec![0; (w * h * 4) as usize];
        draw(&mut Canvas::from_rgba(&mut pixels, w, h).unwrap(), &Font::default_font());
        let ink = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| pixels[((y * w + x) * 4 + 3) as usize] > 0);
        ink.fold((u32::MAX, u32::MAX, 0, 0), |(x0, y0, x1, y1), (x, y)| (x0.min(x), y0.min(y), x1.max(x), y1.max(y)))
    }

    #[test]
    fn text_ink_lies_inside_its_measured_box() {
        let font = Font::default_font();
        let width = font.measure("Hello", 48.0);
        let (x0, y0, x1, y1) = text_ink(|c, font| c.draw_text("Hello", 20.0, 60.0, font, 48.0, &Paint::fill(red())));
        assert!((20..30).contains(&x0), "starts near x: {x0}");
        assert!((x1 as f32) < 20.0 + width && (x1 as f32) > 20.0 + width - 10.0, "{x1} vs {width}");
        assert!(y0 as f32 >= 60.0 - font.ascent(48.0) && y0 < 30, "cap height: {y0}");
        assert!(y1 <= 61, "no descenders in Hello: {y1}");
    }

    #[test]
    fn text_follows_the_transform() {
        let plain = text_ink(|c, font| c.draw_text("Hi", 10.0, 50.0, font, 32.0, &Paint::default()));
        let moved = text_ink(|c, font| {
            c.translate(100.0, 20.0);
            c.draw_text("Hi", 10.0, 50.0, font, 32.0, &Paint::default());
        });
        assert_eq!((moved.0, moved.1), (plain.0 + 100, plain.1 + 20));
    }

    #[test]
    fn stroked_text_is_hollow() {
        let fill = Paint::fill(red());
        let filled = render(|c| c.draw_text("I", 20.0, 60.0, &Font::default_font(), 60.0, &fill));
        let stroked = render(|c| c.draw_text("I", 20.0, 60.0, &Font::default_font(), 60.0, &Paint::stroke(red(), 1.0)));
        let stem = inked(&filled).into_iter().filter(|&(x, y)| alpha(&filled, x, y) == 255).count();
        let outline = inked(&stroked).into_iter().filter(|&(x, y)| alpha(&stroked, x, y) == 255).count();
        assert!(outline < stem / 2, "outline {outline} vs stem {stem}");
    }

    #[test]
    fn aligned_text_is_centred_on_its_anchor() {
        let (x0, _, x1, _) = text_ink(|c, font| {
            c.draw_text_aligned("Centre", 128.0, 60.0, font, 32.0, TextAlign::Center, &Paint::default())
        });
        let middle = (x0 + x1) as f32 / 2.0;
        assert!((middle - 128.0).abs() <= 3.0, "ink {x0}..{x1}");
        let (_, _, right, _) = text_ink(|c, font| {
            c.draw_text_aligned("Right", 200.0, 60.0, font, 32.0, TextAlign::Right, &Paint::default())
        });
        assert!((195..=200).contains(&right), "{right}");
    }

    #[test]
    fn measure_text_orders_narrow_and_wide_glyphs() {
        let mut pixels = vec![0; 16];
        let canvas = Canvas::from_rgba(&mut pixels, 2, 2).unwrap();
        let font = Font::default_font();
        assert!(canvas.measure_text("ii", &font, 48.0) < canvas.measure_text("WW", &font, 48.0));
    }
}
