//! NetworkSink and NetworkSource over loopback TCP: round trips in every
//! compression, fan-out with one encode, late joiners, authentication,
//! hostile peers on both sides, slow and stuck consumers, and producers that
//! die and come back on the same port.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{mean_abs_diff, next_within, test_frame};
use streamkit_core::queue::QueuePolicy;
use streamkit_core::{Frame, PixelFormat, Sink, Source};
use streamkit_net::wire::{self, CloseCode, Hello, Join, WireDecoder, WireEvent, HELLO_LEN, JOIN_LEN};
use streamkit_net::{
    Compression, NetworkSink, NetworkSinkConfig, NetworkSource, NetworkSourceConfig, Reconnect, Token,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECOND: Duration = Duration::from_secs(1);

fn sink_config(compression: Compression, queue: QueuePolicy) -> NetworkSinkConfig {
    let mut config = NetworkSinkConfig::new(0).with_compression(compression);
    config.queue = queue;
    config
}

fn source_config(addr: SocketAddr) -> NetworkSourceConfig {
    let mut config = NetworkSourceConfig::new(addr.ip().to_string(), addr.port());
    config.connect_timeout = 5 * SECOND;
    config.backoff_max = Duration::from_millis(200);
    config
}

/// The sender's metadata arrives unchanged, plus the receiver's hop stamp.
fn assert_same_metadata_plus_hop_stamp(sent: &streamkit_core::frame::Metadata, got: &Frame) {
    let n = got.timing.frame_number;
    let (stamps, rest): (Vec<_>, Vec<_>) =
        got.metadata.iter().partition(|(k, _)| k.starts_with(streamkit_net::HOP_STAMP_PREFIX));
    assert_eq!(rest, sent.iter().collect::<Vec<_>>(), "metadata of frame {n}");
    assert_eq!(stamps.len(), 1, "one hop stamp on frame {n}: {stamps:?}");
    let received_ns: u64 = stamps[0].1.parse().expect("a hop stamp is a time in ns");
    assert!(received_ns >= got.timing.capture_time_ns, "frame {n} received after its capture");
}

fn assert_same_timing_and_metadata(sent: &Frame, got: &Frame) {
    assert_eq!(got.timing, sent.timing, "timing of frame {}", sent.timing.frame_number);
    assert_same_metadata_plus_hop_stamp(&sent.metadata, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_round_trips_with_timing_and_metadata() {
    for compression in Compression::ALL {
        let mut sink = NetworkSink::bind(sink_config(compression, QueuePolicy::Block)).unwrap();
        assert!(sink.local_addr().ip().is_loopback(), "binds 127.0.0.1 unless told otherwise");
        let stats = sink.stats_handle();
        let mut source = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
        stats.wait_for_consumers(1).await;
        assert_eq!(source.hello().unwrap().compression, compression);
        for n in 0..12 {
            let format = if n % 2 == 0 { PixelFormat::I420 } else { PixelFormat::Rgba8Premul };
            let sent = test_frame(format, 320, 240, n);
            sink.write(&sent).await.unwrap();
            let got = next_within(&mut source, 10 * SECOND, "round trip").await.unwrap();
            assert_same_timing_and_metadata(&sent, &got);
            assert_eq!(got.size(), (320, 240));
            match compression {
                Compression::None => {
                    assert_eq!(got.format(), format);
                    assert_eq!(got.data(), sent.data(), "raw is lossless");
                }
                Compression::Jpeg => {
                    assert_eq!(got.format(), PixelFormat::Rgba8Premul);
                    let sent_rgba = streamkit_core::convert::convert(&sent, PixelFormat::Rgba8Premul).unwrap();
                    let diff = mean_abs_diff(&sent_rgba, &got);
                    assert!(diff < 4.0, "JPEG frame {n} differs by {diff:.2} on average");
                }
                Compression::H264 => {
                    assert_eq!(got.format(), PixelFormat::I420);
                    let sent_i420 = streamkit_core::convert::convert(&sent, PixelFormat::I420).unwrap();
                    let diff = mean_abs_diff(&sent_i420, &got);
                    assert!(diff < 4.0, "H.264 frame {n} differs by {diff:.2} on average");
                }
            }
        }
        sink.close().await.unwrap();
        assert!(next_within(&mut source, 5 * SECOND, "end").await.is_none(), "END ends the stream");
        let s = sink.stats();
        assert_eq!((s.frames_written, s.frames_encoded, s.chunks_sent, s.consumers_joined), (12, 12, 12, 1));
        assert_eq!(source.stats().frames, 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_h264_consumers_cost_one_encode_per_frame() {
    const CONSUMERS: usize = 8;
    const FRAMES: u64 = 30;
    let mut sink = NetworkSink::bind(sink_config(Compression::H264, QueuePolicy::Block)).unwrap();
    let stats = sink.stats_handle();
    let mut readers = Vec::new();
    for i in 0..CONSUMERS {
        let mut source = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = next_within(&mut source, 20 * SECOND, &format!("consumer {i}")).await {
                got.push((frame.timing.frame_number, frame.metadata.get("n").map(str::to_string)));
            }
            (got, source.stats())
        }));
    }
    stats.wait_for_consumers(CONSUMERS).await;
    for n in 0..FRAMES {
        sink.write(&test_frame(PixelFormat::I420, 320, 240, n)).await.unwrap();
    }
    sink.close().await.unwrap();
    for reader in readers {
        let (got, source_stats) = reader.await.unwrap();
        let expected: Vec<(u64, Option<String>)> = (0..FRAMES).map(|n| (n, Some(n.to_string()))).collect();
        assert_eq!(got, expected, "every consumer decodes every frame, from a keyframe on");
        assert_eq!((source_stats.decode_errors, source_stats.skipped_waiting_for_keyframe), (0, 0));
    }
    let s = sink.stats();
    assert_eq!(s.frames_written, FRAMES);
    assert_eq!(s.frames_encoded, FRAMES, "one encode per frame for {CONSUMERS} consumers");
    assert_eq!(s.chunks_sent, FRAMES * CONSUMERS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_h264_joiner_starts_at_a_forced_keyframe() {
    let mut config = sink_config(Compression::H264, QueuePolicy::Block);
    config.compress.keyframe_seconds = Some(1000.0); // no periodic keyframes
    let mut sink = NetworkSink::bind(config).unwrap();
    let stats = sink.stats_handle();
    let mut early = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    stats.wait_for_consumers(1).await;
    for n in 0..10 {
        sink.write(&test_frame(PixelFormat::I420, 320, 240, n)).await.unwrap();
        assert_eq!(next_within(&mut early, 10 * SECOND, "early").await.unwrap().timing.frame_number, n);
    }
    let mut late = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    stats.wait_for_consumers(2).await;
    for n in 10..20 {
        sink.write(&test_frame(PixelFormat::I420, 320, 240, n)).await.unwrap();
        assert_eq!(next_within(&mut early, 10 * SECOND, "early").await.unwrap().timing.frame_number, n);
        let got = next_within(&mut late, 10 * SECOND, "late").await.unwrap();
        assert_eq!(got.timing.frame_number, n, "the late joiner misses nothing after it joined");
    }
    assert_eq!(late.stats().skipped_waiting_for_keyframe, 0, "its first chunk was a keyframe");
    assert_eq!(late.stats().decode_errors, 0);
    assert_eq!(sink.stats().keyframes_forced, 2, "one IDR per joining consumer");
}

/// Relays one connection to `target`, recording every byte both ways.
async fn recording_relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let log = recorded.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let log2 = log.clone();
        let up = async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                log2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sr.read(&mut buf).await {
                if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                log.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        };
        tokio::join!(up, down);
    });
    (addr, recorded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_both_ways_and_never_sent() {
    let secret = "correct horse battery staple";
    let mut config = sink_config(Compression::None, QueuePolicy::Block);
    config.token = Some(Token::new(secret).unwrap());
    let mut sink = NetworkSink::bind(config).unwrap();
    let stats = sink.stats_handle();
    let addr = sink.local_addr();

    // The right token, through a relay that records the whole conversation.
    let (relay, recorded) = recording_relay(addr).await;
    let mut good = NetworkSource::connect(source_config(relay).with_token(Token::new(secret).unwrap())).await.unwrap();
    stats.wait_for_consumers(1).await;
    let sent = test_frame(PixelFormat::Gray8, 64, 32, 0);
    sink.write(&sent).await.unwrap();
    assert_eq!(next_within(&mut good, 5 * SECOND, "good").await.unwrap().data(), sent.data());
    let conversation = recorded.lock().unwrap().clone();
    assert!(conversation.len() > HELLO_LEN + JOIN_LEN);
    assert!(!conversation.windows(secret.len()).any(|w| w == secret.as_bytes()), "the token never crosses the wire");

    // A wrong token: refused by the producer, with the reason, at once (no retry loop).
    let started = Instant::now();
    let wrong = source_config(addr).with_token(Token::new("Tr0ub4dor&3").unwrap());
    let e = NetworkSource::connect(wrong).await.err().expect("a wrong token fails").to_string();
    assert!(
        e.contains("the producer refused the connection: authentication failed: the consumer's token does not match"),
        "{e}"
    );
    assert!(started.elapsed() < 2 * SECOND, "a permanent refusal is not retried");

    // No token at all, and a token against a producer that has none.
    let e = NetworkSource::connect(source_config(addr)).await.err().unwrap().to_string();
    assert!(e.contains("authentication failed: the producer requires a token; add token="), "{e}");
    let open = NetworkSink::bind(sink_config(Compression::None, QueuePolicy::Block)).unwrap();
    let e = NetworkSource::connect(source_config(open.local_addr()).with_token(Token::new(secret).unwrap()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("the producer does not ask for a token"), "{e}");

    // The good consumer never noticed.
    for n in 1..5 {
        let sent = test_frame(PixelFormat::Gray8, 64, 32, n);
        sink.write(&sent).await.unwrap();
        assert_eq!(next_within(&mut good, 5 * SECOND, "good").await.unwrap().timing.frame_number, n);
    }
    let s = sink.stats();
    assert_eq!((s.rejected_auth, s.consumers), (1, 1), "{s:?}");
}

/// Connects a raw socket, reads the HELLO, sends `join_bytes` (perhaps
/// slowly), then collects what the producer says until it closes.
async fn raw_consumer(
    addr: SocketAddr,
    join_bytes: Vec<u8>,
    byte_delay: Option<Duration>,
) -> (Vec<WireEvent>, Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut decoder = WireDecoder::new("raw consumer");
    let mut events = Vec::new();
    let mut buf = vec![0u8; 4096];
    // The HELLO first.
    while !events.iter().any(|e| matches!(e, WireEvent::Hello(_))) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the producer closed before its HELLO");
        decoder.push(&buf[..n]);
        while let Ok(Some(e)) = decoder.poll() {
            events.push(e);
        }
    }
    match byte_delay {
        None => {
            let _ = stream.write_all(&join_bytes).await;
        }
        Some(delay) => {
            for b in &join_bytes {
                if stream.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(delay).await;
                if started.elapsed() > 5 * SECOND {
                    break;
                }
            }
        }
    }
    // Whatever comes back, until the producer closes the connection.
    loop {
        match tokio::time::timeout(5 * SECOND, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                decoder.push(&buf[..n]);
                while let Ok(Some(e)) = decoder.poll() {
                    events.push(e);
                }
            }
            Err(_) => panic!("the producer kept a hostile connection open for 5 s"),
        }
    }
    (events, started.elapsed())
}

fn refusal(events: &[WireEvent]) -> (CloseCode, String) {
    events
        .iter()
        .find_map(|e| match e {
            WireEvent::Error { code, reason } => Some((*code, reason.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ERROR chunk in {events:?}"))
}

fn join_bytes() -> Vec<u8> {
    Join { capabilities: Compression::all_bits(), nonce: [3; 32], response: [0; 32], shared_memory: false }
        .encode()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_consumers_get_precise_refusals_and_never_disturb_the_others() {
    let mut config = sink_config(Compression::None, QueuePolicy::LatestOnly);
    config.handshake_timeout = Duration::from_millis(300);
    let sink = NetworkSink::bind(config).unwrap();
    let stats = sink.stats_handle();
    let addr = sink.local_addr();

    // A good consumer counting frames, and a producer writing every 5 ms.
    let mut good = NetworkSource::connect(source_config(addr)).await.unwrap();
    stats.wait_for_consumers(1).await;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        let mut last = None;
        while let Some(f) = next_within(&mut good, 5 * SECOND, "good consumer").await {
            assert!(last.is_none_or(|l| f.timing.frame_number > l), "frames stay in order");
            last = Some(f.timing.frame_number);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let producer = tokio::spawn(async move {
        let mut sink = sink;
        let mut n = 0;
        let started = Instant::now();
        while started.elapsed() < 6 * SECOND {
            sink.write(&test_frame(PixelFormat::Rgba8Premul, 160, 120, n)).await.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sink.close().await.unwrap();
        n
    });
    let mut progress = received.load(Ordering::Relaxed);
    let mut still_receiving = async |phase: &str| {
        let deadline = Instant::now() + SECOND;
        while received.load(Ordering::Relaxed) <= progress {
            assert!(Instant::now() < deadline, "the good consumer received nothing for 1 s after {phase}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        progress = received.load(Ordering::Relaxed);
    };

    // Another wire version.
    let mut join = join_bytes();
    join[8..10].copy_from_slice(&7u16.to_be_bytes());
    let (events, _) = raw_consumer(addr, join, None).await;
    let (code, reason) = refusal(&events);
    assert_eq!(code, CloseCode::UnsupportedVersion);
    assert!(reason.contains("unsupported wire version 7 (this build speaks 1)"), "{reason}");
    still_receiving("a wrong version").await;

    // A damaged JOIN.
    let mut join = join_bytes();
    join[30] ^= 0x01;
    let (code, reason) = refusal(&raw_consumer(addr, join, None).await.0);
    assert_eq!(code, CloseCode::Protocol);
    assert!(reason.contains("malformed input at byte 80: join checksum mismatch"), "{reason}");

    // Not our protocol at all.
    let (code, reason) = refusal(&raw_consumer(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), None).await.0);
    assert_eq!(code, CloseCode::Protocol);
    assert!(reason.contains("expected the join magic, found \"GET / HT\""), "{reason}");
    still_receiving("garbage").await;

    // A consumer that cannot decode the stream.
    let join = Join { capabilities: Compression::H264.bit(), nonce: [3; 32], response: [0; 32], shared_memory: false }
        .encode();
    let (code, reason) = refusal(&raw_consumer(addr, join.to_vec(), None).await.0);
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Incompatible, "the consumer cannot decode none (capabilities 0x4)")
    );

    // Slowloris: one byte of JOIN every 50 ms; the whole handshake has 300 ms.
    let (events, elapsed) = raw_consumer(addr, join_bytes(), Some(Duration::from_millis(50))).await;
    let (code, reason) = refusal(&events);
    assert_eq!((code, reason.as_str()), (CloseCode::Timeout, "the handshake did not finish within 300ms"));
    assert!(elapsed < 2 * SECOND, "cut after {elapsed:?}");
    still_receiving("a slowloris peer").await;

    // A silent peer, and one that talks after its JOIN.
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut chatty = TcpStream::connect(addr).await.unwrap();
    let mut hello = [0u8; HELLO_LEN];
    chatty.read_exact(&mut hello).await.unwrap();
    assert!(Hello::parse(&hello, 0).unwrap().unwrap().handshake);
    chatty.write_all(&join_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    chatty.write_all(b"unexpected").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(3 * SECOND, chatty.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a consumer that talks after its JOIN is disconnected");
    tokio::time::sleep(Duration::from_millis(500)).await; // the silent one times out meanwhile
    drop(silent);
    still_receiving("silent and chatty peers").await;

    let frames_sent = producer.await.unwrap();
    reader.await.unwrap();
    let s = stats.snapshot();
    assert_eq!(s.rejected_version, 1, "{s:?}");
    assert_eq!(s.rejected_protocol, 3, "{s:?}"); // damaged, garbage, incompatible
    assert_eq!(s.rejected_timeout, 2, "{s:?}"); // slowloris, silent
    assert_eq!(s.consumers_joined, 2, "{s:?}"); // good, chatty
    let got = received.load(Ordering::Relaxed);
    assert!(got * 10 >= frames_sent * 9, "the good consumer got {got} of {frames_sent} frames");
}

/// Accepts a consumer as a raw-frame producer: sends HELLO, reads its JOIN.
async fn accept_join(listener: &TcpListener) -> (TcpStream, Join) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let hello = Hello { handshake: true, ..Hello::one_way(Compression::None, None, None) };
    stream.write_all(&hello.encode()).await.unwrap();
    let mut join = [0u8; JOIN_LEN];
    stream.read_exact(&mut join).await.unwrap();
    (stream, Join::parse(&join).unwrap().unwrap())
}

/// A producer that answers the handshake, then sends `after` and keeps the
/// connection open for a while.
async fn fake_producer(after: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = accept_join(&listener).await;
        stream.write_all(&wire::welcome_chunk(&[0; 32])).await.unwrap();
        stream.write_all(&after).await.unwrap();
        tokio::time::sleep(2 * SECOND).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_producers_get_precise_errors_and_cannot_make_us_allocate() {
    let no_retry = |addr| NetworkSourceConfig { reconnect: Reconnect::Off, ..source_config(addr) };
    let frame = test_frame(PixelFormat::Gray8, 16, 8, 0);
    let good = wire::encode_frame_chunk(&wire::FrameHeader::raw(&frame), frame.data()).unwrap();
    let at = HELLO_LEN as u64 + wire::welcome_chunk(&[0; 32]).len() as u64; // where the frame chunk starts

    // A 4 GiB payload claim: refused on the 16-byte prefix, without waiting for (or allocating) it.
    let mut huge = good[..16].to_vec();
    huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut source = NetworkSource::connect(no_retry(fake_producer(huge).await)).await.unwrap();
    let started = Instant::now();
    let e = source.next_frame().await.unwrap_err().to_string();
    assert!(e.starts_with("tcp://127.0.0.1:"), "{e}");
    assert!(
        e.ends_with(&format!(
            ": malformed input at byte {}: payload length 4294967295 exceeds the limit of 67108864",
            at + 12
        )),
        "{e}"
    );
    assert!(started.elapsed() < SECOND);

    // A flipped payload bit.
    let mut bad = good.clone();
    let last = bad.len() - 5;
    bad[last] ^= 4;
    let mut source = NetworkSource::connect(no_retry(fake_producer(bad).await)).await.unwrap();
    let e = source.next_frame().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("malformed input at byte {}: payload checksum mismatch", at + good.len() as u64 - 4)),
        "{e}"
    );

    // A chunk cut short, then the connection closes.
    let cut = good[..good.len() - 30].to_vec();
    let mut source = NetworkSource::connect(no_retry(fake_producer(cut).await)).await.unwrap();
    let e = tokio::time::timeout(5 * SECOND, source.next_frame()).await.unwrap().unwrap_err().to_string();
    assert!(e.contains("the input ends inside the payload of frame 0") && e.contains("(30 bytes missing)"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_consumer_does_not_slow_the_others_under_latest_only() {
    let mut config = sink_config(Compression::None, QueuePolicy::LatestOnly);
    config.stall_timeout = 30 * SECOND;
    let mut sink = NetworkSink::bind(config).unwrap();
    let stats = sink.stats_handle();
    // Connected and authenticated, then never reads again.
    let stuck = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    let mut fast = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    stats.wait_for_consumers(2).await;
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        while next_within(&mut fast, 10 * SECOND, "fast").await.is_some() {
            n += 1;
        }
        n
    });
    const FRAMES: u64 = 100;
    let frame = test_frame(PixelFormat::Rgba8Premul, 1280, 720, 0); // 3.7 MB: the stuck socket fills at once
    let mut slowest = Duration::ZERO;
    for n in 0..FRAMES {
        let started = Instant::now();
        sink.write(&frame.clone().with_timing(streamkit_core::Timing { frame_number: n, ..frame.timing.clone() }))
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = stats.snapshot();
    drop(stuck); // else close() would wait up to `stall` for it to take END
    sink.close().await.unwrap();
    let got = reader.await.unwrap();
    eprintln!("slowest write {slowest:?}; fast consumer got {got}/{FRAMES}; {s:?}");
    assert!(slowest < Duration::from_millis(100), "write() waited {slowest:?} for someone");
    assert!(got >= FRAMES * 8 / 10, "the fast consumer got only {got} of {FRAMES}");
    assert!(s.chunks_dropped >= FRAMES / 2, "the stuck consumer's queue dropped: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_is_lossless_and_a_stalled_consumer_is_cut_after_the_stall_timeout() {
    let mut config = sink_config(Compression::None, QueuePolicy::Block);
    config.stall_timeout = SECOND;
    let mut sink = NetworkSink::bind(config).unwrap();
    let stats = sink.stats_handle();
    let stuck = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    let mut good = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    stats.wait_for_consumers(2).await;
    let reader = tokio::spawn(async move {
        let mut numbers = Vec::new();
        while let Some(f) = next_within(&mut good, 10 * SECOND, "good").await {
            numbers.push(f.timing.frame_number);
        }
        numbers
    });
    const FRAMES: u64 = 60;
    let frame = test_frame(PixelFormat::Rgba8Premul, 1280, 720, 0);
    let started = Instant::now();
    for n in 0..FRAMES {
        sink.write(&frame.clone().with_timing(streamkit_core::Timing { frame_number: n, ..frame.timing.clone() }))
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    sink.close().await.unwrap();
    let numbers = reader.await.unwrap();
    let s = stats.snapshot();
    eprintln!("{FRAMES} frames in {elapsed:?}; {s:?}");
    assert_eq!(numbers, (0..FRAMES).collect::<Vec<_>>(), "block loses nothing for the consumers that read");
    assert_eq!(s.consumers_stalled, 1, "{s:?}");
    assert!(elapsed >= SECOND, "the sink waited for the stuck consumer first ({elapsed:?})");
    assert!(elapsed < 5 * SECOND, "then went on without it ({elapsed:?})");
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_dies_and_comes_back_on_the_same_port_is_followed() {
    for compression in [Compression::None, Compression::H264] {
        let sink = NetworkSink::bind(sink_config(compression, QueuePolicy::Block)).unwrap();
        let port = sink.local_addr().port();
        let mut source = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
        let stats = sink.stats_handle();
        stats.wait_for_consumers(1).await;
        // The first producer runs inside a task; we abort the task mid-stream.
        let first = tokio::spawn(async move {
            let mut sink = sink;
            for n in 0.. {
                sink.write(&test_frame(PixelFormat::I420, 160, 120, n)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        for n in 0..5 {
            assert_eq!(next_within(&mut source, 5 * SECOND, "first producer").await.unwrap().timing.frame_number, n);
        }
        first.abort();
        let _ = first.await;
        // A new producer on the same port, a little later.
        let reading = tokio::spawn(async move {
            let frame = next_within(&mut source, 20 * SECOND, "after the restart").await.unwrap();
            (frame, source)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut config = sink_config(compression, QueuePolicy::Block);
        config.port = port;
        let mut second = NetworkSink::bind(config).unwrap();
        second.stats_handle().wait_for_consumers(1).await;
        for n in 1000..1010 {
            second.write(&test_frame(PixelFormat::I420, 160, 120, n)).await.unwrap();
        }
        let (frame, mut source) = reading.await.unwrap();
        assert!(frame.timing.frame_number >= 1000, "frames from the new producer: {}", frame.timing.frame_number);
        assert_eq!(frame.metadata.get("n"), Some(frame.timing.frame_number.to_string().as_str()));
        let mut last = frame.timing.frame_number;
        while last < 1009 {
            last = next_within(&mut source, 5 * SECOND, "second producer").await.unwrap().timing.frame_number;
        }
        let s = source.stats();
        assert_eq!(s.reconnects, 1, "{compression}: {s:?}");
        assert_eq!(s.decode_errors, 0, "{compression}: resumed at a keyframe: {s:?}");
        second.close().await.unwrap();
        assert!(next_within(&mut source, 5 * SECOND, "end").await.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_and_metadata_survive_two_streams_and_a_hop() {
    use streamkit_core::stream::{Stream, StreamOptions};

    /// Collects what arrives.
    struct Collect(Arc<Mutex<Vec<Frame>>>);
    #[async_trait::async_trait]
    impl Sink for Collect {
        fn describe(&self) -> String {
            "collect".into()
        }
        async fn write(&mut self, frame: &Frame) -> streamkit_core::Result<()> {
            self.0.lock().unwrap().push(frame.clone());
            Ok(())
        }
        async fn close(&mut self) -> streamkit_core::Result<()> {
            Ok(())
        }
    }
    /// Ten known frames.
    struct Ten(u64);
    #[async_trait::async_trait]
    impl Source for Ten {
        fn info(&self) -> streamkit_core::SourceInfo {
            streamkit_core::SourceInfo::new("ten").sized(160, 120).with_fps(streamkit_core::Fps::new(25, 1))
        }
        async fn next_frame(&mut self) -> streamkit_core::Result<Option<Frame>> {
            self.0 += 1;
            Ok((self.0 <= 10).then(|| test_frame(PixelFormat::Rgba8Premul, 160, 120, self.0 - 1)))
        }
    }

    let sink = NetworkSink::bind(sink_config(Compression::None, QueuePolicy::Block)).unwrap();
    let stats = sink.stats_handle();
    let source = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    stats.wait_for_consumers(1).await;
    let probe = Collect(Arc::default());
    let collected = probe.0.clone();
    let downstream = tokio::spawn(async move {
        Stream::new(Box::new(source), vec![Box::new(probe)], StreamOptions::default()).run().await.unwrap()
    });
    let upstream = Stream::new(Box::new(Ten(0)), vec![Box::new(sink)], StreamOptions::default()).run().await.unwrap();
    assert_eq!(upstream.frames_out, 10);
    let report = downstream.await.unwrap();
    assert_eq!(report.frames_out, 10);
    let frames = collected.lock().unwrap();
    for (n, f) in frames.iter().enumerate() {
        let expected = test_frame(PixelFormat::Rgba8Premul, 160, 120, n as u64);
        assert_eq!(f.timing.frame_number, n as u64);
        assert_eq!((f.timing.pts, f.timing.time_base), (expected.timing.pts, expected.timing.time_base));
        assert_eq!(f.timing.ptp_time_ns, expected.timing.ptp_time_ns);
        assert_eq!(f.timing.sync_source, expected.timing.sync_source);
        assert_eq!(f.timing.drift_ns, expected.timing.drift_ns);
        assert_same_metadata_plus_hop_stamp(&expected.metadata, f);
        assert_eq!(f.data(), expected.data());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_consumer_that_falls_behind_skips_to_a_fresh_keyframe_and_never_breaks() {
    use streamkit_net::FrameDecompressor;
    let mut config = sink_config(Compression::H264, QueuePolicy::LatestOnly);
    config.compress.keyframe_seconds = Some(1000.0); // only forced keyframes
    config.compress.bitrate_bps = 20_000_000; // big P frames fill the slow socket fast
    let mut sink = NetworkSink::bind(config).unwrap();
    let stats = sink.stats_handle();
    let addr = sink.local_addr();

    // A consumer with a 4 KiB receive buffer that reads slowly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut hello = [0u8; HELLO_LEN];
    stream.read_exact(&mut hello).await.unwrap();
    stream.write_all(&join_bytes()).await.unwrap();
    let slow = tokio::spawn(async move {
        let mut decoder = WireDecoder::new("slow");
        decoder.push(&hello);
        let mut decompressor = FrameDecompressor::new();
        let (mut numbers, mut errors) = (Vec::new(), 0);
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            decoder.push(&buf[..n]);
            while let Some(event) = decoder.poll().unwrap() {
                if let WireEvent::Frame(f) = event {
                    let number = f.header.timing.frame_number;
                    match decompressor.decompress(f) {
                        Ok(Some(_)) => numbers.push(number),
                        _ => errors += 1,
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        (numbers, errors)
    });
    stats.wait_for_consumers(1).await;
    // Noise, so that every P frame is as big as the bitrate allows; 100 fps for 3 s.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    for n in 0..300 {
        tokio::time::sleep_until((started + Duration::from_millis(10 * n)).into()).await;
        let mut frame = test_frame(PixelFormat::I420, 640, 360, n);
        for b in frame.data_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        sink.write(&frame).await.unwrap();
    }
    sink.close().await.unwrap();
    let (numbers, errors) = slow.await.unwrap();
    let s = stats.snapshot();
    eprintln!("slow H.264 consumer decoded {} frames: {numbers:?}; {s:?}", numbers.len());
    assert_eq!(errors, 0, "every chunk the consumer got decoded");
    assert!(numbers.len() < 300 && s.chunks_dropped > 0, "the consumer fell behind and lost frames: {s:?}");
    assert!(s.chunks_skipped_for_keyframe > 0 && s.keyframes_forced > 1, "it recovered at forced keyframes: {s:?}");
    assert!(s.keyframes_forced <= 1 + 8, "recovery keyframes are rate-limited (2 a second): {s:?}");
    assert!(numbers.windows(2).any(|w| w[1] > w[0] + 1), "frames were skipped: {numbers:?}");
    assert!(numbers.last().is_some_and(|n| *n >= 200), "it kept receiving to the end: {numbers:?}");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
}

// ---------------------------------------------------------------------------
// Same-host consumers: raw frames through shared memory

/// A raw, lossless (`block`) sink with one default consumer connected to it.
async fn lossless_raw_pair() -> (NetworkSink, NetworkSource) {
    let sink = NetworkSink::bind(sink_config(Compression::None, QueuePolicy::Block)).unwrap();
    let source = NetworkSource::connect(source_config(sink.local_addr())).await.unwrap();
    sink.stats_handle().wait_for_consumers(1).await;
    (sink, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_frames_to_a_local_consumer_go_through_shared_memory_intact() {
    let (mut sink, mut source) = lossless_raw_pair().await;
    // Formats alternate and the size grows once: the producer offers a bigger ring.
    let shapes =
        [(PixelFormat::I420, 320, 240), (PixelFormat::Rgba8Premul, 320, 240), (PixelFormat::Rgba8Premul, 640, 360)];
    let mut sent_frames = 0u64;
    for n in 0..12 {
        let (format, w, h) = shapes[(n as usize / 2).min(2)];
        let sent = test_frame(format, w, h, n);
        sink.write(&sent).await.unwrap();
        sent_frames += 1;
        let got = next_within(&mut source, 10 * SECOND, "shared-memory round trip").await.unwrap();
        assert_same_timing_and_metadata(&sent, &got);
        assert_eq!((got.format(), got.size()), (format, (w, h)));
        assert_eq!(got.data(), sent.data(), "frame {n} is lossless");
    }
    let received = source.stats();
    assert_eq!(received.shared_frames, sent_frames, "{received:?}");
    assert!(received.bytes < sent_frames * 1024, "only chunk headers crossed the socket: {received:?}");
    let sent = sink.stats();
    assert_eq!(sent.chunks_shared, sent_frames, "{sent:?}");
    sink.close().await.unwrap();
    assert!(next_within(&mut source, 5 * SECOND, "end").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shm_off_on_either_side_sends_every_byte_over_tcp() {
    for (producer_shm, consumer_shm) in [(false, true), (true, false)] {
        let mut config = sink_config(Compression::None, QueuePolicy::Block);
        config.shared_memory = producer_shm;
        let mut sink = NetworkSink::bind(config).unwrap();
        let stats = sink.stats_handle();
        let mut source = NetworkSource::connect(NetworkSourceConfig {
            shared_memory: consumer_shm,
            ..source_config(sink.local_addr())
        })
        .await
        .unwrap();
        stats.wait_for_consumers(1).await;
        for n in 0..3 {
            let sent = test_frame(PixelFormat::I420, 320, 240, n);
            sink.write(&sent).await.unwrap();
            let got = next_within(&mut source, 10 * SECOND, "tcp round trip").await.unwrap();
            assert_eq!(got.data(), sent.data());
        }
        assert_eq!(source.stats().shared_frames, 0, "producer {producer_shm}, consumer {consumer_shm}");
        assert_eq!(stats.snapshot().chunks_shared, 0);
        assert!(source.stats().bytes > 3 * 320 * 240 * 3 / 2, "the pixels crossed the socket");
    }
    let uri = streamkit_core::uri::Uri::parse("tcp://127.0.0.1:9000?shm=off").unwrap();
    assert!(!NetworkSinkConfig::from_uri(&uri).unwrap().shared_memory);
    assert!(!NetworkSourceConfig::from_uri(&uri).unwrap().shared_memory);
    let bad = streamkit_core::uri::Uri::parse("tcp://127.0.0.1:9000?shm=maybe").unwrap();
    assert!(NetworkSourceConfig::from_uri(&bad).unwrap_err().to_string().contains("option 'shm=maybe' is not valid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_keeps_frames_gets_the_rest_inline_and_its_slots_come_back() {
    let slots = streamkit_net::shm::RING_SLOTS as u64;
    let (mut sink, mut source) = lossless_raw_pair().await;
    let mut kept = Vec::new();
    for n in 0..slots + 3 {
        let sent = test_frame(PixelFormat::Rgba8Premul, 160, 120, n);
        sink.write(&sent).await.unwrap();
        let got = next_within(&mut source, 10 * SECOND, "kept frame").await.unwrap();
        assert_eq!(got.data(), sent.data(), "frame {n}");
        kept.push((sent, got));
    }
    assert_eq!(source.stats().shared_frames, slots, "every slot held: the rest came inline");
    for (sent, got) in &kept {
        assert_eq!(got.data(), sent.data(), "a held slot is never overwritten (frame {})", sent.timing.frame_number);
    }
    kept.clear();
    for n in 0..slots {
        let sent = test_frame(PixelFormat::Rgba8Premul, 160, 120, 100 + n);
        sink.write(&sent).await.unwrap();
        let got = next_within(&mut source, 10 * SECOND, "after release").await.unwrap();
        assert_eq!(got.data(), sent.data());
    }
    assert_eq!(source.stats().shared_frames, 2 * slots, "dropped frames gave their slots back");
}

/// A producer that serves two connections: the first offers `offer`, then
/// sends `first`; the second gets a plain raw frame and END. Returns the
/// JOINs' shared-memory flags.
async fn shm_faking_producer(
    offer: wire::SharedMemoryOffer,
    first: Vec<u8>,
    frame: Frame,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut flags = Vec::new();
        for connection in 0..2 {
            let (mut stream, join) = accept_join(&listener).await;
            flags.push(join.shared_memory);
            stream.write_all(&wire::welcome_chunk(&[0; 32])).await.unwrap();
            if connection == 0 {
                stream.write_all(&wire::shared_memory_chunk(&offer)).await.unwrap();
                stream.write_all(&first).await.unwrap();
                let _ = stream.read(&mut [0u8; 1]).await; // until the consumer hangs up
            } else {
                stream
                    .write_all(&wire::encode_frame_chunk(&wire::FrameHeader::raw(&frame), frame.data()).unwrap())
                    .await
                    .unwrap();
                stream.write_all(&wire::end_chunk()).await.unwrap();
            }
        }
        flags
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_the_consumer_cannot_map_makes_it_reconnect_over_plain_tcp() {
    let frame = test_frame(PixelFormat::Gray8, 16, 8, 0);
    // Another process's (or namespace's) descriptor: nothing to open here.
    let offer = wire::SharedMemoryOffer { pid: std::process::id(), fd: 999_999, slots: 2, slot_len: 4096, id: [5; 32] };
    let first = wire::shared_frame_chunk(&wire::FrameHeader::raw(&frame), 0).unwrap();
    let (addr, producer) = shm_faking_producer(offer, first, frame.clone()).await;
    // Even without reconnects: falling back to plain TCP is not giving up.
    let config = NetworkSourceConfig { reconnect: Reconnect::Off, ..source_config(addr) };
    let mut source = NetworkSource::connect(config).await.unwrap();
    let got = next_within(&mut source, 10 * SECOND, "after the fallback").await.unwrap();
    assert_eq!(got.data(), frame.data());
    let stats = source.stats();
    assert_eq!((stats.reconnects, stats.shared_frames), (1, 0), "{stats:?}");
    let why = stats.last_error.unwrap();
    assert!(
        why.contains("cannot map the producer's shared memory: opening the producer's shared memory /proc/"),
        "{why}"
    );
    assert_eq!(producer.await.unwrap(), [true, false], "asked for shared memory once, then not again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_frames_the_producer_did_not_provide_are_protocol_errors() {
    let no_retry = |addr| NetworkSourceConfig { reconnect: Reconnect::Off, ..source_config(addr) };
    let frame = test_frame(PixelFormat::Gray8, 16, 8, 0);
    let chunk = wire::shared_frame_chunk(&wire::FrameHeader::raw(&frame), 0).unwrap();

    // A slot reference before any ring was offered.
    let mut source = NetworkSource::connect(no_retry(fake_producer(chunk.clone()).await)).await.unwrap();
    let e = source.next_frame().await.unwrap_err().to_string();
    assert!(e.contains("a shared-memory frame the producer did not provide: before any SHARED_MEMORY chunk"), "{e}");

    // A real ring, but the named slot was never filled.
    let ring = streamkit_net::shm::ShmRing::create(frame.data().len(), 2).unwrap();
    let mut after = wire::shared_memory_chunk(ring.offer());
    after.extend(&chunk);
    let mut source = NetworkSource::connect(no_retry(fake_producer(after).await)).await.unwrap();
    let e = source.next_frame().await.unwrap_err().to_string();
    assert!(e.contains("a shared-memory frame the producer did not provide: slot 0 is not filled (state 0)"), "{e}");
    drop(ring);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rings_replaced_before_the_consumer_read_their_offers_stay_open() {
    let (mut sink, mut source) = lossless_raw_pair().await;
    // Three growing sizes, three rings, all sent before the consumer reads a byte.
    let sent: Vec<Frame> = [(64, 48), (320, 240), (640, 480)]
        .iter()
        .enumerate()
        .map(|(n, &(w, h))| test_frame(PixelFormat::Gray8, w, h, n as u64))
        .collect();
    for frame in &sent {
        sink.write(frame).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for frame in &sent {
        let got = next_within(&mut source, 10 * SECOND, "grown frame").await.unwrap();
        assert_eq!(got.data(), frame.data());
    }
    let received = source.stats();
    assert_eq!((received.shared_frames, received.reconnects), (3, 0), "{received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_nobody_asked_for_is_a_protocol_error() {
    let offer = wire::SharedMemoryOffer { pid: std::process::id(), fd: 0, slots: 1, slot_len: 4096, id: [1; 32] };
    let addr = fake_producer(wire::shared_memory_chunk(&offer)).await;
    let config = NetworkSourceConfig { reconnect: Reconnect::Off, shared_memory: false, ..source_config(addr) };
    let mut source = NetworkSource::connect(config).await.unwrap();
    let e = source.next_frame().await.unwrap_err().to_string();
    assert!(e.contains("a SHARED_MEMORY chunk we did not ask for"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_refuses_the_shared_memory_flag_is_asked_again_without_it() {
    // A build from before shared memory: any JOIN flag is a protocol error.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frame = test_frame(PixelFormat::Gray8, 16, 8, 0);
    let sent = frame.clone();
    let producer = tokio::spawn(async move {
        let mut flags = Vec::new();
        loop {
            let (mut stream, join) = accept_join(&listener).await;
            let asked = join.shared_memory;
            flags.push(asked);
            if asked {
                let refusal = wire::error_chunk(
                    CloseCode::Protocol,
                    "join: malformed input at byte 10: unknown join flags 0x0001",
                );
                stream.write_all(&refusal).await.unwrap();
                continue;
            }
            stream.write_all(&wire::welcome_chunk(&[0; 32])).await.unwrap();
            stream
                .write_all(&wire::encode_frame_chunk(&wire::FrameHeader::raw(&sent), sent.data()).unwrap())
                .await
                .unwrap();
            stream.write_all(&wire::end_chunk()).await.unwrap();
            return flags;
        }
    });
    let mut source = NetworkSource::connect(source_config(addr)).await.unwrap();
    let got = next_within(&mut source, 10 * SECOND, "from the old producer").await.unwrap();
    assert_eq!(got.data(), frame.data());
    assert_eq!(producer.await.unwrap(), [true, false]);
}
