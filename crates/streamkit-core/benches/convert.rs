//! Pixel-format conversion and scaling at 1080p, one core.
//!
//! `cargo bench -p streamkit-core --bench convert`. The `rgba_to_i420` group
//! also times the portable and AVX2 copies of the kernel side by side.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use streamkit_core::convert::{self, bgra_to_rgba, i420_to_rgba, rgba_to_i420, rgba_to_nv12};
use streamkit_core::scale::scale_rgba;

const W: u32 = 1920;
const H: u32 = 1080;

/// A smooth, partly transparent test image: realistic for the maths, and
/// neither all zeros nor all one value.
fn test_image(width: u32, height: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            let a = (128 + (x + y) % 128) as u8;
            let c = |v: u32| ((v % 256) * u32::from(a) / 255) as u8;
            px.extend_from_slice(&[c(x), c(y), c(x + y), a]);
        }
    }
    px
}

struct I420Planes {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420Planes {
    fn new(width: u32, height: u32) -> I420Planes {
        let (w, h) = (width as usize, height as usize);
        I420Planes { y: vec![0; w * h], u: vec![0; w * h / 4], v: vec![0; w * h / 4] }
    }
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group
}

fn bench_rgba_to_i420(c: &mut Criterion) {
    let rgba = test_image(W, H);
    let mut out = I420Planes::new(W, H);
    let (w, cw) = (W as usize, W as usize / 2);
    let mut group = configure(c, "rgba_to_i420");
    group.bench_function("dispatch", |b| {
        b.iter(|| rgba_to_i420(&rgba, w * 4, W, H, &mut out.y, w, &mut out.u, cw, &mut out.v, cw))
    });
    group.bench_function("portable", |b| {
        b.iter(|| convert::rgba_to_i420::portable(&rgba, w * 4, W, H, &mut out.y, w, &mut out.u, cw, &mut out.v, cw))
    });
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        group.bench_function("avx2", |b| {
            // SAFETY: the CPU supports AVX2, checked just above.
            b.iter(|| unsafe {
                convert::rgba_to_i420::avx2(&rgba, w * 4, W, H, &mut out.y, w, &mut out.u, cw, &mut out.v, cw)
            })
        });
    }
    group.finish();
}

fn bench_i420_to_rgba(c: &mut Criterion) {
    let mut yuv = I420Planes::new(W, H);
    let (w, cw) = (W as usize, W as usize / 2);
    rgba_to_i420(&test_image(W, H), w * 4, W, H, &mut yuv.y, w, &mut yuv.u, cw, &mut yuv.v, cw);
    let mut rgba = vec![0; w * H as usize * 4];
    configure(c, "i420_to_rgba").bench_function("1080p", |b| {
        b.iter(|| i420_to_rgba(&yuv.y, w, &yuv.u, cw, &yuv.v, cw, W, H, &mut rgba, w * 4))
    });
}

fn bench_rgba_to_nv12(c: &mut Criterion) {
    let rgba = test_image(W, H);
    let w = W as usize;
    let (mut y, mut uv) = (vec![0; w * H as usize], vec![0; w * H as usize / 2]);
    configure(c, "rgba_to_nv12")
        .bench_function("1080p", |b| b.iter(|| rgba_to_nv12(&rgba, w * 4, W, H, &mut y, w, &mut uv, w)));
}

fn bench_bgra_to_rgba(c: &mut Criterion) {
    let bgra = test_image(W, H);
    let mut rgba = vec![0; bgra.len()];
    let stride = W as usize * 4;
    configure(c, "bgra_to_rgba")
        .bench_function("1080p", |b| b.iter(|| bgra_to_rgba(&bgra, stride, W, H, &mut rgba, stride)));
}

fn bench_scale(c: &mut Criterion, name: &str, (src_w, src_h): (u32, u32), (dst_w, dst_h): (u32, u32)) {
    let src = test_image(src_w, src_h);
    let mut dst = vec![0; dst_w as usize * dst_h as usize * 4];
    configure(c, name).bench_function("rgba", |b| {
        b.iter(|| scale_rgba(&src, src_w, src_h, src_w as usize * 4, &mut dst, dst_w, dst_h, dst_w as usize * 4))
    });
}

fn bench_scale_up(c: &mut Criterion) {
    bench_scale(c, "scale_720p_to_1080p", (1280, 720), (W, H));
}

fn bench_scale_down(c: &mut Criterion) {
    bench_scale(c, "scale_1080p_to_270p", (W, H), (480, 270));
}

criterion_group!(
    benches,
    bench_rgba_to_i420,
    bench_i420_to_rgba,
    bench_rgba_to_nv12,
    bench_bgra_to_rgba,
    bench_scale_up,
    bench_scale_down
);
criterion_main!(benches);
