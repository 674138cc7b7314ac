//! Canvas drawing cost on a 1920x1080 frame: the shapes, text and fills a
//! drawing layer typically issues every frame.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use streamkit_core::canvas::{Canvas, Color, Font, Paint, Shader, SpreadMode};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

/// Runs `draw` on a fresh 1080p canvas per iteration (pixels reused, not cleared:
/// every benchmark here draws the same thing each time, so the cost is stable).
fn bench_draw(c: &mut Criterion, group: &str, name: &str, mut draw: impl FnMut(&mut Canvas<'_>)) {
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 4) as usize];
    let mut group = c.benchmark_group(group);
    group.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut canvas = Canvas::from_rgba(&mut pixels, WIDTH, HEIGHT).unwrap();
            draw(&mut canvas);
        })
    });
    group.finish();
}

fn circles_100_aa(c: &mut Criterion) {
    let paint = Paint::fill(Color::from_rgba8(30, 144, 255, 200));
    bench_draw(c, "circles_100_aa", "1920x1080", |canvas| {
        for i in 0..100 {
            let x = 40.0 + (i % 20) as f32 * 93.7;
            let y = 40.0 + (i / 20) as f32 * 201.3;
            canvas.draw_circle(x, y, 20.0, &paint);
        }
    });
}

fn text_line_48px(c: &mut Criterion) {
    let font = Font::default_font();
    let paint = Paint::fill(Color::WHITE);
    let line = "Frame 001234 | 29.97 fps | OK!";
    assert_eq!(line.chars().count(), 30);
    bench_draw(c, "text_line_48px", "1920x1080", |canvas| canvas.draw_text(line, 40.0, 120.0, &font, 48.0, &paint));
}

fn rect_fill_full(c: &mut Criterion) {
    let paint = Paint::fill(Color::from_rgba8(0, 0, 0, 128));
    bench_draw(c, "rect_fill_full", "1920x1080", |canvas| {
        canvas.draw_rect(0.0, 0.0, WIDTH as f32, HEIGHT as f32, &paint)
    });
}

/// A translucent three-stop gradient from `start` to `end`.
fn gradient_paint(start: (f32, f32), end: (f32, f32)) -> Paint {
    let stops = vec![
        (0.0, Color::from_rgba8(0, 0, 0, 0)),
        (0.5, Color::from_rgba8(20, 40, 160, 120)),
        (1.0, Color::from_rgba8(255, 128, 0, 200)),
    ];
    Paint { shader: Some(Shader::LinearGradient { start, end, stops, mode: SpreadMode::Pad }), ..Paint::default() }
}

/// A vertical gradient (the common lower-third / vignette case, which the
/// canvas shades once per row) and a diagonal one (tiny-skia per pixel).
fn gradient_rect(c: &mut Criterion) {
    let (w, h) = (WIDTH as f32, HEIGHT as f32);
    let vertical = gradient_paint((0.0, 0.0), (0.0, h));
    let diagonal = gradient_paint((0.0, 0.0), (w, h));
    bench_draw(c, "gradient_rect", "vertical_1920x1080", |canvas| canvas.draw_rect(0.0, 0.0, w, h, &vertical));
    bench_draw(c, "gradient_rect", "diagonal_1920x1080", |canvas| canvas.draw_rect(0.0, 0.0, w, h, &diagonal));
}

criterion_group!(benches, circles_100_aa, text_line_48px, rect_fill_full, gradient_rect);
criterion_main!(benches);
