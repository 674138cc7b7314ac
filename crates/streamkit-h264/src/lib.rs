//! H.264 for streamkit.
//!
//! * [`nal`] — Annex-B and length-prefixed (avcC) NAL units, SPS parsing,
//!   the avcC decoder configuration record, access-unit splitting. Pure Rust,
//!   always built: containers use it without pulling in the codec.
//! * [`encoder`], [`decoder`], [`annexb_source`] (feature `codec`, on by
//!   default) — OpenH264 2.7 compiled from source (the C++ vendored in
//!   `openh264-sys2`, no system library), with its x86 assembly: build.rs
//!   fails when `nasm` cannot run, and [`openh264_simd`] proves at run time
//!   that the assembly kernels were linked.

#[doc(hidden)]
pub mod fuzzing;
pub mod nal;

#[cfg(feature = "codec")]
pub mod annexb_source;
#[cfg(feature = "codec")]
pub mod decoder;
#[cfg(feature = "codec")]
pub mod encoder;
pub mod rate;

#[cfg(feature = "codec")]
pub use annexb_source::AnnexBSource;
#[cfg(feature = "codec")]
pub use decoder::H264Decoder;
#[cfg(feature = "codec")]
pub use encoder::{EncodedFrame, EncoderConfig, H264Encoder, Preset, RateControl, Usage};

/// Which x86 assembly OpenH264 runs on this machine, e.g.
/// `Some("sse2 ssse3 sse4.1 sse4.2 avx")`; `None` when the library was built
/// without its assembly (plain C, about 3x slower) or on a CPU family where
/// OpenH264 has no run-time detection.
///
/// How this proves the assembly is in: OpenH264 picks every kernel from the
/// flags of `WelsCPUFeatureDetect`, which is defined in all builds but
/// returns 0 unless its library was compiled with `X86_ASM` — and
/// `openh264-sys2` defines `X86_ASM` for a library only after nasm assembled
/// that library's `.asm` files. On x86_64 this function also takes the
/// address of one kernel that only the `.asm` sources define in each of
/// OpenH264's four static libraries (common, decoder, encoder, processing),
/// so a build without them does not even link.
#[cfg(feature = "codec")]
pub fn openh264_simd() -> Option<String> {
    let flags = asm::cpu_features();
    let names: Vec<&str> =
        asm::FEATURE_NAMES.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, name)| *name).collect();
    (!names.is_empty() && asm::kernels_linked()).then(|| names.join(" "))
}

/// The OpenH264 version compiled in, e.g. `2.7.0`.
#[cfg(feature = "codec")]
pub fn openh264_version() -> String {
    // SAFETY: a plain getter with no preconditions.
    let v = unsafe { openh264_sys2::source::APILoader::WelsGetCodecVersion() };
    format!("{}.{}.{}", v.uMajor, v.uMinor, v.uRevision)
}

#[cfg(feature = "codec")]
pub(crate) mod asm {
    /// `WELS_CPU_*` flags from OpenH264's `cpu_core.h` that select kernels.
    pub const FEATURE_NAMES: [(u32, &str); 9] = [
        (0x0000_0008, "sse2"),
        (0x0000_0010, "sse3"),
        (0x0000_0200, "ssse3"),
        (0x0000_0020, "sse4.1"),
        (0x0000_0400, "sse4.2"),
        (0x0000_0800, "avx"),
        (0x0004_0000, "avx2"),
        (0x0000_0001, "mmx"),
        (0x0000_0004, "sse"),
    ];

    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    extern "C" {
        /// `codec/common/src/cpu.cpp`: `uint32_t WelsCPUFeatureDetect(int32_t*)`.
        fn WelsCPUFeatureDetect(logical_cpus: *mut i32) -> u32;
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub fn cpu_features() -> u32 {
        let mut cpus = 0i32;
        // SAFETY: extern "C" in cpu.h; the out-pointer is valid for the call.
        unsafe { WelsCPUFeatureDetect(&mut cpus) }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    pub fn cpu_features() -> u32 {
        0
    }

    // Defined only by nasm sources, one per static library. Never called:
    // declared with no arguments because only their addresses are taken.
    #[cfg(target_arch = "x86_64")]
    extern "C" {
        /// `codec/common/x86/satd_sad.asm`
        fn WelsSampleSatd4x4_sse2();
        /// `codec/decoder/core/x86/intra_pred.asm`
        fn WelsDecoderI16x16LumaPredPlane_sse2();
        /// `codec/encoder/core/x86/quant.asm`
        fn WelsQuant4x4_sse2();
        /// `codec/processing/src/x86/denoisefilter.asm`
        fn BilateralLumaFilter8_sse2();
    }

    /// Called by the encoder and decoder constructors too, so that every
    /// binary using the codec carries the link-time check.
    #[cfg(target_arch = "x86_64")]
    pub fn kernels_linked() -> bool {
        let kernels: [unsafe extern "C" fn(); 4] =
            [WelsSampleSatd4x4_sse2, WelsDecoderI16x16LumaPredPlane_sse2, WelsQuant4x4_sse2, BilateralLumaFilter8_sse2];
        // black_box keeps the references (and so the link-time check) alive.
        kernels.iter().all(|k| !std::hint::black_box(*k as *const ()).is_null())
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn kernels_linked() -> bool {
        true
    }
}

/// Helpers shared by the unit tests of the codec modules.
#[cfg(all(test, feature = "codec"))]
pub(crate) mod test_util {
    use streamkit_core::{Fps, Frame, PixelFormat, Timing};

    /// A busy, moving I420 test picture: a diagonal gradient that scrolls,
    /// a bouncing block and per-pixel noise (hard for an encoder, so rate
    /// control and frame skipping are really exercised).
    pub fn busy_i420(width: u32, height: u32, n: u64, noise: bool) -> Frame {
        let mut frame = Frame::new(PixelFormat::I420, width, height).unwrap();
        let (w, h) = (width as usize, height as usize);
        let t = n as usize;
        let mut seed = (n as u32).wrapping_mul(2_654_435_761).wrapping_add(1);
        {
            let mut planes = frame.planes_mut();
            let (y, ys) = &mut planes[0];
            let (bx, by) = ((t * 7) % w.saturating_sub(64).max(1), (t * 5) % h.saturating_sub(64).max(1));
            for row in 0..h {
                for col in 0..w {
                    let mut v = ((col + row + t * 4) % 220 + 16) as u8;
                    if (bx..bx + 64).contains(&col) && (by..by + 64).contains(&row) {
                        v = 235 - (((col / 8 + row / 8) % 2) as u8) * 180;
                    }
                    if noise {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        v = v.saturating_add((seed % 24) as u8).min(235);
                    }
                    y[row * *ys + col] = v;
                }
            }
            for (i, (plane, stride)) in planes.iter_mut().enumerate().skip(1) {
                for row in 0..h / 2 {
                    for col in 0..w / 2 {
                        let v = if i == 1 { (col * 2 + t) % 200 + 28 } else { (row * 2 + t * 3) % 200 + 28 };
                        plane[row * *stride + col] = v as u8;
                    }
                }
            }
        }
        frame.with_timing(Timing::for_frame(n, Fps::new(30, 1)))
    }

    /// PSNR over the three planes of two I420 frames of one size.
    pub fn psnr_i420(a: &Frame, b: &Frame) -> f64 {
        assert_eq!(a.size(), b.size());
        assert_eq!((a.format(), b.format()), (PixelFormat::I420, PixelFormat::I420));
        let (w, h) = (a.width() as usize, a.height() as usize);
        let mut sse = 0u64;
        let mut count = 0u64;
        for p in 0..3 {
            let (pw, ph) = if p == 0 { (w, h) } else { (w / 2, h / 2) };
            let ((da, sa), (db, sb)) = (a.plane(p), b.plane(p));
            for row in 0..ph {
                for col in 0..pw {
                    let d = da[row * sa + col] as i64 - db[row * sb + col] as i64;
                    sse += (d * d) as u64;
                }
            }
            count += (pw * ph) as u64;
        }
        psnr_from_sse(sse, count)
    }

    pub fn psnr_from_sse(sse: u64, count: u64) -> f64 {
        if sse == 0 {
            return f64::INFINITY;
        }
        let mse = sse as f64 / count as f64;
        10.0 * (255.0 * 255.0 / mse).log10()
    }

    /// Splits a raw yuv420p file into frames.
    pub fn read_yuv(path: &std::path::Path, width: u32, height: u32) -> Vec<Frame> {
        let data = std::fs::read(path).unwrap();
        let len = PixelFormat::I420.packed_layout(width, height).byte_len();
        assert_eq!(data.len() % len, 0, "{} is not a whole number of {width}x{height} frames", path.display());
        data.chunks(len).map(|c| Frame::from_vec(PixelFormat::I420, width, height, c.to_vec()).unwrap()).collect()
    }
}

#[cfg(all(test, feature = "codec"))]
mod tests {
    /// The build must use OpenH264's x86 assembly (see [`super::openh264_simd`]).
    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    fn openh264_uses_x86_assembly() {
        let simd = super::openh264_simd().expect(
            "OpenH264 was built without its x86 assembly (WelsCPUFeatureDetect returned 0): \
             nasm did not run while openh264-sys2 was built",
        );
        assert!(simd.contains("sse2"), "{simd}");
        eprintln!("OpenH264 {} SIMD: {simd}", super::openh264_version());
    }
}
