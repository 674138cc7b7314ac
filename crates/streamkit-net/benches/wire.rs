//! Wire format throughput for one 1920x1080 RGBA frame (8.3 MB):
//!
//! * `encode` — the chunk head (what a sink does once per frame; the pixels
//!   are written from the frame, not copied, and their CRC32 is computed when
//!   the first consumer sends the chunk inline);
//! * `decode` — the payload copied into the decoder's pooled frame buffer in
//!   64 KiB reads (as a socket read does), CRC32 checked, frame returned;
//! * `encode+decode` — both, with the payload CRC32;
//! * `shared_memory` — what a same-host consumer costs instead: the frame
//!   copied into a ring slot, the slot reference chunk, the consumer taking
//!   the slot as its frame's memory and dropping it.
//!
//! ```sh
//! cargo bench -p streamkit-net --bench wire
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use streamkit_core::{Frame, PixelFormat};
use streamkit_net::wire::{Compression, Hello, WireDecoder, WireEvent};
use streamkit_net::{CompressOptions, FrameCompressor, FrameDecompressor};

fn frame() -> Frame {
    let mut f = Frame::new(PixelFormat::Rgba8Premul, 1920, 1080).unwrap();
    for (i, b) in f.data_mut().iter_mut().enumerate() {
        *b = (i * 31 / 7) as u8;
    }
    f.metadata.insert("source_id", "bench");
    f
}

/// Feeds `chunk` through the decoder in socket-sized reads and returns the frame.
fn decode_one(decoder: &mut WireDecoder, decompressor: &mut FrameDecompressor, chunk: &[u8]) -> Frame {
    let mut rest = chunk;
    loop {
        if let Some(event) = decoder.poll().unwrap() {
            let WireEvent::Frame(wf) = event else { panic!("expected a frame") };
            assert!(rest.is_empty());
            return decompressor.decompress(wf).unwrap().unwrap();
        }
        let buf = decoder.buffer();
        let n = buf.len().min(rest.len()).min(64 * 1024);
        buf[..n].copy_from_slice(&rest[..n]);
        decoder.advance(n);
        rest = &rest[n..];
    }
}

fn wire(c: &mut Criterion) {
    let frame = frame();
    let bytes = frame.data().len() as u64;
    let mut compressor = FrameCompressor::new(CompressOptions::default());
    let chunk = compressor.compress(&frame, false).unwrap().to_vec();
    let mut decoder = WireDecoder::new("bench");
    decoder.push(&Hello::one_way(Compression::None, None, None).encode());
    assert!(matches!(decoder.poll(), Ok(Some(WireEvent::Hello(_)))));
    let mut decompressor = FrameDecompressor::new();

    let mut group = c.benchmark_group("wire_1080p_rgba");
    group.sample_size(20).throughput(Throughput::Bytes(bytes));
    group.bench_function("encode", |b| b.iter(|| black_box(compressor.compress(black_box(&frame), false).unwrap())));
    group.bench_function("decode", |b| {
        b.iter(|| black_box(decode_one(&mut decoder, &mut decompressor, black_box(&chunk))));
    });
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            let encoded = compressor.compress(black_box(&frame), false).unwrap();
            // The three parts as a vectored write would hand them to the kernel.
            let mut received = None;
            for part in encoded.parts() {
                let mut rest = part;
                while !rest.is_empty() {
                    let buf = decoder.buffer();
                    let n = buf.len().min(rest.len()).min(64 * 1024);
                    buf[..n].copy_from_slice(&rest[..n]);
                    decoder.advance(n);
                    rest = &rest[n..];
                }
            }
            if let Ok(Some(WireEvent::Frame(wf))) = decoder.poll() {
                received = decompressor.decompress(wf).unwrap();
            }
            black_box(received.expect("one frame"))
        });
    });
    let mut ring = streamkit_net::shm::ShmRing::create(frame.data().len(), 4).unwrap();
    let view = streamkit_net::shm::ShmView::open(ring.offer()).unwrap();
    let header = streamkit_net::wire::FrameHeader::raw(&frame);
    group.bench_function("shared_memory", |b| {
        b.iter(|| {
            let slot = ring.put(black_box(frame.data())).expect("a free slot");
            black_box(streamkit_net::wire::shared_frame_chunk(&header, slot).unwrap());
            black_box(view.take(slot, bytes as u32).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
