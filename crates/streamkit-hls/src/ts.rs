//! An MPEG-2 transport stream muxer (ISO/IEC 13818-1) for one H.264 video
//! stream, as HLS wants it (RFC 8216 §3.2, Apple's HLS authoring spec).
//!
//! * one program (number 1): PAT on PID 0, PMT on [`PMT_PID`], video on
//!   [`VIDEO_PID`] (stream type 0x1B); [`AUDIO_PID`] and
//!   [`STREAM_TYPE_AAC_ADTS`] are reserved for AAC audio;
//! * every access unit becomes one PES packet with PTS and DTS (33 bits,
//!   90 kHz), starting with an access unit delimiter (inserted when the
//!   encoder left it out) and, on IDR pictures, SPS and PPS (re-inserted from
//!   the last ones seen when missing);
//! * the first packet of every PES carries the PCR and, on keyframes, the
//!   random access indicator; when access units are further apart than
//!   [`PCR_INTERVAL_90K`] (below 25 fps), packets with only a PCR fill the
//!   gap, so the PCR never goes more than 40 ms without an update;
//! * [`TsMuxer::write_tables`] writes PAT + PMT: call it at the start of
//!   every segment, so each segment can be played on its own.
//!
//! Timestamps are shifted by [`TIMESTAMP_OFFSET_90K`] (0.7 s, like FFmpeg's
//! default mux delay) on the way out, and the PCR runs that far behind the
//! DTS: the decoder has 0.7 s of buffer, and a stream starting at 0 never
//! needs a negative PCR. Continuity counters carry on across segments,
//! which is what RFC 8216 asks of consecutive segments.

use streamkit_h264::nal::{nal_type, nal_units, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};

/// Bytes in one transport stream packet.
pub const TS_PACKET_SIZE: usize = 188;
/// Program association table.
pub const PAT_PID: u16 = 0x0000;
/// Program map table of our one program.
pub const PMT_PID: u16 = 0x1000;
/// The H.264 elementary stream; it also carries the PCR.
pub const VIDEO_PID: u16 = 0x0100;
/// Reserved for an AAC elementary stream.
pub const AUDIO_PID: u16 = 0x0101;
/// `stream_type` of H.264 video (ISO/IEC 13818-1 table 2-34).
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// `stream_type` of AAC audio in ADTS.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// The program number in the PAT and PMT.
pub const PROGRAM_NUMBER: u16 = 1;
/// PES `stream_id` of the first video stream.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// PES `stream_id` of the first audio stream.
pub const STREAM_ID_AUDIO: u8 = 0xC0;
/// Added to every PTS and DTS written; the PCR equals the input DTS.
pub const TIMESTAMP_OFFSET_90K: u64 = 63_000;
/// Longest gap between two PCRs (40 ms; ISO/IEC 13818-1 allows 100 ms).
pub const PCR_INTERVAL_90K: u64 = 3_600;
/// A gap between access units longer than this is not filled with PCR
/// packets (a stalled source is not worth 25 packets a second).
const MAX_PCR_FILL_90K: u64 = 90_000;
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// Access unit delimiter with `primary_pic_type` 7 (any slice type).
const AUD_NAL: [u8; 2] = [0x09, 0xF0];
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One elementary stream listed in the PMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EsInfo {
    stream_type: u8,
    pid: u16,
}

/// Writes access units and tables as 188-byte transport stream packets.
#[derive(Debug)]
pub struct TsMuxer {
    streams: Vec<EsInfo>,
    pat_cc: u8,
    pmt_cc: u8,
    video_cc: u8,
    /// Parameter sets from the last access unit that carried them, with start codes.
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
    /// PCR base (90 kHz) last written.
    last_pcr: Option<u64>,
    warned_missing_parameter_sets: bool,
    pes: Vec<u8>,
}

impl Default for TsMuxer {
    fn default() -> Self {
        TsMuxer::new()
    }
}

impl TsMuxer {
    /// A muxer for one H.264 stream on [`VIDEO_PID`].
    pub fn new() -> TsMuxer {
        TsMuxer {
            streams: vec![EsInfo { stream_type: STREAM_TYPE_H264, pid: VIDEO_PID }],
            pat_cc: 0,
            pmt_cc: 0,
            video_cc: 0,
            sps: Vec::new(),
            pps: Vec::new(),
            last_pcr: None,
            warned_missing_parameter_sets: false,
            pes: Vec::new(),
        }
    }

    /// Appends a PAT and a PMT (two packets). Call at the start of each segment.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let mut pat = Vec::with_capacity(16);
        pat.push(0x00); // table_id: program_association_section
        push_section_length(&mut pat, 5 + 4 + 4);
        pat.extend_from_slice(&1u16.to_be_bytes()); // transport_stream_id
        pat.extend_from_slice(&[0xC1, 0x00, 0x00]); // version 0, current, section 0 of 0
        pat.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pat.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        write_section(out, PAT_PID, &mut self.pat_cc, pat);

        let mut pmt = Vec::with_capacity(32);
        pmt.push(0x02); // table_id: TS_program_map_section
        push_section_length(&mut pmt, 9 + 5 * self.streams.len() + 4);
        pmt.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pmt.extend_from_slice(&[0xC1, 0x00, 0x00]);
        pmt.extend_from_slice(&(0xE000 | VIDEO_PID).to_be_bytes()); // PCR_PID
        pmt.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
        for es in &self.streams {
            pmt.push(es.stream_type);
            pmt.extend_from_slice(&(0xE000 | es.pid).to_be_bytes());
            pmt.extend_from_slice(&0xF000u16.to_be_bytes()); // ES_info_length 0
        }
        write_section(out, PMT_PID, &mut self.pmt_cc, pmt);
    }

    /// Appends one H.264 access unit (Annex-B, with or without AUD and
    /// parameter sets) as a PES packet split into transport packets.
    /// `pts_90k` / `dts_90k` are in 90 kHz ticks; `keyframe` sets the random
    /// access indicator.
    pub fn write_access_unit(&mut self, annexb: &[u8], pts_90k: u64, dts_90k: u64, keyframe: bool, out: &mut Vec<u8>) {
        let mut es = std::mem::take(&mut self.pes);
        es.clear();
        // PES header, completed below once the flags are known.
        let pts = (pts_90k + TIMESTAMP_OFFSET_90K) & TIMESTAMP_MASK;
        let dts = (dts_90k + TIMESTAMP_OFFSET_90K) & TIMESTAMP_MASK;
        es.extend_from_slice(&[0x00, 0x00, 0x01, STREAM_ID_VIDEO, 0x00, 0x00]); // unbounded length (video)
        if pts == dts {
            es.extend_from_slice(&[0x84, 0x80, 5]); // data_alignment; PTS only
            push_timestamp(&mut es, 0b0010, pts);
        } else {
            es.extend_from_slice(&[0x84, 0xC0, 10]); // data_alignment; PTS and DTS
            push_timestamp(&mut es, 0b0011, pts);
            push_timestamp(&mut es, 0b0001, dts);
        }
        self.append_elementary_stream(annexb, keyframe, &mut es);

        let pcr = dts_90k & TIMESTAMP_MASK;
        self.fill_pcr_gap(pcr, out);
        let mut rest = &es[..];
        let mut first = true;
        while !rest.is_empty() {
            let adaptation =
                if first { Adaptation { random_access: keyframe, pcr: Some(pcr) } } else { Adaptation::NONE };
            let used = write_packet(out, VIDEO_PID, first, &mut self.video_cc, adaptation, rest);
            rest = &rest[used..];
            first = false;
        }
        self.last_pcr = Some(pcr);
        self.pes = es;
    }

    /// Rewrites the access unit into `es`: AUD first, SPS/PPS before IDR pictures.
    fn append_elementary_stream(&mut self, annexb: &[u8], keyframe: bool, es: &mut Vec<u8>) {
        let (mut has_sps, mut has_pps, mut has_idr, mut aud) = (false, false, false, None);
        for nal in nal_units(annexb) {
            match nal_type(nal) {
                NAL_SPS => has_sps = true,
                NAL_PPS => has_pps = true,
                NAL_IDR => has_idr = true,
                NAL_AUD if aud.is_none() => aud = Some(nal),
                _ => {}
            }
        }
        if has_sps || has_pps {
            // Remember this access unit's parameter sets for later IDRs without them.
            let kind = |t: u8| nal_units(annexb).filter(move |n| nal_type(n) == t).map(with_start_code);
            if has_sps {
                self.sps = kind(NAL_SPS).collect();
            }
            if has_pps {
                self.pps = kind(NAL_PPS).collect();
            }
        }
        es.extend_from_slice(&START_CODE);
        es.extend_from_slice(aud.unwrap_or(&AUD_NAL));
        if keyframe || has_idr {
            let missing = (!has_sps && self.sps.is_empty()) || (!has_pps && self.pps.is_empty());
            if missing && !self.warned_missing_parameter_sets {
                tracing::warn!(
                    "IDR access unit without SPS/PPS and none seen before: the segment will not decode alone"
                );
                self.warned_missing_parameter_sets = true;
            }
            if !has_sps {
                self.sps.iter().for_each(|n| es.extend_from_slice(n));
            }
            if !has_pps {
                self.pps.iter().for_each(|n| es.extend_from_slice(n));
            }
        }
        let mut aud_skipped = false;
        for nal in nal_units(annexb) {
            if !aud_skipped && aud.is_some_and(|a| std::ptr::eq(a, nal)) {
                aud_skipped = true;
                continue;
            }
            es.extend_from_slice(&START_CODE);
            es.extend_from_slice(nal);
        }
    }

    /// Writes packets with only a PCR so that consecutive PCRs are at most
    /// [`PCR_INTERVAL_90K`] apart up to `next_pcr`.
    fn fill_pcr_gap(&mut self, next_pcr: u64, out: &mut Vec<u8>) {
        let Some(mut last) = self.last_pcr else { return };
        let gap = next_pcr.wrapping_sub(last) & TIMESTAMP_MASK;
        if gap <= PCR_INTERVAL_90K || gap > MAX_PCR_FILL_90K {
            return;
        }
        let end = last + gap;
        while last + PCR_INTERVAL_90K < end {
            last += PCR_INTERVAL_90K;
            let adaptation = Adaptation { random_access: false, pcr: Some(last & TIMESTAMP_MASK) };
            write_packet(out, VIDEO_PID, false, &mut self.video_cc, adaptation, &[]);
        }
    }
}

fn with_start_code(nal: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(nal.len() + 4);
    v.extend_from_slice(&START_CODE);
    v.extend_from_slice(nal);
    v
}

/// Adaptation field contents besides stuffing.
#[derive(Clone, Copy, Debug)]
struct Adaptation {
    random_access: bool,
    /// PCR base in 90 kHz ticks (the 27 MHz extension is always 0).
    pcr: Option<u64>,
}

impl Adaptation {
    const NONE: Adaptation = Adaptation { random_access: false, pcr: None };

    /// Bytes of adaptation field needed without stuffing (0: none needed).
    fn len(self) -> usize {
        if self.pcr.is_some() {
            8
        } else if self.random_access {
            2
        } else {
            0
        }
    }
}

/// Writes one 188-byte packet carrying as much of `payload` as fits; a short
/// payload is padded with adaptation-field stuffing. An empty payload writes
/// an adaptation-field-only packet (its continuity counter does not advance).
/// Returns the payload bytes used.
fn write_packet(out: &mut Vec<u8>, pid: u16, unit_start: bool, cc: &mut u8, af: Adaptation, payload: &[u8]) -> usize {
    let af_len = af.len();
    let room = TS_PACKET_SIZE - 4 - af_len;
    let used = payload.len().min(room);
    let stuffing = room - used;
    let has_af = af_len > 0 || stuffing > 0;
    let counter = if used > 0 {
        let c = *cc;
        *cc = (*cc + 1) & 0x0F;
        c
    } else {
        (*cc + 15) & 0x0F
    };
    let control = match (has_af, used > 0) {
        (true, true) => 0b11,
        (true, false) => 0b10,
        _ => 0b01,
    };
    let start = out.len();
    out.push(0x47);
    out.push(((unit_start as u8) << 6) | ((pid >> 8) as u8 & 0x1F));
    out.push(pid as u8);
    out.push((control << 4) | counter);
    if has_af {
        let field_len = af_len + stuffing - 1; // bytes after the length byte
        out.push(field_len as u8);
        if field_len > 0 {
            let flags = ((af.random_access as u8) << 6) | ((af.pcr.is_some() as u8) << 4);
            out.push(flags);
            if let Some(base) = af.pcr {
                // 33-bit base, 6 reserved bits, 9-bit extension (0).
                let base = base & TIMESTAMP_MASK;
                out.extend_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    (((base & 1) as u8) << 7) | 0x7E,
                    0x00,
                ]);
            }
            out.resize(start + 4 + 1 + field_len, 0xFF);
        }
    }
    out.extend_from_slice(&payload[..used]);
    debug_assert_eq!(out.len() - start, TS_PACKET_SIZE);
    used
}

/// `section_syntax_indicator` = 1, '0', reserved '11', 12-bit length.
fn push_section_length(section: &mut Vec<u8>, len: usize) {
    section.extend_from_slice(&(0xB000 | len as u16).to_be_bytes());
}

/// Writes a PSI section (CRC appended here) as one packet with pointer_field 0.
fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, mut section: Vec<u8>) {
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    let mut payload = Vec::with_capacity(TS_PACKET_SIZE - 4);
    payload.push(0x00); // pointer_field
    payload.extend_from_slice(&section);
    payload.resize(TS_PACKET_SIZE - 4, 0xFF); // section stuffing, not adaptation stuffing
    write_packet(out, pid, true, cc, Adaptation::NONE, &payload);
}

/// A PTS or DTS field: 4-bit prefix, then 33 bits split 3/15/15 with marker bits.
fn push_timestamp(out: &mut Vec<u8>, prefix: u8, ts: u64) {
    let ts = ts & TIMESTAMP_MASK;
    out.push((prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1);
    out.extend_from_slice(&(((((ts >> 15) & 0x7FFF) << 1) | 1) as u16).to_be_bytes());
    out.extend_from_slice(&((((ts & 0x7FFF) << 1) | 1) as u16).to_be_bytes());
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection,
/// no final xor), as PSI sections use it.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFFu32, |crc, &b| (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize])
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04C1_1DB7 } else { c << 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// What a test demuxer learned from a transport stream.
    #[derive(Debug, Default)]
    pub(crate) struct Demuxed {
        pub pat_pmt_pid: Option<u16>,
        pub pmt_streams: Vec<(u8, u16)>,
        pub pcr_pid: Option<u16>,
        /// (pts, dts, random_access, payload) per video PES, output timestamps.
        pub pes: Vec<(u64, u64, bool, Vec<u8>)>,
        /// (packet index, PCR base) for every PCR seen.
        pub pcrs: Vec<(usize, u64)>,
        pub packets: usize,
    }

    fn read_ts(b: &[u8]) -> u64 {
        (((b[0] as u64 >> 1) & 7) << 30)
            | ((b[1] as u64) << 22)
            | (((b[2] as u64) >> 1) << 15)
            | ((b[3] as u64) << 7)
            | ((b[4] as u64) >> 1)
    }

    /// A strict little demuxer: checks sync bytes, continuity counters, CRCs
    /// and adaptation-field lengths while it reassembles video PES packets.
    pub(crate) fn demux(data: &[u8]) -> Demuxed {
        assert_eq!(data.len() % TS_PACKET_SIZE, 0, "whole packets only");
        let mut d = Demuxed::default();
        let mut ccs: HashMap<u16, u8> = HashMap::new();
        let mut current: Option<(u64, u64, bool, Vec<u8>)> = None;
        for (i, p) in data.chunks(TS_PACKET_SIZE).enumerate() {
            d.packets += 1;
            assert_eq!(p[0], 0x47, "sync byte of packet {i}");
            let pusi = p[1] & 0x40 != 0;
            let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
            let control = (p[3] >> 4) & 3;
            let cc = p[3] & 0x0F;
            assert_ne!(control, 0, "reserved adaptation_field_control");
            let mut pos = 4;
            let mut random_access = false;
            if control & 2 != 0 {
                let len = p[4] as usize;
                assert!(len <= 183, "adaptation field too long");
                if control == 2 {
                    assert_eq!(len, 183, "an adaptation-only packet fills the packet");
                }
                if len > 0 {
                    random_access = p[5] & 0x40 != 0;
                    if p[5] & 0x10 != 0 {
                        let b = &p[6..12];
                        let base = ((b[0] as u64) << 25)
                            | ((b[1] as u64) << 17)
                            | ((b[2] as u64) << 9)
                            | ((b[3] as u64) << 1)
                            | ((b[4] as u64) >> 7);
                        d.pcrs.push((i, base));
                    }
                }
                pos = 5 + len;
            }
            if control & 1 != 0 {
                if let Some(prev) = ccs.insert(pid, cc) {
                    assert_eq!(cc, (prev + 1) & 0x0F, "continuity counter on PID {pid:#x}, packet {i}");
                }
            }
            let payload = &p[pos..];
            if control & 1 == 0 {
                continue;
            }
            if pid == PAT_PID || Some(pid) == d.pat_pmt_pid {
                assert!(pusi);
                let pointer = payload[0] as usize;
                let section = &payload[1 + pointer..];
                let len = (u16::from_be_bytes([section[1], section[2]]) & 0x0FFF) as usize;
                let whole = &section[..3 + len];
                assert_eq!(crc32_mpeg2(&whole[..whole.len() - 4]).to_be_bytes(), whole[whole.len() - 4..], "CRC");
                if pid == PAT_PID {
                    assert_eq!(section[0], 0);
                    d.pat_pmt_pid = Some(u16::from_be_bytes([section[10], section[11]]) & 0x1FFF);
                } else {
                    assert_eq!(section[0], 2);
                    d.pcr_pid = Some(u16::from_be_bytes([section[8], section[9]]) & 0x1FFF);
                    let info_len = (u16::from_be_bytes([section[10], section[11]]) & 0x0FFF) as usize;
                    let mut es = &section[12 + info_len..3 + len - 4];
                    d.pmt_streams.clear();
                    while !es.is_empty() {
                        d.pmt_streams.push((es[0], u16::from_be_bytes([es[1], es[2]]) & 0x1FFF));
                        let l = (u16::from_be_bytes([es[3], es[4]]) & 0x0FFF) as usize;
                        es = &es[5 + l..];
                    }
                }
                continue;
            }
            if pid == VIDEO_PID {
                if pusi {
                    d.pes.extend(current.take());
                    assert_eq!(&payload[..4], &[0, 0, 1, STREAM_ID_VIDEO]);
                    let flags = payload[7] >> 6;
                    let header_len = payload[8] as usize;
                    let pts = read_ts(&payload[9..]);
                    let dts = if flags == 3 { read_ts(&payload[14..]) } else { pts };
                    current = Some((pts, dts, random_access, payload[9 + header_len..].to_vec()));
                } else {
                    current.as_mut().expect("PES continuation without a start").3.extend_from_slice(payload);
                }
            }
        }
        d.pes.extend(current);
        d
    }

    #[test]
    fn crc32_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn tables_are_valid() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        m.write_tables(&mut out);
        assert_eq!(out.len(), 2 * TS_PACKET_SIZE);
        // PAT as FFmpeg writes it, apart from the transport_stream_id.
        assert_eq!(&out[..8], &[0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xB0, 0x0D]);
        let d = demux(&out);
        assert_eq!(d.pat_pmt_pid, Some(PMT_PID));
        assert_eq!(d.pmt_streams, vec![(STREAM_TYPE_H264, VIDEO_PID)]);
        assert_eq!(d.pcr_pid, Some(VIDEO_PID));
        m.write_tables(&mut out);
        demux(&out); // continuity counters advance
    }

    fn sps() -> Vec<u8> {
        vec![0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5]
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter().flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat()).collect()
    }

    #[test]
    fn access_units_round_trip() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        m.write_tables(&mut out);
        let pps = [0x68, 0xCE, 0x38, 0x80];
        let idr: Vec<u8> = [&[0x65u8, 0x88][..], &vec![0xAB; 1000]].concat();
        let p = [0x41, 0x9A, 0x01, 0x02];
        m.write_access_unit(&annexb(&[&sps(), &pps, &idr]), 0, 0, true, &mut out);
        m.write_access_unit(&annexb(&[&p]), 6000, 3000, false, &mut out);
        // An IDR without parameter sets gets the cached ones; an AUD present stays single.
        m.write_access_unit(&annexb(&[&AUD_NAL, &idr]), 9000, 6000, true, &mut out);
        let d = demux(&out);
        assert_eq!(d.pes.len(), 3);
        let off = TIMESTAMP_OFFSET_90K;
        assert_eq!((d.pes[0].0, d.pes[0].1, d.pes[0].2), (off, off, true));
        assert_eq!((d.pes[1].0, d.pes[1].1, d.pes[1].2), (6000 + off, 3000 + off, false));
        assert_eq!(d.pes[0].3, annexb(&[&AUD_NAL, &sps(), &pps, &idr]));
        assert_eq!(d.pes[1].3, annexb(&[&AUD_NAL, &p]));
        assert_eq!(d.pes[2].3, annexb(&[&AUD_NAL, &sps(), &pps, &idr]));
        assert_eq!(d.pcrs.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0, 3000, 6000]);
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        let big = (1u64 << 33) + 5 - TIMESTAMP_OFFSET_90K;
        m.write_access_unit(&annexb(&[&[0x41, 0x9A]]), big, big, false, &mut out);
        assert_eq!(demux(&out).pes[0].0, 5);
    }

    #[test]
    fn slow_frame_rates_get_pcr_fill_packets() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        for i in 0..5u64 {
            m.write_access_unit(&annexb(&[&[0x41, 0x9A, 1, 2, 3]]), i * 9000, i * 9000, false, &mut out);
        }
        let d = demux(&out);
        assert_eq!(d.pes.len(), 5);
        for w in d.pcrs.windows(2) {
            assert!(w[1].1 > w[0].1 && w[1].1 - w[0].1 <= PCR_INTERVAL_90K, "{:?}", d.pcrs);
        }
        assert_eq!(d.pcrs.last().unwrap().1, 36_000);
    }

    #[test]
    fn stuffing_covers_every_payload_size() {
        // Sizes around the packet boundaries exercise 0-, 1- and 2-byte adaptation fields.
        for size in 150..400 {
            let mut m = TsMuxer::new();
            let mut out = Vec::new();
            let slice: Vec<u8> = [&[0x41u8][..], &vec![0x55; size]].concat();
            m.write_access_unit(&annexb(&[&slice]), 0, 0, size % 2 == 0, &mut out);
            m.write_access_unit(&annexb(&[&slice]), 3000, 3000, false, &mut out);
            let d = demux(&out);
            assert_eq!(d.pes[1].3, annexb(&[&AUD_NAL, &slice]), "size {size}");
        }
    }
}
