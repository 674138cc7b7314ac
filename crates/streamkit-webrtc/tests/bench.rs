//! Benchmarks (ignored: run them on purpose, never judged on time):
//!
//! * glass-to-glass latency in Chromium: every frame carries its capture
//!   time (Unix ms, 32 bits) drawn as black/white cells across the top; the
//!   viewer page (`?measure`) reads it back from each displayed frame and
//!   subtracts it from the display time;
//! * the sink's CPU with 1 and with 10 viewers: the viewers are bare str0m
//!   receivers (no decoding) in a child process, so that our process's CPU
//!   time (`/proc/self/stat`) is the sink's alone.
//!
//! `cargo test --release -p streamkit-webrtc --test bench -- --ignored --nocapture --test-threads 1`

use std::time::{Duration, Instant};

use streamkit_builtins::{Pattern, TestSource};
use streamkit_core::canvas::{Color, Paint};
use streamkit_core::layer::FnLayer;
use streamkit_core::stream::{Stream, StreamOptions};
use streamkit_core::Fps;
use streamkit_media::encode::wallclock_ns;
use streamkit_testkit::chromium::Browser;
use streamkit_webrtc::http;
use streamkit_webrtc::peer::{self, IceOptions, Peer};
use streamkit_webrtc::{WhepSink, WhepSinkHandle, WhepSinkOptions};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;

/// `test:ball` 1280x720@30 (moving, so every frame costs bits) in real time with the latency pattern, into a WHEP sink.
fn start(
    options: WhepSinkOptions,
) -> (WhepSinkHandle, streamkit_core::stream::StopHandle, tokio::task::JoinHandle<()>) {
    let sink = WhepSink::create(WhepSinkOptions { addr: "127.0.0.1:0".parse().unwrap(), ..options }).unwrap();
    let handle = sink.handle();
    let source = TestSource::new(Pattern::Ball, WIDTH, HEIGHT, Fps::new(30, 1)).unwrap();
    let stream =
        Stream::new(Box::new(source), vec![Box::new(sink)], StreamOptions { realtime: true, ..Default::default() });
    stream.layers().add_layer(
        "latency-pattern",
        10,
        FnLayer::new(|canvas, ctx| {
            let ms = (wallclock_ns(ctx.timing).unwrap_or(0) / 1_000_000) as u32;
            let (w, h) = (ctx.width as f32 / 32.0, ctx.height as f32 / 24.0);
            for bit in 0..32 {
                let on = ms >> (31 - bit) & 1 == 1;
                let color = if on { Color::from_rgba8(255, 255, 255, 255) } else { Color::from_rgba8(0, 0, 0, 255) };
                canvas.draw_rect(bit as f32 * w, 0.0, w, h, &Paint::fill(color));
            }
            Ok(())
        }),
    );
    let stop = stream.stop_handle();
    let task = tokio::spawn(async move {
        stream.run().await.unwrap().into_result().unwrap();
    });
    (handle, stop, task)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored"]
async fn glass_to_glass_latency_in_chromium() {
    let Some(browser) = Browser::launch() else { return };
    let (sink, stop, task) = start(WhepSinkOptions::default());
    browser.goto(&format!("http://{}/?measure", sink.local_addr()));
    browser
        .wait_for("return window.streamkitViewer.latencies.length > 30", Duration::from_secs(30))
        .expect("the page measures latency");
    browser.eval("window.streamkitViewer.latencies = []; return true");
    std::thread::sleep(Duration::from_secs(20));
    let values = browser.eval("return window.streamkitViewer.latencies");
    let mut latencies: Vec<f64> = values.as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
    latencies.sort_by(f64::total_cmp);
    assert!(latencies.len() > 100, "{} samples", latencies.len());
    eprintln!(
        "glass-to-glass {WIDTH}x{HEIGHT}@30, 1 Chromium viewer on loopback: p50 {:.1} ms, p95 {:.1} ms, min {:.1}, max {:.1} ({} frames)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies[0],
        latencies[latencies.len() - 1],
        latencies.len()
    );
    drop(browser);
    stop.stop();
    task.await.unwrap();
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // After the command: state(0) ... utime is field 14 of the line, index 11 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored"]
async fn sink_cpu_one_vs_ten_viewers() {
    let (sink, stop, task) = start(WhepSinkOptions::default());
    // Alternating rounds, medians: the machine is shared and noisy.
    let (mut one, mut ten) = (Vec::new(), Vec::new());
    for viewers in [1usize, 10, 1, 10, 1, 10] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "viewers_child", "--nocapture"])
            .env("STREAMKIT_WHEP_ENDPOINT", sink.endpoint())
            .env("STREAMKIT_VIEWERS", viewers.to_string())
            .env("STREAMKIT_SECONDS", "14")
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while sink.connected() < viewers {
            assert!(Instant::now() < deadline, "{} of {viewers} viewers connected", sink.connected());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // settle: the keyframe, ramp-up
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_secs(8)).await;
        let share = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
        eprintln!("{viewers} viewer(s): sink process CPU {:.1}% of one core", share * 100.0);
        if viewers == 1 {
            one.push(share)
        } else {
            ten.push(share)
        }
        assert!(child.wait().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while sink.sessions() > 0 {
            assert!(Instant::now() < deadline, "sessions did not end");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, ten) = (median(&mut one), median(&mut ten));
    eprintln!(
        "medians of 3 rounds: 1 viewer {:.1}%, 10 viewers {:.1}% of one core: 10 viewers cost {:.2}x one viewer",
        one * 100.0,
        ten * 100.0,
        ten / one
    );
    stop.stop();
    task.await.unwrap();
}

/// The viewers of [`sink_cpu_one_vs_ten_viewers`], in a child process:
/// bare str0m receivers that count media and do not decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper of sink_cpu_one_vs_ten_viewers"]
async fn viewers_child() {
    let Ok(endpoint) = std::env::var("STREAMKIT_WHEP_ENDPOINT") else { return };
    let count: usize = std::env::var("STREAMKIT_VIEWERS").unwrap().parse().unwrap();
    let seconds: u64 = std::env::var("STREAMKIT_SECONDS").unwrap().parse().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..count {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move { bare_viewer(&endpoint, Duration::from_secs(seconds)).await }));
    }
    for t in tasks {
        let frames = t.await.unwrap();
        assert!(frames > 30, "a viewer received {frames} frames");
    }
}

async fn bare_viewer(endpoint: &str, duration: Duration) -> usize {
    let (socket, candidates) = IceOptions::default().bind().await.unwrap();
    let mut rtc = peer::new_rtc();
    for c in candidates {
        rtc.add_local_candidate(c);
    }
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Video, str0m::media::Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let headers = [("Content-Type", "application/sdp")];
    let r = http::request("POST", endpoint, &headers, offer.to_sdp_string().as_bytes(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let answer = str0m::change::SdpAnswer::from_sdp_string(&String::from_utf8_lossy(&r.body)).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let location = r.header("location").unwrap().to_string();
    let mut viewer = Peer::new(rtc, socket).unwrap();
    let mut frames = 0;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let timeout = viewer.drain().unwrap();
        frames += std::mem::take(&mut viewer.events).iter().filter(|e| matches!(e, str0m::Event::MediaData(_))).count();
        let wait = timeout.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        match tokio::time::timeout(wait, viewer.socket.recv_from(&mut viewer.buf)).await {
            Ok(Ok((n, from))) => viewer.receive(n, from).unwrap(),
            _ => viewer.timeout().unwrap(),
        }
    }
    let (authority, _) = http::split_http_url(endpoint).unwrap();
    let _ = http::request("DELETE", &format!("http://{authority}{location}"), &[], b"", Duration::from_secs(5)).await;
    frames
}
