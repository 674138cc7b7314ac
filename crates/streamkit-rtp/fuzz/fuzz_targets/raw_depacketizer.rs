//! Arbitrary bytes as RFC 4175 datagrams into the raw receive path, for a
//! small frame whose size the input picks. Any write outside the frame
//! would panic (slice bounds); every frame that comes out has the size of
//! the format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamkit_rtp::packet::RtpHeader;
use streamkit_rtp::raw::RawFormat;
use streamkit_rtp::receiver::{Received, ReceiverConfig, RtpReceiver, StreamKind};

fuzz_target!(|data: &[u8]| {
    let Some((&[w, h], mut rest)) = data.split_first_chunk::<2>() else { return };
    let Ok(format) = RawFormat::new(2 * (1 + w as u32 % 32), 1 + h as u32 % 32) else { return };
    let mut config = ReceiverConfig::new(StreamKind::Raw(format));
    config.reorder_window = 16;
    let mut receiver = RtpReceiver::new(config);
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
                timestamp: 1 + (flags as u32 >> 1) * 3000,
                ssrc: 1,
            };
            header.write(&mut datagram);
            datagram.extend_from_slice(&[0, 0]); // extended sequence number
            datagram.extend_from_slice(chunk.get(1..).unwrap_or(&[]));
            sequence = sequence.wrapping_add(1);
        }
        receiver.handle_packet(&datagram, now);
        receiver.handle_timeout(now);
        while let Some(out) = receiver.poll_output() {
            if let Received::Frame(frame) = out {
                assert_eq!(frame.format, format);
                assert_eq!(frame.data().len(), format.frame_bytes());
            }
        }
    }
    receiver.flush();
    while receiver.poll_output().is_some() {}
});
