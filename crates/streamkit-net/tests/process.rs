//! Real processes: a producer process killed with SIGKILL mid-stream and
//! started again on the same port (the consumer reconnects and goes on), and
//! `producer | consumer` over an OS pipe in the wire format and in Y4M.
//!
//! The children are this test binary run again with one `*_child` test and
//! an environment variable that tells it what to be.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{next_within, test_frame};
use streamkit_core::{Fps, PixelFormat, Sink, Source};
use streamkit_net::{CompressOptions, Compression, NetworkSink, NetworkSinkConfig, NetworkSource, NetworkSourceConfig};

const ROLE: &str = "STREAMKIT_NET_CHILD";

fn child(test: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(ROLE, role);
    command
}

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// `tcp:PORT:GENERATION`: serves frames numbered GENERATION*1000 + n, one every 10 ms, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_producer_child() {
    let Some(role) = role().filter(|r| r.starts_with("tcp:")) else { return };
    let mut parts = role.split(':').skip(1);
    let port: u16 = parts.next().unwrap().parse().unwrap();
    let generation: u64 = parts.next().unwrap().parse().unwrap();
    let mut config = NetworkSinkConfig::new(port).with_compression(Compression::H264);
    config.queue = streamkit_core::queue::QueuePolicy::Block;
    let mut sink = NetworkSink::bind(config).unwrap();
    for n in 0.. {
        sink.write(&test_frame(PixelFormat::I420, 160, 120, generation * 1000 + n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_producer_process_is_followed_when_it_restarts() {
    if role().is_some() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawn = |generation: u64| {
        KillOnDrop(
            child("tcp_producer_child", &format!("tcp:{port}:{generation}")).stdout(Stdio::null()).spawn().unwrap(),
        )
    };
    let mut first = spawn(1);
    let mut config = NetworkSourceConfig::new("127.0.0.1", port);
    config.connect_timeout = Duration::from_secs(20);
    config.backoff_max = Duration::from_millis(200);
    let mut source = NetworkSource::connect(config).await.unwrap();
    for _ in 0..10 {
        let f = next_within(&mut source, Duration::from_secs(10), "first producer").await.unwrap();
        assert!((1000..2000).contains(&f.timing.frame_number));
    }
    // SIGKILL: no END, no clean shutdown; the socket dies with the process.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let restarted = Instant::now();
    let _second = spawn(2);
    let frame = loop {
        let f = next_within(&mut source, Duration::from_secs(20), "after the restart").await.unwrap();
        if f.timing.frame_number >= 2000 {
            break f;
        }
    };
    eprintln!("frames from the new process {:?} after its start", restarted.elapsed());
    assert_eq!(frame.metadata.get("n"), Some(frame.timing.frame_number.to_string().as_str()));
    for _ in 0..5 {
        let f = next_within(&mut source, Duration::from_secs(5), "second producer").await.unwrap();
        assert!(f.timing.frame_number > 2000);
    }
    let s = source.stats();
    assert_eq!(s.reconnects, 1, "{s:?}");
    assert_eq!(s.decode_errors, 0, "resumed at a keyframe: {s:?}");
}

/// `pipe-producer:FORMAT`: writes 90 frames to stdout as `wire` or `y4m`.
///
/// The test harness prints to stdout too, so the parent hands the pipe over
/// as fd 3 and the child makes it its stdout only once its test runs, and
/// exits as soon as the stream is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_producer_child() {
    let Some(format) = role().and_then(|r| r.strip_prefix("pipe-producer:").map(str::to_string)) else { return };
    // SAFETY: plain descriptor calls on descriptors this process owns.
    unsafe {
        assert_eq!(libc::dup2(3, 1), 1, "the parent passes the pipe as fd 3");
        libc::close(3);
    }
    let mut sink: Box<dyn Sink> = match format.as_str() {
        "wire" => Box::new(streamkit_net::WireSink::stdout(CompressOptions::new(Compression::None))),
        "wire-jpeg" => Box::new(streamkit_net::WireSink::stdout(CompressOptions::new(Compression::Jpeg))),
        _ => Box::new(streamkit_builtins::y4m::Y4mSink::to_writer(FlushOnShutdown(tokio::io::stdout()), "-", None)),
    };
    sink.set_stream_info(&streamkit_core::sink::StreamInfo { fps: Fps::new(25, 1), size: Some((64, 48)) });
    for n in 0..90 {
        sink.write(&test_frame(PixelFormat::I420, 64, 48, n)).await.unwrap();
    }
    sink.close().await.unwrap();
    std::process::exit(0);
}

/// tokio's `Stdout::poll_shutdown` returns at once, without waiting for the
/// write still in flight on its blocking thread; `Y4mSink::close` relies on
/// shutdown, so a process that exits right after it can lose its last
/// frames. This wrapper flushes on shutdown.
struct FlushOnShutdown<W>(W);

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FlushOnShutdown<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
}

/// `pipe-consumer`: reads stdin (either format) and reports what came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_consumer_child() {
    if role().as_deref() != Some("pipe-consumer") {
        return;
    }
    let mut source = streamkit_net::PipeSource::stdin().unwrap();
    let info = source.info();
    let mut numbers = Vec::new();
    let mut metadata_ok = true;
    let mut capture_ok = true;
    while let Some(f) = source.next_frame().await.unwrap() {
        let expected = test_frame(PixelFormat::I420, 64, 48, f.timing.frame_number);
        metadata_ok &= f.metadata == expected.metadata;
        capture_ok &= f.timing.capture_time_ns > 0;
        numbers.push(f.timing.frame_number);
    }
    let in_order = numbers.iter().enumerate().all(|(i, n)| *n == i as u64);
    println!(
        "consumer-result: {} {:?}x{:?}@{:?}; {} frames; in order {in_order}; metadata {metadata_ok}; capture {capture_ok}",
        if info.description.starts_with("wire") { "wire" } else { "y4m" },
        info.width.unwrap(),
        info.height.unwrap(),
        info.fps.unwrap().to_string(),
        numbers.len()
    );
}

fn pipeline(format: &str) -> String {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (reader, writer) = std::io::pipe().unwrap();
    let fd = writer.as_raw_fd();
    let mut command = child("pipe_producer_child", &format!("pipe-producer:{format}"));
    command.stdout(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || match libc::dup2(fd, 3) {
            3 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    let mut producer = command.spawn().unwrap();
    drop(writer); // the consumer sees the end of the pipe when the producer exits
    let consumer = child("pipe_consumer_child", "pipe-consumer")
        .stdin(Stdio::from(reader))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = consumer.wait_with_output().unwrap();
    assert!(producer.wait().unwrap().success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn producer_pipe_consumer_in_the_wire_format_and_in_y4m() {
    if role().is_some() {
        return;
    }
    let out = pipeline("wire");
    assert!(
        out.contains("consumer-result: wire 64x48@\"25\"; 90 frames; in order true; metadata true; capture true"),
        "{out}"
    );
    let out = pipeline("wire-jpeg");
    assert!(out.contains("consumer-result: wire 64x48@\"25\"; 90 frames; in order true; metadata true"), "{out}");
    // Y4M carries no metadata or capture times; frames and order still arrive.
    let out = pipeline("y4m");
    assert!(out.contains("consumer-result: y4m 64x48@\"25\"; 90 frames; in order true; metadata false"), "{out}");
}
