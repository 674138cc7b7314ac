//! The skia-python API subset that drawing code uses, over the engine's
//! tiny-skia canvas: `Canvas`, `Paint`, `Rect`, `Path`, `Font`, `Typeface`,
//! `Image`. Names and arguments follow skia-python so that code written for
//! it runs unchanged; `streamkit.skia` re-exports these with the colour
//! constants. Colours are skia's 0xAARRGGBB integers.

// Method and constant names are skia-python's (drawCircle, kFill_Style).
#![allow(non_snake_case, non_upper_case_globals)]

use std::sync::{Arc, Mutex};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use streamkit_core::canvas::{self as sk, Color, LineCap, LineJoin, PaintStyle, PathBuilder};
use streamkit_core::text;

use crate::errors::to_py;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Canvas>()?;
    m.add_class::<Paint>()?;
    m.add_class::<Rect>()?;
    m.add_class::<Path>()?;
    m.add_class::<Font>()?;
    m.add_class::<Typeface>()?;
    m.add_class::<Image>()?;
    Ok(())
}

pub fn color_from_argb(argb: u32) -> Color {
    let [a, r, g, b] = argb.to_be_bytes();
    Color::from_rgba8(r, g, b, a)
}

fn color_to_argb(color: Color) -> u32 {
    let c = color.to_color_u8();
    u32::from_be_bytes([c.alpha(), c.red(), c.green(), c.blue()])
}

// ---------------------------------------------------------------- canvas

/// The engine canvas a layer draws on, lent for one render call.
pub struct CanvasPtr(*mut sk::Canvas<'static>);

// SAFETY: the pointer is only dereferenced under `CanvasSlot`'s mutex, and
// the slot is emptied (by `Lent`'s drop) before the canvas it points at ends.
unsafe impl Send for CanvasPtr {}

pub type CanvasSlot = Arc<Mutex<Option<CanvasPtr>>>;

/// Lends `canvas` to Python until dropped; afterwards every call on the
/// Python canvas raises instead of touching freed memory.
pub struct Lent(pub CanvasSlot);

impl Lent {
    pub fn new(canvas: &mut sk::Canvas<'_>) -> Lent {
        // The lifetime is erased here and enforced by emptying the slot on drop.
        let ptr: *mut sk::Canvas<'static> = (canvas as *mut sk::Canvas<'_>).cast();
        Lent(Arc::new(Mutex::new(Some(CanvasPtr(ptr)))))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// skia's `Canvas`, valid during the render call it was given to.
#[pyclass(module = "streamkit._native", frozen)]
pub struct Canvas {
    slot: CanvasSlot,
    #[pyo3(get)]
    width: u32,
    #[pyo3(get)]
    height: u32,
}

impl Canvas {
    pub fn new(lent: &Lent, width: u32, height: u32) -> Canvas {
        Canvas { slot: lent.0.clone(), width, height }
    }

    fn with<R>(&self, draw: impl FnOnce(&mut sk::Canvas<'static>) -> R) -> PyResult<R> {
        let guard = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            // SAFETY: a slot holds a pointer only while its canvas is lent (see Lent).
            Some(ptr) => Ok(draw(unsafe { &mut *ptr.0 })),
            None => Err(PyRuntimeError::new_err(
                "this canvas belongs to a finished render call; draw only inside render/draw",
            )),
        }
    }
}

fn rect_arg(value: &Bound<'_, PyAny>) -> PyResult<Rect> {
    if let Ok(rect) = value.downcast::<Rect>() {
        return Ok(*rect.borrow());
    }
    let (l, t, r, b): (f32, f32, f32, f32) = value
        .extract()
        .map_err(|_| PyTypeError::new_err("expected a skia.Rect or a (left, top, right, bottom) tuple"))?;
    Ok(Rect { left: l, top: t, right: r, bottom: b })
}

#[pymethods]
impl Canvas {
    fn drawCircle(&self, cx: f32, cy: f32, radius: f32, paint: PyRef<'_, Paint>) -> PyResult<()> {
        self.with(|c| c.draw_circle(cx, cy, radius, &paint.paint))
    }

    fn drawRect(&self, rect: &Bound<'_, PyAny>, paint: PyRef<'_, Paint>) -> PyResult<()> {
        let r = rect_arg(rect)?;
        self.with(|c| c.draw_rect(r.left, r.top, r.right - r.left, r.bottom - r.top, &paint.paint))
    }

    fn drawRoundRect(&self, rect: &Bound<'_, PyAny>, rx: f32, ry: f32, paint: PyRef<'_, Paint>) -> PyResult<()> {
        let r = rect_arg(rect)?;
        self.with(|c| c.draw_round_rect(r.left, r.top, r.right - r.left, r.bottom - r.top, rx, ry, &paint.paint))
    }

    fn drawOval(&self, rect: &Bound<'_, PyAny>, paint: PyRef<'_, Paint>) -> PyResult<()> {
        let r = rect_arg(rect)?;
        self.with(|c| c.draw_oval(r.left, r.top, r.right - r.left, r.bottom - r.top, &paint.paint))
    }

    fn drawLine(&self, x0: f32, y0: f32, x1: f32, y1: f32, paint: PyRef<'_, Paint>) -> PyResult<()> {
        self.with(|c| c.draw_line(x0, y0, x1, y1, &paint.paint))
    }

    fn drawPath(&self, path: PyRef<'_, Path>, paint: PyRef<'_, Paint>) -> PyResult<()> {
        let Some(built) = path.build() else { return Ok(()) };
        self.with(|c| c.draw_path(&built, &paint.paint))
    }

    fn drawPaint(&self, paint: PyRef<'_, Paint>) -> PyResult<()> {
        self.with(|c| c.draw_paint(&paint.paint))
    }

    /// Fills with `color` blended over what is there (skia's drawColor).
    fn drawColor(&self, color: u32) -> PyResult<()> {
        self.with(|c| c.draw_paint(&sk::Paint::fill(color_from_argb(color))))
    }

    /// Replaces every pixel (inside the clip) with `color`.
    #[pyo3(signature = (color = 0))]
    fn clear(&self, color: u32) -> PyResult<()> {
        self.with(|c| c.clear(color_from_argb(color)))
    }

    /// `drawText(text, x, y, paint)` (the design's form, size from
    /// `paint.setTextSize`) or skia's `drawText(text, x, y, font, paint)`.
    #[pyo3(signature = (text, x, y, *args))]
    fn drawText(&self, text: &str, x: f32, y: f32, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let (font, size, paint) = text_args(args)?;
        let paint = paint.borrow();
        let size = size.unwrap_or(paint.text_size);
        self.with(|c| c.draw_text(text, x, y, &font, size, &paint.paint))
    }

    /// skia's `drawString(text, x, y, font, paint)`; same as drawText.
    #[pyo3(signature = (text, x, y, *args))]
    fn drawString(&self, text: &str, x: f32, y: f32, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.drawText(text, x, y, args)
    }

    /// Draws `image` at (x, y); the paint's alpha, if any, scales its opacity.
    #[pyo3(signature = (image, x, y, paint = None))]
    fn drawImage(&self, image: PyRef<'_, Image>, x: f32, y: f32, paint: Option<PyRef<'_, Paint>>) -> PyResult<()> {
        let opacity = paint.map(|p| p.paint.color.alpha()).unwrap_or(1.0);
        self.with(|c| c.draw_image(&image.image, x, y, opacity))
    }

    /// Draws `image` scaled into `dst`.
    #[pyo3(signature = (image, dst, paint = None))]
    fn drawImageRect(
        &self,
        image: PyRef<'_, Image>,
        dst: &Bound<'_, PyAny>,
        paint: Option<PyRef<'_, Paint>>,
    ) -> PyResult<()> {
        let r = rect_arg(dst)?;
        let Some(rect) = sk::Rect::from_ltrb(r.left, r.top, r.right, r.bottom) else { return Ok(()) };
        let opacity = paint.map(|p| p.paint.color.alpha()).unwrap_or(1.0);
        self.with(|c| c.draw_image_rect(&image.image, rect, opacity))
    }

    fn save(&self) -> PyResult<usize> {
        self.with(|c| {
            c.save();
            c.save_count()
        })
    }

    fn restore(&self) -> PyResult<()> {
        self.with(|c| c.restore())
    }

    fn getSaveCount(&self) -> PyResult<usize> {
        self.with(|c| c.save_count())
    }

    fn restoreToCount(&self, count: usize) -> PyResult<()> {
        self.with(|c| c.restore_to_count(count))
    }

    fn translate(&self, dx: f32, dy: f32) -> PyResult<()> {
        self.with(|c| c.translate(dx, dy))
    }

    #[pyo3(signature = (sx, sy = None))]
    fn scale(&self, sx: f32, sy: Option<f32>) -> PyResult<()> {
        self.with(|c| c.scale(sx, sy.unwrap_or(sx)))
    }

    /// Rotates by `degrees`, about (px, py) when given.
    #[pyo3(signature = (degrees, px = None, py = None))]
    fn rotate(&self, degrees: f32, px: Option<f32>, py: Option<f32>) -> PyResult<()> {
        self.with(|c| match (px, py) {
            (Some(x), Some(y)) => c.rotate_about(degrees, x, y),
            _ => c.rotate(degrees),
        })
    }

    fn resetMatrix(&self) -> PyResult<()> {
        self.with(|c| c.reset_transform())
    }

    #[pyo3(signature = (rect, doAntiAlias = false))]
    fn clipRect(&self, rect: &Bound<'_, PyAny>, doAntiAlias: bool) -> PyResult<()> {
        let r = rect_arg(rect)?;
        self.with(|c| c.clip_rect(r.left, r.top, r.right - r.left, r.bottom - r.top, doAntiAlias))
    }

    /// Blends a premultiplied RGBA `(height, width, 4)` uint8 array of the
    /// canvas's size over it, reading the array's memory in place (no copy):
    /// how pixels drawn by skia-python or numpy reach the frame.
    #[pyo3(signature = (array, opacity = 1.0))]
    fn blendArray(&self, array: &Bound<'_, PyAny>, opacity: f32) -> PyResult<()> {
        let pixels = PyBuffer::<u8>::get(array)?;
        let expected = [self.height as usize, self.width as usize, 4];
        if pixels.shape() != expected || !pixels.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "blendArray needs a C-contiguous uint8 array of shape {expected:?}, got {:?}",
                pixels.shape()
            )));
        }
        // SAFETY: the export above pins the array's memory for this call, and
        // the engine only reads it.
        let src = unsafe { std::slice::from_raw_parts(pixels.buf_ptr() as *const u8, pixels.len_bytes()) };
        let alpha = (opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
        self.with(|c| streamkit_core::blend::over_row(c.pixels_mut(), src, alpha))
    }

    /// (width, height) of the surface.
    fn getBaseLayerSize(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// `(paint)` or `(font, paint)` after drawText's text, x, y.
fn text_args<'py>(args: &Bound<'py, PyTuple>) -> PyResult<(Arc<text::Font>, Option<f32>, Bound<'py, Paint>)> {
    let bad = || PyTypeError::new_err("drawText(text, x, y, paint) or drawText(text, x, y, font, paint)");
    match args.len() {
        1 => Ok((text::Font::default_font(), None, args.get_item(0)?.downcast_into::<Paint>().map_err(|_| bad())?)),
        2 => {
            let font = args.get_item(0)?;
            let paint = args.get_item(1)?.downcast_into::<Paint>().map_err(|_| bad())?;
            if font.is_none() {
                return Ok((text::Font::default_font(), None, paint));
            }
            let font = font.downcast::<Font>().map_err(|_| bad())?.borrow();
            Ok((font.typeface.clone(), Some(font.size), paint))
        }
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------- paint

/// skia's `Paint`: `skia.Paint(AntiAlias=True, Color=skia.ColorRED)`.
#[pyclass(module = "streamkit._native")]
#[derive(Clone)]
pub struct Paint {
    pub paint: sk::Paint,
    /// Size for the design's `drawText(text, x, y, paint)` (skia ≤ m87 kept it on the paint).
    pub text_size: f32,
}

#[pymethods]
impl Paint {
    #[classattr]
    const kFill_Style: u8 = 0;
    #[classattr]
    const kStroke_Style: u8 = 1;
    #[classattr]
    const kStrokeAndFill_Style: u8 = 2;
    #[classattr]
    const kButt_Cap: u8 = 0;
    #[classattr]
    const kRound_Cap: u8 = 1;
    #[classattr]
    const kSquare_Cap: u8 = 2;
    #[classattr]
    const kMiter_Join: u8 = 0;
    #[classattr]
    const kRound_Join: u8 = 1;
    #[classattr]
    const kBevel_Join: u8 = 2;

    /// `Paint(**props)` calls `set<Prop>(value)` for each, as skia-python does.
    #[new]
    #[pyo3(signature = (paint = None, **props))]
    fn new(paint: Option<PyRef<'_, Paint>>, props: Option<&Bound<'_, PyDict>>) -> PyResult<Paint> {
        let mut this = match paint {
            Some(p) => p.clone(),
            None => Paint { paint: sk::Paint::default(), text_size: 12.0 },
        };
        if let Some(props) = props {
            for (key, value) in props.iter() {
                this.set(&key.extract::<String>()?, &value)?;
            }
        }
        Ok(this)
    }

    fn setColor(&mut self, color: u32) {
        self.paint.color = color_from_argb(color);
    }

    fn getColor(&self) -> u32 {
        color_to_argb(self.paint.color)
    }

    fn setAlpha(&mut self, alpha: u8) {
        self.paint.set_alpha(alpha);
    }

    fn getAlpha(&self) -> u8 {
        (self.paint.color.alpha() * 255.0).round() as u8
    }

    fn setAlphaf(&mut self, alpha: f32) {
        self.paint.color.set_alpha(alpha.clamp(0.0, 1.0));
    }

    fn getAlphaf(&self) -> f32 {
        self.paint.color.alpha()
    }

    fn setARGB(&mut self, a: u8, r: u8, g: u8, b: u8) {
        self.paint.color = Color::from_rgba8(r, g, b, a);
    }

    fn setAntiAlias(&mut self, anti_alias: bool) {
        self.paint.anti_alias = anti_alias;
    }

    fn isAntiAlias(&self) -> bool {
        self.paint.anti_alias
    }

    fn setStyle(&mut self, style: u8) -> PyResult<()> {
        self.paint.style = match style {
            0 => PaintStyle::Fill,
            1 => PaintStyle::Stroke,
            2 => PaintStyle::StrokeAndFill,
            _ => {
                return Err(PyValueError::new_err(
                    "style must be Paint.kFill_Style, kStroke_Style or kStrokeAndFill_Style",
                ))
            }
        };
        Ok(())
    }

    fn getStyle(&self) -> u8 {
        match self.paint.style {
            PaintStyle::Fill => 0,
            PaintStyle::Stroke => 1,
            PaintStyle::StrokeAndFill => 2,
        }
    }

    fn setStrokeWidth(&mut self, width: f32) {
        self.paint.stroke_width = width;
    }

    fn getStrokeWidth(&self) -> f32 {
        self.paint.stroke_width
    }

    fn setStrokeCap(&mut self, cap: u8) {
        self.paint.stroke_cap = match cap {
            1 => LineCap::Round,
            2 => LineCap::Square,
            _ => LineCap::Butt,
        };
    }

    fn setStrokeJoin(&mut self, join: u8) {
        self.paint.stroke_join = match join {
            1 => LineJoin::Round,
            2 => LineJoin::Bevel,
            _ => LineJoin::Miter,
        };
    }

    fn setTextSize(&mut self, size: f32) {
        self.text_size = size;
    }

    fn getTextSize(&self) -> f32 {
        self.text_size
    }

    /// Dashes for strokes: `setDash([on, off, …], phase)` (skia spells it
    /// `setPathEffect(DashPathEffect.Make(...))`, which the shim maps here).
    #[pyo3(signature = (intervals, phase = 0.0))]
    fn setDash(&mut self, intervals: Vec<f32>, phase: f32) {
        self.paint.dash = if intervals.is_empty() { None } else { Some((intervals, phase)) };
    }

    /// `setPathEffect(skia.DashPathEffect.Make(intervals, phase))` or None.
    fn setPathEffect(&mut self, effect: &Bound<'_, PyAny>) -> PyResult<()> {
        if effect.is_none() {
            self.paint.dash = None;
            return Ok(());
        }
        self.setDash(effect.getattr("intervals")?.extract()?, effect.getattr("phase")?.extract()?);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "Paint(Color=0x{:08X}, AntiAlias={}, Style={})",
            self.getColor(),
            self.paint.anti_alias,
            self.getStyle()
        )
    }
}

impl Paint {
    fn set(&mut self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match key {
            "Color" => self.setColor(value.extract()?),
            "Alpha" => self.setAlpha(value.extract()?),
            "Alphaf" => self.setAlphaf(value.extract()?),
            "AntiAlias" => self.setAntiAlias(value.extract()?),
            "Style" => self.setStyle(value.extract()?)?,
            "StrokeWidth" => self.setStrokeWidth(value.extract()?),
            "StrokeCap" => self.setStrokeCap(value.extract()?),
            "StrokeJoin" => self.setStrokeJoin(value.extract()?),
            "TextSize" => self.setTextSize(value.extract()?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "skia.Paint: unsupported property '{key}'; supported: Color, Alpha, Alphaf, AntiAlias, Style, StrokeWidth, StrokeCap, StrokeJoin, TextSize"
                )))
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- rect

/// skia's `Rect` (left, top, right, bottom).
#[pyclass(module = "streamkit._native", frozen)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
}

#[pymethods]
impl Rect {
    /// `Rect(l, t, r, b)`, or `Rect(w, h)` (skia-python's forms).
    #[new]
    #[pyo3(signature = (*args))]
    fn new(args: Vec<f32>) -> PyResult<Rect> {
        match args.as_slice() {
            [] => Ok(Rect { left: 0.0, top: 0.0, right: 0.0, bottom: 0.0 }),
            [w, h] => Ok(Rect { left: 0.0, top: 0.0, right: *w, bottom: *h }),
            [l, t, r, b] => Ok(Rect { left: *l, top: *t, right: *r, bottom: *b }),
            _ => Err(PyTypeError::new_err("Rect(), Rect(width, height) or Rect(left, top, right, bottom)")),
        }
    }

    #[staticmethod]
    fn MakeXYWH(x: f32, y: f32, w: f32, h: f32) -> Rect {
        Rect { left: x, top: y, right: x + w, bottom: y + h }
    }

    #[staticmethod]
    fn MakeLTRB(l: f32, t: f32, r: f32, b: f32) -> Rect {
        Rect { left: l, top: t, right: r, bottom: b }
    }

    #[staticmethod]
    fn MakeWH(w: f32, h: f32) -> Rect {
        Rect { left: 0.0, top: 0.0, right: w, bottom: h }
    }

    #[getter]
    fn fLeft(&self) -> f32 {
        self.left
    }
    #[getter]
    fn fTop(&self) -> f32 {
        self.top
    }
    #[getter]
    fn fRight(&self) -> f32 {
        self.right
    }
    #[getter]
    fn fBottom(&self) -> f32 {
        self.bottom
    }
    fn left(&self) -> f32 {
        self.left
    }
    fn top(&self) -> f32 {
        self.top
    }
    fn right(&self) -> f32 {
        self.right
    }
    fn bottom(&self) -> f32 {
        self.bottom
    }
    fn x(&self) -> f32 {
        self.left
    }
    fn y(&self) -> f32 {
        self.top
    }
    fn width(&self) -> f32 {
        self.right - self.left
    }
    fn height(&self) -> f32 {
        self.bottom - self.top
    }
    fn centerX(&self) -> f32 {
        (self.left + self.right) / 2.0
    }
    fn centerY(&self) -> f32 {
        (self.top + self.bottom) / 2.0
    }
    fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.left && x < self.right && y >= self.top && y < self.bottom
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        rect_arg(other).is_ok_and(|o| o == *self)
    }
    fn __repr__(&self) -> String {
        format!("Rect({}, {}, {}, {})", self.left, self.top, self.right, self.bottom)
    }
}

// ---------------------------------------------------------------- path

#[derive(Clone, Debug)]
enum Verb {
    Move(f32, f32),
    Line(f32, f32),
    Quad(f32, f32, f32, f32),
    Cubic(f32, f32, f32, f32, f32, f32),
    Close,
    Circle(f32, f32, f32),
    Rect(Rect),
    Oval(Rect),
}

/// skia's `Path`: moveTo/lineTo/quadTo/cubicTo/close, addCircle/addRect/addOval.
#[pyclass(module = "streamkit._native")]
#[derive(Clone, Default)]
pub struct Path {
    verbs: Vec<Verb>,
}

impl Path {
    fn build(&self) -> Option<sk::Path> {
        let mut b = PathBuilder::new();
        for verb in &self.verbs {
            match *verb {
                Verb::Move(x, y) => b.move_to(x, y),
                Verb::Line(x, y) => b.line_to(x, y),
                Verb::Quad(x1, y1, x, y) => b.quad_to(x1, y1, x, y),
                Verb::Cubic(x1, y1, x2, y2, x, y) => b.cubic_to(x1, y1, x2, y2, x, y),
                Verb::Close => b.close(),
                Verb::Circle(x, y, r) => b.push_circle(x, y, r),
                Verb::Rect(r) => {
                    if let Some(rect) = sk::Rect::from_ltrb(r.left, r.top, r.right, r.bottom) {
                        b.push_rect(rect)
                    }
                }
                Verb::Oval(r) => {
                    if let Some(rect) = sk::Rect::from_ltrb(r.left, r.top, r.right, r.bottom) {
                        b.push_oval(rect)
                    }
                }
            }
        }
        b.finish()
    }
}

#[pymethods]
impl Path {
    #[new]
    fn new() -> Path {
        Path::default()
    }
    fn moveTo(mut slf: PyRefMut<'_, Self>, x: f32, y: f32) -> PyRefMut<'_, Self> {
        slf.verbs.push(Verb::Move(x, y));
        slf
    }
    fn lineTo(mut slf: PyRefMut<'_, Self>, x: f32, y: f32) -> PyRefMut<'_, Self> {
        slf.verbs.push(Verb::Line(x, y));
        slf
    }
    fn quadTo(mut slf: PyRefMut<'_, Self>, x1: f32, y1: f32, x: f32, y: f32) -> PyRefMut<'_, Self> {
        slf.verbs.push(Verb::Quad(x1, y1, x, y));
        slf
    }
    #[allow(clippy::too_many_arguments)]
    fn cubicTo(mut slf: PyRefMut<'_, Self>, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) -> PyRefMut<'_, Self> {
        slf.verbs.push(Verb::Cubic(x1, y1, x2, y2, x, y));
        slf
    }
    fn close(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.verbs.push(Verb::Close);
        slf
    }
    fn addCircle(mut slf: PyRefMut<'_, Self>, x: f32, y: f32, radius: f32) -> PyRefMut<'_, Self> {
        slf.verbs.push(Verb::Circle(x, y, radius));
        slf
    }
    fn addRect<'a>(mut slf: PyRefMut<'a, Self>, rect: &Bound<'_, PyAny>) -> PyResult<PyRefMut<'a, Self>> {
        slf.verbs.push(Verb::Rect(rect_arg(rect)?));
        Ok(slf)
    }
    fn addOval<'a>(mut slf: PyRefMut<'a, Self>, rect: &Bound<'_, PyAny>) -> PyResult<PyRefMut<'a, Self>> {
        slf.verbs.push(Verb::Oval(rect_arg(rect)?));
        Ok(slf)
    }
    fn reset(&mut self) {
        self.verbs.clear();
    }
    fn isEmpty(&self) -> bool {
        self.verbs.is_empty()
    }
    fn countVerbs(&self) -> usize {
        self.verbs.len()
    }
}

// ---------------------------------------------------------------- text

/// skia's `Typeface`: the embedded DejaVu Sans for any family name, or a
/// font file through `Typeface.MakeFromFile(path)`.
#[pyclass(module = "streamkit._native", frozen)]
pub struct Typeface {
    font: Arc<text::Font>,
}

#[pymethods]
impl Typeface {
    #[new]
    #[pyo3(signature = (family = None, style = None))]
    fn new(family: Option<&str>, style: Option<&Bound<'_, PyAny>>) -> Typeface {
        let _ = (family, style);
        Typeface { font: text::Font::default_font() }
    }

    #[staticmethod]
    fn MakeDefault() -> Typeface {
        Typeface { font: text::Font::default_font() }
    }

    #[staticmethod]
    #[pyo3(signature = (family = None, style = None))]
    fn MakeFromName(family: Option<&str>, style: Option<&Bound<'_, PyAny>>) -> Typeface {
        Typeface::new(family, style)
    }

    #[staticmethod]
    fn MakeFromFile(path: &str) -> PyResult<Typeface> {
        Ok(Typeface { font: Arc::new(text::Font::from_file(path).map_err(to_py)?) })
    }

    fn getFamilyName(&self) -> String {
        self.font.family().unwrap_or("").to_string()
    }
}

/// skia's `Font(typeface=None, size=12)`.
#[pyclass(module = "streamkit._native")]
pub struct Font {
    typeface: Arc<text::Font>,
    size: f32,
}

#[pymethods]
impl Font {
    #[new]
    #[pyo3(signature = (typeface = None, size = 12.0, scaleX = 1.0, skewX = 0.0))]
    fn new(typeface: Option<PyRef<'_, Typeface>>, size: f32, scaleX: f32, skewX: f32) -> Font {
        let _ = (scaleX, skewX);
        Font { typeface: typeface.map(|t| t.font.clone()).unwrap_or_else(text::Font::default_font), size }
    }
    fn setSize(&mut self, size: f32) {
        self.size = size;
    }
    fn getSize(&self) -> f32 {
        self.size
    }
    /// Advance width of `text` at this size.
    #[pyo3(signature = (text, encoding = None, bounds = None, paint = None))]
    fn measureText(
        &self,
        text: &str,
        encoding: Option<&Bound<'_, PyAny>>,
        bounds: Option<&Bound<'_, PyAny>>,
        paint: Option<&Bound<'_, PyAny>>,
    ) -> f32 {
        let _ = (encoding, bounds, paint);
        self.typeface.measure(text, self.size)
    }
}

// ---------------------------------------------------------------- image

/// skia's `Image`, made from a numpy array with `Image.fromarray(array)`.
#[pyclass(module = "streamkit._native", frozen)]
pub struct Image {
    image: sk::Image,
}

#[pymethods]
impl Image {
    /// An `(h, w, 4)` RGBA (straight alpha, as skia-python's default), `(h, w, 3)`
    /// RGB or `(h, w)` gray uint8 array, premultiplied into a new image.
    #[staticmethod]
    #[pyo3(signature = (array, colorType = None, alphaType = None, copy = true))]
    fn fromarray(
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        colorType: Option<&Bound<'_, PyAny>>,
        alphaType: Option<&Bound<'_, PyAny>>,
        copy: bool,
    ) -> PyResult<Image> {
        let _ = (colorType, alphaType, copy);
        let array = py.import("numpy")?.call_method1("ascontiguousarray", (array, "uint8"))?;
        let shape: Vec<usize> = array.getattr("shape")?.extract()?;
        let bytes: Vec<u8> = array.call_method0("tobytes")?.extract()?;
        let (h, w, channels) = match shape.as_slice() {
            [h, w] => (*h, *w, 1),
            [h, w, c @ (1 | 3 | 4)] => (*h, *w, *c),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "Image.fromarray needs (h, w), (h, w, 3) or (h, w, 4), got {shape:?}"
                )))
            }
        };
        let mut rgba = Vec::with_capacity(w * h * 4);
        for px in bytes.chunks_exact(channels) {
            let (r, g, b, a) = match channels {
                1 => (px[0], px[0], px[0], 255),
                3 => (px[0], px[1], px[2], 255),
                _ => (px[0], px[1], px[2], px[3]),
            };
            let pm = |c: u8| ((c as u16 * a as u16 + 127) / 255) as u8;
            rgba.extend_from_slice(&[pm(r), pm(g), pm(b), a]);
        }
        let image = sk::Image::from_rgba_premul(w as u32, h as u32, rgba).map_err(to_py)?;
        Ok(Image { image })
    }

    fn width(&self) -> u32 {
        self.image.width()
    }

    fn height(&self) -> u32 {
        self.image.height()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skia_colours_are_argb() {
        let c = color_from_argb(0x8011_2233).to_color_u8();
        assert_eq!((c.alpha(), c.red(), c.green(), c.blue()), (0x80, 0x11, 0x22, 0x33));
        assert_eq!(color_to_argb(color_from_argb(0xFF00_00FF)), 0xFF00_00FF);
    }

    #[test]
    fn a_lent_canvas_is_revoked_when_the_call_ends() {
        let mut pixels = vec![0u8; 4 * 4 * 4];
        let mut canvas = sk::Canvas::from_rgba(&mut pixels, 4, 4).unwrap();
        let lent = Lent::new(&mut canvas);
        let python_side = Canvas::new(&lent, 4, 4);
        assert!(python_side.with(|c| c.width()).is_ok());
        drop(lent);
        assert!(python_side.slot.lock().unwrap().is_none());
    }
}
