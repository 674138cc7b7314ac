//! The wire format over pipes and files: the `wire:` scheme, and what `-`
//! means once the CLI maps it there.
//!
//! ```sh
//! streamkit run 'test:smpte?size=640x360' --frames 90 -o - | streamkit run - --layer 'text:{frame}' -o out.y4m
//! ssh camera-host streamkit run … -o - | streamkit run - -o out.mp4
//! ffmpeg -i in.mp4 -pix_fmt yuv420p -f yuv4mpegpipe - | streamkit run - -o out.png   # Y4M is recognised too
//! ```
//!
//! * [`WireSink`] writes a one-way stream (HELLO without handshake, FRAME
//!   chunks, END) to any `AsyncWrite`: stdout, a file, a socket, a test pipe.
//! * [`WireSource`] reads one from any `AsyncRead`.
//! * [`PipeSource`] is what `wire:-` (stdin) and `wire:PATH` build: it sniffs
//!   the first bytes and reads either the wire format or Y4M (delegating to
//!   [`streamkit_builtins::y4m::Y4mSource`]), so `-` accepts both what
//!   streamkit and what `ffmpeg -f yuv4mpegpipe` write.
//!
//! A pipe has no way back, so there is no authentication (use `ssh`), and
//! the stream ends at END; a producer that dies leaves a stream that ends
//! at a chunk boundary (accepted with a warning) or inside a chunk (an error
//! naming the byte offset).

use std::io::{BufRead, Read};
use std::path::Path;

use async_trait::async_trait;
use streamkit_builtins::y4m::{self, Y4mHeader, Y4mSource};
use streamkit_core::error::IoContext;
use streamkit_core::sink::StreamInfo;
use streamkit_core::{Error, Fps, Frame, Result, Sink, Source, SourceInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

use crate::codec::{write_all_vectored, CompressOptions, EncodedChunk, FrameCompressor, FrameDecompressor};
use crate::wire::{self, sniff, Compression, Hello, Sniffed, WireDecoder, WireEvent, WireFrame, HELLO_LEN};

pub type BoxedReader = Box<dyn AsyncRead + Unpin + Send>;
pub type BoxedWriter = Box<dyn AsyncWrite + Unpin + Send>;

const WRITE_BUFFER: usize = 256 * 1024;

/// Writes frames as a one-way wire stream. See the module docs.
pub struct WireSink {
    name: String,
    writer: BufWriter<BoxedWriter>,
    compressor: Option<FrameCompressor>,
    compression: Compression,
    fps: Option<Fps>,
    hello_sent: bool,
    frames: u64,
    closed: bool,
}

impl WireSink {
    /// Writes to any async writer; `name` names it in errors and [`Sink::describe`].
    pub fn new(
        writer: impl AsyncWrite + Unpin + Send + 'static,
        name: impl Into<String>,
        options: CompressOptions,
    ) -> WireSink {
        WireSink {
            name: name.into(),
            writer: BufWriter::with_capacity(WRITE_BUFFER, Box::new(writer)),
            compressor: Some(FrameCompressor::new(options)),
            compression: options.compression,
            fps: None,
            hello_sent: false,
            frames: 0,
            closed: false,
        }
    }

    /// Writes to standard output (`-`).
    pub fn stdout(options: CompressOptions) -> WireSink {
        WireSink::new(tokio::io::stdout(), "-", options)
    }

    /// Creates (truncates) a file.
    pub fn create(path: impl AsRef<Path>, options: CompressOptions) -> Result<WireSink> {
        let path = path.as_ref();
        let file = std::fs::File::create(path).context(|| format!("creating wire:{}", path.display()))?;
        Ok(WireSink::new(tokio::fs::File::from_std(file), path.display().to_string(), options))
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    async fn send_hello(&mut self, size: Option<(u32, u32)>) -> Result<()> {
        if !self.hello_sent {
            let hello = Hello::one_way(self.compression, self.fps, size);
            self.writer.write_all(&hello.encode()).await.context(|| format!("writing wire:{}", self.name))?;
            self.hello_sent = true;
        }
        Ok(())
    }

    async fn compress(&mut self, frame: &Frame) -> Result<EncodedChunk> {
        let mut compressor = self.compressor.take().ok_or_else(|| {
            Error::invalid(format!("wire:{}: an earlier encode failed badly; the sink cannot go on", self.name))
        })?;
        if self.compression == Compression::None {
            let chunk = compressor.compress(frame, false);
            self.compressor = Some(compressor);
            return chunk;
        }
        let frame = frame.clone();
        let (compressor, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = compressor.compress(&frame, false);
            (compressor, chunk)
        })
        .await
        .map_err(|e| Error::invalid(format!("wire:{}: the encoder thread failed: {e}", self.name)))?;
        self.compressor = Some(compressor);
        chunk
    }
}

#[async_trait]
impl Sink for WireSink {
    fn describe(&self) -> String {
        format!("wire:{}", self.name)
    }

    fn input_format(&self) -> Option<streamkit_core::PixelFormat> {
        (self.compression == Compression::H264).then_some(streamkit_core::PixelFormat::I420)
    }

    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.fps.get_or_insert(info.fps);
        if let Some(c) = &mut self.compressor {
            c.set_fps(info.fps);
        }
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.closed {
            return Err(Error::invalid(format!("{}: write after close", self.describe())));
        }
        self.send_hello(Some(frame.size())).await?;
        let chunk = self.compress(frame).await.map_err(|e| e.in_stage(self.describe()))?;
        let io = async {
            write_all_vectored(&mut self.writer, &chunk.parts()).await?;
            // Live pipes want each frame on its way at once.
            self.writer.flush().await
        };
        io.await.context(|| format!("writing wire:{}", self.name))?;
        self.frames += 1;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.send_hello(None).await?;
        let io = async {
            self.writer.write_all(&wire::end_chunk()).await?;
            self.writer.flush().await?;
            self.writer.shutdown().await
        };
        io.await.context(|| format!("finishing wire:{}", self.name))
    }
}

/// Reads a one-way wire stream from any async reader.
pub struct WireSource {
    name: String,
    reader: BoxedReader,
    decoder: WireDecoder,
    hello: Hello,
    decompressor: Option<FrameDecompressor>,
    done: bool,
}

impl WireSource {
    /// Reads the stream header before returning.
    pub async fn from_reader(
        reader: impl AsyncRead + Unpin + Send + 'static,
        name: impl Into<String>,
    ) -> Result<WireSource> {
        let name = name.into();
        let mut reader: BoxedReader = Box::new(reader);
        let mut decoder = WireDecoder::new(format!("wire {name}"));
        let hello = loop {
            match decoder.poll().map_err(|e| e.into_error(&format!("wire {name}")))? {
                Some(WireEvent::Hello(hello)) => break hello,
                Some(_) => unreachable!("HELLO comes first"),
                None => {}
            }
            let n = reader.read(decoder.buffer()).await.context(|| format!("reading wire {name}"))?;
            if n == 0 {
                let what = format!("wire {name}");
                return Err(match decoder.finish() {
                    Err(e) => e.into_error(&what),
                    Ok(_) => Error::malformed(&what, decoder.position(), "the input ends before the stream header"),
                });
            }
            decoder.advance(n);
        };
        WireSource::with_hello(reader, name, decoder, hello)
    }

    fn with_hello(reader: BoxedReader, name: String, decoder: WireDecoder, hello: Hello) -> Result<WireSource> {
        if hello.handshake || hello.auth_required {
            return Err(Error::invalid(format!(
                "wire {name}: this is a NetworkSink's stream (it waits for a consumer's JOIN); connect with tcp://HOST:PORT"
            )));
        }
        Ok(WireSource { name, reader, decoder, hello, decompressor: Some(FrameDecompressor::new()), done: false })
    }

    /// The stream header.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn next_chunk(&mut self) -> Result<Option<WireFrame>> {
        let what = format!("wire {}", self.name);
        loop {
            match self.decoder.poll().map_err(|e| e.into_error(&what))? {
                Some(WireEvent::Frame(frame)) if frame.shared.is_some() => {
                    return Err(Error::malformed(
                        &what,
                        frame.offset,
                        "a shared-memory frame in a one-way stream (only a same-host TCP consumer maps shared memory)",
                    ))
                }
                Some(WireEvent::Frame(frame)) => return Ok(Some(frame)),
                Some(WireEvent::End) => return Ok(None),
                Some(WireEvent::Error { reason, .. }) => {
                    return Err(Error::invalid(format!("{what}: the producer reports: {reason}")))
                }
                Some(WireEvent::Hello(_) | WireEvent::Welcome { .. } | WireEvent::SharedMemory(_)) => {
                    return Err(Error::malformed(
                        &what,
                        self.decoder.position(),
                        "a handshake chunk in a one-way stream",
                    ))
                }
                None => {}
            }
            let n = self.reader.read(self.decoder.buffer()).await.context(|| format!("reading {what}"))?;
            if n == 0 {
                return match self.decoder.finish() {
                    Ok(true) => Ok(None),
                    Ok(false) => {
                        tracing::warn!("{what}: the input ended without an END chunk (did the producer stop early?)");
                        Ok(None)
                    }
                    Err(e) => Err(e.into_error(&what)),
                };
            }
            self.decoder.advance(n);
        }
    }
}

#[async_trait]
impl Source for WireSource {
    fn info(&self) -> SourceInfo {
        let h = &self.hello;
        let mut info = SourceInfo::new(format!(
            "wire:{} ({}{}{})",
            self.name,
            h.compression,
            h.size.map(|(w, h)| format!(" {w}x{h}")).unwrap_or_default(),
            h.fps.map(|f| format!("@{f}")).unwrap_or_default()
        ));
        info.fps = h.fps;
        if let Some((w, h)) = h.size {
            info = info.sized(w, h);
        }
        info
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let chunk = match self.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                other => {
                    self.done = true;
                    return other.map(|_| None);
                }
            };
            let mut decompressor = self.decompressor.take().unwrap_or_default();
            let frame = if chunk.header.compression == Compression::None {
                let frame = decompressor.decompress(chunk);
                self.decompressor = Some(decompressor);
                frame
            } else {
                let (decompressor, frame) = tokio::task::spawn_blocking(move || {
                    let frame = decompressor.decompress(chunk);
                    (decompressor, frame)
                })
                .await
                .map_err(|e| Error::invalid(format!("wire {}: the decoder thread failed: {e}", self.name)))?;
                self.decompressor = Some(decompressor);
                frame
            };
            match frame {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Err(e.in_stage(format!("wire {}", self.name)));
                }
            }
        }
    }
}

/// What `wire:-` and `wire:PATH` read: the wire format or Y4M, told apart
/// by the first bytes. See the module docs.
pub enum PipeSource {
    Wire(WireSource),
    Y4m(Y4mSource),
    /// Y4M from standard input whose header line was read synchronously (for
    /// [`Source::info`]); the [`Y4mSource`] is built on the first frame.
    Y4mPending {
        header: Y4mHeader,
        line: Vec<u8>,
        reader: Option<BoxedReader>,
    },
}

impl PipeSource {
    /// Reads standard input (`-`).
    ///
    /// Blocks the calling thread until the stream header has arrived (so that
    /// [`Source::info`] knows the size and rate), reading through the
    /// process-wide buffered stdin so no byte is lost to the async reader
    /// that takes over.
    pub fn stdin() -> Result<PipeSource> {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let (kind, prefix) = sniff_blocking(&mut lock, "-")?;
        match kind {
            Sniffed::Wire => {
                let decoder = hello_blocking(&mut lock, prefix, "-")?;
                drop(lock);
                let (decoder, hello) = decoder;
                Ok(PipeSource::Wire(WireSource::with_hello(Box::new(tokio::io::stdin()), "-".into(), decoder, hello)?))
            }
            _ => {
                let (header, line) = y4m_header_blocking(&mut lock, prefix, "-")?;
                drop(lock);
                Ok(PipeSource::Y4mPending { header, line, reader: Some(Box::new(tokio::io::stdin())) })
            }
        }
    }

    /// Reads a file in either format.
    pub fn open(path: impl AsRef<Path>) -> Result<PipeSource> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = std::fs::File::open(path).context(|| format!("opening wire:{name}"))?;
        let mut reader = std::io::BufReader::with_capacity(HELLO_LEN, file);
        let (kind, prefix) = sniff_blocking(&mut reader, &name)?;
        match kind {
            Sniffed::Wire => {
                let (decoder, hello) = hello_blocking(&mut reader, prefix, &name)?;
                // The BufReader holds at most the HELLO's bytes, all consumed.
                debug_assert!(reader.buffer().is_empty());
                let file = tokio::fs::File::from_std(reader.into_inner());
                Ok(PipeSource::Wire(WireSource::with_hello(Box::new(file), name, decoder, hello)?))
            }
            _ => Ok(PipeSource::Y4m(Y4mSource::open(path)?)),
        }
    }

    /// Reads any async reader in either format (sniffing reads the first bytes now).
    pub async fn from_reader(
        reader: impl AsyncRead + Unpin + Send + 'static,
        name: impl Into<String>,
    ) -> Result<PipeSource> {
        let name = name.into();
        let mut reader: BoxedReader = Box::new(reader);
        let mut prefix = Vec::with_capacity(wire::Y4M_MAGIC.len());
        let kind = loop {
            match sniff(&prefix) {
                Sniffed::NeedMore => {}
                kind => break kind,
            }
            let mut byte = [0u8; 1];
            if reader.read(&mut byte).await.context(|| format!("reading {name}"))? == 0 {
                return Err(not_a_stream(&prefix, &name));
            }
            prefix.push(byte[0]);
        };
        match kind {
            Sniffed::Wire => {
                let rest = AsyncReadExt::chain(std::io::Cursor::new(prefix), reader);
                Ok(PipeSource::Wire(WireSource::from_reader(rest, name).await?))
            }
            Sniffed::Y4m => {
                let rest = AsyncReadExt::chain(std::io::Cursor::new(prefix), reader);
                Ok(PipeSource::Y4m(Y4mSource::from_reader(rest, name).await?))
            }
            _ => Err(not_a_stream(&prefix, &name)),
        }
    }
}

fn not_a_stream(prefix: &[u8], name: &str) -> Error {
    if prefix.is_empty() {
        return Error::malformed(format!("input {name}"), 0, "empty input: no streamkit wire stream and no Y4M");
    }
    let text: String = prefix.iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    Error::malformed(
        format!("input {name}"),
        0,
        format!(
            "neither the streamkit wire format (starts \\x89SKW) nor Y4M (starts YUV4MPEG2): it starts with \"{text}\""
        ),
    )
}

/// Reads bytes one at a time (from a buffered reader) until the format is known.
fn sniff_blocking(reader: &mut impl BufRead, name: &str) -> Result<(Sniffed, Vec<u8>)> {
    let mut prefix = Vec::with_capacity(wire::Y4M_MAGIC.len());
    loop {
        match sniff(&prefix) {
            Sniffed::NeedMore => {}
            Sniffed::Unknown => return Err(not_a_stream(&prefix, name)),
            kind => return Ok((kind, prefix)),
        }
        let mut byte = [0u8; 1];
        if reader.read(&mut byte).context(|| format!("reading {name}"))? == 0 {
            return Err(not_a_stream(&prefix, name));
        }
        prefix.push(byte[0]);
    }
}

fn hello_blocking(reader: &mut impl Read, prefix: Vec<u8>, name: &str) -> Result<(WireDecoder, Hello)> {
    let what = format!("wire {name}");
    let mut bytes = prefix;
    let have = bytes.len();
    bytes.resize(HELLO_LEN, 0);
    let mut got = have;
    while got < HELLO_LEN {
        let n = reader.read(&mut bytes[got..]).context(|| format!("reading {what}"))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let mut decoder = WireDecoder::new(&what);
    decoder.push(&bytes[..got]);
    if got < HELLO_LEN {
        decoder.finish().map_err(|e| e.into_error(&what))?;
    }
    match decoder.poll().map_err(|e| e.into_error(&what))? {
        Some(WireEvent::Hello(hello)) => Ok((decoder, hello)),
        _ => Err(Error::malformed(&what, got as u64, "the input ends inside the stream header")),
    }
}

fn y4m_header_blocking(reader: &mut impl BufRead, prefix: Vec<u8>, name: &str) -> Result<(Y4mHeader, Vec<u8>)> {
    let mut line = prefix;
    reader
        .take((y4m::MAX_HEADER_LEN - line.len()) as u64)
        .read_until(b'\n', &mut line)
        .context(|| format!("reading y4m {name}"))?;
    match y4m::parse_header_named(&line, &format!("y4m {name}"))? {
        Some((header, _)) => Ok((header, line)),
        None => Err(Error::malformed(
            format!("y4m {name}"),
            line.len() as u64,
            "the input ends inside the header (no end of line)",
        )),
    }
}

#[async_trait]
impl Source for PipeSource {
    fn info(&self) -> SourceInfo {
        match self {
            PipeSource::Wire(s) => s.info(),
            PipeSource::Y4m(s) => s.info(),
            PipeSource::Y4mPending { header: h, .. } => {
                SourceInfo::new(format!("y4m:- {}x{}@{} {}", h.width, h.height, h.fps, h.colorspace.name()))
                    .sized(h.width, h.height)
                    .with_fps(h.fps)
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        if let PipeSource::Y4mPending { line, reader, .. } = self {
            let reader = reader.take().expect("built once");
            let rest = AsyncReadExt::chain(std::io::Cursor::new(std::mem::take(line)), reader);
            *self = PipeSource::Y4m(Y4mSource::from_reader(rest, "-").await?);
        }
        match self {
            PipeSource::Wire(s) => s.next_frame().await,
            PipeSource::Y4m(s) => s.next_frame().await,
            PipeSource::Y4mPending { .. } => unreachable!("replaced above"),
        }
    }

    async fn close(&mut self) -> Result<()> {
        match self {
            PipeSource::Wire(s) => s.close().await,
            PipeSource::Y4m(s) => s.close().await,
            PipeSource::Y4mPending { .. } => Ok(()),
        }
    }
}
