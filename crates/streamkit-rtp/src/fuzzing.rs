//! The bodies of the `cargo fuzz` targets (`fuzz/fuzz_targets/`), here so
//! that an ordinary test replays the committed corpus (`fuzz/corpus/`)
//! through exactly the checks the fuzzer runs. Not a public API.

use crate::packet::RtpHeader;
use crate::raw::RawFormat;
use crate::receiver::{Received, ReceiverConfig, RtpReceiver, StreamKind};
use crate::RtpDescription;

/// Arbitrary bytes as RTP datagrams into the H.264 receive path.
/// The input is cut into datagrams by a length byte each. Datagrams whose
/// first byte is even go through the whole receiver (RTP parsing, SSRC and
/// payload-type checks, reorder buffer); the others get a valid RTP header
/// with the next sequence number, so that the fuzzer spends its effort on
/// FU-A / STAP-A / single NAL payloads rather than on the header.
pub fn h264_depacketizer(data: &[u8]) {
    let stream = StreamKind::H264 { parameter_sets: vec![vec![0x67, 0x42], vec![0x68]] };
    let headers = Headers { timestamp_offset: 0, extension: &[], sequence_step: |flags| 1 + (flags >> 6) as u16 / 3 };
    feed(stream, data, headers, |out| {
        if let Received::AccessUnit(au) = out {
            assert!(au.data.len() <= 8 << 20);
        }
    });
}

/// Arbitrary bytes as RFC 4175 datagrams into the raw receive path, for a
/// small frame whose size the input picks. Any write outside the frame
/// would panic (slice bounds); every frame that comes out has the size of
/// the format.
pub fn raw_depacketizer(data: &[u8]) {
    let Some((&[w, h], rest)) = data.split_first_chunk::<2>() else { return };
    let Ok(format) = RawFormat::new(2 * (1 + w as u32 % 32), 1 + h as u32 % 32) else { return };
    // The extension is RFC 4175's extended sequence number.
    let headers = Headers { timestamp_offset: 1, extension: &[0, 0], sequence_step: |_| 1 };
    feed(StreamKind::Raw(format), rest, headers, |out| {
        if let Received::Frame(frame) = out {
            assert_eq!(frame.format, format);
            assert_eq!(frame.data().len(), format.frame_bytes());
        }
    });
}

/// How [`feed`] makes the datagrams it gives a valid header.
struct Headers {
    timestamp_offset: u32,
    /// Bytes between the RTP header and the fuzzed payload.
    extension: &'static [u8],
    /// Sequence number advance after a datagram, from its flags byte.
    sequence_step: fn(u8) -> u16,
}

/// Cuts `data` into datagrams (a length byte each), feeds them to a receiver
/// one millisecond apart and hands every output to `check`.
fn feed(stream: StreamKind, mut rest: &[u8], headers: Headers, mut check: impl FnMut(Received)) {
    let mut config = ReceiverConfig::new(stream);
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
                timestamp: headers.timestamp_offset + (flags as u32 >> 1) * 3000,
                ssrc: 1,
            };
            header.write(&mut datagram);
            datagram.extend_from_slice(headers.extension);
            datagram.extend_from_slice(chunk.get(1..).unwrap_or(&[]));
            sequence = sequence.wrapping_add((headers.sequence_step)(flags));
        }
        receiver.handle_packet(&datagram, now);
        receiver.handle_timeout(now);
        while let Some(out) = receiver.poll_output() {
            check(out);
        }
    }
    receiver.flush();
    while let Some(out) = receiver.poll_output() {
        check(out);
    }
}

/// Arbitrary text into the SDP reader: errors, never panics; what parses
/// writes back out and parses again to the same description.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(description) = RtpDescription::from_sdp(text) {
        let again = RtpDescription::from_sdp(&description.to_sdp()).expect("our own SDP parses");
        assert_eq!(again.payload, description.payload);
        assert_eq!((again.address, again.port), (description.address, description.port));
    }
}
