//! ISO BMFF (MP4) parsing, sans-IO: bytes in, tracks and sample tables out.
//!
//! [`read`] and [`read_partial`] take a whole file; [`Mp4Reader`] takes it
//! in pushes of any size (only `moov`, `moof`, `ftyp` and `styp` are kept in
//! memory; `mdat` and unknown boxes are counted past, never buffered).
//! Plain files (`moov` sample tables: `stts`, `ctts`, `stss`, `stsc`,
//! `stsz`/`stz2`, `stco`/`co64`) and fragmented ones (`mvex`/`trex`, then
//! `moof`/`traf` with `tfhd`, `tfdt`, `trun`) give the same
//! [`Track`]s: codec fourcc, size, timescale, duration, the `avcC` record for
//! H.264, and every sample in decode order ([`SampleInfo`]: file offset,
//! size, dts, pts, duration, keyframe).
//!
//! Built for hostile input: every error is `Error::Malformed` with the byte
//! offset where the problem is; sizes and counts are checked against the
//! bytes that carry them before anything is allocated (no allocation is
//! larger than the input warrants), arithmetic saturates, the parser only
//! descends into the boxes it knows (so nesting depth is fixed: at most 8
//! levels, `moov/trak/mdia/minf/stbl/stsd/avc1/avcC`), and nothing panics.
//!
//! Truncated files give what they hold: [`read_partial`] returns every
//! sample whose bytes are all present plus the error saying where the file
//! stops (a faststart file cut in its `mdat` keeps its first samples; a
//! fragmented file cut in a fragment keeps the complete fragments).
//!
//! Edit lists are reported ([`Track::edit_media_time`]), not applied: `pts`
//! is the media time stored in the file.

use std::fmt;

use streamkit_core::{Error, Result};
use streamkit_h264::nal::AvcConfig;

use super::FourCc;

/// One sample of a track, in decode order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInfo {
    /// Absolute byte offset of the sample's data in the file.
    pub offset: u64,
    pub size: u32,
    /// Decode time, in the track timescale.
    pub dts: i64,
    /// Presentation time (`dts` + composition offset), in the track timescale.
    pub pts: i64,
    pub duration: u32,
    /// A sync sample (random access point).
    pub keyframe: bool,
}

/// One track of a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Track {
    pub track_id: u32,
    /// Handler type: `vide`, `soun`, `subt`, …
    pub handler: FourCc,
    /// Type of the first sample entry: `avc1`, `avc3`, `hvc1`, `mp4a`, …
    pub codec: FourCc,
    /// Coded size from the visual sample entry (else the `tkhd` size).
    pub width: u32,
    pub height: u32,
    /// Media timescale (ticks per second).
    pub timescale: u32,
    /// Media duration in the timescale (`mdhd`; for fragmented files whose
    /// `mdhd` says 0, the sum of the sample durations).
    pub duration: u64,
    /// The `avcC` record, for `avc1`/`avc3` tracks.
    pub avc: Option<AvcConfig>,
    /// `media_time` of the first non-empty edit, when there is an edit list:
    /// the media time presented first.
    pub edit_media_time: Option<i64>,
    /// Every sample whose bytes are in the input, in decode order.
    pub samples: Vec<SampleInfo>,
}

impl Track {
    /// An H.264 track streamkit can decode (`avc1`/`avc3` with its `avcC`).
    pub fn is_h264(&self) -> bool {
        self.codec.is_avc() && self.avc.is_some()
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / self.timescale.max(1) as f64
    }
}

/// What a file holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mp4File {
    /// From `ftyp` (or `styp` for a lone segment); zero when absent.
    pub major_brand: FourCc,
    pub compatible_brands: Vec<FourCc>,
    /// Whether the file has movie fragments (`mvex` or `moof`).
    pub fragmented: bool,
    pub movie_timescale: u32,
    pub movie_duration: u64,
    pub tracks: Vec<Track>,
}

impl Mp4File {
    /// The first H.264 video track; otherwise an error that names what the
    /// file has instead (`found hvc1 (vide); supported: avc1, avc3`).
    pub fn video_track(&self) -> Result<&Track> {
        if let Some(t) = self.tracks.iter().find(|t| t.handler == FourCc::VIDE && t.is_h264()) {
            return Ok(t);
        }
        let found: Vec<String> = self.tracks.iter().map(|t| format!("{} ({})", t.codec, t.handler)).collect();
        Err(Error::Unsupported(format!(
            "no H.264 video track: found {}; supported: avc1, avc3",
            if found.is_empty() { "no tracks".to_string() } else { found.join(", ") }
        )))
    }
}

/// Parses a whole file; any malformation (truncation included) is an error.
pub fn read(bytes: &[u8]) -> Result<Mp4File> {
    match read_partial(bytes) {
        (file, None) => Ok(file),
        (_, Some(e)) => Err(e),
    }
}

/// Parses a whole file, returning what could be read — every sample whose
/// bytes are present — and the first problem met, if any.
pub fn read_partial(bytes: &[u8]) -> (Mp4File, Option<Error>) {
    let mut reader = Mp4Reader::new();
    let _ = reader.push(bytes);
    reader.finish()
}

// ---------------------------------------------------------------------------
// Errors and byte cursors
// ---------------------------------------------------------------------------

/// A malformation at an absolute byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fault {
    offset: u64,
    message: String,
}

impl Fault {
    fn new(offset: u64, message: impl Into<String>) -> Fault {
        Fault { offset, message: message.into() }
    }

    fn error(&self) -> Error {
        Error::malformed("mp4", self.offset, self.message.clone())
    }
}

type PResult<T> = std::result::Result<T, Fault>;

/// Big-endian reads from a box payload; `base` is the payload's absolute
/// offset (for errors).
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    kind: FourCc,
}

impl<'a> Cursor<'a> {
    fn new(b: &BoxRef<'a>) -> Cursor<'a> {
        Cursor { data: b.payload, pos: 0, base: b.payload_base, kind: b.kind }
    }

    fn at(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(Fault::new(
                self.at(),
                format!(
                    "'{}' box ends after {} bytes, {} more needed",
                    self.kind,
                    self.data.len(),
                    n - self.remaining()
                ),
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> PResult<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> PResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> PResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> PResult<i32> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> PResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    fn fourcc(&mut self) -> PResult<FourCc> {
        Ok(FourCc(self.take(4)?.try_into().expect("4 bytes")))
    }
    /// Version and flags of a full box.
    fn full(&mut self) -> PResult<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
    /// A table entry count, checked against the bytes left for the entries.
    fn count(&mut self, entry_size: usize, what: &str) -> PResult<usize> {
        let at = self.at();
        let n = self.u32()? as usize;
        let room = self.remaining() / entry_size.max(1);
        if n > room {
            return Err(Fault::new(
                at,
                format!(
                    "'{}' declares {n} {what}, its {} remaining bytes hold at most {room}",
                    self.kind,
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }
}

/// A box header: type, absolute start, header length, total size (`None`:
/// to the end of the file / parent).
#[derive(Clone, Copy, Debug)]
struct BoxHeader {
    kind: FourCc,
    start: u64,
    header_len: usize,
    size: Option<u64>,
}

/// Parses a box header from `bytes` (which start at absolute `start`).
/// `Ok(None)`: more bytes are needed.
fn parse_header(bytes: &[u8], start: u64) -> PResult<Option<BoxHeader>> {
    if bytes.len() < 8 {
        return Ok(None);
    }
    let size32 = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let kind = FourCc([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let (mut header_len, size) = match size32 {
        0 => (8, None),
        1 => {
            if bytes.len() < 16 {
                return Ok(None);
            }
            (16, Some(u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"))))
        }
        n => (8, Some(n as u64)),
    };
    if kind.0 == *b"uuid" {
        header_len += 16;
        if bytes.len() < header_len {
            return Ok(None);
        }
    }
    if let Some(size) = size {
        if size < header_len as u64 {
            return Err(Fault::new(start, format!("box '{kind}' declares {size} bytes, less than its own header")));
        }
    }
    Ok(Some(BoxHeader { kind, start, header_len, size }))
}

/// A complete box in memory.
#[derive(Clone, Copy)]
struct BoxRef<'a> {
    kind: FourCc,
    start: u64,
    payload: &'a [u8],
    payload_base: u64,
}

/// Calls `f` on each child box of `parent`'s payload (from `skip` bytes in).
fn children<'a>(parent: &BoxRef<'a>, skip: usize, mut f: impl FnMut(BoxRef<'a>) -> PResult<()>) -> PResult<()> {
    let mut pos = skip.min(parent.payload.len());
    while pos < parent.payload.len() {
        let rest = &parent.payload[pos..];
        let start = parent.payload_base + pos as u64;
        let header = parse_header(rest, start)?.ok_or_else(|| {
            Fault::new(start, format!("{} bytes left in '{}' are too few for a box header", rest.len(), parent.kind))
        })?;
        let size = header.size.unwrap_or(rest.len() as u64);
        if size > rest.len() as u64 {
            return Err(Fault::new(
                start,
                format!(
                    "box '{}' declares {size} bytes but its parent '{}' has {} left",
                    header.kind,
                    parent.kind,
                    rest.len()
                ),
            ));
        }
        let size = size as usize;
        f(BoxRef {
            kind: header.kind,
            start,
            payload: &rest[header.header_len..size],
            payload_base: start + header.header_len as u64,
        })?;
        pos += size;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tracks under construction
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
enum Sizes {
    Constant {
        size: u32,
        count: u32,
    },
    Table(Vec<u32>),
    #[default]
    Missing,
}

impl Sizes {
    fn count(&self) -> u64 {
        match self {
            Sizes::Constant { count, .. } => *count as u64,
            Sizes::Table(t) => t.len() as u64,
            Sizes::Missing => 0,
        }
    }

    fn get(&self, i: u64) -> u32 {
        match self {
            Sizes::Constant { size, .. } => *size,
            Sizes::Table(t) => t.get(i as usize).copied().unwrap_or(0),
            Sizes::Missing => 0,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Tables {
    stts: Vec<(u32, u32)>,
    ctts: Vec<(u32, i32)>,
    stss: Option<Vec<u32>>,
    /// (first_chunk, samples_per_chunk)
    stsc: Vec<(u32, u32)>,
    sizes: Sizes,
    chunk_offsets: Vec<u64>,
    /// Where `stbl` starts (for errors about the tables as a whole).
    at: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Defaults {
    duration: u32,
    size: u32,
    flags: u32,
}

/// A `trun`'s samples, expanded when the reader finishes.
#[derive(Clone, Debug)]
struct Run {
    offset: u64,
    dts: i64,
    count: u32,
    defaults: Defaults,
    first_flags: Option<u32>,
    /// (duration, size, flags, composition offset) per sample, when the
    /// `trun` has per-sample fields; empty when every sample uses defaults.
    entries: Vec<(u32, u32, u32, i32)>,
}

#[derive(Clone, Debug, Default)]
struct TrackBuild {
    track: Track,
    tables: Tables,
    trex: Defaults,
    runs: Vec<Run>,
    next_fragment_dts: i64,
}

// ---------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------

/// Largest `moov`/`moof`/`ftyp` kept in memory (a `moov` for a day of 60 fps
/// video is ~50 MiB).
const MAX_BUFFERED_BOX: u64 = 256 << 20;

/// What to do with the current top-level box.
#[derive(Clone, Copy, Debug)]
enum Action {
    Gather(BoxHeader),
    Skip(BoxHeader),
}

/// Incremental ISO BMFF reader: [`push`](Self::push) the file's bytes in any
/// chunks, then [`finish`](Self::finish).
#[derive(Debug, Default)]
pub struct Mp4Reader {
    /// Absolute offset of the next byte pushed.
    pos: u64,
    /// Bytes of the current top-level box gathered so far (from its start).
    pending: Vec<u8>,
    action: Option<Action>,
    /// Bytes of a skipped box still to come; `u64::MAX` after a box that
    /// extends to the end of the file.
    skip_left: u64,
    fault: Option<Fault>,
    file: Mp4File,
    tracks: Vec<TrackBuild>,
    moov_seen: bool,
    /// The previous top-level box (for messages).
    last_box: Option<(FourCc, u64)>,
}

impl Mp4Reader {
    pub fn new() -> Mp4Reader {
        Mp4Reader::default()
    }

    /// Bytes pushed so far.
    pub fn bytes_read(&self) -> u64 {
        self.pos
    }

    /// Whether the `moov` has been parsed (track list known).
    pub fn has_moov(&self) -> bool {
        self.moov_seen
    }

    /// Tracks known so far (from the `moov`), without their samples: those
    /// are listed by [`finish`](Self::finish).
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter().map(|t| &t.track)
    }

    /// Feeds the next bytes of the file. After a malformation every push
    /// returns that error and ignores its bytes.
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        if let Some(f) = &self.fault {
            return Err(f.error());
        }
        match self.push_inner(data) {
            Ok(()) => Ok(()),
            Err(f) => {
                let e = f.error();
                self.fault = Some(f);
                Err(e)
            }
        }
    }

    fn push_inner(&mut self, mut input: &[u8]) -> PResult<()> {
        while !input.is_empty() {
            if self.skip_left > 0 {
                let n = self.skip_left.min(input.len() as u64);
                if self.skip_left != u64::MAX {
                    self.skip_left -= n;
                }
                self.pos += n;
                input = &input[n as usize..];
                if self.skip_left == 0 {
                    self.action = None;
                }
                continue;
            }
            match self.action {
                None => {
                    // Gather a header (at most 32 bytes), one byte range at a time.
                    let start = self.pos - self.pending.len() as u64;
                    let want = 32usize.saturating_sub(self.pending.len()).min(input.len());
                    let mut probe = std::mem::take(&mut self.pending);
                    let before = probe.len();
                    probe.extend_from_slice(&input[..want]);
                    match parse_header(&probe, start)? {
                        None => {
                            self.pos += want as u64;
                            input = &input[want..];
                            self.pending = probe;
                        }
                        Some(h) => {
                            let used = h.header_len - before;
                            self.pos += used as u64;
                            input = &input[used..];
                            probe.truncate(h.header_len);
                            self.start_box(h, probe)?;
                        }
                    }
                }
                Some(Action::Gather(h)) => {
                    let total = h.size.unwrap_or(MAX_BUFFERED_BOX + 1);
                    let have = self.pending.len() as u64;
                    let need = total - have;
                    if self.pending.len() == h.header_len && input.len() as u64 >= need && h.size.is_some() {
                        // The whole payload is here: parse it in place.
                        let payload = &input[..need as usize];
                        let payload_base = self.pos;
                        self.pos += need;
                        input = &input[need as usize..];
                        self.pending.clear();
                        self.action = None;
                        self.parse_top(h, payload, payload_base)?;
                    } else {
                        let n = need.min(input.len() as u64) as usize;
                        if h.size.is_none() && have + n as u64 > MAX_BUFFERED_BOX {
                            return Err(Fault::new(
                                h.start,
                                format!(
                                    "box '{}' (to the end of the file) is larger than {MAX_BUFFERED_BOX} bytes",
                                    h.kind
                                ),
                            ));
                        }
                        self.pending.extend_from_slice(&input[..n]);
                        self.pos += n as u64;
                        input = &input[n..];
                        if h.size.is_some() && self.pending.len() as u64 == total {
                            self.complete_pending(h)?;
                        }
                    }
                }
                // A skipped box whose bytes have all gone by.
                Some(Action::Skip(_)) => self.action = None,
            }
        }
        Ok(())
    }

    fn complete_pending(&mut self, h: BoxHeader) -> PResult<()> {
        let pending = std::mem::take(&mut self.pending);
        self.action = None;
        self.parse_top(h, &pending[h.header_len..], h.start + h.header_len as u64)
    }

    /// A top-level header was read (its bytes are `header`).
    fn start_box(&mut self, h: BoxHeader, header: Vec<u8>) -> PResult<()> {
        if !h.kind.0.iter().all(|&b| (0x20..0x7f).contains(&b) || b == 0xa9) {
            let after = self
                .last_box
                .map_or(String::from("at the start of the file"), |(k, at)| format!("after box '{k}' at byte {at}"));
            return Err(Fault::new(h.start, format!("not an MP4 box (type {:?}) {after}", h.kind)));
        }
        self.last_box = Some((h.kind, h.start));
        let payload_len = h.size.map(|s| s - h.header_len as u64);
        match &h.kind.0 {
            b"moov" | b"moof" | b"ftyp" | b"styp" => {
                if let Some(size) = h.size {
                    if size > MAX_BUFFERED_BOX {
                        return Err(Fault::new(
                            h.start,
                            format!("box '{}' of {size} bytes is larger than {MAX_BUFFERED_BOX}", h.kind),
                        ));
                    }
                }
                self.pending = header;
                self.action = Some(Action::Gather(h));
                if payload_len == Some(0) {
                    self.complete_pending(h)?;
                }
            }
            _ => {
                self.pending.clear();
                match payload_len {
                    Some(0) => self.action = None,
                    Some(n) => {
                        self.skip_left = n;
                        self.action = Some(Action::Skip(h));
                    }
                    None => {
                        self.skip_left = u64::MAX;
                        self.action = Some(Action::Skip(h));
                    }
                }
            }
        }
        Ok(())
    }

    fn parse_top(&mut self, h: BoxHeader, payload: &[u8], payload_base: u64) -> PResult<()> {
        let b = BoxRef { kind: h.kind, start: h.start, payload, payload_base };
        match &h.kind.0 {
            b"ftyp" | b"styp" => {
                if self.file.major_brand == FourCc::default() {
                    let mut c = Cursor::new(&b);
                    self.file.major_brand = c.fourcc()?;
                    c.skip(4)?;
                    while c.remaining() >= 4 {
                        self.file.compatible_brands.push(c.fourcc()?);
                    }
                }
                Ok(())
            }
            b"moov" => {
                if self.moov_seen {
                    return Err(Fault::new(h.start, "a second 'moov' box"));
                }
                self.moov_seen = true;
                self.parse_moov(&b)
            }
            b"moof" => {
                if !self.moov_seen {
                    return Err(Fault::new(
                        h.start,
                        "'moof' before any 'moov' (a lone media segment needs its init segment first)",
                    ));
                }
                self.file.fragmented = true;
                self.parse_moof(&b)
            }
            _ => Ok(()),
        }
    }

    /// Ends the input: lists every sample whose bytes were pushed and
    /// returns the file with the first problem met (truncation included).
    pub fn finish(mut self) -> (Mp4File, Option<Error>) {
        if self.fault.is_none() {
            self.fault = self.check_end();
        }
        let total = self.pos;
        let mut budget = total.max(4096);
        let mut tracks = Vec::with_capacity(self.tracks.len());
        for mut build in std::mem::take(&mut self.tracks) {
            let mut samples = Vec::new();
            if let Err(f) = expand(&build, total, &mut budget, &mut samples) {
                self.fault.get_or_insert(f);
            }
            if build.track.duration == 0 {
                build.track.duration = samples.iter().map(|s| s.duration as u64).sum();
            }
            build.track.samples = samples;
            tracks.push(build.track);
        }
        self.file.tracks = tracks;
        (self.file, self.fault.map(|f| f.error()))
    }

    fn check_end(&mut self) -> Option<Fault> {
        let end = self.pos;
        match self.action.take() {
            Some(Action::Gather(h)) if h.size.is_none() => {
                let pending = std::mem::take(&mut self.pending);
                if let Err(f) = self.parse_top(h, &pending[h.header_len..], h.start + h.header_len as u64) {
                    return Some(f);
                }
            }
            Some(Action::Gather(h)) | Some(Action::Skip(h)) if h.size.is_some() => {
                let size = h.size.unwrap_or(0);
                return Some(Fault::new(
                    h.start,
                    format!(
                        "box '{}' declares {size} bytes but the input ends after {} (truncated at byte {end})",
                        h.kind,
                        end - h.start
                    ),
                ));
            }
            _ => {}
        }
        if self.action.is_none() && !self.pending.is_empty() {
            let start = end - self.pending.len() as u64;
            return Some(Fault::new(start, format!("truncated box header ({} bytes) at the end", self.pending.len())));
        }
        if !self.moov_seen {
            return Some(Fault::new(
                end,
                if end == 0 {
                    "empty input".to_string()
                } else {
                    "no 'moov' box: not an MP4 file, or one whose writer stopped before finishing it".to_string()
                },
            ));
        }
        None
    }

    // ---- moov ----------------------------------------------------------------

    fn parse_moov(&mut self, moov: &BoxRef<'_>) -> PResult<()> {
        let mut trex: Vec<(u32, Defaults)> = Vec::new();
        let mut tracks = Vec::new();
        children(moov, 0, |b| {
            match &b.kind.0 {
                b"mvhd" => {
                    let mut c = Cursor::new(&b);
                    let (version, _) = c.full()?;
                    if version == 1 {
                        c.skip(16)?;
                        self.file.movie_timescale = c.u32()?;
                        self.file.movie_duration = c.u64()?;
                    } else {
                        c.skip(8)?;
                        self.file.movie_timescale = c.u32()?;
                        self.file.movie_duration = c.u32()? as u64;
                    }
                }
                b"trak" => tracks.push(parse_trak(&b)?),
                b"mvex" => {
                    self.file.fragmented = true;
                    children(&b, 0, |t| {
                        if &t.kind.0 == b"trex" {
                            let mut c = Cursor::new(&t);
                            c.full()?;
                            let id = c.u32()?;
                            c.skip(4)?; // default_sample_description_index
                            let d = Defaults { duration: c.u32()?, size: c.u32()?, flags: c.u32()? };
                            trex.push((id, d));
                        }
                        Ok(())
                    })?;
                }
                _ => {}
            }
            Ok(())
        })?;
        for t in &mut tracks {
            if let Some(&(_, d)) = trex.iter().find(|(id, _)| *id == t.track.track_id) {
                t.trex = d;
            }
        }
        self.tracks = tracks;
        Ok(())
    }

    // ---- moof ----------------------------------------------------------------

    fn parse_moof(&mut self, moof: &BoxRef<'_>) -> PResult<()> {
        let moof_start = moof.start;
        // Where the previous traf's data ended (the default base of the next).
        let mut previous_end: Option<u64> = None;
        let tracks = &mut self.tracks;
        children(moof, 0, |traf| {
            if &traf.kind.0 != b"traf" {
                return Ok(());
            }
            let mut tfhd = None;
            let mut tfdt = None;
            children(&traf, 0, |b| {
                match &b.kind.0 {
                    b"tfhd" => {
                        let mut c = Cursor::new(&b);
                        let (_, flags) = c.full()?;
                        let id = c.u32()?;
                        let base = if flags & 0x1 != 0 { Some(c.u64()?) } else { None };
                        if flags & 0x2 != 0 {
                            c.skip(4)?;
                        }
                        let duration = if flags & 0x8 != 0 { Some(c.u32()?) } else { None };
                        let size = if flags & 0x10 != 0 { Some(c.u32()?) } else { None };
                        let sflags = if flags & 0x20 != 0 { Some(c.u32()?) } else { None };
                        tfhd = Some((b.start, id, flags, base, duration, size, sflags));
                    }
                    b"tfdt" => {
                        let mut c = Cursor::new(&b);
                        let (version, _) = c.full()?;
                        let at = c.at();
                        let t = if version == 1 { c.u64()? } else { c.u32()? as u64 };
                        tfdt = Some(
                            i64::try_from(t)
                                .map_err(|_| Fault::new(at, format!("baseMediaDecodeTime {t} is out of range")))?,
                        );
                    }
                    _ => {}
                }
                Ok(())
            })?;
            let (tfhd_at, id, flags, base, duration, size, sflags) =
                tfhd.ok_or_else(|| Fault::new(traf.start, "'traf' without a 'tfhd'"))?;
            let track = tracks.iter_mut().find(|t| t.track.track_id == id).ok_or_else(|| {
                Fault::new(tfhd_at, format!("'tfhd' names track {id}, which the 'moov' does not have"))
            })?;
            let defaults = Defaults {
                duration: duration.unwrap_or(track.trex.duration),
                size: size.unwrap_or(track.trex.size),
                flags: sflags.unwrap_or(track.trex.flags),
            };
            let base_offset = match base {
                Some(b) => b,
                None if flags & 0x2_0000 != 0 => moof_start,
                None => previous_end.unwrap_or(moof_start),
            };
            let mut dts = tfdt.unwrap_or(track.next_fragment_dts);
            let mut next_offset = base_offset;
            children(&traf, 0, |b| {
                if &b.kind.0 != b"trun" {
                    return Ok(());
                }
                let mut c = Cursor::new(&b);
                let (_, tflags) = c.full()?;
                let count_at = c.at();
                let count = c.u32()?;
                let mut offset = next_offset;
                if tflags & 0x1 != 0 {
                    let at = c.at();
                    let rel = c.i32()? as i64;
                    offset = base_offset.checked_add_signed(rel).ok_or_else(|| {
                        Fault::new(at, format!("data_offset {rel} points before the start of the file"))
                    })?;
                }
                let first_flags = if tflags & 0x4 != 0 { Some(c.u32()?) } else { None };
                let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| tflags & f != 0).count() * 4;
                let mut run = Run { offset, dts, count, defaults, first_flags, entries: Vec::new() };
                let mut bytes = 0u64;
                let mut ticks = 0i64;
                if per_sample > 0 {
                    if count as u64 * per_sample as u64 > c.remaining() as u64 {
                        return Err(Fault::new(
                            count_at,
                            format!(
                                "'trun' declares {count} samples of {per_sample} bytes, only {} bytes follow",
                                c.remaining()
                            ),
                        ));
                    }
                    run.entries.reserve(count as usize);
                    for i in 0..count {
                        let d = if tflags & 0x100 != 0 { c.u32()? } else { defaults.duration };
                        let s = if tflags & 0x200 != 0 { c.u32()? } else { defaults.size };
                        let mut f = if tflags & 0x400 != 0 { c.u32()? } else { defaults.flags };
                        if i == 0 {
                            if let Some(ff) = first_flags {
                                f = ff;
                            }
                        }
                        // Version 0 offsets are unsigned, but writers put
                        // negative ones there too: read both as signed.
                        let o = if tflags & 0x800 != 0 { c.i32()? } else { 0 };
                        bytes = bytes.saturating_add(s as u64);
                        ticks = ticks.saturating_add(d as i64);
                        run.entries.push((d, s, f, o));
                    }
                } else {
                    bytes = (count as u64).saturating_mul(defaults.size as u64);
                    ticks = (count as i64).saturating_mul(defaults.duration as i64);
                }
                next_offset = offset.saturating_add(bytes);
                dts = dts.saturating_add(ticks);
                track.runs.push(run);
                Ok(())
            })?;
            track.next_fragment_dts = dts;
            previous_end = Some(next_offset);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------
// trak
// ---------------------------------------------------------------------------

fn parse_trak(trak: &BoxRef<'_>) -> PResult<TrackBuild> {
    let mut build = TrackBuild::default();
    let mut tkhd_size = (0, 0);
    let mut have_tkhd = false;
    children(trak, 0, |b| {
        match &b.kind.0 {
            b"tkhd" => {
                let mut c = Cursor::new(&b);
                let (version, _) = c.full()?;
                c.skip(if version == 1 { 16 } else { 8 })?;
                build.track.track_id = c.u32()?;
                c.skip(4)?;
                c.skip(if version == 1 { 8 } else { 4 })?;
                c.skip(8 + 8 + 36)?;
                tkhd_size = (c.u32()? >> 16, c.u32()? >> 16);
                have_tkhd = true;
            }
            b"edts" => children(&b, 0, |e| {
                if &e.kind.0 == b"elst" {
                    let mut c = Cursor::new(&e);
                    let (version, _) = c.full()?;
                    let n = c.count(if version == 1 { 20 } else { 12 }, "edits")?;
                    for _ in 0..n {
                        let media_time = if version == 1 {
                            c.u64()?;
                            c.u64()? as i64
                        } else {
                            c.u32()?;
                            c.i32()? as i64
                        };
                        c.skip(4)?;
                        if media_time >= 0 && build.track.edit_media_time.is_none() {
                            build.track.edit_media_time = Some(media_time);
                        }
                    }
                }
                Ok(())
            })?,
            b"mdia" => parse_mdia(&b, &mut build)?,
            _ => {}
        }
        Ok(())
    })?;
    if !have_tkhd {
        return Err(Fault::new(trak.start, "'trak' without a 'tkhd'"));
    }
    if build.track.width == 0 && build.track.height == 0 {
        (build.track.width, build.track.height) = tkhd_size;
    }
    Ok(build)
}

fn parse_mdia(mdia: &BoxRef<'_>, build: &mut TrackBuild) -> PResult<()> {
    // hdlr first: the sample entry layout depends on it.
    children(mdia, 0, |b| {
        if &b.kind.0 == b"hdlr" {
            let mut c = Cursor::new(&b);
            c.full()?;
            c.skip(4)?;
            build.track.handler = c.fourcc()?;
        }
        Ok(())
    })?;
    children(mdia, 0, |b| {
        match &b.kind.0 {
            b"mdhd" => {
                let mut c = Cursor::new(&b);
                let (version, _) = c.full()?;
                c.skip(if version == 1 { 16 } else { 8 })?;
                let at = c.at();
                build.track.timescale = c.u32()?;
                build.track.duration = if version == 1 { c.u64()? } else { c.u32()? as u64 };
                if build.track.timescale == 0 {
                    return Err(Fault::new(at, "'mdhd' timescale is 0"));
                }
            }
            b"minf" => children(&b, 0, |s| {
                if &s.kind.0 == b"stbl" {
                    parse_stbl(&s, build)?;
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })
}

/// Sample entry types laid out as a VisualSampleEntry.
fn is_visual_entry(kind: FourCc, handler: FourCc) -> bool {
    handler == FourCc::VIDE
        || matches!(&kind.0, b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"vp08" | b"vp09" | b"av01" | b"mp4v" | b"encv")
}

fn parse_stbl(stbl: &BoxRef<'_>, build: &mut TrackBuild) -> PResult<()> {
    let t = &mut build.tables;
    t.at = stbl.start;
    let track = &mut build.track;
    children(stbl, 0, |b| {
        let mut c = Cursor::new(&b);
        match &b.kind.0 {
            b"stsd" => {
                c.full()?;
                let n = c.u32()?;
                let mut first = true;
                if n > 0 {
                    children(&b, 8, |entry| {
                        if !first {
                            return Ok(());
                        }
                        first = false;
                        track.codec = entry.kind;
                        if is_visual_entry(entry.kind, track.handler) && entry.payload.len() >= 78 {
                            let mut e = Cursor::new(&entry);
                            e.skip(24)?;
                            track.width = e.u16()? as u32;
                            track.height = e.u16()? as u32;
                            if entry.kind.is_avc() {
                                children(&entry, 78, |child| {
                                    if &child.kind.0 == b"avcC" && track.avc.is_none() {
                                        let config = AvcConfig::parse(child.payload).map_err(|e| {
                                            Fault::new(child.payload_base, format!("'avcC' record: {e}"))
                                        })?;
                                        track.avc = Some(config);
                                    }
                                    Ok(())
                                })?;
                            }
                        }
                        Ok(())
                    })?;
                }
            }
            b"stts" => {
                c.full()?;
                let n = c.count(8, "entries")?;
                t.stts = (0..n).map(|_| Ok((c.u32()?, c.u32()?))).collect::<PResult<_>>()?;
            }
            b"ctts" => {
                c.full()?;
                let n = c.count(8, "entries")?;
                t.ctts = (0..n).map(|_| Ok((c.u32()?, c.i32()?))).collect::<PResult<_>>()?;
            }
            b"stss" => {
                c.full()?;
                let n = c.count(4, "entries")?;
                let mut v: Vec<u32> = (0..n).map(|_| c.u32()).collect::<PResult<_>>()?;
                v.sort_unstable();
                t.stss = Some(v);
            }
            b"stsc" => {
                c.full()?;
                let n = c.count(12, "entries")?;
                let mut previous = 0;
                for _ in 0..n {
                    let at = c.at();
                    let first_chunk = c.u32()?;
                    let per_chunk = c.u32()?;
                    c.skip(4)?;
                    if first_chunk == 0 || first_chunk <= previous {
                        return Err(Fault::new(at, format!("'stsc' first_chunk {first_chunk} after {previous}")));
                    }
                    previous = first_chunk;
                    t.stsc.push((first_chunk, per_chunk));
                }
            }
            b"stsz" => {
                c.full()?;
                let size = c.u32()?;
                if size != 0 {
                    let count = c.u32()?;
                    t.sizes = Sizes::Constant { size, count };
                } else {
                    let n = c.count(4, "sample sizes")?;
                    t.sizes = Sizes::Table((0..n).map(|_| c.u32()).collect::<PResult<_>>()?);
                }
            }
            b"stz2" => {
                c.full()?;
                c.skip(3)?;
                let at = c.at();
                let field = c.u8()?;
                let count_at = c.at();
                let n = c.u32()? as usize;
                let bits = match field {
                    4 | 8 | 16 => field as usize,
                    _ => return Err(Fault::new(at, format!("'stz2' field_size {field} is not 4, 8 or 16"))),
                };
                let needed = match bits {
                    4 => n.div_ceil(2),
                    8 => n,
                    _ => n.saturating_mul(2),
                };
                if needed > c.remaining() {
                    return Err(Fault::new(
                        count_at,
                        format!("'stz2' declares {n} sizes, {} bytes hold fewer", c.remaining()),
                    ));
                }
                let bytes = c.take(c.remaining())?;
                t.sizes = Sizes::Table(
                    (0..n)
                        .map(|i| match bits {
                            4 => ((bytes[i / 2] >> if i.is_multiple_of(2) { 4 } else { 0 }) & 0xf) as u32,
                            8 => bytes[i] as u32,
                            _ => u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]) as u32,
                        })
                        .collect(),
                );
            }
            b"stco" => {
                c.full()?;
                let n = c.count(4, "chunk offsets")?;
                t.chunk_offsets = (0..n).map(|_| Ok(c.u32()? as u64)).collect::<PResult<_>>()?;
            }
            b"co64" => {
                c.full()?;
                let n = c.count(8, "chunk offsets")?;
                t.chunk_offsets = (0..n).map(|_| c.u64()).collect::<PResult<_>>()?;
            }
            _ => {}
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Sample table expansion
// ---------------------------------------------------------------------------

/// Walks run-length tables (`stts`, `ctts`).
struct Runs<'a, T> {
    runs: &'a [(u32, T)],
    index: usize,
    used: u32,
}

impl<'a, T: Copy + Into<i64>> Runs<'a, T> {
    fn new(runs: &'a [(u32, T)]) -> Self {
        Runs { runs, index: 0, used: 0 }
    }

    fn next(&mut self) -> Option<T> {
        while let Some(&(count, value)) = self.runs.get(self.index) {
            if self.used < count {
                self.used += 1;
                return Some(value);
            }
            self.index += 1;
            self.used = 0;
        }
        None
    }

    /// Skips `n` values; returns their sum.
    fn skip(&mut self, mut n: u64) -> i64 {
        let mut sum = 0i64;
        while n > 0 {
            let Some(&(count, value)) = self.runs.get(self.index) else { break };
            let take = n.min((count - self.used.min(count)) as u64);
            sum = sum.saturating_add((take as i64).saturating_mul(value.into()));
            n -= take;
            self.used += take as u32;
            if self.used >= count {
                self.index += 1;
                self.used = 0;
            }
        }
        sum
    }
}

fn budget_fault(at: u64) -> Fault {
    Fault::new(at, "the sample tables list more samples than the file has bytes")
}

/// Lists the samples of a track whose bytes lie within the first `total`
/// bytes. `budget` bounds the number listed over the whole file.
fn expand(build: &TrackBuild, total: u64, budget: &mut u64, out: &mut Vec<SampleInfo>) -> PResult<()> {
    let t = &build.tables;
    let count = t.sizes.count();
    let mut problem = None;
    if count > 0 {
        if t.stsc.is_empty() || t.chunk_offsets.is_empty() {
            return Err(Fault::new(t.at, format!("{count} samples but no chunks ('stsc'/'stco' empty)")));
        }
        let mut stts = Runs::new(&t.stts);
        let mut ctts = Runs::new(&t.ctts);
        let mut stss = t.stss.as_deref().map(|v| (v, 0usize));
        let mut stsc_index = 0;
        let mut k = 0u64;
        let mut dts = 0i64;
        'chunks: for (ci, &chunk_offset) in t.chunk_offsets.iter().enumerate() {
            let chunk_number = ci as u64 + 1;
            while t.stsc.get(stsc_index + 1).is_some_and(|&(first, _)| first as u64 <= chunk_number) {
                stsc_index += 1;
            }
            let per_chunk = t.stsc[stsc_index].1 as u64;
            let mut offset = chunk_offset;
            let mut i = 0u64;
            while i < per_chunk {
                if k >= count {
                    break 'chunks;
                }
                let size = t.sizes.get(k);
                let delta = match stts.next() {
                    Some(d) => d,
                    None => {
                        problem.get_or_insert_with(|| {
                            Fault::new(t.at, format!("'stts' covers fewer samples than the {count} of 'stsz'"))
                        });
                        0
                    }
                };
                let cto = ctts.next().unwrap_or(0);
                let keyframe = match &mut stss {
                    None => true,
                    Some((v, idx)) => {
                        while v.get(*idx).is_some_and(|&n| (n as u64) < k + 1) {
                            *idx += 1;
                        }
                        v.get(*idx) == Some(&((k + 1) as u32))
                    }
                };
                let end = offset.checked_add(size as u64);
                if past_end(end, total) {
                    // This and every later sample of the chunk are past the end.
                    let rest = (per_chunk - i - 1).min(count - k - 1);
                    dts = dts.saturating_add(delta as i64).saturating_add(stts.skip(rest));
                    ctts.skip(rest);
                    k += rest + 1;
                    continue 'chunks;
                }
                if *budget == 0 {
                    return Err(budget_fault(t.at));
                }
                *budget -= 1;
                out.push(SampleInfo {
                    offset,
                    size,
                    dts,
                    pts: dts.saturating_add(cto as i64),
                    duration: delta,
                    keyframe,
                });
                offset = offset.saturating_add(size as u64);
                dts = dts.saturating_add(delta as i64);
                k += 1;
                i += 1;
            }
        }
        if k < count {
            problem.get_or_insert_with(|| {
                Fault::new(t.at, format!("the chunks hold {k} samples, 'stsz' declares {count}"))
            });
        }
    }
    for run in &build.runs {
        let mut offset = run.offset;
        let mut dts = run.dts;
        for i in 0..run.count {
            let (duration, size, flags, cto) = match run.entries.get(i as usize) {
                Some(&e) => e,
                None => {
                    let flags = if i == 0 { run.first_flags.unwrap_or(run.defaults.flags) } else { run.defaults.flags };
                    (run.defaults.duration, run.defaults.size, flags, 0)
                }
            };
            if past_end(offset.checked_add(size as u64), total) {
                break; // the rest of the run is past the end too
            }
            if *budget == 0 {
                return Err(budget_fault(run.offset));
            }
            *budget -= 1;
            out.push(SampleInfo {
                offset,
                size,
                dts,
                pts: dts.saturating_add(cto as i64),
                duration,
                keyframe: flags & 0x0001_0000 == 0,
            });
            offset = offset.saturating_add(size as u64);
            dts = dts.saturating_add(duration as i64);
        }
    }
    problem.map_or(Ok(()), Err)
}

/// Whether a sample ending at `end` (`None`: overflowed) lies past `total`.
fn past_end(end: Option<u64>, total: u64) -> bool {
    match end {
        Some(end) => end > total,
        None => true,
    }
}

impl fmt::Display for SampleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at {}, dts {} pts {} duration {}{}",
            self.size,
            self.offset,
            self.dts,
            self.pts,
            self.duration,
            if self.keyframe { " (key)" } else { "" }
        )
    }
}
