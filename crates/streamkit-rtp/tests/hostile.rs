//! Hostile and broken input through the whole receive path (RTP parse,
//! reorder buffer, depacketisers), deterministic and fast:
//!
//! * named cases: truncated headers, bad versions, FU-A without a start,
//!   RFC 4175 segments beyond the frame — counted, ignored, no panic;
//! * loss: packets dropped on purpose are counted, their frame is dropped
//!   (H.264) or flagged (raw), and H.264 recovers at the next keyframe;
//! * a mutation run: valid streams with bits flipped, lengths changed,
//!   bytes cut or added, tens of thousands of times (the same inputs every
//!   run, well under 5 s). Nothing may panic (slice indexing would, if a
//!   write left the frame), and every output keeps its bounds.

use streamkit_rtp::h264::H264Packetizer;
use streamkit_rtp::packet::{PacketBatch, RtpHeader, RtpSender};
use streamkit_rtp::raw::{RawFormat, RawPacketizer};
use streamkit_rtp::receiver::{Received, ReceiverConfig, RtpReceiver, StreamKind};

/// xorshift64*: the same "random" inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn h264_stream(frames: usize) -> (Vec<Vec<u8>>, PacketBatch) {
    let mut aus = Vec::new();
    let mut packetizer = H264Packetizer::new(RtpSender::new(0x5151, 96, 65_000), 1200);
    let mut batch = PacketBatch::new();
    for i in 0..frames {
        let mut au = Vec::new();
        if i % 10 == 0 {
            au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0x8c]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        }
        au.extend_from_slice(&[0, 0, 0, 1, if i % 10 == 0 { 0x65 } else { 0x41 }, 0x88]);
        au.extend((0..(500 + 700 * (i % 4))).map(|k| ((k * 7 + i) % 251) as u8 + 1));
        packetizer.packetize(&au, (i * 3000) as u32, &mut batch);
        aus.push(au);
    }
    (aus, batch)
}

fn raw_stream(format: RawFormat, frames: usize) -> PacketBatch {
    let mut packetizer = RawPacketizer::new(RtpSender::new(0x4175, 96, 65_500), format, 400);
    let mut batch = PacketBatch::new();
    for i in 0..frames {
        let picture: Vec<u8> = (0..format.frame_bytes()).map(|k| (k + i) as u8).collect();
        packetizer.packetize(&picture, format.stride(), (i * 3000) as u32 + 1, &mut batch);
    }
    batch
}

fn h264_receiver() -> RtpReceiver {
    let mut config = ReceiverConfig::new(StreamKind::H264 { parameter_sets: vec![] });
    config.reorder_window = 8;
    RtpReceiver::new(config)
}

fn access_units(receiver: &mut RtpReceiver) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| receiver.poll_output())
        .map(|o| match o {
            Received::AccessUnit(au) => au.data,
            Received::Frame(_) => panic!("H.264 expected"),
        })
        .collect()
}

#[test]
fn named_hostile_packets_are_counted_and_ignored() {
    let (aus, batch) = h264_stream(10);
    let mut r = h264_receiver();
    r.handle_packet(batch.get(0).unwrap(), 0); // locks SSRC and payload type
    let valid = batch.get(1).unwrap().to_vec();
    let mut bad_version = valid.clone();
    bad_version[0] = 0x40;
    let mut fu_without_start = valid.clone();
    fu_without_start[12] = 0x7c; // FU-A
    fu_without_start[13] = 0x05; // neither start nor end
    fu_without_start[3] = fu_without_start[3].wrapping_add(100); // a sequence of its own
    let hostile: Vec<Vec<u8>> = vec![
        vec![],
        valid[..5].to_vec(),  // truncated header
        valid[..11].to_vec(), // one byte short of a header
        bad_version,
        vec![0x8f; 20], // 15 CSRCs that are not there
        vec![0xff; 1500],
    ];
    for (i, packet) in hostile.iter().enumerate() {
        r.handle_packet(packet, 1 + i as u64);
    }
    let s = r.stats();
    assert_eq!(s.invalid, hostile.len() as u64, "{s:?}");
    // The stream goes on untouched.
    for i in 1..batch.len() {
        r.handle_packet(batch.get(i).unwrap(), 100);
    }
    r.flush();
    assert_eq!(access_units(&mut r), aus);

    let mut r = h264_receiver();
    r.handle_packet(&fu_without_start, 0);
    r.flush();
    assert!(access_units(&mut r).is_empty());
    assert_eq!(r.stats().h264.malformed, 1);
}

#[test]
fn raw_segments_beyond_the_frame_never_write() {
    let format = RawFormat::new(64, 16).unwrap();
    let batch = raw_stream(format, 1);
    let mut r = RtpReceiver::new(ReceiverConfig::new(StreamKind::Raw(format)));
    let header = |seq: u16| {
        let mut p = Vec::new();
        RtpHeader { marker: false, payload_type: 96, sequence: seq, timestamp: 1, ssrc: 0x4175 }.write(&mut p);
        p
    };
    let first = batch.get(0).unwrap();
    let seq0 = u16::from_be_bytes([first[2], first[3]]);
    // line 32767, offset 32766, length 65532, continuation into nothing…
    let absurd: [&[u8]; 5] = [
        &[0, 0, 0xff, 0xfc, 0x7f, 0xff, 0x7f, 0xfe],
        &[0, 0, 0, 8, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0, 0, 0, 8, 0, 0, 0, 62, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0, 0, 0xff, 0xfc, 0, 0, 0, 0, 1, 2],
        &[0, 0, 0, 4, 0, 0, 0x80, 0],
    ];
    for (i, payload) in absurd.iter().enumerate() {
        let mut packet = header(seq0.wrapping_add(i as u16));
        packet.extend_from_slice(payload);
        r.handle_packet(&packet, 0);
    }
    r.flush();
    assert_eq!(r.stats().raw.malformed, absurd.len() as u64);
    assert!(r.poll_output().is_none(), "no frame was started by a bad packet");
}

#[test]
fn deterministic_loss_counted_dropped_and_recovered() {
    let (aus, batch) = h264_stream(30);
    // Drop every 37th packet: losses in keyframes and in delta frames.
    let mut r = h264_receiver();
    let dropped: Vec<usize> = (5..batch.len()).step_by(37).collect();
    for i in (0..batch.len()).filter(|i| !dropped.contains(i)) {
        r.handle_packet(batch.get(i).unwrap(), i as u64);
    }
    r.flush();
    let got = access_units(&mut r);
    let s = r.stats();
    assert_eq!(s.lost(), dropped.len() as u64);
    assert!(s.h264.dropped_broken >= 1 && s.h264.dropped_broken <= dropped.len() as u64);
    assert_eq!(got.len() as u64 + s.frames_dropped(), aus.len() as u64, "every frame is delivered or counted");
    // What came out is exactly the sent access units, in order, and each
    // run after a loss starts at a keyframe.
    let mut next = 0;
    let mut after_gap = false;
    for au in &got {
        let index = aus[next..].iter().position(|a| a == au).expect("an access unit we sent") + next;
        if index != next || after_gap {
            assert_eq!(au[4] & 0x1f, 7, "after a loss, delivery resumes at a keyframe (SPS first)");
        }
        after_gap = false;
        next = index + 1;
    }
}

#[test]
fn mutation_run_never_panics_and_keeps_bounds() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (_, h264) = h264_stream(40);
    let format = RawFormat::new(96, 24).unwrap();
    let raw = raw_stream(format, 10);
    let start = std::time::Instant::now();
    let mut outputs = 0;
    for round in 0..400 {
        let (batch, mut receiver) = if round % 2 == 0 {
            (&h264, h264_receiver())
        } else {
            (&raw, RtpReceiver::new(ReceiverConfig::new(StreamKind::Raw(format))))
        };
        for i in 0..batch.len() * 4 {
            let mut packet = batch.get(i % batch.len()).unwrap().to_vec();
            match rng.below(8) {
                0 => {} // valid (duplicates and replays as `i` wraps)
                1 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(packet.len());
                        packet[at] ^= 1 << rng.below(8);
                    }
                }
                2 => packet.truncate(rng.below(packet.len() + 1)),
                3 => packet.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                4 => {
                    // Payload-header fields: FU/STAP bytes or RFC 4175 length/line/offset.
                    for _ in 0..2 {
                        let at = 12 + rng.below(14);
                        if at < packet.len() {
                            packet[at] = rng.next() as u8;
                        }
                    }
                }
                5 => {
                    let seq = rng.next() as u16;
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                }
                6 => packet = (0..rng.below(1500)).map(|_| rng.next() as u8).collect(),
                _ => {
                    let ts = rng.next() as u32;
                    packet[4..8].copy_from_slice(&ts.to_be_bytes());
                }
            }
            receiver.handle_packet(&packet, i as u64 * 100_000);
            if i % 16 == 0 {
                receiver.handle_timeout(i as u64 * 100_000);
            }
            while let Some(out) = receiver.poll_output() {
                outputs += 1;
                match out {
                    Received::AccessUnit(au) => assert!(au.data.len() <= 8 << 20),
                    Received::Frame(f) => {
                        assert_eq!(f.format, format);
                        assert!(f.buffer.len() >= format.frame_bytes());
                    }
                }
            }
        }
        receiver.flush();
        while receiver.poll_output().is_some() {}
        // Counters add up: nothing vanished uncounted.
        let s = receiver.stats();
        assert_eq!(s.datagrams, (batch.len() * 4) as u64);
    }
    assert!(outputs > 0, "valid packets among the mutations still made frames");
    assert!(start.elapsed().as_secs_f64() < 5.0, "took {:?}", start.elapsed());
}
