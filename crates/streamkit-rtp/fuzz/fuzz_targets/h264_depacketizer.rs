//! Arbitrary bytes as RTP datagrams into the H.264 receive path.
//!
//! The input is cut into datagrams by a length byte each. Datagrams whose
//! first byte is even go through the whole receiver (RTP parsing, SSRC and
//! payload-type checks, reorder buffer); the others get a valid RTP header
//! with the next sequence number, so that the fuzzer spends its effort on
//! FU-A / STAP-A / single NAL payloads rather than on the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_rtp::packet::RtpHeader;
use streamkit_rtp::receiver::{Received, ReceiverConfig, RtpReceiver, StreamKind};

fuzz_target!(|data: &[u8]| {
    let mut config = ReceiverConfig::new(StreamKind::H264 { parameter_sets: vec![vec![0x67, 0x42], vec![0x68]] });
    config.reorder_window = 16;
    let mut receiver = RtpReceiver::new(config);
    let mut rest = data;
    let mut sequence = 0u16;
    let mut now = 0u64;
    let mut datagram = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let (chunk, tail) = tail.split_at((len as usize).min(tail.len()));
        rest = tail;
        now += 1_000_000;
        datagram.clear();
        if len % 2 == 0 {
            datagram.extend_from_slice(chunk);
        } else {
            let flags = chunk.first().copied().unwrap_or(0);
            let header = RtpHeader {
                marker: flags & 1 != 0,
                payload_type: 96,
                sequence,
                timestamp: (flags as u32 >> 1) * 3000,
                ssrc: 1,
            };
            header.write(&mut datagram);
            datagram.extend_from_slice(chunk.get(1..).unwrap_or(&[]));
            sequence = sequence.wrapping_add(1 + (flags >> 6) as u16 / 3);
        }
        receiver.handle_packet(&datagram, now);
        receiver.handle_timeout(now);
        while let Some(out) = receiver.poll_output() {
            if let Received::AccessUnit(au) = out {
                assert!(au.data.len() <= 8 << 20);
            }
        }
    }
    receiver.flush();
    while receiver.poll_output().is_some() {}
});
