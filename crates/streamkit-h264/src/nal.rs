//! H.264 NAL units without a codec: Annex-B byte streams, length-prefixed
//! (avcC / "AVCC") samples, sequence parameter sets, the avcC decoder
//! configuration record and access-unit splitting.
//!
//! Everything here is pure and sans-IO: bytes in, bytes (or values) out. It is
//! written for untrusted input: every function returns an error (never panics)
//! on malformed bytes, and nothing allocates more than the input warrants.
//!
//! ```
//! use streamkit_h264::nal::{self, NAL_IDR};
//! let annexb = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65, 0x88, 0x84];
//! let types: Vec<u8> = nal::nal_units(&annexb).map(nal::nal_type).collect();
//! assert_eq!(types, [7, NAL_IDR]);
//! let mut avcc = Vec::new();
//! nal::annexb_to_avcc(&annexb, &mut avcc); // drops the SPS: it lives in avcC
//! assert_eq!(avcc, [0, 0, 0, 3, 0x65, 0x88, 0x84]);
//! ```
//!
//! References: ITU-T H.264 (Annex B byte stream, 7.3.2.1.1 SPS syntax,
//! 7.4.1.2.3 access-unit order, 7.3.3 slice header) and ISO/IEC 14496-15
//! 5.3.3 (AVCDecoderConfigurationRecord).

use std::collections::VecDeque;
use std::fmt;

use streamkit_core::{Error, Result};

/// Coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// Coded slice data partition A.
pub const NAL_SLICE_DPA: u8 = 2;
/// Coded slice of an IDR picture (a keyframe).
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// End of sequence.
pub const NAL_END_OF_SEQUENCE: u8 = 10;
/// End of stream.
pub const NAL_END_OF_STREAM: u8 = 11;
/// Filler data.
pub const NAL_FILLER: u8 = 12;
/// Sequence parameter set extension.
pub const NAL_SPS_EXT: u8 = 13;

/// Largest access unit [`AccessUnitSplitter`] buffers by default (32 MiB).
pub const DEFAULT_MAX_ACCESS_UNIT: usize = 32 << 20;

/// Largest SPS or PPS accepted in an avcC record or by [`parse_sps`].
const MAX_PARAMETER_SET: usize = 64 * 1024;

fn malformed(what: &str, offset: usize, message: impl Into<String>) -> Error {
    Error::malformed(what, offset as u64, message)
}

// ---------------------------------------------------------------------------
// Annex-B iteration
// ---------------------------------------------------------------------------

/// Position of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip quickly to the next zero byte.
        match data[i..].iter().position(|&b| b == 0) {
            None => return None,
            Some(p) => i += p,
        }
        if i + 3 > data.len() {
            return None;
        }
        if data[i + 1] == 0 {
            match data[i + 2] {
                1 => return Some(i),
                0 => i += 1, // 00 00 00 …: the start code may begin one byte later
                _ => i += 3,
            }
        } else {
            i += 2;
        }
    }
    None
}

fn trim_trailing_zeros(mut nal: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = nal {
        nal = rest;
    }
    nal
}

/// Iterator over the NAL units of an Annex-B byte stream; see [`nal_units`].
#[derive(Clone, Debug)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Start of the payload of the next NAL unit (just after a start code).
    next: Option<usize>,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.next?;
            let end = match find_start_code(self.data, start) {
                Some(sc) => {
                    self.next = Some(sc + 3);
                    sc
                }
                None => {
                    self.next = None;
                    self.data.len()
                }
            };
            let nal = trim_trailing_zeros(&self.data[start..end]);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// The NAL units of an Annex-B byte stream, in order: each starts with its
/// header byte; start codes (`00 00 01`, `00 00 00 01`) are removed and so
/// are trailing zero bytes. Bytes before the first start code are ignored;
/// empty NAL units are skipped.
pub fn nal_units(annexb: &[u8]) -> NalUnits<'_> {
    NalUnits { data: annexb, next: find_start_code(annexb, 0).map(|p| p + 3) }
}

/// `nal_unit_type` of a NAL unit (its first byte & 0x1f), 0 for an empty one.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// `nal_ref_idc` of a NAL unit (0 for an empty one).
pub fn nal_ref_idc(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 5) & 3)
}

/// Whether a NAL unit type carries slice data (types 1–5).
pub fn is_vcl(nal_type: u8) -> bool {
    (1..=5).contains(&nal_type)
}

/// Whether an Annex-B access unit contains an IDR slice.
pub fn is_keyframe(annexb_access_unit: &[u8]) -> bool {
    nal_units(annexb_access_unit).any(|n| nal_type(n) == NAL_IDR)
}

/// Whether a length-prefixed (avcC, `length_size` bytes per length) sample
/// contains an IDR slice. Stops quietly at a truncated length.
pub fn is_keyframe_avcc(avcc: &[u8], length_size: usize) -> bool {
    AvccUnits::new(avcc, length_size).map_while(|r| r.ok()).any(|n| nal_type(n) == NAL_IDR)
}

/// Converts an Annex-B access unit to length-prefixed NAL units (4-byte
/// big-endian lengths), appending to `out`. Access unit delimiters, SPS and
/// PPS are left out: in MP4 they live in the avcC record.
pub fn annexb_to_avcc(annexb: &[u8], out: &mut Vec<u8>) {
    for nal in nal_units(annexb) {
        if matches!(nal_type(nal), NAL_AUD | NAL_SPS | NAL_PPS) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
}

/// The byte length [`annexb_to_avcc`] would produce for `annexb`.
pub fn annexb_to_avcc_len(annexb: &[u8]) -> usize {
    nal_units(annexb).filter(|n| !matches!(nal_type(n), NAL_AUD | NAL_SPS | NAL_PPS)).map(|n| n.len() + 4).sum()
}

/// Iterator over length-prefixed NAL units; yields an error (then stops) at
/// a truncated or impossible length.
#[derive(Clone, Debug)]
pub struct AvccUnits<'a> {
    data: &'a [u8],
    pos: usize,
    length_size: usize,
    failed: bool,
}

impl<'a> AvccUnits<'a> {
    /// `length_size` must be 1, 2, 3 or 4 (the avcC `lengthSizeMinusOne + 1`).
    pub fn new(data: &'a [u8], length_size: usize) -> AvccUnits<'a> {
        AvccUnits { data, pos: 0, length_size, failed: false }
    }
}

impl<'a> Iterator for AvccUnits<'a> {
    type Item = Result<&'a [u8]>;

    fn next(&mut self) -> Option<Result<&'a [u8]>> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let fail = |this: &mut Self, msg: String| {
            this.failed = true;
            Some(Err(malformed("h264 avcc", this.pos, msg)))
        };
        if !(1..=4).contains(&self.length_size) {
            return fail(self, format!("NAL length size {} is not 1, 2, 3 or 4", self.length_size));
        }
        let rest = &self.data[self.pos..];
        if rest.len() < self.length_size {
            return fail(self, format!("{} bytes left, a {}-byte NAL length needs more", rest.len(), self.length_size));
        }
        let len = rest[..self.length_size].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        let body = &rest[self.length_size..];
        if len > body.len() {
            return fail(self, format!("NAL unit of {len} bytes, only {} left (truncated)", body.len()));
        }
        self.pos += self.length_size + len;
        Some(Ok(&body[..len]))
    }
}

/// Converts length-prefixed NAL units (`length_size` = 1, 2, 3 or 4 bytes per
/// big-endian length) to Annex-B with 4-byte start codes, appending to `out`.
/// Errors on a truncated length or NAL unit; `out` then holds the NAL units
/// before it.
pub fn avcc_to_annexb(avcc: &[u8], length_size: usize, out: &mut Vec<u8>) -> Result<()> {
    for nal in AvccUnits::new(avcc, length_size) {
        let nal = nal?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Bit reading
// ---------------------------------------------------------------------------

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`) from a NAL unit.
/// Also returns, for mapping RBSP positions back to the NAL, the RBSP index of
/// every removed byte.
fn to_rbsp(nal: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut removed = Vec::new();
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            removed.push(rbsp.len());
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    (rbsp, removed)
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`) from a NAL unit.
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    to_rbsp(nal).0
}

/// MSB-first bit reader over an RBSP with exp-Golomb codes. Errors carry the
/// byte offset in the original NAL unit.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize, // in bits
    removed: &'a [usize],
    /// Bytes before `data` in the NAL unit (the header).
    base: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], removed: &'a [usize], base: usize, what: &'static str) -> BitReader<'a> {
        BitReader { data, pos: 0, removed, base, what }
    }

    /// Byte offset of the current position in the NAL unit.
    fn nal_offset(&self) -> usize {
        let rbsp = self.pos / 8;
        self.base + rbsp + self.removed.iter().take_while(|&&r| r <= rbsp).count()
    }

    fn error(&self, message: impl Into<String>) -> Error {
        malformed(self.what, self.nal_offset(), message)
    }

    fn bits_left(&self) -> usize {
        self.data.len() * 8 - self.pos.min(self.data.len() * 8)
    }

    fn bit(&mut self) -> Result<bool> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.error("ends too early (truncated)"))?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    fn flag(&mut self) -> Result<bool> {
        self.bit()
    }

    /// `n` ≤ 32 bits as an unsigned number.
    fn bits(&mut self, n: u32) -> Result<u32> {
        debug_assert!(n <= 32);
        if self.bits_left() < n as usize {
            return Err(self.error(format!("ends too early: {n} more bits needed (truncated)")));
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u64;
        }
        Ok(v as u32)
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        if self.bits_left() < n {
            return Err(self.error(format!("ends too early: {n} more bits needed (truncated)")));
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): at most 31 leading zero bits (values up to 2^32 - 2).
    fn ue(&mut self) -> Result<u32> {
        let start = self.nal_offset();
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(malformed(self.what, start, "exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = self.bits(zeros)? as u64;
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }

    /// ue(v) that must be ≤ `max`, named for the error message.
    fn ue_max(&mut self, name: &str, max: u32) -> Result<u32> {
        let at = self.nal_offset();
        let v = self.ue()?;
        if v > max {
            return Err(malformed(self.what, at, format!("{name} = {v}, the maximum is {max}")));
        }
        Ok(v)
    }

    /// se(v), as i64 so that every 32-bit code maps without overflow.
    fn se(&mut self) -> Result<i64> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    fn se_range(&mut self, name: &str, min: i64, max: i64) -> Result<i64> {
        let at = self.nal_offset();
        let v = self.se()?;
        if v < min || v > max {
            return Err(malformed(self.what, at, format!("{name} = {v} is outside {min}..={max}")));
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// SPS
// ---------------------------------------------------------------------------

/// Profiles whose SPS carries chroma format, bit depths and scaling lists
/// (H.264 7.3.2.1.1).
fn is_high_profile(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135)
}

/// Video usability information read from an SPS (the parts streamkit uses).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vui {
    /// Sample (pixel) aspect ratio, when signalled.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    /// `video_full_range_flag`, when the video signal type is present.
    pub full_range: Option<bool>,
    /// `(colour_primaries, transfer_characteristics, matrix_coefficients)`.
    pub colour_description: Option<(u8, u8, u8)>,
    /// `num_units_in_tick`, `time_scale`: frames per second =
    /// `time_scale / (2 * num_units_in_tick)` for frame-coded video.
    pub timing: Option<(u32, u32)>,
    pub fixed_frame_rate: bool,
}

/// A parsed sequence parameter set (H.264 7.3.2.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as in the byte
    /// following `profile_idc` (the avcC "profile_compatibility").
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub log2_max_frame_num: u8,
    pub pic_order_cnt_type: u8,
    /// For `pic_order_cnt_type == 0`.
    pub log2_max_pic_order_cnt_lsb: u8,
    pub max_num_ref_frames: u32,
    /// Displayed width in pixels (after frame cropping).
    pub width: u32,
    /// Displayed height in pixels (after frame cropping).
    pub height: u32,
    /// Coded width (whole macroblocks).
    pub coded_width: u32,
    /// Coded height (whole macroblocks, both fields for interlaced).
    pub coded_height: u32,
    /// Cropping in luma pixels: left, right, top, bottom.
    pub crop: [u32; 4],
    pub frame_mbs_only: bool,
    pub mb_adaptive_frame_field: bool,
    pub direct_8x8_inference: bool,
    /// Video usability information, when present and readable. A VUI that is
    /// truncated or malformed is ignored (`None`): nothing above depends on it.
    pub vui: Option<Vui>,
}

impl Sps {
    /// Frame rate from the VUI timing info, when present.
    pub fn frame_rate(&self) -> Option<f64> {
        let (units, scale) = self.vui.as_ref()?.timing?;
        (units > 0 && scale > 0).then(|| scale as f64 / (2.0 * units as f64))
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<()> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se_range("delta_scale", -128, 127)?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn parse_vui(r: &mut BitReader<'_>) -> Result<Vui> {
    let mut vui = Vui::default();
    if r.flag()? {
        let idc = r.bits(8)?;
        const TABLE: [(u16, u16); 17] = [
            (0, 0),
            (1, 1),
            (12, 11),
            (10, 11),
            (16, 11),
            (40, 33),
            (24, 11),
            (20, 11),
            (32, 11),
            (80, 33),
            (18, 11),
            (15, 11),
            (64, 33),
            (160, 99),
            (4, 3),
            (3, 2),
            (2, 1),
        ];
        if idc == 255 {
            let w = r.bits(16)? as u16;
            let h = r.bits(16)? as u16;
            vui.sample_aspect_ratio = Some((w, h));
        } else if let Some(&sar) = TABLE.get(idc as usize).filter(|_| idc != 0) {
            vui.sample_aspect_ratio = Some(sar);
        }
    }
    if r.flag()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.skip(3)?; // video_format
        vui.full_range = Some(r.flag()?);
        if r.flag()? {
            let p = r.bits(8)? as u8;
            let t = r.bits(8)? as u8;
            let m = r.bits(8)? as u8;
            vui.colour_description = Some((p, t, m));
        }
    }
    if r.flag()? {
        r.ue_max("chroma_sample_loc_type_top_field", 5)?;
        r.ue_max("chroma_sample_loc_type_bottom_field", 5)?;
    }
    if r.flag()? {
        let units = r.bits(32)?;
        let scale = r.bits(32)?;
        vui.fixed_frame_rate = r.flag()?;
        vui.timing = Some((units, scale));
    }
    Ok(vui)
}

/// Parses a sequence parameter set NAL unit (header byte first, emulation
/// prevention bytes still in). Follows H.264 7.3.2.1.1 in full: high-profile
/// chroma format, bit depths and scaling lists, every picture order count
/// type, frame cropping; the VUI is read for aspect ratio, colour and timing.
/// Every value is range-checked, so hostile input gives an error, not a panic.
pub fn parse_sps(nal: &[u8]) -> Result<Sps> {
    const WHAT: &str = "h264 sps";
    if nal.is_empty() {
        return Err(malformed(WHAT, 0, "empty NAL unit"));
    }
    if nal_type(nal) != NAL_SPS {
        return Err(malformed(WHAT, 0, format!("NAL unit type {} is not an SPS (7)", nal_type(nal))));
    }
    if nal[0] & 0x80 != 0 {
        return Err(malformed(WHAT, 0, "forbidden_zero_bit is set"));
    }
    if nal.len() > MAX_PARAMETER_SET {
        return Err(malformed(WHAT, 0, format!("{} bytes is too large for an SPS", nal.len())));
    }
    let (rbsp, removed) = to_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, &removed, 1, WHAT);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let seq_parameter_set_id = r.ue_max("seq_parameter_set_id", 31)?;
    let mut chroma_format_idc = 1u8;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8u8;
    let mut bit_depth_chroma = 8u8;
    if is_high_profile(profile_idc) {
        chroma_format_idc = r.ue_max("chroma_format_idc", 3)? as u8;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        bit_depth_luma = 8 + r.ue_max("bit_depth_luma_minus8", 6)? as u8;
        bit_depth_chroma = 8 + r.ue_max("bit_depth_chroma_minus8", 6)? as u8;
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc != 3 { 8 } else { 12 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num = 4 + r.ue_max("log2_max_frame_num_minus4", 12)? as u8;
    let pic_order_cnt_type = r.ue_max("pic_order_cnt_type", 2)? as u8;
    let mut log2_max_pic_order_cnt_lsb = 0;
    match pic_order_cnt_type {
        0 => log2_max_pic_order_cnt_lsb = 4 + r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? as u8,
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame[i]
            }
        }
        _ => {}
    }
    let max_num_ref_frames = r.ue_max("max_num_ref_frames", 16)?;
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
                // 1024 macroblocks = 16384 pixels, streamkit's MAX_DIMENSION (and past level 6.2).
    let width_mbs = r.ue_max("pic_width_in_mbs_minus1", 1023)? + 1;
    let height_map_units = r.ue_max("pic_height_in_map_units_minus1", 1023)? + 1;
    let frame_mbs_only = r.flag()?;
    let mb_adaptive_frame_field = if frame_mbs_only { false } else { r.flag()? };
    let direct_8x8_inference = r.flag()?;
    let coded_width = width_mbs * 16;
    let coded_height = (2 - frame_mbs_only as u32) * height_map_units * 16;
    let mut crop = [0u32; 4];
    let crop_at = r.nal_offset();
    if r.flag()? {
        let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (unit_x, unit_y) = if chroma_array_type == 0 {
            (1, 2 - frame_mbs_only as u32)
        } else {
            (sub_w, sub_h * (2 - frame_mbs_only as u32))
        };
        for (i, c) in crop.iter_mut().enumerate() {
            let unit = if i < 2 { unit_x } else { unit_y };
            *c = r.ue_max("frame_crop_offset", 1 << 16)? * unit;
        }
    }
    if crop[0] + crop[1] >= coded_width || crop[2] + crop[3] >= coded_height {
        return Err(malformed(
            WHAT,
            crop_at,
            format!(
                "frame cropping {crop:?} (left, right, top, bottom) leaves nothing of {coded_width}x{coded_height}"
            ),
        ));
    }
    let vui = if r.flag()? { parse_vui(&mut r).ok() } else { None };
    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma,
        bit_depth_chroma,
        log2_max_frame_num,
        pic_order_cnt_type,
        log2_max_pic_order_cnt_lsb,
        max_num_ref_frames,
        width: coded_width - crop[0] - crop[1],
        height: coded_height - crop[2] - crop[3],
        coded_width,
        coded_height,
        crop,
        frame_mbs_only,
        mb_adaptive_frame_field,
        direct_8x8_inference,
        vui,
    })
}

// ---------------------------------------------------------------------------
// Slice header
// ---------------------------------------------------------------------------

/// `first_mb_in_slice` of a slice NAL unit (types 1, 2, 5), without an SPS.
pub fn first_mb_in_slice(nal: &[u8]) -> Result<u32> {
    // ue(v) needs at most 8 bytes; emulation prevention may add a few.
    let head = &nal.get(1..nal.len().min(17)).unwrap_or(&[]);
    let (rbsp, removed) = to_rbsp(head);
    BitReader::new(&rbsp, &removed, 1, "h264 slice header").ue()
}

/// The start of a slice header (H.264 7.3.3), up to `pic_order_cnt_lsb`:
/// enough to find picture boundaries and presentation order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceHeader {
    pub nal_type: u8,
    pub nal_ref_idc: u8,
    pub first_mb_in_slice: u32,
    /// 0 P, 1 B, 2 I, 3 SP, 4 SI (`slice_type % 5`).
    pub slice_type: u8,
    pub pic_parameter_set_id: u32,
    pub frame_num: u32,
    pub field_pic: bool,
    pub bottom_field: bool,
    /// For IDR slices.
    pub idr_pic_id: Option<u32>,
    /// For `pic_order_cnt_type == 0`.
    pub pic_order_cnt_lsb: Option<u32>,
}

/// Parses the start of a slice header of a slice NAL unit (types 1, 2, 5)
/// using the active SPS.
pub fn parse_slice_header(nal: &[u8], sps: &Sps) -> Result<SliceHeader> {
    const WHAT: &str = "h264 slice header";
    let t = nal_type(nal);
    if !matches!(t, NAL_SLICE | NAL_SLICE_DPA | NAL_IDR) {
        return Err(malformed(WHAT, 0, format!("NAL unit type {t} is not a slice with a header (1, 2 or 5)")));
    }
    // The fields read here fit in well under 64 bytes.
    let (rbsp, removed) = to_rbsp(&nal[1..nal.len().min(64)]);
    let mut r = BitReader::new(&rbsp, &removed, 1, WHAT);
    let first_mb_in_slice = r.ue()?;
    let slice_type = (r.ue_max("slice_type", 9)? % 5) as u8;
    let pic_parameter_set_id = r.ue_max("pic_parameter_set_id", 255)?;
    if sps.separate_colour_plane {
        r.skip(2)?; // colour_plane_id
    }
    let frame_num = r.bits(sps.log2_max_frame_num as u32)?;
    let (mut field_pic, mut bottom_field) = (false, false);
    if !sps.frame_mbs_only {
        field_pic = r.flag()?;
        if field_pic {
            bottom_field = r.flag()?;
        }
    }
    let idr_pic_id = if t == NAL_IDR { Some(r.ue_max("idr_pic_id", 65535)?) } else { None };
    let pic_order_cnt_lsb =
        if sps.pic_order_cnt_type == 0 { Some(r.bits(sps.log2_max_pic_order_cnt_lsb as u32)?) } else { None };
    Ok(SliceHeader {
        nal_type: t,
        nal_ref_idc: nal_ref_idc(nal),
        first_mb_in_slice,
        slice_type,
        pic_parameter_set_id,
        frame_num,
        field_pic,
        bottom_field,
        idr_pic_id,
        pic_order_cnt_lsb,
    })
}

// ---------------------------------------------------------------------------
// avcC
// ---------------------------------------------------------------------------

/// The AVC decoder configuration record (ISO/IEC 14496-15 5.3.3.1), the body
/// of an MP4 `avcC` box: profile, level, NAL length size and the parameter
/// sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    /// The constraint flags byte of the SPS.
    pub profile_compat: u8,
    pub level_idc: u8,
    /// Bytes per NAL length in samples (1, 2 or 4; streamkit writes 4).
    pub length_size: u8,
    /// SPS NAL units (header byte first, emulation prevention in).
    pub sps: Vec<Vec<u8>>,
    /// PPS NAL units.
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    /// A record for one SPS and one PPS (NAL units, header byte first), with
    /// 4-byte NAL lengths. Errors when the SPS does not parse.
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Result<AvcConfig> {
        let parsed = parse_sps(sps)?;
        if nal_type(pps) != NAL_PPS {
            return Err(malformed("h264 pps", 0, format!("NAL unit type {} is not a PPS (8)", nal_type(pps))));
        }
        if pps.len() > MAX_PARAMETER_SET {
            return Err(malformed("h264 pps", 0, format!("{} bytes is too large for a PPS", pps.len())));
        }
        Ok(AvcConfig {
            profile_idc: parsed.profile_idc,
            profile_compat: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            length_size: 4,
            sps: vec![sps.to_vec()],
            pps: vec![pps.to_vec()],
        })
    }

    /// The record from the first SPS and PPS found in an Annex-B access unit
    /// (a keyframe from an encoder), or `None` when either is missing.
    pub fn from_annexb(annexb: &[u8]) -> Option<Result<AvcConfig>> {
        let sps = nal_units(annexb).find(|n| nal_type(n) == NAL_SPS)?;
        let pps = nal_units(annexb).find(|n| nal_type(n) == NAL_PPS)?;
        Some(AvcConfig::from_parameter_sets(sps, pps))
    }

    /// The first SPS, parsed.
    pub fn parse_sps(&self) -> Result<Sps> {
        parse_sps(self.sps.first().ok_or_else(|| malformed("h264 avcc", 0, "the record holds no SPS"))?)
    }

    /// Serialises the record (the payload of an `avcC` box). For the high
    /// profiles (100, 110, 122, 144) the chroma format and bit-depth fields
    /// are appended, taken from the first SPS.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            11 + self.sps.iter().map(|s| s.len() + 2).sum::<usize>()
                + self.pps.iter().map(|p| p.len() + 2).sum::<usize>(),
        );
        out.push(1); // configurationVersion
        out.push(self.profile_idc);
        out.push(self.profile_compat);
        out.push(self.level_idc);
        out.push(0xfc | (self.length_size.clamp(1, 4) - 1));
        out.push(0xe0 | self.sps.len().min(31) as u8);
        for sps in self.sps.iter().take(31) {
            out.extend_from_slice(&(sps.len().min(0xffff) as u16).to_be_bytes());
            out.extend_from_slice(&sps[..sps.len().min(0xffff)]);
        }
        out.push(self.pps.len().min(255) as u8);
        for pps in self.pps.iter().take(255) {
            out.extend_from_slice(&(pps.len().min(0xffff) as u16).to_be_bytes());
            out.extend_from_slice(&pps[..pps.len().min(0xffff)]);
        }
        if matches!(self.profile_idc, 100 | 110 | 122 | 144) {
            if let Ok(sps) = self.parse_sps() {
                out.push(0xfc | sps.chroma_format_idc);
                out.push(0xf8 | (sps.bit_depth_luma - 8));
                out.push(0xf8 | (sps.bit_depth_chroma - 8));
                out.push(0); // numOfSequenceParameterSetExt
            }
        }
        out
    }

    /// Parses a record (an `avcC` box payload). The high-profile extension
    /// fields are optional (many files omit them). Errors carry the byte
    /// offset in `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<AvcConfig> {
        const WHAT: &str = "h264 avcc";
        if bytes.len() < 7 {
            return Err(malformed(WHAT, bytes.len(), format!("{} bytes; a record needs at least 7", bytes.len())));
        }
        if bytes[0] != 1 {
            return Err(malformed(WHAT, 0, format!("configurationVersion {} is not 1", bytes[0])));
        }
        let length_size = (bytes[4] & 3) + 1;
        if length_size == 3 {
            return Err(malformed(WHAT, 4, "lengthSizeMinusOne = 2 is reserved"));
        }
        let mut pos = 5;
        let read_sets = |count: usize, pos: &mut usize, kind: &str| -> Result<Vec<Vec<u8>>> {
            let mut sets = Vec::with_capacity(count);
            for i in 0..count {
                let at = *pos;
                let len_bytes = bytes
                    .get(at..at + 2)
                    .ok_or_else(|| malformed(WHAT, at, format!("{kind} {i} length is truncated")))?;
                let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
                let set = bytes.get(at + 2..at + 2 + len).ok_or_else(|| {
                    malformed(WHAT, at, format!("{kind} {i} of {len} bytes runs past the end ({} bytes)", bytes.len()))
                })?;
                *pos = at + 2 + len;
                sets.push(set.to_vec());
            }
            Ok(sets)
        };
        let sps_count = (bytes[5] & 0x1f) as usize;
        pos += 1;
        let sps = read_sets(sps_count, &mut pos, "SPS")?;
        let pps_count =
            *bytes.get(pos).ok_or_else(|| malformed(WHAT, pos, "numOfPictureParameterSets is missing"))? as usize;
        pos += 1;
        let pps = read_sets(pps_count, &mut pos, "PPS")?;
        for (i, s) in sps.iter().enumerate() {
            if nal_type(s) != NAL_SPS {
                return Err(malformed(WHAT, 6, format!("SPS {i} has NAL unit type {}", nal_type(s))));
            }
        }
        for (i, p) in pps.iter().enumerate() {
            if nal_type(p) != NAL_PPS {
                return Err(malformed(WHAT, 6, format!("PPS {i} has NAL unit type {}", nal_type(p))));
            }
        }
        Ok(AvcConfig { profile_idc: bytes[1], profile_compat: bytes[2], level_idc: bytes[3], length_size, sps, pps })
    }

    /// The RFC 6381 codec string for HLS, DASH and WebRTC, e.g. `avc1.42e01f`.
    pub fn codec_string(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.profile_idc, self.profile_compat, self.level_idc)
    }

    /// The parameter sets as an Annex-B prefix (SPS then PPS, 4-byte start
    /// codes), for decoders that want them in band.
    pub fn parameter_sets_annexb(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for set in self.sps.iter().chain(&self.pps) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(set);
        }
        out
    }
}

impl fmt::Display for AvcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} SPS, {} PPS)", self.codec_string(), self.sps.len(), self.pps.len())
    }
}

// ---------------------------------------------------------------------------
// Access-unit splitting
// ---------------------------------------------------------------------------

/// Splits an Annex-B byte stream, pushed in chunks of any size, into access
/// units (one coded picture each, with its parameter sets and SEI). Sans-IO:
/// [`push`](Self::push) bytes, [`pop`](Self::pop) complete access units,
/// [`finish`](Self::finish) at the end of the stream, then pop the rest.
///
/// A new access unit begins (H.264 7.4.1.2.3) at an access unit delimiter;
/// at an SPS, PPS, SEI or NAL unit type 14–18 that follows a slice; and at a
/// slice with `first_mb_in_slice == 0` that follows a slice (streams with
/// arbitrary slice order are not split exactly). Access units are returned
/// byte for byte as they were in the stream, start codes included, so the
/// concatenation of everything popped is the input (less any bytes before
/// the first start code).
///
/// Memory is bounded: an access unit larger than the cap
/// ([`DEFAULT_MAX_ACCESS_UNIT`] unless set with
/// [`with_max_access_unit`](Self::with_max_access_unit)) is dropped, `push`
/// reports it, and splitting resumes at the next start code.
///
/// ```
/// use streamkit_h264::nal::AccessUnitSplitter;
/// let stream = [0, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41, 0x9b];
/// let mut splitter = AccessUnitSplitter::new();
/// let mut units = Vec::new();
/// for chunk in stream.chunks(3) {
///     splitter.push(chunk).unwrap();
///     units.extend(std::iter::from_fn(|| splitter.pop()));
/// }
/// splitter.finish();
/// units.extend(std::iter::from_fn(|| splitter.pop()));
/// assert_eq!(units.len(), 3);
/// ```
#[derive(Debug)]
pub struct AccessUnitSplitter {
    /// Bytes of the current access unit onward (or, before the first start
    /// code, bytes being searched).
    buf: Vec<u8>,
    /// Where the next start-code search begins.
    scan: usize,
    /// Current (unfinished) NAL unit: where its start code begins and where
    /// its payload begins.
    nal: Option<(usize, usize)>,
    /// The current access unit holds at least one NAL unit / one slice.
    au_has_nal: bool,
    au_has_vcl: bool,
    out: VecDeque<Vec<u8>>,
    max: usize,
    dropped: u64,
}

impl Default for AccessUnitSplitter {
    fn default() -> Self {
        AccessUnitSplitter::new()
    }
}

/// How much input [`AccessUnitSplitter::push`] takes at once (bounds its
/// buffer to the cap plus this).
const PUSH_STEP: usize = 64 * 1024;

impl AccessUnitSplitter {
    pub fn new() -> AccessUnitSplitter {
        AccessUnitSplitter::with_max_access_unit(DEFAULT_MAX_ACCESS_UNIT)
    }

    /// A splitter that refuses access units larger than `max_bytes`.
    pub fn with_max_access_unit(max_bytes: usize) -> AccessUnitSplitter {
        AccessUnitSplitter {
            buf: Vec::new(),
            scan: 0,
            nal: None,
            au_has_nal: false,
            au_has_vcl: false,
            out: VecDeque::new(),
            max: max_bytes.max(16),
            dropped: 0,
        }
    }

    /// Feeds bytes of the stream. Every byte is consumed; the error (if any)
    /// reports access units that were dropped for exceeding the size cap.
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        let mut first_error = None;
        for piece in data.chunks(PUSH_STEP) {
            self.buf.extend_from_slice(piece);
            self.scan_buffer();
            if self.buf.len() > self.max {
                let size = self.buf.len();
                self.drop_oversized();
                first_error.get_or_insert_with(|| {
                    Error::malformed(
                        "h264 access unit",
                        0,
                        format!(
                            "access unit exceeds {} bytes (already {size}): dropped; resuming at the next start code",
                            self.max
                        ),
                    )
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The next complete access unit, in stream order.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Complete access units waiting to be popped.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Access units dropped for exceeding the size cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Ends the stream: the last access unit becomes available to
    /// [`pop`](Self::pop). Pushing after this starts a new stream.
    pub fn finish(&mut self) {
        if let Some((sc, payload)) = self.nal.take() {
            let end = self.buf.len();
            self.complete_nal(sc, payload, end);
        }
        if self.au_has_nal && !self.buf.is_empty() {
            self.out.push_back(std::mem::take(&mut self.buf));
        }
        self.buf.clear();
        self.scan = 0;
        self.au_has_nal = false;
        self.au_has_vcl = false;
    }

    fn drop_oversized(&mut self) {
        self.dropped += 1;
        // Keep only a possible partial start code at the end.
        let keep = self.buf.len().min(2);
        self.buf.drain(..self.buf.len() - keep);
        self.scan = 0;
        self.nal = None;
        self.au_has_nal = false;
        self.au_has_vcl = false;
    }

    fn scan_buffer(&mut self) {
        loop {
            let floor = self.nal.map_or(0, |(_, payload)| payload);
            let Some(p) = find_start_code(&self.buf, self.scan.max(floor)) else { break };
            // A zero byte before 00 00 01 is the zero_byte of a 4-byte start code.
            let sc = if p > floor && self.buf[p - 1] == 0 { p - 1 } else { p };
            let shift = match self.nal.take() {
                Some((prev_sc, payload)) => self.complete_nal(prev_sc, payload, sc),
                None => {
                    // First start code (or the first after a dropped unit):
                    // whatever precedes it is not part of any NAL unit.
                    self.buf.drain(..sc);
                    sc
                }
            };
            self.nal = Some((sc - shift, p - shift + 3));
            self.scan = p - shift + 3;
        }
        if self.nal.is_none() {
            // No start code yet: only a partial one (with its zero_byte) at
            // the end can matter.
            let cut = self.buf.len().saturating_sub(3);
            self.buf.drain(..cut);
            self.scan = 0;
        } else {
            // Search again from two bytes back: a start code may straddle pushes.
            let floor = self.nal.map_or(0, |(_, payload)| payload);
            self.scan = self.scan.max(self.buf.len().saturating_sub(2)).max(floor);
        }
    }

    /// A NAL unit spanning `sc..end` (start code at `sc`, payload from
    /// `payload`) is complete: decide whether it begins a new access unit.
    /// Returns how many bytes were taken off the front of `buf` (an access
    /// unit that is now complete).
    fn complete_nal(&mut self, sc: usize, payload: usize, end: usize) -> usize {
        let nal = trim_trailing_zeros(&self.buf[payload..end]);
        if nal.is_empty() {
            return 0;
        }
        let t = nal_type(nal);
        let starts_new = match t {
            NAL_AUD => self.au_has_nal,
            NAL_SEI | NAL_SPS | NAL_PPS | 14..=18 => self.au_has_vcl,
            NAL_SLICE | NAL_SLICE_DPA | NAL_IDR => self.au_has_vcl && first_mb_in_slice(nal).unwrap_or(0) == 0,
            _ => false,
        };
        let mut shift = 0;
        if starts_new && sc > 0 {
            let rest = self.buf.split_off(sc);
            let unit = std::mem::replace(&mut self.buf, rest);
            self.out.push_back(unit);
            self.au_has_vcl = false;
            shift = sc;
        }
        self.au_has_nal = true;
        if is_vcl(t) {
            self.au_has_vcl = true;
        }
        shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamkit_testkit::{ffprobe_show, require_tool, run_tool, temp_dir};

    /// Ten frames of `testsrc2` encoded by ffmpeg/libx264 as Annex-B, with
    /// ffprobe's view of the stream (`key=value` lines). `None` without ffmpeg.
    fn x264(name: &str, size: &str, frames: u32, args: &[&str]) -> Option<(Vec<u8>, String)> {
        if !require_tool("ffmpeg") || !require_tool("ffprobe") {
            return None;
        }
        let dir = temp_dir(&format!("h264-nal-{name}"));
        let path = dir.join("x.h264");
        let path_str = path.to_str().unwrap().to_string();
        let input = format!("testsrc2=size={size}:rate=30");
        let frames = frames.to_string();
        let mut all = vec!["-v", "error", "-f", "lavfi", "-i", &input, "-frames:v", &frames, "-c:v", "libx264"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-bsf:v", "h264_mp4toannexb", "-f", "h264", "-y", &path_str]);
        run_tool("ffmpeg", &all);
        let probe = ffprobe_show(&path, "stream=profile,level,width,height", "default=noprint_wrappers=1", &[]);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_dir_all(dir);
        Some((bytes, probe))
    }

    fn probe_field<'a>(probe: &'a str, name: &str) -> &'a str {
        probe
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {probe}"))
    }

    fn split(stream: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut s = AccessUnitSplitter::new();
        let mut units = Vec::new();
        for piece in stream.chunks(chunk) {
            s.push(piece).unwrap();
            units.extend(std::iter::from_fn(|| s.pop()));
        }
        s.finish();
        units.extend(std::iter::from_fn(|| s.pop()));
        units
    }

    fn sps_of(stream: &[u8]) -> Sps {
        parse_sps(nal_units(stream).find(|n| nal_type(n) == NAL_SPS).expect("an SPS")).unwrap()
    }

    /// name, size, ffmpeg arguments, profile_idc, chroma_format_idc, frame_mbs_only
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], u8, u8, bool);

    /// Every ffmpeg variant: SPS fields agree with ffprobe and the splitter
    /// finds exactly one access unit per frame whatever the chunking.
    #[test]
    fn x264_streams_parse_and_split() {
        let cases: &[Case] = &[
            ("high", "320x240", &["-profile:v", "high"], 100, 1, true),
            ("high-crop", "318x238", &["-profile:v", "high"], 100, 1, true),
            ("baseline", "320x240", &["-profile:v", "baseline"], 66, 1, true),
            ("baseline-crop", "318x238", &["-profile:v", "baseline"], 66, 1, true),
            ("main-bframes", "318x238", &["-profile:v", "main", "-bf", "2", "-g", "4"], 77, 1, true),
            ("interlaced", "320x240", &["-x264-params", "interlaced=1"], 100, 1, false),
            (
                "444-cqm",
                "318x238",
                &["-pix_fmt", "yuv444p", "-profile:v", "high444", "-x264-params", "cqm=jvt"],
                244,
                3,
                true,
            ),
            ("high10", "318x238", &["-pix_fmt", "yuv420p10le", "-profile:v", "high10"], 110, 1, true),
            ("aud", "318x238", &["-x264-params", "aud=1", "-g", "5"], 100, 1, true),
        ];
        for &(name, size, args, profile, chroma, frame_mbs_only) in cases {
            let Some((stream, probe)) = x264(name, size, 10, args) else { return };
            let sps = sps_of(&stream);
            let (w, h) = size.split_once('x').unwrap();
            assert_eq!((sps.width, sps.height), (w.parse().unwrap(), h.parse().unwrap()), "{name}: {sps:?}");
            assert_eq!(sps.width.to_string(), probe_field(&probe, "width"), "{name}");
            assert_eq!(sps.height.to_string(), probe_field(&probe, "height"), "{name}");
            assert_eq!(sps.level_idc.to_string(), probe_field(&probe, "level"), "{name}");
            assert_eq!(sps.profile_idc, profile, "{name}");
            assert_eq!(sps.chroma_format_idc, chroma, "{name}");
            assert_eq!(sps.frame_mbs_only, frame_mbs_only, "{name}");
            assert_eq!((sps.coded_width % 16, sps.coded_height % 16), (0, 0));
            if size == "318x238" {
                assert_eq!(sps.crop, [0, 2, 0, 2], "{name}");
            }
            if name == "high10" {
                assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
            }
            // x264 writes VUI timing for a 30 fps input.
            assert_eq!(sps.frame_rate(), Some(30.0), "{name}: {:?}", sps.vui);

            for chunk in [1, 7, 4096, stream.len()] {
                let units = split(&stream, chunk);
                assert_eq!(units.len(), 10, "{name}: chunk size {chunk}");
                assert!(units.concat() == stream, "{name}: the units are the stream, byte for byte");
                assert!(is_keyframe(&units[0]), "{name}");
                for u in &units {
                    let vcl = nal_units(u).filter(|n| is_vcl(nal_type(n))).count();
                    assert!(vcl >= 1, "{name}: every unit holds a picture");
                    let first_slice = nal_units(u).find(|n| is_vcl(nal_type(n))).unwrap();
                    assert_eq!(first_mb_in_slice(first_slice).unwrap(), 0);
                }
                if name == "aud" {
                    assert!(units.iter().all(|u| nal_type(nal_units(u).next().unwrap()) == NAL_AUD));
                    assert_eq!(units.iter().filter(|u| is_keyframe(u)).count(), 2, "-g 5: IDR at 0 and 5");
                }
            }
        }
    }

    #[test]
    fn multi_slice_pictures_stay_together() {
        let Some((stream, _)) = x264("slices", "320x240", 10, &["-x264-params", "slices=4"]) else { return };
        let units = split(&stream, 333);
        assert_eq!(units.len(), 10);
        for u in &units {
            assert_eq!(nal_units(u).filter(|n| is_vcl(nal_type(n))).count(), 4);
        }
    }

    #[test]
    fn slice_headers_give_presentation_order() {
        let Some((stream, _)) = x264("poc", "320x240", 10, &["-profile:v", "high", "-bf", "2", "-g", "10"]) else {
            return;
        };
        let sps = sps_of(&stream);
        assert_eq!(sps.pic_order_cnt_type, 0);
        let units = split(&stream, 4096);
        let pocs: Vec<u32> = units
            .iter()
            .map(|u| {
                let slice = nal_units(u).find(|n| is_vcl(nal_type(n))).unwrap();
                parse_slice_header(slice, &sps).unwrap().pic_order_cnt_lsb.unwrap()
            })
            .collect();
        let mut sorted = pocs.clone();
        sorted.sort_unstable();
        assert_ne!(pocs, sorted, "B-frames reorder: decode order is not presentation order");
        assert_eq!(sorted, (0..10).map(|i| i * 2).collect::<Vec<_>>(), "x264 counts POC in steps of 2");
        let first = nal_units(&units[0]).find(|n| is_vcl(nal_type(n))).unwrap();
        let header = parse_slice_header(first, &sps).unwrap();
        assert_eq!((header.nal_type, header.slice_type, header.idr_pic_id), (NAL_IDR, 2, Some(0)));
    }

    #[test]
    fn annexb_avcc_round_trip() {
        let Some((stream, _)) = x264("avcc", "318x238", 10, &["-profile:v", "high", "-x264-params", "aud=1"]) else {
            return;
        };
        for unit in split(&stream, 4096) {
            let mut avcc = Vec::new();
            annexb_to_avcc(&unit, &mut avcc);
            assert_eq!(avcc.len(), annexb_to_avcc_len(&unit));
            let mut back = Vec::new();
            avcc_to_annexb(&avcc, 4, &mut back).unwrap();
            let kept: Vec<&[u8]> =
                nal_units(&unit).filter(|n| !matches!(nal_type(n), NAL_AUD | NAL_SPS | NAL_PPS)).collect();
            assert_eq!(nal_units(&back).collect::<Vec<_>>(), kept);
            assert_eq!(is_keyframe_avcc(&avcc, 4), is_keyframe(&unit));
            // Every truncation of a length-prefixed sample is an error.
            for cut in [1, 3, 5, avcc.len() - 1] {
                assert!(avcc_to_annexb(&avcc[..cut], 4, &mut Vec::new()).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn avc_config_from_x264() {
        let Some((stream, _)) = x264("avcconfig", "320x240", 1, &["-profile:v", "baseline"]) else { return };
        let config = AvcConfig::from_annexb(&stream).unwrap().unwrap();
        let sps = config.parse_sps().unwrap();
        assert_eq!(config.codec_string(), format!("avc1.42{:02x}{:02x}", sps.constraint_flags, sps.level_idc));
        assert_eq!(config.profile_idc, 66);
        let bytes = config.to_bytes();
        assert_eq!(AvcConfig::parse(&bytes).unwrap(), config);
        assert_eq!(config.parameter_sets_annexb(), {
            let mut v = Vec::new();
            for n in nal_units(&stream).filter(|n| matches!(nal_type(n), NAL_SPS | NAL_PPS)) {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(n);
            }
            v
        });
        let Some((high, _)) = x264("avcconfig-high", "320x240", 1, &["-profile:v", "high"]) else { return };
        let config = AvcConfig::from_annexb(&high).unwrap().unwrap();
        let bytes = config.to_bytes();
        assert_eq!(&bytes[bytes.len() - 4..], &[0xfd, 0xf8, 0xf8, 0], "high profile: 4:2:0, 8-bit, no SPS ext");
        assert_eq!(AvcConfig::parse(&bytes).unwrap(), config);
    }

    // ---- hand-made input -------------------------------------------------

    /// An x264 baseline SPS for 320x240 and its PPS.
    const SPS: [u8; 24] = [
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03,
        0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

    #[test]
    fn known_sps() {
        let sps = parse_sps(&SPS).unwrap();
        assert_eq!((sps.profile_idc, sps.constraint_flags, sps.level_idc), (66, 0xc0, 13));
        assert_eq!((sps.width, sps.height), (320, 240));
        assert!(sps.frame_mbs_only);
        assert_eq!(sps.codec_string(), "avc1.42c00d");
        let config = AvcConfig::from_parameter_sets(&SPS, &PPS).unwrap();
        assert_eq!(config.codec_string(), "avc1.42c00d");
        assert_eq!(config.length_size, 4);
        assert_eq!(AvcConfig::parse(&config.to_bytes()).unwrap(), config);
    }

    #[test]
    fn nal_iteration_edge_cases() {
        let stream = [
            0xaa, 0xbb, // garbage before the first start code
            0, 0, 0, 1, 0x09, 0xf0, // AUD, 4-byte start code
            0, 0, 1, 0x67, 1, 2, 0, 0, // SPS with trailing zeros
            0, 0, 1, // empty NAL unit
            0, 0, 0, 0, 1, 0x65, 0, 0, 3, 1, // IDR with emulation prevention, extra zeros before
        ];
        let nals: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(nals, [&[0x09, 0xf0][..], &[0x67, 1, 2], &[0x65, 0, 0, 3, 1]]);
        assert_eq!(nal_to_rbsp(nals[2]), [0x65, 0, 0, 1]);
        assert!(is_keyframe(&stream));
        assert_eq!(nal_type(&[]), 0);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 0, 0]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0, "no start code: nothing");
        let mut avcc = Vec::new();
        annexb_to_avcc(&stream, &mut avcc);
        assert_eq!(avcc, [0, 0, 0, 5, 0x65, 0, 0, 3, 1]);
    }

    #[test]
    fn avcc_length_sizes() {
        let mut out = Vec::new();
        avcc_to_annexb(&[0, 2, 0x65, 1, 0, 1, 0x41], 2, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x65, 1, 0, 0, 0, 1, 0x41]);
        out.clear();
        avcc_to_annexb(&[1, 0x09], 1, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x09]);
        assert!(avcc_to_annexb(&[0, 0, 0, 1], 0, &mut out).is_err());
        assert!(avcc_to_annexb(&[0, 0, 0, 1], 5, &mut out).is_err());
        let err = avcc_to_annexb(&[0, 0, 0, 9, 0x65], 4, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("truncated") && err.contains("byte 0"), "{err}");
        let err = avcc_to_annexb(&[0, 1, 0x65, 0, 0xff, 1], 2, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("byte 3"), "{err}");
        avcc_to_annexb(&[], 4, &mut Vec::new()).unwrap();
        // 0xffffffff lengths are errors, not allocations.
        assert!(avcc_to_annexb(&[0xff; 4], 4, &mut Vec::new()).is_err());
    }

    #[test]
    fn hostile_sps_is_an_error_not_a_panic() {
        for cut in 0..SPS.len() - 1 {
            // The VUI is optional; cutting into it still gives a size.
            if let Ok(sps) = parse_sps(&SPS[..cut]) {
                assert_eq!((sps.width, sps.height), (320, 240), "cut at {cut}");
            }
        }
        assert!(parse_sps(&SPS[..5]).is_err());
        assert!(parse_sps(&[]).is_err());
        assert!(parse_sps(&[0x68, 1, 2, 3]).unwrap_err().to_string().contains("not an SPS"));
        assert!(parse_sps(&[0xff; 64]).is_err());
        assert!(parse_sps(&[0x67; 64]).is_err() || parse_sps(&[0x67; 64]).is_ok());
        // 40 zero bits where an exp-Golomb code starts.
        let err = parse_sps(&[0x67, 0x64, 0, 0x1f, 0, 0, 0, 0, 0, 0x80]).unwrap_err().to_string();
        assert!(err.contains("exp-Golomb") && err.contains("byte 4"), "{err}");
        // seq_parameter_set_id = 32 (ue 000001 00001).
        let err = parse_sps(&[0x67, 0x42, 0, 0x1f, 0b0000_0100, 0b0010_0000]).unwrap_err().to_string();
        assert!(err.contains("seq_parameter_set_id"), "{err}");
        // Emulation prevention is removed before parsing, and offsets map back.
        let with_epb = [0x67, 0x42, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80];
        let err = parse_sps(&with_epb).unwrap_err().to_string();
        assert!(err.contains("exp-Golomb") && err.contains("byte 5"), "{err}");
        let err = parse_sps(&SPS[..6]).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        // Pseudo-random bytes after a valid header never panic.
        let mut x = 0x1234_5678u32;
        for len in 7..200 {
            let mut nal = vec![0x67, 100, 0, 40];
            for _ in 4..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                nal.push(x as u8);
            }
            if let Ok(sps) = parse_sps(&nal) {
                assert!(sps.width > 0 && sps.width <= 16384 && sps.height > 0 && sps.height <= 32768);
            }
            let _ = parse_slice_header(&[0x65, nal[5], nal[6]], &parse_sps(&SPS).unwrap());
            let _ = AvcConfig::parse(&nal);
        }
    }

    #[test]
    fn hostile_avc_config() {
        let good = AvcConfig::from_parameter_sets(&SPS, &PPS).unwrap().to_bytes();
        for cut in 0..good.len() {
            assert!(AvcConfig::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[6] = 0xff; // SPS length 0xff.. past the end
        let err = AvcConfig::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("byte 6"), "{err}");
        assert!(AvcConfig::parse(&[0xff; 32]).is_err());
        assert!(AvcConfig::from_parameter_sets(&SPS, &SPS).is_err());
    }

    #[test]
    fn splitter_rules() {
        let aud = [0, 0, 0, 1, 0x09, 0xf0];
        let sps = [&[0, 0, 0, 1][..], &SPS].concat();
        let pps = [&[0, 0, 0, 1][..], &PPS].concat();
        let sei = [0, 0, 1, 0x06, 5, 1, 0, 0x80];
        let idr = |first_mb_bit: u8| vec![0, 0, 1, 0x65, first_mb_bit, 0x84];
        let p = |first_mb_bit: u8| vec![0, 0, 1, 0x41, first_mb_bit, 0x9a];
        // first_mb_in_slice: 0x80 → ue 0; 0x40 → ue 1.
        let stream = [
            sps.clone(),
            pps.clone(),
            sei.to_vec(),
            idr(0x80),
            idr(0x40), // second slice of the IDR picture
            p(0x80),
            p(0x40),
            aud.to_vec(),
            p(0x80),
            sps.clone(),
            pps.clone(),
            idr(0x80),
            p(0x80),
        ]
        .concat();
        for chunk in [1, 2, 3, 5, 1000] {
            let units = split(&stream, chunk);
            let types: Vec<Vec<u8>> = units.iter().map(|u| nal_units(u).map(nal_type).collect()).collect();
            assert_eq!(types, [vec![7, 8, 6, 5, 5], vec![1, 1], vec![9, 1], vec![7, 8, 5], vec![1]], "chunk {chunk}");
            assert!(units.concat() == stream);
        }
        // Nothing comes out before the stream proves a unit complete.
        let mut s = AccessUnitSplitter::new();
        s.push(&stream[..sps.len() + pps.len() + sei.len() + 6]).unwrap();
        assert_eq!(s.pop(), None);
        s.finish();
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn splitter_caps_memory() {
        let mut s = AccessUnitSplitter::with_max_access_unit(1000);
        let mut big = vec![0, 0, 1, 0x65, 0x80];
        big.extend_from_slice(&[0x55; 5000]);
        let err = s.push(&big).unwrap_err().to_string();
        assert!(err.contains("exceeds 1000 bytes"), "{err}");
        assert_eq!(s.dropped(), 1);
        // It recovers at the next start codes.
        s.push(&[0, 0, 1, 0x65, 0x80, 1, 0, 0, 1, 0x41, 0x80, 2]).unwrap();
        s.finish();
        let units: Vec<_> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(units, [vec![0, 0, 1, 0x65, 0x80, 1], vec![0, 0, 1, 0x41, 0x80, 2]]);
        // Garbage with no start code is not buffered.
        let mut s = AccessUnitSplitter::with_max_access_unit(1000);
        for _ in 0..100 {
            s.push(&[0xff; 1000]).unwrap();
        }
        s.finish();
        assert_eq!(s.pop(), None);
    }
}
