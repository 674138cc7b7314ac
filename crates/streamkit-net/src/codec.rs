//! Frames to chunks and back: the compression modes of the wire format.
//!
//! [`FrameCompressor`] turns a frame into an [`EncodedChunk`] once; a
//! [`crate::NetworkSink`] shares that chunk (behind an `Arc`) with every
//! consumer, so eight consumers of an H.264 stream cost one encode.
//! [`FrameDecompressor`] turns received [`WireFrame`]s back into frames with
//! their original timing and metadata.
//!
//! | compression | payload | decoded as |
//! |---|---|---|
//! | `none` | the packed planes, as in memory | the sender's pixel format, zero copy into a pooled buffer |
//! | `jpeg` | baseline JPEG (quality 85 by default; 4:2:0 below quality 90, 4:4:4 from 90; alpha dropped) | `rgba` (opaque), or `gray8` for gray input |
//! | `h264` | one Annex-B access unit (OpenH264, constrained baseline) | `i420` |

use std::io::IoSlice;
use std::sync::OnceLock;

use streamkit_core::convert::convert_into;
use streamkit_core::frame::{BufferPool, MAX_DIMENSION};
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result};
use streamkit_h264::{EncoderConfig, H264Decoder, H264Encoder};

use crate::wire::{self, Compression, FrameHeader, WireFrame};

/// How a sink compresses frames (the `compression=`, `quality=`, `bitrate=`
/// and `keyframe=` URI options).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressOptions {
    pub compression: Compression,
    /// JPEG quality, 1..=100 (default 85).
    pub jpeg_quality: u8,
    /// H.264 target bitrate in bits per second (default 8 Mb/s).
    pub bitrate_bps: u32,
    /// Seconds between H.264 keyframes (default 2); joining consumers get one at once anyway.
    pub keyframe_seconds: Option<f64>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            compression: Compression::None,
            jpeg_quality: 85,
            bitrate_bps: 8_000_000,
            keyframe_seconds: None,
        }
    }
}

impl CompressOptions {
    pub fn new(compression: Compression) -> CompressOptions {
        CompressOptions { compression, ..CompressOptions::default() }
    }
}

enum Payload {
    /// A raw frame's packed pixels, shared with the frame (no copy).
    Frame(Frame),
    Bytes(Vec<u8>),
}

/// One frame as it goes on the wire: chunk head, payload and payload CRC,
/// kept apart so that they can be written with one vectored write and no
/// copy of the pixels.
pub struct EncodedChunk {
    head: Vec<u8>,
    payload: Payload,
    /// The payload CRC, computed when a consumer first sends the chunk
    /// inline: a raw frame that only goes through shared memory never needs it.
    crc: OnceLock<[u8; 4]>,
    /// A raw frame's header, for sending it through shared memory instead.
    raw_header: Option<FrameHeader>,
    /// Decoding can start at this chunk.
    pub keyframe: bool,
    pub frame_number: u64,
    pub capture_time_ns: u64,
    /// The sender's sequence number (a gap tells a consumer task that its
    /// queue dropped a chunk, so an H.264 consumer must wait for a keyframe).
    pub(crate) seq: u64,
}

impl EncodedChunk {
    /// The compressed (or raw) picture.
    pub fn payload(&self) -> &[u8] {
        match &self.payload {
            Payload::Frame(f) => f.data(),
            Payload::Bytes(b) => b,
        }
    }

    /// The three pieces in wire order.
    pub fn parts(&self) -> [&[u8]; 3] {
        let crc = self.crc.get_or_init(|| crc32fast::hash(self.payload()).to_be_bytes());
        [&self.head, self.payload(), crc]
    }

    /// A raw frame's header and packed pixels (`None` for JPEG and H.264).
    pub fn raw(&self) -> Option<(&FrameHeader, &[u8])> {
        self.raw_header.as_ref().map(|h| (h, self.payload()))
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload().len() + wire::CRC_LEN
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The chunk in one buffer (tests, benchmarks).
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// Writes `parts` completely, with vectored writes (one system call for a
/// whole chunk on a socket).
pub async fn write_all_vectored<W>(writer: &mut W, parts: &[&[u8]]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    use tokio::io::AsyncWriteExt;
    let mut slices: Vec<IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = writer.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Compresses frames into chunks. CPU-heavy for JPEG and H.264: callers in
/// async code run [`FrameCompressor::compress`] on a blocking thread.
pub struct FrameCompressor {
    options: CompressOptions,
    fps: Fps,
    h264: Option<H264Encoder>,
    /// RGBA conversion target for JPEG input in YUV, reused frame to frame.
    scratch: Option<Frame>,
    encodes: u64,
    last_jpeg_len: usize,
}

impl FrameCompressor {
    pub fn new(options: CompressOptions) -> FrameCompressor {
        FrameCompressor { options, fps: Fps::new(30, 1), h264: None, scratch: None, encodes: 0, last_jpeg_len: 0 }
    }

    pub fn options(&self) -> &CompressOptions {
        &self.options
    }

    /// The stream's rate, which H.264 rate control budgets for.
    pub fn set_fps(&mut self, fps: Fps) {
        self.fps = fps;
    }

    /// Frames compressed so far (H.264 and JPEG encodes, or raw chunks built).
    pub fn encodes(&self) -> u64 {
        self.encodes
    }

    /// One frame to one chunk. `force_keyframe` makes an H.264 frame an IDR
    /// (a consumer joined or lost frames); other modes are all keyframes.
    pub fn compress(&mut self, frame: &Frame, force_keyframe: bool) -> Result<EncodedChunk> {
        let chunk = match self.options.compression {
            Compression::None => self.raw(frame)?,
            Compression::Jpeg => self.jpeg(frame)?,
            Compression::H264 => self.h264(frame, force_keyframe)?,
        };
        self.encodes += 1;
        Ok(chunk)
    }

    fn raw(&mut self, frame: &Frame) -> Result<EncodedChunk> {
        let packed = frame.clone().into_packed();
        let header = FrameHeader::raw(&packed);
        let head = wire::frame_chunk_head(&header, packed.data().len())?;
        let mut chunk = chunk(head, Payload::Frame(packed), None, &header);
        chunk.raw_header = Some(header);
        Ok(chunk)
    }

    fn jpeg(&mut self, frame: &Frame) -> Result<EncodedChunk> {
        use jpeg_encoder::{ColorType, Encoder};
        let (w, h) = frame.size();
        let (source, color, format) = match frame.format() {
            PixelFormat::Rgba8Premul => (frame.clone().into_packed(), ColorType::Rgba, PixelFormat::Rgba8Premul),
            PixelFormat::Bgra8 => (frame.clone().into_packed(), ColorType::Bgra, PixelFormat::Rgba8Premul),
            PixelFormat::Gray8 => (frame.clone().into_packed(), ColorType::Luma, PixelFormat::Gray8),
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let scratch = match &mut self.scratch {
                    Some(s) if s.size() == (w, h) => s,
                    slot => slot.insert(Frame::new(PixelFormat::Rgba8Premul, w, h)?),
                };
                convert_into(frame, scratch)?;
                (scratch.clone(), ColorType::Rgba, PixelFormat::Rgba8Premul)
            }
        };
        let mut out = Vec::with_capacity(self.last_jpeg_len + self.last_jpeg_len / 4 + 1024);
        let encoder = Encoder::new(&mut out, self.options.jpeg_quality.clamp(1, 100));
        encoder
            .encode(source.data(), w as u16, h as u16, color)
            .map_err(|e| Error::invalid(format!("JPEG encoding of frame {} failed: {e}", frame.timing.frame_number)))?;
        self.last_jpeg_len = out.len();
        let header = FrameHeader { format, compression: Compression::Jpeg, keyframe: true, ..FrameHeader::raw(frame) };
        let head = wire::frame_chunk_head(&header, out.len())?;
        let crc = crc32fast::hash(&out).to_be_bytes();
        Ok(chunk(head, Payload::Bytes(out), Some(crc), &header))
    }

    fn h264(&mut self, frame: &Frame, force_keyframe: bool) -> Result<EncodedChunk> {
        let (w, h) = frame.size();
        let mut fresh = false;
        let encoder = match &mut self.h264 {
            Some(e) if (e.config().width, e.config().height) == (w, h) => e,
            slot => {
                // A new size starts a new H.264 stream at an IDR with new SPS/PPS,
                // which the consumers' decoders follow.
                let mut config = EncoderConfig::new(w, h, self.fps);
                config.bitrate_bps = self.options.bitrate_bps;
                if let Some(seconds) = self.options.keyframe_seconds {
                    config.keyframe_interval = (seconds * self.fps.as_f64()).round().max(1.0) as u32;
                }
                fresh = true;
                slot.insert(H264Encoder::new(config).map_err(|e| e.in_stage("h264 compression"))?)
            }
        };
        if force_keyframe && !fresh {
            encoder.force_keyframe();
        }
        let encoded = encoder.encode(frame)?;
        let header = FrameHeader {
            format: PixelFormat::I420,
            compression: Compression::H264,
            keyframe: encoded.keyframe,
            ..FrameHeader::raw(frame)
        };
        let head = wire::frame_chunk_head(&header, encoded.data.len())?;
        let crc = crc32fast::hash(&encoded.data).to_be_bytes();
        Ok(chunk(head, Payload::Bytes(encoded.data), Some(crc), &header))
    }
}

fn chunk(head: Vec<u8>, payload: Payload, crc: Option<[u8; 4]>, header: &FrameHeader) -> EncodedChunk {
    EncodedChunk {
        head,
        payload,
        crc: crc.map(OnceLock::from).unwrap_or_default(),
        raw_header: None,
        keyframe: header.keyframe,
        frame_number: header.timing.frame_number,
        capture_time_ns: header.timing.capture_time_ns,
        seq: 0,
    }
}

/// Turns received chunks back into frames. One per connection: an H.264
/// stream's decoder state belongs to it.
#[derive(Default)]
pub struct FrameDecompressor {
    h264: Option<H264Decoder>,
    jpeg_pool: Option<BufferPool>,
    decoded: u64,
}

/// Idle JPEG output buffers kept for reuse.
const JPEG_POOL_IDLE: usize = 4;

impl FrameDecompressor {
    pub fn new() -> FrameDecompressor {
        FrameDecompressor::default()
    }

    /// Frames decompressed so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// The frame a chunk carries, with the sender's timing and metadata.
    /// `Ok(None)` when an H.264 decoder holds the picture back (never with
    /// the constrained-baseline streams streamkit sends).
    pub fn decompress(&mut self, chunk: WireFrame) -> Result<Option<Frame>> {
        let WireFrame { header, payload, .. } = chunk;
        let (w, h) = (header.width, header.height);
        let frame = match header.compression {
            Compression::None => Frame::from_buffer(header.format, w, h, header.format.packed_layout(w, h), payload)?,
            Compression::Jpeg => self.jpeg(&header, payload.as_slice())?,
            Compression::H264 => {
                let decoder = match &mut self.h264 {
                    Some(d) => d,
                    slot => slot.insert(H264Decoder::new()?),
                };
                let Some(frame) = decoder.decode(payload.as_slice())? else {
                    return Ok(None);
                };
                if frame.size() != (w, h) {
                    return Err(Error::invalid(format!(
                        "frame {}: the H.264 picture is {}x{} but the chunk says {w}x{h}",
                        header.timing.frame_number,
                        frame.width(),
                        frame.height()
                    )));
                }
                frame
            }
        };
        self.decoded += 1;
        let mut frame = frame.with_timing(header.timing);
        frame.metadata = header.metadata;
        Ok(Some(frame))
    }

    fn jpeg(&mut self, header: &FrameHeader, data: &[u8]) -> Result<Frame> {
        use zune_core::bytestream::ZCursor;
        use zune_core::colorspace::ColorSpace;
        use zune_core::options::DecoderOptions;
        use zune_jpeg::JpegDecoder;
        let number = header.timing.frame_number;
        let bad = |e: &dyn std::fmt::Display| Error::invalid(format!("frame {number}: JPEG decoding failed: {e}"));
        let out_space = if header.format == PixelFormat::Gray8 { ColorSpace::Luma } else { ColorSpace::RGBA };
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(out_space)
            .set_max_width(MAX_DIMENSION as usize)
            .set_max_height(MAX_DIMENSION as usize);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
        decoder.decode_headers().map_err(|e| bad(&e))?;
        let (jw, jh) = decoder.dimensions().ok_or_else(|| bad(&"no image dimensions"))?;
        if (jw, jh) != (header.width as usize, header.height as usize) {
            return Err(bad(&format!("the image is {jw}x{jh} but the chunk says {}x{}", header.width, header.height)));
        }
        let len = header.raw_len();
        if self.jpeg_pool.as_ref().is_none_or(|p| p.buffer_len() != len) {
            self.jpeg_pool = Some(BufferPool::new(len, JPEG_POOL_IDLE));
        }
        let pool = self.jpeg_pool.as_ref().expect("pool was just set");
        let mut frame = Frame::from_pool(pool, header.format, header.width, header.height)?;
        decoder.decode_into(frame.data_mut()).map_err(|e| bad(&e))?;
        Ok(frame)
    }
}
