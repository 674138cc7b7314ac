//! Helpers shared by the real-peer tests: free UDP ports, waiting for a peer
//! to bind, running a peer with a deadline, test pictures, PSNR.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use streamkit_builtins::{Pattern, TestSource};
use streamkit_core::{Fps, Frame, Source};

/// A free even UDP port on 127.0.0.1 whose successor (RTCP) is free too.
pub fn free_udp_port_pair() -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        if port < 1024 {
            continue;
        }
        let both =
            UdpSocket::bind(("127.0.0.1", port)).and_then(|a| UdpSocket::bind(("127.0.0.1", port + 1)).map(|b| (a, b)));
        if both.is_ok() {
            return port;
        }
    }
    panic!("no free UDP port pair on 127.0.0.1");
}

/// Whether some process has bound UDP `port` (read from /proc, so nothing
/// is disturbed).
pub fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|path| {
        std::fs::read_to_string(path)
            .map(|t| {
                t.lines()
                    .skip(1)
                    .any(|l| l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").contains(&needle)))
            })
            .unwrap_or(false)
    })
}

/// Waits until a peer has bound `port` (panics after `timeout`).
pub fn wait_for_bind(port: u16, child: &mut Child, timeout: Duration) {
    let start = Instant::now();
    while !udp_port_bound(port) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the peer exited ({status}) before binding UDP port {port}");
        }
        assert!(start.elapsed() < timeout, "the peer did not bind UDP port {port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Bound is not yet reading: give it a moment to enter its receive loop.
    std::thread::sleep(Duration::from_millis(300));
}

/// Starts `tool args…` with its output in `log`.
pub fn spawn(tool: &str, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {tool}: {e}"))
}

/// Waits for `child` up to `timeout`, then asks it to stop (SIGINT, as
/// Ctrl-C: FFmpeg and gst-launch -e finish their outputs) and, if it must,
/// kills it.
pub fn finish(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap()
}

/// `n` frames of a test pattern, RGBA.
pub async fn pattern_frames(pattern: Pattern, width: u32, height: u32, n: usize) -> Vec<Frame> {
    let mut source = TestSource::new(pattern, width, height, Fps::new(30, 1)).unwrap();
    let mut frames = Vec::new();
    for _ in 0..n {
        frames.push(source.next_frame().await.unwrap().unwrap());
    }
    frames
}

pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sse: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    if sse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64.powi(2) / (sse / a.len() as f64)).log10()
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
