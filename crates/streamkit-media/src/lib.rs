//! # streamkit-media
//!
//! Compressed video in and out of files, with no system library:
//!
//! | scheme | kind | what |
//! |---|---|---|
//! | `mp4:` (`.mp4`, `.mov`, `.m4v`) | source, sink | the design's `FileSource` / `FileSink`: H.264 in MP4 (fragmented by default, `faststart` option) |
//! | `h264:` (`.h264`, `.264`) | source | Annex-B H.264 elementary streams |
//! | `hls:` | sink | the design's `HLSSink`: H.264 MPEG-TS segments + live playlist, optional HTTP serving |
//!
//! H.264 comes from OpenH264 built from source (`streamkit-h264`), the
//! formats from `streamkit-container` (MP4) and `streamkit-hls` (MPEG-TS,
//! playlists, server).

pub mod deferred;
pub mod encode;
pub mod hls_sink;
pub mod mp4_sink;
pub mod mp4_source;

use streamkit_core::registry::Registry;
use streamkit_core::{Fps, Source};

pub use hls_sink::{HlsSink, HlsSinkOptions};
pub use mp4_sink::{Mp4Sink, Mp4SinkOptions};
pub use mp4_source::Mp4Source;

/// Registers `mp4:`, `h264:` and `hls:` with their file extensions.
pub fn register(registry: &mut Registry) {
    registry
        .plugin("media", "H.264 via OpenH264 (built from source): MP4 files, Annex-B streams, HLS served over HTTP")
        .source("mp4", "H.264 video from MP4/MOV, plain or fragmented (loop)", "mp4:clip.mp4?loop", |uri, _| {
            Ok(Box::new(Mp4Source::from_uri(uri)?))
        })
        .sink(
            "mp4",
            "H.264 in MP4, fragmented (valid after every fragment) or faststart (bitrate=, keyint=, faststart, encoders=, preset=fast|medium|slow)",
            "out.mp4?bitrate=4000000",
            |uri, _| Ok(Box::new(Mp4Sink::from_uri(uri)?)),
        )
        .source("h264", "Annex-B H.264 elementary stream (fps=)", "clip.h264?fps=25", |uri, _| {
            let mut o = uri.options();
            let fps = o.fps("fps")?.unwrap_or(Fps::new(30, 1));
            o.finish()?;
            let path = uri.body.clone();
            Ok(Box::new(deferred::Deferred::new(format!("h264:{path}"), async move {
                let source = streamkit_h264::AnnexBSource::open_with_fps(&path, fps).await?;
                Ok(Box::new(source) as Box<dyn Source>)
            })))
        })
        .sink(
            "hls",
            "HLS: H.264 segments + index.m3u8 (segment_duration=, playlist_size=, bitrate=, format=ts|fmp4, serve=ADDR, token=, encoders=, preset=fast|medium|slow)",
            "hls:out/live?segment_duration=2&playlist_size=5",
            |uri, _| Ok(Box::new(HlsSink::from_uri(uri)?)),
        );
    for ext in ["mp4", "mov", "m4v"] {
        registry.file_extension(ext, "mp4");
    }
    for ext in ["h264", "264"] {
        registry.file_extension(ext, "h264");
    }
}
