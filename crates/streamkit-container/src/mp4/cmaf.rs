//! CMAF segments (ISO/IEC 23000-19) for fMP4 HLS and DASH: one init segment
//! (`ftyp` + `moov` with `mvex`, no samples) and media segments (`styp` +
//! `moof` + `mdat`), each holding one fragment of the video track.
//!
//! ```no_run
//! use streamkit_container::mp4::{cmaf, Sample};
//! # fn demo(config: &streamkit_h264::nal::AvcConfig, frames: &[Vec<u8>]) {
//! let init = cmaf::init_segment(config, 1280, 720, 90_000); // EXT-X-MAP
//! let samples: Vec<Sample> = frames
//!     .iter()
//!     .enumerate()
//!     .map(|(i, f)| Sample::annexb(f, i as i64 * 3000, i as i64 * 3000, 3000, i == 0))
//!     .collect();
//! let segment = cmaf::media_segment(1, 0, &samples); // segment1.m4s
//! # }
//! ```

use streamkit_h264::nal::AvcConfig;

use super::boxes::{self, BoxWriter, FragSample, VideoTrackInfo};
use super::Sample;

/// The CMAF header: `ftyp` (brands `iso6`, `cmfc`) and a `moov` describing
/// one H.264 track (`track_ID` 1, sample entry `avc1` carrying `config`) with
/// `mvex`/`trex` and no samples. `width`/`height` are the displayed size
/// (0 takes them from the SPS); `timescale` is the media timescale of the
/// segments' times (90000 conventionally).
pub fn init_segment(config: &AvcConfig, width: u32, height: u32, timescale: u32) -> Vec<u8> {
    let mut track = VideoTrackInfo::from_config(config, timescale.max(1));
    if width > 0 && height > 0 {
        track.width = width;
        track.height = height;
    }
    let mut w = BoxWriter::new();
    boxes::write_fragmented_ftyp(&mut w);
    boxes::write_moov(&mut w, &track, None);
    w.into_bytes()
}

/// A CMAF media segment: `styp` + `moof` (`mfhd` with `sequence_number`,
/// `tfhd` default-base-is-moof, `tfdt` = `base_decode_time`, one `trun`) +
/// `mdat`. The first sample should be a keyframe (HLS and DASH start
/// decoding segments there).
///
/// Times are in the init segment's timescale. Sample durations are the
/// differences of consecutive `dts`; the last sample uses its `duration`
/// (the previous duration when that is 0), so the next segment's
/// `base_decode_time` is this one's plus the sum of the durations.
/// Composition offsets are `pts - dts` (a version 1 `trun` when negative).
/// Annex-B samples are converted to 4-byte length prefixes, dropping SPS,
/// PPS and AUD NAL units (they are in the init segment).
pub fn media_segment(sequence_number: u32, base_decode_time: u64, samples: &[Sample<'_>]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(samples.iter().map(|s| s.data.len()).sum());
    let mut frag = Vec::with_capacity(samples.len());
    let mut previous_duration = 0u32;
    for (i, s) in samples.iter().enumerate() {
        let start = payload.len();
        s.append_stored(&mut payload);
        let duration = match samples.get(i + 1) {
            Some(next) => u32::try_from(next.dts.saturating_sub(s.dts)).unwrap_or(s.duration),
            None if s.duration > 0 => s.duration,
            None => previous_duration,
        };
        previous_duration = duration;
        frag.push(FragSample {
            size: (payload.len() - start) as u32,
            duration,
            keyframe: s.keyframe,
            cto: s.pts.saturating_sub(s.dts).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        });
    }
    let mut w = BoxWriter::new();
    boxes::write_ftyp(&mut w, b"styp", b"msdh", 0, &[b"msdh", b"cmfs", b"cmff"]);
    let mut out = w.into_bytes();
    out.reserve(payload.len() + 64 + 16 * frag.len());
    boxes::write_fragment(&mut out, sequence_number, base_decode_time, &frag, &payload);
    out
}
