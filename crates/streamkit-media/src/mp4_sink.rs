//! `mp4:` (and any `.mp4` path) — the design's `FileSink`: H.264 in MP4.
//!
//! Fragmented by default: the file is valid after every fragment (one per
//! keyframe interval), so a killed process leaves a playable file up to the
//! last complete fragment. `faststart` writes a plain MP4 with its index
//! first instead (only valid once closed).
//!
//! `streamkit run 'test:smpte?size=1280x720&fps=30' --frames 300 -o out.mp4`

use std::io::SeekFrom;
use std::path::PathBuf;

use async_trait::async_trait;
use streamkit_container::mp4::{Finalize, Mp4Writer, Sample, DEFAULT_TIMESCALE};
use streamkit_core::error::IoContext;
use streamkit_core::sink::StreamInfo;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Frame, Result, Sink};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use streamkit_h264::EncodedFrame;

use crate::encode::{pts_90k, EncodeOptions, EncodeStage};

/// `FileSink(path, codec='h264', bitrate=…)` options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mp4SinkOptions {
    pub encode: EncodeOptions,
    /// A plain MP4 with the index (moov) first, written at close.
    pub faststart: bool,
}

pub struct Mp4Sink {
    path: PathBuf,
    options: Mp4SinkOptions,
    encode: EncodeStage,
    mp4: Option<Mp4Writer>,
    file: Option<BufWriter<File>>,
    buffer: Vec<u8>,
}

impl Mp4Sink {
    pub fn create(path: impl Into<PathBuf>, options: Mp4SinkOptions) -> Result<Mp4Sink> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(Error::invalid(format!("{}: folder {} does not exist", path.display(), parent.display())));
            }
        }
        let encode = EncodeStage::new(options.encode, format!("mp4:{}", path.display()));
        Ok(Mp4Sink { path, options, encode, mp4: None, file: None, buffer: Vec::new() })
    }

    /// `mp4:PATH?bitrate=8000000&keyint=2&faststart&codec=h264`.
    pub fn from_uri(uri: &Uri) -> Result<Mp4Sink> {
        let mut o = uri.options();
        let defaults = EncodeOptions::default();
        let options = Mp4SinkOptions {
            encode: EncodeOptions {
                bitrate_bps: o.parse("bitrate", "bits per second, e.g. 8000000")?.unwrap_or(defaults.bitrate_bps),
                keyframe_seconds: o.parse("keyint", "seconds between keyframes, e.g. 2")?,
                encoders: o.parse("encoders", "a count, e.g. 2 (default: one per core)")?,
                preset: o.parse("preset", "fast, medium or slow")?.unwrap_or_default(),
            },
            faststart: o.flag("faststart")?.unwrap_or(false),
        };
        if let Some(codec) = o.string("codec").filter(|c| !c.eq_ignore_ascii_case("h264")) {
            return Err(Error::uri(&uri.raw, format!("codec '{codec}' is not supported; supported: h264")));
        }
        o.finish()?;
        Mp4Sink::create(&uri.body, options)
    }

    async fn open(&mut self) -> Result<()> {
        let file = File::create(&self.path).await.context(|| format!("creating {}", self.path.display()))?;
        self.file = Some(BufWriter::with_capacity(1 << 20, file));
        let frames_in_ten_minutes = (self.encode.fps().as_f64() * 600.0) as u64;
        self.mp4 = Some(if self.options.faststart {
            Mp4Writer::faststart(DEFAULT_TIMESCALE, Mp4Writer::suggested_moov_reserve(frames_in_ten_minutes))
        } else {
            Mp4Writer::fragmented(DEFAULT_TIMESCALE)
        });
        Ok(())
    }

    /// Writes what the muxer produced. In the fragmented layout that is a
    /// whole fragment, pushed to the OS at once, so that a killed process
    /// loses at most the fragment in progress.
    async fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let file = self.file.as_mut().expect("opened");
        let what = || format!("writing {}", self.path.display());
        file.write_all(&self.buffer).await.context(what)?;
        if !self.options.faststart {
            file.flush().await.context(what)?;
        }
        self.buffer.clear();
        Ok(())
    }

    async fn write_samples(&mut self, encoded: Vec<EncodedFrame>) -> Result<()> {
        let duration = (self.encode.fps().frame_ns() as u128 * 90_000 / 1_000_000_000) as u32;
        for encoded in encoded {
            let pts = pts_90k(&encoded.timing);
            let sample = Sample::annexb(&encoded.data, pts, pts, duration, encoded.keyframe);
            let mp4 = self.mp4.as_mut().expect("opened");
            mp4.write(&sample, &mut self.buffer).map_err(|e| e.in_stage(self.describe()))?;
            self.flush_buffer().await?;
        }
        Ok(())
    }

    /// Rewrites the start of the file or moves the samples behind a new
    /// head, as the faststart layout asks.
    async fn finalize(&mut self, finalize: Finalize) -> Result<()> {
        let what = || format!("finalising {}", self.path.display());
        let mut file = self.file.take().expect("opened");
        file.flush().await.context(what)?;
        let mut file = file.into_inner();
        match finalize {
            Finalize::Complete => {}
            Finalize::Overwrite { bytes } => {
                file.seek(SeekFrom::Start(0)).await.context(what)?;
                file.write_all(&bytes).await.context(what)?;
            }
            Finalize::Relocate { head, data_start } => {
                let tmp = self.path.with_extension("mp4.tmp");
                let mut out = BufWriter::new(File::create(&tmp).await.context(what)?);
                out.write_all(&head).await.context(what)?;
                let mut data = File::open(&self.path).await.context(what)?;
                data.seek(SeekFrom::Start(data_start)).await.context(what)?;
                let mut chunk = vec![0; 1 << 20];
                loop {
                    let n = data.read(&mut chunk).await.context(what)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&chunk[..n]).await.context(what)?;
                }
                out.flush().await.context(what)?;
                tokio::fs::rename(&tmp, &self.path).await.context(what)?;
            }
        }
        file.flush().await.context(what)
    }
}

#[async_trait]
impl Sink for Mp4Sink {
    fn describe(&self) -> String {
        format!("mp4:{}", self.path.display())
    }

    fn input_format(&self) -> Option<streamkit_core::PixelFormat> {
        Some(streamkit_core::PixelFormat::I420) // what the encoder reads
    }

    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.encode.set_stream_info(info);
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.mp4.is_none() {
            self.open().await?;
        }
        let ready = self.encode.push(frame, false).await?;
        self.write_samples(ready).await
    }

    async fn close(&mut self) -> Result<()> {
        if self.mp4.is_none() {
            tracing::warn!("{}: no frames arrived; no file written", self.describe());
            return Ok(());
        }
        // Finalised even when an encoder failed, so what was written stays a valid file.
        let written = match self.encode.finish().await {
            Ok(rest) => self.write_samples(rest).await,
            Err(e) => Err(e),
        };
        let mut mp4 = self.mp4.take().expect("checked above");
        let finalize = mp4.finish(&mut self.buffer)?;
        self.flush_buffer().await?;
        self.finalize(finalize).await?;
        written
    }
}
