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
