//! `streamkit bench`: whole-pipeline scenarios, measured beside their
//! anchors in the same run (see BENCHMARKS.md).
//!
//! `compose`: 1920x1080 SMPTE base + a full-frame video layer + a
//! half-transparent full-frame layer + a drawing layer (text and shapes),
//! as fast as possible into a null sink. Anchor (`--anchor`): GStreamer's
//! `compositor` blending two full-frame BGRA inputs, one at alpha 0.5.

use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use streamkit_builtins::{NullSink, Pattern, TestSource, VideoLayer};
use streamkit_core::canvas::{Canvas, Color, Paint};
use streamkit_core::layer::FnLayer;
use streamkit_core::stream::{Stream, StreamOptions};
use streamkit_core::text::Font;
use streamkit_core::{Error, Fps, FrameContext, Result};

use streamkit_builtins::placement::{Anchor, Placement};
use streamkit_builtins::video_layer::VideoSize;

#[derive(Clone, Copy, ValueEnum)]
pub enum Scenario {
    /// Three full-frame layers over a 1080p base (the compositor's hot path).
    Compose,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum, default_value = "compose")]
    pub scenario: Scenario,
    /// Frames per run.
    #[arg(long, default_value_t = 300)]
    pub frames: u64,
    /// Runs per side; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also run the anchor (gst-launch-1.0) in the same session and report the ratio.
    #[arg(long)]
    pub anchor: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn bench(args: BenchArgs) -> Result<()> {
    let Scenario::Compose = args.scenario;
    let mut ours = Vec::new();
    let mut compose_ms = Vec::new();
    for _ in 0..args.runs {
        let (fps, ms) = compose_run(args.frames).await?;
        ours.push(fps);
        compose_ms.push(ms);
    }
    let ours_fps = median(&mut ours);
    let compose = median(&mut compose_ms);
    let anchor_fps = if args.anchor {
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(gstreamer_compositor(args.frames)?);
        }
        Some(median(&mut runs))
    } else {
        None
    };
    if args.json {
        let json = serde_json::json!({
            "scenario": "compose", "frames": args.frames, "runs": args.runs,
            "streamkit_fps": ours_fps, "streamkit_compose_ms": compose,
            "gstreamer_fps": anchor_fps, "ratio": anchor_fps.map(|a| ours_fps / a),
        });
        println!("{json}");
    } else {
        println!(
            "compose 1920x1080, base + video + alpha + drawing layers, {} frames, median of {}:",
            args.frames, args.runs
        );
        println!("  streamkit : {ours_fps:7.1} fps  (compose {compose:.2} ms/frame)");
        if let Some(anchor) = anchor_fps {
            println!("  gstreamer : {anchor:7.1} fps  (compositor, 2 BGRA inputs, one at alpha 0.5)");
            println!("  ratio     : {:.2}x", ours_fps / anchor);
        }
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One run of the compose scenario: (whole-pipeline fps, mean compose ms).
async fn compose_run(frames: u64) -> Result<(f64, f64)> {
    let (w, h, fps) = (1920, 1080, Fps::new(30, 1));
    let base = TestSource::new(Pattern::Smpte, w, h, fps)?;
    let stream = Stream::new(
        Box::new(base),
        vec![Box::new(NullSink::default())],
        StreamOptions { max_frames: Some(frames), ..Default::default() },
    );
    let layers = stream.layers();
    let video = TestSource::new(Pattern::Gradient, w, h, fps)?;
    layers.add_layer(
        "video",
        1,
        VideoLayer::new(Box::new(video), VideoSize::Full, Placement::anchored(Anchor::TopLeft)),
    );
    let overlay = TestSource::new(Pattern::Ball, w, h, fps)?;
    let overlay = VideoLayer::new(Box::new(overlay), VideoSize::Full, Placement::anchored(Anchor::TopLeft));
    layers.add_boxed("alpha", 2, 0.5, Box::new(overlay));
    let font = Font::default_font();
    layers.add_layer(
        "drawing",
        3,
        FnLayer::new(move |canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>| {
            draw_overlay(canvas, ctx, &font);
            Ok(())
        }),
    );
    let started = Instant::now();
    let report = stream.run().await?.into_result()?;
    let elapsed = started.elapsed().as_secs_f64();
    let compose = report.stats.stage("compose").map(|s| s.mean_ms).unwrap_or(0.0);
    Ok((report.frames_out as f64 / elapsed, compose))
}

/// A lower-third style overlay: a translucent bar, a moving dot, a title and a counter.
fn draw_overlay(canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>, font: &Font) {
    let (w, h) = (ctx.width as f32, ctx.height as f32);
    canvas.draw_rect(0.0, h - 160.0, w, 120.0, &Paint::fill(Color::from_rgba8(0, 0, 0, 160)));
    let x = (ctx.time as f32 * 400.0) % w;
    canvas.draw_circle(x, h - 100.0, 30.0, &Paint::fill(Color::from_rgba8(255, 80, 0, 255)));
    let white = Paint::fill(Color::WHITE);
    canvas.draw_text("streamkit compose benchmark", 60.0, h - 85.0, font, 48.0, &white);
    canvas.draw_text(&format!("frame {}", ctx.frame_number), w - 400.0, h - 85.0, font, 48.0, &white);
}

/// The anchor: GStreamer's compositor, two full-frame BGRA inputs (one at
/// alpha 0.5), into fakesink. Returns fps.
fn gstreamer_compositor(frames: u64) -> Result<f64> {
    let caps = "video/x-raw,format=BGRA,width=1920,height=1080,framerate=30/1";
    let pipeline = format!(
        "compositor name=c sink_1::alpha=0.5 ! {caps} ! fakesink sync=false \
         videotestsrc num-buffers={frames} pattern=smpte ! {caps} ! c.sink_0 \
         videotestsrc num-buffers={frames} pattern=ball ! {caps} ! c.sink_1"
    );
    let started = Instant::now();
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .status()
        .map_err(|e| Error::io("running gst-launch-1.0 (install gstreamer1.0-tools for --anchor)", e))?;
    if !status.success() {
        return Err(Error::invalid(format!("gst-launch-1.0 failed ({status}): {pipeline}")));
    }
    Ok(frames as f64 / started.elapsed().as_secs_f64())
}
