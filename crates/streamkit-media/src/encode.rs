//! The encoding stage shared by the file and HLS sinks: H.264 encoders
//! created at the first frame (its size fixes the stream's), on threads of
//! their own so that encoding never stalls the async runtime.
//!
//! **GOP-parallel.** OpenH264 threads only within a frame (slices, joined
//! every frame), which kept a 2-core machine a quarter idle. A file or HLS
//! stream is cut into closed GOPs anyway (IDR every keyframe interval, at
//! every segment boundary), and a GOP depends on nothing before it — so the
//! stage runs one single-threaded encoder per core and hands each whole GOP
//! to the next encoder in turn, as chunked encoders do. Access units come
//! back in order; the stream is the one a single encoder would write (same
//! SPS/PPS, IDR cadence, timestamps). At real-time rates each encoder keeps
//! up on its own and nothing waits; when the source runs ahead (a file
//! rendered as fast as possible), raw frames queue per encoder, bounded
//! by [`QUEUE_BYTES`].
//!
//! **Live** ([`EncodeStage::live`], for WebRTC viewers): one encoder with a
//! slice per core, OpenH264's real-time rate control, and each frame's
//! access unit returned as soon as it is encoded.

use std::collections::VecDeque;

use streamkit_core::sink::StreamInfo;
use streamkit_core::time::{monotonic_ns, realtime_ns};
use streamkit_core::{Error, Fps, Frame, Result, TimeBase, Timing};
use streamkit_h264::{EncodedFrame, EncoderConfig, H264Encoder, Preset, RateControl};
use tokio::sync::mpsc;

/// Raw frames that may wait for the encoders, all together: 42 at 1080p
/// (21 per encoder with two), so each encoder can run a third of a 2 s GOP
/// ahead of the other.
pub const QUEUE_BYTES: usize = 128 << 20;
/// OpenH264's thread limit per encoder, and our limit on parallel GOPs.
const MAX_ENCODERS: usize = 4;

/// Bitrate and keyframe spacing as the user asked; the rest comes from the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncodeOptions {
    pub bitrate_bps: u32,
    /// Keyframe interval in seconds (`None`: every 2 s).
    pub keyframe_seconds: Option<f64>,
    /// Encoders working on different GOPs at once (`None`: one per core, at most 4).
    pub encoders: Option<usize>,
    /// Speed against compression.
    pub preset: Preset,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { bitrate_bps: 8_000_000, keyframe_seconds: None, encoders: None, preset: Preset::Medium }
    }
}

/// One frame on its way to an encoder thread.
struct Job {
    frame: Frame,
    keyframe: bool,
}

/// An encoder thread: frames in, access units out, in its own order.
struct Worker {
    input: mpsc::Sender<Job>,
    output: mpsc::UnboundedReceiver<Result<EncodedFrame>>,
}

pub struct EncodeStage {
    options: EncodeOptions,
    live: bool,
    fps: Fps,
    what: String,
    /// Created at the first frame.
    workers: Vec<Worker>,
    size: (u32, u32),
    /// Frames per GOP (0: only forced keyframes start one).
    interval: u64,
    /// The worker taking the current GOP, and frames submitted to that GOP.
    current: usize,
    in_gop: u64,
    /// GOPs whose access units have not all come back: (worker, frames
    /// outstanding), oldest first. Output is read from the front only, so
    /// access units leave in submission order.
    pending: VecDeque<(usize, u64)>,
}

impl EncodeStage {
    /// For files and HLS: GOP-parallel, average bitrate.
    pub fn new(options: EncodeOptions, what: impl Into<String>) -> EncodeStage {
        EncodeStage {
            options,
            live: false,
            fps: Fps::new(30, 1),
            what: what.into(),
            workers: Vec::new(),
            size: (0, 0),
            interval: 0,
            current: 0,
            in_gop: 0,
            pending: VecDeque::new(),
        }
    }

    /// For live viewers: one encoder, real-time rate control; use [`EncodeStage::encode`].
    pub fn live(options: EncodeOptions, what: impl Into<String>) -> EncodeStage {
        EncodeStage { live: true, ..EncodeStage::new(EncodeOptions { encoders: Some(1), ..options }, what) }
    }

    pub fn set_stream_info(&mut self, info: &StreamInfo) {
        self.fps = info.fps;
    }

    pub fn fps(&self) -> Fps {
        self.fps
    }

    /// Submits one frame (`keyframe` forces an IDR: a segment boundary) and
    /// returns the access units that are ready, in order. Waits while the
    /// encoders' queues are full.
    pub async fn push(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>> {
        if self.workers.is_empty() {
            self.start(frame.width(), frame.height())?;
        } else if frame.size() != self.size {
            return Err(Error::invalid(format!(
                "{}: frame size changed from {}x{} to {}x{}; an H.264 stream keeps one size",
                self.what,
                self.size.0,
                self.size.1,
                frame.width(),
                frame.height()
            )));
        }
        let starts_gop = self.in_gop == 0 // the first frame
            || keyframe
            || (self.interval > 0 && self.in_gop >= self.interval);
        if starts_gop {
            if self.in_gop > 0 {
                self.current = (self.current + 1) % self.workers.len();
            }
            self.pending.push_back((self.current, 0));
            self.in_gop = 0;
        }
        self.in_gop += 1;
        self.pending.back_mut().expect("a GOP is open").1 += 1;
        let job = Job { frame: frame.clone(), keyframe: starts_gop };
        if self.workers[self.current].input.send(job).await.is_err() {
            return Err(self.worker_died());
        }
        self.collect(false).await
    }

    /// Encodes one frame and waits for its access unit (and any before it).
    pub async fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<EncodedFrame> {
        let mut units = self.push(frame, keyframe).await?;
        units.extend(self.finish().await?);
        units.pop().ok_or_else(|| self.worker_died())
    }

    /// Waits for every frame submitted and returns their access units.
    pub async fn finish(&mut self) -> Result<Vec<EncodedFrame>> {
        self.collect(true).await
    }

    /// Takes access units from the oldest GOP's worker while they are
    /// ready (or, with `wait`, until all are back).
    async fn collect(&mut self, wait: bool) -> Result<Vec<EncodedFrame>> {
        let mut ready = Vec::new();
        while let Some(&(worker, outstanding)) = self.pending.front() {
            if outstanding == 0 {
                if self.pending.len() == 1 {
                    break; // the open GOP, waiting for more frames
                }
                self.pending.pop_front();
                continue;
            }
            let output = &mut self.workers[worker].output;
            let unit = if wait {
                output.recv().await
            } else {
                match output.try_recv() {
                    Ok(unit) => Some(unit),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(unit) = unit else { return Err(self.worker_died()) };
            self.pending.front_mut().expect("checked above").1 -= 1;
            ready.push(unit.map_err(|e| e.in_stage(self.what.clone()))?);
        }
        Ok(ready)
    }

    fn worker_died(&self) -> Error {
        Error::invalid(format!("{}: an encoder thread stopped", self.what))
    }

    fn start(&mut self, width: u32, height: u32) -> Result<()> {
        let encoders = encoder_count(&self.options);
        let mut config = encoder_config(&self.options, self.fps, width, height);
        if self.live {
            config.rate_control = RateControl::Realtime;
        }
        let frame_bytes = (width as usize * height as usize * 3 / 2).max(1);
        let depth = (QUEUE_BYTES / encoders / frame_bytes).clamp(1, config.keyframe_interval.max(1) as usize);
        for index in 0..encoders {
            let encoder = H264Encoder::new(config).map_err(|e| e.in_stage(self.what.clone()))?;
            let (input, mut jobs) = mpsc::channel::<Job>(depth);
            let (results, output) = mpsc::unbounded_channel();
            std::thread::Builder::new()
                .name(format!("h264-encode-{index}"))
                .spawn(move || {
                    let mut encoder = encoder;
                    while let Some(job) = jobs.blocking_recv() {
                        if job.keyframe {
                            encoder.force_keyframe();
                        }
                        if results.send(encoder.encode(&job.frame)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| Error::invalid(format!("{}: cannot start an encoder thread: {e}", self.what)))?;
            self.workers.push(Worker { input, output });
        }
        self.size = (width, height);
        self.interval = config.keyframe_interval as u64;
        Ok(())
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many encoders take GOPs in turn: as asked, else one per core (at most 4).
pub fn encoder_count(options: &EncodeOptions) -> usize {
    options.encoders.unwrap_or_else(cores).clamp(1, MAX_ENCODERS)
}

/// The settings of each file/HLS encoder: the user's bitrate and keyframe
/// interval, average rate control, and the cores left over after one per
/// encoder as slices.
pub fn encoder_config(options: &EncodeOptions, fps: Fps, width: u32, height: u32) -> EncoderConfig {
    let mut config = EncoderConfig::new(width, height, fps);
    config.bitrate_bps = options.bitrate_bps;
    config.rate_control = RateControl::Average;
    config.preset = options.preset;
    if let Some(seconds) = options.keyframe_seconds {
        config.keyframe_interval = (seconds * fps.as_f64()).round().max(1.0) as u32;
    }
    config.threads = (cores() / encoder_count(options)).clamp(1, MAX_ENCODERS) as u16;
    config
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

#[cfg(test)]
mod tests {
    use super::*;
    use streamkit_core::PixelFormat;
    use streamkit_h264::H264Decoder;

    /// A gradient with a square moving across it, frame `n`, timed at 30 fps.
    fn picture(n: u64) -> Frame {
        let (w, h) = (320usize, 240usize);
        let mut frame = Frame::new(PixelFormat::I420, w as u32, h as u32).unwrap();
        for (i, (plane, stride)) in frame.planes_mut().into_iter().enumerate() {
            let (pw, ph) = if i == 0 { (w, h) } else { (w / 2, h / 2) };
            for row in 0..ph {
                for col in 0..pw {
                    let inside = i == 0 && (col as u64 + 300 - n * 3 % 300) % 300 < 40 && row / 40 == 2;
                    plane[row * stride + col] = if inside { 235 } else { ((col + row * 2 + i * 60) % 200 + 16) as u8 };
                }
            }
        }
        frame.timing = Timing::for_frame(n, Fps::new(30, 1));
        frame
    }

    fn stage(encoders: usize) -> EncodeStage {
        let options = EncodeOptions {
            bitrate_bps: 1_000_000,
            keyframe_seconds: Some(1.0),
            encoders: Some(encoders),
            ..EncodeOptions::default()
        };
        let mut stage = EncodeStage::new(options, "test");
        stage.set_stream_info(&StreamInfo { fps: Fps::new(30, 1), size: None });
        stage
    }

    /// Two encoders on alternate GOPs give one stream, in order, with the
    /// keyframes where one encoder would put them, that a single decoder
    /// reads from start to end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gop_parallel_output_is_one_stream_in_order() {
        let mut stage = stage(2);
        let mut units = Vec::new();
        for n in 0..200 {
            units.extend(stage.push(&picture(n), n == 50).await.unwrap());
        }
        units.extend(stage.finish().await.unwrap());
        assert_eq!(units.len(), 200);
        assert!(units.iter().enumerate().all(|(n, u)| u.timing.pts == n as i64), "in submission order");
        let keys: Vec<usize> = units.iter().enumerate().filter(|(_, u)| u.keyframe).map(|(n, _)| n).collect();
        assert_eq!(keys, [0, 30, 50, 80, 110, 140, 170]);
        let mut decoder = H264Decoder::new().unwrap();
        for (n, unit) in units.iter().enumerate() {
            let decoded = decoder.decode(&unit.data).unwrap().unwrap_or_else(|| panic!("frame {n} gave no picture"));
            let source = picture(n as u64);
            let (a, b) = (decoded.plane(0), source.plane(0));
            let mse = (0..240)
                .flat_map(|r| (0..320).map(move |c| (r, c)))
                .map(|(r, c)| (a.0[r * a.1 + c] as f64 - b.0[r * b.1 + c] as f64).powi(2))
                .sum::<f64>()
                / (320.0 * 240.0);
            assert!(mse < 10.0, "frame {n}: luma MSE {mse:.1}");
        }
    }

    /// With one encoder the same frames give the same keyframes, and
    /// `encode` returns each frame's own unit at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_encoder_and_encode_return_each_frame() {
        let mut stage = stage(1);
        for n in 0..70 {
            let unit = stage.encode(&picture(n), n == 50).await.unwrap();
            assert_eq!(unit.timing.pts, n as i64);
            assert_eq!(unit.keyframe, [0, 30, 50].contains(&n), "frame {n}");
        }
        assert!(stage.finish().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_size_change_is_an_error() {
        let mut stage = stage(2);
        stage.push(&picture(0), false).await.unwrap();
        let other = Frame::new(PixelFormat::I420, 160, 120).unwrap();
        let err = stage.push(&other, false).await.unwrap_err().to_string();
        assert!(err.contains("320x240") && err.contains("160x120"), "{err}");
    }
}
