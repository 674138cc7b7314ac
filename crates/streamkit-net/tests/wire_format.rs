//! The wire format without I/O: every field round-trips, every malformed
//! input gets a precise error at the right byte, and no input — however
//! mangled — panics, allocates past the limits or takes long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamkit_core::frame::{Metadata, MAX_DIMENSION};
use streamkit_core::{Error, Fps, Frame, PixelFormat, TimeBase, Timing};
use streamkit_net::codec::{CompressOptions, FrameCompressor, FrameDecompressor};
use streamkit_net::wire::{
    self, sniff, Compression, ErrorKind, FrameHeader, Hello, Join, Sniffed, WireDecoder, WireError, WireEvent,
    WireFrame, WireLimits, CHUNK_PREFIX_LEN, HELLO_LEN, MAX_CHUNK_HEADER, MAX_METADATA_ENTRIES,
};

fn frame(format: PixelFormat, w: u32, h: u32, n: u64) -> Frame {
    let mut f = Frame::new(format, w, h).unwrap();
    for (i, b) in f.data_mut().iter_mut().enumerate() {
        *b = (i as u64 * 7 + n * 13) as u8;
    }
    f.timing = Timing {
        pts: -5 + n as i64 * 1001,
        time_base: TimeBase::new(1, 30000),
        capture_time_ns: 1_700_000_000_123_456_789 + n,
        ptp_time_ns: Some(1_234_567_890_987_654_321 + n),
        frame_number: 1_000_000_000_000 + n,
        sync_source: Some(Arc::from("ptp:0:001122.fffe.334455")),
        drift_ns: -42_000 - n as i64,
    };
    f.metadata.insert("source_id", "phone_cam_0");
    f.metadata.insert("ptp_time", "1234567890.123");
    f.metadata.insert("ünïcödé ключ", "値 ✓");
    f.metadata.insert("empty", "");
    f
}

fn hello() -> Vec<u8> {
    Hello::one_way(Compression::None, Some(Fps::new(30000, 1001)), Some((8, 4))).encode().to_vec()
}

fn stream_of(frames: &[Frame]) -> Vec<u8> {
    let mut bytes = hello();
    for f in frames {
        bytes.extend(wire::encode_frame_chunk(&FrameHeader::raw(f), f.data()).unwrap());
    }
    bytes.extend(wire::end_chunk());
    bytes
}

/// Every event the decoder gives for `bytes` pushed in pieces of `step`, and how it ended.
fn decode(bytes: &[u8], step: usize) -> (Vec<WireEvent>, Result<bool, WireError>) {
    let mut decoder = WireDecoder::new("test");
    let mut events = Vec::new();
    for piece in bytes.chunks(step.max(1)) {
        decoder.push(piece);
        loop {
            match decoder.poll() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return (events, Err(e)),
            }
        }
    }
    let end = decoder.finish();
    (events, end)
}

fn only_error(bytes: &[u8]) -> WireError {
    let (_, end) = decode(bytes, bytes.len());
    end.expect_err("the input is malformed")
}

fn frames_of(events: Vec<WireEvent>) -> Vec<WireFrame> {
    events
        .into_iter()
        .filter_map(|e| match e {
            WireEvent::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn every_field_round_trips_in_any_split() {
    let frames: Vec<Frame> = PixelFormat::ALL.iter().enumerate().map(|(n, f)| frame(*f, 8, 4, n as u64)).collect();
    let mut plain = frame(PixelFormat::Gray8, 3, 5, 9);
    plain.timing.ptp_time_ns = None;
    plain.timing.sync_source = None;
    plain.metadata = Metadata::default();
    let mut empty_sync = frame(PixelFormat::Gray8, 2, 2, 10);
    empty_sync.timing.sync_source = Some(Arc::from(""));
    empty_sync.timing.ptp_time_ns = Some(0);
    let all: Vec<Frame> = frames.into_iter().chain([plain, empty_sync]).collect();
    let bytes = stream_of(&all);

    for step in [bytes.len(), 1, 3, 7, 64, 4096] {
        let (events, end) = decode(&bytes, step);
        assert_eq!(end, Ok(true), "ends with END (step {step})");
        let WireEvent::Hello(h) = &events[0] else { panic!("HELLO first") };
        assert_eq!((h.fps, h.size, h.compression), (Some(Fps::new(30000, 1001)), Some((8, 4)), Compression::None));
        assert!(!h.handshake && !h.auth_required);
        assert!(matches!(events.last(), Some(WireEvent::End)));
        let received = frames_of(events);
        assert_eq!(received.len(), all.len());
        let mut decompressor = FrameDecompressor::new();
        for (sent, got) in all.iter().zip(received) {
            assert_eq!(
                got.header,
                FrameHeader::raw(sent),
                "header of frame {} (step {step})",
                sent.timing.frame_number
            );
            assert!(got.header.keyframe);
            let f = decompressor.decompress(got).unwrap().unwrap();
            assert_eq!(f.timing, sent.timing);
            assert_eq!(f.metadata, sent.metadata);
            assert_eq!((f.format(), f.size()), (sent.format(), sent.size()));
            assert_eq!(f.data(), sent.data());
        }
    }
}

#[test]
fn padded_frames_travel_packed() {
    let packed = frame(PixelFormat::I420, 8, 4, 0);
    // The same pixels with 8 bytes of padding per row.
    let layout = PixelFormat::I420.packed_layout(16, 4);
    let buffer = streamkit_core::frame::Buffer::zeroed(layout.byte_len());
    let mut wide = Frame::from_buffer(PixelFormat::I420, 8, 4, layout, buffer).unwrap();
    for (i, (dst, stride)) in wide.planes_mut().into_iter().enumerate() {
        let (src, src_stride) = packed.plane(i);
        for (d, s) in dst.chunks_mut(stride).zip(src.chunks(src_stride)) {
            d[..src_stride].copy_from_slice(s);
        }
    }
    wide.timing = packed.timing.clone();
    let chunk = FrameCompressor::new(CompressOptions::default()).compress(&wide, false).unwrap();
    let mut bytes = hello();
    bytes.extend(chunk.to_vec());
    let (events, _) = decode(&bytes, bytes.len());
    let got = FrameDecompressor::new().decompress(frames_of(events).remove(0)).unwrap().unwrap();
    assert_eq!(got.data(), packed.data());
}

#[test]
fn raw_payloads_land_in_pooled_frame_memory_without_a_copy() {
    let frames: Vec<Frame> = (0..4).map(|n| frame(PixelFormat::Rgba8Premul, 64, 32, n)).collect();
    let bytes = stream_of(&frames);
    let mut decoder = WireDecoder::new("zero-copy");
    let mut decompressor = FrameDecompressor::new();
    let mut input = &bytes[..];
    let mut pointers = Vec::new();
    while !input.is_empty() {
        // As a socket reader does: fill the decoder's own buffer.
        let buf = decoder.buffer();
        let n = buf.len().min(input.len()).min(1000);
        buf[..n].copy_from_slice(&input[..n]);
        decoder.advance(n);
        input = &input[n..];
        while let Some(event) = decoder.poll().unwrap() {
            if let WireEvent::Frame(wf) = event {
                let payload_ptr = wf.payload.as_slice().as_ptr() as usize;
                let f = decompressor.decompress(wf).unwrap().unwrap();
                assert_eq!(f.data().as_ptr() as usize, payload_ptr, "the payload buffer is the frame's memory");
                assert_eq!(f.data(), frames[pointers.len()].data());
                pointers.push(payload_ptr);
                // `f` drops here: its buffer goes back to the decoder's pool.
            }
        }
    }
    assert!(decoder.ended());
    // The next chunk may start (and take a buffer) in the same read that ends
    // this one, so two buffers take turns; none is allocated per frame.
    let mut distinct = pointers.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() <= 2, "pooled buffers are reused: {pointers:x?}");
}

#[test]
fn sniffing_tells_wire_from_y4m() {
    assert_eq!(sniff(&hello()), Sniffed::Wire);
    assert_eq!(sniff(b"YUV4MPEG2 W64 H48"), Sniffed::Y4m);
    assert_eq!(sniff(b"YUV4"), Sniffed::NeedMore);
    assert_eq!(sniff(&hello()[..3]), Sniffed::NeedMore);
    assert_eq!(sniff(b""), Sniffed::NeedMore);
    assert_eq!(sniff(b"RIFF"), Sniffed::Unknown);
    // The decoder names a Y4M stream as such.
    let e = only_error(b"YUV4MPEG2 W64 H48 F30:1\nFRAME\n");
    assert_eq!((e.offset, &e.kind), (0, &ErrorKind::Y4m));
    assert!(e.to_string().contains("Y4M (YUV4MPEG2) stream, not the streamkit wire format"), "{e}");
}

#[test]
fn wrong_version_is_named_for_both_peers() {
    let mut bytes = hello();
    bytes[8..10].copy_from_slice(&2u16.to_be_bytes());
    let e = only_error(&bytes[..10]); // found as soon as the version arrives
    assert_eq!((e.offset, &e.kind), (8, &ErrorKind::UnsupportedVersion { found: 2 }));
    let core = e.into_error("wire tcp://peer:9000");
    assert!(matches!(core, Error::Unsupported(_)));
    assert_eq!(core.to_string(), "unsupported: wire tcp://peer:9000: unsupported wire version 2 (this build speaks 1)");

    let mut join = Join { capabilities: 7, nonce: [1; 32], response: [2; 32], shared_memory: false }.encode();
    assert_eq!(Join::parse(&join).unwrap().unwrap().capabilities, 7);
    join[8..10].copy_from_slice(&0u16.to_be_bytes());
    let e = Join::parse(&join[..12]).unwrap_err();
    assert!(e.to_string().contains("unsupported wire version 0 (this build speaks 1)"), "{e}");
    join[8..10].copy_from_slice(&1u16.to_be_bytes());
    join[20] ^= 1;
    let e = Join::parse(&join).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Checksum { what: "join", .. }) && e.offset == 80, "{e}");
}

#[test]
fn bad_magic_and_bad_header_checksum() {
    let e = only_error(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("expected the stream header magic, found \"GET / HT\""), "{e}");

    let mut bytes = hello();
    bytes[20] ^= 0x40;
    let e = only_error(&bytes);
    assert!(matches!(e.kind, ErrorKind::Checksum { what: "stream header", .. }) && e.offset == 64, "{e}");

    let f = frame(PixelFormat::Gray8, 4, 2, 0);
    let mut bytes = stream_of(std::slice::from_ref(&f));
    let chunk = HELLO_LEN;
    bytes[chunk] = b'X';
    let e = only_error(&bytes);
    assert_eq!(e.offset, chunk as u64);
    assert!(e.to_string().contains("expected the chunk magic, found \"XKCH\""), "{e}");

    // One flipped bit in the frame number: the header CRC catches it.
    let mut bytes = stream_of(&[f]);
    bytes[chunk + CHUNK_PREFIX_LEN + 3] ^= 0x10;
    let header_len = u32::from_be_bytes(bytes[chunk + 8..chunk + 12].try_into().unwrap()) as usize;
    let e = only_error(&bytes);
    assert_eq!(e.offset, (chunk + CHUNK_PREFIX_LEN + header_len) as u64, "{e}");
    assert!(e
        .to_string()
        .starts_with(&format!("malformed input at byte {}: chunk header checksum mismatch", e.offset)));
}

#[test]
fn bad_payload_checksum() {
    let f = frame(PixelFormat::Gray8, 4, 2, 0);
    let mut bytes = stream_of(&[f.clone(), f]);
    let chunk_len = (bytes.len() - HELLO_LEN - wire::end_chunk().len()) / 2;
    let payload_at = HELLO_LEN + chunk_len - 4 - 8;
    bytes[payload_at + 3] ^= 1;
    let (events, end) = decode(&bytes, 5);
    assert_eq!(frames_of(events).len(), 0, "the damaged frame is not delivered");
    let e = end.unwrap_err();
    assert_eq!(e.offset, (HELLO_LEN + chunk_len - 4) as u64);
    assert!(matches!(e.kind, ErrorKind::Checksum { what: "payload", .. }), "{e}");
}

#[test]
fn truncated_chunks_say_where_and_how_much_is_missing() {
    let f = frame(PixelFormat::Rgba8Premul, 8, 4, 0);
    let bytes = stream_of(&[f]);
    let chunk_len = bytes.len() - HELLO_LEN - wire::end_chunk().len();
    let head_len = chunk_len - 128 - 4;
    // Inside the payload.
    let cut = HELLO_LEN + head_len + 100;
    let e = only_error(&bytes[..cut]);
    assert_eq!(e.offset, cut as u64);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: format!("the payload of frame 1000000000000 (chunk at byte {HELLO_LEN})"),
            missing: 32
        }
    );
    // Inside the chunk prefix.
    let e = only_error(&bytes[..HELLO_LEN + 5]);
    assert_eq!(e.kind, ErrorKind::Truncated { what: format!("the chunk at byte {HELLO_LEN}"), missing: 11 });
    // Inside the stream header.
    let e = only_error(&bytes[..30]);
    assert_eq!((e.offset, e.kind), (30, ErrorKind::Truncated { what: "the stream header".into(), missing: 38 }));
    // Empty input.
    assert!(only_error(b"").to_string().contains("empty input"));
    // At a chunk boundary without END: not an error, but not a clean end either.
    let (events, end) = decode(&bytes[..HELLO_LEN + chunk_len], 1000);
    assert_eq!((frames_of(events).len(), end), (1, Ok(false)));
}

/// A chunk with the given prefix fields and header bytes, and valid checksums.
fn chunk(kind: u8, flags: u8, header: &[u8], payload_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = wire::CHUNK_MAGIC.to_vec();
    out.extend([kind, flags, 0, 0]);
    out.extend((header.len() as u32).to_be_bytes());
    out.extend(payload_len.to_be_bytes());
    out.extend(header);
    out.extend(crc32fast::hash(&out).to_be_bytes());
    out.extend(payload);
    out.extend(crc32fast::hash(payload).to_be_bytes());
    out
}

/// A valid FRAME header body, to be edited by tests.
fn frame_header(f: &Frame) -> (u8, Vec<u8>) {
    let c = wire::encode_frame_chunk(&FrameHeader::raw(f), f.data()).unwrap();
    let header_len = u32::from_be_bytes(c[8..12].try_into().unwrap()) as usize;
    (c[5], c[CHUNK_PREFIX_LEN..CHUNK_PREFIX_LEN + header_len].to_vec())
}

#[test]
fn oversized_lengths_are_refused_before_allocating() {
    // Only the 16-byte prefix is there: the limits are checked on it alone.
    let mut prefix = wire::CHUNK_MAGIC.to_vec();
    prefix.extend([1, 0, 0, 0]);
    prefix.extend(60u32.to_be_bytes());
    prefix.extend(u32::MAX.to_be_bytes());
    let e = only_error(&[hello(), prefix.clone()].concat());
    assert_eq!(e.offset, HELLO_LEN as u64 + 12);
    assert_eq!(e.message(), "payload length 4294967295 exceeds the limit of 67108864");

    let mut prefix2 = prefix.clone();
    prefix2[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = only_error(&[hello(), prefix2].concat());
    assert_eq!(e.offset, HELLO_LEN as u64 + 8);
    assert_eq!(e.message(), format!("chunk header length 4294967295 exceeds the limit of {MAX_CHUNK_HEADER}"));

    // A configured limit is honoured too.
    let f = frame(PixelFormat::Rgba8Premul, 64, 64, 0);
    let bytes = stream_of(&[f]);
    let mut decoder = WireDecoder::with_limits("small", WireLimits { max_payload: 1000 });
    decoder.push(&bytes);
    assert!(matches!(decoder.poll(), Ok(Some(WireEvent::Hello(_)))));
    let e = decoder.poll().unwrap_err();
    assert_eq!(e.message(), "payload length 16384 exceeds the limit of 1000");
}

#[test]
fn header_fields_beyond_their_limits() {
    let f = frame(PixelFormat::Gray8, 4, 2, 0);
    let (flags, header) = frame_header(&f);
    let at = (HELLO_LEN + CHUNK_PREFIX_LEN) as u64;
    let run = |header: &[u8], payload_len: u32, payload: &[u8]| {
        only_error(&[hello(), chunk(1, flags, header, payload_len, payload)].concat())
    };

    // Width beyond MAX_DIMENSION (fixed part: width at 52, height at 56).
    let mut h = header.clone();
    h[52..56].copy_from_slice(&(MAX_DIMENSION + 1).to_be_bytes());
    let e = run(&h, 8, f.data());
    assert_eq!(e.offset, at + 52);
    assert!(e.message().contains("frame size 16385x2 is out of range"), "{e}");

    // A raw payload whose length does not match the size.
    let e = run(&header, 7, &f.data()[..7]);
    assert_eq!(e.offset, HELLO_LEN as u64 + 12);
    assert!(e.message().contains("a raw gray8 4x2 frame has 8 bytes, but the chunk says 7"), "{e}");

    // Unknown pixel format and compression codes.
    let mut h = header.clone();
    h[48] = 99;
    assert!(run(&h, 8, f.data()).message().contains("unknown pixel format code 99"));
    let mut h = header.clone();
    h[49] = 7;
    let e = run(&h, 8, f.data());
    assert_eq!((e.offset, e.message()), (at + 49, "unknown compression code 7".to_string()));

    // A zero time base.
    let mut h = header.clone();
    h[20..24].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(run(&h, 8, f.data()).offset, at + 16);

    // More metadata entries than allowed (the count sits after the sync source).
    let sync_len = u16::from_be_bytes([header[60], header[61]]) as usize;
    let count_at = 62 + sync_len;
    let mut h = header.clone();
    h[count_at..count_at + 2].copy_from_slice(&(MAX_METADATA_ENTRIES as u16 + 1).to_be_bytes());
    let e = run(&h, 8, f.data());
    assert_eq!(e.offset, at + count_at as u64);
    assert_eq!(e.message(), "metadata entry count 65 exceeds the limit of 64");

    // A count that promises more entries than the header holds.
    let mut h = header.clone();
    h[count_at..count_at + 2].copy_from_slice(&5u16.to_be_bytes());
    assert!(run(&h, 8, f.data()).message().contains("the chunk header ends inside the metadata key length"));

    // Metadata that is not UTF-8.
    let mut h = header.clone();
    let key_at = count_at + 2 + 2;
    h[key_at] = 0xff;
    let e = run(&h, 8, f.data());
    assert_eq!(e.offset, at + key_at as u64);
    assert_eq!(e.message(), "the metadata key is not UTF-8");

    // Trailing bytes after the metadata.
    let mut h = header.clone();
    h.push(0);
    assert_eq!(run(&h, 8, f.data()).message(), "1 unexpected bytes after the metadata");

    // An unknown chunk kind (with a valid checksum) and bytes after END.
    let e = only_error(&[hello(), chunk(9, 0, &[], 0, &[])].concat());
    assert_eq!((e.offset, e.message()), (HELLO_LEN as u64 + 4, "unknown chunk kind 9".to_string()));
    let e = only_error(&[hello(), wire::end_chunk(), b"more".to_vec()].concat());
    assert_eq!(e.message(), "bytes after the END chunk");
}

#[test]
fn metadata_and_sizes_are_bounded_when_sending_too() {
    let mut f = frame(PixelFormat::Gray8, 4, 2, 0);
    for i in 0..MAX_METADATA_ENTRIES {
        f.metadata.insert(format!("k{i}"), "v");
    }
    let e = wire::encode_frame_chunk(&FrameHeader::raw(&f), f.data()).unwrap_err().to_string();
    assert!(e.contains("metadata entries exceed the wire limit of 64"), "{e}");
    let mut f = frame(PixelFormat::Gray8, 4, 2, 0);
    f.metadata.insert("big", "x".repeat(70_000));
    let e = wire::encode_frame_chunk(&FrameHeader::raw(&f), f.data()).unwrap_err().to_string();
    assert!(e.contains("bytes of metadata exceed the wire limit of 65536"), "{e}");
    let mut f = frame(PixelFormat::Gray8, 4, 2, 0);
    f.timing.sync_source = Some(Arc::from("s".repeat(300)));
    assert!(wire::encode_frame_chunk(&FrameHeader::raw(&f), f.data()).unwrap_err().to_string().contains("sync_source"));
}

#[test]
fn control_chunks_round_trip() {
    use streamkit_net::wire::CloseCode;
    let mut bytes = hello();
    bytes.extend(wire::welcome_chunk(&[7; 32]));
    bytes.extend(wire::error_chunk(CloseCode::AuthFailed, "authentication failed: wrong token"));
    bytes.extend(wire::error_chunk(CloseCode::Other(999), &"é".repeat(1000)));
    bytes.extend(wire::end_chunk());
    for step in [1, 2, 5, 1000] {
        let (events, end) = decode(&bytes, step);
        assert_eq!(end, Ok(true));
        assert!(matches!(events[1], WireEvent::Welcome { proof } if proof == [7; 32]));
        assert!(
            matches!(&events[2], WireEvent::Error { code: CloseCode::AuthFailed, reason } if reason == "authentication failed: wrong token")
        );
        let WireEvent::Error { code, reason } = &events[3] else { panic!() };
        assert_eq!((*code, reason.len()), (CloseCode::Other(999), 1024), "reasons are cut at a character boundary");
        assert!(matches!(events[4], WireEvent::End));
    }
}

/// Deterministic pseudo-random numbers (xorshift), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let mut jpeg_like = hello();
    let f = frame(PixelFormat::Rgba8Premul, 16, 8, 3);
    let jpeg = FrameCompressor::new(CompressOptions::new(Compression::Jpeg)).compress(&f, false).unwrap();
    jpeg_like[12..16].copy_from_slice(&Compression::Jpeg.bit().to_be_bytes());
    let crc = crc32fast::hash(&jpeg_like[..64]);
    jpeg_like[64..68].copy_from_slice(&crc.to_be_bytes());
    jpeg_like.extend(jpeg.to_vec());
    jpeg_like.extend(wire::end_chunk());
    vec![
        stream_of(&[frame(PixelFormat::Gray8, 4, 2, 0), frame(PixelFormat::I420, 8, 4, 1)]),
        stream_of(&[frame(PixelFormat::Rgba8Premul, 6, 3, 2)]),
        [hello(), wire::welcome_chunk(&[1; 32]), wire::error_chunk(wire::CloseCode::Timeout, "slow")].concat(),
        jpeg_like,
        shared_stream(),
    ]
}

/// Feeds `input` in a few odd-sized pieces, polling everything; returns the
/// largest payload it produced. Panics propagate (that is the test).
fn run_decoder(input: &[u8], limits: WireLimits, rng: &mut Rng) -> usize {
    let mut decoder = WireDecoder::with_limits("mutant", limits);
    let mut decompressor = FrameDecompressor::new();
    let mut largest = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(97));
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        while let Ok(Some(event)) = decoder.poll() {
            if let WireEvent::Frame(f) = event {
                largest = largest.max(f.payload.len());
                let _ = decompressor.decompress(f);
            }
        }
    }
    let _ = decoder.finish();
    largest
}

#[test]
fn mutated_streams_never_panic_stay_bounded_and_finish_fast() {
    let limits = WireLimits { max_payload: 4096 };
    let started = Instant::now();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut cases = 0;
    for original in corpus() {
        // Every truncation.
        for cut in 0..original.len() {
            run_decoder(&original[..cut], limits, &mut rng);
            cases += 1;
        }
        // Every single bit flip in the first 400 bytes, and random ones after.
        for bit in 0..original.len().min(400) * 8 {
            let mut m = original.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(run_decoder(&m, limits, &mut rng) <= 4096);
            cases += 1;
        }
        // Length fields (and every other aligned word) set to extremes.
        for at in (0..original.len().saturating_sub(4)).step_by(2) {
            for value in [u32::MAX, 0, 0x8000_0000, 4097, 1] {
                let mut m = original.clone();
                m[at..at + 4].copy_from_slice(&value.to_be_bytes());
                assert!(run_decoder(&m, limits, &mut rng) <= 4096);
                cases += 1;
            }
        }
        // Random multi-byte damage, insertions and deletions.
        for _ in 0..300 {
            let mut m = original.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(m.len());
                match rng.below(3) {
                    0 => m[at] = rng.next() as u8,
                    1 => m.insert(at, rng.next() as u8),
                    _ => {
                        m.remove(at);
                    }
                }
            }
            assert!(run_decoder(&m, limits, &mut rng) <= 4096);
            cases += 1;
        }
    }
    let elapsed = started.elapsed();
    eprintln!("{cases} mutated inputs decoded in {elapsed:?}");
    assert!(cases > 10_000, "{cases} cases");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

fn offer() -> wire::SharedMemoryOffer {
    wire::SharedMemoryOffer { pid: 4242, fd: 17, slots: 4, slot_len: 8192, id: [9; 32] }
}

/// HELLO, a ring, a raw frame whose pixels wait in slot 3, END.
fn shared_stream() -> Vec<u8> {
    let f = frame(PixelFormat::I420, 8, 4, 5);
    let mut bytes = hello();
    bytes.extend(wire::shared_memory_chunk(&offer()));
    bytes.extend(wire::shared_frame_chunk(&FrameHeader::raw(&f), 3).unwrap());
    bytes.extend(wire::end_chunk());
    bytes
}

#[test]
fn shared_memory_chunks_and_slot_references_round_trip() {
    for step in [1, 7, usize::MAX] {
        let (events, end) = decode(&shared_stream(), step);
        assert_eq!(end, Ok(true));
        assert!(matches!(&events[1], WireEvent::SharedMemory(o) if *o == offer()), "{events:?}");
        let WireEvent::Frame(f) = &events[2] else { panic!("{events:?}") };
        assert_eq!(f.shared, Some(wire::SharedSlot { slot: 3, len: 48 }));
        assert!(f.payload.is_empty(), "the pixels are not in the chunk");
        assert_eq!(f.header, FrameHeader::raw(&frame(PixelFormat::I420, 8, 4, 5)));
    }
    let join = Join { capabilities: 7, nonce: [1; 32], response: [2; 32], shared_memory: true };
    assert_eq!(Join::parse(&join.encode()).unwrap(), Some(join));
}

#[test]
fn malformed_shared_memory_chunks_get_precise_errors() {
    let at = HELLO_LEN as u64; // where the chunk after HELLO starts
    let prefix = CHUNK_PREFIX_LEN as u64;
    let with = |chunk: Vec<u8>| [hello(), chunk].concat();
    let mut header = wire::shared_memory_chunk(&offer())[CHUNK_PREFIX_LEN..CHUNK_PREFIX_LEN + 48].to_vec();

    header[8..12].copy_from_slice(&64u32.to_be_bytes());
    let e = only_error(&with(chunk(5, 0, &header, 0, &[])));
    assert_eq!(
        e.to_string(),
        format!("malformed input at byte {}: a shared-memory ring of 64 slots (1..=63)", at + prefix + 8)
    );

    header[8..12].copy_from_slice(&4u32.to_be_bytes());
    header[12..16].copy_from_slice(&1000u32.to_be_bytes());
    let e = only_error(&with(chunk(5, 0, &header, 0, &[])));
    assert!(e.to_string().contains("a shared-memory slot of 1000 bytes (a multiple of 4096"), "{e}");
    // A slot bigger than any payload this receiver accepts (64 MiB by default).
    header[12..16].copy_from_slice(&(65u32 << 20).to_be_bytes());
    let e = only_error(&with(chunk(5, 0, &header, 0, &[])));
    assert!(
        e.to_string().ends_with("a shared-memory slot of 68157440 bytes (a multiple of 4096, at most 67108864)"),
        "{e}"
    );

    let e = only_error(&with(chunk(5, 0, &header[..40], 0, &[])));
    assert!(e.to_string().ends_with("a SHARED_MEMORY header has 40 bytes, not 48"), "{e}");

    // A slot reference whose length disagrees with the frame's size.
    let f = frame(PixelFormat::Gray8, 4, 2, 0);
    let (flags, head) = frame_header(&f);
    let mut payload = 3u32.to_be_bytes().to_vec();
    payload.extend(9u32.to_be_bytes());
    let e = only_error(&with(chunk(1, flags | 8, &head, 8, &payload)));
    assert!(
        e.to_string()
            .contains(&format!("byte {at}: a raw gray8 4x2 frame has 8 bytes, but its shared-memory slot says 9")),
        "{e}"
    );

    // The slot reference is always 8 bytes.
    let e = only_error(&with(chunk(1, flags | 8, &head, 9, &[0; 9])));
    assert!(e.to_string().contains("a shared-memory frame's payload is 8 bytes (slot, length), not 9"), "{e}");

    // Only raw pixels travel in shared memory.
    let jpeg = FrameHeader { compression: Compression::Jpeg, format: PixelFormat::Rgba8Premul, ..FrameHeader::raw(&f) };
    assert!(wire::shared_frame_chunk(&jpeg, 0)
        .unwrap_err()
        .to_string()
        .contains("a jpeg frame cannot travel in shared memory"));
    let jpeg_head = wire::frame_chunk_head(&jpeg, 100).unwrap();
    let header_len = u32::from_be_bytes(jpeg_head[8..12].try_into().unwrap()) as usize;
    let e = only_error(&with(chunk(
        1,
        jpeg_head[5] | 8,
        &jpeg_head[CHUNK_PREFIX_LEN..CHUNK_PREFIX_LEN + header_len],
        8,
        &[0; 8],
    )));
    assert!(e.to_string().contains("a jpeg frame cannot travel in shared memory"), "{e}");
}
