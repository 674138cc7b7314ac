//! Fonts for [`crate::canvas::Canvas::draw_text`]: TrueType/OpenType glyph
//! outlines turned into tiny-skia paths.
//!
//! Outlines are the expensive part, so each glyph is decoded once and cached
//! in font units; a string becomes one path (all glyphs scaled and placed),
//! which the canvas fills or strokes like any other path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tiny_skia::{Path, PathBuilder, PathSegment, Point};
use ttf_parser::{Face, GlyphId, OutlineBuilder};

use crate::error::{Error, IoContext, Result};

/// DejaVu Sans (see `assets/fonts/DejaVuSans.LICENSE`): the font used when
/// the caller names none.
const DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// A parsed TrueType/OpenType font with a cache of glyph outlines.
///
/// Shareable between threads (`Arc<Font>`); the cache sits behind a mutex.
pub struct Font {
    /// The font file; borrowed for the embedded font, so it is never copied.
    data: Cow<'static, [u8]>,
    units_per_em: f32,
    ascender: f32,
    descender: f32,
    family: Option<String>,
    /// Glyph outlines in font units, y pointing down (`None`: no outline,
    /// e.g. a space). Bounded by the font's glyph count.
    outlines: Mutex<HashMap<GlyphId, Option<Path>>>,
}

impl Font {
    /// The embedded DejaVu Sans, parsed once per process.
    pub fn default_font() -> Arc<Font> {
        static DEFAULT: OnceLock<Arc<Font>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let font = Font::parse(Cow::Borrowed(DEJAVU_SANS), "the embedded DejaVu Sans");
                Arc::new(font.expect("the embedded font is a valid TrueType font"))
            })
            .clone()
    }

    /// A font from the bytes of a `.ttf` / `.otf` file (the first face of a collection).
    pub fn from_bytes(data: Vec<u8>) -> Result<Font> {
        Font::parse(Cow::Owned(data), "font data")
    }

    /// Reads and parses a `.ttf` / `.otf` file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Font> {
        let path = path.as_ref();
        let data = std::fs::read(path).context(|| format!("reading font {}", path.display()))?;
        Font::parse(Cow::Owned(data), &format!("font file {}", path.display()))
    }

    fn parse(data: Cow<'static, [u8]>, what: &str) -> Result<Font> {
        let face = Face::parse(&data, 0)
            .map_err(|e| Error::invalid(format!("{what} is not a TrueType/OpenType font: {e}")))?;
        let units_per_em = f32::from(face.units_per_em());
        let ascender = f32::from(face.ascender());
        let descender = f32::from(face.descender());
        let family = family_name(&face);
        Ok(Font { data, units_per_em, ascender, descender, family, outlines: Mutex::default() })
    }

    /// The family name from the font's `name` table, when it has a readable one.
    pub fn family(&self) -> Option<&str> {
        self.family.as_deref()
    }

    /// Height above the baseline at `size` pixels (positive).
    pub fn ascent(&self, size: f32) -> f32 {
        self.ascender * self.scale(size)
    }

    /// Depth below the baseline at `size` pixels (positive).
    pub fn descent(&self, size: f32) -> f32 {
        -self.descender * self.scale(size)
    }

    /// The advance width of `text` at `size` pixels: where the next character
    /// would start, kerning included.
    pub fn measure(&self, text: &str, size: f32) -> f32 {
        let face = self.face();
        for_each_glyph(&face, text, |_, _| {}) * self.scale(size)
    }

    /// The outline of `text` at `size` pixels with the left end of its
    /// baseline at (`x`, `y`); `None` when nothing has ink (empty, spaces).
    pub fn text_path(&self, text: &str, x: f32, y: f32, size: f32) -> Option<Path> {
        let face = self.face();
        let scale = self.scale(size);
        let mut outlines = self.outlines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut builder = PathBuilder::new();
        for_each_glyph(&face, text, |glyph, pen| {
            let outline = outlines.entry(glyph).or_insert_with(|| glyph_outline(&face, glyph));
            if let Some(outline) = outline {
                append_placed(&mut builder, outline, scale, Point::from_xy(x + pen * scale, y));
            }
        });
        builder.finish()
    }

    fn scale(&self, size: f32) -> f32 {
        size / self.units_per_em
    }

    /// Parsing only reads table headers (~0.3 µs measured), so it is redone per
    /// call rather than storing a face that borrows from `self`.
    fn face(&self) -> Face<'_> {
        Face::parse(&self.data, 0).expect("the font parsed when it was loaded")
    }
}

impl fmt::Debug for Font {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Font")
            .field("family", &self.family)
            .field("units_per_em", &self.units_per_em)
            .field("bytes", &self.data.len())
            .finish()
    }
}

fn family_name(face: &Face<'_>) -> Option<String> {
    face.names()
        .into_iter()
        .filter(|name| name.name_id == ttf_parser::name_id::FAMILY && name.is_unicode())
        .find_map(|name| name.to_string())
}

/// Walks the glyphs of `text`, calling `visit(glyph, pen_x)` with the pen
/// position in font units; returns the total advance in font units.
/// Characters the font lacks use glyph 0 (`.notdef`), as skia does.
fn for_each_glyph(face: &Face<'_>, text: &str, mut visit: impl FnMut(GlyphId, f32)) -> f32 {
    let mut pen = 0.0;
    let mut previous = None;
    for ch in text.chars() {
        let glyph = face.glyph_index(ch).unwrap_or(GlyphId(0));
        if let Some(left) = previous {
            pen += kerning(face, left, glyph);
        }
        visit(glyph, pen);
        pen += f32::from(face.glyph_hor_advance(glyph).unwrap_or(0));
        previous = Some(glyph);
    }
    pen
}

/// Pair kerning from the legacy `kern` table (GPOS kerning needs shaping,
/// which is out of scope).
fn kerning(face: &Face<'_>, left: GlyphId, right: GlyphId) -> f32 {
    let Some(kern) = face.tables().kern else {
        return 0.0;
    };
    kern.subtables
        .into_iter()
        .filter(|table| table.horizontal && !table.variable && !table.has_cross_stream)
        .filter_map(|table| table.glyphs_kerning(left, right))
        .map(f32::from)
        .sum()
}

fn glyph_outline(face: &Face<'_>, glyph: GlyphId) -> Option<Path> {
    let mut builder = FlippedOutline(PathBuilder::new());
    face.outline_glyph(glyph, &mut builder)?;
    builder.0.finish()
}

/// Collects an outline as a path, flipping y: font units point up, pixels down.
struct FlippedOutline(PathBuilder);

impl OutlineBuilder for FlippedOutline {
    fn move_to(&mut self, x: f32, y: f32) {
        self.0.move_to(x, -y);
    }

    fn line_to(&mut self, x: f32, y: f32) {
        self.0.line_to(x, -y);
    }

    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        self.0.quad_to(x1, -y1, x, -y);
    }

    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        self.0.cubic_to(x1, -y1, x2, -y2, x, -y);
    }

    fn close(&mut self) {
        self.0.close();
    }
}

/// Appends `outline` scaled by `scale` and moved to `origin`, without cloning it.
fn append_placed(builder: &mut PathBuilder, outline: &Path, scale: f32, origin: Point) {
    let place = |p: Point| Point::from_xy(origin.x + p.x * scale, origin.y + p.y * scale);
    for segment in outline.segments() {
        match segment {
            PathSegment::MoveTo(p) => {
                let p = place(p);
                builder.move_to(p.x, p.y);
            }
            PathSegment::LineTo(p) => {
                let p = place(p);
                builder.line_to(p.x, p.y);
            }
            PathSegment::QuadTo(c, p) => {
                let (c, p) = (place(c), place(p));
                builder.quad_to(c.x, c.y, p.x, p.y);
            }
            PathSegment::CubicTo(c1, c2, p) => {
                let (c1, c2, p) = (place(c1), place(c2), place(p));
                builder.cubic_to(c1.x, c1.y, c2.x, c2.y, p.x, p.y);
            }
            PathSegment::Close => builder.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_font_is_dejavu_and_shared() {
        let a = Font::default_font();
        let b = Font::default_font();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.family(), Some("DejaVu Sans"));
        assert!(a.ascent(48.0) > 30.0 && a.descent(48.0) > 5.0);
    }

    #[test]
    fn measure_scales_with_size_and_glyph_width() {
        let font = Font::default_font();
        assert!(font.measure("ii", 48.0) < font.measure("WW", 48.0));
        let small = font.measure("Hello", 10.0);
        let large = font.measure("Hello", 40.0);
        assert!((large - 4.0 * small).abs() < 1e-3, "{small} {large}");
        assert_eq!(font.measure("", 48.0), 0.0);
    }

    #[test]
    fn kerning_tightens_known_pairs() {
        let font = Font::default_font();
        let pair = font.measure("AV", 100.0);
        let apart = font.measure("A", 100.0) + font.measure("V", 100.0);
        assert!(pair < apart, "AV {pair} vs A+V {apart}");
    }

    #[test]
    fn text_path_sits_on_the_baseline() {
        let font = Font::default_font();
        let bounds = font.text_path("Hxg", 10.0, 100.0, 48.0).unwrap().bounds();
        assert!(bounds.left() >= 10.0 && bounds.right() <= 10.0 + font.measure("Hxg", 48.0));
        assert!(bounds.top() >= 100.0 - font.ascent(48.0) && bounds.top() < 100.0 - 30.0);
        assert!(bounds.bottom() > 100.0 && bounds.bottom() <= 100.0 + font.descent(48.0));
    }

    #[test]
    fn blank_text_has_no_path() {
        let font = Font::default_font();
        assert!(font.text_path("", 0.0, 0.0, 48.0).is_none());
        assert!(font.text_path("   ", 0.0, 0.0, 48.0).is_none());
        assert!(font.measure("   ", 48.0) > 0.0);
    }

    #[test]
    fn garbage_bytes_are_not_a_font() {
        let err = Font::from_bytes(b"definitely not a font".to_vec()).unwrap_err().to_string();
        assert!(err.contains("TrueType/OpenType"), "{err}");
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = Font::from_file("/no/such/dir/missing-font.ttf").unwrap_err().to_string();
        assert!(err.contains("/no/such/dir/missing-font.ttf"), "{err}");
    }

    #[test]
    fn from_bytes_loads_a_real_font() {
        let font = Font::from_bytes(DEJAVU_SANS.to_vec()).unwrap();
        let default = Font::default_font();
        assert_eq!(font.measure("streamkit", 32.0), default.measure("streamkit", 32.0));
    }
}
