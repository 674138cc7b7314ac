//! H.264 encoding with OpenH264: constrained baseline, Annex-B out, one
//! access unit per input frame.
//!
//! ```no_run
//! use streamkit_core::{Fps, Frame, PixelFormat};
//! use streamkit_h264::{EncoderConfig, H264Encoder};
//! # fn demo(frames: Vec<Frame>) -> streamkit_core::Result<()> {
//! let mut encoder = H264Encoder::new(EncoderConfig::new(1280, 720, Fps::new(30, 1)))?;
//! for frame in &frames {
//!     let au = encoder.encode(frame)?; // RGBA, I420, NV12 … all accepted
//!     println!("{} bytes, keyframe {}, pts {} (90 kHz)", au.data.len(), au.keyframe, au.pts);
//! }
//! # Ok(()) }
//! ```
//!
//! Settings that are not in [`EncoderConfig`], and why:
//!
//! * profile **constrained baseline** (`profile-level-id 42e0xx`: CAVLC, no B
//!   frames), what WebRTC's packetization-mode 1 and every browser decode;
//!   the level is derived by OpenH264 from size, rate and bitrate;
//! * rate control by **bitrate** with **frame skipping off**: exactly one
//!   access unit comes out per frame that goes in, even when the content is
//!   too busy for the bitrate (quality drops instead, QP up to 51 rather than
//!   OpenH264's usual 42 — 35 for screen content — past which it could only
//!   keep the bitrate by skipping). [`RateControl::Realtime`] is OpenH264's
//!   own (`RC_BITRATE_MODE`), [`RateControl::Average`] ours over its
//!   fixed-QP mode ([`crate::rate`]);
//! * **scene-change detection off**, so IDR frames come exactly every
//!   [`EncoderConfig::keyframe_interval`] frames (and when forced) — segmenters
//!   and late joiners can rely on the cadence;
//! * SPS/PPS with **constant ids**, repeated before every IDR;
//! * **fixed slices**, one per thread: OpenH264 encodes slices in parallel and
//!   runs one thread per slice at most (`iMultipleThreadIdc = min(threads,
//!   slices)` in `encoder_ext.cpp`), so a single slice would use one core;
//! * VUI says BT.709, limited range — what [`streamkit_core::convert`] writes.

use std::os::raw::{c_int, c_void};
use std::ptr;

use openh264_sys2 as sys;
use streamkit_core::convert::convert_into;
use streamkit_core::frame::check_size;
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result, TimeBase, Timing};

use crate::rate::{spatial_activity, AverageRate};

/// What the encoder is tuned for (OpenH264's usage type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Usage {
    /// Camera or natural video in real time (`CAMERA_VIDEO_REAL_TIME`).
    #[default]
    Camera,
    /// Screen content (text, UI, slides) in real time (`SCREEN_CONTENT_REAL_TIME`).
    Screen,
}

/// Speed against compression (OpenH264's complexity mode), like x264's presets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preset {
    /// `LOW_COMPLEXITY`: fewer motion-search and mode decisions; ~17% less
    /// CPU at 1080p for slightly larger frames (x264's ultrafast is the peer).
    Fast,
    /// `MEDIUM_COMPLEXITY`, OpenH264's default.
    #[default]
    Medium,
    /// `HIGH_COMPLEXITY`: the most searching.
    Slow,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Preset, String> {
        match s {
            "fast" => Ok(Preset::Fast),
            "medium" => Ok(Preset::Medium),
            "slow" => Ok(Preset::Slow),
            other => Err(format!("preset '{other}': use fast, medium or slow")),
        }
    }
}

/// How the bitrate is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateControl {
    /// Every second near the bitrate, QP 12–51: live streams whose link has
    /// that capacity (WebRTC, RTP, `tcp://`). OpenH264's `RC_BITRATE_MODE`.
    #[default]
    Realtime,
    /// The bitrate on average, QP 0–51: simple pictures spend what busy ones
    /// leave over, as x264's ABR does (files, HLS). See [`crate::rate`].
    Average,
}

/// How to encode. Build one with [`EncoderConfig::new`] and change fields:
///
/// ```
/// # use streamkit_core::Fps;
/// # use streamkit_h264::EncoderConfig;
/// let config = EncoderConfig { bitrate_bps: 2_000_000, ..EncoderConfig::new(1280, 720, Fps::new(30, 1)) };
/// assert_eq!(config.keyframe_interval, 60);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Frame width; even, at most 3840 (2160 when portrait).
    pub width: u32,
    /// Frame height; even, at most 2160 (3840 when portrait).
    pub height: u32,
    /// The frame rate the rate control budgets for.
    pub fps: Fps,
    /// Target bitrate in bits per second (default 8 Mb/s).
    pub bitrate_bps: u32,
    /// An IDR frame every this many frames (default: 2 seconds' worth);
    /// 0 = only the first frame and forced ones.
    pub keyframe_interval: u32,
    /// Encoder threads, one slice each (default: the available cores).
    /// OpenH264 uses at most 4; frames too small to split (under 48
    /// macroblocks) use one.
    pub threads: u16,
    pub usage: Usage,
    pub rate_control: RateControl,
    pub preset: Preset,
}

impl EncoderConfig {
    /// The defaults: 8 Mb/s, an IDR frame every 2 s, one thread per core,
    /// camera content, real-time rate control.
    pub fn new(width: u32, height: u32, fps: Fps) -> EncoderConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EncoderConfig {
            width,
            height,
            fps,
            bitrate_bps: 8_000_000,
            keyframe_interval: ((fps.as_f64() * 2.0).round() as u32).max(1),
            threads: cores.clamp(1, MAX_THREADS) as u16,
            usage: Usage::Camera,
            rate_control: RateControl::Realtime,
            preset: Preset::Medium,
        }
    }
}

/// OpenH264's `MAX_THREADS_NUM`.
const MAX_THREADS: usize = 4;

/// One encoded picture: an Annex-B access unit.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedFrame {
    /// NAL units with 4-byte start codes; an IDR frame starts with its SPS and PPS.
    pub data: Vec<u8>,
    /// An IDR frame: decoding can start here.
    pub keyframe: bool,
    /// The input frame's presentation time in 90 kHz ticks.
    pub pts: i64,
    /// Decoding time in 90 kHz ticks; equal to `pts` (baseline has no B frames).
    pub dts: i64,
    /// The input frame's timing, unchanged.
    pub timing: Timing,
}

/// An OpenH264 encoder for one stream of one size.
///
/// Accepts frames in any streamkit pixel format: I420 is read in place,
/// anything else is converted into a reused I420 frame first.
pub struct H264Encoder {
    raw: RawEncoder,
    config: EncoderConfig,
    /// Where non-I420 input is converted to; allocated on first use.
    scratch: Option<Frame>,
    /// OpenH264's output descriptor (about 6 KiB, so boxed).
    info: BitstreamInfo,
    frames: u64,
    /// What OpenH264 was initialised with; [`RateControl::Average`] changes
    /// the QP in it and hands it back before a frame.
    params: Box<sys::SEncParamExt>,
    rate: Option<AverageRate>,
    /// Frames since the last IDR, and whether the next one is forced: the
    /// rate control wants to know an IDR is coming before it is encoded.
    since_idr: u32,
    idr_forced: bool,
}

impl H264Encoder {
    pub fn new(config: EncoderConfig) -> Result<H264Encoder> {
        validate(&config)?;
        std::hint::black_box(crate::asm::kernels_linked());
        let mut raw = RawEncoder::create()?;
        let mut params = Box::<sys::SEncParamExt>::default();
        // SAFETY: `params` is a valid out-pointer for the whole struct.
        raw.check("GetDefaultParams", unsafe { (raw.vtbl().GetDefaultParams.unwrap())(raw.ptr, &mut *params) })?;
        fill_params(&mut params, &config);
        let rate = (config.rate_control == RateControl::Average).then(|| {
            AverageRate::new(
                config.bitrate_bps,
                config.fps.as_f64(),
                config.keyframe_interval,
                config.width * config.height,
            )
        });
        let mut trace_level: c_int = sys::WELS_LOG_ERROR;
        // SAFETY: the trace level option takes a pointer to an int, and may be set before initialisation.
        unsafe { (raw.vtbl().SetOption.unwrap())(raw.ptr, sys::ENCODER_OPTION_TRACE_LEVEL, ptr_of(&mut trace_level)) };
        // SAFETY: `params` is fully initialised (defaults, then ours).
        let rc = unsafe { (raw.vtbl().InitializeExt.unwrap())(raw.ptr, &*params) };
        if rc != 0 {
            return Err(Error::invalid(format!("OpenH264 rejected the encoder settings {config:?} ({})", cm_name(rc))));
        }
        raw.initialized = true;
        let mut format: c_int = sys::videoFormatI420;
        // SAFETY: the data format option takes a pointer to an int.
        raw.check("SetOption(DATAFORMAT)", unsafe {
            (raw.vtbl().SetOption.unwrap())(raw.ptr, sys::ENCODER_OPTION_DATAFORMAT, ptr_of(&mut format))
        })?;
        Ok(H264Encoder {
            raw,
            config,
            scratch: None,
            info: BitstreamInfo(Box::default()),
            frames: 0,
            params,
            rate,
            since_idr: 0,
            idr_forced: false,
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Encodes one frame into one access unit. A frame of another size than
    /// the configured one is an error: start a new encoder for a new size.
    pub fn encode(&mut self, frame: &Frame) -> Result<EncodedFrame> {
        let (width, height) = (self.config.width, self.config.height);
        if frame.size() != (width, height) {
            return Err(Error::invalid(format!(
                "H.264 encoder was set up for {width}x{height} but got a {}x{} frame; \
                 the size cannot change mid-stream (start a new encoder)",
                frame.width(),
                frame.height()
            )));
        }
        let picture = if frame.format() == PixelFormat::I420 {
            frame
        } else {
            let scratch = match &mut self.scratch {
                Some(scratch) => scratch,
                none => none.insert(Frame::new(PixelFormat::I420, width, height)?),
            };
            convert_into(frame, scratch)?;
            &*scratch
        };
        let idr_due = self.frames == 0
            || self.idr_forced
            || (self.config.keyframe_interval > 0 && self.since_idr >= self.config.keyframe_interval);
        let qp = match &mut self.rate {
            Some(rate) => {
                let (luma, stride) = picture.plane(0);
                let activity = idr_due.then(|| spatial_activity(luma, stride, width as usize, height as usize));
                Some(rate.next_qp(idr_due, activity))
            }
            None => None,
        };
        if let Some(qp) = qp {
            let layer = &mut self.params.sSpatialLayers[0];
            if layer.iDLayerQp != qp as c_int {
                layer.iDLayerQp = qp as c_int;
                // SAFETY: the option takes the whole parameter struct, read during the call.
                let rc = unsafe {
                    (self.raw.vtbl().SetOption.unwrap())(
                        self.raw.ptr,
                        sys::ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
                        (&mut *self.params as *mut sys::SEncParamExt).cast(),
                    )
                };
                self.raw.check("SetOption(QP)", rc)?;
            }
        }
        let planes = [picture.plane(0), picture.plane(1), picture.plane(2)];
        let source = sys::SSourcePicture {
            iColorFormat: sys::videoFormatI420,
            iStride: [planes[0].1 as c_int, planes[1].1 as c_int, planes[2].1 as c_int, 0],
            // OpenH264 only reads the source picture (the API predates const).
            pData: [
                planes[0].0.as_ptr().cast_mut(),
                planes[1].0.as_ptr().cast_mut(),
                planes[2].0.as_ptr().cast_mut(),
                ptr::null_mut(),
            ],
            iPicWidth: width as c_int,
            iPicHeight: height as c_int,
            // Milliseconds at the configured rate: the rate control sees a steady
            // clock whatever the input's timestamps are.
            uiTimeStamp: (self.config.fps.frame_time_ns(self.frames) / 1_000_000) as i64,
            bPsnrY: false,
            bPsnrU: false,
            bPsnrV: false,
        };
        // SAFETY: the planes outlive the call and hold `height` rows of their stride
        // (checked by Frame's layout); `info` is a valid out-struct.
        let rc = unsafe { (self.raw.vtbl().EncodeFrame.unwrap())(self.raw.ptr, &source, &mut *self.info.0) };
        self.raw.check("EncodeFrame", rc)?;
        self.frames += 1;

        let info = &*self.info.0;
        if info.eFrameType == sys::videoFrameTypeSkip || info.eFrameType == sys::videoFrameTypeInvalid {
            return Err(Error::invalid(format!(
                "OpenH264 produced no picture for frame {} (frame type {}) although frame skipping is off",
                self.frames - 1,
                info.eFrameType
            )));
        }
        let mut data = Vec::with_capacity(info.iFrameSizeInBytes.max(0) as usize);
        for layer in &info.sLayerInfo[..info.iLayerNum.clamp(0, 128) as usize] {
            // SAFETY: OpenH264 wrote iNalCount lengths, and that many bytes at pBsBuf;
            // both stay valid until the next EncodeFrame.
            unsafe {
                let lengths = std::slice::from_raw_parts(layer.pNalLengthInByte, layer.iNalCount.max(0) as usize);
                let total = lengths.iter().map(|&l| l.max(0) as usize).sum();
                data.extend_from_slice(std::slice::from_raw_parts(layer.pBsBuf, total));
            }
        }
        let keyframe = info.eFrameType == sys::videoFrameTypeIDR;
        self.idr_forced = false;
        self.since_idr = if keyframe { 1 } else { self.since_idr + 1 };
        if let (Some(rate), Some(qp)) = (&mut self.rate, qp) {
            rate.record(data.len() * 8, qp, keyframe);
        }
        let pts = rescale(frame.timing.pts, frame.timing.time_base, TimeBase::RTP_VIDEO);
        Ok(EncodedFrame { data, keyframe, pts, dts: pts, timing: frame.timing.clone() })
    }

    /// Makes the next frame an IDR frame (with SPS and PPS): for a viewer
    /// that joins, or a segment that must start.
    pub fn force_keyframe(&mut self) {
        // SAFETY: the encoder is initialised; the call only sets a flag.
        unsafe { (self.raw.vtbl().ForceIntraFrame.unwrap())(self.raw.ptr, true) };
        self.idr_forced = true;
    }

    /// Frames encoded so far.
    pub fn frames_encoded(&self) -> u64 {
        self.frames
    }
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder").field("config", &self.config).field("frames", &self.frames).finish()
    }
}

fn validate(config: &EncoderConfig) -> Result<()> {
    check_size(PixelFormat::I420, config.width, config.height)?;
    // OpenH264 stops at level 5.2 (https://github.com/cisco/openh264/issues/3553).
    let (long, short) = (config.width.max(config.height), config.width.min(config.height));
    if long > 3840 || short > 2160 {
        return Err(Error::invalid(format!(
            "OpenH264 encodes at most 3840x2160 (or 2160x3840), not {}x{}",
            config.width, config.height
        )));
    }
    if config.fps.num == 0 || config.fps.den == 0 {
        return Err(Error::invalid(format!("encoder frame rate {} is not positive", config.fps)));
    }
    if config.bitrate_bps < 1000 || config.bitrate_bps > i32::MAX as u32 {
        return Err(Error::invalid(format!(
            "encoder bitrate {} b/s is out of range (1000..={})",
            config.bitrate_bps,
            i32::MAX
        )));
    }
    Ok(())
}

fn fill_params(p: &mut sys::SEncParamExt, config: &EncoderConfig) {
    let fps = config.fps.as_f64() as f32;
    let threads = (config.threads as usize).clamp(1, MAX_THREADS);
    p.iUsageType = match config.usage {
        Usage::Camera => sys::CAMERA_VIDEO_REAL_TIME,
        Usage::Screen => sys::SCREEN_CONTENT_REAL_TIME,
    };
    p.iPicWidth = config.width as c_int;
    p.iPicHeight = config.height as c_int;
    p.iTargetBitrate = config.bitrate_bps as c_int;
    p.iMaxBitrate = sys::UNSPECIFIED_BIT_RATE as c_int;
    p.bEnableFrameSkip = false;
    match config.rate_control {
        RateControl::Realtime => {
            p.iRCMode = sys::RC_BITRATE_MODE;
            // Without frame skipping the QP range is what lets the rate control meet
            // the bitrate: OpenH264 would cap QP at 42 (camera) or 35 (screen) and
            // overshoot busy content by half; 51 is H.264's own ceiling.
            p.iMinQp = 12;
            p.iMaxQp = 51;
        }
        RateControl::Average => {
            p.iRCMode = sys::RC_OFF_MODE; // the QP comes from `rate` frame by frame
            p.iMinQp = 0;
            p.iMaxQp = 51;
            // Background detection skips macroblocks whose source did not
            // change, keeping whatever error the reference has there: on the
            // issue-3 benchmark it cost 8 dB (78.3 against 86.5 dB at the
            // same bitrate) for no measurable speed. Files want the quality.
            p.bEnableBackgroundDetection = false;
        }
    }
    p.fMaxFrameRate = fps;
    p.iTemporalLayerNum = 1;
    p.iSpatialLayerNum = 1;
    p.iComplexityMode = match config.preset {
        Preset::Fast => sys::LOW_COMPLEXITY,
        Preset::Medium => sys::MEDIUM_COMPLEXITY,
        Preset::Slow => sys::HIGH_COMPLEXITY,
    };
    p.uiIntraPeriod = config.keyframe_interval;
    p.eSpsPpsIdStrategy = sys::CONSTANT_ID;
    p.bPrefixNalAddingCtrl = false;
    p.bEnableSSEI = false;
    p.iEntropyCodingModeFlag = 0; // CAVLC: baseline
    p.bEnableSceneChangeDetect = false;
    p.bEnableLongTermReference = false;
    p.bEnableDenoise = false;
    p.bEnableFrameCroppingFlag = true;
    p.iMultipleThreadIdc = threads as u16;
    p.iLoopFilterDisableIdc = 0; // OpenH264 turns this into 2 (not across slices) with threads

    let layer = &mut p.sSpatialLayers[0];
    layer.iVideoWidth = config.width as c_int;
    layer.iVideoHeight = config.height as c_int;
    layer.fFrameRate = fps;
    layer.iSpatialBitrate = config.bitrate_bps as c_int;
    layer.iMaxSpatialBitrate = sys::UNSPECIFIED_BIT_RATE as c_int;
    layer.uiProfileIdc = sys::PRO_BASELINE;
    layer.iDLayerQp = 26; // fixed-QP mode only; replaced before the first frame
    layer.uiLevelIdc = sys::LEVEL_UNKNOWN;
    layer.sSliceArgument.uiSliceMode = if threads > 1 { sys::SM_FIXEDSLCNUM_SLICE } else { sys::SM_SINGLE_SLICE };
    layer.sSliceArgument.uiSliceNum = threads as u32;
    layer.bVideoSignalTypePresent = true;
    layer.uiVideoFormat = sys::VF_UNDEF as u8;
    layer.bFullRange = false;
    layer.bColorDescriptionPresent = true;
    layer.uiColorPrimaries = sys::CP_BT709 as u8;
    layer.uiTransferCharacteristics = sys::TRC_BT709 as u8;
    layer.uiColorMatrix = sys::CM_BT709 as u8;
}

/// `ticks` of `from` in units of `to`, rounded to nearest.
pub(crate) fn rescale(ticks: i64, from: TimeBase, to: TimeBase) -> i64 {
    let num = ticks as i128 * from.num as i128 * to.den as i128;
    let den = (from.den as i128 * to.num as i128).max(1);
    (num + den / 2).div_euclid(den) as i64
}

fn ptr_of(value: &mut c_int) -> *mut c_void {
    (value as *mut c_int).cast()
}

fn cm_name(rc: c_int) -> String {
    let name = match rc {
        sys::cmInitParaError => "invalid parameter",
        sys::cmUnknownReason => "unknown reason",
        sys::cmMallocMemeError => "out of memory",
        sys::cmInitExpected => "not initialised",
        sys::cmUnsupportedData => "unsupported data",
        _ => "error",
    };
    format!("{name}, code {rc}")
}

/// OpenH264's output descriptor. Its pointers lead into buffers the encoder
/// owns, read only right after `EncodeFrame` under `&mut self`.
struct BitstreamInfo(Box<sys::SFrameBSInfo>);

// SAFETY: the pointers inside are only dereferenced while the encoder that
// filled them is borrowed mutably, on whichever thread holds it; nothing
// ties them to the thread that encoded.
unsafe impl Send for BitstreamInfo {}

/// Owns an `ISVCEncoder`: uninitialises and destroys it on drop.
struct RawEncoder {
    ptr: *mut sys::ISVCEncoder,
    initialized: bool,
}

// SAFETY: an OpenH264 encoder has no thread affinity; `&mut self` on every
// call that reaches it keeps it to one thread at a time.
unsafe impl Send for RawEncoder {}

impl RawEncoder {
    fn create() -> Result<RawEncoder> {
        let mut ptr: *mut sys::ISVCEncoder = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let rc = unsafe { sys::source::APILoader::WelsCreateSVCEncoder(&mut ptr) };
        if rc != 0 || ptr.is_null() {
            return Err(Error::invalid(format!("OpenH264 could not create an encoder ({})", cm_name(rc))));
        }
        Ok(RawEncoder { ptr, initialized: false })
    }

    fn vtbl(&self) -> &sys::ISVCEncoderVtbl {
        // SAFETY: `ptr` points at the object whose first field is the vtable pointer,
        // both valid until WelsDestroySVCEncoder.
        unsafe { &**self.ptr }
    }

    fn check(&self, what: &str, rc: c_int) -> Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::invalid(format!("OpenH264 {what} failed ({})", cm_name(rc))))
        }
    }
}

impl Drop for RawEncoder {
    fn drop(&mut self) {
        // SAFETY: created by WelsCreateSVCEncoder and not yet destroyed.
        unsafe {
            if self.initialized {
                (self.vtbl().Uninitialize.unwrap())(self.ptr);
            }
            sys::source::APILoader::WelsDestroySVCEncoder(self.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::H264Decoder;
    use crate::nal;
    use crate::test_util::{busy_i420, psnr_i420};
    use streamkit_testkit::{ffprobe_show, ffprobe_video, require_tool, temp_dir};

    fn config(width: u32, height: u32) -> EncoderConfig {
        EncoderConfig::new(width, height, Fps::new(30, 1))
    }

    fn encode_pattern(config: EncoderConfig, frames: u64, noise: bool) -> Vec<EncodedFrame> {
        let mut encoder = H264Encoder::new(config).unwrap();
        (0..frames).map(|n| encoder.encode(&busy_i420(config.width, config.height, n, noise)).unwrap()).collect()
    }

    fn nal_types(au: &[u8]) -> Vec<u8> {
        nal::nal_units(au).map(nal::nal_type).collect()
    }

    #[test]
    fn defaults() {
        let c = config(1280, 720);
        assert_eq!((c.bitrate_bps, c.keyframe_interval, c.usage), (8_000_000, 60, Usage::Camera));
        assert!((1..=4).contains(&c.threads));
        assert_eq!(EncoderConfig::new(640, 360, Fps::new(30000, 1001)).keyframe_interval, 60);
        assert_eq!(EncoderConfig::new(640, 360, Fps::new(25, 1)).keyframe_interval, 50);
    }

    /// Frame skipping is off: a busy picture at a starved bitrate still gives
    /// one access unit per frame.
    #[test]
    fn no_frame_is_skipped_at_a_low_bitrate() {
        let c = EncoderConfig { bitrate_bps: 150_000, ..config(640, 360) };
        let out = encode_pattern(c, 300, true);
        assert_eq!(out.len(), 300);
        let bytes: usize = out.iter().map(|f| f.data.len()).sum();
        for (i, f) in out.iter().enumerate() {
            let types = nal_types(&f.data);
            assert!(types.iter().any(|t| matches!(t, 1 | 5)), "frame {i} has no slice: {types:?}");
        }
        eprintln!("300 busy 640x360 frames at 150 kb/s: {:.0} kb/s actual", bytes as f64 * 8.0 / 10.0 / 1000.0);
    }

    #[test]
    fn keyframes_follow_the_interval_and_force_keyframe() {
        let c = EncoderConfig { keyframe_interval: 30, bitrate_bps: 1_000_000, ..config(320, 240) };
        let mut encoder = H264Encoder::new(c).unwrap();
        let mut keyframes = Vec::new();
        for n in 0..100u64 {
            if n == 45 {
                encoder.force_keyframe();
            }
            let f = encoder.encode(&busy_i420(320, 240, n, false)).unwrap();
            let types = nal_types(&f.data);
            assert_eq!(f.keyframe, nal::is_keyframe(&f.data), "frame {n}: {types:?}");
            let has_parameter_sets = types.contains(&nal::NAL_SPS) && types.contains(&nal::NAL_PPS);
            assert_eq!(f.keyframe, has_parameter_sets, "frame {n}: SPS/PPS exactly on keyframes: {types:?}");
            if f.keyframe {
                assert_eq!(&types[..2], &[nal::NAL_SPS, nal::NAL_PPS], "frame {n}");
                keyframes.push(n);
            }
        }
        // A forced IDR restarts the period.
        assert_eq!(keyframes, [0, 30, 45, 75]);
    }

    #[test]
    fn interval_zero_means_first_frame_only() {
        let c = EncoderConfig { keyframe_interval: 0, ..config(320, 240) };
        let keys: Vec<bool> = encode_pattern(c, 90, false).iter().map(|f| f.keyframe).collect();
        assert!(keys[0] && !keys[1..].contains(&true));
    }

    /// ffprobe reads our raw stream: codec, size, every frame, constrained baseline.
    #[test]
    fn ffprobe_reads_our_stream() {
        if !require_tool("ffprobe") {
            return;
        }
        let dir = temp_dir("h264-encode-ffprobe");
        let path = dir.join("out.h264");
        let data: Vec<u8> = encode_pattern(config(640, 360), 300, false).into_iter().flat_map(|f| f.data).collect();
        std::fs::write(&path, data).unwrap();
        let stream = ffprobe_video(&path).unwrap();
        assert_eq!((stream.codec.as_str(), stream.width, stream.height), ("h264", 640, 360));
        assert_eq!(stream.frames, 300);
        let out = ffprobe_show(&path, "stream=profile,pix_fmt,color_space", "default=noprint_wrappers=1", &[]);
        assert!(out.contains("profile=Constrained Baseline"), "{out}");
        assert!(out.contains("pix_fmt=yuv420p") && out.contains("color_space=bt709"), "{out}");
    }

    /// Our decoder reads our encoder's output back close to the source.
    #[test]
    fn round_trip_psnr_at_8_mbps() {
        let c = config(640, 360);
        let mut encoder = H264Encoder::new(c).unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        let mut worst = f64::INFINITY;
        for n in 0..60 {
            let source = busy_i420(640, 360, n, false);
            let au = encoder.encode(&source).unwrap();
            let decoded = decoder.decode(&au.data).unwrap().expect("baseline decodes without delay");
            let psnr = psnr_i420(&decoded, &source);
            assert!(psnr >= 35.0, "frame {n}: {psnr:.2} dB");
            worst = worst.min(psnr);
        }
        assert!(decoder.flush().unwrap().is_empty());
        eprintln!("640x360 at 8 Mb/s: worst frame {worst:.2} dB");
    }

    #[test]
    fn rgba_input_is_converted() {
        let mut encoder = H264Encoder::new(config(320, 240)).unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        for n in 0..10 {
            let i420 = busy_i420(320, 240, n, false);
            let rgba = streamkit_core::convert::convert(&i420, PixelFormat::Rgba8Premul).unwrap();
            let reference = streamkit_core::convert::convert(&rgba, PixelFormat::I420).unwrap();
            let au = encoder.encode(&rgba).unwrap();
            assert_eq!(au.timing, rgba.timing);
            let decoded = decoder.decode(&au.data).unwrap().unwrap();
            let psnr = psnr_i420(&decoded, &reference);
            assert!(psnr >= 35.0, "frame {n}: {psnr:.2} dB");
        }
        assert!(encoder.scratch.is_some());
    }

    #[test]
    fn i420_input_is_read_in_place() {
        let mut encoder = H264Encoder::new(config(320, 240)).unwrap();
        encoder.encode(&busy_i420(320, 240, 0, false)).unwrap();
        assert!(encoder.scratch.is_none(), "no conversion buffer for I420 input");
    }

    /// Rate control by bitrate: a moving picture lands near the target.
    #[test]
    fn bitrate_is_followed() {
        for bitrate in [1_000_000u32, 2_000_000] {
            let c = EncoderConfig { bitrate_bps: bitrate, ..config(640, 360) };
            let out = encode_pattern(c, 300, false);
            let bits = out.iter().map(|f| f.data.len()).sum::<usize>() as f64 * 8.0;
            let actual = bits / 10.0;
            eprintln!("target {bitrate} b/s: {actual:.0} b/s");
            assert!((actual / bitrate as f64 - 1.0).abs() < 0.25, "target {bitrate}, got {actual:.0}");
        }
    }

    /// Average rate control lands on the bitrate for moving and noisy
    /// pictures, like the real-time one, and keeps the IDR cadence.
    #[test]
    fn average_rate_follows_the_bitrate() {
        for (bitrate, noise) in [(1_000_000u32, false), (2_000_000, false), (1_000_000, true)] {
            let c = EncoderConfig { bitrate_bps: bitrate, rate_control: RateControl::Average, ..config(640, 360) };
            let out = encode_pattern(c, 300, noise);
            let actual = out.iter().map(|f| f.data.len()).sum::<usize>() as f64 * 8.0 / 10.0;
            eprintln!("average, target {bitrate} b/s, noise {noise}: {actual:.0} b/s");
            assert!((actual / bitrate as f64 - 1.0).abs() < 0.15, "target {bitrate}, got {actual:.0}");
            let keys: Vec<usize> = out.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
            assert_eq!(keys, [0, 60, 120, 180, 240]);
        }
    }

    /// A still picture far under budget: OpenH264's rate control stops at
    /// QP 12, ours goes on down and spends spare bits on quality.
    #[test]
    fn average_rate_spends_spare_bits_on_quality() {
        let source = busy_i420(640, 360, 3, true);
        let measure = |rate_control| {
            let c = EncoderConfig { bitrate_bps: 4_000_000, rate_control, ..config(640, 360) };
            let mut encoder = H264Encoder::new(c).unwrap();
            let mut decoder = H264Decoder::new().unwrap();
            let (mut bytes, mut psnr) = (0, 0.0);
            for _ in 0..60 {
                let au = encoder.encode(&source).unwrap();
                bytes += au.data.len();
                psnr = psnr_i420(&decoder.decode(&au.data).unwrap().unwrap(), &source);
            }
            (bytes as f64 * 8.0 / 2.0, psnr)
        };
        let (realtime_bps, realtime_db) = measure(RateControl::Realtime);
        let (average_bps, average_db) = measure(RateControl::Average);
        eprintln!("still picture: realtime {realtime_bps:.0} b/s {realtime_db:.1} dB, average {average_bps:.0} b/s {average_db:.1} dB");
        assert!(average_bps < 4_000_000.0 * 1.1, "{average_bps:.0} b/s");
        assert!(average_db > realtime_db + 3.0, "{average_db:.1} vs {realtime_db:.1} dB");
    }

    #[test]
    fn timing_round_trips_and_pts_is_90khz() {
        let fps = Fps::new(30000, 1001);
        let c = EncoderConfig::new(320, 240, fps);
        let mut encoder = H264Encoder::new(c).unwrap();
        for n in 0..20u64 {
            let mut frame = busy_i420(320, 240, n, false);
            frame.timing = Timing { ptp_time_ns: Some(77 + n), ..Timing::for_frame(n + 1000, fps) };
            let au = encoder.encode(&frame).unwrap();
            assert_eq!(au.pts, (n as i64 + 1000) * 3003);
            assert_eq!(au.dts, au.pts);
            assert_eq!(au.timing, frame.timing);
        }
        assert_eq!(rescale(1, TimeBase::NANOS, TimeBase::RTP_VIDEO), 0);
        assert_eq!(rescale(1_000_000_000, TimeBase::NANOS, TimeBase::RTP_VIDEO), 90_000);
        assert_eq!(rescale(-1, TimeBase::new(1, 30), TimeBase::RTP_VIDEO), -3000);
    }

    #[test]
    fn size_change_mid_stream_is_an_error() {
        let mut encoder = H264Encoder::new(config(320, 240)).unwrap();
        encoder.encode(&busy_i420(320, 240, 0, false)).unwrap();
        let err = encoder.encode(&busy_i420(640, 360, 1, false)).unwrap_err().to_string();
        assert!(err.contains("320x240") && err.contains("640x360") && err.contains("mid-stream"), "{err}");
        // Still usable at the configured size.
        assert!(encoder.encode(&busy_i420(320, 240, 2, false)).is_ok());
    }

    #[test]
    fn one_slice_per_thread() {
        for threads in [1u16, 2, 4] {
            let c = EncoderConfig { threads, ..config(640, 360) };
            for f in encode_pattern(c, 3, false) {
                let slices = nal_types(&f.data).iter().filter(|t| matches!(t, 1 | 5)).count();
                assert_eq!(slices, threads as usize, "threads {threads}");
            }
        }
    }

    #[test]
    fn every_preset_encodes_and_parses() {
        for (name, preset) in [("fast", Preset::Fast), ("medium", Preset::Medium), ("slow", Preset::Slow)] {
            assert_eq!(name.parse::<Preset>(), Ok(preset));
            let c = EncoderConfig { preset, rate_control: RateControl::Average, ..config(640, 360) };
            assert_eq!(encode_pattern(c, 5, false).len(), 5);
        }
        assert!("ultrafast".parse::<Preset>().unwrap_err().contains("fast, medium or slow"));
    }

    #[test]
    fn screen_usage_encodes() {
        let c = EncoderConfig { usage: Usage::Screen, ..config(640, 360) };
        assert_eq!(encode_pattern(c, 5, false).len(), 5);
    }

    #[test]
    fn rejects_bad_settings() {
        for (c, needle) in [
            (config(321, 240), "even"),
            (config(4096, 2160), "3840x2160"),
            (EncoderConfig { bitrate_bps: 0, ..config(320, 240) }, "bitrate"),
            (EncoderConfig { fps: Fps::new(0, 1), ..config(320, 240) }, "frame rate"),
        ] {
            let err = H264Encoder::new(c).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        assert!(H264Encoder::new(config(2160, 3840)).is_ok());
    }
}
