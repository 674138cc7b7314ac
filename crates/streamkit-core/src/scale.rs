//! Resizing premultiplied RGBA.
//!
//! Separable and fixed-point: a vertical pass blends whole rows (plain
//! vector maths), a horizontal pass blends neighbouring pixels within a row
//! (the costly one, so it runs on whichever of source and destination has
//! fewer rows). Enlarging an axis is bilinear; shrinking one is an area
//! average (a box filter over the exact footprint of each output pixel),
//! which keeps detail without aliasing at any ratio.
//!
//! Both passes weigh every channel alike with non-negative weights that sum
//! to exactly one, so a constant image stays exactly constant and colour
//! never exceeds alpha: premultiplied pixels scale without dark fringes.

use crate::convert;
use crate::error::Result;
use crate::frame::{check_size, Frame, PixelFormat};
use crate::simd::multiversion;

/// Fraction bits of the filter weights.
const WEIGHT_SHIFT: u32 = 14;
/// A weight of one.
const ONE: i32 = 1 << WEIGHT_SHIFT;
/// Added before the final shift to round to nearest.
const ROUND: i32 = 1 << (WEIGHT_SHIFT - 1);

/// `frame` as a `width` x `height` [`PixelFormat::Rgba8Premul`] frame with
/// the same timing and metadata; a shared clone when it already is one.
pub fn resize(frame: &Frame, width: u32, height: u32) -> Result<Frame> {
    check_size(PixelFormat::Rgba8Premul, width, height)?;
    let rgba = convert::convert(frame, PixelFormat::Rgba8Premul)?;
    if rgba.size() == (width, height) {
        return Ok(rgba);
    }
    let mut out = Frame::new(PixelFormat::Rgba8Premul, width, height)?;
    let (src, src_stride) = rgba.plane(0);
    let (dst, dst_stride) = out.planes_mut().pop().expect("RGBA has one plane");
    scale_rgba(src, rgba.width(), rgba.height(), src_stride, dst, width, height, dst_stride);
    out.timing = frame.timing.clone();
    out.metadata = frame.metadata.clone();
    Ok(out)
}

/// Scales premultiplied RGBA from `src_w` x `src_h` to `dst_w` x `dst_h`:
/// bilinear where an axis grows, area-averaging where it shrinks, a row
/// copy where the size is unchanged.
///
/// # Panics
///
/// If a size is zero or a buffer is too small for its stride and size.
#[allow(clippy::too_many_arguments)] // planes and strides, libyuv-style
pub fn scale_rgba(
    src: &[u8],
    src_w: u32,
    src_h: u32,
    src_stride: usize,
    dst: &mut [u8],
    dst_w: u32,
    dst_h: u32,
    dst_stride: usize,
) {
    assert!(src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0, "cannot scale {src_w}x{src_h} to {dst_w}x{dst_h}");
    let (src, dst) = (Image::new(src, src_w, src_stride), ImageMut::new(dst, dst_w, dst_stride));
    let rows = Filter::new(src_h as usize, dst_h as usize);
    if src_w == dst_w {
        return scale_rows(&src, &rows, dst);
    }
    let columns = Filter::new(src_w as usize, dst_w as usize);
    // The horizontal pass is the costly one: run it on the shorter of the
    // source and the destination.
    if dst_h > src_h {
        scale_columns_then_rows(&src, &columns, &rows, dst);
    } else {
        scale_rows_then_columns(&src, &rows, &columns, dst);
    }
}

/// Rows of RGBA pixels, `row_len` bytes each, `stride` apart.
struct Image<'a> {
    pixels: &'a [u8],
    row_len: usize,
    stride: usize,
}

impl<'a> Image<'a> {
    fn new(pixels: &'a [u8], width: u32, stride: usize) -> Image<'a> {
        Image { pixels, row_len: width as usize * 4, stride }
    }

    fn row(&self, index: usize) -> &'a [u8] {
        &self.pixels[index * self.stride..][..self.row_len]
    }
}

/// A mutable [`Image`].
struct ImageMut<'a> {
    pixels: &'a mut [u8],
    row_len: usize,
    stride: usize,
}

impl<'a> ImageMut<'a> {
    fn new(pixels: &'a mut [u8], width: u32, stride: usize) -> ImageMut<'a> {
        ImageMut { pixels, row_len: width as usize * 4, stride }
    }

    fn row(&mut self, index: usize) -> &mut [u8] {
        &mut self.pixels[index * self.stride..][..self.row_len]
    }
}

/// Same width: the vertical pass alone, straight into `dst`.
fn scale_rows(src: &Image, rows: &Filter, mut dst: ImageMut) {
    for (j, (first, weights)) in rows.outputs().enumerate() {
        blend_rows(src.pixels, src.stride, first, weights, dst.row(j));
    }
}

/// Vertical pass into a scratch row, then horizontal pass into `dst`.
fn scale_rows_then_columns(src: &Image, rows: &Filter, columns: &Filter, mut dst: ImageMut) {
    let mut blended = vec![0; src.row_len];
    for (j, (first, weights)) in rows.outputs().enumerate() {
        blend_rows(src.pixels, src.stride, first, weights, &mut blended);
        blend_columns(&blended, &columns.starts, &columns.weights, dst.row(j));
    }
}

/// Horizontal pass first, each source row once, into a ring of as many rows
/// as the vertical filter has taps; output rows blend from the ring.
fn scale_columns_then_rows(src: &Image, columns: &Filter, rows: &Filter, mut dst: ImageMut) {
    let (taps, row_len) = (rows.taps, dst.row_len);
    let mut ring = vec![0; taps * row_len];
    let mut ring_weights = vec![0; taps];
    let mut next_row = 0; // the first source row not yet in the ring
    for (j, (first, weights)) in rows.outputs().enumerate() {
        // Windows only move down, so the rows they leave behind are done with.
        for r in next_row.max(first)..first + taps {
            blend_columns(src.row(r), &columns.starts, &columns.weights, &mut ring[r % taps * row_len..][..row_len]);
        }
        next_row = first + taps;
        // Source row `first + k` sits in slot `(first + k) % taps`; the sum
        // does not care about order, so move the weights instead of the rows.
        for (k, &w) in weights.iter().enumerate() {
            ring_weights[(first + k) % taps] = w;
        }
        blend_rows(&ring, row_len, 0, &ring_weights, dst.row(j));
    }
}

/// How source samples combine into each destination sample along one axis:
/// output `i` is the weighted sum of the `taps` source samples starting at
/// `starts[i]`, with weights `weights[i * taps..][..taps]` summing to [`ONE`].
#[derive(Debug)]
struct Filter {
    taps: usize,
    starts: Vec<usize>,
    weights: Vec<i32>,
}

impl Filter {
    fn new(src: usize, dst: usize) -> Filter {
        let max_taps = if src < dst { 2 } else { src.div_ceil(dst) + 1 };
        let mut spans = Vec::with_capacity(dst);
        let mut raw = vec![0; dst * max_taps];
        for (i, weights) in raw.chunks_exact_mut(max_taps).enumerate() {
            spans.push(if src < dst { linear_span(i, src, dst, weights) } else { area_span(i, src, dst, weights) });
        }
        // Every output gets the same tap count; windows near the far edge
        // slide left to stay inside the source and pad with zero weights.
        let taps = spans.iter().map(|&(_, len)| len).max().unwrap_or(1);
        let mut starts = Vec::with_capacity(dst);
        let mut weights = Vec::with_capacity(dst * taps);
        for (&(first, len), raw) in spans.iter().zip(raw.chunks_exact(max_taps)) {
            let start = first.min(src - taps);
            let lead = first - start;
            weights.resize(weights.len() + lead, 0);
            weights.extend_from_slice(&raw[..len]);
            weights.resize(weights.len() + taps - lead - len, 0);
            starts.push(start);
        }
        Filter { taps, starts, weights }
    }

    /// Each output's first source index and weights.
    fn outputs(&self) -> impl Iterator<Item = (usize, &[i32])> {
        self.starts.iter().copied().zip(self.weights.chunks_exact(self.taps))
    }
}

/// Bilinear weights of output `i` when enlarging (pixel centres aligned):
/// writes them to `weights` and returns (first source index, tap count).
fn linear_span(i: usize, src: usize, dst: usize, weights: &mut [i32]) -> (usize, usize) {
    // Source position of the output centre, ((2i + 1) · src − dst) / (2 · dst).
    let (num, den) = ((2 * i + 1) * src, 2 * dst);
    if num <= dst {
        weights[0] = ONE;
        return (0, 1);
    }
    let (first, rem) = ((num - dst) / den, (num - dst) % den);
    if first + 1 >= src {
        weights[0] = ONE;
        return (src - 1, 1);
    }
    let frac = ((rem << WEIGHT_SHIFT) + den / 2) / den;
    weights[0] = ONE - frac as i32;
    weights[1] = frac as i32;
    (first, 2)
}

/// Area-average weights of output `i` when shrinking: each source sample
/// weighs by how much of the output's footprint it covers. Writes them to
/// `weights` and returns (first source index, tap count).
fn area_span(i: usize, src: usize, dst: usize, weights: &mut [i32]) -> (usize, usize) {
    // In units of 1/dst source pixels the footprint is [i · src, (i + 1) · src)
    // and source pixel k covers [k · dst, (k + 1) · dst): all exact integers.
    let (lo, hi) = (i * src, (i + 1) * src);
    let (first, last) = (lo / dst, (hi - 1) / dst);
    let len = last - first + 1;
    for (k, w) in (first..=last).zip(weights.iter_mut()) {
        let overlap = hi.min((k + 1) * dst) - lo.max(k * dst);
        *w = (((overlap << WEIGHT_SHIFT) + src / 2) / src) as i32;
    }
    // Rounding may leave the sum a little off one; the largest weight absorbs it.
    let sum: i32 = weights[..len].iter().sum();
    let largest = (0..len).max_by_key(|&k| weights[k]).expect("a footprint covers at least one pixel");
    weights[largest] += ONE - sum;
    (first, len)
}

/// Runs `$pass::<TAPS>` with the tap count as a constant for the common
/// small filters (so LLVM unrolls the taps), or `$pass::<0>` (tap count read
/// at run time) for the rest.
macro_rules! with_const_taps {
    ($taps:expr, $pass:ident($($arg:expr),*)) => {
        match $taps {
            2 => $pass::<2>($($arg),*),
            3 => $pass::<3>($($arg),*),
            4 => $pass::<4>($($arg),*),
            5 => $pass::<5>($($arg),*),
            _ => $pass::<0>($($arg),*),
        }
    };
}

multiversion! {
    /// Vertical pass: `out` = the weighted sum of `weights.len()` source rows
    /// from `first`, column by column.
    fn blend_rows(src: &[u8], stride: usize, first: usize, weights: &[i32], out: &mut [u8]) {
        if let [_] = weights {
            // A single tap always weighs one.
            out.copy_from_slice(&src[first * stride..][..out.len()]);
            return;
        }
        with_const_taps!(weights.len(), blend_rows_n(src, stride, first, weights, out))
    }
}

/// [`blend_rows`] for `TAPS` rows, or any number when `TAPS` is 0.
#[inline(always)]
fn blend_rows_n<const TAPS: usize>(src: &[u8], stride: usize, first: usize, weights: &[i32], out: &mut [u8]) {
    if TAPS == 0 {
        return blend_many_rows(src, stride, first, weights, out);
    }
    let len = out.len();
    let rows: [&[u8]; TAPS] = std::array::from_fn(|k| &src[(first + k) * stride..][..len]);
    let weights: [i32; TAPS] = std::array::from_fn(|k| weights[k]);
    for (i, o) in out.iter_mut().enumerate() {
        let acc = rows.iter().zip(weights).fold(ROUND, |acc, (row, w)| acc + w * i32::from(row[i]));
        *o = (acc >> WEIGHT_SHIFT) as u8;
    }
}

/// [`blend_rows`] for any number of rows, a block of columns at a time.
#[inline(always)]
fn blend_many_rows(src: &[u8], stride: usize, first: usize, weights: &[i32], out: &mut [u8]) {
    // Blocks small enough that the accumulators stay in registers.
    const BLOCK: usize = 64;
    for (b, out) in out.chunks_mut(BLOCK).enumerate() {
        let mut acc = [ROUND; BLOCK];
        for (k, &w) in weights.iter().enumerate() {
            let row = &src[(first + k) * stride + b * BLOCK..][..out.len()];
            for (a, &s) in acc.iter_mut().zip(row) {
                *a += w * i32::from(s);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = (a >> WEIGHT_SHIFT) as u8;
        }
    }
}

multiversion! {
    /// Horizontal pass: output pixel `i` is the weighted sum of the pixels of
    /// `row` from `starts[i]` on, `weights.len() / starts.len()` of them.
    fn blend_columns(row: &[u8], starts: &[usize], weights: &[i32], out: &mut [u8]) {
        with_const_taps!(weights.len() / starts.len(), blend_columns_n(row, starts, weights, out))
    }
}

/// [`blend_columns`] for `TAPS` taps, or any number when `TAPS` is 0.
#[inline(always)]
fn blend_columns_n<const TAPS: usize>(row: &[u8], starts: &[usize], weights: &[i32], out: &mut [u8]) {
    let taps = if TAPS == 0 { weights.len() / starts.len() } else { TAPS };
    let outputs = starts.iter().zip(weights.chunks_exact(taps));
    for (out, (&start, weights)) in out.chunks_exact_mut(4).zip(outputs) {
        let pixels = &row[start * 4..][..taps * 4];
        let mut acc = [ROUND; 4];
        for (px, &w) in pixels.chunks_exact(4).zip(weights) {
            for (a, &c) in acc.iter_mut().zip(px) {
                *a += w * i32::from(c);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = (a >> WEIGHT_SHIFT) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Buffer;
    use crate::time::Timing;

    /// A `w` x `h` premultiplied RGBA image from a per-pixel function.
    fn image(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| pixel(x, y)).collect()
    }

    fn scaled(src: &[u8], (sw, sh): (u32, u32), (dw, dh): (u32, u32)) -> Vec<u8> {
        let mut dst = vec![0; dw as usize * dh as usize * 4];
        scale_rgba(src, sw, sh, sw as usize * 4, &mut dst, dw, dh, dw as usize * 4);
        dst
    }

    const SIZES: [((u32, u32), (u32, u32)); 7] = [
        ((37, 23), (101, 59)), // up, odd ratio
        ((37, 23), (7, 5)),    // down, odd ratio
        ((64, 48), (16, 12)),  // down 4x
        ((40, 30), (60, 45)),  // up 1.5x
        ((50, 50), (50, 17)),  // one axis only
        ((1, 1), (9, 4)),      // from a single pixel
        ((300, 2), (1, 1)),    // to a single pixel
    ];

    #[test]
    fn filters_weigh_exactly_one() {
        for (src, dst) in [(1, 5), (5, 1), (7, 3), (3, 7), (1920, 1280), (1280, 1920), (1080, 270), (100, 100)] {
            let f = Filter::new(src, dst);
            assert_eq!(f.starts.len(), dst);
            for (&start, weights) in f.starts.iter().zip(f.weights.chunks_exact(f.taps)) {
                assert_eq!(weights.iter().sum::<i32>(), ONE, "{src} -> {dst}");
                assert!(weights.iter().all(|&w| w >= 0));
                assert!(start + f.taps <= src);
            }
        }
    }

    #[test]
    fn constant_colour_stays_exactly_constant() {
        let colour = [90, 41, 7, 200];
        for (from, to) in SIZES {
            let out = scaled(&image(from.0, from.1, |_, _| colour), from, to);
            assert!(out.chunks_exact(4).all(|px| px == colour), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn halving_a_checkerboard_of_2x2_blocks_gives_the_block_colours() {
        let colours = [[255, 0, 0, 255], [0, 0, 40, 80]];
        let colour = |bx: u32, by: u32| colours[((bx + by) % 2) as usize];
        let src = image(16, 10, |x, y| colour(x / 2, y / 2));
        let out = scaled(&src, (16, 10), (8, 5));
        assert_eq!(out, image(8, 5, colour));
    }

    #[test]
    fn enlarging_interpolates_between_pixel_centres() {
        let src = [0, 0, 0, 255, 255, 255, 255, 255];
        let out = scaled(&src, (2, 1), (4, 1));
        // Output centres fall at -0.25 (clamped), 0.25, 0.75 and 1.25 (clamped).
        let reds: Vec<u8> = out.chunks_exact(4).map(|px| px[0]).collect();
        assert_eq!(reds, [0, 64, 191, 255]);
    }

    #[test]
    fn enlarging_both_axes_interpolates_along_each() {
        let across = [0, 0, 0, 255, 255, 0, 0, 255];
        let across = [across, across].concat(); // 2x2, black | red
        let down = [[0, 0, 0, 255, 0, 0, 0, 255], [0, 255, 0, 255, 0, 255, 0, 255]].concat(); // black over green
        let (across, down) = (scaled(&across, (2, 2), (4, 4)), scaled(&down, (2, 2), (4, 4)));
        for (i, (a, d)) in across.chunks_exact(4).zip(down.chunks_exact(4)).enumerate() {
            let (x, y) = (i % 4, i / 4);
            assert_eq!(a, [[0, 64, 191, 255][x], 0, 0, 255], "({x}, {y})");
            assert_eq!(d, [0, [0, 64, 191, 255][y], 0, 255], "({x}, {y})");
        }
    }

    #[test]
    fn premultiplied_edges_never_exceed_alpha() {
        let src = image(9, 7, |x, y| if (x + y) % 3 == 0 { [255, 0, 0, 255] } else { [0, 0, 0, 0] });
        for to in [(31, 17), (4, 3), (13, 2), (2, 13)] {
            let out = scaled(&src, (9, 7), to);
            for px in out.chunks_exact(4) {
                assert!(px[..3].iter().all(|&c| c <= px[3]), "{px:?} at {to:?}");
            }
        }
    }

    #[test]
    fn same_size_copies_rows_between_strides() {
        let src = image(5, 3, |x, y| [x as u8, y as u8, 9, 255]);
        let padded: Vec<u8> = src.chunks_exact(20).flat_map(|row| row.iter().copied().chain([7; 12])).collect();
        let mut dst = vec![1; 28 * 3];
        scale_rgba(&padded, 5, 3, 32, &mut dst, 5, 3, 28);
        for (row, expected) in dst.chunks_exact(28).zip(src.chunks_exact(20)) {
            assert_eq!(&row[..20], expected);
            assert_eq!(&row[20..], [1; 8], "padding untouched");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn portable_and_avx2_passes_agree() {
        if is_x86_feature_detected!("avx2") {
            let src: Vec<u8> = (0..97 * 41 * 4).map(|i| (i * 7919 % 251) as u8).collect();
            for (from, to) in [(97, 33), (97, 200), (97, 7), (97, 30)] {
                let (rows, columns) = (Filter::new(41, to), Filter::new(from, to));
                let row_len = from * 4;
                for (&first, weights) in rows.starts.iter().zip(rows.weights.chunks_exact(rows.taps)) {
                    let (mut portable, mut avx2) = (vec![0; row_len], vec![0; row_len]);
                    blend_rows::portable(&src, row_len, first, weights, &mut portable);
                    // SAFETY: the CPU supports AVX2, checked above.
                    unsafe { blend_rows::avx2(&src, row_len, first, weights, &mut avx2) };
                    assert_eq!(portable, avx2);
                    let (mut portable_out, mut avx2_out) = (vec![0; to * 4], vec![0; to * 4]);
                    blend_columns::portable(&portable, &columns.starts, &columns.weights, &mut portable_out);
                    // SAFETY: the CPU supports AVX2, checked above.
                    unsafe { blend_columns::avx2(&portable, &columns.starts, &columns.weights, &mut avx2_out) };
                    assert_eq!(portable_out, avx2_out);
                }
            }
        }
    }

    #[test]
    fn resize_converts_scales_and_keeps_timing() {
        let mut frame = Frame::new(PixelFormat::I420, 8, 6).unwrap();
        let y_len = 8 * 6;
        frame.data_mut()[..y_len].fill(235); // white
        frame.data_mut()[y_len..].fill(128);
        frame.timing = Timing { pts: 42, ..Timing::default() };
        frame.metadata.insert("source_id", "cam0");
        let out = resize(&frame, 3, 5).unwrap();
        assert_eq!((out.format(), out.size()), (PixelFormat::Rgba8Premul, (3, 5)));
        assert!(out.data().iter().all(|&b| b == 255));
        assert_eq!(out.timing, frame.timing);
        assert_eq!(out.metadata.get("source_id"), Some("cam0"));
    }

    #[test]
    fn resize_to_the_same_rgba_size_shares_the_buffer() {
        let frame = Frame::new(PixelFormat::Rgba8Premul, 4, 4).unwrap();
        let out = resize(&frame, 4, 4).unwrap();
        assert!(Buffer::ptr_eq(frame.buffer(), out.buffer()));
        assert!(resize(&frame, 0, 4).is_err());
    }
}
