//! # streamkit-builtins
//!
//! The sources, sinks and layers every streamkit install has, registered as
//! URI schemes by [`register`]:
//!
//! | scheme | kind | what |
//! |---|---|---|
//! | `test:` | source | SMPTE bars, moving ball, gradient, checkerboard, solid colour |
//! | `y4m:` (`.y4m`, `-`) | source, sink | YUV4MPEG2 files and pipes |
//! | `png:` (`.png`) | sink | PNG snapshot or image sequence (`frames/%05d.png`) |
//! | `raw:` (`.raw`) | sink | raw pixels for `ffplay -f rawvideo` |
//! | `null:` | sink | discards frames |
//! | `text:`, `clock:` | layer | text with `{frame}`, `{time}`, `{fps}` … placeholders |
//! | `image:` | layer | a PNG logo or watermark |
//! | `video:` | layer | any source as picture-in-picture |

pub mod image_layer;
pub mod null_sink;
pub mod placement;
pub mod png_sink;
pub mod raw;
pub mod test_source;
pub mod text_layer;
pub mod video_layer;
pub mod y4m;

use streamkit_core::registry::Registry;

pub use image_layer::ImageLayer;
pub use null_sink::NullSink;
pub use test_source::{Pattern, TestSource};
pub use text_layer::TextLayer;
pub use video_layer::VideoLayer;

/// Registers the built-in schemes.
pub fn register(registry: &mut Registry) {
    registry
        .plugin("builtins", "test patterns, Y4M, PNG, raw frames, text/clock/image/video layers")
        .source(
            "test",
            "generated video: smpte, ball, gradient, checker, solid (size=, fps=, frames=, color=)",
            "test:smpte?size=1920x1080&fps=30",
            |uri, _| Ok(Box::new(TestSource::from_uri(uri)?)),
        )
        .source("y4m", "YUV4MPEG2 file, or stdin for '-' (loop)", "y4m:clip.y4m?loop", |uri, _| {
            let mut o = uri.options();
            let looped = o.flag("loop")?.unwrap_or(false);
            o.finish()?;
            if uri.body.is_empty() || uri.body == "-" {
                return Ok(Box::new(y4m::Y4mSource::stdin()?));
            }
            Ok(Box::new(y4m::Y4mSource::open_with(&uri.body, y4m::Y4mSourceOptions { looped })?))
        })
        .sink("y4m", "YUV4MPEG2 file (I420), or stdout for '-' (fps=)", "out.y4m", |uri, _| {
            let mut o = uri.options();
            let fps = o.fps("fps")?;
            o.finish()?;
            if uri.body.is_empty() || uri.body == "-" {
                return Ok(Box::new(y4m::Y4mSink::stdout(fps)));
            }
            Ok(Box::new(y4m::Y4mSink::create(&uri.body, fps)?))
        })
        .sink(
            "raw",
            "raw packed pixels, no header, for ffplay -f rawvideo (format=rgba|bgra|i420|nv12|gray8)",
            "raw:-?format=i420",
            |uri, _| {
                let mut o = uri.options();
                let format = o.string("format").map(streamkit_core::PixelFormat::from_name).transpose()?;
                o.finish()?;
                let path = if uri.body.is_empty() { "-" } else { uri.body.as_str() };
                Ok(Box::new(raw::RawSink::create(path, format.unwrap_or(streamkit_core::PixelFormat::Rgba8Premul))?))
            },
        )
        .sink(
            "png",
            "PNG snapshot (last frame, or frame=N) or sequence for a %05d pattern (every=, start=)",
            "png:frames/%2505d.png",
            |uri, _| {
                let mut o = uri.options();
                let options = png_sink::PngSinkOptions {
                    frame: o.parse("frame", "a frame number")?,
                    every: o.parse("every", "a frame count")?,
                    start: o.parse("start", "a file number")?,
                };
                o.finish()?;
                Ok(Box::new(png_sink::PngSink::create(&uri.body, options)?))
            },
        )
        .file_extension("png", "png")
        .file_extension("y4m", "y4m")
        .file_extension("raw", "raw")
        .stdio("y4m")
        .sink("null", "discards frames (benchmarks, dry runs)", "null:", |uri, _| {
            uri.options().finish()?;
            Ok(Box::new(NullSink::default()))
        })
        .layer(
            "text",
            "text with {frame} {time} {timecode} {fps} {clock} (size=, color=, bg=, font=, pos=, x=, y=)",
            "text:Frame {frame}?size=64&pos=bottom-left",
            |uri, _| Ok(Box::new(TextLayer::from_uri(uri)?)),
        )
        .layer(
            "clock",
            "the UTC wall clock, or clock:TEMPLATE (options as text:)",
            "clock:?pos=top-right&bg=%2300000080",
            |uri, _| Ok(Box::new(TextLayer::clock_from_uri(uri)?)),
        )
        .layer(
            "image",
            "a PNG picture (width=, height=, pos=, x=, y=)",
            "image:logo.png?pos=top-right&width=200",
            |uri, _| Ok(Box::new(ImageLayer::from_uri(uri)?)),
        )
        .layer(
            "video",
            "any source as picture-in-picture (scale=, width=&height=, full, pos=, x=, y=)",
            "video:test:ball?size=640x360&pos=bottom-right",
            |uri, registry| Ok(Box::new(VideoLayer::from_uri(uri, registry)?)),
        );
}

/// Compiles the README's Rust example.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
