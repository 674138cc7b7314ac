//! Box serialisation shared by the fragmented, faststart and CMAF writers.

use streamkit_h264::nal::AvcConfig;

use super::VIDEO_TRACK_ID;

/// `sample_flags` of a sync sample: `sample_depends_on = 2` (depends on no
/// other sample), `sample_is_non_sync_sample = 0`.
pub(crate) const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on = 1`,
/// `sample_is_non_sync_sample = 1`.
pub(crate) const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// The movie timescale (`mvhd`, `tkhd` and `elst` durations): milliseconds.
pub(crate) const MOVIE_TIMESCALE: u32 = 1000;

/// Builds nested boxes in a byte vector, patching each box's size when it
/// ends. Boxes built here are metadata (well under 4 GiB); `mdat` headers are
/// written separately.
pub(crate) struct BoxWriter {
    pub(crate) buf: Vec<u8>,
    open: Vec<usize>,
}

impl BoxWriter {
    pub(crate) fn new() -> BoxWriter {
        BoxWriter { buf: Vec::with_capacity(1024), open: Vec::new() }
    }

    pub(crate) fn begin(&mut self, kind: &[u8; 4]) {
        self.open.push(self.buf.len());
        self.u32(0);
        self.buf.extend_from_slice(kind);
    }

    pub(crate) fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) {
        self.begin(kind);
        self.u32((version as u32) << 24 | (flags & 0x00ff_ffff));
    }

    pub(crate) fn end(&mut self) {
        let start = self.open.pop().expect("end() without begin()");
        let size = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        debug_assert!(self.open.is_empty(), "unclosed boxes");
        self.buf
    }
}

pub(crate) fn write_ftyp(w: &mut BoxWriter, kind: &[u8; 4], major: &[u8; 4], minor: u32, compatible: &[&[u8; 4]]) {
    w.begin(kind);
    w.bytes(major);
    w.u32(minor);
    for brand in compatible {
        w.bytes(*brand);
    }
    w.end();
}

/// `ftyp` of fragmented files and CMAF headers.
pub(crate) fn write_fragmented_ftyp(w: &mut BoxWriter) {
    write_ftyp(w, b"ftyp", b"iso6", 0, &[b"iso6", b"cmfc", b"avc1", b"mp41"]);
}

/// `ftyp` of plain (faststart) files, as ffmpeg writes them.
pub(crate) fn write_plain_ftyp(w: &mut BoxWriter) {
    write_ftyp(w, b"ftyp", b"isom", 0x200, &[b"isom", b"iso2", b"avc1", b"mp41"]);
}

/// What the `moov` says about the video track.
pub(crate) struct VideoTrackInfo<'a> {
    pub(crate) config: &'a AvcConfig,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Sample aspect ratio from the SPS VUI, when not square.
    pub(crate) sar: Option<(u16, u16)>,
    pub(crate) timescale: u32,
}

impl VideoTrackInfo<'_> {
    /// From an avcC record: size and aspect ratio from its first SPS.
    pub(crate) fn from_config(config: &AvcConfig, timescale: u32) -> VideoTrackInfo<'_> {
        let sps = config.parse_sps().ok();
        VideoTrackInfo {
            config,
            width: sps.as_ref().map_or(0, |s| s.width),
            height: sps.as_ref().map_or(0, |s| s.height),
            sar: sps
                .and_then(|s| s.vui)
                .and_then(|v| v.sample_aspect_ratio)
                .filter(|&(w, h)| w != 0 && h != 0 && w != h),
            timescale,
        }
    }
}

/// The sample tables of a non-fragmented file.
pub(crate) struct SampleTables {
    /// (sample_count, sample_delta)
    pub(crate) stts: Vec<(u32, u32)>,
    /// (sample_count, sample_offset); `None` when every offset is 0.
    pub(crate) ctts: Option<Vec<(u32, i32)>>,
    /// 1-based sync sample numbers; `None` when every sample is sync.
    pub(crate) stss: Option<Vec<u32>>,
    /// (first_chunk, samples_per_chunk)
    pub(crate) stsc: Vec<(u32, u32)>,
    pub(crate) sizes: Vec<u32>,
    pub(crate) chunk_offsets: Vec<u64>,
    pub(crate) use_co64: bool,
    /// Sum of sample durations, media timescale.
    pub(crate) media_duration: u64,
    /// The edit list's media_time (where presentation starts), when not 0.
    pub(crate) edit_media_time: Option<i64>,
}

fn movie_ticks(media: u64, timescale: u32) -> u64 {
    (media as u128 * MOVIE_TIMESCALE as u128).div_ceil(timescale.max(1) as u128) as u64
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// `moov` for the video track: with sample tables (plain files) or empty
/// tables plus `mvex` (fragmented files and CMAF headers).
pub(crate) fn write_moov(w: &mut BoxWriter, track: &VideoTrackInfo<'_>, tables: Option<&SampleTables>) {
    let media_duration = tables.map_or(0, |t| t.media_duration);
    let presented = media_duration.saturating_sub(tables.and_then(|t| t.edit_media_time).unwrap_or(0).max(0) as u64);
    let movie_duration = movie_ticks(if tables.is_some() { presented } else { 0 }, track.timescale);
    let v1 = movie_duration > u32::MAX as u64 || media_duration > u32::MAX as u64;

    w.begin(b"moov");
    // mvhd
    w.begin_full(b"mvhd", v1 as u8, 0);
    if v1 {
        w.u64(0);
        w.u64(0);
        w.u32(MOVIE_TIMESCALE);
        w.u64(movie_duration);
    } else {
        w.u32(0);
        w.u32(0);
        w.u32(MOVIE_TIMESCALE);
        w.u32(movie_duration as u32);
    }
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8);
    MATRIX.iter().for_each(|&m| w.u32(m));
    w.zeros(24); // pre_defined
    w.u32(VIDEO_TRACK_ID + 1); // next_track_ID
    w.end();

    w.begin(b"trak");
    // tkhd: track enabled, in movie
    w.begin_full(b"tkhd", v1 as u8, 0x3);
    if v1 {
        w.u64(0);
        w.u64(0);
        w.u32(VIDEO_TRACK_ID);
        w.u32(0);
        w.u64(movie_duration);
    } else {
        w.u32(0);
        w.u32(0);
        w.u32(VIDEO_TRACK_ID);
        w.u32(0);
        w.u32(movie_duration as u32);
    }
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(0); // volume: 0 for video
    w.u16(0);
    MATRIX.iter().for_each(|&m| w.u32(m));
    let display_width = match track.sar {
        Some((sw, sh)) => (track.width as u64 * sw as u64 / sh as u64) as u32,
        None => track.width,
    };
    w.u32(display_width.min(0xffff) << 16);
    w.u32(track.height.min(0xffff) << 16);
    w.end();

    if let Some(media_time) = tables.and_then(|t| t.edit_media_time) {
        w.begin(b"edts");
        let elst_v1 = media_time > i32::MAX as i64 || movie_duration > u32::MAX as u64;
        w.begin_full(b"elst", elst_v1 as u8, 0);
        w.u32(1);
        if elst_v1 {
            w.u64(movie_duration);
            w.i64(media_time);
        } else {
            w.u32(movie_duration as u32);
            w.i32(media_time as i32);
        }
        w.u16(1); // media_rate_integer
        w.u16(0); // media_rate_fraction
        w.end();
        w.end();
    }

    w.begin(b"mdia");
    w.begin_full(b"mdhd", v1 as u8, 0);
    if v1 {
        w.u64(0);
        w.u64(0);
        w.u32(track.timescale);
        w.u64(media_duration);
    } else {
        w.u32(0);
        w.u32(0);
        w.u32(track.timescale);
        w.u32(media_duration as u32);
    }
    w.u16(0x55c4); // language: 'und'
    w.u16(0);
    w.end();
    w.begin_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(b"vide");
    w.zeros(12);
    w.bytes(b"VideoHandler\0");
    w.end();

    w.begin(b"minf");
    w.begin_full(b"vmhd", 0, 1);
    w.zeros(8);
    w.end();
    w.begin(b"dinf");
    w.begin_full(b"dref", 0, 0);
    w.u32(1);
    w.begin_full(b"url ", 0, 1); // media data in this file
    w.end();
    w.end();
    w.end();

    w.begin(b"stbl");
    write_stsd(w, track);
    match tables {
        Some(t) => write_tables(w, t),
        None => {
            for kind in [b"stts", b"stsc", b"stco"] {
                w.begin_full(kind, 0, 0);
                w.u32(0);
                w.end();
            }
            w.begin_full(b"stsz", 0, 0);
            w.u32(0);
            w.u32(0);
            w.end();
        }
    }
    w.end(); // stbl
    w.end(); // minf
    w.end(); // mdia
    w.end(); // trak

    if tables.is_none() {
        w.begin(b"mvex");
        w.begin_full(b"trex", 0, 0);
        w.u32(VIDEO_TRACK_ID);
        w.u32(1); // default_sample_description_index
        w.u32(0); // default_sample_duration
        w.u32(0); // default_sample_size
        w.u32(0); // default_sample_flags
        w.end();
        w.end();
    }
    w.end(); // moov
}

fn write_stsd(w: &mut BoxWriter, track: &VideoTrackInfo<'_>) {
    w.begin_full(b"stsd", 0, 0);
    w.u32(1);
    w.begin(b"avc1");
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(16); // pre_defined, reserved
    w.u16(track.width.min(0xffff) as u16);
    w.u16(track.height.min(0xffff) as u16);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1); // frame_count
    let mut name = [0u8; 32];
    let label = b"streamkit";
    name[0] = label.len() as u8;
    name[1..=label.len()].copy_from_slice(label);
    w.bytes(&name);
    w.u16(0x0018); // depth
    w.u16(0xffff); // pre_defined = -1
    w.begin(b"avcC");
    w.bytes(&track.config.to_bytes());
    w.end();
    if let Some((h, v)) = track.sar {
        w.begin(b"pasp");
        w.u32(h as u32);
        w.u32(v as u32);
        w.end();
    }
    w.end();
    w.end();
}

fn write_tables(w: &mut BoxWriter, t: &SampleTables) {
    w.begin_full(b"stts", 0, 0);
    w.u32(t.stts.len() as u32);
    for &(count, delta) in &t.stts {
        w.u32(count);
        w.u32(delta);
    }
    w.end();
    if let Some(ctts) = &t.ctts {
        let version = ctts.iter().any(|&(_, o)| o < 0) as u8;
        w.begin_full(b"ctts", version, 0);
        w.u32(ctts.len() as u32);
        for &(count, offset) in ctts {
            w.u32(count);
            w.i32(offset);
        }
        w.end();
    }
    if let Some(stss) = &t.stss {
        w.begin_full(b"stss", 0, 0);
        w.u32(stss.len() as u32);
        stss.iter().for_each(|&n| w.u32(n));
        w.end();
    }
    w.begin_full(b"stsc", 0, 0);
    w.u32(t.stsc.len() as u32);
    for &(first_chunk, per_chunk) in &t.stsc {
        w.u32(first_chunk);
        w.u32(per_chunk);
        w.u32(1);
    }
    w.end();
    w.begin_full(b"stsz", 0, 0);
    let constant = t.sizes.first().filter(|&&s| t.sizes.iter().all(|&x| x == s));
    w.u32(constant.copied().unwrap_or(0));
    w.u32(t.sizes.len() as u32);
    if constant.is_none() {
        t.sizes.iter().for_each(|&s| w.u32(s));
    }
    w.end();
    if t.use_co64 {
        w.begin_full(b"co64", 0, 0);
        w.u32(t.chunk_offsets.len() as u32);
        t.chunk_offsets.iter().for_each(|&o| w.u64(o));
    } else {
        w.begin_full(b"stco", 0, 0);
        w.u32(t.chunk_offsets.len() as u32);
        t.chunk_offsets.iter().for_each(|&o| w.u32(o as u32));
    }
    w.end();
}

/// One sample of a movie fragment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FragSample {
    pub(crate) size: u32,
    pub(crate) duration: u32,
    pub(crate) keyframe: bool,
    /// Composition offset (pts - dts), already shifted; fits i32.
    pub(crate) cto: i32,
}

/// Appends `moof` + `mdat` for one fragment of the video track. `payload` is
/// the samples' bytes, in order (their sizes add up to its length).
pub(crate) fn write_fragment(
    out: &mut Vec<u8>,
    sequence_number: u32,
    base_decode_time: u64,
    samples: &[FragSample],
    payload: &[u8],
) {
    let with_cto = samples.iter().any(|s| s.cto != 0);
    let version = samples.iter().any(|s| s.cto < 0) as u8;
    let mut flags = 0x001 | 0x100 | 0x200 | 0x400; // data offset, duration, size, flags
    if with_cto {
        flags |= 0x800;
    }
    let mut w = BoxWriter::new();
    w.begin(b"moof");
    w.begin_full(b"mfhd", 0, 0);
    w.u32(sequence_number);
    w.end();
    w.begin(b"traf");
    w.begin_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
    w.u32(VIDEO_TRACK_ID);
    w.end();
    w.begin_full(b"tfdt", 1, 0);
    w.u64(base_decode_time);
    w.end();
    w.begin_full(b"trun", version, flags);
    w.u32(samples.len() as u32);
    let data_offset_at = w.len();
    w.i32(0); // patched below
    for s in samples {
        w.u32(s.duration);
        w.u32(s.size);
        w.u32(if s.keyframe { SYNC_SAMPLE_FLAGS } else { NON_SYNC_SAMPLE_FLAGS });
        if with_cto {
            w.i32(s.cto);
        }
    }
    w.end();
    w.end(); // traf
    w.end(); // moof
    let mut moof = w.into_bytes();
    let large = payload.len() as u64 + 8 > u32::MAX as u64;
    let mdat_header = if large { 16 } else { 8 };
    let data_offset = (moof.len() + mdat_header) as i32;
    moof[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    out.extend_from_slice(&moof);
    write_mdat_header(out, payload.len() as u64, large);
    out.extend_from_slice(payload);
}

/// An `mdat` header for `payload_len` bytes: 8 bytes, or 16 with a 64-bit
/// size when `large`.
pub(crate) fn write_mdat_header(out: &mut Vec<u8>, payload_len: u64, large: bool) {
    if large {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(&(payload_len + 16).to_be_bytes());
    } else {
        out.extend_from_slice(&(payload_len as u32 + 8).to_be_bytes());
        out.extend_from_slice(b"mdat");
    }
}
