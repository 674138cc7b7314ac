//! YCbCr 4:2:2, 8 bit, in UYVY order (`U0 Y0 V0 Y1` per pair of pixels): the
//! RFC 4175 / ST 2110-20 pixel group and FFmpeg's `uyvy422`.
//!
//! Written the way `streamkit_core::convert` is (BT.709 limited range,
//! fixed point, the same coefficients derived from Kr and Kb) and meant to
//! move there once `PixelFormat` has a 4:2:2 member; until then it lives
//! beside its only user. Conversions:
//!
//! * premultiplied RGBA → UYVY: Y per pixel, Cb/Cr from the average of the
//!   pair (alpha ignored, as core does);
//! * I420 → UYVY: chroma rows repeated (4:2:0 → 4:2:2 is exact);
//! * UYVY → I420: chroma of two rows averaged;
//! * UYVY → RGBA: opaque.

use streamkit_core::convert::convert;
use streamkit_core::{Error, Frame, PixelFormat, Result};

/// Bytes per pixel group (two pixels).
pub const PGROUP_BYTES: usize = 4;

// The same BT.709 fixed-point coefficients as every other conversion.
use streamkit_core::convert::bt709::*;

/// Bytes in one UYVY row of `width` pixels.
pub fn uyvy_stride(width: u32) -> usize {
    width as usize * 2
}

fn check(width: u32, what: &str) {
    assert!(width.is_multiple_of(2), "{what}: UYVY needs an even width, got {width}");
}

#[inline(always)]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    const OFFSET: i32 = (16 << TO_YUV_SHIFT) + (1 << (TO_YUV_SHIFT - 1));
    ((Y_R * r + Y_G * g + Y_B * b + OFFSET) >> TO_YUV_SHIFT) as u8
}

#[inline(always)]
fn rgb_pixel(y: u8, chroma: [i32; 3], out: &mut [u8]) {
    let luma = (i32::from(y) - 16) * RGB_Y + (1 << (TO_RGB_SHIFT - 1));
    let channel = |c: i32| ((luma + c) >> TO_RGB_SHIFT).clamp(0, 255) as u8;
    out[0] = channel(chroma[0]);
    out[1] = channel(chroma[1]);
    out[2] = channel(chroma[2]);
    out[3] = 255;
}

#[inline(always)]
fn chroma_terms(u: u8, v: u8) -> [i32; 3] {
    let (u, v) = (i32::from(u) - 128, i32::from(v) - 128);
    [R_V * v, G_U * u + G_V * v, B_U * u]
}

/// Premultiplied RGBA → UYVY (alpha ignored). `width` must be even.
pub fn rgba_to_uyvy(rgba: &[u8], rgba_stride: usize, width: u32, height: u32, uyvy: &mut [u8], uyvy_stride: usize) {
    check(width, "rgba_to_uyvy");
    let (w, h) = (width as usize, height as usize);
    for row in 0..h {
        let src = &rgba[row * rgba_stride..][..w * 4];
        let dst = &mut uyvy[row * uyvy_stride..][..w * 2];
        for (px, out) in src.chunks_exact(8).zip(dst.chunks_exact_mut(4)) {
            let (r0, g0, b0) = (px[0] as i32, px[1] as i32, px[2] as i32);
            let (r1, g1, b1) = (px[4] as i32, px[5] as i32, px[6] as i32);
            const SHIFT: u32 = TO_YUV_SHIFT + 1; // two pixels summed
            const OFFSET: i32 = (128 << SHIFT) + (1 << (SHIFT - 1));
            let (r, g, b) = (r0 + r1, g0 + g1, b0 + b1);
            out[0] = ((U_R * r + U_G * g + U_B * b + OFFSET) >> SHIFT) as u8;
            out[1] = luma(r0, g0, b0);
            out[2] = ((V_R * r + V_G * g + V_B * b + OFFSET) >> SHIFT) as u8;
            out[3] = luma(r1, g1, b1);
        }
    }
}

/// UYVY → opaque RGBA.
pub fn uyvy_to_rgba(uyvy: &[u8], uyvy_stride: usize, width: u32, height: u32, rgba: &mut [u8], rgba_stride: usize) {
    check(width, "uyvy_to_rgba");
    let (w, h) = (width as usize, height as usize);
    for row in 0..h {
        let src = &uyvy[row * uyvy_stride..][..w * 2];
        let dst = &mut rgba[row * rgba_stride..][..w * 4];
        for (pg, out) in src.chunks_exact(4).zip(dst.chunks_exact_mut(8)) {
            let terms = chroma_terms(pg[0], pg[2]);
            rgb_pixel(pg[1], terms, &mut out[..4]);
            rgb_pixel(pg[3], terms, &mut out[4..]);
        }
    }
}

/// I420 planes → UYVY; each chroma row serves two output rows.
#[allow(clippy::too_many_arguments)]
pub fn i420_to_uyvy(
    y: &[u8],
    y_stride: usize,
    u: &[u8],
    u_stride: usize,
    v: &[u8],
    v_stride: usize,
    width: u32,
    height: u32,
    uyvy: &mut [u8],
    uyvy_stride: usize,
) {
    check(width, "i420_to_uyvy");
    let (w, h) = (width as usize, height as usize);
    for row in 0..h {
        let ys = &y[row * y_stride..][..w];
        let us = &u[(row / 2) * u_stride..][..w / 2];
        let vs = &v[(row / 2) * v_stride..][..w / 2];
        let dst = &mut uyvy[row * uyvy_stride..][..w * 2];
        for (((out, y2), u), v) in dst.chunks_exact_mut(4).zip(ys.chunks_exact(2)).zip(us).zip(vs) {
            out.copy_from_slice(&[*u, y2[0], *v, y2[1]]);
        }
    }
}

/// UYVY → I420 planes; chroma of each row pair averaged (rounded).
/// `width` and `height` must be even.
#[allow(clippy::too_many_arguments)]
pub fn uyvy_to_i420(
    uyvy: &[u8],
    uyvy_stride: usize,
    width: u32,
    height: u32,
    y: &mut [u8],
    y_stride: usize,
    u: &mut [u8],
    u_stride: usize,
    v: &mut [u8],
    v_stride: usize,
) {
    check(width, "uyvy_to_i420");
    assert!(height.is_multiple_of(2), "uyvy_to_i420: I420 needs an even height, got {height}");
    let (w, h) = (width as usize, height as usize);
    for pair in 0..h / 2 {
        let top = &uyvy[2 * pair * uyvy_stride..][..w * 2];
        let bottom = &uyvy[(2 * pair + 1) * uyvy_stride..][..w * 2];
        let (y_top, y_bottom) = y[2 * pair * y_stride..].split_at_mut(y_stride);
        for (dst, src) in [(&mut y_top[..w], top), (&mut y_bottom[..w], bottom)] {
            for (d, pg) in dst.chunks_exact_mut(2).zip(src.chunks_exact(4)) {
                d[0] = pg[1];
                d[1] = pg[3];
            }
        }
        let us = &mut u[pair * u_stride..][..w / 2];
        let vs = &mut v[pair * v_stride..][..w / 2];
        for (((u, v), t), b) in us.iter_mut().zip(vs.iter_mut()).zip(top.chunks_exact(4)).zip(bottom.chunks_exact(4)) {
            *u = ((t[0] as u16 + b[0] as u16 + 1) >> 1) as u8;
            *v = ((t[2] as u16 + b[2] as u16 + 1) >> 1) as u8;
        }
    }
}

/// Writes any frame as UYVY into `uyvy` (`height` rows of `uyvy_stride`).
/// I420 and RGBA convert directly; other formats go through RGBA.
pub fn frame_to_uyvy(frame: &Frame, uyvy: &mut [u8], uyvy_stride: usize) -> Result<()> {
    let (w, h) = frame.size();
    if !w.is_multiple_of(2) {
        return Err(Error::invalid(format!("YCbCr 4:2:2 needs an even width, the frame is {w}x{h}")));
    }
    if uyvy.len() < uyvy_stride * h as usize || uyvy_stride < uyvy_stride_min(w) {
        return Err(Error::invalid(format!("UYVY buffer of {} bytes is too small for {w}x{h}", uyvy.len())));
    }
    match frame.format() {
        PixelFormat::I420 => {
            let ((y, ys), (u, us), (v, vs)) = (frame.plane(0), frame.plane(1), frame.plane(2));
            i420_to_uyvy(y, ys, u, us, v, vs, w, h, uyvy, uyvy_stride);
        }
        PixelFormat::Rgba8Premul => {
            let (rgba, stride) = frame.plane(0);
            rgba_to_uyvy(rgba, stride, w, h, uyvy, uyvy_stride);
        }
        _ => {
            let rgba = convert(frame, PixelFormat::Rgba8Premul)?;
            let (data, stride) = rgba.plane(0);
            rgba_to_uyvy(data, stride, w, h, uyvy, uyvy_stride);
        }
    }
    Ok(())
}

fn uyvy_stride_min(width: u32) -> usize {
    uyvy_stride(width)
}

/// Converts UYVY pixels into `frame` (I420 or RGBA, same size), leaving its
/// timing alone.
pub fn uyvy_to_frame(uyvy: &[u8], uyvy_stride: usize, frame: &mut Frame) -> Result<()> {
    let (w, h) = frame.size();
    if uyvy.len() < uyvy_stride * h as usize {
        return Err(Error::invalid(format!("UYVY buffer of {} bytes is too small for {w}x{h}", uyvy.len())));
    }
    match frame.format() {
        PixelFormat::I420 => {
            let mut planes = frame.planes_mut().into_iter();
            let (y, ys) = planes.next().expect("three planes");
            let (u, us) = planes.next().expect("three planes");
            let (v, vs) = planes.next().expect("three planes");
            uyvy_to_i420(uyvy, uyvy_stride, w, h, y, ys, u, us, v, vs);
        }
        PixelFormat::Rgba8Premul => {
            let mut planes = frame.planes_mut();
            let (rgba, stride) = &mut planes[0];
            uyvy_to_rgba(uyvy, uyvy_stride, w, h, rgba, *stride);
        }
        other => return Err(Error::Unsupported(format!("UYVY to {other}: convert to i420 or rgba first"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamkit_core::convert::convert;

    fn gradient(w: u32, h: u32) -> Frame {
        let mut data = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) * 2 % 256) as u8, 255]);
            }
        }
        Frame::from_vec(PixelFormat::Rgba8Premul, w, h, data).unwrap()
    }

    #[test]
    fn luma_matches_core_exactly_and_chroma_within_one() {
        let rgba = gradient(64, 32);
        let i420 = convert(&rgba, PixelFormat::I420).unwrap();
        let mut uyvy = vec![0; 64 * 2 * 32];
        frame_to_uyvy(&rgba, &mut uyvy, 128).unwrap();
        let (y, ys) = i420.plane(0);
        for row in 0..32 {
            for x in 0..64 {
                assert_eq!(uyvy[row * 128 + x * 2 + 1], y[row * ys + x], "Y at {x},{row}");
            }
        }
        // Flat colours: 4:2:2 chroma equals core's 4:2:0 chroma.
        for [r, g, b] in [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [180, 40, 200], [255, 255, 255], [0, 0, 0]] {
            let flat = Frame::from_vec(PixelFormat::Rgba8Premul, 2, 2, [r, g, b, 255].repeat(4)).unwrap();
            let core = convert(&flat, PixelFormat::I420).unwrap();
            let mut pg = [0u8; 8];
            frame_to_uyvy(&flat, &mut pg, 4).unwrap();
            assert!((pg[0] as i32 - core.plane(1).0[0] as i32).abs() <= 1, "U of {r},{g},{b}");
            assert!((pg[2] as i32 - core.plane(2).0[0] as i32).abs() <= 1, "V of {r},{g},{b}");
        }
    }

    #[test]
    fn i420_to_uyvy_and_back_is_lossless() {
        let i420 = convert(&gradient(48, 20), PixelFormat::I420).unwrap();
        let mut uyvy = vec![0; 48 * 2 * 20];
        frame_to_uyvy(&i420, &mut uyvy, 96).unwrap();
        let mut back = Frame::new(PixelFormat::I420, 48, 20).unwrap();
        uyvy_to_frame(&uyvy, 96, &mut back).unwrap();
        assert_eq!(back.data(), i420.data());
    }

    #[test]
    fn rgba_round_trip_is_close() {
        let rgba = gradient(64, 16);
        let mut uyvy = vec![0; 64 * 2 * 16];
        frame_to_uyvy(&rgba, &mut uyvy, 128).unwrap();
        let mut back = Frame::new(PixelFormat::Rgba8Premul, 64, 16).unwrap();
        uyvy_to_frame(&uyvy, 128, &mut back).unwrap();
        let (a, b) = (rgba.data(), back.data());
        let sse: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
        let psnr = 10.0 * (255.0f64.powi(2) / (sse / a.len() as f64)).log10();
        assert!(psnr > 30.0, "PSNR {psnr:.1} dB");
    }

    #[test]
    fn odd_width_is_an_error() {
        let odd = Frame::new(PixelFormat::Rgba8Premul, 3, 2).unwrap();
        assert!(frame_to_uyvy(&odd, &mut [0; 64], 8).unwrap_err().to_string().contains("even width"));
    }
}
