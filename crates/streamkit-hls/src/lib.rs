//! # streamkit-hls
//!
//! HTTP Live Streaming output (RFC 8216), as sans-IO cores with thin I/O
//! around them:
//!
//! * [`ts`] — an MPEG-TS muxer for H.264 ([`ts::TsMuxer`]);
//! * [`playlist`] — media playlists with a sliding window ([`playlist::MediaPlaylist`]);
//! * [`segmenter`] — cuts access units into segments on keyframes and says
//!   which files to write or delete ([`Segmenter`], [`SegmentEvent`]); the
//!   container is pluggable ([`SegmentFormat`]: MPEG-TS, or fMP4/CMAF in [`cmaf`]);
//! * [`writer`] — [`HlsWriter`]: the segmenter applied to a directory, every
//!   file written atomically (temporary file + rename);
//! * [`server`] — a tiny HTTP/1.1 static server with a built-in player page.
//!
//! ```no_run
//! use streamkit_hls::{EncodedUnit, HlsOptions, HlsWriter};
//! # async fn demo(units: Vec<EncodedUnit>) -> streamkit_core::Result<()> {
//! let mut writer = HlsWriter::create("out/hls", HlsOptions::default()).await?;
//! let server = streamkit_hls::serve("out/hls".into(), "127.0.0.1:8080".parse().unwrap(), None).await?;
//! for unit in units {
//!     writer.write_unit(unit).await?;
//! }
//! writer.finish().await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod cmaf;
pub mod playlist;
pub mod segmenter;
pub mod server;
pub mod ts;
pub mod writer;

pub use playlist::{MediaPlaylist, PlaylistSegment};
pub use segmenter::{
    EncodedUnit, HlsFormat, HlsOptions, SegmentClock, SegmentEvent, SegmentFormat, Segmenter, TsFormat, PLAYLIST_NAME,
};
pub use server::{serve, serve_with, ServerHandle, ServerOptions};
pub use ts::TsMuxer;
pub use writer::HlsWriter;
