//! H.264 decoding with OpenH264, into pooled I420 frames.
//!
//! OpenH264 2.7 decodes progressive baseline, main and high profile 8-bit
//! 4:2:0 streams, CAVLC and CABAC, with B frames (it reorders them into
//! display order, so a frame may come out a few access units after it went
//! in; [`H264Decoder::flush`] returns the rest at the end). It does not
//! decode interlaced (field/MBAFF) coding, 4:2:2/4:4:4 or more than 8 bits.
//!
//! ```no_run
//! # fn demo(access_units: Vec<Vec<u8>>) -> streamkit_core::Result<()> {
//! let mut decoder = streamkit_h264::H264Decoder::new()?;
//! let mut frames = Vec::new();
//! for au in &access_units {
//!     frames.extend(decoder.decode(au)?);
//! }
//! frames.extend(decoder.flush()?);
//! # Ok(()) }
//! ```

use std::os::raw::{c_int, c_long, c_void};
use std::ptr;

use openh264_sys2 as sys;
use streamkit_core::convert::copy_plane;
use streamkit_core::frame::{check_size, BufferPool};
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result, Timing};

/// Idle output buffers kept for reuse.
const POOL_IDLE: usize = 8;

/// An OpenH264 decoder for one H.264 stream (the size may change at an IDR).
pub struct H264Decoder {
    raw: RawDecoder,
    /// Output buffers for the current size.
    pool: Option<(u32, u32, BufferPool)>,
    fps: Fps,
    frames_out: u64,
    access_units: u64,
}

impl H264Decoder {
    /// A decoder whose frames are timed at 30 fps (see [`H264Decoder::with_fps`]).
    pub fn new() -> Result<H264Decoder> {
        H264Decoder::with_fps(Fps::new(30, 1))
    }

    /// A decoder whose output frame `n` gets [`Timing::for_frame`]`(n, fps)`:
    /// a raw H.264 stream carries no timestamps.
    pub fn with_fps(fps: Fps) -> Result<H264Decoder> {
        std::hint::black_box(crate::asm::kernels_linked());
        let raw = RawDecoder::create()?;
        Ok(H264Decoder { raw, pool: None, fps, frames_out: 0, access_units: 0 })
    }

    /// Decodes one Annex-B access unit (NAL units with start codes: SPS and
    /// PPS may come with it). Returns the next picture in display order once
    /// one is ready — with B frames that is a few access units later.
    ///
    /// An access unit the decoder cannot use (damaged, or a P frame before
    /// the first IDR) is an error; the decoder stays usable and recovers at
    /// the next IDR.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<Frame>> {
        if access_unit.is_empty() {
            return Ok(None);
        }
        let len = c_int::try_from(access_unit.len())
            .map_err(|_| Error::invalid(format!("access unit of {} bytes is too large", access_unit.len())))?;
        let mut planes = [ptr::null_mut::<u8>(); 3];
        let mut info = sys::SBufferInfo::default();
        // SAFETY: the input is read-only for the call (the API predates const);
        // `planes` and `info` are valid out-pointers.
        let state = unsafe {
            (self.raw.vtbl().DecodeFrameNoDelay.unwrap())(
                self.raw.ptr,
                access_unit.as_ptr(),
                len,
                planes.as_mut_ptr(),
                &mut info,
            )
        };
        let index = self.access_units;
        self.access_units += 1;
        // A picture that came out is good even when the state carries flags
        // about this access unit; report those only when nothing came out.
        if info.iBufferStatus == 1 {
            // SAFETY: OpenH264 filled `planes` and the buffer description.
            return unsafe { self.copy_out(&planes, &info) }.map(Some);
        }
        if state & !sys::dsFramePending != 0 {
            return Err(Error::invalid(format!(
                "H.264 decoder: access unit {index} ({} bytes) not decoded: {}",
                access_unit.len(),
                state_names(state)
            )));
        }
        Ok(None)
    }

    /// Pictures still held for reordering, in display order: call at the end of the stream.
    pub fn flush(&mut self) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        // Bounded: OpenH264 holds at most 16 reference pictures plus a few for reordering.
        for _ in 0..64 {
            let mut remaining: c_int = 0;
            // SAFETY: the option takes a pointer to an int.
            unsafe {
                (self.raw.vtbl().GetOption.unwrap())(
                    self.raw.ptr,
                    sys::DECODER_OPTION_NUM_OF_FRAMES_REMAINING_IN_BUFFER,
                    (&mut remaining as *mut c_int).cast::<c_void>(),
                )
            };
            if remaining <= 0 {
                break;
            }
            let mut planes = [ptr::null_mut::<u8>(); 3];
            let mut info = sys::SBufferInfo::default();
            // SAFETY: valid out-pointers.
            let state = unsafe { (self.raw.vtbl().FlushFrame.unwrap())(self.raw.ptr, planes.as_mut_ptr(), &mut info) };
            if info.iBufferStatus != 1 {
                if state != 0 {
                    return Err(Error::invalid(format!("H.264 decoder: flush failed: {}", state_names(state))));
                }
                break;
            }
            // SAFETY: OpenH264 filled `planes` and the buffer description.
            frames.push(unsafe { self.copy_out(&planes, &info) }?);
        }
        Ok(frames)
    }

    /// Access units given to [`H264Decoder::decode`] so far.
    pub fn access_units(&self) -> u64 {
        self.access_units
    }

    /// Pictures returned so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Copies OpenH264's picture (with its own strides) into a pooled, packed
    /// I420 frame: each row is copied once.
    ///
    /// # Safety
    /// `planes` and `info` must come from a call that set `iBufferStatus` to 1,
    /// and no decoder call may have happened since.
    unsafe fn copy_out(&mut self, planes: &[*mut u8; 3], info: &sys::SBufferInfo) -> Result<Frame> {
        // SAFETY: the union's only member.
        let buffer = unsafe { info.UsrData.sSystemBuffer };
        let (width, height) = (buffer.iWidth, buffer.iHeight);
        let (y_stride, c_stride) = (buffer.iStride[0], buffer.iStride[1]);
        if width <= 0
            || height <= 0
            || y_stride < width
            || c_stride < (width + 1) / 2
            || planes.iter().any(|p| p.is_null())
        {
            return Err(Error::invalid(format!(
                "H.264 decoder returned an unusable picture: {width}x{height}, strides {y_stride}/{c_stride}"
            )));
        }
        let (width, height) = (width as u32, height as u32);
        check_size(PixelFormat::I420, width, height)?;
        let layout = PixelFormat::I420.packed_layout(width, height);
        if !matches!(&self.pool, Some((w, h, _)) if (*w, *h) == (width, height)) {
            self.pool = Some((width, height, BufferPool::new(layout.byte_len(), POOL_IDLE)));
        }
        let pool = &self.pool.as_ref().expect("pool was just set").2;
        let mut frame = Frame::from_pool(pool, PixelFormat::I420, width, height)?;
        let (cw, ch) = (width.div_ceil(2) as usize, height.div_ceil(2) as usize);
        let sources = [
            (planes[0], y_stride as usize, width as usize, height as usize),
            (planes[1], c_stride as usize, cw, ch),
            (planes[2], c_stride as usize, cw, ch),
        ];
        for ((dst, dst_stride), (src, src_stride, row_len, rows)) in frame.planes_mut().into_iter().zip(sources) {
            // SAFETY: OpenH264's planes hold `rows` rows of `src_stride` bytes (the
            // last one at least `row_len`) until the next decoder call.
            let src = unsafe { std::slice::from_raw_parts(src, (rows - 1) * src_stride + row_len) };
            copy_plane(src, src_stride, dst, dst_stride, row_len, rows);
        }
        frame.timing = Timing::for_frame(self.frames_out, self.fps);
        self.frames_out += 1;
        Ok(frame)
    }
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("access_units", &self.access_units)
            .field("frames_out", &self.frames_out)
            .finish()
    }
}

/// The `DECODING_STATE` bits, named.
fn state_names(state: sys::DECODING_STATE) -> String {
    const NAMES: [(sys::DECODING_STATE, &str); 11] = [
        (sys::dsFramePending, "frame pending"),
        (sys::dsRefLost, "reference picture lost"),
        (sys::dsBitstreamError, "bitstream error"),
        (sys::dsDepLayerLost, "dependency layer lost"),
        (sys::dsNoParamSets, "no SPS/PPS yet"),
        (sys::dsDataErrorConcealed, "data error concealed"),
        (sys::dsRefListNullPtrs, "reference list broken"),
        (sys::dsInvalidArgument, "invalid argument"),
        (sys::dsInitialOptExpected, "decoder not initialised"),
        (sys::dsOutOfMemory, "out of memory"),
        (sys::dsDstBufNeedExpan, "output buffer too small"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(bit, _)| state & bit != 0).map(|(_, name)| *name).collect();
    if names.is_empty() {
        format!("decoding state {state:#x}")
    } else {
        format!("{} (state {state:#x})", names.join(", "))
    }
}

/// Owns an `ISVCDecoder`: uninitialises and destroys it on drop.
struct RawDecoder {
    ptr: *mut sys::ISVCDecoder,
}

// SAFETY: an OpenH264 decoder has no thread affinity; `&mut self` on every
// call that reaches it keeps it to one thread at a time.
unsafe impl Send for RawDecoder {}

impl RawDecoder {
    fn create() -> Result<RawDecoder> {
        let mut ptr: *mut sys::ISVCDecoder = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let rc = unsafe { sys::source::APILoader::WelsCreateDecoder(&mut ptr) };
        if rc != 0 || ptr.is_null() {
            return Err(Error::invalid(format!("OpenH264 could not create a decoder (code {rc})")));
        }
        let raw = RawDecoder { ptr };
        let mut quiet: c_int = sys::WELS_LOG_QUIET;
        // SAFETY: the trace level option takes a pointer to an int.
        unsafe {
            (raw.vtbl().SetOption.unwrap())(raw.ptr, sys::DECODER_OPTION_TRACE_LEVEL, (&mut quiet as *mut c_int).cast())
        };
        // Zeroed parameters: AVC bitstream, error concealment off (a damaged
        // access unit is reported, not painted over), decode and reconstruct.
        let params = sys::SDecodingParam::default();
        // SAFETY: `params` is a valid, initialised struct.
        let rc: c_long = unsafe { (raw.vtbl().Initialize.unwrap())(raw.ptr, &params) };
        if rc != 0 {
            // Initialize failed: Drop must not call Uninitialize, only destroy.
            // SAFETY: created above and not yet destroyed.
            unsafe { sys::source::APILoader::WelsDestroyDecoder(raw.ptr) };
            std::mem::forget(raw);
            return Err(Error::invalid(format!("OpenH264 could not initialise a decoder (code {rc})")));
        }
        Ok(raw)
    }

    fn vtbl(&self) -> &sys::ISVCDecoderVtbl {
        // SAFETY: `ptr` points at the object whose first field is the vtable pointer,
        // both valid until WelsDestroyDecoder.
        unsafe { &**self.ptr }
    }
}

impl Drop for RawDecoder {
    fn drop(&mut self) {
        // SAFETY: created and initialised by `create`, not yet destroyed.
        unsafe {
            (self.vtbl().Uninitialize.unwrap())(self.ptr);
            sys::source::APILoader::WelsDestroyDecoder(self.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nal::AccessUnitSplitter;
    use crate::test_util::{psnr_i420, read_yuv};
    use streamkit_testkit::{require_tool, run_tool, temp_dir};

    /// Splits an Annex-B file into access units.
    pub(crate) fn access_units(data: &[u8]) -> Vec<Vec<u8>> {
        let mut splitter = AccessUnitSplitter::new();
        splitter.push(data).unwrap();
        splitter.finish();
        std::iter::from_fn(|| splitter.pop()).collect()
    }

    fn decode_all(data: &[u8]) -> Vec<Frame> {
        let mut decoder = H264Decoder::new().unwrap();
        let mut frames = Vec::new();
        for au in access_units(data) {
            frames.extend(decoder.decode(&au).unwrap());
        }
        frames.extend(decoder.flush().unwrap());
        frames
    }

    /// libx264 streams of each profile, checked frame by frame against
    /// ffmpeg's own decode of the same file.
    #[test]
    fn decodes_libx264_baseline_main_and_high_with_b_frames() {
        if !require_tool("ffmpeg") {
            return;
        }
        let dir = temp_dir("h264-decode-profiles");
        for (profile, bframes) in [("baseline", "0"), ("main", "2"), ("high", "2")] {
            let h264 = dir.join(format!("{profile}.h264"));
            let reference = dir.join(format!("{profile}.yuv"));
            let (h264_s, ref_s) = (h264.to_str().unwrap(), reference.to_str().unwrap());
            #[rustfmt::skip]
            run_tool("ffmpeg", &[
                "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-frames:v", "30",
                "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", profile, "-bf", bframes,
                "-bsf:v", "h264_mp4toannexb", "-f", "h264", h264_s,
            ]);
            run_tool("ffmpeg", &["-v", "error", "-y", "-i", h264_s, "-f", "rawvideo", "-pix_fmt", "yuv420p", ref_s]);
            let expected = read_yuv(&reference, 320, 240);
            let data = std::fs::read(&h264).unwrap();
            let sps = crate::nal::nal_units(&data).find(|n| crate::nal::nal_type(n) == crate::nal::NAL_SPS).unwrap();
            let sps = crate::nal::parse_sps(sps).unwrap();
            let frames = decode_all(&data);
            assert_eq!(frames.len(), 30, "{profile}: frames decoded");
            assert_eq!(expected.len(), 30, "{profile}: frames in ffmpeg's decode");
            let psnrs: Vec<f64> = frames.iter().zip(&expected).map(|(a, b)| psnr_i420(a, b)).collect();
            let min = psnrs.iter().cloned().fold(f64::INFINITY, f64::min);
            eprintln!(
                "{profile} (profile_idc {}, entropy {}, b-frames {bframes}): min PSNR vs ffmpeg {min:.2} dB",
                sps.profile_idc,
                if profile == "baseline" { "CAVLC" } else { "CABAC" }
            );
            assert!(min >= 45.0, "{profile}: per-frame PSNR vs ffmpeg {psnrs:?}");
            for (i, frame) in frames.iter().enumerate() {
                assert_eq!(frame.timing.frame_number, i as u64);
                assert_eq!(frame.size(), (320, 240));
            }
        }
    }

    fn encoded(frames: u64) -> Vec<Vec<u8>> {
        let config = crate::encoder::EncoderConfig::new(320, 240, Fps::new(30, 1));
        let mut encoder = crate::encoder::H264Encoder::new(config).unwrap();
        (0..frames).map(|n| encoder.encode(&crate::test_util::busy_i420(320, 240, n, false)).unwrap().data).collect()
    }

    #[test]
    fn a_p_frame_first_is_an_error_and_the_decoder_recovers_at_the_idr() {
        let units = encoded(3);
        let mut decoder = H264Decoder::new().unwrap();
        let err = decoder.decode(&units[1]).unwrap_err().to_string();
        assert!(err.contains("access unit 0"), "{err}");
        assert!(decoder.decode(&units[0]).unwrap().is_some());
        assert!(decoder.decode(&units[1]).unwrap().is_some());
        assert!(decoder.decode(&[]).unwrap().is_none());
        assert_eq!((decoder.access_units(), decoder.frames_out()), (3, 2));
    }

    #[test]
    fn output_buffers_are_pooled_and_timed() {
        let units = encoded(6);
        let mut decoder = H264Decoder::with_fps(Fps::new(60, 1)).unwrap();
        let mut pointers = Vec::new();
        for (n, au) in units.iter().enumerate() {
            let frame = decoder.decode(au).unwrap().unwrap();
            assert_eq!(frame.timing.pts, n as i64);
            assert_eq!(frame.timing.time_base, Fps::new(60, 1).frame_time_base());
            assert_eq!(frame.layout(), &PixelFormat::I420.packed_layout(320, 240));
            pointers.push(frame.data().as_ptr() as usize);
            // `frame` drops here: its buffer goes back to the pool.
        }
        assert!(pointers[1..].iter().all(|p| *p == pointers[0]), "one buffer reused: {pointers:x?}");
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut decoder = H264Decoder::new().unwrap();
        for data in [&[0u8, 0, 0, 1, 0x67, 0xff, 0xff][..], &[0xff; 100], &[0, 0, 1, 0x65, 1, 2, 3]] {
            assert!(!matches!(decoder.decode(data), Ok(Some(_))), "{data:?}");
        }
        assert!(decoder.flush().unwrap().is_empty());
    }
}
