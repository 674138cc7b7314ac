//! `hls:` — the design's `HLSSink`: H.264 in MPEG-TS segments with a live
//! (sliding-window) playlist, keyframes on segment boundaries, atomic file
//! writes, `#EXT-X-ENDLIST` on close, optionally served over HTTP.
//!
//! `streamkit run test:ball --frames 300 -o 'hls:out/live?segment_duration=2&playlist_size=5'`
//! writes `out/live/index.m3u8` and `out/live/segment_NNNNN.ts`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use streamkit_core::sink::StreamInfo;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Frame, Result, Sink, Timing};
use streamkit_h264::EncodedFrame;
use streamkit_hls::{EncodedUnit, HlsFormat, HlsOptions, HlsWriter, SegmentClock, ServerHandle};

use crate::encode::{pts_90k, wallclock_ns, EncodeOptions, EncodeStage};

/// Everything `HLSSink(output_dir, segment_duration, playlist_size, bitrate)` takes.
#[derive(Clone, Debug, PartialEq)]
pub struct HlsSinkOptions {
    pub segment_duration: Duration,
    /// Segments kept in the live playlist (older files are deleted); 0 keeps all.
    pub playlist_size: usize,
    pub encode: EncodeOptions,
    /// Serve the folder over HTTP at this address while writing.
    pub serve: Option<SocketAddr>,
    /// Required as `?token=` or `Authorization: Bearer` when serving.
    pub token: Option<String>,
    /// MPEG-TS (default) or fMP4/CMAF segments.
    pub format: HlsFormat,
}

impl Default for HlsSinkOptions {
    fn default() -> Self {
        HlsSinkOptions {
            segment_duration: Duration::from_secs(2),
            playlist_size: 10,
            encode: EncodeOptions::default(),
            serve: None,
            token: None,
            format: HlsFormat::Ts,
        }
    }
}

pub struct HlsSink {
    dir: PathBuf,
    options: HlsSinkOptions,
    encode: EncodeStage,
    writer: Option<HlsWriter>,
    /// Segment boundaries as frames go into the encoders, which run ahead
    /// of the writer.
    clock: SegmentClock,
    server: Option<ServerHandle>,
    /// (wall clock, media time) of the first frame: later frames' dates
    /// advance with media time, so a file rendered faster than real time
    /// still carries dates 2 s apart for 2 s segments.
    date_anchor: Option<(u64, i64)>,
}

impl HlsSink {
    pub fn new(output_dir: impl Into<PathBuf>, options: HlsSinkOptions) -> HlsSink {
        let dir = output_dir.into();
        let encode = EncodeStage::new(options.encode, format!("hls:{}", dir.display()));
        let clock = SegmentClock::new(options.segment_duration);
        HlsSink { dir, options, encode, writer: None, clock, server: None, date_anchor: None }
    }

    /// `hls:DIR?segment_duration=2&playlist_size=10&bitrate=8000000&format=ts|fmp4&serve=127.0.0.1:8080&token=T&encoders=2&preset=medium`.
    pub fn from_uri(uri: &Uri) -> Result<HlsSink> {
        let mut o = uri.options();
        let defaults = HlsSinkOptions::default();
        let segment: Option<f64> = o.parse("segment_duration", "seconds, e.g. 2")?;
        let options = HlsSinkOptions {
            segment_duration: match segment {
                Some(s) if s > 0.0 && s <= 60.0 => Duration::from_secs_f64(s),
                Some(s) => {
                    return Err(Error::uri(&uri.raw, format!("segment_duration={s} must be in (0, 60] seconds")))
                }
                None => defaults.segment_duration,
            },
            playlist_size: o.parse("playlist_size", "a segment count (0 keeps all)")?.unwrap_or(defaults.playlist_size),
            encode: EncodeOptions {
                bitrate_bps: o
                    .parse("bitrate", "bits per second, e.g. 4000000")?
                    .unwrap_or(defaults.encode.bitrate_bps),
                keyframe_seconds: None,
                encoders: o.parse("encoders", "a count, e.g. 2 (default: one per core)")?,
                preset: o.parse("preset", "fast, medium or slow")?.unwrap_or_default(),
            },
            serve: o.parse("serve", "an address, e.g. 127.0.0.1:8080")?,
            token: o.string("token").map(str::to_string),
            format: match o.string("format") {
                None | Some("ts") => HlsFormat::Ts,
                Some("fmp4" | "cmaf") => HlsFormat::Fmp4,
                Some(other) => return Err(Error::uri(&uri.raw, format!("format={other}: use ts or fmp4"))),
            },
        };
        o.finish()?;
        if uri.body.is_empty() {
            return Err(Error::uri(&uri.raw, "hls: needs an output folder, e.g. hls:out/live"));
        }
        Ok(HlsSink::new(&uri.body, options))
    }

    /// Where the server listens, once the first frame has started it.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.local_addr())
    }

    /// The frame's date for `#EXT-X-PROGRAM-DATE-TIME`: its PTP time when a
    /// synchronised clock stamped it, else the first frame's capture date
    /// advanced by media time.
    fn program_date_ns(&mut self, timing: &Timing) -> Option<u64> {
        if let Some(ptp) = timing.ptp_time_ns {
            return Some(ptp);
        }
        let pts_ns = timing.pts_ns();
        let (wall, first_pts) = match self.date_anchor {
            Some(anchor) => anchor,
            None => *self.date_anchor.insert((wallclock_ns(timing)?, pts_ns)),
        };
        Some((wall as i64 + (pts_ns - first_pts)).max(0) as u64)
    }

    async fn write_units(&mut self, encoded: Vec<EncodedFrame>) -> Result<()> {
        for encoded in encoded {
            let pts = pts_90k(&encoded.timing).max(0) as u64;
            let wallclock_ns = self.program_date_ns(&encoded.timing);
            let unit = EncodedUnit {
                data: encoded.data,
                pts_90k: pts,
                dts_90k: pts,
                keyframe: encoded.keyframe,
                wallclock_ns,
            };
            self.writer.as_mut().expect("started").write_unit(unit).await?;
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<()> {
        let options = HlsOptions {
            segment_duration: self.options.segment_duration,
            playlist_size: self.options.playlist_size,
            format: self.options.format,
        };
        self.writer = Some(HlsWriter::create(&self.dir, options).await?);
        if let Some(addr) = self.options.serve {
            let server = streamkit_hls::serve(self.dir.clone(), addr, self.options.token.clone()).await?;
            tracing::info!("serving {} at http://{}/", self.dir.display(), server.local_addr());
            eprintln!("watch at http://{}/", server.local_addr());
            self.server = Some(server);
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for HlsSink {
    fn describe(&self) -> String {
        format!("hls:{}", self.dir.display())
    }

    fn input_format(&self) -> Option<streamkit_core::PixelFormat> {
        Some(streamkit_core::PixelFormat::I420) // what the encoder reads
    }

    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.encode.set_stream_info(info);
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.writer.is_none() {
            self.start().await?;
        }
        let keyframe = self.clock.next_is_keyframe(pts_90k(&frame.timing).max(0) as u64);
        let ready = self.encode.push(frame, keyframe).await?;
        self.write_units(ready).await
    }

    async fn close(&mut self) -> Result<()> {
        if self.writer.is_some() {
            let rest = self.encode.finish().await;
            // The playlist is ended even when an encoder failed.
            let written = match rest {
                Ok(units) => self.write_units(units).await,
                Err(e) => Err(e),
            };
            self.writer.as_mut().expect("checked above").finish().await?;
            written?;
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        Ok(())
    }
}
