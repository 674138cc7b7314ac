//! Packetise + depacketise, in memory (no sockets): a 1080p YCbCr 4:2:2
//! frame over RFC 4175 and an 8 Mb/s H.264 access unit over RFC 6184, each
//! through the whole receive path (RTP parse, reorder buffer, depacketiser).
//! Throughput is in bytes of picture; the packet count per iteration is
//! printed, so packets/s = packets × iterations/s.
//!
//! `cargo bench -p streamkit-rtp --bench rtp` (about 20 s).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamkit_rtp::h264::H264Packetizer;
use streamkit_rtp::packet::{PacketBatch, RtpSender};
use streamkit_rtp::raw::{RawFormat, RawPacketizer};
use streamkit_rtp::receiver::{Received, ReceiverConfig, RtpReceiver, StreamKind};

const MTU: usize = 1200;

fn raw_1080p(c: &mut Criterion) {
    let format = RawFormat::new(1920, 1080).unwrap();
    let frame: Vec<u8> = (0..format.frame_bytes()).map(|i| (i * 7 % 251) as u8).collect();
    let mut packetizer = RawPacketizer::new(RtpSender::new(1, 96, 0), format, MTU);
    let mut receiver = RtpReceiver::new(ReceiverConfig::new(StreamKind::Raw(format)));
    let mut batch = PacketBatch::new();
    let mut timestamp = 1u32;
    packetizer.packetize(&frame, format.stride(), timestamp, &mut batch);
    eprintln!("raw 1080p: {} packets of at most {MTU} bytes per frame", batch.len());

    let mut group = c.benchmark_group("rfc4175_1080p");
    group.sample_size(20).measurement_time(Duration::from_secs(4)).throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("packetize", |b| {
        b.iter(|| {
            batch.clear();
            timestamp = timestamp.wrapping_add(3000);
            packetizer.packetize(black_box(&frame), format.stride(), timestamp, &mut batch)
        })
    });
    group.bench_function("packetize+depacketize", |b| {
        b.iter(|| {
            batch.clear();
            timestamp = timestamp.wrapping_add(3000);
            packetizer.packetize(black_box(&frame), format.stride(), timestamp, &mut batch);
            for packet in batch.iter() {
                receiver.handle_packet(packet, 0);
            }
            match receiver.poll_output() {
                Some(Received::Frame(f)) => assert!(f.complete),
                other => panic!("expected a frame, got {other:?}"),
            }
        })
    });
    group.finish();
}

fn h264_access_unit(c: &mut Criterion) {
    // 8 Mb/s at 30 fps: 33,333 bytes per access unit, as 4 slices.
    let mut au = Vec::new();
    for slice in 0..4u32 {
        au.extend_from_slice(&[0, 0, 0, 1, 0x41]);
        au.extend((0..8_328u32).map(|i| ((i * 13 + slice) % 255) as u8 + 1));
    }
    let mut packetizer = H264Packetizer::new(RtpSender::new(1, 96, 0), MTU);
    let mut receiver = RtpReceiver::new(ReceiverConfig::new(StreamKind::H264 { parameter_sets: vec![] }));
    let mut batch = PacketBatch::new();
    packetizer.packetize(&au, 0, &mut batch);
    eprintln!("h264 8 Mb/s access unit ({} bytes): {} packets", au.len(), batch.len());
    // The depacketiser waits for a keyframe first: give it one.
    let mut idr = au.clone();
    idr[4] = 0x65;
    batch.clear();
    packetizer.packetize(&idr, 0, &mut batch);
    batch.iter().for_each(|p| receiver.handle_packet(p, 0));
    while receiver.poll_output().is_some() {}

    let mut group = c.benchmark_group("rfc6184_8mbps_au");
    group.sample_size(50).measurement_time(Duration::from_secs(3)).throughput(Throughput::Bytes(au.len() as u64));
    let mut timestamp = 0u32;
    group.bench_function("packetize+depacketize", |b| {
        b.iter(|| {
            batch.clear();
            timestamp = timestamp.wrapping_add(3000);
            packetizer.packetize(black_box(&au), timestamp, &mut batch);
            for packet in batch.iter() {
                receiver.handle_packet(packet, 0);
            }
            match receiver.poll_output() {
                Some(Received::AccessUnit(a)) => black_box(a.data.len()),
                other => panic!("expected an access unit, got {other:?}"),
            }
        })
    });
    group.finish();
}

criterion_group!(benches, raw_1080p, h264_access_unit);
criterion_main!(benches);
