//! Frame clone (must not copy pixels) and copy-on-write cost, 1080p RGBA.

use criterion::{criterion_group, criterion_main, Criterion};
use streamkit_core::frame::BufferPool;
use streamkit_core::{Frame, PixelFormat};

fn bench(c: &mut Criterion) {
    let frame = Frame::new(PixelFormat::Rgba8Premul, 1920, 1080).unwrap();
    let mut g = c.benchmark_group("frame_1080p");
    g.sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    g.bench_function("clone", |b| b.iter(|| std::hint::black_box(frame.clone())));
    g.bench_function("copy_on_write_of_shared", |b| {
        b.iter(|| {
            let mut copy = frame.clone();
            copy.data_mut()[0] = 1;
            copy
        })
    });
    let pool = BufferPool::new(1920 * 1080 * 4, 4);
    g.bench_function("pooled_acquire", |b| {
        b.iter(|| Frame::from_pool(&pool, PixelFormat::Rgba8Premul, 1920, 1080).unwrap())
    });
    g.bench_function("fresh_allocation", |b| b.iter(|| Frame::new(PixelFormat::Rgba8Premul, 1920, 1080).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
