//! The design's Example 6 on four hosts: network namespaces on this machine
//! joined by veth pairs, one `streamkit` process on each, talking only over
//! the network (tcp:// with H.264 and a token on every hop):
//!
//! ```text
//! capture (test pattern) → edge (+ text overlay) → compute (+ clock layer) → display (HLS)
//!      10.78.1.0/24             10.78.2.0/24             10.78.3.0/24
//! ```
//!
//! Every frame carries its capture time and collects one hop stamp per
//! receiving host (`received_ns@tcp://HOST:PORT`), so the display's record
//! alone gives each hop's latency; the namespaces share the machine's
//! monotonic clock, so the stamps compare. Capture and display both record
//! what they saw (`wire:` files): the capture times must arrive unchanged.
//!
//! Needs root and iproute2 (skipped with a note otherwise; a failure under
//! `CI=true`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use streamkit_testkit::netns::{self, Lab};
use streamkit_testkit::{ffprobe_video, temp_dir};

const FRAMES: u64 = 150;
const TOKEN: &str = "chain-secret";

/// Every frame a `wire:` recording holds, as `streamkit probe --json` prints them.
fn recorded_frames(path: &Path) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["probe", "--json", "--frames", "100000", &format!("wire:{}", path.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "probe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // The first line describes the source, the last says the stream ended;
    // the rest are frames.
    let lines: Vec<Value> = text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.last().map(|l| l["end_of_stream"].as_bool()), Some(Some(true)), "{} is complete", path.display());
    lines[..lines.len() - 1].to_vec()
}

fn stamp(frame: &Value, producer: &str) -> u64 {
    let key = format!("received_ns@tcp://{producer}");
    frame["metadata"][&key].as_str().unwrap_or_else(|| panic!("no {key} in {frame}")).parse().unwrap()
}

/// p50 and p99 in milliseconds.
fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    (at(0.5), at(0.99))
}

#[test]
fn four_hosts_capture_edge_compute_display() {
    if !netns::available("the four-host chain test") {
        return;
    }
    let dir = temp_dir("chain");
    let mut lab = Lab::new("c");
    let (capture, edge, compute, display) = (lab.ns("cap"), lab.ns("edge"), lab.ns("comp"), lab.ns("disp"));
    lab.link(&capture, "10.78.1.1/24", &edge, "10.78.1.2/24", "1");
    lab.link(&edge, "10.78.2.1/24", &compute, "10.78.2.2/24", "2");
    lab.link(&compute, "10.78.3.1/24", &display, "10.78.3.2/24", "3");

    let exe = env!("CARGO_BIN_EXE_streamkit");
    let serve = |addr: &str| format!("tcp://{addr}?compression=h264&token={TOKEN}");
    let pull = |addr: &str| format!("tcp://{addr}?token={TOKEN}");
    let (cap_rec, disp_rec, hls) = (dir.join("capture.wire"), dir.join("display.wire"), dir.join("live"));
    let (cap_rec, disp_rec) = (
        format!("wire:{}?compression=jpeg", cap_rec.display()),
        format!("wire:{}?compression=jpeg", disp_rec.display()),
    );
    let hls_uri = format!("hls:{}?segment_duration=1&playlist_size=0", hls.display());
    let frames = FRAMES.to_string();

    // Downstream first: each source retries until its producer is up.
    let mut logs = Vec::new();
    logs.push((
        "display",
        lab.spawn(
            "display",
            &display,
            &[exe, "run", "-q", &pull("10.78.3.1:9002"), "-o", &hls_uri, "-o", &disp_rec],
            &[],
        ),
    ));
    logs.push((
        "compute",
        lab.spawn(
            "compute",
            &compute,
            &[
                exe,
                "run",
                "-q",
                &pull("10.78.2.1:9001"),
                "--layer",
                "clock:?pos=top-right",
                "-o",
                &serve("10.78.3.1:9002"),
            ],
            &[],
        ),
    ));
    logs.push((
        "edge",
        lab.spawn(
            "edge",
            &edge,
            &[
                exe,
                "run",
                "-q",
                &pull("10.78.1.1:9000"),
                "--layer",
                "text:edge {frame}?pos=bottom-left",
                "-o",
                &serve("10.78.2.1:9001"),
            ],
            &[],
        ),
    ));
    std::thread::sleep(Duration::from_millis(300));
    logs.push((
        "capture",
        lab.spawn(
            "capture",
            &capture,
            &[
                exe,
                "run",
                "-q",
                "test:ball?size=640x360&fps=30",
                "--frames",
                &frames,
                "--realtime",
                "-o",
                &serve("10.78.1.1:9000"),
                "-o",
                &cap_rec,
            ],
            &[],
        ),
    ));

    // The capture ends after 5 s; its END travels down the chain and each
    // host finishes in turn.
    let mut codes = Vec::new();
    for host in ["capture", "edge", "compute", "display"] {
        codes.push((host, lab.wait(host, Duration::from_secs(60))));
    }
    let output: String = logs
        .iter()
        .map(|(host, rx)| format!("--- {host}\n{}\n", rx.try_iter().collect::<Vec<_>>().join("\n")))
        .collect();
    for (host, code) in &codes {
        assert_eq!(*code, Some(0), "{host} did not finish cleanly: {codes:?}\n{output}");
    }

    let sent = recorded_frames(&dir.join("capture.wire"));
    let received = recorded_frames(&dir.join("display.wire"));
    assert_eq!(sent.len() as u64, FRAMES, "the capture host recorded what it sent");
    let capture_times: HashMap<u64, u64> =
        sent.iter().map(|f| (f["frame_number"].as_u64().unwrap(), f["capture_time_ns"].as_u64().unwrap())).collect();

    // Frames arrive in order, with their capture times unchanged.
    let numbers: Vec<u64> = received.iter().map(|f| f["frame_number"].as_u64().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "frames out of order: {numbers:?}");
    for f in &received {
        let n = f["frame_number"].as_u64().unwrap();
        assert_eq!(f["capture_time_ns"].as_u64(), capture_times.get(&n).copied(), "capture time of frame {n}");
        assert_eq!((f["width"].as_u64(), f["height"].as_u64()), (Some(640), Some(360)));
    }
    // Hosts join a live stream, so the first frames may pass before the
    // chain is connected; after that, nothing may be lost.
    let (first, last) = (numbers[0], *numbers.last().unwrap());
    let lost = (last - first + 1) - numbers.len() as u64;
    assert_eq!(last, FRAMES - 1, "the stream reached its end: {numbers:?}");
    assert!(numbers.len() as u64 >= FRAMES / 2, "most frames arrived: {numbers:?}");

    let hops = [
        ("capture → edge", None, "10.78.1.1:9000"),
        ("edge → compute", Some("10.78.1.1:9000"), "10.78.2.1:9001"),
        ("compute → display", Some("10.78.2.1:9001"), "10.78.3.1:9002"),
    ];
    let mut report = format!(
        "four-host chain, 640x360@30 H.264, {} of {FRAMES} frames received (joined at frame {first}), {lost} lost after joining\n",
        numbers.len()
    );
    for (name, from, to) in hops {
        let samples: Vec<u64> = received
            .iter()
            .map(|f| {
                let start = from.map_or(f["capture_time_ns"].as_u64().unwrap(), |from| stamp(f, from));
                stamp(f, to).checked_sub(start).expect("hop stamps increase along the chain")
            })
            .collect();
        let (p50, p99) = percentiles(samples);
        report += &format!("  {name:<18} p50 {p50:6.2} ms  p99 {p99:6.2} ms\n");
    }
    let end_to_end: Vec<u64> =
        received.iter().map(|f| stamp(f, "10.78.3.1:9002") - f["capture_time_ns"].as_u64().unwrap()).collect();
    let (p50, p99) = percentiles(end_to_end);
    report += &format!("  {:<18} p50 {p50:6.2} ms  p99 {p99:6.2} ms\n", "end to end");
    println!("{report}");
    // Live queues (latest-only) may drop a frame on a loaded machine; a
    // steady loss means a hop cannot keep up.
    assert!(lost <= FRAMES / 10, "frames lost inside the chain\n{report}");

    // The display host's HLS holds every frame it received.
    if let Some(video) = ffprobe_video(&hls.join("index.m3u8")) {
        assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", 640, 360));
        assert_eq!(video.frames, received.len() as u64, "HLS frames");
    }
    let playlist = std::fs::read_to_string(hls.join("index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "the display closed its playlist:\n{playlist}");
}
