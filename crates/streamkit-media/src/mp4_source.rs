//! `mp4:` (and `.mp4` / `.mov` / `.m4v` paths) — the design's `FileSource`:
//! H.264 video from MP4 or QuickTime files, plain or fragmented, decoded to
//! I420 frames with the container's timing.
//!
//! `streamkit run input.mp4 -o out.y4m` · `streamkit run 'clip.mp4?loop' --realtime -o …`
//!
//! The index (moov, and moof boxes of fragmented files) is read when the
//! source opens, in one streaming pass that never holds sample data; samples
//! are then read one at a time. A truncated or damaged file yields every
//! frame before the damage, then an error with the byte offset.

use std::collections::VecDeque;
use std::io::{Read, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use streamkit_container::mp4::{Mp4Reader, SampleInfo, Track};
use streamkit_core::error::IoContext;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Fps, Frame, Result, Source, SourceInfo, TimeBase, Timing};
use streamkit_h264::nal::avcc_to_annexb;
use streamkit_h264::H264Decoder;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub struct Mp4Source {
    path: PathBuf,
    file: File,
    track: Track,
    /// The error that ended the index early (truncated file), reported after the last good frame.
    damage: Option<Error>,
    /// Presentation times in display order: decoded frames come out in this order.
    display_pts: Vec<i64>,
    parameter_sets: Vec<u8>,
    decoder: H264Decoder,
    next_sample: usize,
    decoded: VecDeque<Frame>,
    frames_out: u64,
    /// Media time added per pass when looping.
    loop_offset: i64,
    looped: bool,
    flushed: bool,
    fps: Fps,
    buffers: (Vec<u8>, Vec<u8>),
}

impl Mp4Source {
    /// Opens `path` and reads its index. A file without H.264 video is an
    /// error naming the codecs it has.
    pub fn open(path: impl AsRef<Path>, looped: bool) -> Result<Mp4Source> {
        let path = path.as_ref().to_path_buf();
        let (file, damage) = read_index(&path)?;
        let track = match file.video_track() {
            Ok(track) => track.clone(),
            // Damage before the index (a file cut before its moov) explains a missing track best.
            Err(e) => {
                let cause = match damage {
                    Some(damage) if file.tracks.is_empty() => damage,
                    _ => e,
                };
                return Err(cause.in_stage(path.display().to_string()));
            }
        };
        if track.samples.is_empty() {
            return Err(
                damage.unwrap_or_else(|| Error::invalid(format!("{}: the video track has no frames", path.display())))
            );
        }
        let avc =
            track.avc.as_ref().ok_or_else(|| Error::invalid(format!("{}: no avcC in the track", path.display())))?;
        let mut display_pts: Vec<i64> = track.samples.iter().map(|s| s.pts).collect();
        display_pts.sort_unstable();
        let fps = frame_rate(&track);
        let std_file = std::fs::File::open(&path).context(|| format!("opening {}", path.display()))?;
        Ok(Mp4Source {
            parameter_sets: avc.parameter_sets_annexb(),
            decoder: H264Decoder::with_fps(fps)?,
            file: File::from_std(std_file),
            path,
            track,
            damage,
            display_pts,
            next_sample: 0,
            decoded: VecDeque::new(),
            frames_out: 0,
            loop_offset: 0,
            looped,
            flushed: false,
            fps,
            buffers: (Vec::new(), Vec::new()),
        })
    }

    /// `mp4:PATH?loop`.
    pub fn from_uri(uri: &Uri) -> Result<Mp4Source> {
        let mut o = uri.options();
        let looped = o.flag("loop")?.unwrap_or(false);
        o.finish()?;
        Mp4Source::open(&uri.body, looped)
    }

    /// Reads, converts to Annex-B and decodes the next sample.
    async fn decode_next_sample(&mut self) -> Result<()> {
        let sample: SampleInfo = self.track.samples[self.next_sample];
        self.next_sample += 1;
        let what = || format!("reading {}", self.path.display());
        let (avcc, annexb) = &mut self.buffers;
        avcc.resize(sample.size as usize, 0);
        self.file.seek(SeekFrom::Start(sample.offset)).await.context(what)?;
        self.file.read_exact(avcc).await.context(what)?;
        annexb.clear();
        if sample.keyframe {
            annexb.extend_from_slice(&self.parameter_sets);
        }
        let length_size = self.track.avc.as_ref().map_or(4, |a| a.length_size as usize);
        avcc_to_annexb(avcc, length_size, annexb)
            .map_err(|e| Error::malformed(self.path.display().to_string(), sample.offset, e.to_string()))?;
        if let Some(frame) = self.decoder.decode(annexb)? {
            self.decoded.push_back(frame);
        }
        Ok(())
    }

    fn restart(&mut self) {
        let last = self.track.samples.iter().map(|s| s.pts + s.duration as i64).max().unwrap_or(0);
        let first = self.display_pts.first().copied().unwrap_or(0);
        self.loop_offset += last - first;
        self.next_sample = 0;
        self.flushed = false;
    }

    fn stamp(&mut self, mut frame: Frame) -> Frame {
        let pass = self.display_pts.len() as u64;
        let index = (self.frames_out % pass) as usize;
        let pts = self.display_pts[index] - self.display_pts[0] + self.loop_offset;
        let mut timing = Timing::for_frame(self.frames_out, self.fps);
        timing.pts = pts;
        timing.time_base = TimeBase::new(1, self.track.timescale);
        frame.timing = timing;
        frame.metadata.insert("source_id", self.path.display().to_string());
        self.frames_out += 1;
        frame
    }
}

#[async_trait]
impl Source for Mp4Source {
    fn info(&self) -> SourceInfo {
        SourceInfo::new(format!("mp4:{}", self.path.display()))
            .sized(self.track.width, self.track.height)
            .with_fps(self.fps)
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.decoded.pop_front() {
                return Ok(Some(self.stamp(frame)));
            }
            if self.next_sample < self.track.samples.len() {
                self.decode_next_sample().await?;
            } else if !self.flushed {
                self.flushed = true;
                self.decoded.extend(self.decoder.flush()?);
            } else if let Some(damage) = self.damage.take() {
                return Err(damage);
            } else if self.looped {
                self.restart();
            } else {
                return Ok(None);
            }
        }
    }
}

/// One streaming pass over the file: boxes are parsed, sample data is skipped.
fn read_index(path: &Path) -> Result<(streamkit_container::mp4::Mp4File, Option<Error>)> {
    let mut file = std::fs::File::open(path).context(|| format!("opening {}", path.display()))?;
    let mut reader = Mp4Reader::new();
    let mut chunk = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut chunk).context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        if let Err(e) = reader.push(&chunk[..n]) {
            let (mp4, _) = reader.finish();
            return Ok((mp4, Some(e)));
        }
    }
    Ok(reader.finish())
}

/// The track's frame rate from its typical sample duration.
fn frame_rate(track: &Track) -> Fps {
    let mut durations: Vec<u32> = track.samples.iter().map(|s| s.duration).filter(|d| *d > 0).collect();
    durations.sort_unstable();
    match durations.get(durations.len() / 2) {
        Some(&d) => {
            let fps = Fps::new(track.timescale, d);
            let common = [(24000, 1001), (30000, 1001), (60000, 1001)];
            common
                .into_iter()
                .map(|(n, d)| Fps::new(n, d))
                .find(|c| (c.as_f64() - fps.as_f64()).abs() < 0.01)
                .unwrap_or_else(|| reduce(fps))
        }
        None => Fps::new(30, 1),
    }
}

fn reduce(fps: Fps) -> Fps {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(fps.num, fps.den).max(1);
    Fps::new(fps.num / g, fps.den / g)
}
