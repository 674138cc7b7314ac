//! Uncompressed video over RTP, RFC 4175 — the payload of SMPTE ST 2110-20 —
//! for YCbCr 4:2:2 8-bit (one pixel group = 4 bytes = 2 pixels, `U Y V Y`).
//!
//! Each payload starts with the high 16 bits of a 32-bit sequence number,
//! then one 6-byte header per line segment, then the segments' pixels:
//!
//! ```text
//! |   Extended Sequence Number    |            Length             |
//! |F|          Line No            |C|           Offset            |
//! |            Length             |F|          Line No            |
//! |C|           Offset            |   (pixel data of segment 1, then 2 …)
//! ```
//!
//! `Length` is in bytes (whole pixel groups), `Offset` in pixels, and `C`
//! says another header follows. The packetiser fills each packet with as
//! many (parts of) lines as fit — several short lines per packet, a long
//! line across packets — as FFmpeg's does; the marker bit ends the frame.
//!
//! The depacketiser checks every header against the frame before copying a
//! byte (a segment outside the frame, a length that is not whole pixel
//! groups or runs past the payload drops the packet and is counted), then
//! copies the segments straight into a pooled frame buffer. Lost packets
//! leave their area holding what that buffer last held; such frames are
//! flagged incomplete.

use std::collections::VecDeque;

use streamkit_core::frame::{Buffer, BufferPool};
use streamkit_core::{Error, Result};

use crate::packet::{extend, PacketBatch, RtpHeader, RtpPacket, RtpSender, RTP_HEADER_LEN};
use crate::uyvy::PGROUP_BYTES;

/// Pixels per 4:2:2 pixel group.
const PGROUP_PIXELS: usize = 2;
/// Bytes of one line segment header.
const SEGMENT_HEADER: usize = 6;
/// Line numbers and offsets are 15-bit fields.
const MAX_LINE_FIELD: u32 = 0x7fff;
/// Frames the depacketiser's pool keeps idle for reuse.
const POOL_IDLE: usize = 4;

/// The picture an RFC 4175 stream carries: YCbCr 4:2:2, 8 bit, progressive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFormat {
    pub width: u32,
    pub height: u32,
}

impl RawFormat {
    /// Checks the size: an even width (pixel groups are 2 pixels), each side
    /// at most streamkit's `MAX_DIMENSION` and the 15-bit header fields.
    pub fn new(width: u32, height: u32) -> Result<RawFormat> {
        let max = streamkit_core::frame::MAX_DIMENSION.min(MAX_LINE_FIELD);
        if width == 0 || height == 0 || width > max || height > max {
            return Err(Error::invalid(format!("RFC 4175 frame size {width}x{height} is out of range (1..={max})")));
        }
        if !width.is_multiple_of(2) {
            return Err(Error::invalid(format!("YCbCr 4:2:2 needs an even width, got {width}x{height}")));
        }
        Ok(RawFormat { width, height })
    }

    /// Bytes per line.
    pub fn stride(&self) -> usize {
        self.width as usize * 2
    }

    /// Bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.stride() * self.height as usize
    }
}

/// One line segment: `pixels` pixels of line `line` from pixel `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    line: usize,
    offset: usize,
    pixels: usize,
}

/// Cuts UYVY frames into RFC 4175 packets. See the module documentation.
#[derive(Clone, Debug)]
pub struct RawPacketizer {
    sender: RtpSender,
    format: RawFormat,
    max_payload: usize,
    segments: Vec<Segment>,
}

impl RawPacketizer {
    /// `mtu`: the largest RTP packet, header included (at least 64 bytes).
    pub fn new(sender: RtpSender, format: RawFormat, mtu: usize) -> RawPacketizer {
        let mtu = mtu.clamp(64, crate::packet::MAX_UDP_PAYLOAD);
        RawPacketizer { sender, format, max_payload: mtu - RTP_HEADER_LEN, segments: Vec::new() }
    }

    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    pub fn format(&self) -> RawFormat {
        self.format
    }

    /// Appends the packets of one frame (`height` rows of `stride` bytes of
    /// UYVY) to `out`; returns how many.
    ///
    /// # Panics
    /// If `uyvy` is smaller than the frame.
    pub fn packetize(&mut self, uyvy: &[u8], stride: usize, timestamp: u32, out: &mut PacketBatch) -> usize {
        let (width, height) = (self.format.width as usize, self.format.height as usize);
        assert!(
            stride >= width * 2 && uyvy.len() >= stride * (height - 1) + width * 2,
            "UYVY frame of {} bytes (stride {stride}) is smaller than {width}x{height}",
            uyvy.len()
        );
        let first = out.len();
        let (mut line, mut offset) = (0, 0);
        while line < height {
            // Plan the packet: segments while a header and a pixel group fit.
            self.segments.clear();
            let mut left = self.max_payload - 2;
            while line < height && left >= SEGMENT_HEADER + PGROUP_BYTES {
                let fit = (left - SEGMENT_HEADER) / PGROUP_BYTES * PGROUP_PIXELS;
                let pixels = fit.min(width - offset);
                self.segments.push(Segment { line, offset, pixels });
                left -= SEGMENT_HEADER + pixels * 2;
                offset += pixels;
                if offset == width {
                    line += 1;
                    offset = 0;
                }
            }
            let sequence = self.sender.begin(out, line == height, timestamp);
            out.data.extend_from_slice(&((sequence >> 16) as u16).to_be_bytes());
            let count = self.segments.len();
            for (i, s) in self.segments.iter().enumerate() {
                let more = if i + 1 < count { 0x8000 } else { 0 };
                out.data.extend_from_slice(&((s.pixels * 2) as u16).to_be_bytes());
                out.data.extend_from_slice(&(s.line as u16).to_be_bytes());
                out.data.extend_from_slice(&(more | s.offset as u16).to_be_bytes());
            }
            for s in &self.segments {
                out.data.extend_from_slice(&uyvy[s.line * stride + s.offset * 2..][..s.pixels * 2]);
            }
            self.sender.end(out);
        }
        out.len() - first
    }
}

/// The 32-bit RFC 4175 sequence number of a packet: the payload's extended
/// sequence number above the header's 16 bits. `None` for a payload too
/// short to hold it.
pub fn wire_sequence(packet: &RtpPacket<'_>) -> Option<u64> {
    let high = packet.payload.get(..2)?;
    Some(((u16::from_be_bytes([high[0], high[1]]) as u64) << 16) | packet.header.sequence as u64)
}

/// A frame put back together, as UYVY in a pooled buffer.
#[derive(Clone, Debug)]
pub struct RawFrame {
    /// `format.height` rows of `format.stride()` bytes, UYVY.
    pub buffer: Buffer,
    pub format: RawFormat,
    /// The RTP timestamp extended to 64 bits (90 kHz).
    pub timestamp: u64,
    /// When its first packet arrived (the caller's clock).
    pub arrival_ns: u64,
    /// Every byte arrived and no packet was lost.
    pub complete: bool,
    /// Packets known lost while this frame was assembled.
    pub packets_lost: u64,
}

impl RawFrame {
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_slice()[..self.format.frame_bytes()]
    }
}

/// Counters of a [`RawDepacketizer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawStats {
    pub packets: u64,
    /// Packets dropped for headers that break RFC 4175 or fall outside the frame.
    pub malformed: u64,
    pub frames: u64,
    /// Frames delivered with missing parts.
    pub frames_incomplete: u64,
    /// Incomplete frames dropped (when asked to drop them).
    pub frames_dropped: u64,
}

struct InProgress {
    buffer: Buffer,
    timestamp: u64,
    arrival_ns: u64,
    bytes: usize,
    lost: u64,
}

/// Puts RFC 4175 frames back together. See the module documentation.
pub struct RawDepacketizer {
    format: RawFormat,
    pool: BufferPool,
    current: Option<InProgress>,
    last_sequence: Option<u64>,
    last_timestamp: Option<u64>,
    /// Drop frames with missing parts instead of delivering them flagged.
    pub drop_incomplete: bool,
    out: VecDeque<RawFrame>,
    stats: RawStats,
    segments: Vec<Segment>,
}

impl std::fmt::Debug for RawDepacketizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDepacketizer").field("format", &self.format).field("stats", &self.stats).finish()
    }
}

impl RawDepacketizer {
    pub fn new(format: RawFormat) -> RawDepacketizer {
        RawDepacketizer {
            format,
            pool: BufferPool::new(format.frame_bytes(), POOL_IDLE),
            current: None,
            last_sequence: None,
            last_timestamp: None,
            drop_incomplete: false,
            out: VecDeque::new(),
            stats: RawStats::default(),
            segments: Vec::new(),
        }
    }

    pub fn format(&self) -> RawFormat {
        self.format
    }

    pub fn stats(&self) -> RawStats {
        self.stats
    }

    /// A completed frame, oldest first.
    pub fn pop(&mut self) -> Option<RawFrame> {
        self.out.pop_front()
    }

    /// Takes one packet; `sequence` is its extended sequence number (from
    /// the 32-bit RFC 4175 one), and packets must come in sequence order.
    pub fn push(&mut self, sequence: u64, packet: &RtpPacket<'_>, arrival_ns: u64) {
        self.push_parts(sequence, &packet.header, packet.payload, arrival_ns);
    }

    /// [`RawDepacketizer::push`] with the header and payload apart.
    pub fn push_parts(&mut self, sequence: u64, header: &RtpHeader, payload: &[u8], arrival_ns: u64) {
        self.stats.packets += 1;
        let mut lost = match self.last_sequence {
            Some(last) if sequence > last => sequence - last - 1,
            _ => 0,
        };
        self.last_sequence = Some(sequence);
        let timestamp = extend(self.last_timestamp, header.timestamp as u64, 32);
        self.last_timestamp = Some(timestamp);

        if self.current.as_ref().is_some_and(|c| c.timestamp != timestamp) {
            // Lost packets between two timestamps are counted against the
            // frame they ended; the next frame's own bytes show whether it
            // lost its start.
            if let Some(current) = &mut self.current {
                current.lost += lost;
            }
            lost = 0;
            self.finish();
        }
        let data_start = match self.parse_segments(payload) {
            Some(start) => start,
            None => {
                self.stats.malformed += 1;
                if let Some(current) = &mut self.current {
                    current.lost += lost;
                }
                return;
            }
        };
        let current = self.current.get_or_insert_with(|| InProgress {
            buffer: self.pool.acquire(),
            timestamp,
            arrival_ns,
            bytes: 0,
            lost: 0,
        });
        current.lost += lost;
        let frame = current.buffer.make_mut();
        let stride = self.format.stride();
        let mut at = data_start;
        for s in &self.segments {
            let len = s.pixels * 2;
            frame[s.line * stride + s.offset * 2..][..len].copy_from_slice(&payload[at..at + len]);
            at += len;
            current.bytes += len;
        }
        if header.marker {
            self.finish();
        }
    }

    /// Reads and checks the segment headers into `self.segments`; returns
    /// where the pixel data starts, or `None` when any header is bad.
    fn parse_segments(&mut self, payload: &[u8]) -> Option<usize> {
        self.segments.clear();
        let (width, height) = (self.format.width as usize, self.format.height as usize);
        let mut at = 2;
        let mut data = 0;
        loop {
            let h = payload.get(at..at + SEGMENT_HEADER)?;
            let length = u16::from_be_bytes([h[0], h[1]]) as usize;
            let field = h[2] & 0x80 != 0;
            let line = (u16::from_be_bytes([h[2], h[3]]) & 0x7fff) as usize;
            let more = h[4] & 0x80 != 0;
            let offset = (u16::from_be_bytes([h[4], h[5]]) & 0x7fff) as usize;
            at += SEGMENT_HEADER;
            let pixels = length / PGROUP_BYTES * PGROUP_PIXELS;
            let fits = !field
                && length.is_multiple_of(PGROUP_BYTES)
                && line < height
                && offset.is_multiple_of(PGROUP_PIXELS)
                && offset + pixels <= width;
            if !fits {
                return None;
            }
            data += length;
            self.segments.push(Segment { line, offset, pixels });
            if !more {
                break;
            }
        }
        (at + data <= payload.len()).then_some(at)
    }

    /// Ends the frame in progress (end of stream or a timeout).
    pub fn flush(&mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let Some(current) = self.current.take() else { return };
        let complete = current.lost == 0 && current.bytes >= self.format.frame_bytes();
        if !complete {
            self.stats.frames_incomplete += 1;
            if self.drop_incomplete {
                self.stats.frames_dropped += 1;
                return;
            }
        }
        self.stats.frames += 1;
        self.out.push_back(RawFrame {
            buffer: current.buffer,
            format: self.format,
            timestamp: current.timestamp,
            arrival_ns: current.arrival_ns,
            complete,
            packets_lost: current.lost,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(format: RawFormat, seed: u8) -> Vec<u8> {
        (0..format.frame_bytes()).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
    }

    fn packets(format: RawFormat, frames: &[Vec<u8>], mtu: usize) -> PacketBatch {
        let mut p = RawPacketizer::new(RtpSender::new(3, 96, 65530), format, mtu);
        let mut batch = PacketBatch::new();
        for (i, f) in frames.iter().enumerate() {
            p.packetize(f, format.stride(), 1000 + 3000 * i as u32, &mut batch);
        }
        batch
    }

    fn feed(d: &mut RawDepacketizer, batch: &PacketBatch, skip: &[usize]) -> Vec<RawFrame> {
        for (i, bytes) in batch.iter().enumerate() {
            if !skip.contains(&i) {
                let packet = RtpPacket::parse(bytes).unwrap();
                d.push(wire_sequence(&packet).unwrap(), &packet, 0);
            }
        }
        std::iter::from_fn(|| d.pop()).collect()
    }

    #[test]
    fn layout_matches_ffmpeg_and_rfc_4175() {
        // 320x240 at FFmpeg's 1472-byte packets: two full lines, then 80
        // pixels of the third (what FFmpeg 5.1 sends, captured).
        let format = RawFormat::new(320, 240).unwrap();
        let batch = packets(format, &[picture(format, 0)], 1472);
        let first = RtpPacket::parse(batch.get(0).unwrap()).unwrap();
        assert_eq!(&first.payload[..20], &[0, 0, 2, 0x80, 0, 0, 0x80, 0, 2, 0x80, 0, 1, 0x80, 0, 0, 0xa0, 0, 2, 0, 0]);
        let second = RtpPacket::parse(batch.get(1).unwrap()).unwrap();
        assert_eq!(&second.payload[2..8], &[1, 0xe0, 0, 2, 0x80, 80]);
        assert!(batch.iter().all(|p| p.len() <= 1472));
        let markers: Vec<bool> = batch.iter().map(|p| RtpPacket::parse(p).unwrap().header.marker).collect();
        assert_eq!(markers.iter().filter(|m| **m).count(), 1);
        assert!(markers[markers.len() - 1]);
    }

    #[test]
    fn frames_round_trip_with_extended_sequence_numbers() {
        let format = RawFormat::new(64, 8).unwrap();
        let frames = [picture(format, 1), picture(format, 2), picture(format, 3)];
        let batch = packets(format, &frames, 200);
        // The sequence numbers cross 65535 → 0: the extended part counts up.
        let highs: Vec<u8> = batch.iter().map(|p| RtpPacket::parse(p).unwrap().payload[1]).collect();
        assert_eq!((highs[0], highs[highs.len() - 1]), (0, 1));
        let mut d = RawDepacketizer::new(format);
        let out = feed(&mut d, &batch, &[]);
        assert_eq!(out.len(), 3);
        for (got, want) in out.iter().zip(&frames) {
            assert!(got.complete);
            assert_eq!(got.data(), &want[..]);
        }
        assert_eq!(out[1].timestamp - out[0].timestamp, 3000);
    }

    #[test]
    fn a_lost_packet_flags_the_frame_incomplete() {
        let format = RawFormat::new(64, 8).unwrap();
        let frames = [picture(format, 1), picture(format, 2)];
        let batch = packets(format, &frames, 200);
        let per_frame = batch.len() / 2;
        let mut d = RawDepacketizer::new(format);
        let out = feed(&mut d, &batch, &[1]);
        assert_eq!(out.len(), 2);
        assert!(!out[0].complete && out[0].packets_lost == 1);
        assert!(out[1].complete);
        // Losing the marker packet: the frame ends at the next timestamp.
        let mut d = RawDepacketizer::new(format);
        let out = feed(&mut d, &batch, &[per_frame - 1]);
        assert_eq!(out.len(), 2);
        assert!(!out[0].complete);
        let mut d = RawDepacketizer::new(format);
        d.drop_incomplete = true;
        assert_eq!(feed(&mut d, &batch, &[1]).len(), 1);
        assert_eq!(d.stats().frames_dropped, 1);
    }

    #[test]
    fn headers_outside_the_frame_drop_the_packet() {
        let format = RawFormat::new(16, 4).unwrap();
        let mut d = RawDepacketizer::new(format);
        let header = RtpHeader { marker: false, payload_type: 96, sequence: 0, timestamp: 5, ssrc: 1 };
        let bad: [&[u8]; 7] = [
            &[0, 0],                                            // no segment header
            &[0, 0, 0, 8, 0, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],  // line 4 of 4
            &[0, 0, 0, 8, 0, 0, 0, 14, 1, 2, 3, 4, 5, 6, 7, 8], // offset 14 + 4 pixels > 16
            &[0, 0, 0, 6, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6],        // not whole pixel groups
            &[0, 0, 0, 8, 0, 0, 0, 0, 1, 2, 3],                 // data shorter than the length
            &[0, 0, 0, 4, 0x80, 0, 0, 0, 1, 2, 3, 4],           // second field: not progressive
            &[0, 0, 0, 4, 0, 0, 0x80, 0, 1, 2, 3, 4],           // continuation without a next header
        ];
        for (i, payload) in bad.iter().enumerate() {
            d.push_parts(i as u64, &header, payload, 0);
        }
        assert_eq!(d.stats().malformed, bad.len() as u64);
        d.flush();
        assert!(d.pop().is_none(), "nothing was written, no frame started");
    }

    #[test]
    fn several_lines_per_packet_with_a_large_mtu() {
        // 32 lines of 64 bytes: 21 lines (70 bytes with their headers) in the
        // first packet, 11 in the second.
        let format = RawFormat::new(32, 32).unwrap();
        let batch = packets(format, &[picture(format, 9)], 1500);
        assert_eq!(batch.len(), 2);
        let mut d = RawDepacketizer::new(format);
        assert_eq!(feed(&mut d, &batch, &[])[0].data(), &picture(format, 9)[..]);
    }
}
