//! Full-frame 1080p premultiplied blend: the compositor's inner loop.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamkit_core::blend;

fn frame(seed: u32) -> Vec<u8> {
    (0..1920 * 1080)
        .flat_map(|i: u32| {
            let a = ((i.wrapping_mul(seed) >> 3) % 256) as u8;
            let c = |k: u32| (i.wrapping_mul(k) % 256 * a as u32 / 255) as u8;
            [c(3), c(5), c(7), a]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let src = frame(13);
    let base = frame(29);
    let mut g = c.benchmark_group("blend_1080p");
    g.sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    g.throughput(Throughput::Bytes(src.len() as u64));
    let mut dst = base.clone();
    g.bench_function("over_dispatched", |b| b.iter(|| blend::over_row(&mut dst, &src, 255)));
    g.bench_function("over_opacity_128", |b| b.iter(|| blend::over_row(&mut dst, &src, 128)));
    g.bench_function("over_portable", |b| b.iter(|| blend::over_row_portable(&mut dst, &src, 255)));
    g.bench_function("memcpy_reference", |b| b.iter(|| dst.copy_from_slice(&src)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
