//! [`AnnexBSource`]: frames from a raw H.264 (`.h264`, Annex-B) file.
//!
//! The file is read in chunks with `tokio::fs`, cut into access units by
//! [`nal::AccessUnitSplitter`] and decoded by [`H264Decoder`]. A raw stream
//! has no timestamps, so frame `n` is timed at `n / fps` (30 fps unless
//! given). Damaged or truncated data: the frames before the damage come out,
//! then an error that names the byte offset of the access unit that failed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use streamkit_core::error::IoContext;
use streamkit_core::{Error, Fps, Frame, Result, Source, SourceInfo};

use crate::decoder::H264Decoder;
use crate::nal::{self, AccessUnitSplitter, Sps};

/// Bytes read per call.
const CHUNK: usize = 256 << 10;
/// How far into the file the first SPS must be.
const SPS_SEARCH_LIMIT: usize = 4 << 20;

/// A [`Source`] that decodes an Annex-B H.264 file.
pub struct AnnexBSource {
    path: PathBuf,
    file: tokio::fs::File,
    info: SourceInfo,
    sps: Sps,
    splitter: AccessUnitSplitter,
    decoder: H264Decoder,
    buf: Vec<u8>,
    /// File offset of the next access unit the splitter returns.
    next_offset: u64,
    /// Frames decoded and not yet returned (display order).
    ready: VecDeque<Frame>,
    /// An error to report once `ready` is empty.
    error: Option<Error>,
    read_all: bool,
    finished: bool,
    done: bool,
}

impl AnnexBSource {
    /// Opens `path`, timing frames at 30 fps.
    pub async fn open(path: impl AsRef<Path>) -> Result<AnnexBSource> {
        AnnexBSource::open_with_fps(path, Fps::new(30, 1)).await
    }

    /// Opens `path` and reads up to its first SPS (for [`Source::info`]'s size).
    pub async fn open_with_fps(path: impl AsRef<Path>, fps: Fps) -> Result<AnnexBSource> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let mut file = tokio::fs::File::open(&path).await.context(|| format!("opening {shown}"))?;
        let mut buf = vec![0; CHUNK];
        let mut head = Vec::new();
        let mut read_all;
        let sps = loop {
            let n = file.read(&mut buf).await.context(|| format!("reading {shown}"))?;
            head.extend_from_slice(&buf[..n]);
            read_all = n == 0;
            if let Some(sps) = first_sps(&head, read_all, &shown)? {
                break sps;
            }
            if read_all || head.len() >= SPS_SEARCH_LIMIT {
                return Err(Error::malformed(
                    shown,
                    0,
                    format!("no H.264 sequence parameter set in the first {} bytes", head.len()),
                ));
            }
        };
        let info = SourceInfo::new(format!("h264:{shown} {}x{}@{fps}", sps.width, sps.height))
            .sized(sps.width, sps.height)
            .with_fps(fps);
        let mut splitter = AccessUnitSplitter::new();
        splitter.push(&head).map_err(|e| Error::malformed(&shown, 0, e.to_string()))?;
        Ok(AnnexBSource {
            next_offset: leading_garbage(&head) as u64,
            path,
            file,
            info,
            sps,
            splitter,
            decoder: H264Decoder::with_fps(fps)?,
            buf,
            ready: VecDeque::new(),
            error: None,
            read_all,
            finished: false,
            done: false,
        })
    }

    /// The first sequence parameter set of the file.
    pub fn sps(&self) -> &Sps {
        &self.sps
    }

    fn fail(&mut self, offset: u64, message: String) {
        self.error = Some(Error::malformed(self.path.display().to_string(), offset, message));
        self.done = true;
    }

    /// Decodes one access unit starting at `offset`, queueing what comes out.
    fn decode(&mut self, au: &[u8], offset: u64) {
        match self.decoder.decode(au) {
            Ok(frame) => self.ready.extend(frame),
            Err(e) => {
                // The pictures decoded before the damage still come out first.
                if let Ok(frames) = self.decoder.flush() {
                    self.ready.extend(frames);
                }
                self.fail(offset, e.to_string());
            }
        }
    }
}

/// The first complete SPS in `head` (the last NAL unit counts only at the
/// end of the file: it may be cut short).
fn first_sps(head: &[u8], eof: bool, shown: &str) -> Result<Option<Sps>> {
    let units: Vec<&[u8]> = nal::nal_units(head).collect();
    let complete = if eof { units.len() } else { units.len().saturating_sub(1) };
    match units[..complete].iter().find(|u| nal::nal_type(u) == nal::NAL_SPS) {
        Some(unit) => {
            let offset = (unit.as_ptr() as usize - head.as_ptr() as usize) as u64;
            nal::parse_sps(unit).map(Some).map_err(|e| Error::malformed(shown, offset, format!("bad SPS: {e}")))
        }
        None => Ok(None),
    }
}

/// Bytes before the first start code, which the splitter drops.
fn leading_garbage(head: &[u8]) -> usize {
    match head.windows(3).position(|w| w == [0, 0, 1]) {
        Some(i) if i > 0 && head[i - 1] == 0 => i - 1,
        Some(i) => i,
        None => head.len(),
    }
}

#[async_trait]
impl Source for AnnexBSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            if let Some(error) = self.error.take() {
                return Err(error);
            }
            if self.done {
                return Ok(None);
            }
            if let Some(au) = self.splitter.pop() {
                let offset = self.next_offset;
                self.next_offset += au.len() as u64;
                self.decode(&au, offset);
                continue;
            }
            if self.finished {
                match self.decoder.flush() {
                    Ok(frames) => {
                        self.ready.extend(frames);
                        self.done = true;
                    }
                    Err(e) => self.fail(self.next_offset, e.to_string()),
                }
                continue;
            }
            if self.read_all {
                self.splitter.finish();
                self.finished = true;
                continue;
            }
            let shown = self.path.display();
            let n = self.file.read(&mut self.buf).await.context(|| format!("reading {shown}"))?;
            if n == 0 {
                self.read_all = true;
            } else if let Err(e) = self.splitter.push(&self.buf[..n]) {
                // An access unit over the splitter's size cap was dropped.
                let offset = self.next_offset;
                self.fail(offset, e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{EncoderConfig, H264Encoder};
    use crate::test_util::{busy_i420, psnr_i420, read_yuv};
    use streamkit_core::TimeBase;
    use streamkit_testkit::{require_tool, run_tool, temp_dir};

    /// Our encoder's access units for `frames` frames of the test pattern.
    fn encode(width: u32, height: u32, frames: u64) -> Vec<Vec<u8>> {
        let config = EncoderConfig { keyframe_interval: 30, ..EncoderConfig::new(width, height, Fps::new(30, 1)) };
        let mut encoder = H264Encoder::new(config).unwrap();
        (0..frames).map(|n| encoder.encode(&busy_i420(width, height, n, false)).unwrap().data).collect()
    }

    async fn read_all(source: &mut AnnexBSource) -> (Vec<Frame>, Option<Error>) {
        let mut frames = Vec::new();
        loop {
            match source.next_frame().await {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn reads_our_stream_in_small_chunks() {
        let dir = temp_dir("h264-annexb-own");
        let path = dir.join("own.h264");
        let units = encode(640, 360, 45);
        std::fs::write(&path, units.concat()).unwrap();
        let mut source = AnnexBSource::open_with_fps(&path, Fps::new(25, 1)).await.unwrap();
        source.buf.truncate(1000); // many reads, access units split across them
        let info = source.info();
        assert_eq!((info.width, info.height, info.fps), (Some(640), Some(360), Some(Fps::new(25, 1))));
        assert!(info.description.contains("640x360"), "{}", info.description);
        let (frames, error) = read_all(&mut source).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(frames.len(), 45);
        for (n, frame) in frames.iter().enumerate() {
            assert_eq!((frame.timing.pts, frame.timing.time_base), (n as i64, TimeBase::new(1, 25)));
            assert_eq!(frame.timing.frame_number, n as u64);
            let psnr = psnr_i420(frame, &busy_i420(640, 360, n as u64, false));
            assert!(psnr > 35.0, "frame {n}: {psnr:.2} dB");
        }
        assert!(source.next_frame().await.unwrap().is_none(), "stays at the end");
        source.close().await.unwrap();
    }

    /// A libx264 high-profile file with B frames, in display order.
    #[tokio::test]
    async fn reads_a_libx264_file() {
        if !require_tool("ffmpeg") {
            return;
        }
        let dir = temp_dir("h264-annexb-x264");
        let (h264, yuv) = (dir.join("x.h264"), dir.join("x.yuv"));
        let (h264_s, yuv_s) = (h264.to_str().unwrap(), yuv.to_str().unwrap());
        #[rustfmt::skip]
        run_tool("ffmpeg", &[
            "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-frames:v", "60",
            "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-f", "h264", h264_s,
        ]);
        run_tool("ffmpeg", &["-v", "error", "-y", "-i", h264_s, "-f", "rawvideo", "-pix_fmt", "yuv420p", yuv_s]);
        let mut source = AnnexBSource::open(&h264).await.unwrap();
        assert_eq!(source.sps().profile_idc, 100);
        assert_eq!((source.info().width, source.info().height), (Some(320), Some(240)));
        let (frames, error) = read_all(&mut source).await;
        assert!(error.is_none(), "{error:?}");
        let expected = read_yuv(&yuv, 320, 240);
        assert_eq!(frames.len(), expected.len());
        for (n, (a, b)) in frames.iter().zip(&expected).enumerate() {
            assert!(psnr_i420(a, b) >= 45.0, "frame {n}");
        }
    }

    #[tokio::test]
    async fn truncated_file_gives_the_frames_before_then_an_error_with_the_offset() {
        let dir = temp_dir("h264-annexb-truncated");
        let path = dir.join("cut.h264");
        let units = encode(320, 240, 30);
        let offset: usize = units[..20].iter().map(Vec::len).sum();
        let mut data = units.concat();
        data.truncate(offset + units[20].len() / 2);
        std::fs::write(&path, &data).unwrap();
        let mut source = AnnexBSource::open(&path).await.unwrap();
        let (frames, error) = read_all(&mut source).await;
        let error = error.expect("truncation is reported").to_string();
        eprintln!("{} frames, then: {error}", frames.len());
        assert_eq!(frames.len(), 20);
        assert!(error.contains(&format!("at byte {offset}")), "{error}");
        assert!(error.contains("cut.h264"), "{error}");
        assert!(source.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn corrupt_access_unit_gives_the_frames_before_then_an_error_with_the_offset() {
        let dir = temp_dir("h264-annexb-corrupt");
        let path = dir.join("bad.h264");
        let units = encode(320, 240, 30);
        let offset: usize = units[..10].iter().map(Vec::len).sum();
        let mut data = units.concat();
        // Garbage over the slice data of access unit 10 (past its header).
        let len = units[10].len();
        for (i, b) in data[offset + 8..offset + len].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) | 0x80;
        }
        std::fs::write(&path, &data).unwrap();
        let mut source = AnnexBSource::open(&path).await.unwrap();
        let (frames, error) = read_all(&mut source).await;
        let error = error.expect("corruption is reported").to_string();
        eprintln!("{} frames, then: {error}", frames.len());
        assert_eq!(frames.len(), 10);
        assert!(error.contains(&format!("at byte {offset}")), "{error}");
    }

    #[tokio::test]
    async fn a_file_without_sps_is_refused_at_open() {
        let dir = temp_dir("h264-annexb-nosps");
        let path = dir.join("nosps.h264");
        let units = encode(320, 240, 3);
        // Only the P frames (no SPS/PPS).
        std::fs::write(&path, units[1..].concat()).unwrap();
        let err = AnnexBSource::open(&path).await.err().unwrap().to_string();
        assert!(err.contains("no H.264 sequence parameter set"), "{err}");
        let err = AnnexBSource::open(dir.join("missing.h264")).await.err().unwrap().to_string();
        assert!(err.contains("missing.h264"), "{err}");
    }
}
