//! The wire format over pipes and files: WireSink → (duplex pipe, file) →
//! PipeSource in every compression, Y4M recognised on the same input, broken
//! inputs reported precisely, and the registry's `wire:` and `tcp:` schemes.

mod common;

use common::{mean_abs_diff, test_frame};
use streamkit_builtins::y4m::Y4mSink;
use streamkit_core::registry::Registry;
use streamkit_core::{Fps, Frame, PixelFormat, Sink, Source};
use streamkit_net::wire::{self, FrameHeader, Hello};
use streamkit_net::{CompressOptions, Compression, PipeSource, WireSink};
use streamkit_testkit::temp_dir;

async fn read_all(source: &mut (impl Source + ?Sized)) -> (Vec<Frame>, Option<streamkit_core::Error>) {
    let mut frames = Vec::new();
    loop {
        match source.next_frame().await {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_sink_to_pipe_source_in_every_compression() {
    for compression in Compression::ALL {
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let frames: Vec<Frame> = (0..10).map(|n| test_frame(PixelFormat::I420, 128, 96, n)).collect();
        let sent = frames.clone();
        let producer = tokio::spawn(async move {
            let mut sink = WireSink::new(writer, "duplex", CompressOptions::new(compression));
            sink.set_stream_info(&streamkit_core::sink::StreamInfo { fps: Fps::new(25, 1), size: Some((128, 96)) });
            for f in &sent {
                sink.write(f).await.unwrap();
            }
            sink.close().await.unwrap();
            sink.frames_written()
        });
        let mut source = PipeSource::from_reader(reader, "duplex").await.unwrap();
        let info = source.info();
        assert_eq!((info.width, info.height, info.fps), (Some(128), Some(96), Some(Fps::new(25, 1))));
        assert!(info.description.contains(compression.name()), "{}", info.description);
        let (got, err) = read_all(&mut source).await;
        assert!(err.is_none(), "{compression}: {err:?}");
        assert_eq!(producer.await.unwrap(), 10);
        assert_eq!(got.len(), 10, "{compression}");
        for (a, b) in frames.iter().zip(&got) {
            assert_eq!(b.timing, a.timing);
            assert_eq!(b.metadata, a.metadata);
            let a = streamkit_core::convert::convert(a, b.format()).unwrap();
            let diff = mean_abs_diff(&a, b);
            match compression {
                Compression::None => assert_eq!(diff, 0.0),
                _ => assert!(diff < 4.0, "{compression}: frame differs by {diff:.2} on average"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_input_accepts_y4m() {
    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let producer = tokio::spawn(async move {
        let mut sink = Y4mSink::to_writer(writer, "duplex", Some(Fps::new(30000, 1001)));
        for n in 0..5 {
            sink.write(&test_frame(PixelFormat::I420, 64, 48, n)).await.unwrap();
        }
        sink.close().await.unwrap();
    });
    let mut source = PipeSource::from_reader(reader, "ffmpeg-like").await.unwrap();
    assert!(matches!(source, PipeSource::Y4m(_)));
    assert_eq!(source.info().fps, Some(Fps::new(30000, 1001)));
    let (got, err) = read_all(&mut source).await;
    producer.await.unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].data(), test_frame(PixelFormat::I420, 64, 48, 4).data());
}

#[tokio::test]
async fn inputs_that_are_neither_say_so() {
    let e = PipeSource::from_reader(&b"RIFF\x00\x00WAVEfmt "[..], "x").await.err().unwrap().to_string();
    assert!(e.contains("neither the streamkit wire format") && e.contains("it starts with \"R\""), "{e}");
    let e = PipeSource::from_reader(&b""[..], "x").await.err().unwrap().to_string();
    assert!(e.contains("at byte 0") && e.contains("empty input"), "{e}");
    // A TCP producer's stream replayed into a pipe: told apart.
    let hello = Hello { handshake: true, ..Hello::one_way(Compression::None, None, None) }.encode();
    let e = PipeSource::from_reader(std::io::Cursor::new(hello.to_vec()), "x").await.err().unwrap().to_string();
    assert!(e.contains("connect with tcp://HOST:PORT"), "{e}");
}

fn stream_bytes(frames: &[Frame], end: bool) -> Vec<u8> {
    let mut bytes = Hello::one_way(Compression::None, None, None).encode().to_vec();
    for f in frames {
        bytes.extend(wire::encode_frame_chunk(&FrameHeader::raw(f), f.data()).unwrap());
    }
    if end {
        bytes.extend(wire::end_chunk());
    }
    bytes
}

#[tokio::test]
async fn a_producer_that_died_mid_chunk_is_an_error_at_a_byte_offset() {
    let frames: Vec<Frame> = (0..3).map(|n| test_frame(PixelFormat::Gray8, 32, 16, n)).collect();
    let bytes = stream_bytes(&frames, false);
    let cut = bytes.len() - 100;
    let mut source = PipeSource::from_reader(std::io::Cursor::new(bytes[..cut].to_vec()), "cut").await.unwrap();
    let (got, err) = read_all(&mut source).await;
    assert_eq!(got.len(), 2);
    let e = err.expect("an error for the cut chunk").to_string();
    assert!(
        e.starts_with(&format!(
            "wire cut: malformed input at byte {cut}: the input ends inside the payload of frame 2"
        )),
        "{e}"
    );
    // Cut exactly at a chunk boundary (no END): the frames, then the end.
    let mut source = PipeSource::from_reader(std::io::Cursor::new(bytes), "no-end").await.unwrap();
    let (got, err) = read_all(&mut source).await;
    assert_eq!((got.len(), err.is_none()), (3, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_either_format_and_the_registry_schemes() {
    let dir = temp_dir("net-files");
    let mut registry = Registry::new();
    streamkit_builtins::register(&mut registry);
    streamkit_net::register(&mut registry);

    let path = dir.join("clip.skw");
    let uri = format!("wire:{}?compression=jpeg&quality=90", path.display());
    let mut sink = registry.build_sink(&uri).unwrap();
    assert_eq!(sink.describe(), format!("wire:{}", path.display()));
    for n in 0..4 {
        sink.write(&test_frame(PixelFormat::Rgba8Premul, 64, 48, n)).await.unwrap();
    }
    sink.close().await.unwrap();
    let mut source = registry.build_source(&format!("wire:{}", path.display())).unwrap();
    let (got, err) = read_all(&mut source).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.iter().map(|f| f.timing.frame_number).collect::<Vec<_>>(), vec![0, 1, 2, 3]);

    // A Y4M file through the same scheme.
    let y4m = dir.join("clip.y4m");
    let mut sink = registry.build_sink(&y4m.display().to_string()).unwrap();
    for n in 0..3 {
        sink.write(&test_frame(PixelFormat::I420, 64, 48, n)).await.unwrap();
    }
    sink.close().await.unwrap();
    let mut source = PipeSource::open(&y4m).unwrap();
    assert!(matches!(source, PipeSource::Y4m(_)));
    assert_eq!(read_all(&mut source).await.0.len(), 3);

    // Option errors teach.
    let e = registry.build_sink("wire:-?compresion=jpeg").err().unwrap().to_string();
    assert!(e.contains("unknown option 'compresion'") && e.contains("did you mean 'compression'"), "{e}");
    let e = registry.build_sink("wire:-?compression=vp9").err().unwrap().to_string();
    assert!(e.contains("unknown compression 'vp9'; known: none, jpeg, h264"), "{e}");
    let e = registry.build_sink("wire:-?quality=50").err().unwrap().to_string();
    assert!(e.contains("only apply with compression=jpeg or compression=h264"), "{e}");
    let e = registry.build_sink("tcp://127.0.0.1:0?queue=newest").err().unwrap().to_string();
    assert!(e.contains("unknown queue policy 'newest'"), "{e}");
    let e = registry.build_sink("tcp://127.0.0.1:0?bitrate=fast&compression=h264").err().unwrap().to_string();
    assert!(e.contains("option 'bitrate=fast' is not valid"), "{e}");
    let e = registry.build_source("tcp://127.0.0.1").err().unwrap().to_string();
    assert!(e.contains("no port"), "{e}");

    // A sink from a URI, and a source from a URI that connects to it.
    let sink = registry.build_sink("tcp://127.0.0.1:0?compression=h264&queue=block&token=t0k3n&bitrate=2M").unwrap();
    assert!(sink.describe().starts_with("tcp://127.0.0.1:"), "{}", sink.describe());
    let port = sink.describe().rsplit(':').next().unwrap().to_string();
    let source = registry.build_source(&format!("tcp://127.0.0.1:{port}?token=t0k3n&reconnect=off")).unwrap();
    assert!(source.info().live);
    assert!(source.info().description.contains("h264"), "{}", source.info().description);
    let e = registry.build_source(&format!("tcp://127.0.0.1:{port}?token=wrong")).err().unwrap().to_string();
    assert!(e.contains("authentication failed"), "{e}");
    drop(sink);
    let e = registry.build_source("tcp://127.0.0.1:1?timeout=300ms").err().unwrap().to_string();
    assert!(e.contains("gave up after") && e.contains("connecting to tcp://127.0.0.1:1"), "{e}");
}

#[tokio::test]
async fn a_closed_pipe_is_an_error_for_the_sink() {
    let (writer, reader) = tokio::io::duplex(1024);
    drop(reader);
    let mut sink = WireSink::new(writer, "closed", CompressOptions::default());
    let e = sink.write(&test_frame(PixelFormat::Gray8, 64, 64, 0)).await.unwrap_err().to_string();
    assert!(e.starts_with("writing wire:closed"), "{e}");
}
