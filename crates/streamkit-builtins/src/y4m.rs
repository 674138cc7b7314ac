//! YUV4MPEG2 (`.y4m`): uncompressed video in a file or a pipe.
//!
//! A Y4M stream is one text header line, then for every frame a `FRAME` line
//! followed by the raw planes (Y, then U and V at quarter size for 4:2:0):
//!
//! ```text
//! YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n
//! FRAME\n<640*360 bytes of Y><320*180 of U><320*180 of V>
//! FRAME\n…
//! ```
//!
//! It is what `ffmpeg`, `mpv`, `x264` and friends read and write without any
//! codec, so it is the easiest way to hand frames to (or take them from) any
//! other tool:
//!
//! ```sh
//! streamkit run 'test:smpte?size=640x360' --frames 30 -o out.y4m
//! ffmpeg -i out.y4m out.mp4
//! ffmpeg -i in.mp4 -pix_fmt yuv420p -f yuv4mpegpipe - | streamkit run - -o out.png
//! ```
//!
//! * [`parse_header`] / [`parse_frame_header`] are the sans-IO parser: bytes in,
//!   a [`Y4mHeader`] (or "need more bytes") out, with the byte offset of any
//!   problem in the error.
//! * [`Y4mSource`] reads 4:2:0 ([`PixelFormat::I420`]) and `mono`
//!   ([`PixelFormat::Gray8`]) streams from a file or any async reader (stdin).
//! * [`Y4mSink`] writes `C420jpeg` (BT.709 limited range, centred chroma), converting
//!   each frame to I420.

use std::fmt;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use streamkit_core::error::IoContext;
use streamkit_core::frame::{check_size, BufferPool, MAX_DIMENSION};
use streamkit_core::sink::StreamInfo;
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result, Sink, Source, SourceInfo, Timing};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use crate::raw::{converted, write_planes};

/// The magic that starts every Y4M stream.
pub const MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest stream header accepted (real ones are under 100 bytes).
pub const MAX_HEADER_LEN: usize = 1024;
/// Longest `FRAME` line accepted (frame parameters are rare and short).
pub const MAX_FRAME_HEADER_LEN: usize = 1024;
/// Frame rate used when the header has none (or `F0:0`), as ffmpeg does.
pub const DEFAULT_FPS: Fps = Fps::new(25, 1);
/// Frame rate the sink writes when it is not told one.
pub const DEFAULT_SINK_FPS: Fps = Fps::new(30, 1);

const READ_BUFFER: usize = 64 * 1024;
const WRITE_BUFFER: usize = 256 * 1024;
/// Idle frame buffers a source keeps for reuse.
const POOL_FREE: usize = 8;

/// The `C` (colour space / chroma subsampling) parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Y4mColorspace {
    /// 4:2:0, chroma centred between luma samples (JPEG/MPEG-1); the default.
    C420Jpeg,
    /// 4:2:0, chroma co-sited horizontally with luma (MPEG-2).
    C420Mpeg2,
    /// 4:2:0 PAL-DV siting.
    C420Paldv,
    /// 4:2:0, siting unspecified.
    C420,
    /// Luma only.
    Mono,
}

impl Y4mColorspace {
    /// The value as written after `C` in a header.
    pub fn name(self) -> &'static str {
        match self {
            Y4mColorspace::C420Jpeg => "420jpeg",
            Y4mColorspace::C420Mpeg2 => "420mpeg2",
            Y4mColorspace::C420Paldv => "420paldv",
            Y4mColorspace::C420 => "420",
            Y4mColorspace::Mono => "mono",
        }
    }

    /// The pixel format frames of this colour space come out in.
    pub fn pixel_format(self) -> PixelFormat {
        match self {
            Y4mColorspace::Mono => PixelFormat::Gray8,
            _ => PixelFormat::I420,
        }
    }

    fn from_name(name: &str) -> Option<Y4mColorspace> {
        [
            Y4mColorspace::C420Jpeg,
            Y4mColorspace::C420Mpeg2,
            Y4mColorspace::C420Paldv,
            Y4mColorspace::C420,
            Y4mColorspace::Mono,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// The `I` (interlacing) parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Interlace {
    /// `Ip`; also assumed when the header has no `I`.
    #[default]
    Progressive,
    /// `It`: top field first.
    TopFirst,
    /// `Ib`: bottom field first.
    BottomFirst,
    /// `Im`: mixed, per frame.
    Mixed,
    /// `I?`: unknown.
    Unknown,
}

impl Interlace {
    pub fn code(self) -> char {
        match self {
            Interlace::Progressive => 'p',
            Interlace::TopFirst => 't',
            Interlace::BottomFirst => 'b',
            Interlace::Mixed => 'm',
            Interlace::Unknown => '?',
        }
    }

    fn from_code(code: &str) -> Option<Interlace> {
        Some(match code {
            "p" => Interlace::Progressive,
            "t" => Interlace::TopFirst,
            "b" => Interlace::BottomFirst,
            "m" => Interlace::Mixed,
            "?" => Interlace::Unknown,
            _ => return None,
        })
    }
}

/// A parsed stream header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: u32,
    pub height: u32,
    /// `F`; [`DEFAULT_FPS`] when absent or `F0:0`.
    pub fps: Fps,
    /// `C`; [`Y4mColorspace::C420Jpeg`] when absent.
    pub colorspace: Y4mColorspace,
    /// `I`; progressive when absent.
    pub interlace: Interlace,
    /// `A`: pixel aspect ratio; `None` when absent or `A0:0` (unknown).
    pub aspect: Option<(u32, u32)>,
    /// `X` parameters without the `X` (e.g. `COLORRANGE=LIMITED`), in order.
    pub extensions: Vec<String>,
}

impl Y4mHeader {
    /// A header for `width` x `height` 4:2:0 video at `fps`, as [`Y4mSink`] writes it.
    pub fn new(width: u32, height: u32, fps: Fps) -> Y4mHeader {
        Y4mHeader {
            width,
            height,
            fps,
            colorspace: Y4mColorspace::C420Jpeg,
            interlace: Interlace::Progressive,
            aspect: Some((1, 1)),
            extensions: vec!["YSCSS=420JPEG".into(), "COLORRANGE=LIMITED".into()],
        }
    }

    /// The pixel format of the frames.
    pub fn pixel_format(&self) -> PixelFormat {
        self.colorspace.pixel_format()
    }

    /// Bytes of pixels per frame (after the `FRAME` line).
    pub fn frame_len(&self) -> usize {
        self.pixel_format().packed_layout(self.width, self.height).byte_len()
    }

    /// The header line, newline included.
    pub fn encode(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Y4mHeader {
    /// The header line, newline included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "YUV4MPEG2 W{} H{} F{}:{} I{}",
            self.width,
            self.height,
            self.fps.num,
            self.fps.den,
            self.interlace.code()
        )?;
        if let Some((n, d)) = self.aspect {
            write!(f, " A{n}:{d}")?;
        }
        write!(f, " C{}", self.colorspace.name())?;
        for x in &self.extensions {
            write!(f, " X{x}")?;
        }
        f.write_str("\n")
    }
}

/// Parses a stream header from the start of `data`.
///
/// Returns `Ok(None)` when `data` is a valid beginning but holds no complete
/// header line yet, and the header with its length (newline included) once it
/// does. Errors carry the byte offset of the problem.
pub fn parse_header(data: &[u8]) -> Result<Option<(Y4mHeader, usize)>> {
    parse_header_named(data, "y4m")
}

/// [`parse_header`] with `what` (e.g. `y4m clip.y4m`) naming the input in errors.
pub fn parse_header_named(data: &[u8], what: &str) -> Result<Option<(Y4mHeader, usize)>> {
    let bad = |offset: usize, message: String| Error::malformed(what, offset as u64, message);
    let prefix = &data[..data.len().min(MAGIC.len())];
    if prefix != &MAGIC[..prefix.len()] {
        return Err(bad(0, format!("not a YUV4MPEG2 stream: it starts with {}", show(&data[..data.len().min(16)]))));
    }
    let window = &data[..data.len().min(MAX_HEADER_LEN)];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        if data.len() >= MAX_HEADER_LEN {
            return Err(bad(
                MAX_HEADER_LEN,
                format!("no end of line in the first {MAX_HEADER_LEN} bytes of the header"),
            ));
        }
        return Ok(None);
    };
    let line = &data[..end];
    if line.len() > MAGIC.len() && line[MAGIC.len()] != b' ' {
        return Err(bad(
            MAGIC.len(),
            format!("expected a space after YUV4MPEG2, found {}", show(&line[MAGIC.len()..][..1])),
        ));
    }

    let mut width = None;
    let mut height = None;
    let mut fps = None;
    let mut colorspace = None;
    let mut interlace = None;
    let mut aspect = None;
    let mut extensions = Vec::new();
    let mut at = MAGIC.len();
    for token in line[MAGIC.len()..].split(|&b| b == b' ') {
        let offset = at;
        at += token.len() + 1;
        if token.is_empty() {
            continue;
        }
        let Ok(text) = std::str::from_utf8(token) else {
            return Err(bad(offset, format!("header parameter {} is not text", show(token))));
        };
        let (tag, value) = text.split_at(1);
        match tag {
            "W" | "H" => {
                let name = if tag == "W" { "width" } else { "height" };
                let n: u64 = value.parse().map_err(|_| bad(offset, format!("{name} '{text}' is not a number")))?;
                if n == 0 || n > u64::from(MAX_DIMENSION) {
                    return Err(bad(offset, format!("{name} {n} is out of range (1..={MAX_DIMENSION})")));
                }
                let slot = if tag == "W" { &mut width } else { &mut height };
                *slot = Some((n as u32, offset));
            }
            "F" => {
                let (n, d) = ratio(value).ok_or_else(|| bad(offset, format!("frame rate '{text}' is not F<num>:<den>")))?;
                if n == 0 || d == 0 {
                    fps = None; // F0:0 is "unknown"
                } else if n as f64 / d as f64 > 1000.0 {
                    return Err(bad(offset, format!("frame rate {n}:{d} is above 1000 fps")));
                } else {
                    fps = Some(Fps::new(n, d));
                }
            }
            "I" => {
                interlace = Some(
                    Interlace::from_code(value)
                        .ok_or_else(|| bad(offset, format!("interlacing '{text}' is not one of Ip, It, Ib, Im, I?")))?,
                );
            }
            "A" => {
                let (n, d) = ratio(value).ok_or_else(|| bad(offset, format!("aspect ratio '{text}' is not A<num>:<den>")))?;
                aspect = (n != 0 && d != 0).then_some((n, d));
            }
            "C" => match Y4mColorspace::from_name(value) {
                Some(c) => colorspace = Some(c),
                None => {
                    return Err(Error::Unsupported(format!(
                        "{what}: colour space C{value} at byte {offset}: streamkit reads 4:2:0 (420jpeg, 420mpeg2, 420paldv, 420) and mono, 8 bits"
                    )))
                }
            },
            "X" => extensions.push(value.to_string()),
            _ => tracing::debug!("{what}: ignoring unknown header parameter '{text}' at byte {offset}"),
        }
    }
    let (width, w_at) = width.ok_or_else(|| bad(end, "the header has no W (width) parameter".into()))?;
    let (height, _) = height.ok_or_else(|| bad(end, "the header has no H (height) parameter".into()))?;
    let colorspace = colorspace.unwrap_or(Y4mColorspace::C420Jpeg);
    if let Err(e) = check_size(colorspace.pixel_format(), width, height) {
        return Err(Error::Unsupported(format!("{what}: frame size at byte {w_at}: {e}")));
    }
    if extensions.iter().any(|x| x.eq_ignore_ascii_case("COLORRANGE=FULL")) {
        tracing::warn!(
            "{what}: the header says full-range YUV; streamkit treats Y4M as limited range (colours will look flat)"
        );
    }
    let header = Y4mHeader {
        width,
        height,
        fps: fps.unwrap_or(DEFAULT_FPS),
        colorspace,
        interlace: interlace.unwrap_or_default(),
        aspect,
        extensions,
    };
    Ok(Some((header, end + 1)))
}

/// Parses a `FRAME` line (with optional parameters) at the start of `data`.
///
/// Returns `Ok(None)` while no complete line is there yet, else the line's
/// length including its newline. `offset` is where `data` starts in the
/// stream, for error messages.
pub fn parse_frame_header(data: &[u8], what: &str, offset: u64) -> Result<Option<usize>> {
    const TAG: &[u8] = b"FRAME";
    let prefix = &data[..data.len().min(TAG.len())];
    if prefix != &TAG[..prefix.len()] || (data.len() > TAG.len() && !matches!(data[TAG.len()], b' ' | b'\n')) {
        return Err(Error::malformed(
            what,
            offset,
            format!("expected a FRAME line, found {}", show(&data[..data.len().min(16)])),
        ));
    }
    let window = &data[..data.len().min(MAX_FRAME_HEADER_LEN)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => Ok(Some(end + 1)),
        None if data.len() >= MAX_FRAME_HEADER_LEN => Err(Error::malformed(
            what,
            offset + MAX_FRAME_HEADER_LEN as u64,
            format!("FRAME line longer than {MAX_FRAME_HEADER_LEN} bytes"),
        )),
        None => Ok(None),
    }
}

/// `n:d` as two numbers.
fn ratio(value: &str) -> Option<(u32, u32)> {
    let (n, d) = value.split_once(':')?;
    Some((n.parse().ok()?, d.parse().ok()?))
}

/// Bytes for an error message: quoted, non-printable ones escaped.
fn show(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".into();
    }
    format!("'{}'", bytes.escape_ascii())
}

/// The header from what was read before end of input or the length cap.
fn header_from(data: &[u8], what: &str) -> Result<(Y4mHeader, usize)> {
    match parse_header_named(data, what)? {
        Some(found) => Ok(found),
        None if data.is_empty() => Err(Error::malformed(what, 0, "empty input: no YUV4MPEG2 header")),
        None => Err(Error::malformed(
            what,
            data.len() as u64,
            format!("the input ends inside the header ({} bytes, no end of line)", data.len()),
        )),
    }
}

/// Options for [`Y4mSource::open_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Y4mSourceOptions {
    /// Start again from the first frame at end of file (files only). Frame
    /// numbers and timestamps keep counting up.
    pub looped: bool,
}

type BoxedReader = Box<dyn AsyncRead + Unpin + Send>;
type BoxedWriter = Box<dyn AsyncWrite + Unpin + Send>;

/// Reads a Y4M file or pipe. Frames come out as [`PixelFormat::I420`]
/// (4:2:0 colour spaces) or [`PixelFormat::Gray8`] (`mono`), numbered from 0
/// with [`Timing::for_frame`] at the header's frame rate.
pub struct Y4mSource {
    name: String,
    what: String,
    header: Y4mHeader,
    header_len: usize,
    reader: BufReader<BoxedReader>,
    /// Set for files, so `looped` can start over.
    path: Option<PathBuf>,
    looped: bool,
    /// Bytes consumed from the start of the input (for error offsets).
    pos: u64,
    frames_this_pass: u64,
    next_number: u64,
    pool: BufferPool,
    line: Vec<u8>,
    done: bool,
}

impl Y4mSource {
    /// Opens a file and reads its header.
    ///
    /// Synchronous so a registry factory can call it: only the header (at
    /// most [`MAX_HEADER_LEN`] bytes) is read here, frames are read
    /// asynchronously.
    pub fn open(path: impl AsRef<Path>) -> Result<Y4mSource> {
        Y4mSource::open_with(path, Y4mSourceOptions::default())
    }

    /// [`Y4mSource::open`] with options.
    pub fn open_with(path: impl AsRef<Path>, options: Y4mSourceOptions) -> Result<Y4mSource> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let what = format!("y4m {name}");
        let mut file = std::fs::File::open(path).context(|| format!("opening {what}"))?;
        let mut data = Vec::new();
        std::io::BufReader::new((&file).take(MAX_HEADER_LEN as u64))
            .read_until(b'\n', &mut data)
            .context(|| format!("reading {what}"))?;
        let (header, header_len) = header_from(&data, &what)?;
        file.seek(SeekFrom::Start(header_len as u64)).context(|| format!("reading {what}"))?;
        let reader: BoxedReader = Box::new(tokio::fs::File::from_std(file));
        let mut source =
            Y4mSource::with_header(name, header, header_len, BufReader::with_capacity(READ_BUFFER, reader));
        source.path = Some(path.to_path_buf());
        source.looped = options.looped;
        Ok(source)
    }

    /// Reads from standard input (`-`).
    ///
    /// Blocks the calling thread until the header line has arrived (so that
    /// [`Source::info`] knows the size); frames are then read asynchronously.
    pub fn stdin() -> Result<Y4mSource> {
        let what = "y4m -";
        let mut data = Vec::new();
        // Through the process-wide buffered stdin: bytes read past the header
        // stay in its buffer, where `tokio::io::stdin` (which reads through the
        // same handle) finds them.
        std::io::stdin()
            .lock()
            .take(MAX_HEADER_LEN as u64)
            .read_until(b'\n', &mut data)
            .context(|| format!("reading {what}"))?;
        let (header, header_len) = header_from(&data, what)?;
        let reader: BoxedReader = Box::new(tokio::io::stdin());
        Ok(Y4mSource::with_header("-".into(), header, header_len, BufReader::with_capacity(READ_BUFFER, reader)))
    }

    /// Reads from any async reader (a pipe, a socket, a test buffer); `name`
    /// names it in errors and [`Source::info`]. Reads the header before returning.
    pub async fn from_reader(
        reader: impl AsyncRead + Unpin + Send + 'static,
        name: impl Into<String>,
    ) -> Result<Y4mSource> {
        let name = name.into();
        let what = format!("y4m {name}");
        let mut reader = BufReader::with_capacity(READ_BUFFER, Box::new(reader) as BoxedReader);
        let mut data = Vec::new();
        (&mut reader)
            .take(MAX_HEADER_LEN as u64)
            .read_until(b'\n', &mut data)
            .await
            .context(|| format!("reading {what}"))?;
        let (header, header_len) = header_from(&data, &what)?;
        Ok(Y4mSource::with_header(name, header, header_len, reader))
    }

    fn with_header(name: String, header: Y4mHeader, header_len: usize, reader: BufReader<BoxedReader>) -> Y4mSource {
        let pool = BufferPool::new(header.frame_len(), POOL_FREE);
        Y4mSource {
            what: format!("y4m {name}"),
            name,
            header,
            header_len,
            reader,
            path: None,
            looped: false,
            pos: header_len as u64,
            frames_this_pass: 0,
            next_number: 0,
            pool,
            line: Vec::with_capacity(64),
            done: false,
        }
    }

    /// The stream header.
    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }

    /// Back to the first frame of the file, for `looped`.
    async fn rewind(&mut self) -> Result<()> {
        let path = self.path.as_ref().expect("only files loop");
        let mut file = tokio::fs::File::open(path).await.context(|| format!("reopening {} to loop", self.what))?;
        tokio::io::AsyncSeekExt::seek(&mut file, SeekFrom::Start(self.header_len as u64))
            .await
            .context(|| format!("reopening {} to loop", self.what))?;
        self.reader = BufReader::with_capacity(READ_BUFFER, Box::new(file));
        self.pos = self.header_len as u64;
        self.frames_this_pass = 0;
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            self.line.clear();
            let n = (&mut self.reader)
                .take(MAX_FRAME_HEADER_LEN as u64)
                .read_until(b'\n', &mut self.line)
                .await
                .context(|| format!("reading {}", self.what))?;
            if n == 0 {
                if self.looped && self.path.is_some() && self.frames_this_pass > 0 {
                    self.rewind().await?;
                    continue;
                }
                return Ok(None);
            }
            break;
        }
        let number = self.next_number;
        if parse_frame_header(&self.line, &self.what, self.pos)?.is_none() {
            return Err(Error::malformed(
                &self.what,
                self.pos + self.line.len() as u64,
                format!("the input ends inside the FRAME line of frame {number}"),
            ));
        }
        self.pos += self.line.len() as u64;

        let (w, h) = (self.header.width, self.header.height);
        let mut frame = Frame::from_pool(&self.pool, self.header.pixel_format(), w, h)?;
        let data = frame.data_mut();
        let mut got = 0;
        while got < data.len() {
            let n = self.reader.read(&mut data[got..]).await.context(|| format!("reading {}", self.what))?;
            if n == 0 {
                return Err(Error::malformed(
                    &self.what,
                    self.pos + got as u64,
                    format!(
                        "frame {number} is truncated: the input ends {got} bytes into its {} bytes of pixels ({} bytes missing)",
                        data.len(),
                        data.len() - got
                    ),
                ));
            }
            got += n;
        }
        self.pos += got as u64;
        self.next_number += 1;
        self.frames_this_pass += 1;
        frame.timing = Timing::for_frame(number, self.header.fps);
        Ok(Some(frame))
    }
}

#[async_trait]
impl Source for Y4mSource {
    fn info(&self) -> SourceInfo {
        let h = &self.header;
        SourceInfo::new(format!("y4m:{} {}x{}@{} {}", self.name, h.width, h.height, h.fps, h.colorspace.name()))
            .sized(h.width, h.height)
            .with_fps(h.fps)
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_frame().await;
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }
}

/// Writes frames as a Y4M file or pipe (`C420jpeg`, limited range). The
/// first frame fixes the size; every frame is converted to I420.
pub struct Y4mSink {
    name: String,
    writer: BufWriter<BoxedWriter>,
    /// Given by the caller, else learnt from the stream, else 30.
    fps: Option<Fps>,
    size: Option<(u32, u32)>,
    /// Conversion target for frames that are not I420, reused frame to frame.
    scratch: Option<Frame>,
    frames: u64,
    closed: bool,
}

impl Y4mSink {
    /// Creates (truncates) `path`. `fps` goes in the header (default 30).
    pub fn create(path: impl AsRef<Path>, fps: Option<Fps>) -> Result<Y4mSink> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = std::fs::File::create(path).context(|| format!("creating y4m {name}"))?;
        Ok(Y4mSink::to_writer(tokio::fs::File::from_std(file), name, fps))
    }

    /// Writes to standard output (`-`).
    pub fn stdout(fps: Option<Fps>) -> Y4mSink {
        Y4mSink::to_writer(tokio::io::stdout(), "-", fps)
    }

    /// Writes to any async writer; `name` names it in errors and [`Sink::describe`].
    pub fn to_writer(
        writer: impl AsyncWrite + Unpin + Send + 'static,
        name: impl Into<String>,
        fps: Option<Fps>,
    ) -> Y4mSink {
        Y4mSink {
            name: name.into(),
            writer: BufWriter::with_capacity(WRITE_BUFFER, Box::new(writer)),
            fps,
            size: None,
            scratch: None,
            frames: 0,
            closed: false,
        }
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }
}

#[async_trait]
impl Sink for Y4mSink {
    fn describe(&self) -> String {
        format!("y4m:{}", self.name)
    }

    fn input_format(&self) -> Option<PixelFormat> {
        Some(PixelFormat::I420) // Y4M holds 4:2:0
    }

    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.fps.get_or_insert(info.fps);
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.closed {
            return Err(Error::invalid(format!("{}: write after close", self.describe())));
        }
        let (w, h) = frame.size();
        match self.size {
            None => {
                check_size(PixelFormat::I420, w, h).map_err(|e| Error::invalid(format!("{}: {e}", self.describe())))?;
                let header = Y4mHeader::new(w, h, self.fps.unwrap_or(DEFAULT_SINK_FPS)).encode();
                self.writer.write_all(header.as_bytes()).await.context(|| format!("writing y4m {}", self.name))?;
                self.size = Some((w, h));
            }
            Some((sw, sh)) if (sw, sh) != (w, h) => {
                return Err(Error::invalid(format!(
                    "{}: frame {} is {w}x{h} but the stream started at {sw}x{sh}; a Y4M stream cannot change size",
                    self.describe(),
                    self.frames
                )));
            }
            Some(_) => {}
        }
        let i420 = converted(frame, PixelFormat::I420, &mut self.scratch)?;
        let io = async {
            self.writer.write_all(b"FRAME\n").await?;
            write_planes(&mut self.writer, i420).await
        };
        io.await.context(|| format!("writing y4m {}", self.name))?;
        self.frames += 1;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        if self.frames == 0 {
            tracing::warn!("{}: no frames arrived, so the output has no header and is empty", self.describe());
        }
        // flush first: tokio's stdout `shutdown` does not wait for the last write.
        let what = || format!("finishing y4m {}", self.name);
        self.writer.flush().await.context(what)?;
        self.writer.shutdown().await.context(what)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers shared by the Y4M, PNG and raw sink tests.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    use streamkit_core::frame::Buffer;
    use streamkit_core::Frame;

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let dir = std::env::temp_dir().join(format!("streamkit-{tag}-{}-{n}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        pub fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The same pixels with 6 bytes of padding after every luma row (the
    /// layout of a frame 6 pixels wider), padding filled with junk.
    pub fn padded_copy(frame: &Frame) -> Frame {
        let (w, h) = frame.size();
        let layout = frame.format().packed_layout(w + 6, h);
        let mut buf = vec![0xEE; layout.byte_len()];
        for (i, p) in layout.planes().iter().enumerate() {
            let (src, src_stride) = frame.plane(i);
            let row_len = frame.format().packed_layout(w, h).planes()[i].stride;
            for r in 0..p.rows.min(src.len() / src_stride) {
                buf[p.offset + r * p.stride..][..row_len].copy_from_slice(&src[r * src_stride..][..row_len]);
            }
        }
        Frame::from_buffer(frame.format(), w, h, layout, Buffer::from_vec(buf)).unwrap()
    }

    pub use streamkit_testkit::{ffprobe_show, require_tool as have_tool, run_tool, tool_available};
}

#[cfg(test)]
mod tests {
    use super::testutil::{ffprobe_show, have_tool, padded_copy, run_tool, TempDir};
    use super::*;

    /// An I420 frame whose every byte depends on (frame, position).
    fn pattern_frame(n: u8, w: u32, h: u32) -> Frame {
        let mut f = Frame::new(PixelFormat::I420, w, h).unwrap();
        for (i, b) in f.data_mut().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(n.wrapping_mul(31));
        }
        f
    }

    fn err_text(r: Result<Option<(Y4mHeader, usize)>>) -> String {
        r.expect_err("should fail").to_string()
    }

    #[test]
    fn header_round_trip() {
        let mut h = Y4mHeader::new(640, 360, Fps::new(30000, 1001));
        h.interlace = Interlace::TopFirst;
        h.aspect = Some((4, 3));
        let text = h.encode();
        assert_eq!(text, "YUV4MPEG2 W640 H360 F30000:1001 It A4:3 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n");
        let mut bytes = text.clone().into_bytes();
        bytes.extend_from_slice(b"FRAME\n");
        let (parsed, len) = parse_header(&bytes).unwrap().unwrap();
        assert_eq!(parsed, h);
        assert_eq!(len, text.len());
        assert_eq!(parsed.frame_len(), 640 * 360 * 3 / 2);

        // Defaults and the other colour spaces.
        let (p, _) = parse_header(b"YUV4MPEG2 W4 H2\n").unwrap().unwrap();
        assert_eq!(
            (p.fps, p.colorspace, p.interlace, p.aspect),
            (DEFAULT_FPS, Y4mColorspace::C420Jpeg, Interlace::Progressive, None)
        );
        let (p, _) = parse_header(b"YUV4MPEG2 W3 H3 F0:0 A0:0 Cmono  XFOO Zunknown\n").unwrap().unwrap();
        assert_eq!(
            (p.fps, p.pixel_format(), p.aspect, p.extensions.as_slice()),
            (DEFAULT_FPS, PixelFormat::Gray8, None, &["FOO".to_string()][..])
        );
        for c in ["420mpeg2", "420paldv", "420"] {
            let (p, _) = parse_header(format!("YUV4MPEG2 W2 H2 C{c}\n").as_bytes()).unwrap().unwrap();
            assert_eq!(p.pixel_format(), PixelFormat::I420, "{c}");
        }
    }

    #[test]
    fn partial_header_needs_more_bytes() {
        let full = b"YUV4MPEG2 W64 H48 F25:1\n";
        for cut in 0..full.len() {
            assert_eq!(parse_header(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_header(full).unwrap().is_some());
        assert_eq!(parse_frame_header(b"FRA", "y4m", 0).unwrap(), None);
        assert_eq!(parse_frame_header(b"FRAME Ixyz\nabc", "y4m", 0).unwrap(), Some(11));
    }

    #[test]
    fn header_errors_are_precise() {
        let e = err_text(parse_header(b"RIFF\x00\x01"));
        assert!(
            e.contains("malformed input at byte 0") && e.contains("not a YUV4MPEG2 stream") && e.contains("RIFF"),
            "{e}"
        );
        let e = err_text(parse_header(b"YUV4MPEG2 W99999 H48\n"));
        assert!(e.contains("at byte 10") && e.contains("width 99999 is out of range"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 W64 H0\n"));
        assert!(e.contains("at byte 14") && e.contains("height 0"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 W64 F30:1\n"));
        assert!(e.contains("at byte 19") && e.contains("no H (height)"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 H48\n"));
        assert!(e.contains("no W (width)"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 W64 H48 C444\n"));
        assert!(e.starts_with("unsupported:") && e.contains("C444") && e.contains("at byte 18"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 W6x H48\n"));
        assert!(e.contains("at byte 10") && e.contains("width 'W6x' is not a number"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 W64 H48 F30\n"));
        assert!(e.contains("at byte 18") && e.contains("F<num>:<den>"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2 W63 H48\n"));
        assert!(e.contains("unsupported") && e.contains("even"), "{e}");
        let e = err_text(parse_header(b"YUV4MPEG2X W64 H48\n"));
        assert!(e.contains("at byte 9") && e.contains("space"), "{e}");
        let mut long = b"YUV4MPEG2 W64 H48 X".to_vec();
        long.resize(MAX_HEADER_LEN + 10, b'a');
        let e = err_text(parse_header(&long));
        assert!(e.contains(&format!("at byte {MAX_HEADER_LEN}")) && e.contains("no end of line"), "{e}");
        let e = parse_frame_header(b"FRAMX\n", "y4m x", 100).unwrap_err().to_string();
        assert!(e.contains("y4m x: malformed input at byte 100") && e.contains("FRAME"), "{e}");
    }

    #[tokio::test]
    async fn truncated_or_empty_header_from_a_reader() {
        let e = Y4mSource::from_reader(&b"YUV4MPEG2 W64 H4"[..], "cut.y4m").await.err().unwrap().to_string();
        assert!(e.contains("y4m cut.y4m: malformed input at byte 16") && e.contains("ends inside the header"), "{e}");
        let e = Y4mSource::from_reader(&b""[..], "empty").await.err().unwrap().to_string();
        assert!(e.contains("at byte 0") && e.contains("empty input"), "{e}");
    }

    async fn write_file(path: &Path, frames: &[Frame], fps: Option<Fps>) {
        let mut sink = Y4mSink::create(path, fps).unwrap();
        for f in frames {
            sink.write(f).await.unwrap();
        }
        sink.close().await.unwrap();
    }

    async fn read_all(source: &mut Y4mSource) -> (Vec<Frame>, Option<Error>) {
        let mut frames = Vec::new();
        loop {
            match source.next_frame().await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn sink_then_source_round_trip() {
        let dir = TempDir::new("y4m");
        let path = dir.join("five.y4m");
        let frames: Vec<Frame> = (0..5).map(|n| pattern_frame(n, 16, 8)).collect();
        write_file(&path, &frames, Some(Fps::new(30000, 1001))).await;

        let bytes = std::fs::read(&path).unwrap();
        let header = "YUV4MPEG2 W16 H8 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n";
        assert!(bytes.starts_with(header.as_bytes()));
        assert_eq!(bytes.len(), header.len() + 5 * (6 + 16 * 8 * 3 / 2));

        let mut source = Y4mSource::open(&path).unwrap();
        let info = source.info();
        assert_eq!((info.width, info.height, info.fps), (Some(16), Some(8), Some(Fps::new(30000, 1001))));
        assert!(info.description.starts_with("y4m:"), "{}", info.description);
        let (read, err) = read_all(&mut source).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(read.len(), 5);
        for (n, (a, b)) in frames.iter().zip(&read).enumerate() {
            assert_eq!(b.format(), PixelFormat::I420);
            assert_eq!(a.data(), b.data(), "frame {n}");
            assert_eq!(b.timing.frame_number, n as u64);
            assert_eq!(b.timing.pts, n as i64);
            assert_eq!(b.timing.time_base, Fps::new(30000, 1001).frame_time_base());
        }
        assert!(source.next_frame().await.unwrap().is_none(), "stays at the end");
    }

    #[tokio::test]
    async fn steady_reading_reuses_pooled_buffers() {
        let dir = TempDir::new("y4m");
        let path = dir.join("pool.y4m");
        let frames: Vec<Frame> = (0..6).map(|n| pattern_frame(n, 8, 4)).collect();
        write_file(&path, &frames, None).await;
        let mut source = Y4mSource::open(&path).unwrap();
        let first = source.next_frame().await.unwrap().unwrap();
        let ptr = first.data().as_ptr();
        drop(first);
        for _ in 0..5 {
            let f = source.next_frame().await.unwrap().unwrap();
            assert_eq!(f.data().as_ptr(), ptr, "a dropped frame's buffer is reused");
        }
    }

    #[tokio::test]
    async fn sink_converts_rgba_and_honours_strides() {
        let dir = TempDir::new("y4m");
        // RGBA in: the sink converts to I420.
        let path = dir.join("rgba.y4m");
        let mut rgba = Frame::new(PixelFormat::Rgba8Premul, 8, 4).unwrap();
        for px in rgba.data_mut().chunks_exact_mut(4) {
            px.copy_from_slice(&[255, 255, 255, 255]);
        }
        write_file(&path, &[rgba.clone(), rgba], None).await;
        let mut source = Y4mSource::open(&path).unwrap();
        assert_eq!(source.header().fps, DEFAULT_SINK_FPS);
        let f = source.next_frame().await.unwrap().unwrap();
        assert!(f.plane(0).0.iter().all(|&y| y == 235), "white is Y=235");
        assert!(f.plane(1).0.iter().chain(f.plane(2).0).all(|&c| c == 128));

        // A padded I420 frame comes out tightly packed.
        let packed = pattern_frame(3, 8, 4);
        let padded = padded_copy(&packed);
        assert_ne!(padded.plane(0).1, 8, "really padded");
        let path = dir.join("padded.y4m");
        write_file(&path, &[padded], None).await;
        let mut source = Y4mSource::open(&path).unwrap();
        assert_eq!(source.next_frame().await.unwrap().unwrap().data(), packed.data());
    }

    #[tokio::test]
    async fn sink_rejects_a_size_change() {
        let dir = TempDir::new("y4m");
        let mut sink = Y4mSink::create(dir.join("x.y4m"), None).unwrap();
        assert_eq!(sink.describe(), format!("y4m:{}", dir.join("x.y4m").display()));
        sink.write(&pattern_frame(0, 8, 4)).await.unwrap();
        let e = sink.write(&pattern_frame(1, 16, 4)).await.unwrap_err().to_string();
        assert!(e.contains("frame 1 is 16x4") && e.contains("started at 8x4"), "{e}");
        sink.close().await.unwrap();
        let e = Y4mSink::create(dir.join("odd.y4m"), None)
            .unwrap()
            .write(&Frame::new(PixelFormat::Rgba8Premul, 7, 4).unwrap())
            .await;
        assert!(e.unwrap_err().to_string().contains("even"));
    }

    #[tokio::test]
    async fn truncated_file_gives_the_frames_before_then_an_error() {
        let dir = TempDir::new("y4m");
        let path = dir.join("cut.y4m");
        let frames: Vec<Frame> = (0..4).map(|n| pattern_frame(n, 16, 8)).collect();
        write_file(&path, &frames, None).await;
        let bytes = std::fs::read(&path).unwrap();
        let frame_size = 6 + 16 * 8 * 3 / 2;
        let header_len = bytes.len() - 4 * frame_size;
        // Cut 50 bytes into frame 3's pixels.
        let cut = header_len + 3 * frame_size + 6 + 50;
        std::fs::write(&path, &bytes[..cut]).unwrap();

        let mut source = Y4mSource::open(&path).unwrap();
        let (read, err) = read_all(&mut source).await;
        assert_eq!(read.len(), 3);
        for (a, b) in frames.iter().zip(&read) {
            assert_eq!(a.data(), b.data());
        }
        let e = err.expect("an error for the cut frame").to_string();
        assert!(e.contains(&format!("malformed input at byte {cut}")), "{e}");
        assert!(e.contains("frame 3 is truncated") && e.contains(&format!("({} bytes missing)", 192 - 50)), "{e}");
        assert!(source.next_frame().await.unwrap().is_none());

        // Cut inside a FRAME line.
        std::fs::write(&path, &bytes[..header_len + frame_size + 3]).unwrap();
        let mut source = Y4mSource::open(&path).unwrap();
        let (read, err) = read_all(&mut source).await;
        assert_eq!(read.len(), 1);
        let e = err.unwrap().to_string();
        assert!(
            e.contains(&format!("at byte {}", header_len + frame_size + 3)) && e.contains("inside the FRAME line"),
            "{e}"
        );

        // Garbage instead of a FRAME line.
        let mut bad = bytes[..header_len + frame_size].to_vec();
        bad.extend_from_slice(b"FRAMEX\n");
        std::fs::write(&path, &bad).unwrap();
        let (read, err) = read_all(&mut Y4mSource::open(&path).unwrap()).await;
        assert_eq!(read.len(), 1);
        let e = err.unwrap().to_string();
        assert!(
            e.contains(&format!("at byte {}", header_len + frame_size)) && e.contains("expected a FRAME line"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn looped_file_restarts_and_keeps_counting() {
        let dir = TempDir::new("y4m");
        let path = dir.join("loop.y4m");
        let frames: Vec<Frame> = (0..3).map(|n| pattern_frame(n, 8, 4)).collect();
        write_file(&path, &frames, None).await;
        let mut source = Y4mSource::open_with(&path, Y4mSourceOptions { looped: true }).unwrap();
        for n in 0..8u64 {
            let f = source.next_frame().await.unwrap().unwrap();
            assert_eq!(f.data(), frames[n as usize % 3].data(), "frame {n}");
            assert_eq!(f.timing.frame_number, n);
        }
        // A file with no frames ends instead of spinning.
        let empty = dir.join("empty.y4m");
        std::fs::write(&empty, b"YUV4MPEG2 W8 H4 F30:1\n").unwrap();
        let mut source = Y4mSource::open_with(&empty, Y4mSourceOptions { looped: true }).unwrap();
        assert!(source.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reads_mono_from_a_reader() {
        let mut data = b"YUV4MPEG2 W4 H2 F10:1 Cmono\n".to_vec();
        for n in 0..2u8 {
            data.extend_from_slice(b"FRAME Ixyz\n");
            data.extend((0..8).map(|i| i + n * 10));
        }
        let mut source = Y4mSource::from_reader(std::io::Cursor::new(data), "mem").await.unwrap();
        assert_eq!(source.info().fps, Some(Fps::new(10, 1)));
        let (read, err) = read_all(&mut source).await;
        assert!(err.is_none());
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].format(), PixelFormat::Gray8);
        assert_eq!(read[1].data(), &[10, 11, 12, 13, 14, 15, 16, 17]);
    }

    #[test]
    #[should_panic(expected = "required in CI")]
    fn a_missing_tool_fails_in_ci() {
        super::testutil::tool_available("streamkit-no-such-tool", true);
    }

    #[test]
    fn a_missing_tool_is_skipped_outside_ci() {
        assert!(!super::testutil::tool_available("streamkit-no-such-tool", false));
    }

    const STDIN_CHILD: &str = "STREAMKIT_Y4M_STDIN_CHILD";

    /// Runs this test binary again, with only `stdin_child`, and pipes a Y4M
    /// stream into its standard input.
    #[test]
    fn reads_standard_input() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        if std::env::var_os(STDIN_CHILD).is_some() {
            return;
        }
        let mut data = b"YUV4MPEG2 W4 H2 F10:1 Cmono\n".to_vec();
        for n in 0..3u8 {
            data.extend_from_slice(b"FRAME\n");
            data.extend((0..8).map(|i| i + n * 10));
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "y4m::tests::stdin_child", "--nocapture", "--test-threads=1"])
            .env(STDIN_CHILD, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("stdin-result: y4m:- 4x2@10 mono; 3 frames; last [20, 21, 22, 23, 24, 25, 26, 27]"),
            "{stdout}"
        );
    }

    #[tokio::test]
    async fn stdin_child() {
        if std::env::var_os(STDIN_CHILD).is_none() {
            return; // only runs as the child of `reads_standard_input`
        }
        let mut source = Y4mSource::stdin().unwrap();
        let (read, err) = read_all(&mut source).await;
        assert!(err.is_none(), "{err:?}");
        println!(
            "stdin-result: {}; {} frames; last {:?}",
            source.info().description,
            read.len(),
            read.last().unwrap().data()
        );
    }

    #[tokio::test]
    async fn ffprobe_reads_what_we_write() {
        if !have_tool("ffprobe") {
            return;
        }
        let dir = TempDir::new("y4m");
        let path = dir.join("ten.y4m");
        let frames: Vec<Frame> = (0..10).map(|n| pattern_frame(n, 64, 48)).collect();
        write_file(&path, &frames, Some(Fps::new(30, 1))).await;
        let out = ffprobe_show(&path, "stream=nb_read_frames,width,height,r_frame_rate", "csv=p=0", &["-count_frames"]);
        assert_eq!(out.trim(), "64,48,30/1,10");
    }

    #[tokio::test]
    async fn reads_what_ffmpeg_writes() {
        if !have_tool("ffmpeg") {
            return;
        }
        let dir = TempDir::new("y4m");
        let path = dir.join("ffmpeg.y4m");
        let path_str = path.to_str().unwrap();
        run_tool(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=64x48:rate=25",
                "-frames:v",
                "7",
                "-pix_fmt",
                "yuv420p",
                "-y",
                path_str,
            ],
        );
        let mut source = Y4mSource::open(&path).unwrap();
        let info = source.info();
        assert_eq!((info.width, info.height, info.fps), (Some(64), Some(48), Some(Fps::new(25, 1))));
        let (read, err) = read_all(&mut source).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(read.len(), 7);
        assert!(read.iter().all(|f| f.size() == (64, 48) && f.format() == PixelFormat::I420));
        assert_ne!(read[0].data(), read[6].data(), "testsrc2 moves");
    }
}
