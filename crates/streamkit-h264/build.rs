//! OpenH264's x86 kernels (SAD/SATD, DCT, motion compensation, deblocking…)
//! are nasm sources. `openh264-sys2` assembles them only when `nasm` runs,
//! and otherwise silently builds the plain C fallback, about 3x slower. This
//! script turns that silent fallback into a build error. It cannot see
//! inside openh264-sys2's build, so the proof is on the linked library:
//! `streamkit_h264::openh264_simd()` references one nasm-only kernel per
//! OpenH264 static library (a build without them fails to link) and asks
//! OpenH264's own CPU detection, which returns 0 in a plain-C build; the
//! unit test `openh264_uses_x86_assembly` asserts both.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NASM");
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
    let codec = std::env::var_os("CARGO_FEATURE_CODEC").is_some();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !codec || !matches!(arch.as_str(), "x86_64" | "x86") {
        return;
    }
    if std::env::var_os("OPENH264_NO_ASM").is_some() {
        fail("OPENH264_NO_ASM is set, which builds OpenH264 without its x86 assembly (about 3x slower). Unset it.");
    }
    // The same lookup as nasm-rs (used by openh264-sys2): $NASM, else `nasm` on PATH.
    let nasm = std::env::var("NASM").unwrap_or_else(|_| "nasm".to_string());
    match Command::new(&nasm).arg("-v").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => fail(&format!(
            "`{nasm} -v` failed ({}): {}\nOpenH264 needs a working nasm for its x86 assembly.",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => fail(&format!(
            "cannot run `{nasm}` ({e}).\n\
             OpenH264 is built from source and needs nasm to assemble its x86 kernels; without it the \
             build would silently fall back to plain C, about 3x slower.\n\
             Install it (Debian/Ubuntu: `apt-get install nasm`, macOS: `brew install nasm`) or point \
             the NASM environment variable at it."
        )),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("\nerror: streamkit-h264: {message}\n");
    std::process::exit(1);
}
