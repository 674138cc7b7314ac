//! The `streamkit` binary end to end, with real peers (ffprobe) checking its output.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamkit_testkit::{ffprobe_video, temp_dir};

fn streamkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamkit"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn run_ok(args: &[&str]) -> String {
    let out = streamkit().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "streamkit {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut data = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut data).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    data.truncate(info.buffer_size());
    (info.width, info.height, data)
}

/// Issue acceptance: 300 frames of 1080p SMPTE bars with a text layer, as a
/// Y4M that ffprobe decodes fully, and a PNG snapshot that shows the text.
#[test]
fn smpte_with_text_to_y4m_and_png_snapshot() {
    let dir = temp_dir("acceptance");
    let y4m = dir.join("out.y4m");
    let snap = dir.join("snap.png");
    let plain = dir.join("plain.png");
    run_ok(&[
        "run",
        "test:smpte?size=1920x1080&fps=30",
        "--layer",
        "text:Frame {frame}",
        "--frames",
        "300",
        "-o",
        y4m.to_str().unwrap(),
        "-o",
        snap.to_str().unwrap(),
        "--quiet",
    ]);
    run_ok(&["run", "test:smpte?size=1920x1080&fps=30", "--frames", "1", "-o", plain.to_str().unwrap(), "--quiet"]);

    if let Some(stream) = ffprobe_video(&y4m) {
        assert_eq!((stream.width, stream.height, stream.frames), (1920, 1080, 300));
        assert_eq!((stream.codec.as_str(), stream.frame_rate.as_str()), ("rawvideo", "30/1"));
    }
    let expected_len = 300 * (1920 * 1080 * 3 / 2 + "FRAME\n".len()) as u64;
    assert!(std::fs::metadata(&y4m).unwrap().len() > expected_len, "300 full frames were written");

    let (w, h, text) = read_png(&snap);
    let (_, _, bars) = read_png(&plain);
    assert_eq!((w, h), (1920, 1080));
    let differs = |x0: u32, y0: u32, x1: u32, y1: u32| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| ((y * w + x) * 4) as usize))
            .filter(|&i| text[i..i + 4] != bars[i..i + 4])
            .count()
    };
    assert!(differs(32, 32, 500, 100) > 500, "the text 'Frame 299' is drawn at the top left");
    assert_eq!(differs(0, 400, 1920, 1080), 0, "nothing else changed");
}

/// `-` speaks Y4M on stdout and stdin, so processes chain like Unix tools.
#[test]
fn processes_chain_through_pipes() {
    let dir = temp_dir("pipes");
    let out = dir.join("piped.y4m");
    let mut producer = streamkit()
        .args(["run", "test:smpte?size=640x360&fps=30", "--frames", "90", "-o", "-", "--quiet"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let consumer = streamkit()
        .args(["run", "-", "--layer", "clock:", "-o", out.to_str().unwrap(), "--quiet"])
        .stdin(producer.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(producer.wait().unwrap().success());
    assert!(consumer.status.success(), "{}", String::from_utf8_lossy(&consumer.stderr));
    if let Some(stream) = ffprobe_video(&out) {
        assert_eq!((stream.width, stream.height, stream.frames), (640, 360, 90));
    }
}

#[test]
fn bad_uris_fail_with_a_helpful_message() {
    for (args, expected) in [
        (vec!["run", "tset:smpte", "-o", "null:"], "did you mean 'test:'"),
        (vec!["run", "test:smpte", "-o", "out.mkv"], "known extensions"),
        (vec!["run", "test:smpte?sise=10x10", "-o", "null:"], "did you mean 'size'"),
        (vec!["run", "test:smpte", "--layer", "txt:hi", "-o", "null:"], "known: clock, image, text, video"),
        (vec!["run", "test:smpte"], "no output"),
        (vec!["run", "/no/such/file.y4m", "-o", "null:"], "/no/such/file.y4m"),
    ] {
        let out = streamkit().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in:\n{stderr}");
    }
}

#[test]
fn list_and_help_teach() {
    let list = run_ok(&["list"]);
    for scheme in ["test:", "y4m:", "png:", "raw:", "null:", "text:", "clock:", "image:", "video:", ".y4m"] {
        assert!(list.contains(scheme), "list mentions {scheme}:\n{list}");
    }
    let help = run_ok(&["--help"]);
    assert!(help.contains("Examples:") && help.contains("streamkit run"), "{help}");
}

#[test]
fn probe_reports_timing_as_json_lines() {
    let out = run_ok(&["probe", "test:checker?size=320x240&fps=25", "--frames", "3", "--json"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("\"width\":320") && lines[0].contains("\"fps\":\"25\""), "{}", lines[0]);
    assert!(lines[3].contains("\"frame_number\":2") && lines[3].contains("\"pts_ns\":80000000"), "{}", lines[3]);
    assert!(lines[1].contains("\"capture_time_ns\":") && lines[1].contains("\"source_id\":\"test\""), "{}", lines[1]);
}

/// Ctrl-C (SIGINT) stops a live run cleanly and the output stays valid.
#[test]
fn interrupt_finalises_outputs() {
    let dir = temp_dir("sigint");
    let out = dir.join("live.y4m");
    let mut child = streamkit()
        .args(["run", "test:ball?size=320x240&fps=30", "--realtime", "-o", out.to_str().unwrap(), "--quiet"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) < 320 * 240 * 3 / 2 * 10 {
        assert!(Instant::now() < deadline, "no frames written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0, got {status}");
    let frame_len = (320 * 240 * 3 / 2 + 6) as u64;
    let len = std::fs::metadata(&out).unwrap().len();
    let header = len % frame_len;
    assert!(header > 20 && header < 200, "only whole frames after the header (len {len})");
    if let Some(stream) = ffprobe_video(&out) {
        assert_eq!(stream.frames, len / frame_len);
    }
}

/// Memory stays flat over a long run: no growth per frame.
#[test]
fn memory_is_flat_over_a_long_run() {
    let mut child = streamkit()
        .args([
            "run",
            "test:ball?size=640x360",
            "--layer",
            "text:{frame} {time}",
            "--layer",
            "video:test:checker?size=320x180&opacity=0.7",
            "--frames",
            "6000",
            "-o",
            "null:",
            "--quiet",
        ])
        .spawn()
        .unwrap();
    let rss_kib = |pid: u32| -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
    };
    let mut samples = Vec::new();
    while child.try_wait().unwrap().is_none() {
        if let Some(rss) = rss_kib(child.id()) {
            samples.push(rss);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(samples.len() >= 10, "sampled {} times", samples.len());
    let (early, late) = samples.split_at(samples.len() / 2);
    let (early_max, late_max) = (*early.iter().max().unwrap(), *late.iter().max().unwrap());
    eprintln!("RSS first half max {early_max} KiB, second half max {late_max} KiB over {} samples", samples.len());
    assert!(late_max <= early_max + 4096, "RSS grew from {early_max} KiB to {late_max} KiB");
}
