//! Helpers for tests that check our output with real peers.
//!
//! A peer that is missing skips the test with a note — except under
//! `CI=true`, where it is a failure: CI must never pass by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod chromium;
pub mod http;
pub mod netns;

/// Whether this is CI (`CI=true`), where a missing peer is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `tool` can be run. Missing + `CI=true` panics.
pub fn require_tool(tool: &str) -> bool {
    tool_available(tool, in_ci())
}

/// [`require_tool`] with the CI flag passed in, so the rule itself is testable.
pub fn tool_available(tool: &str, ci: bool) -> bool {
    // GStreamer's tools and most others take `--version`, FFmpeg's and
    // ptp4l `-version` (they refuse `--version` at once). `--version` goes
    // first: coturn's turnserver takes `-version` as settings and serves.
    let runs = |flag: &str| Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success());
    let found = runs("--version") || runs("-version");
    if !found {
        if ci {
            panic!("{tool} is required in CI (CI=true) but is not on PATH (scripts/test installs it as root)");
        }
        eprintln!("note: {tool} is not on PATH; skipping the check against it");
    }
    found
}

/// Runs `tool args…`, panicking with its stderr when it fails; returns (stdout, stderr).
pub fn run_tool(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("running {tool}: {e}"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{tool} {args:?} failed ({}):\n{stderr}", out.status);
    (stdout, stderr)
}

/// What ffprobe says of a file's first video stream.
#[derive(Debug, PartialEq, Eq)]
pub struct VideoStream {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// e.g. `30/1`.
    pub frame_rate: String,
    /// Frames ffprobe decoded (counted, not taken from the header).
    pub frames: u64,
}

/// `ffprobe -v error [EXTRA…] -select_streams v:0 -show_entries ENTRIES -of
/// FORMAT PATH`: what ffprobe says of the first video stream (`format`:
/// `csv=p=0` or `default=noprint_wrappers=1`, for instance).
pub fn ffprobe_show(path: &Path, entries: &str, format: &str, extra: &[&str]) -> String {
    let mut args = vec!["-v", "error"];
    args.extend_from_slice(extra);
    let path = path.to_str().expect("utf-8 path");
    args.extend_from_slice(&["-select_streams", "v:0", "-show_entries", entries, "-of", format, path]);
    run_tool("ffprobe", &args).0
}

/// Decodes every frame of `path` with ffprobe. `None` when ffprobe is
/// missing (and CI is not set).
pub fn ffprobe_video(path: &Path) -> Option<VideoStream> {
    if !require_tool("ffprobe") {
        return None;
    }
    let out = ffprobe_show(
        path,
        "stream=codec_name,width,height,r_frame_rate,nb_read_frames",
        "default=noprint_wrappers=1",
        &["-count_frames"],
    );
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("ffprobe printed no {name}: {out}"))
            .to_string()
    };
    Some(VideoStream {
        codec: field("codec_name"),
        width: field("width").parse().unwrap(),
        height: field("height").parse().unwrap(),
        frame_rate: field("r_frame_rate"),
        frames: field("nb_read_frames").parse().unwrap(),
    })
}

/// ffprobe's `format=duration`, in seconds.
pub fn ffprobe_duration(path: &Path) -> f64 {
    let (out, _) = run_tool(
        "ffprobe",
        &["-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path.to_str().unwrap()],
    );
    out.trim().parse().unwrap_or_else(|_| panic!("ffprobe gave no duration for {}: {out}", path.display()))
}

/// ffprobe's packets of the first video stream: (pts, dts, keyframe), in the
/// stream time base, in file (decode) order.
pub fn ffprobe_packets(path: &Path) -> Vec<(i64, i64, bool)> {
    let out = ffprobe_show(path, "packet=pts,dts,flags", "csv=p=0", &[]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].contains('K'))
        })
        .collect()
}

/// A fresh, empty directory for one test, under the target's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replays every input of the committed fuzz corpus `fuzz/corpus/TARGET`
/// under `crate_dir` through `check` (the fuzz target's own body), so that
/// what the fuzzer once explored stays panic-free in ordinary test runs.
/// Returns how many inputs ran; a missing or tiny corpus is a failure.
pub fn replay_fuzz_corpus(crate_dir: &str, target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(crate_dir).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no fuzz corpus at {} ({e}); grow one with scripts/fuzz", dir.display()));
    let mut inputs = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "fuzz target {target} fails on {}", path.display());
        inputs += 1;
    }
    assert!(inputs >= 8, "the {target} corpus at {} holds only {inputs} inputs", dir.display());
    inputs
}
