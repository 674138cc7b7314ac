//! H.264, MP4 and HLS through the `streamkit` binary, checked by FFmpeg.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamkit_testkit::{ffprobe_duration, ffprobe_video, require_tool, run_tool, temp_dir};

fn streamkit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_streamkit")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn run_ok(args: &[&str]) {
    let out = streamkit(args);
    assert!(out.status.success(), "streamkit {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Average PSNR (dB) of `a` against `b`, both decoded by FFmpeg.
fn psnr(a: &Path, b: &Path) -> f64 {
    let (_, err) =
        run_tool("ffmpeg", &["-v", "info", "-i", path(a), "-i", path(b), "-lavfi", "psnr", "-f", "null", "-"]);
    let avg = err.split("average:").nth(1).unwrap_or_else(|| panic!("no psnr in:\n{err}"));
    let value = avg.split_whitespace().next().unwrap();
    if value == "inf" {
        f64::INFINITY
    } else {
        value.parse().unwrap()
    }
}

/// Acceptance: 300 frames of 720p bars → MP4 that ffprobe reads as 300 H.264
/// frames, 1280x720, 10.0 s; the faststart layout too.
#[test]
fn mp4_files_are_read_by_ffprobe() {
    let dir = temp_dir("mp4-out");
    for (name, uri) in [("frag.mp4", "{}"), ("fast.mp4", "mp4:{}?faststart&bitrate=2000000")] {
        let file = dir.join(name);
        run_ok(&[
            "run",
            "test:smpte?size=1280x720&fps=30",
            "--frames",
            "300",
            "-o",
            &uri.replace("{}", path(&file)),
            "-q",
        ]);
        if let Some(stream) = ffprobe_video(&file) {
            assert_eq!((stream.codec.as_str(), stream.width, stream.height), ("h264", 1280, 720), "{name}");
            assert_eq!((stream.frames, stream.frame_rate.as_str()), (300, "30/1"), "{name}");
            let seconds = ffprobe_duration(&file);
            assert!((seconds - 10.0).abs() < 0.05, "{name}: {seconds} s");
        }
    }
}

/// Acceptance: HLS with a 5-segment window ends in ENDLIST; with the whole
/// window kept, FFmpeg decodes exactly 300 frames through the playlist.
#[test]
fn hls_is_playable_by_ffmpeg() {
    let dir = temp_dir("hls-out");
    let live = dir.join("live");
    run_ok(&[
        "run",
        "test:smpte?size=1280x720&fps=30",
        "--frames",
        "300",
        "-o",
        &format!("hls:{}?segment_duration=2&playlist_size=5", path(&live)),
        "-q",
    ]);
    let playlist = std::fs::read_to_string(live.join("index.m3u8")).unwrap();
    assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"), "{playlist}");
    assert_eq!(playlist.matches("#EXTINF:2.000,").count(), 5, "{playlist}");
    // Dates follow media time (segments 2 s apart), even when rendered faster than real time.
    let dates_ms: Vec<u64> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(|d| {
            let time = &d[11..23]; // HH:MM:SS.mmm
            let n = |r: std::ops::Range<usize>| time[r].parse::<u64>().unwrap();
            ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
        })
        .collect();
    assert_eq!(dates_ms.len(), 5, "{playlist}");
    assert!(dates_ms.windows(2).all(|w| (w[1] + 86_400_000 - w[0]) % 86_400_000 == 2000), "{dates_ms:?}");
    for format in ["ts", "fmp4"] {
        let vod = dir.join(format);
        let uri = format!("hls:{}?playlist_size=0&format={format}", path(&vod));
        run_ok(&["run", "test:ball?size=640x360&fps=30", "--frames", "300", "-o", &uri, "-q"]);
        if let Some(stream) = ffprobe_video(&vod.join("index.m3u8")) {
            assert_eq!((stream.codec.as_str(), stream.width, stream.height, stream.frames), ("h264", 640, 360, 300));
        }
    }
    let fmp4 = std::fs::read_to_string(dir.join("fmp4/index.m3u8")).unwrap();
    assert!(fmp4.contains("#EXT-X-MAP:URI=\"init.mp4\"") && fmp4.contains("#EXT-X-VERSION:7"), "{fmp4}");
}

/// Acceptance: FFmpeg-made H.264 MP4s (baseline, main and high with B-frames)
/// decode to every frame, matching FFmpeg's own decode.
#[test]
fn decodes_files_ffmpeg_made() {
    if !require_tool("ffmpeg") {
        return;
    }
    let dir = temp_dir("mp4-in");
    for profile in ["baseline", "main", "high"] {
        let input = dir.join(format!("{profile}.mp4"));
        run_tool(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30",
                "-frames:v",
                "60",
                "-c:v",
                "libx264",
                "-profile:v",
                profile,
                "-bf",
                if profile == "baseline" { "0" } else { "2" },
                path(&input),
            ],
        );
        let ours = dir.join(format!("{profile}.y4m"));
        let reference = dir.join(format!("{profile}-ref.y4m"));
        run_ok(&["run", path(&input), "-o", path(&ours), "-q"]);
        run_tool("ffmpeg", &["-v", "error", "-y", "-i", path(&input), "-pix_fmt", "yuv420p", path(&reference)]);
        let stream = ffprobe_video(&ours).unwrap();
        assert_eq!((stream.width, stream.height, stream.frames), (320, 240, 60), "{profile}");
        let db = psnr(&ours, &reference);
        assert!(db >= 45.0, "{profile}: PSNR {db} dB against FFmpeg's decode");
    }
}

#[test]
fn bad_media_input_is_explained() {
    if !require_tool("ffmpeg") {
        return;
    }
    let dir = temp_dir("mp4-bad");
    let mpeg4 = dir.join("mpeg4.mp4");
    let args = ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-frames:v", "30"];
    run_tool("ffmpeg", &[&args[..], &["-c:v", "mpeg4", path(&mpeg4)]].concat());
    let out = streamkit(&["run", path(&mpeg4), "-o", "null:"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("found mp4v") && err.contains("supported: avc1"), "{err}");

    let full = dir.join("full.mp4");
    run_tool("ffmpeg", &[&args[..], &["-c:v", "libx264", "-movflags", "+faststart", path(&full)]].concat());
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let y4m = dir.join("cut.y4m");
    let out = streamkit(&["run", path(&cut), "-o", path(&y4m), "-q"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("malformed input at byte") && err.contains("truncated"), "{err}");
    let decoded = ffprobe_video(&y4m).unwrap().frames;
    assert!(decoded > 0 && decoded < 30, "the frames before the cut come out ({decoded})");
}

/// A fragmented MP4 being written survives SIGKILL: FFmpeg reads it up to
/// the last complete fragment.
#[test]
fn killed_writer_leaves_a_playable_mp4() {
    let dir = temp_dir("mp4-kill");
    let file = dir.join("live.mp4");
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args([
            "run",
            "test:ball?size=320x240&fps=30",
            "--realtime",
            "-o",
            &format!("{}?keyint=0.5", path(&file)),
            "-q",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < 40_000 {
        assert!(Instant::now() < deadline, "nothing written");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL: no chance to finalise
    child.wait().unwrap();
    if let Some(stream) = ffprobe_video(&file) {
        assert_eq!(stream.codec, "h264");
        assert!(stream.frames >= 15, "complete fragments are readable ({} frames)", stream.frames);
    }
}
