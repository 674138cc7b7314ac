//! streamkit to streamkit over loopback UDP, through the registry as the CLI
//! builds them (`rtp://…` sink, `.sdp` / `rtp://?sdp=` source): every frame
//! arrives with its timing, unicast and multicast; and the issue's
//! acceptance run (`test:smpte` 640x360, 150 frames in real time to
//! `rtp://127.0.0.1:PORT?sdp=out.sdp`) with FFmpeg joining from the SDP
//! file while the stream runs.

mod common;

use std::time::Duration;

use common::{finish, free_udp_port_pair, log_tail, pattern_frames, spawn};
use streamkit_builtins::Pattern;
use streamkit_core::registry::Registry;
use streamkit_core::sink::StreamInfo;
use streamkit_core::stream::{Stream, StreamOptions};
use streamkit_core::{Fps, Frame, PixelFormat, Sink, Source, TimeBase};
use streamkit_rtp::uyvy::frame_to_uyvy;
use streamkit_testkit::{require_tool, temp_dir};

fn registry() -> Registry {
    let mut registry = Registry::new();
    streamkit_builtins::register(&mut registry);
    streamkit_rtp::register(&mut registry);
    registry
}

/// Sends `frames` through `sink_uri` and receives them with `source_uri`
/// (built after the sink wrote its SDP); returns what arrived.
async fn round_trip(sink_uri: &str, source_uri: &str, frames: &[Frame]) -> Vec<Frame> {
    let registry = registry();
    let mut sink = registry.build_sink(sink_uri).unwrap();
    let (w, h) = frames[0].size();
    sink.set_stream_info(&StreamInfo { fps: Fps::new(30, 1), size: Some((w, h)) });
    let mut source = registry.build_source(source_uri).unwrap();
    let expected = frames.len();
    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Ok(Some(frame))) = tokio::time::timeout(Duration::from_secs(10), source.next_frame()).await {
            got.push(frame);
            if got.len() == expected {
                break;
            }
        }
        source.close().await.unwrap();
        got
    });
    for frame in frames {
        sink.write(frame).await.unwrap();
    }
    sink.close().await.unwrap();
    receiver.await.unwrap()
}

fn check_timing(frames: &[Frame]) {
    for pair in frames.windows(2) {
        assert_eq!(pair[1].timing.time_base, TimeBase::RTP_VIDEO);
        assert_eq!(pair[1].timing.pts - pair[0].timing.pts, 3000);
        assert!(pair[1].timing.capture_time_ns >= pair[0].timing.capture_time_ns);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_through_the_registry_with_our_sdp() {
    let dir = temp_dir("rtp-loop-h264");
    let sdp = dir.join("out.sdp");
    let port = free_udp_port_pair();
    let frames = pattern_frames(Pattern::Ball, 320, 240, 40).await;
    let sink = format!("rtp://127.0.0.1:{port}?sdp={}&bitrate=2000000", sdp.display());
    // A bare .sdp path is an RTP input.
    let got = round_trip(&sink, sdp.to_str().unwrap(), &frames).await;
    assert_eq!(got.len(), frames.len());
    check_timing(&got);
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(text.contains("sprop-parameter-sets="), "rewritten with SPS/PPS after the first keyframe:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_through_the_registry_bit_exact() {
    let dir = temp_dir("rtp-loop-raw");
    let sdp = dir.join("out.sdp");
    let port = free_udp_port_pair();
    let frames = pattern_frames(Pattern::Smpte, 640, 360, 20).await;
    let sink = format!("rtp://127.0.0.1:{port}?sdp={}&format=raw&mtu=1400", sdp.display());
    let source = format!("rtp://?sdp={}", sdp.display());
    let got = round_trip(&sink, &source, &frames).await;
    assert_eq!(got.len(), frames.len());
    check_timing(&got);
    // UYVY → I420 on our side: compare in UYVY, where the wire is exact.
    let (mut sent, mut received) = (vec![0; 640 * 2 * 360], vec![0; 640 * 2 * 360]);
    for (a, b) in frames.iter().zip(&got) {
        assert_eq!(b.format(), PixelFormat::I420);
        frame_to_uyvy(a, &mut sent, 1280).unwrap();
        frame_to_uyvy(b, &mut received, 1280).unwrap();
        // Chroma of two rows averaged by 4:2:0, then repeated: luma is exact.
        let luma_equal = sent.iter().zip(&received).skip(1).step_by(2).all(|(x, y)| x == y);
        assert!(luma_equal, "luma differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multicast_on_loopback() {
    let port = free_udp_port_pair();
    let group = "239.255.77.1";
    let frames = pattern_frames(Pattern::Smpte, 64, 32, 10).await;
    let sink = format!("rtp://{group}:{port}?format=raw&iface=127.0.0.1&ttl=1&rtcp=false");
    let source = format!("rtp://{group}:{port}?format=raw&size=64x32&iface=127.0.0.1&timeout=1");
    let registry = registry();
    if let Err(e) = registry.build_source(&source) {
        // Joining needs a multicast-capable interface; containers without
        // one refuse it. Say so rather than fail: nothing of ours is wrong.
        eprintln!("note: cannot join {group} on 127.0.0.1 here ({e}); multicast test skipped");
        return;
    }
    let got = round_trip(&sink, &source, &frames).await;
    assert_eq!(got.len(), frames.len(), "every frame through the multicast group");
}

/// The acceptance run, through the engine's runner: 150 frames of
/// 640x360 SMPTE bars in real time to `rtp://127.0.0.1:PORT?sdp=out.sdp`,
/// FFmpeg started from the SDP file once it appears (a late joiner).
async fn acceptance(format: &str, min_frames: usize, name: &str) {
    if !require_tool("ffmpeg") {
        return;
    }
    let dir = temp_dir(name);
    let (sdp, out, log) = (dir.join("out.sdp"), dir.join("out.yuv"), dir.join("ffmpeg.log"));
    let port = free_udp_port_pair();
    let registry = registry();
    let source = registry.build_source("test:smpte?size=640x360&fps=30").unwrap();
    let sink = registry.build_sink(&format!("rtp://127.0.0.1:{port}?sdp={}{format}", sdp.display())).unwrap();
    let stream = Stream::new(
        source,
        vec![sink],
        StreamOptions { max_frames: Some(150), realtime: true, ..StreamOptions::default() },
    );
    let run = tokio::spawn(stream.run());
    while !sdp.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sdp_arg = sdp.to_str().unwrap().to_string();
    let out_arg = out.to_str().unwrap().to_string();
    #[rustfmt::skip]
    let args = [
        "-hide_banner", "-nostdin", "-threads", "1", "-protocol_whitelist", "file,udp,rtp", "-i", &sdp_arg,
        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-y", &out_arg,
    ];
    let mut ffmpeg = spawn("ffmpeg", &args, &log);
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.frames_out, 150);
    // FFmpeg ends at our RTCP BYE.
    let status = tokio::task::spawn_blocking(move || finish(&mut ffmpeg, Duration::from_secs(15))).await.unwrap();
    let decoded = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as usize / (640 * 360 * 3 / 2);
    eprintln!("ffmpeg ({status}) decoded {decoded} of 150 frames; log:\n{}", log_tail(&log));
    assert!(decoded >= min_frames, "FFmpeg decoded {decoded} of 150 frames (expected at least {min_frames})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_h264_ffmpeg_joins_from_the_sdp_file() {
    // FFmpeg starts a few frames late and decodes from the next keyframe
    // (every second): at least 150 - 30 - its start-up.
    acceptance("", 100, "rtp-acceptance-h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_raw_ffmpeg_joins_from_the_sdp_file() {
    // Raw frames stand alone: everything after FFmpeg's start-up.
    acceptance("&format=raw", 120, "rtp-acceptance-raw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_senders_rtcp_bye_ends_the_source_at_once() {
    use streamkit_rtp::receiver::StreamKind;
    use streamkit_rtp::{RtpFormat, RtpSink, RtpSinkOptions, RtpSource, RtpSourceOptions};

    let port = free_udp_port_pair();
    let mut options = RtpSourceOptions::new(([127, 0, 0, 1], port).into(), StreamKind::H264 { parameter_sets: vec![] });
    options.timeout = Some(Duration::from_secs(30));
    let mut source = RtpSource::open(options).unwrap();
    assert!(source.stats().needs_keyframe, "nothing decodable before the first keyframe");
    let mut sink = RtpSink::new(RtpSinkOptions::new(([127, 0, 0, 1], port).into(), RtpFormat::H264)).unwrap();
    sink.set_stream_info(&StreamInfo { fps: Fps::new(30, 1), size: Some((160, 120)) });
    let frames = pattern_frames(Pattern::Ball, 160, 120, 10).await;
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while let Some(_frame) = source.next_frame().await.unwrap() {
            got += 1;
        }
        (got, source.stats())
    });
    for frame in &frames {
        sink.write(frame).await.unwrap();
    }
    sink.close().await.unwrap();
    let closed = std::time::Instant::now();
    let (got, stats) = tokio::time::timeout(Duration::from_secs(5), receiver).await.unwrap().unwrap();
    assert!(closed.elapsed() < Duration::from_secs(2), "ended by the BYE, not the 30 s timeout");
    assert_eq!(got, 10);
    assert!(stats.bye && !stats.needs_keyframe, "{stats:?}");
}
