//! # streamkit-container
//!
//! Media containers for streamkit, written sans-IO in the str0m style: the
//! code here never opens a file or a socket. Writers take samples and append
//! the bytes to write to a `Vec<u8>`; readers take bytes (all at once or in
//! pushes of any size) and return what they found. Sinks and sources own the
//! I/O around them.
//!
//! * [`mp4::writer`] — [`mp4::Mp4Writer`]: H.264 into fragmented MP4 (live
//!   safe: a killed process leaves a playable file) or faststart MP4 (moov
//!   before mdat, finalised with at most one extra pass over the data);
//! * [`mp4::cmaf`] — CMAF init and media segments for fMP4 HLS / DASH;
//! * [`mp4::reader`] — ISO BMFF parsing into tracks and sample tables, plain
//!   and fragmented, hardened against hostile and truncated input.

#[doc(hidden)]
pub mod fuzzing;
pub mod mp4;
