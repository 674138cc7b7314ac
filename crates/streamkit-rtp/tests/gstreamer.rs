//! GStreamer as a second real peer: `udpsrc ! rtph264depay` and
//! `udpsrc ! rtpvrawdepay` receive our RTP and get every frame we sent.
//!
//! Skipped without gst-launch-1.0, failed without it under CI=true.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{finish, free_udp_port_pair, log_tail, pattern_frames, spawn, wait_for_bind};
use streamkit_builtins::Pattern;
use streamkit_core::sink::StreamInfo;
use streamkit_core::{Fps, Frame, Sink};
use streamkit_rtp::uyvy::frame_to_uyvy;
use streamkit_rtp::{RtpFormat, RtpSink, RtpSinkOptions};
use streamkit_testkit::{ffprobe_video, in_ci, temp_dir};

/// Whether gst-launch-1.0 runs (it takes `--version`, not the `-version`
/// that `streamkit_testkit::require_tool` passes). Missing + `CI=true` panics.
fn require_gstreamer() -> bool {
    let found =
        std::process::Command::new("gst-launch-1.0").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(!in_ci(), "gst-launch-1.0 is required in CI (CI=true) but does not run");
        eprintln!("note: gst-launch-1.0 is not on PATH; skipping the check against it");
    }
    found
}

const W: u32 = 320;
const H: u32 = 240;

/// Runs `pipeline` (its `udpsrc` on a free port), sends `frames`, stops
/// GStreamer with an EOS (`-e` + SIGINT) and returns the port used.
async fn gstreamer_receives(format: RtpFormat, frames: &[Frame], pipeline: impl Fn(u16) -> String, log: &Path) {
    let port = free_udp_port_pair();
    let mut options = RtpSinkOptions::new(([127, 0, 0, 1], port).into(), format);
    options.rtcp = false;
    let mut sink = RtpSink::new(options).unwrap();
    sink.set_stream_info(&StreamInfo { fps: Fps::new(30, 1), size: Some((W, H)) });
    let text = pipeline(port);
    let mut args = vec!["-e", "-q"];
    args.extend(text.split(' ').filter(|s| !s.is_empty()));
    let mut gst = spawn("gst-launch-1.0", &args, log);
    wait_for_bind(port, &mut gst, Duration::from_secs(10));
    for frame in frames {
        sink.write(frame).await.unwrap();
    }
    sink.close().await.unwrap();
    // Let the last packets through the pipeline, then EOS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || finish(&mut gst, Duration::ZERO)).await.unwrap();
    eprintln!("gst-launch-1.0 ({status}); log:\n{}", log_tail(log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_depayloads_every_h264_frame() {
    if !require_gstreamer() {
        return;
    }
    const N: usize = 40;
    let dir = temp_dir("rtp-gst-h264");
    let out = dir.join("out.h264");
    let frames = pattern_frames(Pattern::Ball, W, H, N).await;
    let location = out.to_str().unwrap().to_string();
    gstreamer_receives(
        RtpFormat::H264,
        &frames,
        |port| {
            format!(
                "udpsrc port={port} caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96 \
                 ! rtph264depay ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! filesink location={location}"
            )
        },
        &dir.join("gst.log"),
    )
    .await;
    // FFprobe decodes what GStreamer depayloaded.
    if let Some(probe) = ffprobe_video(&out) {
        assert_eq!((probe.codec.as_str(), probe.width, probe.height), ("h264", W, H));
        assert_eq!(probe.frames, N as u64, "GStreamer passed on {} of {N} frames", probe.frames);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_depayloads_every_raw_frame_bit_exact() {
    if !require_gstreamer() {
        return;
    }
    const N: usize = 20;
    let dir = temp_dir("rtp-gst-raw");
    let out = dir.join("out.uyvy");
    let frames = pattern_frames(Pattern::Ball, W, H, N).await;
    let location = out.to_str().unwrap().to_string();
    gstreamer_receives(
        RtpFormat::Raw,
        &frames,
        |port| {
            format!(
                "udpsrc port={port} buffer-size=8388608 caps=application/x-rtp,media=video,clock-rate=90000,\
                 encoding-name=RAW,sampling=YCbCr-4:2:2,depth=(string)8,width=(string){W},height=(string){H},\
                 colorimetry=(string)BT709-2,payload=96 \
                 ! rtpvrawdepay ! video/x-raw,format=UYVY ! filesink location={location}"
            )
        },
        &dir.join("gst.log"),
    )
    .await;
    let bytes = std::fs::read(&out).unwrap_or_default();
    let frame_len = (W * H * 2) as usize;
    assert_eq!(bytes.len() / frame_len, N, "GStreamer delivered {} of {N} frames", bytes.len() / frame_len);
    let mut expected = vec![0; frame_len];
    for (i, frame) in frames.iter().enumerate() {
        frame_to_uyvy(frame, &mut expected, (W * 2) as usize).unwrap();
        assert!(bytes[i * frame_len..][..frame_len] == expected[..], "frame {i} differs");
    }
}
