//! RTP packets (RFC 3550 §5.1): parsing untrusted bytes, writing headers,
//! batches of packets in one buffer, and counters extended to 64 bits.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers             |  CC × 4 bytes
//! |      defined by profile       |            length             |  if X
//! |                        header extension                       |  length × 4 bytes
//! ```

use std::fmt;

/// The only RTP version there is.
pub const RTP_VERSION: u8 = 2;
/// Bytes in the fixed header (no CSRCs, no extension): all this crate writes.
pub const RTP_HEADER_LEN: usize = 12;
/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// The fixed RTP header fields streamkit uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtpHeader {
    /// For video: the last packet of a frame (access unit).
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte header (version 2, no padding, extension or CSRCs).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(RTP_VERSION << 6);
        out.push(((self.marker as u8) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// Why bytes are not an RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// Fewer than 12 bytes.
    TooShort { len: usize },
    /// The version bits are not 2.
    BadVersion(u8),
    /// The CSRC list or header extension runs past the end.
    HeaderTruncated { needed: usize, len: usize },
    /// The padding count is zero or larger than the payload.
    BadPadding { padding: usize, available: usize },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::TooShort { len } => write!(f, "{len} bytes is shorter than the 12-byte RTP header"),
            PacketError::BadVersion(v) => write!(f, "RTP version {v}, expected 2"),
            PacketError::HeaderTruncated { needed, len } => {
                write!(f, "CSRCs and header extension need {needed} bytes, the packet has {len}")
            }
            PacketError::BadPadding { padding, available } => {
                write!(f, "padding of {padding} bytes with {available} bytes after the header")
            }
        }
    }
}

impl std::error::Error for PacketError {}

/// A parsed packet borrowing its payload (CSRCs, extension and padding removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses untrusted bytes; never panics.
    pub fn parse(data: &'a [u8]) -> Result<RtpPacket<'a>, PacketError> {
        if data.len() < RTP_HEADER_LEN {
            return Err(PacketError::TooShort { len: data.len() });
        }
        let version = data[0] >> 6;
        if version != RTP_VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let padding = data[0] & 0x20 != 0;
        let extension = data[0] & 0x10 != 0;
        let csrc_count = (data[0] & 0x0f) as usize;
        let mut start = RTP_HEADER_LEN + 4 * csrc_count;
        if extension {
            let words = data
                .get(start + 2..start + 4)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or(PacketError::HeaderTruncated { needed: start + 4, len: data.len() })?;
            start += 4 + 4 * words;
        }
        if start > data.len() {
            return Err(PacketError::HeaderTruncated { needed: start, len: data.len() });
        }
        let mut end = data.len();
        if padding {
            let count = data[end - 1] as usize;
            if count == 0 || count > end - start {
                return Err(PacketError::BadPadding { padding: count, available: end - start });
            }
            end -= count;
        }
        let header = RtpHeader {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        };
        Ok(RtpPacket { header, payload: &data[start..end] })
    }
}

/// Many packets in one contiguous buffer: what a packetiser fills for one
/// frame and the sender sends one by one. Reused from frame to frame, so a
/// steady stream allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct PacketBatch {
    pub(crate) data: Vec<u8>,
    ends: Vec<usize>,
}

impl PacketBatch {
    pub fn new() -> PacketBatch {
        PacketBatch::default()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes in all packets (RTP headers included).
    pub fn bytes(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Packet `index`, header first.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("index in range"))
    }

    /// Ends the packet being written (everything since the last end).
    pub(crate) fn finish_packet(&mut self) {
        self.ends.push(self.data.len());
    }

    /// Bytes of the packet being written so far.
    pub(crate) fn open_len(&self) -> usize {
        self.data.len() - self.bytes()
    }

    /// Appends a copy of every packet of `other` (for tests and tools).
    pub fn push_packet(&mut self, packet: &[u8]) {
        self.data.extend_from_slice(packet);
        self.finish_packet();
    }
}

/// The sending side of one RTP stream: SSRC, payload type and the next
/// sequence number. Packetisers ask it for each packet's header.
#[derive(Clone, Debug)]
pub struct RtpSender {
    pub ssrc: u32,
    pub payload_type: u8,
    /// Sequence numbers as a 64-bit count; the wire carries the low 16 bits
    /// (RFC 4175 also carries bits 16..32).
    next_sequence: u64,
    packets: u64,
    octets: u64,
}

impl RtpSender {
    /// `initial_sequence` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, payload_type: u8, initial_sequence: u16) -> RtpSender {
        RtpSender { ssrc, payload_type, next_sequence: initial_sequence as u64, packets: 0, octets: 0 }
    }

    /// The extended (64-bit) sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Packets written so far (for RTCP sender reports).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Payload octets written so far (RTP headers excluded, as RTCP counts them).
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// Starts a packet in `batch`: writes the header and returns the
    /// extended sequence number it carries. Finish it with [`RtpSender::end`].
    pub(crate) fn begin(&mut self, batch: &mut PacketBatch, marker: bool, timestamp: u32) -> u64 {
        let sequence = self.next_sequence;
        RtpHeader { marker, payload_type: self.payload_type, sequence: sequence as u16, timestamp, ssrc: self.ssrc }
            .write(&mut batch.data);
        self.next_sequence += 1;
        sequence
    }

    pub(crate) fn end(&mut self, batch: &mut PacketBatch) {
        self.packets += 1;
        self.octets += (batch.open_len() - RTP_HEADER_LEN) as u64;
        batch.finish_packet();
    }
}

/// Extends a wrapping counter of `bits` bits (16 for sequence numbers, 32
/// for timestamps and RFC 4175 sequence numbers) to 64 bits, as str0m does:
/// the value is placed next to the previous extended value, forwards or
/// backwards by less than half the range. The first value gets one whole
/// cycle added, so that packets reordered before it still extend without
/// going below zero.
pub fn extend(previous: Option<u64>, value: u64, bits: u32) -> u64 {
    let modulus = 1u64 << bits;
    let value = value & (modulus - 1);
    let Some(previous) = previous else {
        return modulus + value;
    };
    let delta = value.wrapping_sub(previous) & (modulus - 1);
    if delta < modulus / 2 {
        previous + delta
    } else {
        previous.saturating_sub(modulus - delta)
    }
}

/// A random 32-bit value (SSRC, initial sequence number and timestamp)
/// from the standard library's randomly keyed hasher: no RNG dependency.
pub fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(streamkit_core::time::monotonic_ns());
    (hasher.finish() >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let header = RtpHeader { marker: true, payload_type: 96, sequence: 65535, timestamp: 0xdead_beef, ssrc: 7 };
        let mut bytes = Vec::new();
        header.write(&mut bytes);
        bytes.extend_from_slice(b"payload");
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.header, header);
        assert_eq!(packet.payload, b"payload");
    }

    #[test]
    fn csrc_extension_and_padding_are_removed() {
        let mut bytes = vec![0x80 | 0x20 | 0x10 | 2, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend_from_slice(&[0; 8]); // two CSRCs
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension of one word
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        assert_eq!(RtpPacket::parse(&bytes).unwrap().payload, b"data");
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(PacketError::TooShort { len: 11 }));
        let mut bytes = vec![0x40, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert_eq!(RtpPacket::parse(&bytes), Err(PacketError::BadVersion(1)));
        bytes[0] = 0x8f; // 15 CSRCs, none present
        assert!(matches!(RtpPacket::parse(&bytes), Err(PacketError::HeaderTruncated { .. })));
        bytes[0] = 0x90; // extension without its header
        assert!(matches!(RtpPacket::parse(&bytes), Err(PacketError::HeaderTruncated { .. })));
        bytes[0] = 0xa0;
        bytes.push(9); // padding of 9 with 1 byte of payload
        assert!(matches!(RtpPacket::parse(&bytes), Err(PacketError::BadPadding { .. })));
    }

    #[test]
    fn sequence_numbers_extend_across_wrap_around() {
        let mut ext = None;
        let mut seen = Vec::new();
        for seq in [65534u64, 65535, 0, 1, 65535, 2] {
            let e = extend(ext, seq, 16);
            ext = Some(ext.map_or(e, |p: u64| p.max(e)));
            seen.push(e - 65536);
        }
        assert_eq!(seen, [65534, 65535, 65536, 65537, 65535, 65538]);
        // Backwards before the first value stays positive.
        assert_eq!(extend(Some(65536), 65535, 16), 65535);
        // 32-bit timestamps.
        assert_eq!(extend(Some((1 << 32) + 0xffff_ff00), 0x100, 32), (2 << 32) + 0x100);
    }

    #[test]
    fn batch_holds_packets_back_to_back() {
        let mut sender = RtpSender::new(1, 96, 65535);
        let mut batch = PacketBatch::new();
        for i in 0..3u8 {
            sender.begin(&mut batch, i == 2, 1000);
            batch.data.extend_from_slice(&[i; 5]);
            sender.end(&mut batch);
        }
        assert_eq!((batch.len(), batch.bytes()), (3, 51));
        let seqs: Vec<u16> = batch.iter().map(|p| RtpPacket::parse(p).unwrap().header.sequence).collect();
        assert_eq!(seqs, [65535, 0, 1]);
        assert!(RtpPacket::parse(batch.get(2).unwrap()).unwrap().header.marker);
        assert_eq!((sender.packets(), sender.octets()), (3, 15));
    }
}
