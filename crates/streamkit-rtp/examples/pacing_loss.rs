//! Measures what pacing buys: raw 1080p (RFC 4175) at 30 fps over loopback,
//! sent by `RtpSink` with and without pacing, received by the same receive
//! path as `RtpSource` (a thread draining the socket into `RtpReceiver`),
//! with the kernel's default socket receive buffer and with a large one.
//!
//! `cargo run --release -p streamkit-rtp --example pacing_loss [frames] [mtu] [WxH]`
//!
//! Prints, per case, packets sent and lost, frames complete, and the
//! kernel's own count of datagrams it dropped for a full receive buffer
//! (`RcvbufErrors` in /proc/net/snmp).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamkit_core::sink::StreamInfo;
use streamkit_core::time::monotonic_ns;
use streamkit_core::{Fps, Frame, PixelFormat, Sink, Timing};
use streamkit_rtp::raw::RawFormat;
use streamkit_rtp::receiver::{Received, ReceiverConfig, RtpReceiver, StreamKind};
use streamkit_rtp::sink::SinkStats;
use streamkit_rtp::{net, RtpFormat, RtpSink, RtpSinkOptions};

fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

struct Outcome {
    sent: u64,
    received: u64,
    lost: u64,
    complete: u64,
    frames: u64,
    kernel_drops: u64,
    granted: usize,
    seconds: f64,
}

async fn run(size: (u32, u32), frames: u64, mtu: usize, pace: bool, receive_buffer: Option<usize>) -> Outcome {
    let (w, h) = size;
    let format = RawFormat::new(w, h).unwrap();
    let (socket, granted) = match receive_buffer {
        Some(bytes) => {
            net::receiver_socket("127.0.0.1:0".parse().unwrap(), None, bytes, Duration::from_millis(5)).unwrap()
        }
        None => {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            let granted = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
            (s, granted)
        }
    };
    let port = socket.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let receiver = std::thread::spawn(move || {
        let mut rx = RtpReceiver::new(ReceiverConfig::new(StreamKind::Raw(format)));
        let mut buf = vec![0u8; 65_536];
        let (mut complete, mut total) = (0, 0);
        while !stop_rx.load(Ordering::Relaxed) {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                rx.handle_packet(&buf[..n], monotonic_ns());
            }
            rx.handle_timeout(monotonic_ns());
            while let Some(out) = rx.poll_output() {
                if let Received::Frame(f) = out {
                    total += 1;
                    complete += f.complete as u64;
                }
            }
        }
        rx.flush();
        while let Some(out) = rx.poll_output() {
            if let Received::Frame(f) = out {
                total += 1;
                complete += f.complete as u64;
            }
        }
        (rx.stats(), complete, total)
    });

    let mut options = RtpSinkOptions::new(([127, 0, 0, 1], port).into(), RtpFormat::Raw);
    options.pace = pace;
    options.rtcp = false;
    options.mtu = mtu;
    let mut sink = RtpSink::new(options).unwrap();
    let fps = Fps::new(30, 1);
    sink.set_stream_info(&StreamInfo { fps, size: Some((w, h)) });
    let mut frame = Frame::new(PixelFormat::I420, w, h).unwrap();
    frame.data_mut().iter_mut().enumerate().for_each(|(i, b)| *b = (i % 199) as u8 + 16);

    let drops_before = rcvbuf_errors();
    let start = Instant::now();
    for n in 0..frames {
        // A live source: one frame every 33 ms.
        let due = start + Duration::from_nanos(fps.frame_time_ns(n));
        tokio::time::sleep_until(due.into()).await;
        let f = frame.clone().with_timing(Timing::for_frame(n, fps));
        sink.write(&f).await.unwrap();
    }
    sink.close().await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (stats, complete, total) = receiver.join().unwrap();
    let sink_stats = sink.stats();
    Outcome {
        sent: SinkStats::get(&sink_stats.packets),
        received: stats.datagrams,
        lost: stats.lost(),
        complete,
        frames: total,
        kernel_drops: rcvbuf_errors() - drops_before,
        granted,
        seconds,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let frames: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(90);
    let mtu: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1200);
    let size =
        args.next().and_then(|a| a.parse::<streamkit_core::uri::Size>().ok()).map_or((1920, 1080), |s| (s.0, s.1));
    println!("raw {}x{} UYVY, 30 fps, {frames} frames, mtu {mtu}, loopback\n", size.0, size.1);
    println!("| receive buffer | pacing | packets sent | received | lost | loss % | kernel drops | complete frames |");
    println!("|---|---|---|---|---|---|---|---|");
    for receive_buffer in [None, Some(32 << 20)] {
        for pace in [false, true] {
            let o = run(size, frames, mtu, pace, receive_buffer).await;
            println!(
                "| {} ({} B granted) | {} | {} | {} | {} | {:.2} | {} | {}/{} of {frames} ({:.1} s) |",
                if receive_buffer.is_some() { "32 MiB asked" } else { "kernel default" },
                o.granted,
                if pace { "on" } else { "off" },
                o.sent,
                o.received,
                o.lost,
                100.0 * (o.sent - o.received.min(o.sent)) as f64 / o.sent.max(1) as f64,
                o.kernel_drops,
                o.complete,
                o.frames,
                o.seconds
            );
        }
    }
}
