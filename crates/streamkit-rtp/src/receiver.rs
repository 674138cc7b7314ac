//! The receiving side of one RTP video stream, without I/O: datagrams and
//! their arrival times in, access units or frames out.
//!
//! ```text
//! handle_packet(bytes, now) ─▶ RTP header check ─▶ SSRC / payload type
//!   ─▶ reorder buffer (sequence numbers to 64 bits, holes become losses)
//!   ─▶ H.264 or RFC 4175 depacketiser ─▶ poll_output()
//! handle_timeout(now) gives up on holes; poll_timeout() says when to call it.
//! ```
//!
//! Nothing here reads a clock or a socket, so tests (loss, reordering,
//! hostile packets, fuzzing) drive it deterministically and faster than
//! real time; [`crate::source::RtpSource`] is the thin loop around it.

use std::collections::VecDeque;

use crate::h264::{AccessUnit, H264Depacketizer, H264Stats};
use crate::packet::{RtpPacket, RTP_HEADER_LEN};
use crate::raw::{wire_sequence, RawDepacketizer, RawFormat, RawFrame, RawStats};
use crate::reorder::{ReorderBuffer, ReorderStats};

/// What the stream carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// H.264, with parameter sets from the SDP if any.
    H264 { parameter_sets: Vec<Vec<u8>> },
    /// RFC 4175 YCbCr 4:2:2 8-bit.
    Raw(RawFormat),
}

/// How the receiver behaves.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    pub kind: StreamKind,
    /// Accept only this payload type (`None`: the first one seen).
    pub payload_type: Option<u8>,
    /// Packets held while waiting for a missing one.
    pub reorder_window: usize,
    /// How long a missing packet is waited for.
    pub reorder_wait_ns: u64,
    /// How long the current SSRC must be silent before another one is accepted.
    pub ssrc_timeout_ns: u64,
}

impl ReceiverConfig {
    pub fn new(kind: StreamKind) -> ReceiverConfig {
        ReceiverConfig {
            kind,
            payload_type: None,
            reorder_window: 512,
            reorder_wait_ns: 20_000_000,
            ssrc_timeout_ns: 1_000_000_000,
        }
    }
}

/// What comes out.
#[derive(Debug)]
pub enum Received {
    AccessUnit(AccessUnit),
    Frame(RawFrame),
}

/// Every counter of the receive path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub datagrams: u64,
    pub bytes: u64,
    /// Not RTP (short, wrong version, bad padding…): dropped.
    pub invalid: u64,
    pub wrong_payload_type: u64,
    /// Packets from another SSRC while the current one is alive.
    pub foreign_ssrc: u64,
    pub ssrc_changes: u64,
    pub reorder: ReorderStats,
    pub h264: H264Stats,
    pub raw: RawStats,
}

impl ReceiverStats {
    /// Packets lost (given up on by the reorder buffer).
    pub fn lost(&self) -> u64 {
        self.reorder.lost
    }

    /// Packets counted and ignored: not RTP, or payloads that break their RFC.
    pub fn malformed(&self) -> u64 {
        self.invalid + self.h264.malformed + self.raw.malformed
    }

    /// Frames (access units) dropped for loss, damage or size.
    pub fn frames_dropped(&self) -> u64 {
        self.h264.dropped_broken
            + self.h264.dropped_oversized
            + self.h264.dropped_waiting_keyframe
            + self.raw.frames_dropped
    }
}

enum Depacketizer {
    H264(H264Depacketizer),
    Raw(Box<RawDepacketizer>),
}

/// See the module documentation.
pub struct RtpReceiver {
    config: ReceiverConfig,
    /// Datagrams with their arrival times.
    reorder: ReorderBuffer<(Vec<u8>, u64)>,
    depacketizer: Depacketizer,
    ssrc: Option<u32>,
    payload_type: Option<u8>,
    last_packet_ns: u64,
    spare: Vec<Vec<u8>>,
    out: VecDeque<Received>,
    stats: ReceiverStats,
}

impl std::fmt::Debug for RtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpReceiver").field("kind", &self.config.kind).field("stats", &self.stats()).finish()
    }
}

impl RtpReceiver {
    pub fn new(config: ReceiverConfig) -> RtpReceiver {
        let bits = match config.kind {
            StreamKind::H264 { .. } => 16,
            StreamKind::Raw(_) => 32,
        };
        RtpReceiver {
            reorder: ReorderBuffer::new(config.reorder_window, config.reorder_wait_ns, bits),
            depacketizer: Self::depacketizer(&config.kind),
            payload_type: config.payload_type,
            config,
            ssrc: None,
            last_packet_ns: 0,
            spare: Vec::new(),
            out: VecDeque::new(),
            stats: ReceiverStats::default(),
        }
    }

    fn depacketizer(kind: &StreamKind) -> Depacketizer {
        match kind {
            StreamKind::H264 { parameter_sets } => {
                let mut d = H264Depacketizer::new();
                d.set_parameter_sets(parameter_sets);
                Depacketizer::H264(d)
            }
            StreamKind::Raw(format) => Depacketizer::Raw(Box::new(RawDepacketizer::new(*format))),
        }
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// The SSRC being received.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Whether the next usable H.264 access unit must be a keyframe (always
    /// false for raw video).
    pub fn needs_keyframe(&self) -> bool {
        matches!(&self.depacketizer, Depacketizer::H264(d) if d.needs_keyframe())
    }

    /// The decoder lost its references (an access unit was dropped after
    /// this receiver): wait for the next keyframe.
    pub fn require_keyframe(&mut self) {
        if let Depacketizer::H264(d) = &mut self.depacketizer {
            d.require_keyframe();
        }
    }

    pub fn stats(&self) -> ReceiverStats {
        let mut stats = self.stats;
        stats.reorder = self.reorder.stats();
        match &self.depacketizer {
            Depacketizer::H264(d) => stats.h264 = d.stats(),
            Depacketizer::Raw(d) => stats.raw = d.stats(),
        }
        stats
    }

    /// Takes one datagram that arrived at `now_ns`. Anything that is not a
    /// packet of this stream is counted and dropped.
    pub fn handle_packet(&mut self, datagram: &[u8], now_ns: u64) {
        self.stats.datagrams += 1;
        self.stats.bytes += datagram.len() as u64;
        let packet = match RtpPacket::parse(datagram) {
            Ok(p) => p,
            Err(_) => {
                self.stats.invalid += 1;
                return;
            }
        };
        let header = packet.header;
        if *self.payload_type.get_or_insert(header.payload_type) != header.payload_type {
            self.stats.wrong_payload_type += 1;
            return;
        }
        match self.ssrc {
            Some(ssrc) if ssrc != header.ssrc => {
                if now_ns.saturating_sub(self.last_packet_ns) < self.config.ssrc_timeout_ns {
                    self.stats.foreign_ssrc += 1;
                    return;
                }
                // The old sender went quiet and a new one speaks: a new stream.
                self.stats.ssrc_changes += 1;
                self.drain_reorder(true);
                self.reorder.reset();
                self.depacketizer = Self::depacketizer(&self.config.kind);
                self.ssrc = Some(header.ssrc);
            }
            Some(_) => {}
            None => self.ssrc = Some(header.ssrc),
        }
        let wire = match self.config.kind {
            StreamKind::H264 { .. } => header.sequence as u64,
            StreamKind::Raw(_) => match wire_sequence(&packet) {
                Some(seq) => seq,
                None => {
                    self.stats.raw.malformed += 1;
                    return;
                }
            },
        };
        self.last_packet_ns = now_ns;
        let mut copy = self.spare.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(datagram);
        self.reorder.push(wire, (copy, now_ns), now_ns);
        self.drain_reorder(false);
    }

    /// Gives up on holes that waited long enough.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        self.reorder.poll(now_ns);
        self.drain_reorder(false);
    }

    /// When [`RtpReceiver::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.reorder.next_deadline()
    }

    /// Releases everything held and ends the frame in progress (end of stream).
    pub fn flush(&mut self) {
        self.drain_reorder(true);
    }

    /// The next access unit or frame.
    pub fn poll_output(&mut self) -> Option<Received> {
        self.out.pop_front()
    }

    fn drain_reorder(&mut self, flush: bool) {
        if flush {
            self.reorder.flush();
        }
        while let Some((sequence, (bytes, arrival))) = self.reorder.pop() {
            if let Ok(packet) = RtpPacket::parse(&bytes) {
                match &mut self.depacketizer {
                    Depacketizer::H264(d) => d.push(sequence, &packet, arrival),
                    Depacketizer::Raw(d) => d.push(sequence, &packet, arrival),
                }
            }
            if self.spare.len() < 64 && bytes.capacity() >= RTP_HEADER_LEN {
                self.spare.push(bytes);
            }
        }
        match &mut self.depacketizer {
            Depacketizer::H264(d) => {
                if flush {
                    d.flush();
                }
                while let Some(au) = d.pop() {
                    self.out.push_back(Received::AccessUnit(au));
                }
            }
            Depacketizer::Raw(d) => {
                if flush {
                    d.flush();
                }
                while let Some(frame) = d.pop() {
                    self.out.push_back(Received::Frame(frame));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::H264Packetizer;
    use crate::packet::{PacketBatch, RtpSender};

    fn keyframe_and_deltas(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let kind = if i % 5 == 0 { 0x65 } else { 0x41 };
                let mut au = vec![0, 0, 0, 1, kind];
                au.extend((0..3000).map(|k| ((k + i) % 250) as u8 + 1));
                au
            })
            .collect()
    }

    fn batch(aus: &[Vec<u8>], ssrc: u32) -> PacketBatch {
        let mut p = H264Packetizer::new(RtpSender::new(ssrc, 96, 65000), 1200);
        let mut b = PacketBatch::new();
        for (i, au) in aus.iter().enumerate() {
            p.packetize(au, 3000 * i as u32, &mut b);
        }
        b
    }

    fn outputs(r: &mut RtpReceiver) -> Vec<AccessUnit> {
        std::iter::from_fn(|| r.poll_output())
            .map(|o| match o {
                Received::AccessUnit(au) => au,
                Received::Frame(_) => panic!("H.264 expected"),
            })
            .collect()
    }

    #[test]
    fn reordered_packets_come_out_whole() {
        let aus = keyframe_and_deltas(6);
        let b = batch(&aus, 1);
        // Swap every pair after the first packet (the first one received
        // starts the stream: anything before it would be late).
        let mut order: Vec<usize> = (0..b.len()).collect();
        for pair in order[1..].chunks_mut(2) {
            pair.reverse();
        }
        let mut r = RtpReceiver::new(ReceiverConfig::new(StreamKind::H264 { parameter_sets: vec![] }));
        for i in order {
            r.handle_packet(b.get(i).unwrap(), 0);
        }
        let got: Vec<Vec<u8>> = outputs(&mut r).into_iter().map(|a| a.data).collect();
        assert!(got == aus, "{} of {} access units came out whole", got.len(), aus.len());
        assert!(r.stats().reorder.reordered > 0 && r.stats().lost() == 0);
    }

    #[test]
    fn deterministic_loss_is_counted_and_recovers_at_the_next_keyframe() {
        let aus = keyframe_and_deltas(10);
        let b = batch(&aus, 1);
        let mut config = ReceiverConfig::new(StreamKind::H264 { parameter_sets: vec![] });
        config.reorder_window = 4;
        let mut r = RtpReceiver::new(config);
        // Each AU is 3 packets; drop packet 7 (AU 2).
        for i in (0..b.len()).filter(|i| *i != 7) {
            r.handle_packet(b.get(i).unwrap(), i as u64);
            if i == 12 {
                assert!(r.needs_keyframe(), "the loss is known once the window moved past it");
            }
        }
        assert!(!r.needs_keyframe());
        let got: Vec<Vec<u8>> = outputs(&mut r).into_iter().map(|a| a.data).collect();
        // AUs 2, 3, 4 are lost (2 broken, 3-4 waiting for keyframe 5).
        assert_eq!(got, [&aus[..2], &aus[5..]].concat());
        let s = r.stats();
        assert_eq!((s.lost(), s.h264.dropped_broken, s.h264.dropped_waiting_keyframe), (1, 1, 2));
        assert_eq!(s.frames_dropped(), 3);
    }

    #[test]
    fn foreign_ssrc_and_payload_types_are_ignored_until_the_stream_goes_quiet() {
        let aus = keyframe_and_deltas(1);
        let mut r = RtpReceiver::new(ReceiverConfig::new(StreamKind::H264 { parameter_sets: vec![] }));
        let ours = batch(&aus, 1);
        let theirs = batch(&aus, 2);
        r.handle_packet(ours.get(0).unwrap(), 0);
        r.handle_packet(theirs.get(0).unwrap(), 1_000);
        let mut other_pt = ours.get(1).unwrap().to_vec();
        other_pt[1] = (other_pt[1] & 0x80) | 97;
        r.handle_packet(&other_pt, 2_000);
        assert_eq!((r.stats().foreign_ssrc, r.stats().wrong_payload_type), (1, 1));
        for i in 1..ours.len() {
            r.handle_packet(ours.get(i).unwrap(), 3_000);
        }
        assert_eq!(outputs(&mut r).len(), 1);
        // Two seconds of silence: the other sender takes over.
        for i in 0..theirs.len() {
            r.handle_packet(theirs.get(i).unwrap(), 2_000_000_000);
        }
        assert_eq!(outputs(&mut r).len(), 1);
        assert_eq!((r.ssrc(), r.stats().ssrc_changes), (Some(2), 1));
    }
}
