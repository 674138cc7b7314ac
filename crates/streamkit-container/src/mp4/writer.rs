//! [`Mp4Writer`]: H.264 samples in, MP4 bytes out (sans-IO).
//!
//! Two layouts ([`Mp4Layout`]):
//!
//! **Fragmented** (`ftyp` `iso6`/`cmfc` + `moov` with `mvex`, then `moof` +
//! `mdat` per fragment). The header goes out with the first keyframe, and
//! each fragment as soon as the next one starts, so the bytes on disk are
//! always a playable file up to the last complete fragment — a killed
//! process loses at most the fragment in progress. Fragment policy
//! ([`FragmentPolicy`]): a fragment starts at a keyframe once the current one
//! lasts at least `min_duration` (default 0: every keyframe starts a
//! fragment, like ffmpeg's `frag_keyframe`); a fragment that grows past
//! `max_bytes` (default 32 MiB, which bounds the writer's memory) is closed
//! early, so the next one then starts on a non-keyframe.
//! [`Mp4Writer::flush_fragment`] closes one by hand (for live use on a timer).
//!
//! **Faststart** (`moov` before `mdat`, one pass plus at most one copy). The
//! writer emits a *placeholder* first — `ftyp`, a `free` box of
//! `moov_reserve` bytes, and an `mdat` header — then each sample's bytes as
//! they come, so a sink streams everything straight to its file. At the end
//! [`Mp4Writer::finish`] says how to finalise ([`Finalize`]):
//!
//! * [`Finalize::Overwrite`] when the `moov` fits in the reserved space: write
//!   the given bytes at offset 0 (`ftyp` + `moov` + `free` padding + `mdat`
//!   header, exactly as long as the placeholder). No extra pass at all.
//! * [`Finalize::Relocate`] otherwise: the final file is `head` (`ftyp` +
//!   `moov` + `mdat` header, chunk offsets already shifted for it) followed
//!   by the written bytes from `data_start` to the end: write `head` to a new
//!   file, copy the samples after it (the one extra pass), rename it over the
//!   first. This is what `ffmpeg -movflags +faststart` does every time.
//!
//! A killed process leaves an unplayable faststart file (there is no `moov`
//! yet): use the fragmented layout where that matters.
//!
//! ```
//! use streamkit_container::mp4::{Mp4Writer, Sample};
//! # fn frames() -> Vec<Vec<u8>> { vec![] }
//! let mut writer = Mp4Writer::faststart(90_000, Mp4Writer::suggested_moov_reserve(300));
//! let mut file = Vec::new(); // a sink would write these bytes to disk as they come
//! for (i, frame) in frames().iter().enumerate() {
//!     let t = i as i64 * 3000;
//!     writer.write(&Sample::annexb(frame, t, t, 3000, streamkit_h264::nal::is_keyframe(frame)), &mut file)?;
//! }
//! # if frames().is_empty() { return Ok(()) }
//! let finalize = writer.finish(&mut file)?;
//! let mp4 = finalize.apply(file); // a sink: seek(0)+write, or write head + copy + rename
//! # Ok::<(), streamkit_core::Error>(())
//! ```

use streamkit_core::{Error, Result};
use streamkit_h264::nal::{self, AvcConfig, NAL_PPS, NAL_SPS};

use super::boxes::{self, BoxWriter, FragSample, SampleTables, VideoTrackInfo};
use super::{NalFormat, Sample, DEFAULT_TIMESCALE};

/// When fragments of a fragmented file begin and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentPolicy {
    /// A keyframe starts a new fragment once the current one lasts at least
    /// this long (timescale ticks). 0: every keyframe.
    pub min_duration: u64,
    /// A fragment is closed (even without a keyframe) before it would grow
    /// past this many bytes of samples.
    pub max_bytes: usize,
}

impl Default for FragmentPolicy {
    fn default() -> Self {
        FragmentPolicy { min_duration: 0, max_bytes: 32 << 20 }
    }
}

/// The file layout an [`Mp4Writer`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mp4Layout {
    /// `ftyp` + `moov` (no samples), then `moof` + `mdat` per fragment.
    Fragmented(FragmentPolicy),
    /// `ftyp` + `moov` + `mdat`, finalised by [`Mp4Writer::finish`]; the
    /// placeholder reserves `moov_reserve` bytes (a `free` box) for the `moov`
    /// to be written in place (0: always relocate).
    Faststart { moov_reserve: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mp4WriterOptions {
    pub layout: Mp4Layout,
    /// Timescale of the samples' `pts`/`dts` (ticks per second).
    pub timescale: u32,
}

impl Default for Mp4WriterOptions {
    fn default() -> Self {
        Mp4WriterOptions { layout: Mp4Layout::Fragmented(FragmentPolicy::default()), timescale: DEFAULT_TIMESCALE }
    }
}

/// How to finish the file after [`Mp4Writer::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finalize {
    /// The bytes written so far are the whole file (fragmented layout).
    Complete,
    /// Overwrite the start of the file with `bytes` (as long as the
    /// placeholder written first); no data moves.
    Overwrite { bytes: Vec<u8> },
    /// The file is `head` followed by the written bytes from `data_start` to
    /// the end (the samples): one copy of the data.
    Relocate { head: Vec<u8>, data_start: u64 },
}

impl Finalize {
    /// Applies the finalisation to a file held in memory: `written` is every
    /// byte the writer emitted, in order.
    pub fn apply(self, mut written: Vec<u8>) -> Vec<u8> {
        match self {
            Finalize::Complete => written,
            Finalize::Overwrite { bytes } => {
                written[..bytes.len()].copy_from_slice(&bytes);
                written
            }
            Finalize::Relocate { mut head, data_start } => {
                head.extend_from_slice(&written[data_start as usize..]);
                head
            }
        }
    }
}

/// A sample waiting in the current fragment.
#[derive(Clone, Copy, Debug)]
struct Pending {
    dts: i64,
    cto: i64,
    size: u32,
    keyframe: bool,
    duration: u32,
}

/// Faststart: a chunk (a run of consecutive samples) in the `mdat`.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    /// Offset of the chunk from the start of the `mdat` payload.
    offset: u64,
    samples: u32,
    bytes: u64,
    first_dts: i64,
}

const CHUNK_MAX_BYTES: u64 = 1 << 20;

/// H.264 into MP4, sans-IO; see the [module docs](self) for the layouts.
#[derive(Debug)]
pub struct Mp4Writer {
    options: Mp4WriterOptions,
    config: Option<AvcConfig>,
    first_dts: Option<i64>,
    last_dts: i64,
    /// Fragmented: composition offset of the first sample, subtracted from
    /// every offset so that presentation starts at 0.
    cto_shift: i64,
    last_duration: u32,
    dropped: u64,
    samples: u64,
    finished: bool,
    // Fragmented.
    header_written: bool,
    sequence: u32,
    pending: Vec<Pending>,
    payload: Vec<u8>,
    // Faststart.
    placeholder: Option<Placeholder>,
    entries: Vec<Pending>,
    chunks: Vec<Chunk>,
    payload_len: u64,
}

#[derive(Clone, Copy, Debug)]
struct Placeholder {
    ftyp_len: u64,
    /// Size of the `free` box (0: none).
    free_len: u64,
}

impl Placeholder {
    fn data_start(&self) -> u64 {
        self.ftyp_len + self.free_len + 16
    }
}

impl Mp4Writer {
    pub fn new(options: Mp4WriterOptions) -> Mp4Writer {
        Mp4Writer {
            options: Mp4WriterOptions { timescale: options.timescale.max(1), ..options },
            config: None,
            first_dts: None,
            last_dts: i64::MIN,
            cto_shift: 0,
            last_duration: 0,
            dropped: 0,
            samples: 0,
            finished: false,
            header_written: false,
            sequence: 1,
            pending: Vec::new(),
            payload: Vec::new(),
            placeholder: None,
            entries: Vec::new(),
            chunks: Vec::new(),
            payload_len: 0,
        }
    }

    /// A fragmented writer with the default [`FragmentPolicy`].
    pub fn fragmented(timescale: u32) -> Mp4Writer {
        Mp4Writer::new(Mp4WriterOptions { layout: Mp4Layout::Fragmented(FragmentPolicy::default()), timescale })
    }

    /// A faststart writer reserving `moov_reserve` bytes for the `moov`.
    pub fn faststart(timescale: u32, moov_reserve: u64) -> Mp4Writer {
        Mp4Writer::new(Mp4WriterOptions { layout: Mp4Layout::Faststart { moov_reserve }, timescale })
    }

    /// A `moov_reserve` that holds the `moov` of `expected_samples` video
    /// samples (about 24 bytes each plus the fixed boxes), so that
    /// [`finish`](Self::finish) can overwrite in place.
    pub fn suggested_moov_reserve(expected_samples: u64) -> u64 {
        2048 + 24 * expected_samples
    }

    pub fn options(&self) -> &Mp4WriterOptions {
        &self.options
    }

    /// Sets the decoder configuration, for samples in [`NalFormat::Avcc`]
    /// (Annex-B keyframes carry their SPS/PPS and set it themselves). Only
    /// before the first sample.
    pub fn set_config(&mut self, config: AvcConfig) -> Result<()> {
        if self.samples > 0 {
            return Err(Error::invalid("mp4 writer: set_config must come before the first sample"));
        }
        config.parse_sps()?;
        self.config = Some(config);
        Ok(())
    }

    /// The decoder configuration in use, once known.
    pub fn config(&self) -> Option<&AvcConfig> {
        self.config.as_ref()
    }

    /// Samples accepted so far.
    pub fn samples_written(&self) -> u64 {
        self.samples
    }

    /// Samples dropped because they came before the first keyframe (a
    /// decoder could not use them).
    pub fn dropped_before_keyframe(&self) -> u64 {
        self.dropped
    }

    /// Adds one sample (an access unit), appending whatever bytes are ready
    /// to `out`: the header, a finished fragment, or (faststart) the
    /// placeholder and the sample's bytes.
    pub fn write(&mut self, sample: &Sample<'_>, out: &mut Vec<u8>) -> Result<()> {
        if self.finished {
            return Err(Error::invalid("mp4 writer: write after finish"));
        }
        if self.first_dts.is_some() && sample.dts <= self.last_dts {
            return Err(Error::invalid(format!(
                "mp4 writer: dts {} does not increase (previous sample: {})",
                sample.dts, self.last_dts
            )));
        }
        let cto = sample.pts.checked_sub(sample.dts).filter(|c| i32::try_from(*c).is_ok()).ok_or_else(|| {
            Error::invalid(format!("mp4 writer: pts {} - dts {} does not fit 32 bits", sample.pts, sample.dts))
        })?;
        self.check_parameter_sets(sample)?;
        if self.config.is_none() {
            if !sample.keyframe {
                self.dropped += 1;
                return Ok(());
            }
            return Err(match sample.format {
                NalFormat::AnnexB => Error::invalid(
                    "mp4 writer: the first keyframe carries no SPS and PPS; call set_config with the stream's avcC",
                ),
                NalFormat::Avcc => Error::invalid("mp4 writer: length-prefixed samples need set_config first"),
            });
        }
        let stored = sample.stored_len();
        if stored > u32::MAX as usize {
            return Err(Error::invalid(format!("mp4 writer: a {stored}-byte sample is too large")));
        }
        if self.first_dts.is_none() {
            self.first_dts = Some(sample.dts);
            self.cto_shift = cto;
        }
        self.last_dts = sample.dts;
        self.samples += 1;
        let entry =
            Pending { dts: sample.dts, cto, size: stored as u32, keyframe: sample.keyframe, duration: sample.duration };
        match self.options.layout {
            Mp4Layout::Fragmented(policy) => {
                if !self.header_written {
                    self.write_fragmented_header(out);
                }
                if let Some(first) = self.pending.first() {
                    let long_enough = sample.dts.saturating_sub(first.dts) as u64 >= policy.min_duration;
                    if (sample.keyframe && long_enough) || self.payload.len() + stored > policy.max_bytes {
                        self.flush(Some(sample.dts), out);
                    }
                }
                sample.append_stored(&mut self.payload);
                self.pending.push(entry);
            }
            Mp4Layout::Faststart { moov_reserve } => {
                if self.placeholder.is_none() {
                    self.write_placeholder(moov_reserve, out);
                }
                let new_chunk = match self.chunks.last() {
                    None => true,
                    Some(c) => {
                        c.bytes >= CHUNK_MAX_BYTES
                            || sample.dts.saturating_sub(c.first_dts) >= self.options.timescale as i64
                    }
                };
                if new_chunk {
                    self.chunks.push(Chunk { offset: self.payload_len, samples: 0, bytes: 0, first_dts: sample.dts });
                }
                let chunk = self.chunks.last_mut().expect("a chunk was just pushed");
                chunk.samples += 1;
                chunk.bytes += stored as u64;
                let before = out.len();
                sample.append_stored(out);
                debug_assert_eq!(out.len() - before, stored);
                self.payload_len += stored as u64;
                self.entries.push(entry);
            }
        }
        Ok(())
    }

    /// Takes the configuration from the first keyframe, and refuses parameter
    /// sets that change mid-stream (the avcC cannot follow them).
    fn check_parameter_sets(&mut self, sample: &Sample<'_>) -> Result<()> {
        if sample.format != NalFormat::AnnexB || !sample.keyframe {
            return Ok(());
        }
        match &self.config {
            None => {
                if let Some(config) = AvcConfig::from_annexb(sample.data) {
                    self.config = Some(config?);
                }
            }
            Some(config) => {
                for n in nal::nal_units(sample.data) {
                    let known = match nal::nal_type(n) {
                        NAL_SPS => config.sps.iter().any(|s| s == n),
                        NAL_PPS => config.pps.iter().any(|p| p == n),
                        _ => true,
                    };
                    if !known {
                        return Err(Error::Unsupported(format!(
                            "mp4 writer: the SPS/PPS changed mid-stream (new {} at dts {}); \
                             an avc1 track keeps one configuration: start a new file",
                            if nal::nal_type(n) == NAL_SPS { "SPS" } else { "PPS" },
                            sample.dts
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn track_info(&self) -> VideoTrackInfo<'_> {
        VideoTrackInfo::from_config(self.config.as_ref().expect("config is known"), self.options.timescale)
    }

    fn write_fragmented_header(&mut self, out: &mut Vec<u8>) {
        let mut w = BoxWriter::new();
        boxes::write_fragmented_ftyp(&mut w);
        boxes::write_moov(&mut w, &self.track_info(), None);
        out.extend_from_slice(&w.into_bytes());
        self.header_written = true;
    }

    fn write_placeholder(&mut self, moov_reserve: u64, out: &mut Vec<u8>) {
        let mut w = BoxWriter::new();
        boxes::write_plain_ftyp(&mut w);
        let ftyp = w.into_bytes();
        let free_len = if moov_reserve == 0 { 0 } else { moov_reserve.max(8) };
        out.extend_from_slice(&ftyp);
        write_free(out, free_len);
        // mdat with a 64-bit size, fixed at finish.
        boxes::write_mdat_header(out, 0, true);
        self.placeholder = Some(Placeholder { ftyp_len: ftyp.len() as u64, free_len });
    }

    /// Duration of pending sample `i` of `list`, given the dts that follows
    /// the list (if known).
    fn duration_at(&self, list: &[Pending], i: usize, next_dts: Option<i64>, previous: u32) -> u32 {
        let next = list.get(i + 1).map(|p| p.dts).or(next_dts);
        let own = list[i].duration;
        match next.map(|n| u32::try_from(n.saturating_sub(list[i].dts))) {
            Some(Ok(d)) => d,
            _ if own > 0 => own,
            _ if previous > 0 => previous,
            _ => (self.options.timescale / 30).max(1),
        }
    }

    /// Fragmented: writes the pending samples as one fragment.
    fn flush(&mut self, next_dts: Option<i64>, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            return;
        }
        let mut frag = Vec::with_capacity(self.pending.len());
        let mut previous = self.last_duration;
        for (i, p) in self.pending.iter().enumerate() {
            let duration = self.duration_at(&self.pending, i, next_dts, previous);
            previous = duration;
            frag.push(FragSample {
                size: p.size,
                duration,
                keyframe: p.keyframe,
                cto: (p.cto - self.cto_shift).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            });
        }
        self.last_duration = previous;
        let base = self.pending[0].dts.saturating_sub(self.first_dts.unwrap_or(0)) as u64;
        boxes::write_fragment(out, self.sequence, base, &frag, &self.payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.pending.clear();
        self.payload.clear();
    }

    /// Fragmented layout: closes the current fragment now (appending it to
    /// `out`) instead of waiting for the next keyframe. The last sample's
    /// duration comes from [`Sample::duration`]. Does nothing for faststart.
    pub fn flush_fragment(&mut self, out: &mut Vec<u8>) {
        if matches!(self.options.layout, Mp4Layout::Fragmented(_)) {
            self.flush(None, out);
        }
    }

    /// Ends the file: fragmented, appends the last fragment to `out` and
    /// returns [`Finalize::Complete`]; faststart, returns how to put the
    /// `moov` in front (see the [module docs](self)). Errors when no sample
    /// was written (there is no valid file to make).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<Finalize> {
        if self.finished {
            return Err(Error::invalid("mp4 writer: finish called twice"));
        }
        if self.samples == 0 {
            return Err(Error::invalid(format!(
                "mp4 writer: no samples were written ({} came before any keyframe and were dropped)",
                self.dropped
            )));
        }
        self.finished = true;
        match self.options.layout {
            Mp4Layout::Fragmented(_) => {
                self.flush(None, out);
                Ok(Finalize::Complete)
            }
            Mp4Layout::Faststart { .. } => Ok(self.finalize_faststart()),
        }
    }

    fn finalize_faststart(&mut self) -> Finalize {
        let placeholder = self.placeholder.expect("samples were written");
        let first_dts = self.first_dts.unwrap_or(0);
        let mut stts: Vec<(u32, u32)> = Vec::new();
        let mut previous = 0;
        let mut media_duration = 0u64;
        for i in 0..self.entries.len() {
            let d = self.duration_at(&self.entries, i, None, previous);
            previous = d;
            media_duration += d as u64;
            match stts.last_mut() {
                Some((count, delta)) if *delta == d => *count += 1,
                _ => stts.push((1, d)),
            }
        }
        // Presentation starts at the earliest pts: an edit list skips the
        // media before it; a negative one shifts the offsets instead.
        let min_pts =
            self.entries.iter().map(|e| e.dts.saturating_sub(first_dts).saturating_add(e.cto)).min().unwrap_or(0);
        let cto_shift = min_pts.min(0);
        let mut ctts: Vec<(u32, i32)> = Vec::new();
        for e in &self.entries {
            let o = (e.cto - cto_shift).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            match ctts.last_mut() {
                Some((count, offset)) if *offset == o => *count += 1,
                _ => ctts.push((1, o)),
            }
        }
        let ctts = (ctts.len() > 1 || ctts.first().is_some_and(|&(_, o)| o != 0)).then_some(ctts);
        let stss =
            self.entries.iter().any(|e| !e.keyframe).then(|| {
                self.entries.iter().enumerate().filter(|(_, e)| e.keyframe).map(|(i, _)| i as u32 + 1).collect()
            });
        let mut stsc: Vec<(u32, u32)> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            if stsc.last().map(|&(_, n)| n) != Some(c.samples) {
                stsc.push((i as u32 + 1, c.samples));
            }
        }
        let mut tables = SampleTables {
            stts,
            ctts,
            stss,
            stsc,
            sizes: self.entries.iter().map(|e| e.size).collect(),
            chunk_offsets: Vec::new(),
            use_co64: false,
            media_duration,
            edit_media_time: (min_pts > 0).then_some(min_pts),
        };
        let config = self.config.clone().expect("samples were written");
        let track = VideoTrackInfo::from_config(&config, self.options.timescale);
        let last_chunk = self.chunks.last().map_or(0, |c| c.offset);
        let moov = |tables: &mut SampleTables, base: u64| {
            tables.chunk_offsets = self.chunks.iter().map(|c| base + c.offset).collect();
            let mut w = BoxWriter::new();
            boxes::write_moov(&mut w, &track, Some(tables));
            w.into_bytes()
        };
        let mut ftyp = BoxWriter::new();
        boxes::write_plain_ftyp(&mut ftyp);
        let ftyp = ftyp.into_bytes();

        // In place, when the moov fits in the reserved space.
        let data_start = placeholder.data_start();
        tables.use_co64 = data_start + last_chunk > u32::MAX as u64;
        let in_place = moov(&mut tables, data_start);
        let room = placeholder.free_len;
        let moov_len = in_place.len() as u64;
        if moov_len == room || moov_len + 8 <= room {
            let mut bytes = ftyp;
            bytes.extend_from_slice(&in_place);
            write_free(&mut bytes, room - moov_len);
            boxes::write_mdat_header(&mut bytes, self.payload_len, true);
            debug_assert_eq!(bytes.len() as u64, data_start);
            return Finalize::Overwrite { bytes };
        }

        // Otherwise a new head, with the data moved after it.
        let large_mdat = self.payload_len + 8 > u32::MAX as u64;
        let mdat_header = if large_mdat { 16 } else { 8 };
        tables.use_co64 = false;
        let stco_len = moov(&mut tables, 0).len() as u64;
        let base = ftyp.len() as u64 + stco_len + mdat_header;
        tables.use_co64 = base + last_chunk > u32::MAX as u64;
        let moov_len = moov(&mut tables, 0).len() as u64;
        let base = ftyp.len() as u64 + moov_len + mdat_header;
        let mut head = ftyp;
        head.extend_from_slice(&moov(&mut tables, base));
        boxes::write_mdat_header(&mut head, self.payload_len, large_mdat);
        debug_assert_eq!(head.len() as u64, base);
        Finalize::Relocate { head, data_start }
    }
}

/// A `free` box of `len` bytes in total (nothing for 0; `len` ≥ 8 otherwise).
fn write_free(out: &mut Vec<u8>, len: u64) {
    if len == 0 {
        return;
    }
    if len <= u32::MAX as u64 {
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(b"free");
        out.resize(out.len() + len as usize - 8, 0);
    } else {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"free");
        out.extend_from_slice(&len.to_be_bytes());
        out.resize(out.len() + len as usize - 16, 0);
    }
}
