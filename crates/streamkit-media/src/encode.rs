//! The encoding stage shared by the file and HLS sinks: an H.264 encoder
//! created at the first frame (its size fixes the stream's), run on a
//! blocking thread so that encoding never stalls the async runtime.

use streamkit_core::sink::StreamInfo;
use streamkit_core::time::{monotonic_ns, realtime_ns};
use streamkit_core::{Error, Fps, Frame, Result, TimeBase, Timing};
use streamkit_h264::{EncodedFrame, EncoderConfig, H264Encoder};

/// Bitrate and keyframe spacing as the user asked; the rest comes from the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncodeOptions {
    pub bitrate_bps: u32,
    /// Keyframe interval in seconds (`None`: every 2 s).
    pub keyframe_seconds: Option<f64>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { bitrate_bps: 8_000_000, keyframe_seconds: None }
    }
}

pub struct EncodeStage {
    options: EncodeOptions,
    fps: Fps,
    encoder: Option<H264Encoder>,
    what: String,
}

impl EncodeStage {
    pub fn new(options: EncodeOptions, what: impl Into<String>) -> EncodeStage {
        EncodeStage { options, fps: Fps::new(30, 1), encoder: None, what: what.into() }
    }

    pub fn set_stream_info(&mut self, info: &StreamInfo) {
        self.fps = info.fps;
    }

    pub fn fps(&self) -> Fps {
        self.fps
    }

    /// Encodes one frame; `keyframe` forces an IDR (segment boundary, new viewer).
    pub async fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<EncodedFrame> {
        let mut encoder = match self.encoder.take() {
            Some(e) if e.config().width == frame.width() && e.config().height == frame.height() => e,
            Some(e) => {
                return Err(Error::invalid(format!(
                    "{}: frame size changed from {}x{} to {}x{}; an H.264 stream keeps one size",
                    self.what,
                    e.config().width,
                    e.config().height,
                    frame.width(),
                    frame.height()
                )))
            }
            None => self.create(frame.width(), frame.height())?,
        };
        if keyframe {
            encoder.force_keyframe();
        }
        let frame = frame.clone();
        let (encoder, encoded) = tokio::task::spawn_blocking(move || {
            let encoded = encoder.encode(&frame);
            (encoder, encoded)
        })
        .await
        .map_err(|e| Error::invalid(format!("{}: encoder thread failed: {e}", self.what)))?;
        self.encoder = Some(encoder);
        encoded
    }

    fn create(&self, width: u32, height: u32) -> Result<H264Encoder> {
        let mut config = EncoderConfig::new(width, height, self.fps);
        config.bitrate_bps = self.options.bitrate_bps;
        if let Some(seconds) = self.options.keyframe_seconds {
            config.keyframe_interval = (seconds * self.fps.as_f64()).round().max(1.0) as u32;
        }
        H264Encoder::new(config).map_err(|e| e.in_stage(self.what.clone()))
    }
}

/// A frame's presentation time in 90 kHz ticks (the unit of MPEG-TS and our MP4 tracks).
pub fn pts_90k(timing: &Timing) -> i64 {
    TimeBase::RTP_VIDEO.from_ns(timing.pts_ns())
}

/// Wall-clock (Unix epoch) nanoseconds when the frame was captured: its PTP
/// time when a synchronised clock stamped it, else its monotonic capture
/// time mapped onto the realtime clock.
pub fn wallclock_ns(timing: &Timing) -> Option<u64> {
    if let Some(ptp) = timing.ptp_time_ns {
        return Some(ptp);
    }
    (timing.capture_time_ns != 0)
        .then(|| realtime_ns().saturating_sub(monotonic_ns().saturating_sub(timing.capture_time_ns)))
}
