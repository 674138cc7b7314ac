//! ISO base media file format (MP4) for H.264 video, sans-IO.
//!
//! ## Layout decisions
//!
//! * **Timescale.** Sample times ([`Sample::pts`], [`Sample::dts`]) are in a
//!   media timescale chosen by the caller; [`DEFAULT_TIMESCALE`] is 90 kHz,
//!   the RTP video clock, which represents 24, 25, 30, 30000/1001, 50 and
//!   60 fps exactly. The movie header uses 1000 (milliseconds).
//! * **Decode times come from `dts`.** A sample's duration in the file is the
//!   difference to the next sample's `dts`; [`Sample::duration`] is only used
//!   where there is no next sample (the end of a fragment, segment or file),
//!   and when it is 0 there the previous duration is repeated.
//! * **Composition offsets** are `pts - dts`. Fragmented output uses version 1
//!   `trun` boxes (signed offsets) shifted so that the first sample presents
//!   at time 0 with no edit list (the CMAF way); faststart output uses `ctts`
//!   and an edit list that starts the presentation at the first frame (the
//!   way ffmpeg and most players expect plain MP4s).
//! * **One video track** with `track_ID` 1 ([`VIDEO_TRACK_ID`]); an audio
//!   track would be `track_ID` 2 with its own `trak`/`trex`/`traf`.
//! * **Parameter sets** live in the `avcC` record (sample entry `avc1`); they
//!   are taken from the first keyframe's SPS/PPS and stripped from samples.
//!
//! See [`writer`] for the fragment policy and the faststart finalisation,
//! [`cmaf`] for HLS/DASH segments and [`reader`] for parsing.

mod boxes;
pub mod cmaf;
pub mod reader;
pub mod writer;

use std::fmt;

pub use cmaf::{init_segment, media_segment};
pub use reader::{read, read_partial, Mp4File, Mp4Reader, SampleInfo, Track};
pub use writer::{Finalize, FragmentPolicy, Mp4Layout, Mp4Writer, Mp4WriterOptions};

/// 90 kHz: the conventional video timescale.
pub const DEFAULT_TIMESCALE: u32 = 90_000;

/// The `track_ID` of the video track in everything streamkit writes.
pub const VIDEO_TRACK_ID: u32 = 1;

/// A four-character code: box types, brands, codecs (`avc1`, `hvc1`, …).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const AVC1: FourCc = FourCc(*b"avc1");
    pub const AVC3: FourCc = FourCc(*b"avc3");
    pub const VIDE: FourCc = FourCc(*b"vide");
    pub const SOUN: FourCc = FourCc(*b"soun");

    /// Whether this is an H.264 sample entry streamkit reads (`avc1`, `avc3`).
    pub fn is_avc(self) -> bool {
        self == FourCc::AVC1 || self == FourCc::AVC3
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{self}'")
    }
}

/// How the NAL units of a [`Sample`] are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalFormat {
    /// Start codes (`00 00 01`), as encoders emit them. Converted on write;
    /// SPS, PPS and access unit delimiters are dropped (they live in avcC).
    AnnexB,
    /// Big-endian length prefixes of the track's NAL length size (4 in
    /// everything streamkit makes), copied as they are.
    Avcc,
}

/// One H.264 access unit (a frame) to write.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    pub data: &'a [u8],
    pub format: NalFormat,
    /// Presentation time, in the track timescale.
    pub pts: i64,
    /// Decode time, in the track timescale; strictly increasing.
    pub dts: i64,
    /// Used only where no next sample gives it (see the module docs); 0 to
    /// repeat the previous duration.
    pub duration: u32,
    /// An IDR picture: random access point.
    pub keyframe: bool,
}

impl<'a> Sample<'a> {
    /// A sample of Annex-B data (start codes), as an encoder produces it.
    pub fn annexb(data: &'a [u8], pts: i64, dts: i64, duration: u32, keyframe: bool) -> Sample<'a> {
        Sample { data, format: NalFormat::AnnexB, pts, dts, duration, keyframe }
    }

    /// A sample of length-prefixed NAL units (as stored in MP4).
    pub fn avcc(data: &'a [u8], pts: i64, dts: i64, duration: u32, keyframe: bool) -> Sample<'a> {
        Sample { data, format: NalFormat::Avcc, pts, dts, duration, keyframe }
    }

    /// Bytes this sample takes in an `mdat`.
    pub(crate) fn stored_len(&self) -> usize {
        match self.format {
            NalFormat::AnnexB => streamkit_h264::nal::annexb_to_avcc_len(self.data),
            NalFormat::Avcc => self.data.len(),
        }
    }

    /// Appends the stored (length-prefixed) form to `out`.
    pub(crate) fn append_stored(&self, out: &mut Vec<u8>) {
        match self.format {
            NalFormat::AnnexB => streamkit_h264::nal::annexb_to_avcc(self.data, out),
            NalFormat::Avcc => out.extend_from_slice(self.data),
        }
    }
}
