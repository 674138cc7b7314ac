//! # streamkit-core
//!
//! The small engine every other streamkit crate builds on:
//!
//! * [`frame`] — [`Frame`]: pixels in a shared buffer (clone never copies) plus
//!   [`Timing`] (pts, capture time, PTP time, frame number) and metadata;
//! * [`Source`], [`Sink`] and [`Layer`] — the three things a pipeline is made of;
//! * [`compositor`] — z-ordered layers blended onto the source frame, changeable
//!   while a stream runs through a [`compositor::LayerControl`];
//! * [`canvas`] — tiny-skia drawing with text, what drawing layers paint on;
//! * [`stream`] — the runner: source → compositor → sinks, with pacing, stop
//!   conditions and live [`stats`];
//! * [`registry`] — URI schemes (`test:`, `file:`, `png:` …) to factories.
//!
//! ```no_run
//! use streamkit_core::{stream::{Stream, StreamOptions}, layer::FnLayer, canvas::{Paint, Color}};
//! # async fn demo(source: Box<dyn streamkit_core::Source>, sink: Box<dyn streamkit_core::Sink>) -> streamkit_core::Result<()> {
//! let mut stream = Stream::new(source, vec![sink], StreamOptions { max_frames: Some(300), ..Default::default() });
//! stream.layers().add_layer("dot", 1, FnLayer::new(|canvas, ctx| {
//!     let x = 100.0 + 50.0 * (ctx.time as f32).cos();
//!     canvas.draw_circle(x, 100.0, 20.0, &Paint::fill(Color::from_rgba8(0, 0, 255, 255)));
//!     Ok(())
//! }));
//! let report = stream.run().await?;
//! println!("{} frames", report.frames_out);
//! # Ok(()) }
//! ```

pub mod blend;
pub mod canvas;
pub mod compositor;
pub mod convert;
pub mod error;
pub mod frame;
pub mod layer;
pub mod queue;
pub mod registry;
pub mod scale;
pub mod simd;
pub mod sink;
pub mod source;
pub mod stats;
pub mod stream;
pub mod text;
pub mod time;
pub mod uri;

pub use error::{Error, Result};
pub use frame::{Frame, PixelFormat, TimestampedFrame};
pub use layer::{FrameContext, Layer};
pub use sink::Sink;
pub use source::{Source, SourceInfo};
pub use time::{Fps, TimeBase, Timing};
