//! The sans-IO heart of HLS output: encoded access units in, file
//! operations ([`SegmentEvent`]s) out.
//!
//! A segment starts on the first keyframe at or after `segment_duration`
//! since the start of the current one (half a frame of slack absorbs
//! jittery timestamps). The encoder is asked for keyframes on the boundaries
//! through [`Segmenter::keyframe_due`], so segments come out exactly
//! `segment_duration` long.
//!
//! Events come in an order that is always safe to apply one by one: a
//! segment file before the playlist that lists it, an initialisation section
//! before the segment that maps it, and a deletion only after a playlist
//! that no longer lists the file has been written — and, as RFC 8216 §6.2.2
//! asks, only once the segment's duration plus the playlist's duration has
//! passed in media time since it left the playlist (clients that loaded an
//! older playlist can still fetch it). [`Segmenter::finish`] deletes the
//! remaining evicted segments at once, so a finished directory holds exactly
//! what the playlist lists.
//!
//! The container is a [`SegmentFormat`]: MPEG-TS ([`TsFormat`]) now, fMP4
//! later, without the segmenter changing.

use std::collections::VecDeque;
use std::time::Duration;

use streamkit_core::{Error, Result};

use crate::playlist::{MediaPlaylist, PlaylistSegment, TICKS_PER_SECOND};
use crate::ts::TsMuxer;

/// The playlist's file name.
pub const PLAYLIST_NAME: &str = "index.m3u8";

/// Frame duration assumed before two timestamps have been seen (30 fps).
const DEFAULT_FRAME_90K: u64 = 3_000;

/// One encoded access unit on its way into a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedUnit {
    /// Annex-B bytes (start codes), one access unit.
    pub data: Vec<u8>,
    /// Presentation time in 90 kHz ticks.
    pub pts_90k: u64,
    /// Decoding time in 90 kHz ticks (equal to `pts_90k` without B-frames).
    pub dts_90k: u64,
    /// An IDR picture: a segment may start here.
    pub keyframe: bool,
    /// Wall-clock time of the frame in nanoseconds since the Unix epoch (its
    /// capture or PTP time mapped to wall time), for `#EXT-X-PROGRAM-DATE-TIME`.
    pub wallclock_ns: Option<u64>,
}

/// The container of the segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HlsFormat {
    /// MPEG-2 transport stream segments (`.ts`), playlist version 3.
    #[default]
    Ts,
    /// Fragmented MP4 / CMAF segments (`.m4s` + `init.mp4`), playlist version 7.
    Fmp4,
}

impl HlsFormat {
    /// A fresh [`SegmentFormat`] for one stream.
    pub fn build(self) -> Box<dyn SegmentFormat> {
        match self {
            HlsFormat::Ts => Box::new(TsFormat::new()),
            HlsFormat::Fmp4 => Box::new(crate::cmaf::CmafFormat::new()),
        }
    }
}

/// How segments and the playlist are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HlsOptions {
    /// Target length of each segment (default 2 s).
    pub segment_duration: Duration,
    /// Segments listed in the playlist; older ones are deleted. 0 keeps all
    /// (default 10).
    pub playlist_size: usize,
    pub format: HlsFormat,
}

impl Default for HlsOptions {
    fn default() -> Self {
        HlsOptions { segment_duration: Duration::from_secs(2), playlist_size: 10, format: HlsFormat::Ts }
    }
}

/// A container that turns access units into segment bytes.
///
/// For one segment the segmenter calls [`begin_segment`](Self::begin_segment),
/// then [`write_unit`](Self::write_unit) for each access unit (the first is a
/// keyframe), then [`end_segment`](Self::end_segment); bytes may be appended
/// to `out` by any of them (fMP4 will buffer samples and write `moof`+`mdat`
/// at the end).
pub trait SegmentFormat: Send {
    /// File extension of media segments, without the dot (`ts`, `m4s`).
    fn extension(&self) -> &'static str;

    /// `#EXT-X-VERSION` the playlist needs for this format.
    fn playlist_version(&self) -> u8;

    fn begin_segment(&mut self, out: &mut Vec<u8>) -> Result<()>;

    fn write_unit(&mut self, unit: &EncodedUnit, out: &mut Vec<u8>) -> Result<()>;

    /// Closes the segment; `end_dts_90k` is where the next one starts (the
    /// last sample's duration follows from it).
    fn end_segment(&mut self, end_dts_90k: u64, out: &mut Vec<u8>) -> Result<()>;

    /// An initialisation section (`#EXT-X-MAP`) to publish, when the format
    /// has a new one (fMP4, after the first parameter sets or a change):
    /// `(file extension, bytes)`. Polled after every unit.
    fn take_init_section(&mut self) -> Option<(&'static str, Vec<u8>)> {
        None
    }
}

/// MPEG-TS segments: PAT + PMT at the start of each, then PES packets.
#[derive(Debug, Default)]
pub struct TsFormat {
    muxer: TsMuxer,
}

impl TsFormat {
    pub fn new() -> TsFormat {
        TsFormat { muxer: TsMuxer::new() }
    }
}

impl SegmentFormat for TsFormat {
    fn extension(&self) -> &'static str {
        "ts"
    }

    fn playlist_version(&self) -> u8 {
        3
    }

    fn begin_segment(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.muxer.write_tables(out);
        Ok(())
    }

    fn write_unit(&mut self, unit: &EncodedUnit, out: &mut Vec<u8>) -> Result<()> {
        self.muxer.write_access_unit(&unit.data, unit.pts_90k, unit.dts_90k, unit.keyframe, out);
        Ok(())
    }

    fn end_segment(&mut self, _end_dts_90k: u64, _out: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
}

/// A file operation for the I/O layer, to be applied in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEvent {
    /// Write a finished media segment.
    Segment { name: String, data: Vec<u8>, duration_90k: u64 },
    /// Write an initialisation section (fMP4).
    Init { name: String, data: Vec<u8> },
    /// Replace the playlist.
    Playlist { name: String, text: String },
    /// Delete a segment the playlist no longer lists.
    Delete { name: String },
}

#[derive(Debug)]
struct OpenSegment {
    index: u64,
    start_pts: u64,
    /// Largest PTS seen in the segment.
    max_pts: u64,
    wallclock_ns: Option<u64>,
    map_uri: Option<String>,
    discontinuity: bool,
    units: u64,
    data: Vec<u8>,
}

/// Whether a frame at `next_pts` starts a new segment, for a segment that
/// started at `start` (`None`: none yet) and frames `frame_90k` apart. The
/// one rule behind [`Segmenter::keyframe_due`] and [`SegmentClock`].
fn boundary_reached(start: Option<u64>, next_pts: u64, frame_90k: Option<u64>, duration_90k: u64) -> bool {
    match start {
        None => true,
        Some(start) => next_pts.saturating_sub(start) + frame_90k.unwrap_or(0) / 2 >= duration_90k,
    }
}

/// The segmenter's boundaries, for an encoder that runs ahead of it: a
/// sink whose encoder has frames in flight asks here, as each frame is
/// submitted, whether it must be a keyframe — the same answers
/// [`Segmenter::keyframe_due`] gives once the frames before have arrived.
#[derive(Clone, Debug)]
pub struct SegmentClock {
    duration_90k: u64,
    start: Option<u64>,
    last: Option<u64>,
    frame_90k: Option<u64>,
}

impl SegmentClock {
    pub fn new(segment_duration: Duration) -> SegmentClock {
        let duration_90k = (segment_duration.as_nanos() * TICKS_PER_SECOND as u128 / 1_000_000_000) as u64;
        SegmentClock { duration_90k, start: None, last: None, frame_90k: None }
    }

    /// Records the next frame (PTS in 90 kHz ticks, increasing); true when
    /// it starts a segment and so must be a keyframe.
    pub fn next_is_keyframe(&mut self, pts_90k: u64) -> bool {
        if let Some(last) = self.last.filter(|&last| pts_90k > last) {
            self.frame_90k = Some(pts_90k - last);
        }
        self.last = Some(pts_90k);
        let due = boundary_reached(self.start, pts_90k, self.frame_90k, self.duration_90k);
        if due {
            self.start = Some(pts_90k);
        }
        due
    }
}

/// Cuts access units into segments and keeps the playlist. No I/O.
pub struct Segmenter {
    format: Box<dyn SegmentFormat>,
    segment_duration_90k: u64,
    playlist: MediaPlaylist,
    current: Option<OpenSegment>,
    next_index: u64,
    last_dts: Option<u64>,
    /// Last positive DTS step: the frame duration.
    frame_90k: Option<u64>,
    /// Latest initialisation section and whether the next segment must say it changed.
    init_uri: Option<String>,
    init_count: u64,
    init_changed: bool,
    /// Evicted segments and the media time (PTS) after which they may go.
    pending_deletes: VecDeque<(String, u64)>,
    skipped_before_keyframe: u64,
    finished: bool,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("segment_duration_90k", &self.segment_duration_90k)
            .field("next_index", &self.next_index)
            .field("current", &self.current.as_ref().map(|s| s.index))
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Segmenter {
    /// A segmenter with the format named in `options`.
    pub fn new(options: &HlsOptions) -> Result<Segmenter> {
        Segmenter::with_format(options, options.format.build())
    }

    /// A segmenter with a custom [`SegmentFormat`] (`options.format` is ignored).
    pub fn with_format(options: &HlsOptions, format: Box<dyn SegmentFormat>) -> Result<Segmenter> {
        let ticks = (options.segment_duration.as_nanos() * TICKS_PER_SECOND as u128 / 1_000_000_000) as u64;
        if ticks < TICKS_PER_SECOND / 10 || options.segment_duration > Duration::from_secs(3600) {
            return Err(Error::invalid(format!(
                "HLS segment duration {:?} is out of range (100 ms to 1 hour)",
                options.segment_duration
            )));
        }
        let playlist = MediaPlaylist::new(format.playlist_version(), options.segment_duration, options.playlist_size);
        Ok(Segmenter {
            format,
            segment_duration_90k: ticks,
            playlist,
            current: None,
            next_index: 0,
            last_dts: None,
            frame_90k: None,
            init_uri: None,
            init_count: 0,
            init_changed: false,
            pending_deletes: VecDeque::new(),
            skipped_before_keyframe: 0,
            finished: false,
        })
    }

    /// The file name of segment `index`: `segment_00042.ts`.
    pub fn segment_name(&self, index: u64) -> String {
        format!("segment_{index:05}.{}", self.format.extension())
    }

    /// The playlist as it stands.
    pub fn playlist(&self) -> &MediaPlaylist {
        &self.playlist
    }

    /// Whether the frame presented at `next_pts_90k` should be a keyframe:
    /// true for the very first frame and for the first frame at or after the
    /// segment boundary. A sink forces a keyframe on its encoder when this says so.
    pub fn keyframe_due(&self, next_pts_90k: u64) -> bool {
        boundary_reached(
            self.current.as_ref().map(|s| s.start_pts),
            next_pts_90k,
            self.frame_90k,
            self.segment_duration_90k,
        )
    }

    /// Adds one access unit; returns what to write or delete, in order.
    pub fn push(&mut self, unit: &EncodedUnit) -> Result<Vec<SegmentEvent>> {
        if self.finished {
            return Err(Error::invalid("HLS segmenter: access unit after finish"));
        }
        if unit.data.is_empty() {
            return Err(Error::invalid("HLS segmenter: empty access unit"));
        }
        if unit.pts_90k < unit.dts_90k {
            return Err(Error::invalid(format!(
                "HLS segmenter: PTS {} before DTS {} (timestamps in 90 kHz ticks)",
                unit.pts_90k, unit.dts_90k
            )));
        }
        if let Some(last) = self.last_dts {
            if unit.dts_90k <= last {
                return Err(Error::invalid(format!(
                    "HLS segmenter: DTS {} does not increase (previous {last})",
                    unit.dts_90k
                )));
            }
        }
        let mut events = Vec::new();
        if self.current.is_none() && !unit.keyframe {
            if self.skipped_before_keyframe == 0 {
                tracing::warn!("HLS: dropping access units until the first keyframe");
            }
            self.skipped_before_keyframe += 1;
            return Ok(events);
        }
        if let Some(last) = self.last_dts {
            self.frame_90k = Some(unit.dts_90k - last);
        }
        self.last_dts = Some(unit.dts_90k);

        if unit.keyframe && self.current.is_some() && self.keyframe_due(unit.pts_90k) {
            self.close_segment(unit.dts_90k, unit.pts_90k, &mut events)?;
        }
        if self.current.is_none() {
            let mut data = Vec::with_capacity(256 * 1024);
            self.format.begin_segment(&mut data)?;
            self.current = Some(OpenSegment {
                index: self.next_index,
                start_pts: unit.pts_90k,
                max_pts: unit.pts_90k,
                wallclock_ns: unit.wallclock_ns,
                map_uri: None,
                discontinuity: false,
                units: 0,
                data,
            });
            self.next_index += 1;
        }
        let seg = self.current.as_mut().expect("a segment is open");
        let first_unit = seg.units == 0;
        self.format.write_unit(unit, &mut seg.data)?;
        seg.units += 1;
        seg.max_pts = seg.max_pts.max(unit.pts_90k);
        if let Some((ext, data)) = self.format.take_init_section() {
            let name =
                if self.init_count == 0 { format!("init.{ext}") } else { format!("init_{}.{ext}", self.init_count) };
            self.init_changed = self.init_count > 0;
            self.init_count += 1;
            self.init_uri = Some(name.clone());
            events.push(SegmentEvent::Init { name, data });
            if !first_unit {
                tracing::warn!(
                    "HLS: the initialisation section changed inside a segment; it applies from the next one"
                );
            }
        }
        if first_unit {
            seg.map_uri = self.init_uri.clone();
            seg.discontinuity = std::mem::take(&mut self.init_changed);
        }
        Ok(events)
    }

    /// Closes the last segment, ends the playlist (`#EXT-X-ENDLIST`) and
    /// deletes every evicted segment still waiting. Later calls do nothing.
    pub fn finish(&mut self) -> Result<Vec<SegmentEvent>> {
        let mut events = Vec::new();
        if self.finished {
            return Ok(events);
        }
        self.finished = true;
        self.playlist.end();
        if let Some(seg) = &self.current {
            let frame = self.frame_90k.unwrap_or(DEFAULT_FRAME_90K);
            let end_pts = seg.max_pts + frame;
            let end_dts = self.last_dts.unwrap_or(seg.start_pts) + frame;
            self.close_segment(end_dts, end_pts, &mut events)?;
        } else {
            events.push(SegmentEvent::Playlist { name: PLAYLIST_NAME.into(), text: self.playlist.render() });
        }
        events.extend(self.pending_deletes.drain(..).map(|(name, _)| SegmentEvent::Delete { name }));
        Ok(events)
    }

    /// Ends the open segment at `end_pts`, lists it, writes the playlist and
    /// deletes what is due.
    fn close_segment(&mut self, end_dts: u64, end_pts: u64, events: &mut Vec<SegmentEvent>) -> Result<()> {
        let Some(mut seg) = self.current.take() else { return Ok(()) };
        self.format.end_segment(end_dts, &mut seg.data)?;
        let name = self.segment_name(seg.index);
        let duration_90k = end_pts.saturating_sub(seg.start_pts).max(1);
        events.push(SegmentEvent::Segment { name: name.clone(), data: seg.data, duration_90k });
        let evicted = self.playlist.push(PlaylistSegment {
            uri: name,
            duration_90k,
            program_date_time_ns: seg.wallclock_ns,
            map_uri: seg.map_uri,
            discontinuity: seg.discontinuity,
        });
        events.push(SegmentEvent::Playlist { name: PLAYLIST_NAME.into(), text: self.playlist.render() });
        // RFC 8216 §6.2.2: keep a removed segment for its duration plus the
        // duration of the longest playlist that listed it.
        let listed = self.playlist.duration_90k();
        for old in evicted {
            let keep = old.duration_90k + listed + old.duration_90k;
            self.pending_deletes.push_back((old.uri, end_pts + keep));
        }
        while self.pending_deletes.front().is_some_and(|(_, due)| *due <= end_pts) {
            let (name, _) = self.pending_deletes.pop_front().expect("front exists");
            events.push(SegmentEvent::Delete { name });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(n: u64, keyframe: bool) -> EncodedUnit {
        let slice: &[u8] = if keyframe { &[0x65, 0x88, 0x84] } else { &[0x41, 0x9A, 0x02] };
        EncodedUnit {
            data: [&[0u8, 0, 0, 1][..], slice].concat(),
            pts_90k: n * 3000,
            dts_90k: n * 3000,
            keyframe,
            wallclock_ns: Some(1_700_000_000_000_000_000 + n * 1_000_000_000 / 30),
        }
    }

    fn options(playlist_size: usize) -> HlsOptions {
        HlsOptions { segment_duration: Duration::from_secs(2), playlist_size, format: HlsFormat::Ts }
    }

    /// Feeds `frames` frames at 30 fps with a keyframe whenever the segmenter
    /// asks for one, as a sink driving an encoder would.
    fn run(seg: &mut Segmenter, frames: u64) -> Vec<SegmentEvent> {
        let mut events = Vec::new();
        for n in 0..frames {
            let key = seg.keyframe_due(n * 3000);
            events.extend(seg.push(&unit(n, key)).unwrap());
        }
        events.extend(seg.finish().unwrap());
        events
    }

    #[test]
    fn cuts_on_keyframes_every_two_seconds() {
        let mut seg = Segmenter::new(&options(0)).unwrap();
        assert!(seg.keyframe_due(0));
        let events = run(&mut seg, 300);
        let segments: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SegmentEvent::Segment { name, duration_90k, .. } => Some((name.clone(), *duration_90k)),
                _ => None,
            })
            .collect();
        assert_eq!(segments.len(), 5);
        assert!(segments.iter().all(|(_, d)| *d == 180_000), "{segments:?}");
        assert_eq!(segments[4].0, "segment_00004.ts");
        let Some(SegmentEvent::Playlist { text, .. }) = events.last() else { panic!("{events:?}") };
        assert!(text.ends_with("segment_00004.ts\n#EXT-X-ENDLIST\n"));
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n#EXTINF:2.000,\nsegment_00001.ts"));
    }

    /// Asked ahead of the segmenter, the clock gives the answers the
    /// segmenter gives when asked frame by frame.
    #[test]
    fn segment_clock_agrees_with_the_segmenter() {
        for (duration, step) in [(2.0, 3000u64), (1.5, 3003), (0.5, 1501)] {
            let mut seg =
                Segmenter::new(&HlsOptions { segment_duration: Duration::from_secs_f64(duration), ..options(0) })
                    .unwrap();
            let mut clock = SegmentClock::new(Duration::from_secs_f64(duration));
            for n in 0..400u64 {
                let pts = n * step + if n % 7 == 3 { 40 } else { 0 }; // some jitter
                let due = seg.keyframe_due(pts);
                assert_eq!(clock.next_is_keyframe(pts), due, "frame {n}, {duration} s");
                seg.push(&EncodedUnit { pts_90k: pts, dts_90k: pts, ..unit(n, due) }).unwrap();
            }
        }
    }

    #[test]
    fn keyframe_due_on_boundaries_only() {
        let mut seg = Segmenter::new(&options(0)).unwrap();
        seg.push(&unit(0, true)).unwrap();
        seg.push(&unit(1, false)).unwrap();
        assert!(!seg.keyframe_due(59 * 3000));
        assert!(seg.keyframe_due(60 * 3000));
        // A scene-cut keyframe before the boundary does not cut.
        assert!(seg.push(&unit(2, true)).unwrap().is_empty());
    }

    #[test]
    fn late_keyframe_makes_a_longer_segment() {
        let mut seg = Segmenter::new(&options(0)).unwrap();
        let mut events = Vec::new();
        for n in 0..150 {
            events.extend(seg.push(&unit(n, n % 75 == 0)).unwrap());
        }
        events.extend(seg.finish().unwrap());
        let durations: Vec<u64> = events
            .iter()
            .filter_map(|e| if let SegmentEvent::Segment { duration_90k, .. } = e { Some(*duration_90k) } else { None })
            .collect();
        assert_eq!(durations, [225_000, 225_000]);
        assert_eq!(seg.playlist().target_duration(), 3);
    }

    #[test]
    fn old_segments_are_deleted_after_the_playlist_drops_them() {
        let mut seg = Segmenter::new(&options(3)).unwrap();
        let events = run(&mut seg, 30 * 40); // 20 segments
        let mut listed: Vec<String> = Vec::new();
        let mut written = std::collections::HashSet::new();
        let mut deleted = Vec::new();
        for e in &events {
            match e {
                SegmentEvent::Segment { name, .. } => assert!(written.insert(name.clone())),
                SegmentEvent::Playlist { text, .. } => {
                    listed = text.lines().filter(|l| !l.starts_with('#')).map(String::from).collect();
                    assert!(listed.len() <= 3);
                    assert!(listed.iter().all(|n| written.contains(n)), "listed before written");
                }
                SegmentEvent::Delete { name } => {
                    assert!(!listed.contains(name), "{name} deleted while listed");
                    assert!(written.contains(name));
                    deleted.push(name.clone());
                }
                SegmentEvent::Init { .. } => panic!("no init for TS"),
            }
        }
        assert_eq!(deleted.len(), 17, "everything but the last window");
        assert_eq!(listed, ["segment_00017.ts", "segment_00018.ts", "segment_00019.ts"]);
        // The deletion grace: segment 0 left the playlist when segment 3 was
        // listed (t = 8 s) and goes once 2 + 6 + 2 s more have passed.
        let pos = |pred: &dyn Fn(&SegmentEvent) -> bool| events.iter().position(pred).unwrap();
        let del0 = pos(&|e| matches!(e, SegmentEvent::Delete { name } if name == "segment_00000.ts"));
        let seg8 = pos(&|e| matches!(e, SegmentEvent::Segment { name, .. } if name == "segment_00008.ts"));
        let seg9 = pos(&|e| matches!(e, SegmentEvent::Segment { name, .. } if name == "segment_00009.ts"));
        assert!(del0 > seg8 && del0 < seg9, "{del0} {seg8} {seg9}");
    }

    #[test]
    fn rejects_bad_input() {
        let mut seg = Segmenter::new(&options(0)).unwrap();
        assert!(seg.push(&unit(1, false)).unwrap().is_empty(), "dropped before the first keyframe");
        seg.push(&unit(1, true)).unwrap();
        assert!(seg.push(&unit(1, false)).is_err(), "repeated DTS");
        let mut bad = unit(5, false);
        bad.dts_90k = bad.pts_90k + 1;
        assert!(seg.push(&bad).is_err(), "PTS before DTS");
        assert!(seg.push(&EncodedUnit { pts_90k: 9000, dts_90k: 9000, ..Default::default() }).is_err());
        seg.finish().unwrap();
        assert!(seg.push(&unit(9, true)).is_err());
        assert!(seg.finish().unwrap().is_empty());
        let zero = HlsOptions { segment_duration: Duration::ZERO, ..HlsOptions::default() };
        assert!(Segmenter::new(&zero).is_err());
    }

    #[test]
    fn empty_stream_still_ends_the_playlist() {
        let mut seg = Segmenter::new(&options(5)).unwrap();
        let events = seg.finish().unwrap();
        assert!(
            matches!(&events[..], [SegmentEvent::Playlist { text, .. }] if text.ends_with("#EXT-X-ENDLIST\n")),
            "{events:?}"
        );
    }

    /// A stand-in for fMP4: an init section with the first keyframe, a new one with the third.
    struct FakeMp4 {
        keyframes: u32,
        init_pending: bool,
    }

    impl SegmentFormat for FakeMp4 {
        fn extension(&self) -> &'static str {
            "m4s"
        }
        fn playlist_version(&self) -> u8 {
            7
        }
        fn begin_segment(&mut self, _out: &mut Vec<u8>) -> Result<()> {
            Ok(())
        }
        fn write_unit(&mut self, unit: &EncodedUnit, out: &mut Vec<u8>) -> Result<()> {
            out.extend_from_slice(&unit.data);
            if unit.keyframe {
                self.keyframes += 1;
                self.init_pending |= matches!(self.keyframes, 1 | 3);
            }
            Ok(())
        }
        fn end_segment(&mut self, _end_dts_90k: u64, out: &mut Vec<u8>) -> Result<()> {
            out.push(0);
            Ok(())
        }
        fn take_init_section(&mut self) -> Option<(&'static str, Vec<u8>)> {
            std::mem::take(&mut self.init_pending).then(|| ("mp4", vec![1, 2, 3]))
        }
    }

    #[test]
    fn pluggable_format_with_init_sections() {
        let mut seg =
            Segmenter::with_format(&options(0), Box::new(FakeMp4 { keyframes: 0, init_pending: false })).unwrap();
        let events = run(&mut seg, 300);
        let inits: Vec<_> = events
            .iter()
            .filter_map(|e| if let SegmentEvent::Init { name, .. } = e { Some(name.as_str()) } else { None })
            .collect();
        assert_eq!(inits, ["init.mp4", "init_1.mp4"]);
        let init_at = events.iter().position(|e| matches!(e, SegmentEvent::Init { name, .. } if name == "init_1.mp4"));
        let seg1_at =
            events.iter().position(|e| matches!(e, SegmentEvent::Segment { name, .. } if name == "segment_00001.m4s"));
        assert!(init_at > seg1_at, "the new init comes with segment 2's first unit");
        let Some(SegmentEvent::Playlist { text, .. }) = events.last() else { panic!() };
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
        assert!(
            text.contains("#EXTINF:2.000,\nsegment_00001.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init_1.mp4\"\n"),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2);
    }
}
