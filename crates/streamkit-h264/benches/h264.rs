//! OpenH264 at 1080p: encode (I420 in, RGBA in, per thread count) and decode.
//! Throughput is in frames, so criterion's "elem/s" reads as fps.
//!
//! `cargo bench -p streamkit-h264 --bench h264` (about a minute).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use streamkit_core::canvas::{Canvas, Color, Font, Paint, Shader, SpreadMode};
use streamkit_core::convert::convert;
use streamkit_core::{Fps, Frame, PixelFormat, Timing};
use streamkit_h264::{EncoderConfig, H264Decoder, H264Encoder};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
/// Distinct frames cycled through: two seconds of motion.
const FRAMES: u64 = 60;

/// Frame `n` of a moving test picture drawn on the canvas: a scrolling
/// gradient, circles that travel across it and a running counter.
fn pattern(n: u64, font: &Font) -> Frame {
    let mut frame = Frame::new(PixelFormat::Rgba8Premul, WIDTH, HEIGHT).unwrap();
    {
        let mut canvas = Canvas::new(&mut frame).unwrap();
        let shift = (n * 24) as f32;
        let gradient = Shader::LinearGradient {
            start: (shift, 0.0),
            end: (shift + 800.0, 500.0),
            stops: vec![
                (0.0, Color::from_rgba8(20, 40, 160, 255)),
                (0.5, Color::from_rgba8(220, 120, 40, 255)),
                (1.0, Color::from_rgba8(20, 160, 90, 255)),
            ],
            mode: SpreadMode::Reflect,
        };
        canvas.draw_paint(&Paint { shader: Some(gradient), ..Paint::fill(Color::from_rgba8(0, 0, 0, 255)) });
        for i in 0..12u64 {
            let x = ((n * (8 + i) + i * 160) % (WIDTH as u64)) as f32;
            let y = 90.0 + 80.0 * i as f32;
            let color = Color::from_rgba8((i * 20) as u8, 255 - (i * 20) as u8, 128, 255);
            canvas.draw_circle(x, y, 40.0 + 3.0 * i as f32, &Paint::fill(color));
        }
        let text = format!("frame {n:05}");
        canvas.draw_text(&text, 100.0, 1000.0, font, 96.0, &Paint::fill(Color::from_rgba8(255, 255, 255, 255)));
    }
    frame.with_timing(Timing::for_frame(n, Fps::new(30, 1)))
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Elements(1));
    g
}

fn bench(c: &mut Criterion) {
    eprintln!(
        "OpenH264 {}, SIMD: {}",
        streamkit_h264::openh264_version(),
        streamkit_h264::openh264_simd().unwrap_or_else(|| "NONE (plain C)".into())
    );
    let font = Font::default_font();
    let rgba: Vec<Frame> = (0..FRAMES).map(|n| pattern(n, &font)).collect();
    let i420: Vec<Frame> = rgba.iter().map(|f| convert(f, PixelFormat::I420).unwrap()).collect();
    let config = EncoderConfig::new(WIDTH, HEIGHT, Fps::new(30, 1));
    let cores = config.threads;

    let mut g = group(c, "h264_encode_1080p");
    let mut threads: Vec<u16> = vec![1, cores];
    threads.dedup();
    for t in threads {
        let mut encoder = H264Encoder::new(EncoderConfig { threads: t, ..config }).unwrap();
        let mut n = 0;
        g.bench_function(format!("i420_{t}_threads"), |b| {
            b.iter(|| {
                let frame = &i420[n % i420.len()];
                n += 1;
                black_box(encoder.encode(frame).unwrap())
            })
        });
    }
    let mut encoder = H264Encoder::new(config).unwrap();
    let mut n = 0;
    g.bench_function(format!("rgba_{cores}_threads"), |b| {
        b.iter(|| {
            let frame = &rgba[n % rgba.len()];
            n += 1;
            black_box(encoder.encode(frame).unwrap())
        })
    });
    g.finish();

    // Two seconds of 8 Mb/s stream; the first access unit is an IDR, so the
    // cycle restarts cleanly.
    let mut encoder = H264Encoder::new(EncoderConfig { keyframe_interval: FRAMES as u32, ..config }).unwrap();
    let units: Vec<Vec<u8>> = i420.iter().map(|f| encoder.encode(f).unwrap().data).collect();
    let mut g = group(c, "h264_decode_1080p");
    let mut decoder = H264Decoder::new().unwrap();
    let mut n = 0;
    g.bench_function("8mbps_baseline", |b| {
        b.iter(|| {
            let au = &units[n % units.len()];
            n += 1;
            black_box(decoder.decode(au).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
