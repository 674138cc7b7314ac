//! H.264 over RTP, RFC 6184, packetization-mode 1 (non-interleaved).
//!
//! * [`H264Packetizer`]: an Annex-B access unit → RTP packets. A NAL unit
//!   that fits is sent as it is (a single NAL unit packet); runs of small NAL
//!   units (SPS, PPS, SEI) share one STAP-A; a NAL unit larger than the
//!   payload is cut into FU-A fragments. The marker bit is set on the last
//!   packet of the access unit; all packets of it carry its 90 kHz timestamp.
//! * [`H264Depacketizer`]: packets in sequence order (see
//!   [`crate::reorder`]) → Annex-B access units. A hole in the sequence
//!   numbers breaks the access unit it falls in: that one is dropped and
//!   counted, and so is everything after it up to the next IDR access unit
//!   ([`H264Depacketizer::needs_keyframe`] says so meanwhile), because the
//!   decoder's references are gone. Malformed payloads (FU-A without its
//!   start, a truncated STAP-A, types of the interleaved mode) are counted
//!   and never panic; memory is bounded by [`H264Depacketizer::max_access_unit`].
//!
//! ```
//! use streamkit_rtp::h264::{H264Depacketizer, H264Packetizer};
//! use streamkit_rtp::packet::{PacketBatch, RtpPacket, RtpSender};
//!
//! let mut idr = vec![0, 0, 0, 1, 0x65];
//! idr.extend((0..5000).map(|i| (i % 251) as u8 | 1));
//! let mut packetizer = H264Packetizer::new(RtpSender::new(0x1234, 96, 65530), 1200);
//! let mut batch = PacketBatch::new();
//! packetizer.packetize(&idr, 90_000, &mut batch);
//! assert_eq!(batch.len(), 5); // FU-A fragments of at most 1200 bytes
//!
//! let mut depacketizer = H264Depacketizer::new();
//! for (i, bytes) in batch.iter().enumerate() {
//!     let packet = RtpPacket::parse(bytes).unwrap();
//!     depacketizer.push(100 + i as u64, &packet, 0);
//! }
//! let au = depacketizer.pop().unwrap();
//! assert!(au.keyframe);
//! assert_eq!(au.data, idr);
//! ```

use std::collections::VecDeque;

use streamkit_h264::nal::{nal_type, nal_units, NAL_AUD, NAL_FILLER, NAL_IDR, NAL_SPS};

use crate::packet::{extend, PacketBatch, RtpHeader, RtpPacket, RtpSender, RTP_HEADER_LEN};

/// NAL unit type of a STAP-A aggregation packet.
pub const STAP_A: u8 = 24;
/// NAL unit type of an FU-A fragment.
pub const FU_A: u8 = 28;
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Largest access unit the depacketiser assembles by default (8 MiB: far
/// above any real H.264 picture at streamkit's sizes).
pub const DEFAULT_MAX_ACCESS_UNIT: usize = 8 << 20;

/// Cuts Annex-B access units into RTP packets. See the module documentation.
#[derive(Clone, Debug)]
pub struct H264Packetizer {
    sender: RtpSender,
    max_payload: usize,
    /// Put runs of small NAL units into STAP-A packets (default on).
    pub aggregate: bool,
    nals: Vec<(usize, usize)>,
}

impl H264Packetizer {
    /// `mtu`: the largest RTP packet, header included (at least 64 bytes).
    pub fn new(sender: RtpSender, mtu: usize) -> H264Packetizer {
        let mtu = mtu.clamp(64, crate::packet::MAX_UDP_PAYLOAD);
        H264Packetizer { sender, max_payload: mtu - RTP_HEADER_LEN, aggregate: true, nals: Vec::new() }
    }

    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// Appends the packets of one access unit to `out`; returns how many.
    /// Access unit delimiters and filler data are not sent (RFC 6184 allows
    /// both; receivers do not need them).
    pub fn packetize(&mut self, annexb: &[u8], timestamp: u32, out: &mut PacketBatch) -> usize {
        let base = annexb.as_ptr() as usize;
        self.nals.clear();
        self.nals.extend(
            nal_units(annexb)
                .filter(|n| !matches!(nal_type(n), NAL_AUD | NAL_FILLER))
                .map(|n| (n.as_ptr() as usize - base, n.len())),
        );
        let first = out.len();
        let mut last_start = None;
        let mut i = 0;
        while i < self.nals.len() {
            let nal = |k: usize| &annexb[self.nals[k].0..][..self.nals[k].1];
            // How many of the next NAL units fit one STAP-A.
            let mut count = 0;
            let mut size = 1;
            while self.aggregate && i + count < self.nals.len() && size + 2 + self.nals[i + count].1 <= self.max_payload
            {
                size += 2 + self.nals[i + count].1;
                count += 1;
            }
            if count >= 2 {
                last_start = Some(out.data.len());
                self.sender.begin(out, false, timestamp);
                let (mut f, mut nri) = (0, 0);
                for k in i..i + count {
                    f |= nal(k)[0] & 0x80;
                    nri = nri.max(nal(k)[0] & 0x60);
                }
                out.data.push(f | nri | STAP_A);
                for k in i..i + count {
                    out.data.extend_from_slice(&(nal(k).len() as u16).to_be_bytes());
                    out.data.extend_from_slice(nal(k));
                }
                self.sender.end(out);
                i += count;
            } else if nal(i).len() <= self.max_payload {
                last_start = Some(out.data.len());
                self.sender.begin(out, false, timestamp);
                out.data.extend_from_slice(nal(i));
                self.sender.end(out);
                i += 1;
            } else {
                let data = nal(i);
                let (header, body) = (data[0], &data[1..]);
                let chunk = self.max_payload - 2;
                let pieces = body.len().div_ceil(chunk);
                for (p, piece) in body.chunks(chunk).enumerate() {
                    last_start = Some(out.data.len());
                    self.sender.begin(out, false, timestamp);
                    let start = if p == 0 { 0x80 } else { 0 };
                    let end = if p + 1 == pieces { 0x40 } else { 0 };
                    out.data.extend_from_slice(&[(header & 0xe0) | FU_A, start | end | (header & 0x1f)]);
                    out.data.extend_from_slice(piece);
                    self.sender.end(out);
                }
                i += 1;
            }
        }
        if let Some(start) = last_start {
            out.data[start + 1] |= 0x80; // marker: the access unit ends here
        }
        out.len() - first
    }
}

/// Whether a payload begins an access unit: a NAL unit that may only come
/// before the first slice (SEI, SPS, PPS, access unit delimiter), or the
/// first slice of a picture (`first_mb_in_slice` = 0, which is the single
/// bit `1` in Exp-Golomb, so the first bit after the NAL header).
fn starts_access_unit(payload: &[u8]) -> bool {
    let first_nal = |nal: &[u8]| match nal.first().map(|b| b & 0x1f) {
        Some(6..=9) => true,
        Some(1..=5) => nal.get(1).is_some_and(|b| b & 0x80 != 0),
        _ => false,
    };
    match payload.first().map(|b| b & 0x1f) {
        Some(STAP_A) => payload.get(3..).is_some_and(first_nal),
        Some(FU_A) => {
            let (fu, body) = (payload.get(1).copied().unwrap_or(0), payload.get(2).copied().unwrap_or(0));
            fu & 0x80 != 0 && matches!(fu & 0x1f, 1..=5) && body & 0x80 != 0
        }
        Some(_) => first_nal(payload),
        None => false,
    }
}

/// One access unit put back together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL units with 4-byte start codes.
    pub data: Vec<u8>,
    /// The RTP timestamp extended to 64 bits (90 kHz).
    pub timestamp: u64,
    /// Contains an IDR slice.
    pub keyframe: bool,
    /// When its first packet arrived (the caller's clock).
    pub arrival_ns: u64,
    pub packets: u32,
}

/// Counters of an [`H264Depacketizer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H264Stats {
    pub packets: u64,
    /// Payloads that break RFC 6184 (FU-A without start, truncated STAP-A,
    /// interleaved-mode types, empty payloads): counted and ignored.
    pub malformed: u64,
    pub access_units: u64,
    /// Access units dropped because packets of them were lost or malformed.
    pub dropped_broken: u64,
    /// Complete access units dropped while waiting for a keyframe.
    pub dropped_waiting_keyframe: u64,
    /// Access units dropped for exceeding the size limit.
    pub dropped_oversized: u64,
}

/// Puts access units back together. See the module documentation.
#[derive(Debug)]
pub struct H264Depacketizer {
    current: Vec<u8>,
    current_timestamp: Option<u64>,
    current_arrival: u64,
    current_packets: u32,
    broken: bool,
    oversized: bool,
    has_idr: bool,
    has_sps: bool,
    /// Type of the NAL unit whose FU-A fragments are being joined.
    fragment: Option<u8>,
    last_sequence: Option<u64>,
    last_timestamp: Option<u64>,
    waiting_keyframe: bool,
    max_access_unit: usize,
    parameter_sets: Vec<u8>,
    out: VecDeque<AccessUnit>,
    stats: H264Stats,
}

impl Default for H264Depacketizer {
    fn default() -> Self {
        H264Depacketizer::new()
    }
}

impl H264Depacketizer {
    pub fn new() -> H264Depacketizer {
        H264Depacketizer {
            current: Vec::new(),
            current_timestamp: None,
            current_arrival: 0,
            current_packets: 0,
            broken: false,
            oversized: false,
            has_idr: false,
            has_sps: false,
            fragment: None,
            last_sequence: None,
            last_timestamp: None,
            waiting_keyframe: true,
            max_access_unit: DEFAULT_MAX_ACCESS_UNIT,
            parameter_sets: Vec::new(),
            out: VecDeque::new(),
            stats: H264Stats::default(),
        }
    }

    /// Parameter sets from the SDP (`sprop-parameter-sets`), put in front of
    /// a keyframe that arrives without its own SPS.
    pub fn set_parameter_sets(&mut self, sets: &[Vec<u8>]) {
        self.parameter_sets.clear();
        for set in sets.iter().filter(|s| !s.is_empty()) {
            self.parameter_sets.extend_from_slice(&START_CODE);
            self.parameter_sets.extend_from_slice(set);
        }
    }

    pub fn max_access_unit(&self) -> usize {
        self.max_access_unit
    }

    pub fn set_max_access_unit(&mut self, bytes: usize) {
        self.max_access_unit = bytes;
    }

    pub fn stats(&self) -> H264Stats {
        self.stats
    }

    /// True until an IDR access unit has come through intact since the
    /// start or the last loss: the sender should be asked for a keyframe.
    pub fn needs_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Drops access units until the next keyframe (the decoder lost its
    /// references elsewhere, e.g. an access unit was dropped downstream).
    pub fn require_keyframe(&mut self) {
        self.waiting_keyframe = true;
    }

    /// A completed access unit, oldest first.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.out.pop_front()
    }

    /// Takes one packet; `sequence` is its extended sequence number, and
    /// packets must come in sequence order (holes are losses).
    pub fn push(&mut self, sequence: u64, packet: &RtpPacket<'_>, arrival_ns: u64) {
        self.push_parts(sequence, &packet.header, packet.payload, arrival_ns);
    }

    /// [`H264Depacketizer::push`] with the header and payload apart.
    pub fn push_parts(&mut self, sequence: u64, header: &RtpHeader, payload: &[u8], arrival_ns: u64) {
        self.stats.packets += 1;
        let gap = self.last_sequence.is_some_and(|last| sequence != last + 1);
        self.last_sequence = Some(sequence);
        let timestamp = extend(self.last_timestamp, header.timestamp as u64, 32);
        self.last_timestamp = Some(timestamp);

        if let Some(current) = self.current_timestamp {
            if current != timestamp {
                // The previous access unit ended without its marker: fine when
                // nothing was lost (some senders omit it), broken otherwise.
                self.broken |= gap;
                self.finish();
            }
        }
        let starting = self.current_timestamp.is_none();
        if starting {
            self.current_timestamp = Some(timestamp);
            self.current_arrival = arrival_ns;
        }
        if gap {
            // Lost packets break the decoder's references whatever they held.
            self.waiting_keyframe = true;
            // They were the tail of the previous access unit (dropped above),
            // whole access units, or the start of this one: this one is
            // whole only if it visibly starts here.
            self.broken |= !(starting && starts_access_unit(payload));
        }
        self.current_packets += 1;
        self.depacketize(payload);
        if self.current.len() > self.max_access_unit {
            self.oversized = true;
            self.current = Vec::new();
        }
        if header.marker {
            self.finish();
        }
    }

    /// Ends the access unit in progress (end of stream, or a timeout).
    pub fn flush(&mut self) {
        if self.current_timestamp.is_some() {
            self.finish();
        }
    }

    fn append_nal(&mut self, nal: &[u8]) {
        if self.oversized {
            return;
        }
        self.note_type(nal[0] & 0x1f);
        self.current.extend_from_slice(&START_CODE);
        self.current.extend_from_slice(nal);
    }

    fn note_type(&mut self, kind: u8) {
        self.has_idr |= kind == NAL_IDR;
        self.has_sps |= kind == NAL_SPS;
    }

    fn malformed(&mut self) {
        self.stats.malformed += 1;
        self.broken = true;
    }

    fn depacketize(&mut self, payload: &[u8]) {
        let Some(&first) = payload.first() else {
            self.malformed();
            return;
        };
        let kind = first & 0x1f;
        if kind != FU_A && self.fragment.take().is_some() {
            self.broken = true; // a fragmented NAL unit never got its end
        }
        match kind {
            1..=23 => self.append_nal(payload),
            STAP_A => {
                let mut rest = &payload[1..];
                if rest.is_empty() {
                    self.malformed();
                }
                while !rest.is_empty() {
                    let size = match rest {
                        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]) as usize,
                        _ => 0,
                    };
                    if size == 0 || rest.len() < 2 + size {
                        self.malformed();
                        break;
                    }
                    self.append_nal(&rest[2..2 + size]);
                    rest = &rest[2 + size..];
                }
            }
            FU_A => {
                let Some(&fu) = payload.get(1) else {
                    self.malformed();
                    return;
                };
                let (start, end, nal) = (fu & 0x80 != 0, fu & 0x40 != 0, fu & 0x1f);
                if start && end {
                    self.malformed(); // RFC 6184 5.8: a whole NAL unit must not be one FU
                    return;
                }
                if start {
                    if self.fragment.is_some() {
                        self.broken = true;
                    }
                    self.fragment = Some(nal);
                    if !self.oversized {
                        self.note_type(nal);
                        self.current.extend_from_slice(&START_CODE);
                        self.current.push((first & 0xe0) | nal);
                    }
                } else if self.fragment != Some(nal) {
                    // A continuation whose start we never saw (lost, or hostile).
                    self.malformed();
                    self.fragment = None;
                    return;
                }
                if !self.oversized {
                    self.current.extend_from_slice(&payload[2..]);
                }
                if end {
                    self.fragment = None;
                }
            }
            0 | 30 | 31 => self.stats.malformed += 1, // "ignore" in RFC 6184 table 3
            _ => self.malformed(),                    // STAP-B, MTAP, FU-B: interleaved mode only
        }
    }

    fn finish(&mut self) {
        if self.fragment.take().is_some() {
            self.broken = true;
        }
        let data = std::mem::take(&mut self.current);
        let timestamp = self.current_timestamp.take().unwrap_or_default();
        let packets = std::mem::take(&mut self.current_packets);
        let (broken, oversized, keyframe, has_sps) = (self.broken, self.oversized, self.has_idr, self.has_sps);
        self.broken = false;
        self.oversized = false;
        self.has_idr = false;
        self.has_sps = false;
        if oversized {
            self.stats.dropped_oversized += 1;
            self.waiting_keyframe = true;
        } else if broken {
            self.stats.dropped_broken += 1;
            self.waiting_keyframe = true;
        } else if data.is_empty() {
            // Only ignorable payloads.
        } else if self.waiting_keyframe && !keyframe {
            self.stats.dropped_waiting_keyframe += 1;
        } else {
            self.waiting_keyframe = false;
            let data = if keyframe && !has_sps && !self.parameter_sets.is_empty() {
                let mut with_sets = Vec::with_capacity(self.parameter_sets.len() + data.len());
                with_sets.extend_from_slice(&self.parameter_sets);
                with_sets.extend_from_slice(&data);
                with_sets
            } else {
                data
            };
            self.stats.access_units += 1;
            self.out.push_back(AccessUnit { data, timestamp, keyframe, arrival_ns: self.current_arrival, packets });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(kind: u8, len: usize, seed: u8) -> Vec<u8> {
        let mut n = vec![0x60 | kind];
        // No zero bytes, so no start code can appear inside.
        n.extend((0..len - 1).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
        n
    }

    fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter().flat_map(|n| START_CODE.iter().chain(n.iter()).copied()).collect()
    }

    fn keyframe() -> Vec<u8> {
        annexb(&[nal(NAL_SPS, 12, 1), nal(8, 5, 2), nal(NAL_IDR, 4000, 3)])
    }

    fn delta(seed: u8) -> Vec<u8> {
        annexb(&[nal(1, 2500, seed)])
    }

    /// Packets of `aus`, one batch.
    fn packets(aus: &[Vec<u8>], mtu: usize) -> PacketBatch {
        let mut p = H264Packetizer::new(RtpSender::new(9, 96, 65500), mtu);
        let mut batch = PacketBatch::new();
        for (i, au) in aus.iter().enumerate() {
            p.packetize(au, 4_294_960_000u32.wrapping_add(3000 * i as u32), &mut batch);
        }
        batch
    }

    fn feed(d: &mut H264Depacketizer, batch: &PacketBatch, skip: &[usize]) -> Vec<AccessUnit> {
        for (i, bytes) in batch.iter().enumerate() {
            if !skip.contains(&i) {
                d.push(1000 + i as u64, &RtpPacket::parse(bytes).unwrap(), i as u64);
            }
        }
        std::iter::from_fn(|| d.pop()).collect()
    }

    #[test]
    fn packets_respect_the_mtu_and_mark_the_last() {
        let batch = packets(&[keyframe()], 1200);
        // SPS+PPS in one STAP-A, the IDR in 4 FU-As.
        assert_eq!(batch.len(), 5);
        let parsed: Vec<RtpPacket<'_>> = batch.iter().map(|b| RtpPacket::parse(b).unwrap()).collect();
        assert!(batch.iter().all(|p| p.len() <= 1200));
        assert_eq!(parsed[0].payload[0] & 0x1f, STAP_A);
        assert_eq!(parsed[0].payload[0] & 0x60, 0x60, "NRI is the highest of the aggregated");
        assert_eq!(parsed.iter().filter(|p| p.header.marker).count(), 1);
        assert!(parsed[4].header.marker);
        assert_eq!(parsed[1].payload[1], 0x80 | NAL_IDR);
        assert_eq!(parsed[4].payload[1], 0x40 | NAL_IDR);
    }

    #[test]
    fn round_trip_across_sequence_and_timestamp_wrap() {
        let aus = [keyframe(), delta(5), delta(6), keyframe()];
        let mut d = H264Depacketizer::new();
        let out = feed(&mut d, &packets(&aus, 1200), &[]);
        assert_eq!(out.iter().map(|a| &a.data).collect::<Vec<_>>(), aus.iter().collect::<Vec<_>>());
        assert_eq!(out[2].timestamp - out[0].timestamp, 6000, "timestamps extend across the 32-bit wrap");
        assert!(!d.needs_keyframe());
        assert_eq!(d.stats().dropped_broken, 0);
    }

    #[test]
    fn single_nal_packets_without_aggregation() {
        let mut p = H264Packetizer::new(RtpSender::new(9, 96, 0), 1200);
        p.aggregate = false;
        let mut batch = PacketBatch::new();
        p.packetize(&keyframe(), 0, &mut batch);
        assert_eq!(batch.len(), 6);
        let mut d = H264Depacketizer::new();
        assert_eq!(feed(&mut d, &batch, &[])[0].data, keyframe());
    }

    #[test]
    fn loss_drops_the_access_unit_and_waits_for_the_next_keyframe() {
        let aus = [keyframe(), delta(5), delta(6), delta(7), keyframe(), delta(8)];
        let batch = packets(&aus, 1200);
        // Packets: kf 0..=4, d5 5..=7, d6 8..=10, d7 11..=13, kf 14..=18, d8 19..=21. Lose one of d6.
        let mut d = H264Depacketizer::new();
        let out = feed(&mut d, &batch, &[9]);
        let got: Vec<&Vec<u8>> = out.iter().map(|a| &a.data).collect();
        assert_eq!(got, [&aus[0], &aus[1], &aus[4], &aus[5]]);
        let stats = d.stats();
        assert_eq!((stats.dropped_broken, stats.dropped_waiting_keyframe), (1, 1));
    }

    #[test]
    fn losing_the_marker_packet_breaks_only_that_access_unit() {
        let aus = [keyframe(), delta(5), keyframe()];
        let batch = packets(&aus, 1200);
        let mut d = H264Depacketizer::new();
        let out = feed(&mut d, &batch, &[7]); // the last packet (marker) of delta(5)
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data, aus[2]);
        assert_eq!(d.stats().dropped_broken, 1);
    }

    #[test]
    fn parameter_sets_from_sdp_go_before_a_bare_keyframe() {
        let idr = annexb(&[nal(NAL_IDR, 300, 3)]);
        let mut d = H264Depacketizer::new();
        d.set_parameter_sets(&[nal(NAL_SPS, 12, 1), nal(8, 5, 2)]);
        let out = feed(&mut d, &packets(std::slice::from_ref(&idr), 1200), &[]);
        assert_eq!(out[0].data, [annexb(&[nal(NAL_SPS, 12, 1), nal(8, 5, 2)]), idr].concat());
    }

    #[test]
    fn hostile_payloads_are_counted_not_fatal() {
        let mut d = H264Depacketizer::new();
        let header = |seq: u16, marker| RtpHeader { marker, payload_type: 96, sequence: seq, timestamp: 0, ssrc: 1 };
        let hostile: [&[u8]; 7] = [
            &[],
            &[FU_A],
            &[FU_A, 0x05, 1, 2, 3],     // FU-A continuation without a start
            &[FU_A, 0xc5, 1],           // start and end together
            &[STAP_A, 0, 200, 0x65, 1], // STAP-A size past the end
            &[STAP_A],                  // empty STAP-A
            &[0x60 | 26, 1, 2, 3],      // MTAP16: not in mode 1
        ];
        for (i, payload) in hostile.iter().enumerate() {
            d.push_parts(i as u64, &header(i as u16, true), payload, 0);
        }
        assert!(d.pop().is_none());
        assert_eq!(d.stats().malformed, 7);
        // The stream recovers at the next keyframe.
        let batch = packets(&[keyframe()], 1200);
        for (i, bytes) in batch.iter().enumerate() {
            d.push(7 + i as u64, &RtpPacket::parse(bytes).unwrap(), 0);
        }
        assert_eq!(d.pop().unwrap().data, keyframe());
    }

    #[test]
    fn oversized_access_units_are_dropped_with_bounded_memory() {
        let mut d = H264Depacketizer::new();
        d.set_max_access_unit(1000);
        let out = feed(&mut d, &packets(&[keyframe(), keyframe()], 1200), &[]);
        assert!(out.is_empty());
        assert_eq!(d.stats().dropped_oversized, 2);
        assert_eq!(d.current.capacity(), 0, "nothing kept past the limit");
    }
}
