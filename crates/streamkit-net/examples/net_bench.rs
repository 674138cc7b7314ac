//! Loopback benchmark: one producer process → one consumer process over TCP.
//!
//! ```sh
//! cargo run --release -p streamkit-net --example net_bench            # ours, then the GStreamer anchor
//! cargo run --release -p streamkit-net --example net_bench -- --no-anchor
//! cargo run --release -p streamkit-net --example net_bench -- --raw-only     # raw throughput alone
//! cargo run --release -p streamkit-net --example net_bench -- --raw-latency  # raw 1080p latency rows alone
//! ```
//!
//! * **Throughput**: 1920x1080 RGBA, compression none, as fast as the
//!   consumer takes it (queue=block, so nothing is dropped): MB/s and fps at
//!   the consumer, after a warm-up. Raw rows run twice: through shared
//!   memory (what a same-host consumer gets by default) and with `shm=off`,
//!   every byte through the TCP socket (what a consumer on another host gets).
//! * **Per-hop latency** (capture time → frame received and decoded in the
//!   consumer, `CLOCK_MONOTONIC` shared by both processes): p50/p99 at 30 fps
//!   for raw, JPEG and H.264, and for raw at full speed.
//! * **Anchor**, in the same run: GStreamer
//!   `videotestsrc ! video/x-raw,format=RGBA,width=1920,height=1080 ! gdppay ! tcpserversink`
//!   → `tcpclientsrc ! gdpdepay ! fpsdisplaysink video-sink=fakesink sync=false`.
//!
//! The producer is this binary again (`--produce PORT MODE FRAMES FPS rgba|i420 shm|tcp`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamkit_core::queue::QueuePolicy;
use streamkit_core::time::monotonic_ns;
use streamkit_core::{Frame, PixelFormat, Sink, Source, Timing};
use streamkit_net::{Compression, NetworkSink, NetworkSinkConfig, NetworkSource, NetworkSourceConfig};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_BYTES: f64 = (WIDTH * HEIGHT * 4) as f64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if args.get(1).map(String::as_str) == Some("--produce") {
        let port = args[2].parse().unwrap();
        let mode: Compression = args[3].parse().unwrap();
        let frames = args[4].parse().unwrap();
        let fps: f64 = args[5].parse().unwrap();
        let i420 = args.get(6).is_some_and(|a| a == "i420");
        let shm = args.get(7).is_some_and(|a| a == "shm");
        runtime.block_on(produce(port, mode, frames, fps, i420, shm));
        return;
    }
    let anchor = !args.iter().any(|a| a == "--no-anchor" || a == "--raw-only");
    println!("# streamkit-net loopback benchmark, {WIDTH}x{HEIGHT} RGBA source frames");
    let mut results = Vec::new();
    let shm = Path::SharedMemory;
    let tcp = Path::Tcp;
    if args.iter().any(|a| a == "--raw-latency") {
        for (name, i420, path) in
            [("raw", false, shm), ("raw", false, tcp), ("raw I420", true, shm), ("raw I420", true, tcp)]
        {
            let r = runtime.block_on(run(Compression::None, 300, 30.0, i420, path));
            println!(
                "{name}, 30 fps, {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                path.name(),
                r.p50_ms,
                r.p99_ms,
                r.max_ms
            );
        }
        return;
    }
    results.push(("raw, full speed, shared memory", runtime.block_on(run(Compression::None, 600, 0.0, false, shm))));
    results.push(("raw, full speed, TCP", runtime.block_on(run(Compression::None, 600, 0.0, false, tcp))));
    if args.iter().any(|a| a == "--raw-only") {
        return;
    }
    results.push(("raw, 30 fps, shared memory", runtime.block_on(run(Compression::None, 300, 30.0, false, shm))));
    results.push(("raw, 30 fps, TCP", runtime.block_on(run(Compression::None, 300, 30.0, false, tcp))));
    // A camera's or decoder's native 4:2:0 frame: 3.1 MB instead of 8.3 MB.
    results.push(("raw I420, 30 fps, shared memory", runtime.block_on(run(Compression::None, 300, 30.0, true, shm))));
    results.push(("raw I420, 30 fps, TCP", runtime.block_on(run(Compression::None, 300, 30.0, true, tcp))));
    results.push(("jpeg, 30 fps", runtime.block_on(run(Compression::Jpeg, 150, 30.0, false, tcp))));
    results.push(("h264, 30 fps", runtime.block_on(run(Compression::H264, 150, 30.0, false, tcp))));
    results.push(("jpeg, full speed", runtime.block_on(run(Compression::Jpeg, 150, 0.0, false, tcp))));
    results.push(("h264, full speed", runtime.block_on(run(Compression::H264, 150, 0.0, false, tcp))));
    println!();
    println!("| mode | frames | fps | MB/s (of raw RGBA) | wire MB/s | latency p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, r) in &results {
        println!(
            "| {name} | {} | {:.1} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            r.frames,
            r.fps,
            r.fps * FRAME_BYTES / 1e6,
            r.wire_mbps,
            r.p50_ms,
            r.p99_ms,
            r.max_ms
        );
    }
    if anchor {
        match gstreamer_anchor() {
            Some(fps) => {
                let ours = results[1].1.fps;
                println!();
                println!(
                    "GStreamer gdppay/tcpserversink → tcpclientsrc/gdpdepay: {fps:.1} fps = {:.0} MB/s",
                    fps * FRAME_BYTES / 1e6
                );
                println!(
                    "streamkit raw over TCP: {ours:.1} fps = {:.0} MB/s; ratio {:.2}x",
                    ours * FRAME_BYTES / 1e6,
                    ours / fps
                );
                let local = results[0].1.fps;
                println!(
                    "streamkit raw through shared memory: {local:.1} fps = {:.0} MB/s; ratio {:.2}x",
                    local * FRAME_BYTES / 1e6,
                    local / fps
                );
            }
            None => println!("\nGStreamer anchor: gst-launch-1.0 (with gdppay from plugins-bad) not available"),
        }
    }
}

/// How raw pixels travel between the two processes.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    SharedMemory,
    Tcp,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::SharedMemory => "shared memory",
            Path::Tcp => "TCP",
        }
    }
}

struct Measured {
    frames: usize,
    fps: f64,
    wire_mbps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Eight distinct moving-gradient frames, cycled (so H.264 sees motion, and
/// nobody pays for drawing during the run).
fn frames() -> Vec<Frame> {
    (0..8u32)
        .map(|n| {
            let mut f = Frame::new(PixelFormat::Rgba8Premul, WIDTH, HEIGHT).unwrap();
            for (i, px) in f.data_mut().chunks_exact_mut(4).enumerate() {
                let (x, y) = (i as u32 % WIDTH, i as u32 / WIDTH);
                px.copy_from_slice(&[(x / 4 + n * 6) as u8, (y / 4) as u8, ((x + y) / 8 + n * 3) as u8, 255]);
            }
            f
        })
        .collect()
}

async fn produce(port: u16, mode: Compression, count: u64, fps: f64, i420: bool, shm: bool) {
    let mut config = NetworkSinkConfig::new(port).with_compression(mode);
    config.queue = QueuePolicy::Block;
    config.shared_memory = shm;
    config.compress.bitrate_bps = 8_000_000;
    let mut sink = NetworkSink::bind(config).unwrap();
    let mut pictures = frames();
    if i420 {
        pictures = pictures.iter().map(|f| streamkit_core::convert::convert(f, PixelFormat::I420).unwrap()).collect();
    }
    sink.stats_handle().wait_for_consumers(1).await;
    let start = Instant::now();
    for n in 0..count {
        if fps > 0.0 {
            let due = start + Duration::from_secs_f64(n as f64 / fps);
            tokio::time::sleep_until(due.into()).await;
        }
        let timing = Timing { frame_number: n, pts: n as i64, capture_time_ns: monotonic_ns(), ..Timing::default() };
        sink.write(&pictures[n as usize % pictures.len()].clone().with_timing(timing)).await.unwrap();
    }
    sink.close().await.unwrap();
}

async fn run(mode: Compression, frames: u64, fps: f64, i420: bool, path: Path) -> Measured {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut producer = Command::new(std::env::current_exe().unwrap())
        .args(["--produce", &port.to_string(), mode.name(), &frames.to_string(), &fps.to_string()])
        .arg(if i420 { "i420" } else { "rgba" })
        .arg(if path == Path::SharedMemory { "shm" } else { "tcp" })
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut config = NetworkSourceConfig::new("127.0.0.1", port);
    config.connect_timeout = Duration::from_secs(20);
    config.shared_memory = path == Path::SharedMemory;
    let mut source = NetworkSource::connect(config).await.unwrap();
    let mut latencies = Vec::new();
    let mut times = Vec::new();
    while let Some(frame) = source.next_frame().await.unwrap() {
        let now = monotonic_ns();
        latencies.push((now - frame.timing.capture_time_ns) as f64 / 1e6);
        times.push(now);
    }
    producer.wait().unwrap();
    let shared = source.stats().shared_frames;
    assert_eq!(shared > 0, path == Path::SharedMemory, "{shared} frames came through shared memory");
    let warmup = (times.len() / 10).max(1);
    let span = (times[times.len() - 1] - times[warmup]) as f64 / 1e9;
    let fps_measured = (times.len() - 1 - warmup) as f64 / span;
    let bytes = source.stats().bytes as f64;
    let wire_mbps = bytes / times.len() as f64 * fps_measured / 1e6;
    let steady = &mut latencies[warmup..];
    steady.sort_by(f64::total_cmp);
    let pct = |p: f64| steady[((steady.len() - 1) as f64 * p).round() as usize];
    let m = Measured {
        frames: times.len(),
        fps: fps_measured,
        wire_mbps,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: steady[steady.len() - 1],
    };
    eprintln!(
        "{} ({}) @ {}: {} frames, {:.1} fps, wire {:.0} MB/s, latency p50 {:.2} ms p99 {:.2} ms",
        mode,
        path.name(),
        if fps > 0.0 { format!("{fps} fps") } else { "full speed".into() },
        m.frames,
        m.fps,
        m.wire_mbps,
        m.p50_ms,
        m.p99_ms
    );
    m
}

/// GStreamer's GDP over TCP, same size and format: steady-state fps at the receiver.
fn gstreamer_anchor() -> Option<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let server = format!(
        "videotestsrc num-buffers=100000 pattern=black ! video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT} \
         ! gdppay ! tcpserversink host=127.0.0.1 port={port} sync=false"
    );
    let mut server = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(server.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(700));
    let client = format!(
        "tcpclientsrc host=127.0.0.1 port={port} ! gdpdepay \
         ! fpsdisplaysink text-overlay=false video-sink=fakesink sync=false"
    );
    let mut client = Command::new("gst-launch-1.0")
        .arg("-v")
        .args(client.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = client.stdout.take()?;
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut currents = Vec::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("current: ") {
                let value: String = line[at + 9..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                if let Ok(v) = value.parse::<f64>() {
                    currents.push(v);
                }
            }
        }
        currents
    });
    std::thread::sleep(Duration::from_secs(8));
    let _ = client.kill();
    let _ = client.wait();
    let _ = server.kill();
    let _ = server.wait();
    let currents = reader.join().ok()?;
    eprintln!("GStreamer fps reports (every 0.5 s): {currents:?}");
    // Skip the first second (connection, caps); average the rest.
    let steady: Vec<f64> = currents.iter().skip(2).copied().collect();
    (!steady.is_empty()).then(|| steady.iter().sum::<f64>() / steady.len() as f64)
}
