//! HLS media playlists (RFC 8216 §4.3): a sliding window of segments
//! rendered as `index.m3u8` text.
//!
//! * `#EXT-X-VERSION` comes from the segment format (3 for MPEG-TS, which
//!   needs floating-point `#EXTINF`; 7 for fMP4 with `#EXT-X-MAP`);
//! * `#EXT-X-TARGETDURATION` starts at the configured segment duration
//!   rounded up and only ever grows: every `#EXTINF` rounded to the nearest
//!   integer stays at or below it (§4.3.3.1), and it never shrinks when long
//!   segments leave the window (§6.2.1 forbids changing it);
//! * `#EXT-X-MEDIA-SEQUENCE` counts the segments that left the window;
//! * `#EXT-X-PROGRAM-DATE-TIME` (ISO 8601, milliseconds, UTC) on each
//!   segment whose first frame had a wall-clock time;
//! * `#EXT-X-ENDLIST` once ended, and `#EXT-X-PLAYLIST-TYPE:VOD` when the
//!   window kept every segment.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::Duration;

/// 90 kHz ticks per second.
pub const TICKS_PER_SECOND: u64 = 90_000;

/// One entry of a media playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistSegment {
    /// URI relative to the playlist, e.g. `segment_00042.ts`.
    pub uri: String,
    /// Duration in 90 kHz ticks.
    pub duration_90k: u64,
    /// Wall-clock time of the first frame, nanoseconds since the Unix epoch.
    pub program_date_time_ns: Option<u64>,
    /// The initialisation section (`#EXT-X-MAP`) this segment needs (fMP4).
    pub map_uri: Option<String>,
    /// Whether `#EXT-X-DISCONTINUITY` precedes this segment.
    pub discontinuity: bool,
}

impl PlaylistSegment {
    /// A segment with no date, map or discontinuity.
    pub fn new(uri: impl Into<String>, duration_90k: u64) -> PlaylistSegment {
        PlaylistSegment {
            uri: uri.into(),
            duration_90k,
            program_date_time_ns: None,
            map_uri: None,
            discontinuity: false,
        }
    }

    pub fn duration_secs(&self) -> f64 {
        self.duration_90k as f64 / TICKS_PER_SECOND as f64
    }
}

/// A media playlist with a sliding window of `window` segments (0 keeps all).
#[derive(Clone, Debug)]
pub struct MediaPlaylist {
    version: u8,
    window: usize,
    target_duration: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
    segments: VecDeque<PlaylistSegment>,
    ended: bool,
}

impl MediaPlaylist {
    /// An empty playlist for segments about `segment_duration` long.
    pub fn new(version: u8, segment_duration: Duration, window: usize) -> MediaPlaylist {
        let secs = segment_duration.as_secs() + u64::from(segment_duration.subsec_nanos() > 0);
        MediaPlaylist {
            version,
            window,
            target_duration: secs.max(1),
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: VecDeque::new(),
            ended: false,
        }
    }

    /// Appends a segment and returns the ones that fell out of the window,
    /// oldest first.
    pub fn push(&mut self, segment: PlaylistSegment) -> Vec<PlaylistSegment> {
        let rounded = (segment.duration_90k + TICKS_PER_SECOND / 2) / TICKS_PER_SECOND;
        if rounded > self.target_duration {
            tracing::warn!(
                "segment {} lasts {:.3} s, longer than the target duration {} s: raising it \
                 (is the encoder putting keyframes on segment boundaries?)",
                segment.uri,
                segment.duration_secs(),
                self.target_duration
            );
            self.target_duration = rounded;
        }
        self.segments.push_back(segment);
        let mut evicted = Vec::new();
        while self.window > 0 && self.segments.len() > self.window {
            let old = self.segments.pop_front().expect("window is non-empty");
            self.media_sequence += 1;
            // The discontinuity tags that leave the window are counted (§4.3.3.3).
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
            evicted.push(old);
        }
        evicted
    }

    /// Marks the playlist complete: `#EXT-X-ENDLIST` (and `VOD` with no window).
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The segments listed now, oldest first.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &PlaylistSegment> {
        self.segments.iter()
    }

    /// Media sequence number of the first listed segment.
    pub fn media_sequence(&self) -> u64 {
        self.media_sequence
    }

    /// `#EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// Total duration of the listed segments in 90 kHz ticks.
    pub fn duration_90k(&self) -> u64 {
        self.segments.iter().map(|s| s.duration_90k).sum()
    }

    /// The playlist as `.m3u8` text.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(128 + 96 * self.segments.len());
        s.push_str("#EXTM3U\n");
        let _ = writeln!(s, "#EXT-X-VERSION:{}", self.version);
        let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(s, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence);
        }
        if self.ended && self.window == 0 {
            s.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
        }
        // Every segment starts with a keyframe and its parameter sets.
        s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut map: Option<&str> = None;
        for seg in &self.segments {
            if seg.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(uri) = seg.map_uri.as_deref() {
                if map != Some(uri) {
                    let _ = writeln!(s, "#EXT-X-MAP:URI=\"{uri}\"");
                    map = Some(uri);
                }
            }
            if let Some(ns) = seg.program_date_time_ns {
                let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", format_program_date_time(ns));
            }
            let _ = writeln!(s, "#EXTINF:{:.3},", seg.duration_secs());
            s.push_str(&seg.uri);
            s.push('\n');
        }
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }
}

/// Civil date (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-05-01T12:34:56.789Z` from nanoseconds since the Unix epoch
/// (ISO 8601 with milliseconds, as `#EXT-X-PROGRAM-DATE-TIME` wants).
pub fn format_program_date_time(unix_ns: u64) -> String {
    let ms_total = unix_ns / 1_000_000;
    let secs = ms_total / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms_total % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: u64, ticks: u64) -> PlaylistSegment {
        PlaylistSegment::new(format!("segment_{n:05}.ts"), ticks)
    }

    #[test]
    fn dates() {
        assert_eq!(format_program_date_time(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.999Z (a leap day) = 1709251199 s.
        assert_eq!(format_program_date_time(1_709_251_199_999_999_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(format_program_date_time(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_program_date_time(4_102_444_800_123_000_000), "2100-01-01T00:00:00.123Z");
    }

    #[test]
    fn live_window_slides() {
        let mut p = MediaPlaylist::new(3, Duration::from_secs(2), 3);
        let mut evicted = Vec::new();
        for n in 0..5 {
            let mut s = seg(n, 180_000);
            s.program_date_time_ns = Some(1_700_000_000_000_000_000 + n * 2_000_000_000);
            evicted.extend(p.push(s).into_iter().map(|s| s.uri));
        }
        assert_eq!(evicted, ["segment_00000.ts", "segment_00001.ts"]);
        let text = p.render();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:2.000,\nsegment_00002.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n#EXTINF:2.000,\nsegment_00003.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n#EXTINF:2.000,\nsegment_00004.ts\n"
        );
        p.end();
        assert!(p.render().ends_with("segment_00004.ts\n#EXT-X-ENDLIST\n"));
        assert!(!p.render().contains("PLAYLIST-TYPE"), "a sliding window is not VOD");
    }

    #[test]
    fn unlimited_window_ends_as_vod() {
        let mut p = MediaPlaylist::new(3, Duration::from_secs(2), 0);
        for n in 0..20 {
            assert!(p.push(seg(n, 180_000)).is_empty());
        }
        assert!(!p.render().contains("PLAYLIST-TYPE"));
        p.end();
        let text = p.render();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && text.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(text.matches("#EXTINF:2.000,").count(), 20);
        assert_eq!(p.duration_90k(), 20 * 180_000);
    }

    #[test]
    fn target_duration_rounds_and_never_shrinks() {
        // 1.5 s configured → 2; 2.002 s (60 frames at 29.97) rounds to 2.
        let mut p = MediaPlaylist::new(3, Duration::from_millis(1500), 2);
        assert_eq!(p.target_duration(), 2);
        p.push(seg(0, 180_180));
        assert_eq!(p.target_duration(), 2);
        assert!(p.render().contains("#EXTINF:2.002,"));
        p.push(seg(1, 3 * 90_000 + 45_000)); // 3.5 s rounds to 4
        assert_eq!(p.target_duration(), 4);
        p.push(seg(2, 90_000));
        p.push(seg(3, 90_000));
        assert_eq!(p.target_duration(), 4, "kept after the long segment left");
        assert!(p.render().contains("#EXT-X-TARGETDURATION:4\n"));
    }

    #[test]
    fn map_and_discontinuities() {
        let mut p = MediaPlaylist::new(7, Duration::from_secs(2), 2);
        let mut a = seg(0, 180_000);
        a.map_uri = Some("init_0.mp4".into());
        let mut b = a.clone();
        b.uri = "b.m4s".into();
        let mut c = seg(2, 180_000);
        c.map_uri = Some("init_1.mp4".into());
        c.discontinuity = true;
        let mut d = c.clone();
        d.discontinuity = false;
        d.uri = "d.m4s".into();
        p.push(a);
        p.push(b);
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP:URI=\"init_0.mp4\"").count(), 1, "{text}");
        p.push(c);
        p.push(d);
        let text = p.render();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
        assert!(text.contains("#EXT-X-DISCONTINUITY\n") && !text.contains("DISCONTINUITY-SEQUENCE"), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP:URI=\"init_1.mp4\"").count(), 1, "{text}");
        p.push(seg(4, 180_000));
        let text = p.render();
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(text.contains("#EXT-X-MAP:URI=\"init_1.mp4\""), "the first listed segment carries its map");
    }
}
