//! The streamkit wire format, sans I/O: bytes in, events out (as str0m does
//! for WebRTC). The full specification is `docs/wire-format.md`; in short:
//!
//! ```text
//! producer → consumer   HELLO   magic "\x89SKW\r\n\x1a\n", version, flags, compression,
//!                               fps, size, 32-byte challenge nonce, CRC32      (68 bytes)
//! consumer → producer   JOIN    magic "\x89SKJ\r\n\x1a\n", version, what it decodes,
//!                               its nonce, HMAC-SHA256 response, CRC32         (84 bytes; TCP only)
//! producer → consumer   chunks  "SKCH" kind flags 0 header_len payload_len
//!                               header  CRC32(prefix+header)  payload  CRC32(payload)
//! ```
//!
//! Chunks are WELCOME (the producer's proof that it knows the token), FRAME
//! (timing, format, size, compression, metadata, then the pixels / JPEG /
//! H.264 access unit), ERROR (why the producer is closing the connection) and
//! END (the stream is over). Every length is checked against a hard limit
//! before anything is allocated, and both the chunk header and the payload
//! are checksummed, so a hostile or broken peer costs at most
//! [`WireLimits::max_payload`] plus 128 KiB of memory per connection.
//!
//! [`WireDecoder`] is the parser: [`WireDecoder::push`] bytes (or, to read
//! straight into frame memory without a copy, fill [`WireDecoder::buffer`]
//! and call [`WireDecoder::advance`]), then [`WireDecoder::poll`] for
//! [`WireEvent`]s. Errors carry the byte offset of the offending field.
//!
//! ```
//! use streamkit_core::{Frame, PixelFormat};
//! use streamkit_net::wire::{self, Compression, FrameHeader, Hello, WireDecoder, WireEvent};
//!
//! let mut frame = Frame::new(PixelFormat::Gray8, 4, 2).unwrap();
//! frame.metadata.insert("source_id", "cam0");
//! let mut bytes = Hello::one_way(Compression::None, None, Some((4, 2))).encode().to_vec();
//! bytes.extend(wire::encode_frame_chunk(&FrameHeader::raw(&frame), frame.data()).unwrap());
//! bytes.extend(wire::end_chunk());
//!
//! let mut decoder = WireDecoder::new("example");
//! decoder.push(&bytes);
//! assert!(matches!(decoder.poll(), Ok(Some(WireEvent::Hello(_)))));
//! let Ok(Some(WireEvent::Frame(received))) = decoder.poll() else { panic!() };
//! assert_eq!(received.header.metadata.get("source_id"), Some("cam0"));
//! assert!(matches!(decoder.poll(), Ok(Some(WireEvent::End))));
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use streamkit_core::frame::{check_size, Buffer, BufferPool, Metadata, MAX_DIMENSION};
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result, TimeBase, Timing};

/// The wire version this build speaks.
pub const VERSION: u16 = 1;
/// Starts every stream (PNG-style: a high byte, then CR LF, ^Z, LF, so that
/// text-mode mangling and truncation to 7 bits are caught at once).
pub const HELLO_MAGIC: [u8; 8] = *b"\x89SKW\r\n\x1a\n";
/// Starts a consumer's answer to the HELLO (TCP only).
pub const JOIN_MAGIC: [u8; 8] = *b"\x89SKJ\r\n\x1a\n";
/// Starts every chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"SKCH";
/// The magic that starts a Y4M stream, which [`sniff`] also recognises.
pub const Y4M_MAGIC: &[u8; 10] = b"YUV4MPEG2 ";

/// Bytes in a HELLO.
pub const HELLO_LEN: usize = 68;
/// Bytes in a JOIN.
pub const JOIN_LEN: usize = 84;
/// Bytes before a chunk's header: magic, kind, flags, reserved, two lengths.
pub const CHUNK_PREFIX_LEN: usize = 16;
/// Bytes after the prefix and header (header CRC) and after the payload (payload CRC).
pub const CRC_LEN: usize = 4;
/// Challenge nonces and HMAC-SHA256 tags.
pub const NONCE_LEN: usize = 32;

/// Most metadata entries a frame may carry.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Most bytes of metadata keys and values together.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest `sync_source` (e.g. `ptp:0:001122.fffe.334455`).
pub const MAX_SYNC_SOURCE_LEN: usize = 256;
/// Longest reason text in an ERROR chunk.
pub const MAX_REASON_LEN: usize = 1024;
/// The fixed part of a FRAME header.
pub const FRAME_FIXED_LEN: usize = 60;
/// Longest chunk header: a FRAME header with the largest sync source and metadata.
pub const MAX_CHUNK_HEADER: usize =
    FRAME_FIXED_LEN + 2 + MAX_SYNC_SOURCE_LEN + 2 + MAX_METADATA_ENTRIES * 4 + MAX_METADATA_BYTES;
/// Default largest payload: a 4K RGBA frame (33 MB) fits, twice over.
pub const DEFAULT_MAX_PAYLOAD: u32 = 64 * 1024 * 1024;
/// No configuration may raise the payload limit past this.
pub const HARD_MAX_PAYLOAD: u32 = 1024 * 1024 * 1024;

/// Where header bytes collect; holds the largest chunk header with room to spare.
const STAGING_LEN: usize = 128 * 1024;
/// Idle raw-frame buffers a decoder keeps for reuse.
const POOL_IDLE: usize = 4;

const HELLO_FLAG_AUTH: u16 = 1;
const HELLO_FLAG_HANDSHAKE: u16 = 2;
const FRAME_FLAG_KEYFRAME: u8 = 1;
const FRAME_FLAG_PTP: u8 = 2;
const FRAME_FLAG_SYNC_SOURCE: u8 = 4;
const FRAME_FLAG_SHARED: u8 = 8;
const JOIN_FLAG_SHARED_MEMORY: u16 = 1;
/// Bytes in a SHARED_MEMORY chunk's header.
pub const SHARED_MEMORY_HEADER_LEN: usize = 48;
/// Bytes in the payload of a FRAME whose pixels wait in shared memory: slot, length.
pub const SHARED_SLOT_LEN: usize = 8;

/// How a frame's pixels travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Packed planes exactly as in memory: lossless, no CPU, most bytes.
    #[default]
    None,
    /// Each frame a baseline JPEG (RGBA or gray after decoding; no alpha).
    Jpeg,
    /// An H.264 access unit (Annex-B) per frame; I420 after decoding.
    H264,
}

impl Compression {
    pub const ALL: [Compression; 3] = [Compression::None, Compression::Jpeg, Compression::H264];

    /// The name in URIs and the wire format spec.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Jpeg => "jpeg",
            Compression::H264 => "h264",
        }
    }

    /// The byte in a FRAME header.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Jpeg => 1,
            Compression::H264 => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The bit in HELLO and JOIN capability masks.
    pub fn bit(self) -> u32 {
        1 << self.code()
    }

    /// Every compression this build decodes, as a JOIN capability mask.
    pub fn all_bits() -> u32 {
        Compression::ALL.iter().map(|c| c.bit()).sum()
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Compression> {
        let lower = s.to_ascii_lowercase();
        let found = match lower.as_str() {
            "raw" => Some(Compression::None),
            "jpg" | "mjpeg" => Some(Compression::Jpeg),
            "avc" | "h.264" => Some(Compression::H264),
            _ => Compression::ALL.into_iter().find(|c| c.name() == lower),
        };
        found.ok_or_else(|| Error::invalid(format!("unknown compression '{s}'; known: none, jpeg, h264")))
    }
}

/// The byte that names a pixel format in a FRAME header.
pub fn pixel_format_code(format: PixelFormat) -> u8 {
    match format {
        PixelFormat::Rgba8Premul => 1,
        PixelFormat::Bgra8 => 2,
        PixelFormat::I420 => 3,
        PixelFormat::Nv12 => 4,
        PixelFormat::Gray8 => 5,
    }
}

pub fn pixel_format_from_code(code: u8) -> Option<PixelFormat> {
    PixelFormat::ALL.into_iter().find(|f| pixel_format_code(*f) == code)
}

/// Limits a decoder enforces beyond the fixed ones (metadata, header sizes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireLimits {
    /// Largest payload accepted, in bytes (default [`DEFAULT_MAX_PAYLOAD`],
    /// at most [`HARD_MAX_PAYLOAD`]).
    pub max_payload: u32,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits { max_payload: DEFAULT_MAX_PAYLOAD }
    }
}

impl WireLimits {
    fn effective_max_payload(&self) -> u32 {
        self.max_payload.min(HARD_MAX_PAYLOAD)
    }
}

/// The stream header a producer sends first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sender's wire version (always [`VERSION`] once parsed: others are errors).
    pub version: u16,
    /// The producer wants a JOIN with a valid HMAC response before frames.
    pub auth_required: bool,
    /// The producer waits for a JOIN (TCP); a one-way stream (a pipe, a file)
    /// goes straight to chunks.
    pub handshake: bool,
    /// How frames of this stream are compressed.
    pub compression: Compression,
    /// The stream's frame rate, when the producer knows it.
    pub fps: Option<Fps>,
    /// The frame size, when the producer knows it (frames may still differ).
    pub size: Option<(u32, u32)>,
    /// The producer's challenge (zeros on a one-way stream).
    pub nonce: [u8; NONCE_LEN],
}

impl Hello {
    /// A HELLO for a pipe or file: no handshake, no authentication.
    pub fn one_way(compression: Compression, fps: Option<Fps>, size: Option<(u32, u32)>) -> Hello {
        Hello {
            version: VERSION,
            auth_required: false,
            handshake: false,
            compression,
            fps,
            size,
            nonce: [0; NONCE_LEN],
        }
    }

    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..8].copy_from_slice(&HELLO_MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_be_bytes());
        let flags = if self.auth_required { HELLO_FLAG_AUTH } else { 0 }
            | if self.handshake { HELLO_FLAG_HANDSHAKE } else { 0 };
        out[10..12].copy_from_slice(&flags.to_be_bytes());
        out[12..16].copy_from_slice(&self.compression.bit().to_be_bytes());
        let (fps_num, fps_den) = self.fps.map_or((0, 0), |f| (f.num, f.den));
        out[16..20].copy_from_slice(&fps_num.to_be_bytes());
        out[20..24].copy_from_slice(&fps_den.to_be_bytes());
        let (w, h) = self.size.unwrap_or((0, 0));
        out[24..28].copy_from_slice(&w.to_be_bytes());
        out[28..32].copy_from_slice(&h.to_be_bytes());
        out[32..64].copy_from_slice(&self.nonce);
        let crc = crc32fast::hash(&out[..64]);
        out[64..68].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a HELLO at the start of `data`, which sits at byte `offset` of
    /// the stream. `Ok(None)`: a valid beginning, more bytes needed.
    pub fn parse(data: &[u8], offset: u64) -> Result<Option<Hello>, WireError> {
        check_magic(data, &HELLO_MAGIC, "stream header", offset)?;
        if check_version(data, offset)?.is_none() {
            return Ok(None);
        }
        if data.len() < HELLO_LEN {
            return Ok(None);
        }
        check_crc(&data[..64], &data[64..68], "stream header", offset + 64)?;
        let err = |at: u64, kind| WireError::new(offset + at, kind);
        let flags = be16(&data[10..]);
        if flags & !(HELLO_FLAG_AUTH | HELLO_FLAG_HANDSHAKE) != 0 {
            return Err(err(10, ErrorKind::Invalid(format!("unknown stream header flags {flags:#06x}"))));
        }
        let caps = be32(&data[12..]);
        let compression = Compression::ALL.into_iter().find(|c| c.bit() == caps).ok_or_else(|| {
            err(12, ErrorKind::Invalid(format!("stream header names no single known compression (mask {caps:#x})")))
        })?;
        let (fps_num, fps_den) = (be32(&data[16..]), be32(&data[20..]));
        let fps = match (fps_num, fps_den) {
            (0, 0) => None,
            (n, d) if n > 0 && d > 0 && Fps::new(n, d).as_f64() <= 1000.0 => Some(Fps::new(n, d)),
            (n, d) => return Err(err(16, ErrorKind::Invalid(format!("frame rate {n}/{d} is out of range")))),
        };
        let (w, h) = (be32(&data[24..]), be32(&data[28..]));
        let size = match (w, h) {
            (0, 0) => None,
            (w, h) if (1..=MAX_DIMENSION).contains(&w) && (1..=MAX_DIMENSION).contains(&h) => Some((w, h)),
            (w, h) => {
                return Err(err(
                    24,
                    ErrorKind::Invalid(format!("stream size {w}x{h} is out of range (1..={MAX_DIMENSION} a side)")),
                ))
            }
        };
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&data[32..64]);
        Ok(Some(Hello {
            version: VERSION,
            auth_required: flags & HELLO_FLAG_AUTH != 0,
            handshake: flags & HELLO_FLAG_HANDSHAKE != 0,
            compression,
            fps,
            size,
            nonce,
        }))
    }
}

/// A consumer's answer to a HELLO that asked for a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// Compressions the consumer can decode ([`Compression::bit`]s).
    pub capabilities: u32,
    /// The consumer's own challenge, which the producer answers in WELCOME.
    pub nonce: [u8; NONCE_LEN],
    /// HMAC-SHA256 over the producer's nonce (zeros without a token); see [`crate::auth`].
    pub response: [u8; NONCE_LEN],
    /// The consumer is on the producer's host and can map its shared memory
    /// (see [`crate::shm`]); the producer may then send raw frames that way.
    pub shared_memory: bool,
}

impl Join {
    pub fn encode(&self) -> [u8; JOIN_LEN] {
        let mut out = [0u8; JOIN_LEN];
        out[..8].copy_from_slice(&JOIN_MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_be_bytes());
        let flags = if self.shared_memory { JOIN_FLAG_SHARED_MEMORY } else { 0 };
        out[10..12].copy_from_slice(&flags.to_be_bytes());
        out[12..16].copy_from_slice(&self.capabilities.to_be_bytes());
        out[16..48].copy_from_slice(&self.nonce);
        out[48..80].copy_from_slice(&self.response);
        let crc = crc32fast::hash(&out[..80]);
        out[80..84].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a JOIN at the start of `data`; `Ok(None)` until all of it is there.
    /// The version is checked as soon as its two bytes arrive.
    pub fn parse(data: &[u8]) -> Result<Option<Join>, WireError> {
        check_magic(data, &JOIN_MAGIC, "join", 0)?;
        if check_version(data, 0)?.is_none() || data.len() < JOIN_LEN {
            return Ok(None);
        }
        check_crc(&data[..80], &data[80..84], "join", 80)?;
        let flags = be16(&data[10..]);
        if flags & !JOIN_FLAG_SHARED_MEMORY != 0 {
            return Err(WireError::new(10, ErrorKind::Invalid(format!("unknown join flags {flags:#06x}"))));
        }
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&data[16..48]);
        let mut response = [0; NONCE_LEN];
        response.copy_from_slice(&data[48..80]);
        Ok(Some(Join {
            capabilities: be32(&data[12..]),
            nonce,
            response,
            shared_memory: flags & JOIN_FLAG_SHARED_MEMORY != 0,
        }))
    }
}

/// Why a producer closes a connection (the code in an ERROR chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// The JOIN's HMAC response does not match the producer's token.
    AuthFailed,
    /// The peer speaks another wire version.
    UnsupportedVersion,
    /// The producer serves its maximum number of consumers.
    TooManyConsumers,
    /// The consumer cannot decode the stream's compression.
    Incompatible,
    /// The peer broke the protocol (bad magic, checksum, unexpected bytes).
    Protocol,
    /// The peer took too long (handshake timeout, a consumer that stalled).
    Timeout,
    /// The producer is going away.
    ShuttingDown,
    /// A code this build does not know.
    Other(u16),
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::AuthFailed => 1,
            CloseCode::UnsupportedVersion => 2,
            CloseCode::TooManyConsumers => 3,
            CloseCode::Incompatible => 4,
            CloseCode::Protocol => 5,
            CloseCode::Timeout => 6,
            CloseCode::ShuttingDown => 7,
            CloseCode::Other(code) => code,
        }
    }

    pub fn from_code(code: u16) -> CloseCode {
        [
            CloseCode::AuthFailed,
            CloseCode::UnsupportedVersion,
            CloseCode::TooManyConsumers,
            CloseCode::Incompatible,
            CloseCode::Protocol,
            CloseCode::Timeout,
            CloseCode::ShuttingDown,
        ]
        .into_iter()
        .find(|c| c.code() == code)
        .unwrap_or(CloseCode::Other(code))
    }
}

/// Everything a FRAME chunk says about its payload.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameHeader {
    /// The pixel format after decompression (raw: the payload's own layout;
    /// JPEG: `rgba` or `gray8`; H.264: `i420`).
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub compression: Compression,
    /// Decoding can start here (always true for raw and JPEG).
    pub keyframe: bool,
    pub timing: Timing,
    pub metadata: Metadata,
}

impl FrameHeader {
    /// The header for sending `frame` uncompressed (its packed planes).
    pub fn raw(frame: &Frame) -> FrameHeader {
        FrameHeader {
            format: frame.format(),
            width: frame.width(),
            height: frame.height(),
            compression: Compression::None,
            keyframe: true,
            timing: frame.timing.clone(),
            metadata: frame.metadata.clone(),
        }
    }

    /// Bytes an uncompressed payload of this format and size has.
    pub fn raw_len(&self) -> usize {
        self.format.packed_layout(self.width, self.height).byte_len()
    }
}

/// A FRAME chunk as received: its header and its payload (for raw frames a
/// pooled buffer that becomes the frame's memory without a copy).
#[derive(Clone, Debug)]
pub struct WireFrame {
    pub header: FrameHeader,
    /// Empty when the pixels wait in shared memory (`shared`).
    pub payload: Buffer,
    /// Where a raw frame's pixels wait in the producer's shared memory, if
    /// they did not travel in the chunk (see [`crate::shm`]).
    pub shared: Option<SharedSlot>,
    /// Stream offset of the chunk's first byte.
    pub offset: u64,
}

/// A raw frame's pixels in slot `slot` of the connection's shared-memory ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedSlot {
    pub slot: u32,
    /// Always the frame's packed size.
    pub len: u32,
}

/// The producer's shared-memory ring for this connection: the consumer opens
/// `/proc/{pid}/fd/{fd}` and checks the ring's id (see [`crate::shm`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedMemoryOffer {
    pub pid: u32,
    pub fd: u32,
    pub slots: u32,
    /// Bytes per slot (a multiple of 4096).
    pub slot_len: u32,
    /// Random; also written at the start of the ring.
    pub id: [u8; NONCE_LEN],
}

/// What the decoder produces.
#[derive(Clone, Debug)]
pub enum WireEvent {
    /// The stream header (always first).
    Hello(Hello),
    /// The producer accepted our JOIN; `proof` answers our nonce (zeros without a token).
    Welcome {
        proof: [u8; NONCE_LEN],
    },
    Frame(WireFrame),
    /// Raw frames may from now on wait in this shared-memory ring (same host only).
    SharedMemory(SharedMemoryOffer),
    /// The producer is closing the connection, and why.
    Error {
        code: CloseCode,
        reason: String,
    },
    /// The stream ended normally.
    End,
}

/// What went wrong, without the where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bytes that should be a magic number are not.
    BadMagic { expected: &'static str, found: Vec<u8> },
    /// The input is a Y4M stream, not the wire format.
    Y4m,
    /// The peer speaks another version.
    UnsupportedVersion { found: u16 },
    /// A length or count beyond its hard limit.
    TooLarge { field: &'static str, value: u64, limit: u64 },
    /// A CRC32 does not match.
    Checksum { what: &'static str, expected: u32, computed: u32 },
    /// The input ended inside a header or chunk.
    Truncated { what: String, missing: u64 },
    /// Anything else that breaks the format.
    Invalid(String),
}

/// A malformed stream: what is wrong and at which byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// Stream offset of the offending field.
    pub offset: u64,
    pub kind: ErrorKind,
}

impl WireError {
    pub fn new(offset: u64, kind: ErrorKind) -> WireError {
        WireError { offset, kind }
    }

    fn invalid(offset: u64, message: impl Into<String>) -> WireError {
        WireError::new(offset, ErrorKind::Invalid(message.into()))
    }

    fn at(mut self, base: u64) -> WireError {
        self.offset += base;
        self
    }

    /// The error as a streamkit error for input `what` (e.g. `wire tcp://host:9000`).
    pub fn into_error(self, what: &str) -> Error {
        match self.kind {
            ErrorKind::UnsupportedVersion { .. } => Error::Unsupported(format!("{what}: {}", self.message())),
            _ => Error::malformed(what, self.offset, self.message()),
        }
    }

    /// The message without the offset.
    pub fn message(&self) -> String {
        match &self.kind {
            ErrorKind::BadMagic { expected, found } => {
                format!("expected the {expected} magic, found {}", show_bytes(found))
            }
            ErrorKind::Y4m => "this is a Y4M (YUV4MPEG2) stream, not the streamkit wire format; \
                               read it with the y4m: scheme or '-'"
                .to_string(),
            ErrorKind::UnsupportedVersion { found } => {
                format!("unsupported wire version {found} (this build speaks {VERSION})")
            }
            ErrorKind::TooLarge { field, value, limit } => {
                format!("{field} {value} exceeds the limit of {limit}")
            }
            ErrorKind::Checksum { what, expected, computed } => {
                format!("{what} checksum mismatch: the stream says {expected:#010x}, the bytes give {computed:#010x}")
            }
            ErrorKind::Truncated { what, missing } => {
                format!("the input ends inside {what} ({missing} bytes missing)")
            }
            ErrorKind::Invalid(message) => message.clone(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed input at byte {}: {}", self.offset, self.message())
    }
}

impl std::error::Error for WireError {}

/// What the first bytes of an input are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// The streamkit wire format.
    Wire,
    /// YUV4MPEG2.
    Y4m,
    /// Neither.
    Unknown,
    /// Too few bytes to tell.
    NeedMore,
}

/// Tells the wire format from Y4M by the first bytes of an input (at most 10 needed).
pub fn sniff(prefix: &[u8]) -> Sniffed {
    let matches = |magic: &[u8]| {
        let n = prefix.len().min(magic.len());
        prefix[..n] == magic[..n]
    };
    match (matches(&HELLO_MAGIC), matches(Y4M_MAGIC)) {
        (true, _) if prefix.len() >= HELLO_MAGIC.len() => Sniffed::Wire,
        (_, true) if prefix.len() >= Y4M_MAGIC.len() => Sniffed::Y4m,
        (false, false) => Sniffed::Unknown,
        _ => Sniffed::NeedMore,
    }
}

// ---------------------------------------------------------------------------
// Encoding

/// The prefix, header and header CRC of a FRAME chunk whose payload is
/// `payload_len` bytes; the payload and its CRC follow on the wire.
pub fn frame_chunk_head(header: &FrameHeader, payload_len: usize) -> Result<Vec<u8>> {
    frame_head(header, payload_len, 0)
}

/// A whole FRAME chunk for a raw frame whose pixels the sender put in
/// `slot` of the connection's shared-memory ring.
pub fn shared_frame_chunk(header: &FrameHeader, slot: u32) -> Result<Vec<u8>> {
    if header.compression != Compression::None {
        return Err(Error::invalid(format!("a {} frame cannot travel in shared memory", header.compression)));
    }
    let mut payload = [0u8; SHARED_SLOT_LEN];
    payload[..4].copy_from_slice(&slot.to_be_bytes());
    payload[4..].copy_from_slice(&(header.raw_len() as u32).to_be_bytes());
    let mut out = frame_head(header, SHARED_SLOT_LEN, FRAME_FLAG_SHARED)?;
    out.extend_from_slice(&payload);
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    Ok(out)
}

fn frame_head(header: &FrameHeader, payload_len: usize, extra_flags: u8) -> Result<Vec<u8>> {
    check_size(header.format, header.width, header.height)?;
    let shared = extra_flags & FRAME_FLAG_SHARED != 0;
    if header.compression == Compression::None && !shared && payload_len != header.raw_len() {
        return Err(Error::invalid(format!(
            "a raw {} {}x{} frame has {} bytes, not {payload_len}",
            header.format,
            header.width,
            header.height,
            header.raw_len()
        )));
    }
    if payload_len > HARD_MAX_PAYLOAD as usize {
        return Err(Error::invalid(format!(
            "a frame payload of {payload_len} bytes exceeds the wire format's limit of {HARD_MAX_PAYLOAD} bytes"
        )));
    }
    let t = &header.timing;
    if t.time_base.num == 0 || t.time_base.den == 0 {
        return Err(Error::invalid(format!("frame {}: time base {} has a zero term", t.frame_number, t.time_base)));
    }
    let sync = t.sync_source.as_deref().unwrap_or("");
    if sync.len() > MAX_SYNC_SOURCE_LEN {
        return Err(Error::invalid(format!(
            "frame {}: sync_source of {} bytes exceeds the limit of {MAX_SYNC_SOURCE_LEN}",
            t.frame_number,
            sync.len()
        )));
    }
    check_metadata(&header.metadata, t.frame_number)?;

    let mut out = Vec::with_capacity(CHUNK_PREFIX_LEN + FRAME_FIXED_LEN + 64 + CRC_LEN);
    let flags = if header.keyframe { FRAME_FLAG_KEYFRAME } else { 0 }
        | if t.ptp_time_ns.is_some() { FRAME_FLAG_PTP } else { 0 }
        | if t.sync_source.is_some() { FRAME_FLAG_SYNC_SOURCE } else { 0 }
        | extra_flags;
    push_prefix(&mut out, ChunkKind::Frame, flags, payload_len as u32);
    out.extend_from_slice(&t.frame_number.to_be_bytes());
    out.extend_from_slice(&t.pts.to_be_bytes());
    out.extend_from_slice(&t.time_base.num.to_be_bytes());
    out.extend_from_slice(&t.time_base.den.to_be_bytes());
    out.extend_from_slice(&t.capture_time_ns.to_be_bytes());
    out.extend_from_slice(&t.ptp_time_ns.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&t.drift_ns.to_be_bytes());
    out.push(pixel_format_code(header.format));
    out.push(header.compression.code());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&header.width.to_be_bytes());
    out.extend_from_slice(&header.height.to_be_bytes());
    out.extend_from_slice(&(sync.len() as u16).to_be_bytes());
    out.extend_from_slice(sync.as_bytes());
    out.extend_from_slice(&(header.metadata.len() as u16).to_be_bytes());
    for (key, value) in header.metadata.iter() {
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    finish_head(&mut out);
    Ok(out)
}

/// A whole FRAME chunk (head, payload, payload CRC) in one buffer. Senders
/// that care about copies use [`frame_chunk_head`] and write the payload
/// from where it lies.
pub fn encode_frame_chunk(header: &FrameHeader, payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = frame_chunk_head(header, payload.len())?;
    out.reserve(payload.len() + CRC_LEN);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    Ok(out)
}

/// The END chunk.
pub fn end_chunk() -> Vec<u8> {
    control_chunk(ChunkKind::End, &[])
}

/// The SHARED_MEMORY chunk announcing a connection's ring.
pub fn shared_memory_chunk(offer: &SharedMemoryOffer) -> Vec<u8> {
    let mut header = Vec::with_capacity(SHARED_MEMORY_HEADER_LEN);
    for field in [offer.pid, offer.fd, offer.slots, offer.slot_len] {
        header.extend_from_slice(&field.to_be_bytes());
    }
    header.extend_from_slice(&offer.id);
    control_chunk(ChunkKind::SharedMemory, &header)
}

/// The WELCOME chunk with the producer's proof.
pub fn welcome_chunk(proof: &[u8; NONCE_LEN]) -> Vec<u8> {
    control_chunk(ChunkKind::Welcome, proof)
}

/// An ERROR chunk; `reason` is cut to [`MAX_REASON_LEN`] bytes (at a character boundary).
pub fn error_chunk(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut body = code.code().to_be_bytes().to_vec();
    body.extend_from_slice(&reason.as_bytes()[..cut]);
    control_chunk(ChunkKind::Error, &body)
}

fn control_chunk(kind: ChunkKind, header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK_PREFIX_LEN + header.len() + 2 * CRC_LEN);
    push_prefix(&mut out, kind, 0, 0);
    out.extend_from_slice(header);
    finish_head(&mut out);
    out.extend_from_slice(&crc32fast::hash(&[]).to_be_bytes());
    out
}

fn push_prefix(out: &mut Vec<u8>, kind: ChunkKind, flags: u8, payload_len: u32) {
    out.extend_from_slice(&CHUNK_MAGIC);
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0; 4]); // header length, filled in by finish_head
    out.extend_from_slice(&payload_len.to_be_bytes());
}

fn finish_head(out: &mut Vec<u8>) {
    let header_len = (out.len() - CHUNK_PREFIX_LEN) as u32;
    out[8..12].copy_from_slice(&header_len.to_be_bytes());
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn check_metadata(metadata: &Metadata, frame_number: u64) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(format!(
            "frame {frame_number}: {} metadata entries exceed the wire limit of {MAX_METADATA_ENTRIES}",
            metadata.len()
        )));
    }
    let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_METADATA_BYTES {
        return Err(Error::invalid(format!(
            "frame {frame_number}: {bytes} bytes of metadata exceed the wire limit of {MAX_METADATA_BYTES}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Decoding

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum ChunkKind {
    Frame = 1,
    End = 2,
    Welcome = 3,
    Error = 4,
    SharedMemory = 5,
}

impl ChunkKind {
    fn from_byte(b: u8) -> Option<ChunkKind> {
        [ChunkKind::Frame, ChunkKind::End, ChunkKind::Welcome, ChunkKind::Error, ChunkKind::SharedMemory]
            .into_iter()
            .find(|k| *k as u8 == b)
    }
}

enum State {
    Hello,
    ChunkHead,
    Payload(Box<PendingFrame>),
    Ended,
    Failed,
}

struct PendingFrame {
    header: FrameHeader,
    /// The payload is a [`SharedSlot`], not pixels.
    shared: bool,
    chunk_offset: u64,
    buffer: Buffer,
    filled: usize,
    hasher: crc32fast::Hasher,
}

/// The wire-format parser: push bytes, poll events. See the module docs.
///
/// Memory is bounded: header bytes collect in one 128 KiB staging buffer,
/// and a payload buffer is allocated only after its chunk header passed its
/// checksum and limits. Events wait in a queue until polled, so poll after
/// each push.
pub struct WireDecoder {
    what: String,
    limits: WireLimits,
    state: State,
    staging: Box<[u8]>,
    start: usize,
    end: usize,
    /// Stream offset of `staging[start]`.
    offset: u64,
    events: VecDeque<WireEvent>,
    error: Option<WireError>,
    pool: Option<BufferPool>,
}

impl WireDecoder {
    /// A decoder expecting a HELLO first; `what` names the input in errors.
    pub fn new(what: impl Into<String>) -> WireDecoder {
        WireDecoder::with_limits(what, WireLimits::default())
    }

    pub fn with_limits(what: impl Into<String>, limits: WireLimits) -> WireDecoder {
        WireDecoder {
            what: what.into(),
            limits,
            state: State::Hello,
            staging: vec![0; STAGING_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            offset: 0,
            events: VecDeque::new(),
            error: None,
            pool: None,
        }
    }

    /// The name given at creation.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Bytes of the stream parsed or being filled in so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Whether the END chunk has been seen.
    pub fn ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Feeds bytes. Never fails: errors come out of [`WireDecoder::poll`].
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let buf = self.buffer();
            if buf.is_empty() {
                return; // failed or ended: poll reports it
            }
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            self.advance(n);
            data = &data[n..];
        }
    }

    /// Where the next bytes should go, for reading straight from a socket:
    /// inside a payload this is the payload's own memory (the frame buffer
    /// for raw frames), so large payloads are not copied. Fill a prefix of
    /// it, then call [`WireDecoder::advance`]. Empty once the decoder failed.
    pub fn buffer(&mut self) -> &mut [u8] {
        if self.error.is_some() {
            return &mut [];
        }
        if let State::Payload(p) = &mut self.state {
            if p.filled < p.buffer.len() {
                let filled = p.filled;
                return &mut p.buffer.make_mut()[filled..];
            }
            // The payload is complete: its CRC goes to the staging buffer.
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && STAGING_LEN - self.end < STAGING_LEN / 2 {
            self.staging.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.staging[self.end..]
    }

    /// Commits `n` bytes written into [`WireDecoder::buffer`] and parses what it can.
    ///
    /// # Panics
    /// When `n` is larger than the slice [`WireDecoder::buffer`] returned.
    pub fn advance(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match &mut self.state {
            State::Payload(p) if p.filled < p.buffer.len() => {
                assert!(n <= p.buffer.len() - p.filled, "advance({n}) past the end of the payload buffer");
                let start = p.filled;
                p.filled += n;
                p.hasher.update(&p.buffer.as_slice()[start..p.filled]);
                self.offset += n as u64;
            }
            _ => {
                assert!(n <= STAGING_LEN - self.end, "advance({n}) past the end of the staging buffer");
                self.end += n;
            }
        }
        self.process();
    }

    /// The next event, `Ok(None)` when more bytes are needed, or the error
    /// that stopped the stream (after the events that came before it).
    pub fn poll(&mut self) -> Result<Option<WireEvent>, WireError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// The input ended. `Ok(true)`: after an END chunk; `Ok(false)`: at a
    /// chunk boundary without END (the producer went away); an error with
    /// the offset when it ended inside the header or a chunk.
    pub fn finish(&mut self) -> Result<bool, WireError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let buffered = (self.end - self.start) as u64;
        let error = match &self.state {
            State::Ended => return Ok(true),
            State::ChunkHead if buffered == 0 => return Ok(false),
            State::Hello if buffered == 0 => WireError::new(0, ErrorKind::Invalid("empty input".into())),
            State::Hello => WireError::new(
                self.offset + buffered,
                ErrorKind::Truncated {
                    what: "the stream header".into(),
                    missing: (HELLO_LEN as u64).saturating_sub(buffered),
                },
            ),
            State::ChunkHead => {
                let missing = if buffered < CHUNK_PREFIX_LEN as u64 {
                    CHUNK_PREFIX_LEN as u64 - buffered
                } else {
                    let s = &self.staging[self.start..self.end];
                    (CHUNK_PREFIX_LEN + be32(&s[8..]) as usize + CRC_LEN + be32(&s[12..]) as usize + CRC_LEN) as u64
                        - buffered
                };
                WireError::new(
                    self.offset + buffered,
                    ErrorKind::Truncated { what: format!("the chunk at byte {}", self.offset), missing },
                )
            }
            State::Payload(p) => WireError::new(
                self.offset + buffered,
                ErrorKind::Truncated {
                    what: format!(
                        "the payload of frame {} (chunk at byte {})",
                        p.header.timing.frame_number, p.chunk_offset
                    ),
                    // Staged bytes can only be part of the payload CRC here.
                    missing: (p.buffer.len() - p.filled + CRC_LEN) as u64 - buffered,
                },
            ),
            State::Failed => unreachable!("a failed decoder has an error"),
        };
        self.fail(error.clone());
        Err(error)
    }

    fn fail(&mut self, error: WireError) {
        self.error = Some(error);
        self.state = State::Failed;
    }

    fn process(&mut self) {
        while self.error.is_none() {
            let progressed = match self.step() {
                Ok(progressed) => progressed,
                Err(e) => {
                    self.fail(e);
                    return;
                }
            };
            if !progressed {
                return;
            }
        }
    }

    /// One parsing step; `Ok(false)` when more bytes are needed.
    fn step(&mut self) -> Result<bool, WireError> {
        let available = &self.staging[self.start..self.end];
        match &mut self.state {
            State::Failed => Ok(false),
            State::Ended => {
                if available.is_empty() {
                    return Ok(false);
                }
                Err(WireError::invalid(self.offset, "bytes after the END chunk"))
            }
            State::Hello => {
                if available.is_empty() {
                    return Ok(false);
                }
                if sniff(available) == Sniffed::Y4m {
                    return Err(WireError::new(self.offset, ErrorKind::Y4m));
                }
                if available[0] == b'Y' && sniff(available) == Sniffed::NeedMore {
                    return Ok(false);
                }
                let Some(hello) = Hello::parse(available, self.offset)? else {
                    return Ok(false);
                };
                self.consume(HELLO_LEN);
                self.events.push_back(WireEvent::Hello(hello));
                self.state = State::ChunkHead;
                Ok(true)
            }
            State::ChunkHead => self.chunk_head(),
            State::Payload(p) => {
                let need = p.buffer.len() - p.filled;
                if need > 0 && !available.is_empty() {
                    // Bytes that arrived with the header belong to the payload.
                    let n = need.min(available.len());
                    let start = p.filled;
                    p.buffer.make_mut()[start..start + n].copy_from_slice(&available[..n]);
                    p.hasher.update(&available[..n]);
                    p.filled += n;
                    self.consume(n);
                    return Ok(true);
                }
                if need > 0 || available.len() < CRC_LEN {
                    return Ok(false);
                }
                let stated = be32(available);
                let State::Payload(p) = std::mem::replace(&mut self.state, State::ChunkHead) else { unreachable!() };
                let computed = p.hasher.finalize();
                if stated != computed {
                    return Err(WireError::new(
                        self.offset,
                        ErrorKind::Checksum { what: "payload", expected: stated, computed },
                    ));
                }
                self.consume(CRC_LEN);
                let frame = if p.shared {
                    let slot = shared_slot(&p.header, p.buffer.as_slice()).map_err(|e| e.at(p.chunk_offset))?;
                    WireFrame {
                        header: p.header,
                        payload: Buffer::zeroed(0),
                        shared: Some(slot),
                        offset: p.chunk_offset,
                    }
                } else {
                    WireFrame { header: p.header, payload: p.buffer, shared: None, offset: p.chunk_offset }
                };
                self.events.push_back(WireEvent::Frame(frame));
                Ok(true)
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn chunk_head(&mut self) -> Result<bool, WireError> {
        let at = self.offset;
        let data = &self.staging[self.start..self.end];
        if data.is_empty() {
            return Ok(false);
        }
        check_magic(data, &CHUNK_MAGIC, "chunk", at)?;
        if data.len() < CHUNK_PREFIX_LEN {
            return Ok(false);
        }
        let header_len = be32(&data[8..]) as usize;
        let payload_len = be32(&data[12..]);
        if header_len > MAX_CHUNK_HEADER {
            return Err(WireError::new(
                at + 8,
                ErrorKind::TooLarge {
                    field: "chunk header length",
                    value: header_len as u64,
                    limit: MAX_CHUNK_HEADER as u64,
                },
            ));
        }
        let max_payload = self.limits.effective_max_payload();
        if payload_len > max_payload {
            return Err(WireError::new(
                at + 12,
                ErrorKind::TooLarge { field: "payload length", value: payload_len as u64, limit: max_payload as u64 },
            ));
        }
        let head_len = CHUNK_PREFIX_LEN + header_len;
        if data.len() < head_len + CRC_LEN {
            return Ok(false);
        }
        check_crc(&data[..head_len], &data[head_len..head_len + CRC_LEN], "chunk header", at + head_len as u64)?;
        let (kind_byte, flags, reserved) = (data[4], data[5], be16(&data[6..]));
        let kind = ChunkKind::from_byte(kind_byte)
            .ok_or_else(|| WireError::invalid(at + 4, format!("unknown chunk kind {kind_byte}")))?;
        if reserved != 0 {
            return Err(WireError::invalid(at + 6, format!("reserved chunk bytes are {reserved:#06x}, not zero")));
        }
        if kind != ChunkKind::Frame && (flags != 0 || payload_len != 0) {
            return Err(WireError::invalid(
                at + 5,
                format!("a {kind:?} chunk has flags {flags:#04x} and a {payload_len}-byte payload; both must be 0"),
            ));
        }
        if kind == ChunkKind::Frame {
            let known = FRAME_FLAG_KEYFRAME | FRAME_FLAG_PTP | FRAME_FLAG_SYNC_SOURCE | FRAME_FLAG_SHARED;
            if flags & !known != 0 {
                return Err(WireError::invalid(at + 5, format!("unknown frame flags {flags:#04x}")));
            }
        } else if data.len() < head_len + 2 * CRC_LEN {
            // A control chunk: wait for its (empty) payload's CRC too.
            return Ok(false);
        }
        let header = &data[CHUNK_PREFIX_LEN..head_len];
        let header_at = at + CHUNK_PREFIX_LEN as u64;
        let event = match kind {
            ChunkKind::Frame => {
                let frame = parse_frame_header(header, flags).map_err(|e| e.at(header_at))?;
                let shared = flags & FRAME_FLAG_SHARED != 0;
                let buffer = if shared {
                    check_shared_payload_len(&frame, payload_len).map_err(|e| e.at(at))?;
                    Buffer::zeroed(SHARED_SLOT_LEN)
                } else {
                    check_payload_len(&frame, payload_len).map_err(|e| e.at(at))?;
                    self.payload_buffer(&frame, payload_len as usize)
                };
                self.consume(head_len + CRC_LEN);
                self.state = State::Payload(Box::new(PendingFrame {
                    header: frame,
                    shared,
                    chunk_offset: at,
                    buffer,
                    filled: 0,
                    hasher: crc32fast::Hasher::new(),
                }));
                return Ok(true);
            }
            ChunkKind::End => {
                if !header.is_empty() {
                    return Err(WireError::invalid(header_at, "an END chunk has a header"));
                }
                WireEvent::End
            }
            ChunkKind::Welcome => {
                let proof: [u8; NONCE_LEN] = header.try_into().map_err(|_| {
                    WireError::invalid(header_at, format!("a WELCOME header has {} bytes, not 32", header.len()))
                })?;
                WireEvent::Welcome { proof }
            }
            ChunkKind::Error => {
                if header.len() < 2 || header.len() > 2 + MAX_REASON_LEN {
                    return Err(WireError::invalid(
                        header_at,
                        format!("an ERROR header has {} bytes (2..={})", header.len(), 2 + MAX_REASON_LEN),
                    ));
                }
                let code = CloseCode::from_code(be16(header));
                let reason = String::from_utf8_lossy(&header[2..]).into_owned();
                WireEvent::Error { code, reason }
            }
            ChunkKind::SharedMemory => {
                let max_payload = self.limits.effective_max_payload();
                WireEvent::SharedMemory(parse_shared_memory(header, max_payload).map_err(|e| e.at(header_at))?)
            }
        };
        // The empty payload's CRC is 0.
        let stated = be32(&data[head_len + CRC_LEN..]);
        if stated != 0 {
            return Err(WireError::new(
                at + (head_len + CRC_LEN) as u64,
                ErrorKind::Checksum { what: "payload", expected: stated, computed: 0 },
            ));
        }
        self.consume(head_len + 2 * CRC_LEN);
        if matches!(event, WireEvent::End) {
            self.state = State::Ended;
        }
        self.events.push_back(event);
        Ok(true)
    }

    fn payload_buffer(&mut self, header: &FrameHeader, len: usize) -> Buffer {
        if header.compression != Compression::None {
            return Buffer::zeroed(len);
        }
        if self.pool.as_ref().is_none_or(|p| p.buffer_len() != len) {
            self.pool = Some(BufferPool::new(len, POOL_IDLE));
        }
        self.pool.as_ref().expect("pool was just set").acquire()
    }
}

fn check_payload_len(frame: &FrameHeader, payload_len: u32) -> Result<(), WireError> {
    match frame.compression {
        Compression::None if payload_len as usize != frame.raw_len() => Err(WireError::invalid(
            12,
            format!(
                "a raw {} {}x{} frame has {} bytes, but the chunk says {payload_len}",
                frame.format,
                frame.width,
                frame.height,
                frame.raw_len()
            ),
        )),
        Compression::Jpeg | Compression::H264 if payload_len == 0 => {
            Err(WireError::invalid(12, format!("a {} frame with an empty payload", frame.compression)))
        }
        _ => Ok(()),
    }
}

fn check_shared_payload_len(frame: &FrameHeader, payload_len: u32) -> Result<(), WireError> {
    if frame.compression != Compression::None {
        return Err(WireError::invalid(5, format!("a {} frame cannot travel in shared memory", frame.compression)));
    }
    if payload_len as usize != SHARED_SLOT_LEN {
        return Err(WireError::invalid(
            12,
            format!("a shared-memory frame's payload is {SHARED_SLOT_LEN} bytes (slot, length), not {payload_len}"),
        ));
    }
    Ok(())
}

/// The slot reference in a shared-memory FRAME's payload; offsets relative to the chunk.
fn shared_slot(header: &FrameHeader, payload: &[u8]) -> Result<SharedSlot, WireError> {
    let (slot, len) = (be32(payload), be32(&payload[4..]));
    if len as usize != header.raw_len() {
        return Err(WireError::invalid(
            0,
            format!(
                "a raw {} {}x{} frame has {} bytes, but its shared-memory slot says {len}",
                header.format,
                header.width,
                header.height,
                header.raw_len()
            ),
        ));
    }
    Ok(SharedSlot { slot, len })
}

/// Reads a SHARED_MEMORY header; offsets relative to its start. A slot holds
/// at most one payload of the receiver's limit (rounded up to whole pages).
fn parse_shared_memory(data: &[u8], max_payload: u32) -> Result<SharedMemoryOffer, WireError> {
    if data.len() != SHARED_MEMORY_HEADER_LEN {
        return Err(WireError::invalid(
            0,
            format!("a SHARED_MEMORY header has {} bytes, not {SHARED_MEMORY_HEADER_LEN}", data.len()),
        ));
    }
    let (pid, fd, slots, slot_len) = (be32(data), be32(&data[4..]), be32(&data[8..]), be32(&data[12..]));
    if !(1..=crate::shm::MAX_SLOTS).contains(&slots) {
        return Err(WireError::invalid(
            8,
            format!("a shared-memory ring of {slots} slots (1..={})", crate::shm::MAX_SLOTS),
        ));
    }
    let page = crate::shm::PAGE as u32;
    let max_slot = max_payload.next_multiple_of(page);
    if slot_len == 0 || slot_len % page != 0 || slot_len > max_slot {
        return Err(WireError::invalid(
            12,
            format!("a shared-memory slot of {slot_len} bytes (a multiple of {page}, at most {max_slot})"),
        ));
    }
    let mut id = [0; NONCE_LEN];
    id.copy_from_slice(&data[16..]);
    Ok(SharedMemoryOffer { pid, fd, slots, slot_len, id })
}

/// Reads a FRAME header body; offsets in errors are relative to its start.
fn parse_frame_header(data: &[u8], flags: u8) -> Result<FrameHeader, WireError> {
    let mut r = Reader { data, pos: 0 };
    let frame_number = r.u64("frame number")?;
    let pts = r.u64("pts")? as i64;
    let tb_at = r.pos;
    let time_base = TimeBase::new(r.u32("time base")?, r.u32("time base")?);
    if time_base.num == 0 || time_base.den == 0 {
        return Err(WireError::invalid(tb_at as u64, format!("time base {time_base} has a zero term")));
    }
    let capture_time_ns = r.u64("capture time")?;
    let ptp = r.u64("PTP time")?;
    let drift_ns = r.u64("drift")? as i64;
    let format_at = r.pos;
    let format_code = r.u8("pixel format")?;
    let format = pixel_format_from_code(format_code)
        .ok_or_else(|| WireError::invalid(format_at as u64, format!("unknown pixel format code {format_code}")))?;
    let compression_code = r.u8("compression")?;
    let compression = Compression::from_code(compression_code).ok_or_else(|| {
        WireError::invalid(format_at as u64 + 1, format!("unknown compression code {compression_code}"))
    })?;
    let reserved = r.u16("reserved")?;
    if reserved != 0 {
        return Err(WireError::invalid(format_at as u64 + 2, "reserved frame header bytes are not zero"));
    }
    let size_at = r.pos;
    let (width, height) = (r.u32("width")?, r.u32("height")?);
    check_size(format, width, height).map_err(|e| WireError::invalid(size_at as u64, e.to_string()))?;
    let decoded_ok = match compression {
        Compression::None => true,
        Compression::Jpeg => matches!(format, PixelFormat::Rgba8Premul | PixelFormat::Gray8),
        Compression::H264 => format == PixelFormat::I420,
    };
    if !decoded_ok {
        return Err(WireError::invalid(
            format_at as u64,
            format!("a {compression} frame cannot decode to {format} (jpeg: rgba or gray8; h264: i420)"),
        ));
    }
    let sync_at = r.pos;
    let sync_len = r.u16("sync source length")? as usize;
    if sync_len > MAX_SYNC_SOURCE_LEN {
        return Err(WireError::new(
            sync_at as u64,
            ErrorKind::TooLarge {
                field: "sync source length",
                value: sync_len as u64,
                limit: MAX_SYNC_SOURCE_LEN as u64,
            },
        ));
    }
    let sync = r.text(sync_len, "sync source")?;
    let has_sync = flags & FRAME_FLAG_SYNC_SOURCE != 0;
    if !has_sync && !sync.is_empty() {
        return Err(WireError::invalid(sync_at as u64, "a sync source without the sync source flag"));
    }
    let count_at = r.pos;
    let count = r.u16("metadata count")? as usize;
    if count > MAX_METADATA_ENTRIES {
        return Err(WireError::new(
            count_at as u64,
            ErrorKind::TooLarge {
                field: "metadata entry count",
                value: count as u64,
                limit: MAX_METADATA_ENTRIES as u64,
            },
        ));
    }
    let mut metadata = Metadata::default();
    let mut total = 0usize;
    for _ in 0..count {
        let entry_at = r.pos;
        let key_len = r.u16("metadata key length")? as usize;
        let key = r.text(key_len, "metadata key")?;
        let value_len = r.u16("metadata value length")? as usize;
        let value = r.text(value_len, "metadata value")?;
        total += key_len + value_len;
        if total > MAX_METADATA_BYTES {
            return Err(WireError::new(
                entry_at as u64,
                ErrorKind::TooLarge { field: "metadata size", value: total as u64, limit: MAX_METADATA_BYTES as u64 },
            ));
        }
        if metadata.get(key).is_some() {
            return Err(WireError::invalid(entry_at as u64, format!("metadata key '{key}' appears twice")));
        }
        metadata.insert(key, value);
    }
    if r.pos != data.len() {
        return Err(WireError::invalid(
            r.pos as u64,
            format!("{} unexpected bytes after the metadata", data.len() - r.pos),
        ));
    }
    Ok(FrameHeader {
        format,
        width,
        height,
        compression,
        keyframe: flags & FRAME_FLAG_KEYFRAME != 0,
        timing: Timing {
            pts,
            time_base,
            capture_time_ns,
            ptp_time_ns: (flags & FRAME_FLAG_PTP != 0).then_some(ptp),
            frame_number,
            sync_source: has_sync.then(|| Arc::from(sync)),
            drift_ns,
        },
        metadata,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], WireError> {
        if self.data.len() - self.pos < n {
            return Err(WireError::invalid(
                self.pos as u64,
                format!("the chunk header ends inside the {field} ({} of {n} bytes)", self.data.len() - self.pos),
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, field: &str) -> Result<u8, WireError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, WireError> {
        Ok(be16(self.take(2, field)?))
    }

    fn u32(&mut self, field: &str) -> Result<u32, WireError> {
        Ok(be32(self.take(4, field)?))
    }

    fn u64(&mut self, field: &str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take(8, field)?.try_into().expect("8 bytes")))
    }

    fn text(&mut self, n: usize, field: &str) -> Result<&'a str, WireError> {
        let at = self.pos;
        let bytes = self.take(n, field)?;
        std::str::from_utf8(bytes).map_err(|_| WireError::invalid(at as u64, format!("the {field} is not UTF-8")))
    }
}

fn check_magic(data: &[u8], magic: &[u8], what: &'static str, offset: u64) -> Result<(), WireError> {
    let n = data.len().min(magic.len());
    if data[..n] != magic[..n] {
        if what == "stream header" && sniff(data) == Sniffed::Y4m {
            return Err(WireError::new(offset, ErrorKind::Y4m));
        }
        return Err(WireError::new(
            offset,
            ErrorKind::BadMagic { expected: what, found: data[..data.len().min(magic.len())].to_vec() },
        ));
    }
    Ok(())
}

/// The version at bytes 8..10 (`Ok(None)` until they are there); anything
/// but [`VERSION`] is an error.
fn check_version(data: &[u8], offset: u64) -> Result<Option<u16>, WireError> {
    if data.len() < 10 {
        return Ok(None);
    }
    match be16(&data[8..]) {
        VERSION => Ok(Some(VERSION)),
        found => Err(WireError::new(offset + 8, ErrorKind::UnsupportedVersion { found })),
    }
}

fn check_crc(covered: &[u8], stated: &[u8], what: &'static str, offset: u64) -> Result<(), WireError> {
    let (expected, computed) = (be32(stated), crc32fast::hash(covered));
    if expected != computed {
        return Err(WireError::new(offset, ErrorKind::Checksum { what, expected, computed }));
    }
    Ok(())
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn show_bytes(bytes: &[u8]) -> String {
    let text: String = bytes.iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    format!("\"{text}\"")
}
