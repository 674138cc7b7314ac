//! Run-time CPU dispatch for the pixel kernels (conversion, blending): one
//! `#[inline(always)]` body compiled for the baseline target and for AVX2,
//! picked per call from a once-per-process CPU check, so one binary runs on
//! any x86-64 and is fast where AVX2 exists.

/// Defines a kernel compiled twice from one `#[inline(always)]` body: a
/// portable copy and (on x86_64) an AVX2 copy, plus a dispatcher that runs
/// the AVX2 one when the CPU supports it. The copies live in a hidden module
/// named like the function (`rgba_to_i420::portable`, `rgba_to_i420::avx2`)
/// so tests and benches can compare them.
///
/// Everything the body calls must be `#[inline(always)]` (closures too):
/// a helper LLVM leaves out of line is compiled without AVX2.
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)] // planes and strides, libyuv-style
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2() {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { $name::avx2($($arg),*) };
            }
            $name::portable($($arg),*)
        }

        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)]
        $vis mod $name {
            use super::*;

            #[inline(always)]
            fn body($($arg: $ty),*) $body

            /// The kernel compiled for the baseline target.
            pub fn portable($($arg: $ty),*) {
                body($($arg),*)
            }

            /// The kernel compiled with AVX2 enabled.
            ///
            /// # Safety
            ///
            /// The CPU must support AVX2.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            pub unsafe fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
        }
    };
}
pub(crate) use multiversion;

/// Whether this CPU has AVX2, detected once per process.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2"))
}
