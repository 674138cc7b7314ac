//! Pixel format conversions, all in one place.
//!
//! [`convert`] and [`convert_into`] work on whole [`Frame`]s; the plane-level
//! kernels below them (`rgba_to_i420`, `i420_to_rgba`, …) take raw planes and
//! strides so other crates can convert into memory they own.
//!
//! YUV is BT.709, limited range (Y 16..=235, U/V 16..=240). [`PixelFormat::Gray8`]
//! is a luma plane, so it uses the same limited range as the Y plane and
//! converts to and from YUV losslessly in Y.
//!
//! Premultiplied RGBA to an opaque format (YUV, gray) ignores alpha:
//! premultiplied colour already *is* the colour flattened over black. Opaque
//! formats convert to RGBA with alpha 255.
//!
//! The maths is fixed-point integer, written so LLVM auto-vectorises it. Each
//! hot kernel is compiled twice — for the baseline target and with AVX2 — and
//! the AVX2 copy is picked at run time where the CPU has it.

use crate::error::{Error, Result};
use crate::frame::{Frame, PixelFormat};
use crate::simd::multiversion;

/// `src` in `format`: a shared clone when it already is, else a new packed
/// frame with the same timing and metadata.
pub fn convert(src: &Frame, format: PixelFormat) -> Result<Frame> {
    if src.format() == format {
        return Ok(src.clone());
    }
    let mut dst = Frame::new(format, src.width(), src.height())?;
    convert_into(src, &mut dst)?;
    Ok(dst)
}

/// Converts `src` into `dst` (same size, any formats), writing into `dst`'s
/// memory and copying `src`'s timing and metadata.
pub fn convert_into(src: &Frame, dst: &mut Frame) -> Result<()> {
    if src.size() != dst.size() {
        return Err(Error::invalid(format!(
            "cannot convert a {}x{} {} frame into a {}x{} {} frame: sizes differ",
            src.width(),
            src.height(),
            src.format(),
            dst.width(),
            dst.height(),
            dst.format()
        )));
    }
    convert_pixels(src, dst)?;
    dst.timing = src.timing.clone();
    dst.metadata = src.metadata.clone();
    Ok(())
}

/// Picks the direct kernel for a pair of formats, or goes through RGBA.
fn convert_pixels(src: &Frame, dst: &mut Frame) -> Result<()> {
    use PixelFormat::{Bgra8, Gray8, Nv12, Rgba8Premul, I420};
    let (w, h) = src.size();
    match (src.format(), dst.format()) {
        (from, to) if from == to => copy_planes(src, dst),
        (Rgba8Premul, I420) => {
            let (rgba, rgba_stride) = src.plane(0);
            let [(y, ys), (u, us), (v, vs)] = planes_mut(dst);
            rgba_to_i420(rgba, rgba_stride, w, h, y, ys, u, us, v, vs);
        }
        (I420, Rgba8Premul) => {
            let ((y, ys), (u, us), (v, vs)) = (src.plane(0), src.plane(1), src.plane(2));
            let [(rgba, rgba_stride)] = planes_mut(dst);
            i420_to_rgba(y, ys, u, us, v, vs, w, h, rgba, rgba_stride);
        }
        (Rgba8Premul, Nv12) => {
            let (rgba, rgba_stride) = src.plane(0);
            let [(y, ys), (uv, uvs)] = planes_mut(dst);
            rgba_to_nv12(rgba, rgba_stride, w, h, y, ys, uv, uvs);
        }
        (Nv12, Rgba8Premul) => {
            let ((y, ys), (uv, uvs)) = (src.plane(0), src.plane(1));
            let [(rgba, rgba_stride)] = planes_mut(dst);
            nv12_to_rgba(y, ys, uv, uvs, w, h, rgba, rgba_stride);
        }
        (Bgra8, Rgba8Premul) => {
            let (bgra, bgra_stride) = src.plane(0);
            let [(rgba, rgba_stride)] = planes_mut(dst);
            bgra_to_rgba(bgra, bgra_stride, w, h, rgba, rgba_stride);
        }
        (Rgba8Premul, Bgra8) => {
            let (rgba, rgba_stride) = src.plane(0);
            let [(bgra, bgra_stride)] = planes_mut(dst);
            rgba_to_bgra(rgba, rgba_stride, w, h, bgra, bgra_stride);
        }
        (Rgba8Premul, Gray8) => {
            let (rgba, rgba_stride) = src.plane(0);
            let [(gray, gray_stride)] = planes_mut(dst);
            rgba_to_gray(rgba, rgba_stride, w, h, gray, gray_stride);
        }
        (Gray8, Rgba8Premul) => {
            let (gray, gray_stride) = src.plane(0);
            let [(rgba, rgba_stride)] = planes_mut(dst);
            gray_to_rgba(gray, gray_stride, w, h, rgba, rgba_stride);
        }
        (I420, Nv12) => {
            let ((y, ys), (u, us), (v, vs)) = (src.plane(0), src.plane(1), src.plane(2));
            let [(dy, dys), (uv, uvs)] = planes_mut(dst);
            i420_to_nv12(y, ys, u, us, v, vs, w, h, dy, dys, uv, uvs);
        }
        (Nv12, I420) => {
            let ((y, ys), (uv, uvs)) = (src.plane(0), src.plane(1));
            let [(dy, dys), (u, us), (v, vs)] = planes_mut(dst);
            nv12_to_i420(y, ys, uv, uvs, w, h, dy, dys, u, us, v, vs);
        }
        _ => {
            let mut rgba = Frame::new(Rgba8Premul, w, h)?;
            convert_pixels(src, &mut rgba)?;
            convert_pixels(&rgba, dst)?;
        }
    }
    Ok(())
}

/// A frame's planes as an array, so a match arm can destructure them.
fn planes_mut<const N: usize>(frame: &mut Frame) -> [(&mut [u8], usize); N] {
    frame.planes_mut().try_into().expect("the format fixes the plane count")
}

/// Same-format conversion: every plane copied row by row (strides may differ).
fn copy_planes(src: &Frame, dst: &mut Frame) {
    let packed = src.format().packed_layout(src.width(), src.height());
    for (i, (dst_plane, dst_stride)) in dst.planes_mut().into_iter().enumerate() {
        let (src_plane, src_stride) = src.plane(i);
        let p = packed.planes()[i];
        copy_plane(src_plane, src_stride, dst_plane, dst_stride, p.stride, p.rows);
    }
}

/// Copies `rows` rows of `row_len` bytes between planes with any strides.
pub fn copy_plane(src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize, row_len: usize, rows: usize) {
    for r in 0..rows {
        row_mut(dst, dst_stride, r, row_len).copy_from_slice(row(src, src_stride, r, row_len));
    }
}

/// BT.709 limited-range coefficients in fixed point, derived from Kr and Kb at
/// compile time. Public so that converters of other layouts (4:2:2 for RTP)
/// share the exact same maths.
pub mod bt709 {

    /// Kr, Kg, Kb of BT.709 in ten-thousandths.
    pub const KR: i64 = 2126;
    pub const KB: i64 = 722;
    pub const KG: i64 = 10_000 - KR - KB;

    /// RGB → YUV fraction bits. Every coefficient stays below 2^15, so LLVM can
    /// narrow the multiplies to 16 bits.
    pub const TO_YUV_SHIFT: u32 = 15;
    /// YUV → RGB fraction bits; the largest coefficient (2.11) still fits an i16.
    pub const TO_RGB_SHIFT: u32 = 13;

    /// `num / den` in fixed point with `shift` fraction bits, rounded to nearest.
    pub const fn fixed(num: i64, den: i64, shift: u32) -> i32 {
        let scaled = num << shift;
        let half = den / 2;
        (if scaled >= 0 { (scaled + half) / den } else { (scaled - half) / den }) as i32
    }

    /// Luma: Y = 16 + 219/255 · (Kr·R + Kg·G + Kb·B). G takes up the rounding so
    /// the row sums to exactly 219/255 and white lands on 235.
    pub const Y_R: i32 = fixed(KR * 219, 10_000 * 255, TO_YUV_SHIFT);
    pub const Y_B: i32 = fixed(KB * 219, 10_000 * 255, TO_YUV_SHIFT);
    pub const Y_G: i32 = fixed(219, 255, TO_YUV_SHIFT) - Y_R - Y_B;

    /// Chroma: U = 128 + 112/255 · (B − Y′)/(1 − Kb), V likewise with R and Kr.
    /// The middle term takes up the rounding so each row sums to exactly zero and
    /// every grey lands on U = V = 128.
    pub const U_R: i32 = fixed(-112 * KR, 255 * (10_000 - KB), TO_YUV_SHIFT);
    pub const U_B: i32 = fixed(112, 255, TO_YUV_SHIFT);
    pub const U_G: i32 = -U_R - U_B;
    pub const V_R: i32 = fixed(112, 255, TO_YUV_SHIFT);
    pub const V_B: i32 = fixed(-112 * KB, 255 * (10_000 - KR), TO_YUV_SHIFT);
    pub const V_G: i32 = -V_R - V_B;

    /// Inverse: R = 255/219 · (Y − 16) + 255/112 · (1 − Kr) · (V − 128), and so on.
    pub const RGB_Y: i32 = fixed(255, 219, TO_RGB_SHIFT);
    pub const R_V: i32 = fixed(255 * (10_000 - KR), 112 * 10_000, TO_RGB_SHIFT);
    pub const G_U: i32 = fixed(-255 * (10_000 - KB) * KB, 112 * 10_000 * KG, TO_RGB_SHIFT);
    pub const G_V: i32 = fixed(-255 * (10_000 - KR) * KR, 112 * 10_000 * KG, TO_RGB_SHIFT);
    pub const B_U: i32 = fixed(255 * (10_000 - KB), 112 * 10_000, TO_RGB_SHIFT);
}
use bt709::*;

/// Y of one RGBA pixel (as [`pixel`] loads it), rounded.
#[inline(always)]
fn luma(px: u32) -> u8 {
    const OFFSET: i32 = (16 << TO_YUV_SHIFT) + (1 << (TO_YUV_SHIFT - 1));
    let channel = |shift: u32| ((px >> shift) & 0xFF) as i32;
    ((Y_R * channel(0) + Y_G * channel(8) + Y_B * channel(16) + OFFSET) >> TO_YUV_SHIFT) as u8
}

/// U and V of a 2x2 block (`top` and `bottom` hold two pixels each),
/// averaged inside the fixed-point sum so the average costs no extra rounding.
#[inline(always)]
fn block_chroma(top: &[u8], bottom: &[u8]) -> (u8, u8) {
    const SHIFT: u32 = TO_YUV_SHIFT + 2; // four pixels summed
    const OFFSET: i32 = (128 << SHIFT) + (1 << (SHIFT - 1));
    // Pixels load as u32 (plain vector loads; byte-wise access would make
    // LLVM gather) and add up with R and B side by side in 16-bit halves.
    const LOW_BYTES: u32 = 0x00FF_00FF;
    let px = [pixel(&top[..4]), pixel(&top[4..]), pixel(&bottom[..4]), pixel(&bottom[4..])];
    let rb = px.iter().fold(0, |sum, p| sum + (p & LOW_BYTES));
    let g = px.iter().fold(0, |sum, p| sum + ((p >> 8) & 0xFF));
    let (r, g, b) = ((rb & 0xFFFF) as i32, g as i32, (rb >> 16) as i32);
    let u = (U_R * r + U_G * g + U_B * b + OFFSET) >> SHIFT;
    let v = (V_R * r + V_G * g + V_B * b + OFFSET) >> SHIFT;
    (u as u8, v as u8)
}

/// One RGBA pixel as a little-endian u32 (R in the low byte): a plain
/// vector load, where byte-wise access would need shuffles or gathers.
#[inline(always)]
fn pixel(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("four bytes"))
}

/// What U and V add to R, G and B (in fixed point), shared by the pixels
/// that share the chroma sample.
#[inline(always)]
fn chroma_terms(u: u8, v: u8) -> [i32; 3] {
    let (u, v) = (i32::from(u) - 128, i32::from(v) - 128);
    [R_V * v, G_U * u + G_V * v, B_U * u]
}

/// One opaque RGBA pixel from Y plus its chroma terms (zero for gray), as
/// little-endian bytes assembled in a u32 so the store is one plain write.
#[inline(always)]
fn rgb_pixel(y: u8, chroma: [i32; 3]) -> [u8; 4] {
    let luma = (i32::from(y) - 16) * RGB_Y + (1 << (TO_RGB_SHIFT - 1));
    let channel = |c: i32| ((luma + c) >> TO_RGB_SHIFT).clamp(0, 255) as u32;
    (channel(chroma[0]) | channel(chroma[1]) << 8 | channel(chroma[2]) << 16 | 0xFF00_0000).to_le_bytes()
}

/// Y for a row of RGBA pixels.
#[inline(always)]
fn rgba_row_to_luma(rgba: &[u8], y: &mut [u8]) {
    for (px, y) in rgba.chunks_exact(4).zip(y) {
        *y = luma(pixel(px));
    }
}

/// A row of RGBA pixels from Y and one chroma sample per pixel pair;
/// `chroma` yields (U, V) pairs.
#[inline(always)]
fn yuv_row_to_rgba(y: &[u8], chroma: impl Iterator<Item = (u8, u8)>, rgba: &mut [u8]) {
    for ((ys, out), (u, v)) in y.chunks_exact(2).zip(rgba.chunks_exact_mut(8)).zip(chroma) {
        let terms = chroma_terms(u, v);
        out[..4].copy_from_slice(&rgb_pixel(ys[0], terms));
        out[4..].copy_from_slice(&rgb_pixel(ys[1], terms));
    }
}

/// Row `index` of a plane: `len` bytes, `index * stride` in.
#[inline(always)]
fn row(plane: &[u8], stride: usize, index: usize, len: usize) -> &[u8] {
    &plane[index * stride..][..len]
}

#[inline(always)]
fn row_mut(plane: &mut [u8], stride: usize, index: usize, len: usize) -> &mut [u8] {
    &mut plane[index * stride..][..len]
}

/// Rows `first` and `first + 1` of a plane, mutably.
#[inline(always)]
fn row_pair_mut(plane: &mut [u8], stride: usize, first: usize, len: usize) -> (&mut [u8], &mut [u8]) {
    let (top, bottom) = plane[first * stride..].split_at_mut(stride);
    (&mut top[..len], &mut bottom[..len])
}

fn assert_even(format: PixelFormat, width: u32, height: u32) {
    assert!(width & 1 == 0 && height & 1 == 0, "{format} needs an even width and height, got {width}x{height}");
}

/// Writes Y for both rows of each row pair and hands the pair, with the
/// chroma row index, to `write_chroma`.
#[inline(always)]
fn rgba_to_yuv420(
    rgba: &[u8],
    rgba_stride: usize,
    width: u32,
    height: u32,
    y: &mut [u8],
    y_stride: usize,
    mut write_chroma: impl FnMut(usize, &[u8], &[u8]),
) {
    let (w, h) = (width as usize, height as usize);
    for pair in 0..h / 2 {
        let (top, bottom) = (row(rgba, rgba_stride, 2 * pair, w * 4), row(rgba, rgba_stride, 2 * pair + 1, w * 4));
        let (y_top, y_bottom) = row_pair_mut(y, y_stride, 2 * pair, w);
        rgba_row_to_luma(top, y_top);
        rgba_row_to_luma(bottom, y_bottom);
        write_chroma(pair, top, bottom);
    }
}

/// Fills RGBA from the Y plane, row by row, with `chroma_row(pair)` giving
/// the (U, V) samples shared by rows `2 * pair` and `2 * pair + 1`.
#[inline(always)]
fn yuv420_to_rgba<C: Iterator<Item = (u8, u8)> + Clone>(
    y: &[u8],
    y_stride: usize,
    width: u32,
    height: u32,
    rgba: &mut [u8],
    rgba_stride: usize,
    chroma_row: impl Fn(usize) -> C,
) {
    let (w, h) = (width as usize, height as usize);
    for pair in 0..h / 2 {
        let chroma = chroma_row(pair);
        let (top, bottom) = row_pair_mut(rgba, rgba_stride, 2 * pair, w * 4);
        yuv_row_to_rgba(row(y, y_stride, 2 * pair, w), chroma.clone(), top);
        yuv_row_to_rgba(row(y, y_stride, 2 * pair + 1, w), chroma, bottom);
    }
}

multiversion! {
    /// Premultiplied RGBA → I420 (alpha ignored: colour flattened over black).
    ///
    /// # Panics
    ///
    /// If the size is odd or a plane is too small for its stride and size.
    pub fn rgba_to_i420(
        rgba: &[u8],
        rgba_stride: usize,
        width: u32,
        height: u32,
        y: &mut [u8],
        y_stride: usize,
        u: &mut [u8],
        u_stride: usize,
        v: &mut [u8],
        v_stride: usize,
    ) {
        assert_even(PixelFormat::I420, width, height);
        let cw = width as usize / 2;
        rgba_to_yuv420(rgba, rgba_stride, width, height, y, y_stride, #[inline(always)] |pair, top, bottom| {
            let chroma = row_mut(u, u_stride, pair, cw).iter_mut().zip(row_mut(v, v_stride, pair, cw));
            for ((u_sample, v_sample), (top, bottom)) in chroma.zip(top.chunks_exact(8).zip(bottom.chunks_exact(8))) {
                (*u_sample, *v_sample) = block_chroma(top, bottom);
            }
        });
    }
}

multiversion! {
    /// Premultiplied RGBA → NV12 (alpha ignored: colour flattened over black).
    ///
    /// # Panics
    ///
    /// If the size is odd or a plane is too small for its stride and size.
    pub fn rgba_to_nv12(
        rgba: &[u8],
        rgba_stride: usize,
        width: u32,
        height: u32,
        y: &mut [u8],
        y_stride: usize,
        uv: &mut [u8],
        uv_stride: usize,
    ) {
        assert_even(PixelFormat::Nv12, width, height);
        let uv_len = width as usize;
        rgba_to_yuv420(rgba, rgba_stride, width, height, y, y_stride, #[inline(always)] |pair, top, bottom| {
            let chroma = row_mut(uv, uv_stride, pair, uv_len).chunks_exact_mut(2);
            for (uv, (top, bottom)) in chroma.zip(top.chunks_exact(8).zip(bottom.chunks_exact(8))) {
                (uv[0], uv[1]) = block_chroma(top, bottom);
            }
        });
    }
}

multiversion! {
    /// I420 → premultiplied RGBA, opaque.
    ///
    /// # Panics
    ///
    /// If the size is odd or a plane is too small for its stride and size.
    pub fn i420_to_rgba(
        y: &[u8],
        y_stride: usize,
        u: &[u8],
        u_stride: usize,
        v: &[u8],
        v_stride: usize,
        width: u32,
        height: u32,
        rgba: &mut [u8],
        rgba_stride: usize,
    ) {
        assert_even(PixelFormat::I420, width, height);
        let cw = width as usize / 2;
        yuv420_to_rgba(y, y_stride, width, height, rgba, rgba_stride, #[inline(always)] |pair| {
            row(u, u_stride, pair, cw).iter().copied().zip(row(v, v_stride, pair, cw).iter().copied())
        });
    }
}

multiversion! {
    /// NV12 → premultiplied RGBA, opaque.
    ///
    /// # Panics
    ///
    /// If the size is odd or a plane is too small for its stride and size.
    pub fn nv12_to_rgba(
        y: &[u8],
        y_stride: usize,
        uv: &[u8],
        uv_stride: usize,
        width: u32,
        height: u32,
        rgba: &mut [u8],
        rgba_stride: usize,
    ) {
        assert_even(PixelFormat::Nv12, width, height);
        let uv_len = width as usize;
        yuv420_to_rgba(y, y_stride, width, height, rgba, rgba_stride, #[inline(always)] |pair| {
            row(uv, uv_stride, pair, uv_len).chunks_exact(2).map(#[inline(always)] |uv| (uv[0], uv[1]))
        });
    }
}

multiversion! {
    /// Premultiplied RGBA → Gray8 (limited-range luma; alpha ignored).
    ///
    /// # Panics
    ///
    /// If a plane is too small for its stride and size.
    pub fn rgba_to_gray(rgba: &[u8], rgba_stride: usize, width: u32, height: u32, gray: &mut [u8], gray_stride: usize) {
        let w = width as usize;
        for r in 0..height as usize {
            rgba_row_to_luma(row(rgba, rgba_stride, r, w * 4), row_mut(gray, gray_stride, r, w));
        }
    }
}

multiversion! {
    /// Gray8 (limited-range luma) → premultiplied RGBA, opaque.
    ///
    /// # Panics
    ///
    /// If a plane is too small for its stride and size.
    pub fn gray_to_rgba(gray: &[u8], gray_stride: usize, width: u32, height: u32, rgba: &mut [u8], rgba_stride: usize) {
        let w = width as usize;
        for r in 0..height as usize {
            let pixels = row(gray, gray_stride, r, w).iter().zip(row_mut(rgba, rgba_stride, r, w * 4).chunks_exact_mut(4));
            for (&y, out) in pixels {
                out.copy_from_slice(&rgb_pixel(y, [0; 3]));
            }
        }
    }
}

/// Multiplies the two channels held in the low bytes of `pair`'s 16-bit
/// halves by `a / 255`, exactly rounded: `t + (t >> 8)` divides by 255 for
/// any `t = c · a + 128` below 2^16, so neither half carries into the other.
#[inline(always)]
fn premultiply_pair(pair: u32, a: u32) -> u32 {
    const LOW_BYTES: u32 = 0x00FF_00FF;
    let t = pair * a + 0x0080_0080;
    ((t + ((t >> 8) & LOW_BYTES)) >> 8) & LOW_BYTES
}

/// `c · 255 / a` for the channel at bit `shift` of `px`, rounded and
/// clamped (colour above alpha is invalid but must not wrap). `factor` is
/// `255 / a`, or 0 for a transparent pixel, whose colour is meaningless.
#[inline(always)]
fn unpremultiply(px: u32, shift: u32, factor: f32) -> u32 {
    let c = ((px >> shift) & 0xFF) as f32;
    round_to_int((c * factor).min(255.0))
}

/// Rounds `0 <= x < 2^22` to the nearest integer (ties to even) with one
/// float add: at 1.5 · 2^23 the mantissa's low bits hold exactly the rounded
/// value. A float → int cast would saturate, which LLVM scalarises on x86.
#[inline(always)]
fn round_to_int(x: f32) -> u32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (x + MAGIC).to_bits() & 0x3F_FFFF
}

multiversion! {
    /// Straight-alpha BGRA → premultiplied RGBA.
    ///
    /// # Panics
    ///
    /// If a plane is too small for its stride and size.
    pub fn bgra_to_rgba(bgra: &[u8], bgra_stride: usize, width: u32, height: u32, rgba: &mut [u8], rgba_stride: usize) {
        let len = width as usize * 4;
        for r in 0..height as usize {
            let pixels = row(bgra, bgra_stride, r, len).chunks_exact(4).zip(row_mut(rgba, rgba_stride, r, len).chunks_exact_mut(4));
            for (src, out) in pixels {
                let px = pixel(src);
                let a = px >> 24;
                let b_r = premultiply_pair(px & 0x00FF_00FF, a);
                let g = premultiply_pair((px >> 8) & 0x00FF_00FF, a) & 0xFF; // A · A dropped
                out.copy_from_slice(&(b_r.rotate_left(16) | g << 8 | a << 24).to_le_bytes());
            }
        }
    }
}

multiversion! {
    /// Premultiplied RGBA → straight-alpha BGRA; transparent pixels become 0,0,0,0.
    ///
    /// # Panics
    ///
    /// If a plane is too small for its stride and size.
    pub fn rgba_to_bgra(rgba: &[u8], rgba_stride: usize, width: u32, height: u32, bgra: &mut [u8], bgra_stride: usize) {
        let len = width as usize * 4;
        for r in 0..height as usize {
            let pixels = row(rgba, rgba_stride, r, len).chunks_exact(4).zip(row_mut(bgra, bgra_stride, r, len).chunks_exact_mut(4));
            for (src, out) in pixels {
                let px = pixel(src);
                let a = px >> 24;
                let factor = if a == 0 { 0.0 } else { 255.0 / a as f32 };
                let (r, g, b) = (unpremultiply(px, 0, factor), unpremultiply(px, 8, factor), unpremultiply(px, 16, factor));
                out.copy_from_slice(&(b | g << 8 | r << 16 | a << 24).to_le_bytes());
            }
        }
    }
}

/// I420 → NV12: the Y plane copied, U and V interleaved.
///
/// # Panics
///
/// If the size is odd or a plane is too small for its stride and size.
#[allow(clippy::too_many_arguments)] // planes and strides, libyuv-style
pub fn i420_to_nv12(
    y: &[u8],
    y_stride: usize,
    u: &[u8],
    u_stride: usize,
    v: &[u8],
    v_stride: usize,
    width: u32,
    height: u32,
    dst_y: &mut [u8],
    dst_y_stride: usize,
    uv: &mut [u8],
    uv_stride: usize,
) {
    assert_even(PixelFormat::I420, width, height);
    let (w, h) = (width as usize, height as usize);
    copy_plane(y, y_stride, dst_y, dst_y_stride, w, h);
    for r in 0..h / 2 {
        let (u_row, v_row) = (row(u, u_stride, r, w / 2), row(v, v_stride, r, w / 2));
        for (uv_pair, (&u_sample, &v_sample)) in
            row_mut(uv, uv_stride, r, w).chunks_exact_mut(2).zip(u_row.iter().zip(v_row))
        {
            uv_pair.copy_from_slice(&[u_sample, v_sample]);
        }
    }
}

/// NV12 → I420: the Y plane copied, the UV plane split.
///
/// # Panics
///
/// If the size is odd or a plane is too small for its stride and size.
#[allow(clippy::too_many_arguments)] // planes and strides, libyuv-style
pub fn nv12_to_i420(
    y: &[u8],
    y_stride: usize,
    uv: &[u8],
    uv_stride: usize,
    width: u32,
    height: u32,
    dst_y: &mut [u8],
    dst_y_stride: usize,
    u: &mut [u8],
    u_stride: usize,
    v: &mut [u8],
    v_stride: usize,
) {
    assert_even(PixelFormat::Nv12, width, height);
    let (w, h) = (width as usize, height as usize);
    copy_plane(y, y_stride, dst_y, dst_y_stride, w, h);
    for r in 0..h / 2 {
        let (u_row, v_row) = (row_mut(u, u_stride, r, w / 2), row_mut(v, v_stride, r, w / 2));
        for (uv_pair, (u_sample, v_sample)) in row(uv, uv_stride, r, w).chunks_exact(2).zip(u_row.iter_mut().zip(v_row))
        {
            (*u_sample, *v_sample) = (uv_pair[0], uv_pair[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Buffer;
    use crate::time::Timing;

    /// Deterministic pseudo-random bytes (xorshift32).
    fn noise(len: usize, mut seed: u32) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect()
    }

    /// Random but valid premultiplied RGBA (no colour above alpha).
    fn premultiplied_noise(pixels: usize, seed: u32) -> Vec<u8> {
        let mut px = noise(pixels * 4, seed);
        for p in px.chunks_exact_mut(4) {
            let a = p[3];
            p[..3].iter_mut().for_each(|c| *c = (u16::from(*c) * u16::from(a) / 255) as u8);
        }
        px
    }

    fn rgba_frame(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Frame {
        let data = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| pixel(x, y)).collect();
        Frame::from_vec(PixelFormat::Rgba8Premul, w, h, data).unwrap()
    }

    fn opaque(w: u32, h: u32, [r, g, b]: [u8; 3]) -> Frame {
        rgba_frame(w, h, |_, _| [r, g, b, 255])
    }

    /// A smooth colour ramp, the kind of content 4:2:0 is designed for.
    fn gradient(w: u32, h: u32) -> Frame {
        rgba_frame(w, h, |x, y| [(x * 3) as u8, (y * 4) as u8, (128 + x - y) as u8, 255])
    }

    /// The same pixels in a layout with `extra` bytes of padding per row
    /// (and per chroma row), the rest of the memory filled with junk.
    fn padded(frame: &Frame, extra: u32) -> Frame {
        let (w, h) = frame.size();
        let layout = frame.format().packed_layout(w + extra, h);
        let mut data = vec![0xA5; layout.byte_len()];
        let packed = frame.format().packed_layout(w, h);
        for (i, (plane, packed)) in layout.planes().iter().zip(packed.planes()).enumerate() {
            let (src, src_stride) = frame.plane(i);
            let dst = &mut data[plane.offset..][..plane.len()];
            copy_plane(src, src_stride, dst, plane.stride, packed.stride, packed.rows);
        }
        Frame::from_buffer(frame.format(), w, h, layout, Buffer::from_vec(data)).unwrap()
    }

    /// BT.709 limited-range Y, U, V of an RGB colour, computed in f64.
    fn reference_yuv([r, g, b]: [u8; 3]) -> [f64; 3] {
        let (kr, kb) = (0.2126, 0.0722);
        let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
        let luma = kr * r + (1.0 - kr - kb) * g + kb * b;
        let scale = 224.0 / 255.0 / 2.0;
        [16.0 + 219.0 / 255.0 * luma, 128.0 + scale * (b - luma) / (1.0 - kb), 128.0 + scale * (r - luma) / (1.0 - kr)]
    }

    /// Y, U and V of an opaque 2x2 colour, through [`convert`].
    fn yuv_of(rgb: [u8; 3]) -> [u8; 3] {
        let i420 = convert(&opaque(2, 2, rgb), PixelFormat::I420).unwrap();
        [i420.plane(0).0[0], i420.plane(1).0[0], i420.plane(2).0[0]]
    }

    fn assert_near(actual: [u8; 3], expected: [f64; 3], what: &str) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((f64::from(*a) - e).abs() <= 1.0, "{what}: got {actual:?}, expected {expected:?}");
        }
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let colour = |px: &[u8]| px[..3].to_vec();
        let (a, b): (Vec<u8>, Vec<u8>) =
            (a.chunks_exact(4).flat_map(colour).collect(), b.chunks_exact(4).flat_map(colour).collect());
        let mse = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>() / a.len() as f64;
        10.0 * (255.0 * 255.0 / mse).log10()
    }

    #[test]
    fn coefficients_match_bt709() {
        let fixed = |x: f64, shift: u32| x * f64::from(1u32 << shift);
        let (kr, kb) = (0.2126, 0.0722);
        let kg = 1.0 - kr - kb;
        let forward = [
            (Y_R, kr * 219.0 / 255.0),
            (Y_G, kg * 219.0 / 255.0),
            (Y_B, kb * 219.0 / 255.0),
            (U_R, -112.0 / 255.0 * kr / (1.0 - kb)),
            (U_G, -112.0 / 255.0 * kg / (1.0 - kb)),
            (U_B, 112.0 / 255.0),
            (V_R, 112.0 / 255.0),
            (V_G, -112.0 / 255.0 * kg / (1.0 - kr)),
            (V_B, -112.0 / 255.0 * kb / (1.0 - kr)),
        ];
        for (i, (actual, expected)) in forward.into_iter().enumerate() {
            assert!((f64::from(actual) - fixed(expected, TO_YUV_SHIFT)).abs() <= 1.0, "forward coefficient {i}");
        }
        let inverse = [
            (RGB_Y, 255.0 / 219.0),
            (R_V, 255.0 / 112.0 * (1.0 - kr)),
            (G_U, -255.0 / 112.0 * (1.0 - kb) * kb / kg),
            (G_V, -255.0 / 112.0 * (1.0 - kr) * kr / kg),
            (B_U, 255.0 / 112.0 * (1.0 - kb)),
        ];
        for (i, (actual, expected)) in inverse.into_iter().enumerate() {
            assert!((f64::from(actual) - fixed(expected, TO_RGB_SHIFT)).abs() <= 0.5, "inverse coefficient {i}");
        }
    }

    #[test]
    fn black_and_white_land_on_the_limited_range_ends() {
        assert_eq!(yuv_of([0, 0, 0]), [16, 128, 128]);
        assert_eq!(yuv_of([255, 255, 255]), [235, 128, 128]);
        assert_eq!(yuv_of([128, 128, 128])[1..], [128, 128]);
    }

    #[test]
    fn colours_match_bt709_within_one() {
        let named = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]];
        let random = noise(3 * 200, 7);
        for rgb in named.into_iter().chain(random.chunks_exact(3).map(|c| [c[0], c[1], c[2]])) {
            assert_near(yuv_of(rgb), reference_yuv(rgb), &format!("{rgb:?}"));
        }
    }

    #[test]
    fn alpha_is_ignored_on_the_way_to_yuv() {
        let translucent = rgba_frame(2, 2, |_, _| [100, 50, 20, 128]);
        let i420 = convert(&translucent, PixelFormat::I420).unwrap();
        assert_eq!([i420.plane(0).0[0], i420.plane(1).0[0], i420.plane(2).0[0]], yuv_of([100, 50, 20]));
    }

    #[test]
    fn yuv_decodes_to_opaque_colours() {
        for rgb in [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [30, 200, 90]] {
            let yuv = reference_yuv(rgb).map(|c| c.round() as u8);
            let mut i420 = Frame::new(PixelFormat::I420, 2, 2).unwrap();
            let [(y, _), (u, _), (v, _)] = planes_mut(&mut i420);
            y.fill(yuv[0]);
            u.fill(yuv[1]);
            v.fill(yuv[2]);
            let rgba = convert(&i420, PixelFormat::Rgba8Premul).unwrap();
            for px in rgba.data().chunks_exact(4) {
                assert_eq!(px[3], 255);
                let expected = rgb.map(f64::from);
                // Y, U and V were rounded to 8 bits first, so allow a little more.
                for (a, e) in px.iter().zip(expected) {
                    assert!((f64::from(*a) - e).abs() <= 2.0, "{rgb:?} came back as {px:?}");
                }
            }
        }
    }

    #[test]
    fn rgba_to_i420_and_back_keeps_a_gradient() {
        let src = gradient(64, 48);
        let back = convert(&convert(&src, PixelFormat::I420).unwrap(), PixelFormat::Rgba8Premul).unwrap();
        let quality = psnr(src.data(), back.data());
        assert!(quality >= 40.0, "PSNR {quality:.1} dB");
        let noisy = Frame::from_vec(PixelFormat::Rgba8Premul, 16, 16, premultiplied_noise(256, 3)).unwrap();
        let back = convert(&convert(&noisy, PixelFormat::Nv12).unwrap(), PixelFormat::Rgba8Premul).unwrap();
        assert!(back.data().chunks_exact(4).all(|px| px[3] == 255));
    }

    #[test]
    fn nv12_carries_exactly_the_i420_samples() {
        let src = gradient(38, 10);
        let i420 = convert(&src, PixelFormat::I420).unwrap();
        let nv12 = convert(&src, PixelFormat::Nv12).unwrap();
        assert_eq!(convert(&nv12, PixelFormat::I420).unwrap().data(), i420.data());
        assert_eq!(convert(&i420, PixelFormat::Nv12).unwrap().data(), nv12.data());
        let from_i420 = convert(&i420, PixelFormat::Rgba8Premul).unwrap();
        assert_eq!(convert(&nv12, PixelFormat::Rgba8Premul).unwrap().data(), from_i420.data());
    }

    #[test]
    fn premultiply_is_exactly_rounded() {
        for a in 0..=255u32 {
            for c in 0..=255u32 {
                let expected = (2 * c * a + 255) / 510; // round(c · a / 255)
                assert_eq!(
                    premultiply_pair(c | (255 - c) << 16, a),
                    expected | ((2 * (255 - c) * a + 255) / 510) << 16
                );
            }
        }
    }

    #[test]
    fn straight_bgra_premultiplies_and_swaps() {
        let bgra =
            Frame::from_vec(PixelFormat::Bgra8, 3, 1, vec![10, 20, 30, 255, 200, 100, 50, 128, 9, 9, 9, 0]).unwrap();
        let rgba = convert(&bgra, PixelFormat::Rgba8Premul).unwrap();
        assert_eq!(rgba.data(), [30, 20, 10, 255, 25, 50, 100, 128, 0, 0, 0, 0]);
    }

    #[test]
    fn rgba_to_bgra_and_back_is_lossless_for_every_premultiplied_pixel() {
        // x = colour, y = alpha: every valid (c, a) pair in the red channel.
        let src = rgba_frame(256, 256, |x, y| {
            let (c, a) = (x.min(y) as u8, y as u8);
            [c, c / 2, a - c, a]
        });
        let bgra = convert(&src, PixelFormat::Bgra8).unwrap();
        let back = convert(&bgra, PixelFormat::Rgba8Premul).unwrap();
        for (i, (px, orig)) in back.data().chunks_exact(4).zip(src.data().chunks_exact(4)).enumerate() {
            assert_eq!(px, orig, "pixel {i}");
        }
        let opaque_row = &bgra.data()[255 * 256 * 4..];
        for (c, px) in opaque_row.chunks_exact(4).enumerate() {
            assert_eq!(px, [255 - c as u8, c as u8 / 2, c as u8, 255], "opaque pixels only swap");
        }
    }

    #[test]
    fn unpremultiply_edge_cases() {
        let src = rgba_frame(4, 1, |x, _| [[0, 0, 0, 0], [7, 8, 9, 0], [1, 2, 3, 255], [200, 2, 0, 100]][x as usize]);
        let bgra = convert(&src, PixelFormat::Bgra8).unwrap();
        // Transparent → all zero (even with junk colour); opaque → unchanged;
        // colour above alpha (invalid) clamps instead of wrapping.
        assert_eq!(bgra.data(), [0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 1, 255, 0, 5, 255, 100]);
    }

    #[test]
    fn gray_is_the_luma_plane() {
        let gray = Frame::from_vec(PixelFormat::Gray8, 110, 2, (16..=235).collect()).unwrap();
        let rgba = convert(&gray, PixelFormat::Rgba8Premul).unwrap();
        assert_eq!(&rgba.data()[..4], [0, 0, 0, 255]);
        assert_eq!(&rgba.data()[219 * 4..], [255, 255, 255, 255]);
        assert_eq!(convert(&rgba, PixelFormat::Gray8).unwrap().data(), gray.data());
        let i420 = convert(&gray, PixelFormat::I420).unwrap();
        assert_eq!(i420.plane(0).0, gray.data());
        assert!(i420.plane(1).0.iter().chain(i420.plane(2).0).all(|&c| c == 128));
        assert_eq!(convert(&i420, PixelFormat::Gray8).unwrap().data(), gray.data());
    }

    /// Every multiversioned kernel run on the same random input, portable
    /// copies or AVX2 copies; widths not a multiple of any vector width.
    #[cfg(target_arch = "x86_64")]
    fn run_kernels(avx2: bool) -> Vec<Vec<u8>> {
        let (w, h, odd) = (38, 6, 37); // RGBA and gray may be odd
        let (stride, w32, h32) = (w * 4, w as u32, h as u32);
        let (rgba, bgra, yuv) = (premultiplied_noise(w * h, 11), noise(w * h * 4, 9), noise(w * h * 3 / 2, 5));
        let (y, chroma) = yuv.split_at(w * h);
        let (u, v) = chroma.split_at(w * h / 4);
        let mut out: Vec<Vec<u8>> = [w * h, w * h / 4, w * h / 4, w * h, w * h / 2, w * h]
            .into_iter()
            .chain([stride * h; 5])
            .map(|len| vec![0; len])
            .collect();
        let [i420_y, i420_u, i420_v, nv12_y, nv12_uv, gray, from_i420, from_nv12, straight, premul, from_gray] =
            &mut out[..]
        else {
            unreachable!()
        };
        macro_rules! call {
            ($kernel:ident($($arg:expr),*)) => {
                if avx2 {
                    // SAFETY: only called where the CPU supports AVX2.
                    unsafe { $kernel::avx2($($arg),*) }
                } else {
                    $kernel::portable($($arg),*)
                }
            };
        }
        call!(rgba_to_i420(&rgba, stride, w32, h32, i420_y, w, i420_u, w / 2, i420_v, w / 2));
        call!(rgba_to_nv12(&rgba, stride, w32, h32, nv12_y, w, nv12_uv, w));
        call!(rgba_to_gray(&rgba, stride, odd, h32, gray, w));
        call!(i420_to_rgba(y, w, u, w / 2, v, w / 2, w32, h32, from_i420, stride));
        call!(nv12_to_rgba(y, w, chroma, w, w32, h32, from_nv12, stride));
        call!(rgba_to_bgra(&rgba, stride, odd, h32, straight, stride));
        call!(bgra_to_rgba(&bgra, stride, odd, h32, premul, stride));
        call!(gray_to_rgba(y, w, odd, h32, from_gray, stride));
        out
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn portable_and_avx2_kernels_agree() {
        if is_x86_feature_detected!("avx2") {
            for (i, (portable, avx2)) in run_kernels(false).iter().zip(run_kernels(true)).enumerate() {
                assert_eq!(*portable, avx2, "output {i}");
            }
        }
    }

    #[test]
    fn padded_strides_convert_like_packed_ones() {
        let src = gradient(10, 6);
        for from in PixelFormat::ALL {
            let packed = convert(&src, from).unwrap();
            let padded_src = padded(&packed, 6);
            assert_ne!(padded_src.layout(), packed.layout());
            for to in PixelFormat::ALL {
                let expected = convert(&packed, to).unwrap();
                assert_eq!(convert(&padded_src, to).unwrap().into_packed().data(), expected.data(), "{from} -> {to}");
                let mut padded_dst = padded(&Frame::new(to, 10, 6).unwrap(), 4);
                convert_into(&padded_src, &mut padded_dst).unwrap();
                assert_eq!(padded_dst.into_packed().data(), expected.data(), "{from} -> padded {to}");
            }
        }
    }

    #[test]
    fn every_pair_converts_and_keeps_timing_and_metadata() {
        // Grey, so even the trip through Gray8 keeps the picture.
        let mut src = rgba_frame(6, 4, |x, y| {
            let grey = (40 * x + 10 * y) as u8;
            [grey, grey, grey, 255]
        });
        src.timing = Timing { pts: 7, frame_number: 3, ..Timing::default() };
        src.metadata.insert("source_id", "cam0");
        for from in PixelFormat::ALL {
            let input = convert(&src, from).unwrap();
            assert_eq!(input.timing, src.timing);
            for to in PixelFormat::ALL {
                let out = convert(&input, to).unwrap();
                assert_eq!((out.format(), out.size()), (to, (6, 4)));
                assert_eq!(out.metadata.get("source_id"), Some("cam0"), "{from} -> {to}");
                let back = convert(&out, PixelFormat::Rgba8Premul).unwrap();
                let quality = psnr(src.data(), back.data());
                assert!(quality > 30.0, "{from} -> {to} -> rgba: PSNR {quality:.1} dB");
            }
        }
    }

    #[test]
    fn odd_sizes_work_for_rgba_and_gray() {
        let src = gradient(7, 5);
        let gray = convert(&src, PixelFormat::Gray8).unwrap();
        assert_eq!(gray.data().len(), 35);
        let bgra = convert(&src, PixelFormat::Bgra8).unwrap();
        assert_eq!(convert(&bgra, PixelFormat::Rgba8Premul).unwrap().data(), src.data());
        let err = convert(&src, PixelFormat::I420).unwrap_err().to_string();
        assert!(err.contains("even"), "{err}");
    }

    #[test]
    fn mismatched_sizes_are_an_error_naming_both() {
        let src = Frame::new(PixelFormat::Rgba8Premul, 8, 6).unwrap();
        let mut dst = Frame::new(PixelFormat::I420, 4, 6).unwrap();
        let err = convert_into(&src, &mut dst).unwrap_err().to_string();
        assert!(err.contains("8x6") && err.contains("4x6"), "{err}");
    }

    #[test]
    fn same_format_shares_the_buffer() {
        let src = gradient(4, 4);
        let out = convert(&src, PixelFormat::Rgba8Premul).unwrap();
        assert!(Buffer::ptr_eq(src.buffer(), out.buffer()));
        let mut copy = Frame::new(PixelFormat::Rgba8Premul, 4, 4).unwrap();
        convert_into(&src, &mut copy).unwrap();
        assert!(!Buffer::ptr_eq(src.buffer(), copy.buffer()));
        assert_eq!(copy.data(), src.data());
    }
}
