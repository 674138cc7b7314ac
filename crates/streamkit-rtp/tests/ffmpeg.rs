//! FFmpeg as the real peer, both ways, for both payloads:
//!
//! * FFmpeg receives our RTP through our SDP file (started before we send,
//!   as a viewer would be) and decodes every frame we sent: H.264 compared
//!   by PSNR, RFC 4175 byte for byte;
//! * we receive FFmpeg's RTP (`-f rtp -sdp_file`), reading its SDP, and
//!   decode every frame it sent, compared with FFmpeg's own rendering of the
//!   same test source.
//!
//! Skipped without ffmpeg, failed without it under CI=true.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{finish, free_udp_port_pair, log_tail, pattern_frames, psnr, spawn, wait_for_bind};
use streamkit_builtins::Pattern;
use streamkit_core::convert::convert;
use streamkit_core::sink::StreamInfo;
use streamkit_core::{Fps, Frame, PixelFormat, Sink, Source, TimeBase};
use streamkit_rtp::uyvy::{frame_to_uyvy, uyvy_to_frame};
use streamkit_rtp::{RtpDescription, RtpFormat, RtpSink, RtpSinkOptions, RtpSource, RtpSourceOptions};
use streamkit_testkit::{require_tool, run_tool, temp_dir};

const W: u32 = 320;
const H: u32 = 240;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sends `frames` through an RtpSink while FFmpeg, started first, writes
/// what it decodes as `pix_fmt` raw video; returns the output bytes.
async fn ffmpeg_receives(format: RtpFormat, frames: &[Frame], pix_fmt: &str, name: &str) -> Vec<u8> {
    let dir = temp_dir(name);
    let (sdp, out, log) = (dir.join("out.sdp"), dir.join("out.raw"), dir.join("ffmpeg.log"));
    let port = free_udp_port_pair();
    let mut options = RtpSinkOptions::new(([127, 0, 0, 1], port).into(), format);
    options.sdp = Some(sdp.clone());
    let mut sink = RtpSink::new(options).unwrap();
    // The SDP file exists from here on, before any packet.
    sink.set_stream_info(&StreamInfo { fps: Fps::new(30, 1), size: Some((W, H)) });
    assert!(sdp.exists());

    let n = frames.len().to_string();
    #[rustfmt::skip]
    let args = [
        "-hide_banner", "-nostdin", "-threads", "1",
        "-protocol_whitelist", "file,udp,rtp", "-i", path(&sdp),
        "-frames:v", &n, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-y", path(&out),
    ];
    let mut ffmpeg = spawn("ffmpeg", &args, &log);
    wait_for_bind(port, &mut ffmpeg, Duration::from_secs(10));
    for frame in frames {
        sink.write(frame).await.unwrap();
    }
    sink.close().await.unwrap();
    let stats = sink.stats();
    assert_eq!(streamkit_rtp::sink::SinkStats::get(&stats.frames), frames.len() as u64);
    let status = tokio::task::spawn_blocking(move || finish(&mut ffmpeg, Duration::from_secs(20))).await.unwrap();
    let bytes = std::fs::read(&out).unwrap_or_default();
    eprintln!("ffmpeg ({status}) wrote {} bytes; log:\n{}", bytes.len(), log_tail(&log));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_every_h264_frame_we_send() {
    if !require_tool("ffmpeg") {
        return;
    }
    const N: usize = 45;
    let frames = pattern_frames(Pattern::Ball, W, H, N).await;
    let out = ffmpeg_receives(RtpFormat::H264, &frames, "yuv420p", "rtp-ffmpeg-h264").await;
    let frame_len = (W * H * 3 / 2) as usize;
    assert_eq!(out.len() / frame_len, N, "FFmpeg decoded {} of {N} frames", out.len() / frame_len);
    for (i, frame) in frames.iter().enumerate() {
        let sent = convert(frame, PixelFormat::I420).unwrap();
        let y = (W * H) as usize;
        let quality = psnr(&out[i * frame_len..][..y], &sent.data()[..y]);
        assert!(quality > 30.0, "frame {i}: luma PSNR {quality:.1} dB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_receives_every_raw_frame_we_send_bit_exact() {
    if !require_tool("ffmpeg") {
        return;
    }
    const N: usize = 30;
    let frames = pattern_frames(Pattern::Ball, W, H, N).await;
    let out = ffmpeg_receives(RtpFormat::Raw, &frames, "uyvy422", "rtp-ffmpeg-raw").await;
    let frame_len = (W * H * 2) as usize;
    assert_eq!(out.len() / frame_len, N, "FFmpeg received {} of {N} frames", out.len() / frame_len);
    let mut expected = vec![0; frame_len];
    for (i, frame) in frames.iter().enumerate() {
        frame_to_uyvy(frame, &mut expected, (W * 2) as usize).unwrap();
        assert!(out[i * frame_len..][..frame_len] == expected[..], "frame {i} differs from what we sent");
    }
}

/// FFmpeg's own rendering of `testsrc2` frame 0 as `pix_fmt`.
fn reference_frame(dir: &Path, pix_fmt: &str) -> Vec<u8> {
    let out = dir.join(format!("reference.{pix_fmt}"));
    let size = format!("testsrc2=size={W}x{H}:rate=30");
    #[rustfmt::skip]
    run_tool("ffmpeg", &[
        "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", &size,
        "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-y", path(&out),
    ]);
    std::fs::read(out).unwrap()
}

/// FFmpeg sends 60 frames of `testsrc2` with `codec` args; we read its SDP
/// and receive. Returns the frames.
async fn we_receive_ffmpeg(codec: &[&str], name: &str) -> (Vec<Frame>, std::path::PathBuf, RtpDescription) {
    let dir = temp_dir(name);
    let (sdp, log) = (dir.join("ffmpeg.sdp"), dir.join("ffmpeg.log"));
    let port = free_udp_port_pair();
    let url = format!("rtp://127.0.0.1:{port}");
    let size = format!("testsrc2=size={W}x{H}:rate=30");
    let sender = |frames: &str, sdp: &Path| -> Vec<String> {
        let mut args: Vec<String> =
            ["-hide_banner", "-nostdin", "-re", "-f", "lavfi", "-i", &size, "-frames:v", frames]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(codec.iter().map(|s| s.to_string()));
        args.extend(["-f", "rtp", "-sdp_file", path(sdp), &url].iter().map(|s| s.to_string()));
        args
    };
    // FFmpeg writes its SDP as it starts sending; a one-frame run makes the
    // same file first, so that we can listen before the real run starts.
    let args = sender("1", &sdp);
    run_tool("ffmpeg", &args.iter().map(String::as_str).collect::<Vec<_>>());
    let description = RtpDescription::read(&sdp).unwrap();
    let mut options = RtpSourceOptions::from_description(&description).unwrap();
    options.timeout = Some(Duration::from_secs(2));
    let mut source = RtpSource::open(options).unwrap();
    assert_eq!(source.local_addr().port(), port);

    let args = sender("60", &dir.join("second.sdp"));
    let mut ffmpeg = spawn("ffmpeg", &args.iter().map(String::as_str).collect::<Vec<_>>(), &log);
    let mut frames = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(20), source.next_frame()).await.unwrap().unwrap() {
        frames.push(frame);
        if frames.len() == 60 {
            break;
        }
    }
    let stats = source.stats();
    source.close().await.unwrap();
    finish(&mut ffmpeg, Duration::from_secs(10));
    eprintln!("{stats:?}\nffmpeg log:\n{}", log_tail(&log));
    assert_eq!(stats.receiver.lost(), 0);
    (frames, dir, description)
}

fn check_timing(frames: &[Frame]) {
    for (i, pair) in frames.windows(2).enumerate() {
        let (a, b) = (&pair[0].timing, &pair[1].timing);
        assert_eq!(b.time_base, TimeBase::RTP_VIDEO);
        assert_eq!(b.pts - a.pts, 3000, "frames {i} and {}: 90 kHz timestamps one frame apart", i + 1);
        assert!(b.capture_time_ns >= a.capture_time_ns, "arrival times in order");
        assert_eq!(b.frame_number, a.frame_number + 1);
    }
    assert_eq!(frames[0].timing.pts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_decode_every_h264_frame_ffmpeg_sends() {
    if !require_tool("ffmpeg") {
        return;
    }
    let codec = ["-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p"];
    let (frames, dir, description) = we_receive_ffmpeg(&codec, "rtp-from-ffmpeg-h264").await;
    assert!(matches!(description.payload, streamkit_rtp::sdp::Payload::H264(_)));
    assert_eq!(frames.len(), 60, "all 60 frames decoded");
    assert!(frames.iter().all(|f| f.size() == (W, H) && f.format() == PixelFormat::I420));
    check_timing(&frames);
    let reference = reference_frame(&dir, "yuv420p");
    let quality = psnr(frames[0].data(), &reference);
    assert!(quality > 30.0, "frame 0 against FFmpeg's own testsrc2: PSNR {quality:.1} dB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_receive_every_raw_frame_ffmpeg_sends() {
    if !require_tool("ffmpeg") {
        return;
    }
    let codec = ["-c:v", "rawvideo", "-pix_fmt", "uyvy422"];
    let (frames, dir, description) = we_receive_ffmpeg(&codec, "rtp-from-ffmpeg-raw").await;
    assert!(matches!(description.payload, streamkit_rtp::sdp::Payload::Raw(_)));
    assert_eq!(frames.len(), 60, "all 60 frames received");
    check_timing(&frames);
    // Bit-exact: FFmpeg's UYVY of frame 0, turned into I420 by the same code.
    let reference = reference_frame(&dir, "uyvy422");
    let mut expected = Frame::new(PixelFormat::I420, W, H).unwrap();
    uyvy_to_frame(&reference, (W * 2) as usize, &mut expected).unwrap();
    assert!(frames[0].data() == expected.data(), "frame 0 differs from FFmpeg's testsrc2");
    assert!(frames[0].metadata.get("rtp_incomplete").is_none());
}
