//! `streamkit bench`: whole-pipeline scenarios, measured beside their
//! anchors in the same run (see BENCHMARKS.md).
//!
//! `compose`: 1920x1080 SMPTE base + a full-frame video layer + a
//! half-transparent full-frame layer + a drawing layer (text and shapes),
//! as fast as possible into a null sink. Anchor (`--anchor`): GStreamer's
//! `compositor` blending two full-frame BGRA inputs, one at alpha 0.5.
//!
//! `hls` (issue 3): an animated drawing (a moving ball and a frame counter)
//! composed at 1920x1080 @ 30, encoded to H.264 and written as HLS, as fast
//! as possible, with per-stage times. Anchors (`--anchor`, commands in
//! `bench/hls/run.sh`): GStreamer and FFmpeg with libx264 ultrafast, and
//! the design's Python approach (skia-python + PyAV), interleaved with ours;
//! every output's bitrate, PSNR and SSIM against its own lossless source.

use std::path::PathBuf;
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
    /// A drawing → H.264 (OpenH264) → HLS, with per-stage times (issue 3).
    Hls,
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
    /// Also run the anchors in the same session and report ratios (compose: gst-launch-1.0; hls: bench/hls/run.sh).
    #[arg(long)]
    pub anchor: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// hls: target bitrate of every side's H.264 encoder, in bits per second.
    #[arg(long, default_value_t = 4_000_000)]
    pub bitrate: u32,
    /// hls: our encoder's preset (fast, medium, slow). The anchors run x264's
    /// ultrafast, so ours runs OpenH264's fastest; the sinks' default is medium.
    #[arg(long, default_value = "fast")]
    pub preset: streamkit_h264::Preset,
    /// hls: keep every output here (default: a temporary folder, removed at the end).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// hls: skip rendering the lossless sources and measuring PSNR/SSIM.
    #[arg(long)]
    pub no_quality: bool,
    /// hls: the anchors' commands (default: bench/hls/run.sh of this source tree).
    #[arg(long)]
    pub anchor_script: Option<PathBuf>,
}

pub async fn bench(args: BenchArgs) -> Result<()> {
    match args.scenario {
        Scenario::Compose => compose_bench(args).await,
        Scenario::Hls => hls::bench(args).await,
    }
}

async fn compose_bench(args: BenchArgs) -> Result<()> {
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

/// The `hls` scenario (issue 3): ours and the anchors draw the same picture,
/// encode it to H.264 at the same target bitrate and write HLS; each is timed
/// to completion, run after run in the order ours, gst, ffmpeg, pyav.
mod hls {
    use std::f64::consts::PI;
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use streamkit_builtins::y4m::Y4mSink;
    use streamkit_core::canvas::{Canvas, Color, Paint};
    use streamkit_core::compositor::Compositor;
    use streamkit_core::convert::convert_into;
    use streamkit_core::layer::FnLayer;
    use streamkit_core::sink::Sink;
    use streamkit_core::stats::Stats;
    use streamkit_core::stream::{Stream, StreamOptions};
    use streamkit_core::text::Font;
    use streamkit_core::{Error, Fps, Frame, FrameContext, PixelFormat, Result};
    use streamkit_h264::H264Encoder;
    use streamkit_hls::{EncodedUnit, HlsOptions, HlsWriter, TsMuxer};
    use streamkit_media::encode::{encoder_config, encoder_count, pts_90k, EncodeOptions};
    use streamkit_media::{HlsSink, HlsSinkOptions};

    use super::{median, BenchArgs};

    const WIDTH: u32 = 1920;
    const HEIGHT: u32 = 1080;
    const FPS: Fps = Fps::new(30, 1);
    const SEGMENT: Duration = Duration::from_secs(2);
    /// #203050, opaque (premultiplied RGBA).
    const BACKGROUND: [u8; 4] = [0x20, 0x30, 0x50, 0xFF];
    /// videotestsrc's ball radius.
    const RADIUS: f64 = 20.0;

    /// The common picture, as `bench/hls/run.sh` describes it: GStreamer's
    /// `videotestsrc pattern=ball` (a white disc of radius 20 on its Lissajous
    /// path) and "frame N" in DejaVu Sans 48 px at the top left.
    fn draw_scene(canvas: &mut Canvas<'_>, frame: u64, font: &Font) {
        let (w, h, t) = (canvas.width() as f64, canvas.height() as f64, frame as f64);
        let x = RADIUS + (0.5 + 0.5 * (2.0 * PI * t / 200.0).sin()) * (w - 2.0 * RADIUS);
        let y = RADIUS + (0.5 + 0.5 * (2.0 * PI * 2f64.sqrt() * t / 200.0).sin()) * (h - 2.0 * RADIUS);
        let white = Paint::fill(Color::WHITE);
        canvas.draw_circle(x as f32, y as f32, RADIUS as f32, &white);
        canvas.draw_text(&format!("frame {frame}"), 40.0, 78.0, font, 48.0, &white);
    }

    fn scene_layer() -> FnLayer<impl FnMut(&mut Canvas<'_>, &FrameContext<'_>) -> Result<()> + Send> {
        let font = Font::default_font();
        FnLayer::new(move |canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>| {
            draw_scene(canvas, ctx.frame_number, &font);
            Ok(())
        })
    }

    /// Our pipeline: the scene on the compositor's background, into `sink`.
    fn scene_stream(sink: Box<dyn Sink>, frames: u64) -> Stream {
        let options = StreamOptions {
            size: Some((WIDTH, HEIGHT)),
            fps: Some(FPS),
            max_frames: Some(frames),
            ..Default::default()
        };
        let mut stream = Stream::generated(vec![sink], options);
        stream.compositor_mut().set_background(BACKGROUND);
        stream.layers().add_layer("scene", 1, scene_layer());
        stream
    }

    fn hls_sink(dir: &Path, encode: EncodeOptions) -> HlsSink {
        let options =
            HlsSinkOptions { segment_duration: SEGMENT, playlist_size: 0, encode, ..HlsSinkOptions::default() };
        HlsSink::new(dir, options)
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Side {
        Ours,
        Gst,
        Ffmpeg,
        Pyav,
        /// The same script with the design's `compose_frame` to the letter.
        PyavDesign,
    }

    impl Side {
        const ALL: [Side; 5] = [Side::Ours, Side::Gst, Side::Ffmpeg, Side::Pyav, Side::PyavDesign];

        fn name(self) -> &'static str {
            match self {
                Side::Ours => "streamkit",
                Side::Gst => "gstreamer",
                Side::Ffmpeg => "ffmpeg",
                Side::Pyav => "pyav",
                Side::PyavDesign => "pyav-design",
            }
        }

        /// The argument of `run.sh` that runs this anchor.
        fn script_arg(self) -> &'static str {
            match self {
                Side::Ours => "",
                Side::Gst => "gst",
                Side::Ffmpeg => "ffmpeg",
                Side::Pyav => "pyav",
                Side::PyavDesign => "pyav-design",
            }
        }

        fn what(self) -> &'static str {
            match self {
                Side::Ours => {
                    "Stream + compositor → HlsSink: one OpenH264 per core on alternate GOPs, average bitrate, --preset → MPEG-TS"
                }
                Side::Gst => "videotestsrc ! timeoverlay ! x264enc ultrafast zerolatency ! h264parse ! hlssink2",
                Side::Ffmpeg => "lavfi color + overlay + drawtext → libx264 ultrafast → hls",
                Side::Pyav => "skia-python draws into one surface over numpy, PyAV → libx264 ultrafast → hls",
                Side::PyavDesign => {
                    "the same, with the design's compose_frame as written: a new surface + snapshot per frame"
                }
            }
        }
    }

    /// Everything measured for one side.
    #[derive(Default)]
    struct SideResult {
        fps: Vec<f64>,
        /// CPU time (user + system, every thread) per frame, ms: what a run
        /// costs whatever else the machine is doing.
        cpu_ms: Vec<f64>,
        bitrate_bps: Vec<f64>,
        /// Ours: the runner's mean compose and sink ms per frame, per run.
        compose_ms: Vec<f64>,
        convert_ms: Vec<f64>,
        sink_ms: Vec<f64>,
        /// PyAV: fps of the script's frame loop (imports and start-up excluded).
        inner_fps: Vec<f64>,
        quality: Option<Quality>,
        /// Ours: libx264 ultrafast at the same target on our own lossless
        /// frames — the encoders compared on one picture. (quality, bits/s)
        x264_same_frames: Option<(Quality, f64)>,
        error: Option<String>,
    }

    #[derive(Clone, Copy, Debug, Default)]
    struct Quality {
        psnr: f64,
        ssim: f64,
        frames: u64,
    }

    /// In-process stage times of one pass, ms per frame.
    #[derive(Clone, Copy, Debug, Default)]
    struct Stages {
        draw: f64,
        convert: f64,
        encode: f64,
        mux: f64,
        write: f64,
    }

    impl Stages {
        fn total(&self) -> f64 {
            self.draw + self.convert + self.encode + self.mux + self.write
        }
    }

    pub async fn bench(args: BenchArgs) -> Result<()> {
        let (root, temporary) = match &args.out {
            Some(dir) => (dir.clone(), false),
            None => (std::env::temp_dir().join(format!("streamkit-bench-hls-{}", std::process::id())), true),
        };
        std::fs::create_dir_all(&root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        let script = args.anchor_script.clone().unwrap_or_else(default_script);
        if args.anchor && !script.exists() {
            return Err(Error::invalid(format!(
                "--anchor needs the anchors' commands at {} (give --anchor-script PATH)",
                script.display()
            )));
        }
        let sides: Vec<Side> = if args.anchor { Side::ALL.to_vec() } else { vec![Side::Ours] };
        let anchor = Anchors { script: &script, frames: args.frames, bitrate: args.bitrate };
        let measured = measure(&args, &sides, &root, &anchor).await;
        if temporary {
            let _ = std::fs::remove_dir_all(&root);
        }
        let (mut results, mut stages) = measured?;
        report(&args, &sides, &mut results, &mut stages);
        Ok(())
    }

    /// The interleaved runs, a stage pass after each round, then quality.
    async fn measure(
        args: &BenchArgs,
        sides: &[Side],
        root: &Path,
        anchor: &Anchors<'_>,
    ) -> Result<(Vec<SideResult>, Vec<Stages>)> {
        let runs = args.runs.max(1);
        let encode = EncodeOptions { bitrate_bps: args.bitrate, preset: args.preset, ..EncodeOptions::default() };
        let mut results: Vec<SideResult> = sides.iter().map(|_| SideResult::default()).collect();
        let mut stages = Vec::new();
        for run in 0..runs {
            let mut line = format!("run {}/{runs}:", run + 1);
            for (side, result) in sides.iter().zip(&mut results) {
                if result.error.is_some() {
                    continue;
                }
                let dir = root.join(side.name());
                let _ = std::fs::remove_dir_all(&dir);
                // Ours runs in this process; an anchor is a child, counted once reaped.
                let who = if *side == Side::Ours { libc::RUSAGE_SELF } else { libc::RUSAGE_CHILDREN };
                let cpu_before = cpu_seconds(who);
                let measured = match side {
                    Side::Ours => ours(&dir, args.frames, encode).await.map(|m| {
                        result.compose_ms.push(m.compose_ms);
                        result.convert_ms.push(m.convert_ms);
                        result.sink_ms.push(m.sink_ms);
                        m.fps
                    }),
                    _ => anchor.run(*side, &dir).map(|m| {
                        result.inner_fps.extend(m.inner_fps);
                        m.fps
                    }),
                };
                match measured {
                    Ok(fps) => {
                        result.fps.push(fps);
                        result.cpu_ms.push((cpu_seconds(who) - cpu_before) * 1e3 / args.frames as f64);
                        result
                            .bitrate_bps
                            .push(segment_bytes(&dir)? as f64 * 8.0 / (args.frames as f64 / FPS.as_f64()));
                        line += &format!(" {} {fps:.1}", side.name());
                    }
                    Err(e) => {
                        eprintln!("{}: {e}; left out of the remaining runs", side.name());
                        result.error = Some(e.to_string());
                    }
                }
            }
            stages.push(stage_pass(&root.join("stages"), args.frames, encode).await?);
            eprintln!("{line} fps; stages {:.2} ms/frame", stages[run].total());
        }

        if !args.no_quality {
            for (side, result) in sides.iter().zip(&mut results) {
                if result.error.is_some() {
                    continue;
                }
                match quality(*side, root, anchor).await {
                    Ok(q) => result.quality = Some(q),
                    Err(e) => eprintln!("{}: quality not measured: {e}", side.name()),
                }
                if *side == Side::Ours {
                    match x264_on_our_frames(root, anchor) {
                        Ok(q) => result.x264_same_frames = Some(q),
                        Err(e) => eprintln!("x264 on our frames: not measured: {e}"),
                    }
                }
            }
        }
        Ok((results, stages))
    }

    /// `bench/hls/run.sh` of the tree this binary was built from.
    fn default_script() -> PathBuf {
        let local = PathBuf::from("bench/hls/run.sh");
        if local.exists() {
            return local;
        }
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/hls/run.sh")
    }

    struct OursRun {
        fps: f64,
        compose_ms: f64,
        convert_ms: f64,
        sink_ms: f64,
    }

    /// One run of our whole pipeline, timed from building the stream to the
    /// final playlist.
    async fn ours(dir: &Path, frames: u64, encode: EncodeOptions) -> Result<OursRun> {
        let started = Instant::now();
        let stream = scene_stream(Box::new(hls_sink(dir, encode)), frames);
        let report = stream.run().await?.into_result()?;
        let elapsed = started.elapsed().as_secs_f64();
        let stage = |prefix: &str| {
            report.stats.stages.iter().find(|s| s.name.starts_with(prefix)).map(|s| s.mean_ms).unwrap_or(0.0)
        };
        Ok(OursRun {
            fps: report.frames_out as f64 / elapsed,
            compose_ms: stage("compose"),
            convert_ms: stage("convert"),
            sink_ms: stage("sink:"),
        })
    }

    /// Our stages one at a time on the same frames, each timed alone: the
    /// compositor drawing the scene, RGBA → I420, the encoder (one of the
    /// encoders HlsSink runs, with its settings), the TS muxer on its own in
    /// memory, and the HLS writer (segmenter, its own muxing, files).
    async fn stage_pass(dir: &Path, frames: u64, encode: EncodeOptions) -> Result<Stages> {
        let _ = std::fs::remove_dir_all(dir);
        let mut compositor = Compositor::new(Some((WIDTH, HEIGHT)), FPS, Arc::new(Stats::new()));
        compositor.set_background(BACKGROUND);
        compositor.control().add_layer("scene", 1, scene_layer());
        let mut i420 = Frame::new(PixelFormat::I420, WIDTH, HEIGHT)?;
        let mut encoder = H264Encoder::new(encoder_config(&encode, FPS, WIDTH, HEIGHT))?;
        let mut muxer = TsMuxer::new();
        let mut ts = Vec::with_capacity(1 << 20);
        let options = HlsOptions { segment_duration: SEGMENT, playlist_size: 0, ..HlsOptions::default() };
        let mut writer = HlsWriter::create(dir, options).await?;
        let mut total = Stages::default();
        let ms = |started: Instant| started.elapsed().as_secs_f64() * 1e3;
        for _ in 0..frames {
            let started = Instant::now();
            let rgba = compositor.compose(None).await?;
            total.draw += ms(started);

            let started = Instant::now();
            convert_into(&rgba, &mut i420)?;
            total.convert += ms(started);

            let pts = pts_90k(&rgba.timing).max(0) as u64;
            let keyframe = writer.keyframe_due(pts);
            let started = Instant::now();
            if keyframe {
                encoder.force_keyframe();
            }
            let encoded = encoder.encode(&i420)?;
            total.encode += ms(started);

            let started = Instant::now();
            if encoded.keyframe {
                ts.clear();
                muxer.write_tables(&mut ts);
            }
            muxer.write_access_unit(&encoded.data, pts, pts, encoded.keyframe, &mut ts);
            total.mux += ms(started);

            let started = Instant::now();
            let unit = EncodedUnit {
                data: encoded.data,
                pts_90k: pts,
                dts_90k: pts,
                keyframe: encoded.keyframe,
                wallclock_ns: None,
            };
            writer.write_unit(unit).await?;
            total.write += ms(started);
        }
        let started = Instant::now();
        writer.finish().await?;
        total.write += ms(started);
        compositor.close().await;
        let n = frames.max(1) as f64;
        Ok(Stages {
            draw: total.draw / n,
            convert: total.convert / n,
            encode: total.encode / n,
            mux: total.mux / n,
            write: total.write / n,
        })
    }

    /// The anchors, run through `run.sh` (which `exec`s the tool, so the
    /// child is the tool itself).
    struct Anchors<'a> {
        script: &'a Path,
        frames: u64,
        bitrate: u32,
    }

    struct AnchorRun {
        fps: f64,
        inner_fps: Option<f64>,
    }

    impl Anchors<'_> {
        fn command(&self, arg: &str, paths: &[&Path]) -> Command {
            let mut command = Command::new("bash");
            command
                .arg(self.script)
                .arg(arg)
                .args(paths)
                .env("FRAMES", self.frames.to_string())
                .env("BITRATE", self.bitrate.to_string())
                .stdin(Stdio::null());
            command
        }

        /// One timed run into `dir`: to process exit, or for GStreamer to
        /// the `#EXT-X-ENDLIST` line (hlssink2 sometimes never exits; it is
        /// killed once the playlist is final).
        fn run(&self, side: Side, dir: &Path) -> Result<AnchorRun> {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let (stdout, stderr) = (dir.join("stdout.log"), dir.join("stderr.log"));
            let mut command = self.command(side.script_arg(), &[dir]);
            command.stdout(log_file(&stdout)?).stderr(log_file(&stderr)?);
            let playlist = dir.join("index.m3u8");
            let started = Instant::now();
            let mut child = command.spawn().map_err(|e| Error::io(format!("running {}", self.script.display()), e))?;
            let (elapsed, status) = loop {
                if side == Side::Gst && ends_playlist(&playlist) {
                    let elapsed = started.elapsed();
                    let _ = child.kill();
                    break (elapsed, None);
                }
                let exited = child.try_wait().map_err(|e| Error::io("waiting for an anchor", e))?;
                if let Some(status) = exited {
                    break (started.elapsed(), Some(status));
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            let _ = child.wait();
            let failed = status.is_some_and(|s| !s.success()) || !ends_playlist(&playlist);
            if failed {
                let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                return Err(Error::invalid(format!(
                    "`{} {} {}` failed ({}) without a final playlist: {}",
                    self.script.display(),
                    side.script_arg(),
                    dir.display(),
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    tail(&log)
                )));
            }
            let inner_fps = matches!(side, Side::Pyav | Side::PyavDesign)
                .then(|| std::fs::read_to_string(&stdout).ok())
                .flatten()
                .and_then(|out| json_number(&out, "\"fps\":"));
            Ok(AnchorRun { fps: self.frames as f64 / elapsed.as_secs_f64(), inner_fps })
        }

        /// Runs `run.sh ARG PATHS…` to completion and returns its stderr.
        fn output(&self, arg: &str, paths: &[&Path]) -> Result<String> {
            let output = self
                .command(arg, paths)
                .output()
                .map_err(|e| Error::io(format!("running {} {arg}", self.script.display()), e))?;
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if !output.status.success() {
                return Err(Error::invalid(format!("`run.sh {arg}` failed ({}): {}", output.status, tail(&stderr))));
            }
            Ok(stderr)
        }
    }

    /// Renders `side`'s frames losslessly, then compares its HLS output with
    /// them (FFmpeg's psnr and ssim filters); the source is deleted after,
    /// except ours, which [`x264_on_our_frames`] encodes next.
    async fn quality(side: Side, root: &Path, anchor: &Anchors<'_>) -> Result<Quality> {
        let source = source_path(side, root);
        match side {
            Side::Ours => {
                let sink = Y4mSink::create(&source, Some(FPS))?;
                scene_stream(Box::new(sink), anchor.frames).run().await?.into_result()?;
            }
            _ => {
                anchor.output(&format!("{}-source", side.script_arg()), &[&source])?;
            }
        }
        let playlist = root.join(side.name()).join("index.m3u8");
        let measured = anchor.output("quality", &[&playlist, &source]);
        if side != Side::Ours {
            let _ = std::fs::remove_file(&source);
        }
        parse_quality(&measured?)
    }

    fn source_path(side: Side, root: &Path) -> PathBuf {
        root.join(format!("{}-source.y4m", side.name()))
    }

    /// `run.sh x264-same`: libx264 ultrafast → HLS from our own lossless
    /// frames at the same target, and its quality against them; deletes
    /// the source after.
    fn x264_on_our_frames(root: &Path, anchor: &Anchors<'_>) -> Result<(Quality, f64)> {
        let source = source_path(Side::Ours, root);
        let dir = root.join("x264-same-frames");
        let _ = std::fs::remove_dir_all(&dir);
        let measured = anchor.output("x264-same", &[&source, &dir]).and_then(|_| {
            let quality = parse_quality(&anchor.output("quality", &[&dir.join("index.m3u8"), &source])?)?;
            Ok((quality, segment_bytes(&dir)? as f64 * 8.0 / (anchor.frames as f64 / FPS.as_f64())))
        });
        let _ = std::fs::remove_file(&source);
        measured
    }

    fn parse_quality(log: &str) -> Result<Quality> {
        let psnr = log.lines().find(|l| l.contains("PSNR y:")).and_then(|l| json_number(l, "average:"));
        let ssim = log.lines().find(|l| l.contains("SSIM Y:")).and_then(|l| json_number(l, "All:"));
        let frames = log.rsplit("frame=").next().and_then(|rest| rest.split_whitespace().next()?.parse().ok());
        match (psnr, ssim, frames) {
            (Some(psnr), Some(ssim), Some(frames)) => Ok(Quality { psnr, ssim, frames }),
            _ => Err(Error::invalid(format!("no PSNR/SSIM in FFmpeg's output: {}", tail(log)))),
        }
    }

    /// User + system CPU seconds of this process (`RUSAGE_SELF`) or of its
    /// reaped children (`RUSAGE_CHILDREN`), all threads included.
    fn cpu_seconds(who: libc::c_int) -> f64 {
        // SAFETY: rusage is plain data; getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage.
        unsafe { libc::getrusage(who, &mut usage) };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    fn log_file(path: &Path) -> Result<File> {
        File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))
    }

    fn ends_playlist(path: &Path) -> bool {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains("#EXT-X-ENDLIST"))
    }

    /// Bytes of every `.ts` segment in `dir`.
    fn segment_bytes(dir: &Path) -> Result<u64> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        Ok(entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum())
    }

    /// The number after `key` in `text` (`"fps": 35.1`, `average:45.2`,
    /// `All:0.99`; FFmpeg writes `inf` for identical frames).
    fn json_number(text: &str, key: &str) -> Option<f64> {
        let rest = text[text.find(key)? + key.len()..].trim_start();
        if rest.starts_with("inf") {
            return Some(f64::INFINITY);
        }
        let end = rest.find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c))).unwrap_or(rest.len());
        rest[..end].parse().ok()
    }

    /// The last few lines of a tool's log, for an error message.
    fn tail(log: &str) -> String {
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(4)..].join(" | ")
    }

    fn med(values: &mut [f64]) -> Option<f64> {
        (!values.is_empty()).then(|| median(values))
    }

    fn report(args: &BenchArgs, sides: &[Side], results: &mut [SideResult], stages: &mut [Stages]) {
        let fps: Vec<Option<f64>> = results.iter_mut().map(|r| med(&mut r.fps)).collect();
        let ours = fps[0];
        let pick = |f: fn(&Stages) -> f64| median(&mut stages.iter().map(f).collect::<Vec<_>>());
        let stage = Stages {
            draw: pick(|s| s.draw),
            convert: pick(|s| s.convert),
            encode: pick(|s| s.encode),
            mux: pick(|s| s.mux),
            write: pick(|s| s.write),
        };
        let compose_ms = med(&mut results[0].compose_ms);
        let convert_ms = med(&mut results[0].convert_ms);
        let sink_ms = med(&mut results[0].sink_ms);
        if args.json {
            let sides_json: Vec<serde_json::Value> = sides
                .iter()
                .zip(results.iter_mut())
                .zip(&fps)
                .map(|((side, r), fps)| {
                    serde_json::json!({
                        "side": side.name(), "what": side.what(), "fps": fps, "runs_fps": r.fps,
                        "cpu_ms_per_frame": med(&mut r.cpu_ms),
                        "ours_over_this": ours.zip(*fps).map(|(o, f)| o / f),
                        "bitrate_bps": med(&mut r.bitrate_bps), "inner_fps": med(&mut r.inner_fps),
                        "psnr": r.quality.map(|q| q.psnr), "ssim": r.quality.map(|q| q.ssim),
                        "frames_decoded": r.quality.map(|q| q.frames), "error": r.error,
                    })
                })
                .collect();
            let json = serde_json::json!({
                "scenario": "hls", "frames": args.frames, "runs": args.runs, "bitrate_bps": args.bitrate,
                "preset": format!("{:?}", args.preset).to_lowercase(),
                "sides": sides_json,
                "stages_ms": { "draw": stage.draw, "convert": stage.convert, "encode": stage.encode,
                               "mux": stage.mux, "write": stage.write, "total": stage.total() },
                "runner_ms": { "compose": compose_ms, "convert": convert_ms, "sink": sink_ms },
                "x264_on_our_frames": results[0].x264_same_frames.map(|(q, bps)| serde_json::json!({
                    "bitrate_bps": bps, "psnr": q.psnr, "ssim": q.ssim, "frames_decoded": q.frames })),
            });
            println!("{json}");
            return;
        }
        println!(
            "hls 1920x1080 @ 30, ball + frame counter → H.264 at {:.1} Mb/s (ours: preset {:?}) → HLS \
             (2 s MPEG-TS segments), {} frames, median of {} runs{}:",
            args.bitrate as f64 / 1e6,
            args.preset,
            args.frames,
            args.runs,
            if args.anchor { ", interleaved ours, gst, ffmpeg, pyav, pyav-design" } else { "" }
        );
        let ours_cpu = med(&mut results[0].cpu_ms);
        println!(
            "  {:<10} {:>7} {:>9} {:>8} {:>9} {:>11} {:>7} {:>8} {:>7}",
            "", "fps", "ours/this", "CPU ms", "this/ours", "bitrate", "PSNR", "SSIM", "frames"
        );
        for ((side, r), fps) in sides.iter().zip(results.iter_mut()).zip(&fps) {
            let Some(fps) = fps else {
                println!("  {:<10} failed: {}", side.name(), r.error.as_deref().unwrap_or("no run"));
                continue;
            };
            let ratio = ours.map(|o| format!("{:.2}x", o / fps)).unwrap_or_default();
            let cpu = med(&mut r.cpu_ms);
            let cpu_ratio = ours_cpu.zip(cpu).map(|(o, c)| format!("{:.2}x", c / o)).unwrap_or_default();
            let cpu = cpu.map(|c| format!("{c:.1}")).unwrap_or_default();
            let bitrate = med(&mut r.bitrate_bps).map(|b| format!("{:.2} Mb/s", b / 1e6)).unwrap_or_default();
            let (psnr, ssim, frames) = match r.quality {
                Some(q) => (format!("{:.2}", q.psnr), format!("{:.4}", q.ssim), q.frames.to_string()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "  {:<10} {fps:>7.1} {ratio:>9} {cpu:>8} {cpu_ratio:>9} {bitrate:>11} {psnr:>7} {ssim:>8} {frames:>7}",
                side.name()
            );
        }
        for (side, r) in sides.iter().zip(results.iter_mut()) {
            let inner = med(&mut r.inner_fps).map(|f| format!(" (frame loop alone, start-up excluded: {f:.1} fps)"));
            println!("  {:<10} = {}{}", side.name(), side.what(), inner.unwrap_or_default());
        }
        println!(
            "  CPU ms: user + system time of every thread per frame (this/ours: how much more CPU a frame costs)."
        );
        println!("  PSNR (dB, average) and SSIM (All) of the decoded HLS against that side's own lossless frames.");
        if let Some((q, bps)) = results[0].x264_same_frames {
            println!(
                "  the encoders on one picture: libx264 ultrafast at the same target on our lossless frames: \
                 {:.2} Mb/s, PSNR {:.2}, SSIM {:.4}, {} frames",
                bps / 1e6,
                q.psnr,
                q.ssim,
                q.frames
            );
        }
        println!("streamkit stages, in-process, one frame at a time (ms/frame, median of {} passes):", stages.len());
        println!("  draw/compose   {:6.2}  Compositor: background, ball, text", stage.draw);
        println!("  RGBA→I420      {:6.2}  convert::convert_into (BT.709)", stage.convert);
        println!(
            "  encode         {:6.2}  OpenH264, I420 in: one of HlsSink's {} encoders, which take GOPs in turn",
            stage.encode,
            encoder_count(&EncodeOptions::default())
        );
        println!("  mux            {:6.2}  TsMuxer alone, in memory", stage.mux);
        println!("  segment+write  {:6.2}  HlsWriter: segmenter (muxes again), playlist, atomic files", stage.write);
        println!("  sum            {:6.2}  = {:.1} fps one stage after another", stage.total(), 1e3 / stage.total());
        if let (Some(compose), Some(convert), Some(sink)) = (compose_ms, convert_ms, sink_ms) {
            println!(
                "  runner stats of the whole pipeline: compose {compose:.2} + RGBA→I420 {convert:.2} ms/frame on the \
                 runner's task, overlapping the HLS sink's {sink:.2} ms/frame (encode + mux + write) on its own"
            );
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_the_numbers_of_ffmpeg_and_the_python_anchor() {
            let psnr = "[Parsed_psnr_4 @ 0x55] PSNR y:83.67 u:81.97 v:82.01 average:83.037954 min:66.51 max:87.90";
            assert_eq!(json_number(psnr, "average:"), Some(83.037954));
            let ssim = "[Parsed_ssim_5 @ 0x55] SSIM Y:1.000000 (64.89) U:0.999997 (54.57) All:0.999998 (57.82)";
            assert_eq!(json_number(ssim, "All:"), Some(0.999998));
            assert_eq!(json_number("PSNR y:inf u:inf v:inf average:inf min:inf", "average:"), Some(f64::INFINITY));
            assert_eq!(json_number(r#"{"frames": 300, "seconds": 8.5, "fps": 35.18}"#, "\"fps\":"), Some(35.18));
            assert_eq!(json_number("no numbers here", "fps"), None);
            assert_eq!(tail("a\n\nb\nc\nd\ne\n"), "b | c | d | e");
        }

        /// Frame 0 puts videotestsrc's ball at the centre of the picture.
        #[test]
        fn the_ball_follows_videotestsrc() {
            let mut frame = Frame::new(PixelFormat::Rgba8Premul, WIDTH, HEIGHT).unwrap();
            draw_scene(&mut Canvas::new(&mut frame).unwrap(), 0, &Font::default_font());
            let (pixels, stride) = frame.plane(0);
            let at = |x: usize, y: usize| &pixels[y * stride + x * 4..][..4];
            assert_eq!(at(960, 540), [255, 255, 255, 255]);
            assert_eq!(at(960 + 25, 540), [0, 0, 0, 0]);
        }
    }
}
