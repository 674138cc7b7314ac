//! [`NetworkSource`]: frames from a [`crate::NetworkSink`] on this or another
//! machine (the design's `NetworkSource('host', 8000)`).
//!
//! It connects, answers the producer's challenge when it has a token (and
//! checks the producer's proof in return), then yields the frames with the
//! timing, frame numbers and metadata they were sent with. When the producer
//! goes away without ending the stream (a crash, a restart, a network
//! failure) it reconnects with exponential backoff (50 ms doubling up to 2 s)
//! and resumes at the next keyframe; an END chunk ends the stream
//! (`next_frame` returns `None`). Refusals that retrying cannot fix — a wrong
//! token, another wire version, a compression this build cannot decode — are
//! errors at once.
//!
//! Connected over loopback, it asks for raw frames through shared memory
//! ([`crate::shm`]): the frame it yields is then the producer's ring slot,
//! mapped, and goes back to the producer when the frame drops. If the ring
//! cannot be mapped (another user, another PID namespace) it connects again
//! without asking, whatever the reconnect policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Frame, Result, Source, SourceInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{random_nonce, Token};
use crate::codec::FrameDecompressor;
use crate::options;
use crate::shm::ShmView;
use crate::wire::{CloseCode, Compression, Hello, Join, WireDecoder, WireEvent, WireFrame, WireLimits};

/// What to do when the producer goes away mid-stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// Keep trying until stopped (default: a live source comes back).
    Forever,
    /// Fail `next_frame` with the error that broke the connection.
    Off,
    /// Keep trying for this long, then fail.
    For(Duration),
}

/// Everything a [`NetworkSource`] can be told.
#[derive(Clone, Debug)]
pub struct NetworkSourceConfig {
    pub host: String,
    pub port: u16,
    pub token: Option<Token>,
    /// How long the first connection may take, retries included.
    pub connect_timeout: Duration,
    pub reconnect: Reconnect,
    /// First wait between attempts; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Time for one connection attempt and handshake.
    pub handshake_timeout: Duration,
    pub limits: WireLimits,
    /// Ask a producer on this host for raw frames through shared memory.
    pub shared_memory: bool,
}

impl NetworkSourceConfig {
    pub fn new(host: impl Into<String>, port: u16) -> NetworkSourceConfig {
        NetworkSourceConfig {
            host: host.into(),
            port,
            token: None,
            connect_timeout: Duration::from_secs(10),
            reconnect: Reconnect::Forever,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            limits: WireLimits::default(),
            shared_memory: true,
        }
    }

    pub fn with_token(mut self, token: Token) -> NetworkSourceConfig {
        self.token = Some(token);
        self
    }

    /// `tcp://HOST:PORT?token=&token_file=&timeout=&reconnect=forever|off|DURATION&shm=on|off`
    pub fn from_uri(uri: &Uri) -> Result<NetworkSourceConfig> {
        let (host, port) = options::host_port(uri, None)?;
        let mut config = NetworkSourceConfig::new(host, port);
        let mut o = uri.options();
        config.token = options::token(&mut o, uri)?;
        if let Some(t) = options::duration(&mut o, uri, "timeout")? {
            config.connect_timeout = t;
        }
        if let Some(r) = o.string("reconnect") {
            config.reconnect = match r {
                "forever" | "on" | "yes" | "true" => Reconnect::Forever,
                "off" | "no" | "false" | "0" => Reconnect::Off,
                d => Reconnect::For(options::parse_duration(d).ok_or_else(|| {
                    Error::uri(
                        &uri.raw,
                        format!("option 'reconnect={r}' is not valid: expected forever, off or a duration like 30s"),
                    )
                })?),
            };
        }
        if let Some(shm) = o.flag("shm")? {
            config.shared_memory = shm;
        }
        o.finish()?;
        Ok(config)
    }

    fn what(&self) -> String {
        if self.host.contains(':') {
            format!("tcp://[{}]:{}", self.host, self.port)
        } else {
            format!("tcp://{}:{}", self.host, self.port)
        }
    }
}

/// Counters of a source, from [`NetworkSource::stats`] or [`NetworkSource::stats_handle`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSourceStats {
    pub frames: u64,
    /// Of those, raw frames received through shared memory.
    pub shared_frames: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    pub bytes: u64,
    /// H.264 chunks skipped while waiting for a keyframe after a reconnect or a decode error.
    pub skipped_waiting_for_keyframe: u64,
    pub decode_errors: u64,
    /// Why the last connection or attempt failed.
    pub last_error: Option<String>,
}

/// A connected, authenticated stream.
struct Connection {
    stream: Option<TcpStream>,
    /// Made by [`NetworkSource::connect_blocking`] on a helper thread's
    /// runtime; registered with the caller's runtime on first use.
    detached: Option<std::net::TcpStream>,
    decoder: WireDecoder,
    hello: Hello,
    /// Our JOIN asked for shared memory.
    asked_for_shared_memory: bool,
    /// The producer's shared-memory ring, once announced.
    shm: Option<ShmView>,
}

/// A failed connection attempt; `permanent` when retrying cannot help.
struct ConnectError {
    error: Error,
    permanent: bool,
    /// The producer refused a JOIN that asked for shared memory as a
    /// protocol error: a build from before shared memory, so ask no more.
    refused_shared_memory: bool,
}

impl ConnectError {
    fn transient(error: Error) -> ConnectError {
        ConnectError { error, permanent: false, refused_shared_memory: false }
    }

    fn permanent(error: Error) -> ConnectError {
        ConnectError { error, permanent: true, refused_shared_memory: false }
    }
}

impl Connection {
    fn tokio(&mut self) -> std::io::Result<&mut TcpStream> {
        if let Some(std) = self.detached.take() {
            self.stream = Some(TcpStream::from_std(std)?);
        }
        self.stream.as_mut().ok_or_else(|| std::io::ErrorKind::NotConnected.into())
    }

    /// Leaves the current runtime (see [`NetworkSource::connect_blocking`]).
    fn detach(&mut self) -> std::io::Result<()> {
        if let Some(stream) = self.stream.take() {
            self.detached = Some(stream.into_std()?);
        }
        Ok(())
    }

    /// The next event; end of input is an error (the producer went away)
    /// unless END came first.
    async fn next_event(&mut self) -> Result<WireEvent> {
        loop {
            let what = self.decoder.what().to_string();
            if let Some(event) = self.decoder.poll().map_err(|e| e.into_error(&what))? {
                return Ok(event);
            }
            self.tokio().map_err(|e| Error::io(format!("{what}: using the connection"), e))?;
            let Connection { stream: Some(stream), decoder, .. } = self else { unreachable!("attached above") };
            let n = stream.read(decoder.buffer()).await.map_err(|e| Error::io(format!("reading {what}"), e))?;
            if n == 0 {
                return match self.decoder.finish() {
                    Ok(_) => Err(Error::io(
                        format!("{what}: the producer closed the connection without ending the stream"),
                        std::io::ErrorKind::UnexpectedEof.into(),
                    )),
                    Err(e) => Err(e.into_error(&what)),
                };
            }
            self.decoder.advance(n);
        }
    }
}

async fn open(config: &NetworkSourceConfig) -> Result<Connection, ConnectError> {
    let what = config.what();
    let attempt = async {
        let stream = TcpStream::connect((config.host.as_str(), config.port))
            .await
            .map_err(|e| ConnectError::transient(Error::io(format!("connecting to {what}"), e)))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            stream: Some(stream),
            detached: None,
            decoder: WireDecoder::with_limits(what.clone(), config.limits),
            hello: Hello::one_way(Compression::None, None, None),
            asked_for_shared_memory: false,
            shm: None,
        };
        handshake(&mut conn, config, &what).await?;
        Ok(conn)
    };
    match tokio::time::timeout(config.handshake_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::transient(Error::invalid(format!(
            "{what}: no connection and handshake within {:?}",
            config.handshake_timeout
        )))),
    }
}

async fn handshake(conn: &mut Connection, config: &NetworkSourceConfig, what: &str) -> Result<(), ConnectError> {
    let transient = ConnectError::transient;
    let hello = match conn.next_event().await.map_err(classify)? {
        WireEvent::Hello(hello) => hello,
        other => unreachable!("a decoder yields HELLO first, not {other:?}"),
    };
    if !hello.handshake {
        return Err(ConnectError::permanent(Error::invalid(format!(
            "{what}: the peer sends a one-way wire stream (a pipe or file relay), not a NetworkSink"
        ))));
    }
    if hello.auth_required && config.token.is_none() {
        return Err(ConnectError::permanent(Error::invalid(format!(
            "{what}: authentication failed: the producer requires a token; add token=… (or token_file=…)"
        ))));
    }
    if config.token.is_some() && !hello.auth_required {
        return Err(ConnectError::permanent(Error::invalid(format!(
            "{what}: the producer does not ask for a token, so it cannot prove it knows ours; \
             give the producer the same token= or leave it out here"
        ))));
    }
    let nonce = random_nonce();
    let response = config.token.as_ref().map_or([0; 32], |t| t.join_response(&hello.nonce, &nonce));
    let stream = conn.tokio().map_err(|e| transient(Error::io(format!("{what}: using the connection"), e)))?;
    let local_peer = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let shared_memory = config.shared_memory && local_peer && crate::shm::available();
    let join = Join { capabilities: Compression::all_bits(), nonce, response, shared_memory };
    stream.write_all(&join.encode()).await.map_err(|e| transient(Error::io(format!("{what}: sending JOIN"), e)))?;
    conn.asked_for_shared_memory = shared_memory;
    match conn.next_event().await.map_err(classify)? {
        WireEvent::Welcome { proof } => {
            if let Some(token) = &config.token {
                if !token.verify_welcome(&nonce, &hello.nonce, &proof) {
                    return Err(ConnectError::permanent(Error::invalid(format!(
                        "{what}: authentication failed: the producer could not prove it knows our token"
                    ))));
                }
            }
        }
        WireEvent::Error { code, reason } => {
            let permanent =
                matches!(code, CloseCode::AuthFailed | CloseCode::UnsupportedVersion | CloseCode::Incompatible);
            let error = Error::invalid(format!("{what}: the producer refused the connection: {reason}"));
            let refused_shared_memory = code == CloseCode::Protocol && conn.asked_for_shared_memory;
            return Err(ConnectError { error, permanent, refused_shared_memory });
        }
        other => {
            return Err(transient(Error::invalid(format!(
                "{what}: expected WELCOME after our JOIN, got {}",
                event_name(&other)
            ))))
        }
    }
    conn.hello = hello;
    Ok(())
}

/// Errors while reading a handshake: a version mismatch is permanent.
fn classify(error: Error) -> ConnectError {
    match error {
        Error::Unsupported(_) => ConnectError::permanent(error),
        _ => ConnectError::transient(error),
    }
}

fn event_name(event: &WireEvent) -> &'static str {
    match event {
        WireEvent::Hello(_) => "a second HELLO",
        WireEvent::Welcome { .. } => "WELCOME",
        WireEvent::Frame(_) => "a FRAME",
        WireEvent::SharedMemory(_) => "SHARED_MEMORY",
        WireEvent::Error { .. } => "ERROR",
        WireEvent::End => "END",
    }
}

/// Connects with exponential backoff until `deadline` (none: forever).
async fn connect_with_backoff(
    config: &NetworkSourceConfig,
    deadline: Option<Instant>,
    stats: &Mutex<NetworkSourceStats>,
) -> Result<Connection> {
    let mut config = std::borrow::Cow::Borrowed(config);
    let mut delay = config.backoff_initial;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match open(&config).await {
            Ok(conn) => return Ok(conn),
            Err(e) if e.permanent => return Err(e.error),
            Err(e) if e.refused_shared_memory && config.shared_memory => {
                tracing::info!("{}: {}; asking again without shared memory", config.what(), e.error);
                config.to_mut().shared_memory = false;
            }
            Err(e) => {
                stats.lock().unwrap().last_error = Some(e.error.to_string());
                let now = Instant::now();
                if deadline.is_some_and(|d| now + delay > d) {
                    return Err(Error::invalid(format!(
                        "{}: gave up after {attempts} attempts: {}",
                        config.what(),
                        e.error
                    )));
                }
                if attempts == 1 || attempts.is_multiple_of(10) {
                    tracing::info!("{}: waiting for the producer ({})", config.what(), e.error);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(config.backoff_max);
            }
        }
    }
}

/// Metadata key prefix of the hop stamps: `received_ns@tcp://HOST:PORT` is
/// when (`CLOCK_MONOTONIC`, ns) a frame arrived from that producer.
pub const HOP_STAMP_PREFIX: &str = "received_ns@";

/// Most hop stamps a frame collects; later hops stop stamping, so a stream
/// relayed many times stays within the wire format's metadata limits.
const MAX_HOP_STAMPS: usize = 16;

/// Records the arrival of `frame` from `what`, so that a chain of hosts can
/// tell each hop's latency from the frame alone (capture time, then one
/// stamp per hop; machines of one chain compare stamps when their clocks
/// agree, as on one machine or under PTP).
fn stamp_hop(frame: &mut Frame, what: &str) {
    let stamps = frame.metadata.iter().filter(|(k, _)| k.starts_with(HOP_STAMP_PREFIX)).count();
    if stamps < MAX_HOP_STAMPS {
        frame.metadata.insert(format!("{HOP_STAMP_PREFIX}{what}"), streamkit_core::time::monotonic_ns().to_string());
    }
}

/// Receives frames from a [`crate::NetworkSink`]. See the module docs.
pub struct NetworkSource {
    config: NetworkSourceConfig,
    what: String,
    conn: Option<Connection>,
    hello: Option<Hello>,
    decompressor: Option<FrameDecompressor>,
    wait_for_keyframe: bool,
    connected_once: bool,
    ended: bool,
    stats: Arc<Mutex<NetworkSourceStats>>,
}

impl NetworkSource {
    /// A source that connects on its first [`Source::next_frame`] (so
    /// [`Source::info`] knows no size or rate before).
    pub fn lazy(config: NetworkSourceConfig) -> NetworkSource {
        NetworkSource {
            what: config.what(),
            config,
            conn: None,
            hello: None,
            decompressor: Some(FrameDecompressor::new()),
            wait_for_keyframe: true,
            connected_once: false,
            ended: false,
            stats: Arc::default(),
        }
    }

    /// Connects (retrying for up to `connect_timeout`) and authenticates.
    pub async fn connect(config: NetworkSourceConfig) -> Result<NetworkSource> {
        let mut source = NetworkSource::lazy(config);
        let deadline = Instant::now() + source.config.connect_timeout;
        let conn = connect_with_backoff(&source.config, Some(deadline), &source.stats).await?;
        source.attach(conn);
        Ok(source)
    }

    /// [`NetworkSource::connect`] for synchronous callers (registry
    /// factories): runs the connection on a helper thread and blocks until
    /// it is made, so that [`Source::info`] reports the stream's size and
    /// rate. Do not call it from a single-threaded runtime that also runs
    /// the producer.
    pub fn connect_blocking(config: NetworkSourceConfig) -> Result<NetworkSource> {
        let what = config.what();
        let handle = std::thread::Builder::new()
            .name("streamkit-net-connect".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::io("starting a runtime for the first connection", e))?;
                let mut source = runtime.block_on(NetworkSource::connect(config))?;
                // The socket leaves this runtime; the caller's registers it again.
                if let Some(conn) = &mut source.conn {
                    conn.detach().map_err(|e| Error::io("moving the connection", e))?;
                }
                Ok(source)
            })
            .map_err(|e| Error::io(format!("{what}: starting the connection thread"), e))?;
        handle.join().map_err(|_| Error::invalid(format!("{what}: the connection thread panicked")))?
    }

    /// A source from `tcp://HOST:PORT?…` (see [`NetworkSourceConfig::from_uri`]); connects at once.
    pub fn from_uri(uri: &Uri) -> Result<NetworkSource> {
        NetworkSource::connect_blocking(NetworkSourceConfig::from_uri(uri)?)
    }

    pub fn stats(&self) -> NetworkSourceStats {
        self.stats.lock().unwrap().clone()
    }

    /// The counters, readable while the source runs inside a stream.
    pub fn stats_handle(&self) -> Arc<Mutex<NetworkSourceStats>> {
        self.stats.clone()
    }

    /// The producer's stream header (after the first connection).
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    fn attach(&mut self, conn: Connection) {
        if self.connected_once {
            self.stats.lock().unwrap().reconnects += 1;
            tracing::info!("{}: reconnected", self.what);
        }
        self.connected_once = true;
        self.hello = Some(conn.hello.clone());
        self.conn = Some(conn);
        // A new connection is a new H.264 stream: fresh decoder, start at a keyframe.
        self.decompressor = Some(FrameDecompressor::new());
        self.wait_for_keyframe = true;
    }

    async fn reconnect(&mut self, cause: Error) -> Result<()> {
        let deadline = match self.config.reconnect {
            Reconnect::Off => return Err(cause),
            Reconnect::Forever => None,
            Reconnect::For(d) => Some(Instant::now() + d),
        };
        tracing::warn!("{}: {cause}; reconnecting", self.what);
        let conn = connect_with_backoff(&self.config, deadline, &self.stats).await?;
        self.attach(conn);
        Ok(())
    }

    /// Connects, retrying for up to `connect_timeout`.
    async fn connect_within_timeout(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.config.connect_timeout;
        let conn = connect_with_backoff(&self.config, Some(deadline), &self.stats).await?;
        self.attach(conn);
        Ok(())
    }

    /// Drops the connection because of `e` and reconnects as the policy says.
    async fn lose_connection(&mut self, e: Error) -> Result<()> {
        self.stats.lock().unwrap().last_error = Some(e.to_string());
        self.conn = None;
        self.reconnect(e).await
    }

    /// The producer's ring cannot be mapped here (typically another user or
    /// PID namespace): connects again without asking for shared memory,
    /// whatever the reconnect policy, since plain TCP works.
    async fn fall_back_to_tcp(&mut self, why: String) -> Result<()> {
        let e = Error::invalid(format!("{}: cannot map the producer's shared memory: {why}", self.what));
        tracing::warn!("{e}; connecting again without shared memory");
        self.stats.lock().unwrap().last_error = Some(e.to_string());
        self.config.shared_memory = false;
        self.conn = None;
        self.connect_within_timeout().await
    }

    async fn decompress(&mut self, chunk: WireFrame) -> Result<Option<Frame>> {
        let mut decompressor = self.decompressor.take().unwrap_or_default();
        if chunk.header.compression == Compression::None {
            let frame = decompressor.decompress(chunk);
            self.decompressor = Some(decompressor);
            return frame;
        }
        let (decompressor, frame) = tokio::task::spawn_blocking(move || {
            let frame = decompressor.decompress(chunk);
            (decompressor, frame)
        })
        .await
        .map_err(|e| Error::invalid(format!("{}: the decoder thread failed: {e}", self.what)))?;
        self.decompressor = Some(decompressor);
        frame
    }
}

#[async_trait]
impl Source for NetworkSource {
    fn info(&self) -> SourceInfo {
        let mut info = SourceInfo::new(match &self.hello {
            Some(h) => format!(
                "{} ({}{}{})",
                self.what,
                h.compression,
                h.size.map(|(w, h)| format!(" {w}x{h}")).unwrap_or_default(),
                h.fps.map(|f| format!("@{f}")).unwrap_or_default()
            ),
            None => self.what.clone(),
        });
        if let Some(h) = &self.hello {
            info.fps = h.fps;
            if let Some((w, h)) = h.size {
                info = info.sized(w, h);
            }
        }
        info.live = true;
        info
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if self.conn.is_none() {
                let cause = match self.stats.lock().unwrap().last_error.clone() {
                    Some(e) => Error::invalid(e),
                    None => Error::invalid(format!("{}: not connected", self.what)),
                };
                if self.connected_once {
                    self.reconnect(cause).await?;
                } else {
                    self.connect_within_timeout().await?;
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            let before = conn.decoder.position();
            let event = conn.next_event().await;
            let read = conn.decoder.position() - before;
            self.stats.lock().unwrap().bytes += read;
            match event {
                Ok(WireEvent::Frame(mut chunk)) => {
                    if let Some(slot) = chunk.shared {
                        match conn
                            .shm
                            .as_ref()
                            .ok_or("before any SHARED_MEMORY chunk".into())
                            .and_then(|v| v.take(slot.slot, slot.len))
                        {
                            Ok(pixels) => {
                                chunk.payload = pixels;
                                self.stats.lock().unwrap().shared_frames += 1;
                            }
                            Err(why) => {
                                let why = format!("a shared-memory frame the producer did not provide: {why}");
                                self.lose_connection(Error::malformed(&self.what, chunk.offset, why)).await?;
                                continue;
                            }
                        }
                    }
                    let keyframe = chunk.header.keyframe;
                    if self.wait_for_keyframe && !keyframe {
                        self.stats.lock().unwrap().skipped_waiting_for_keyframe += 1;
                        continue;
                    }
                    let number = chunk.header.timing.frame_number;
                    match self.decompress(chunk).await {
                        Ok(Some(mut frame)) => {
                            stamp_hop(&mut frame, &self.what);
                            self.wait_for_keyframe = false;
                            self.stats.lock().unwrap().frames += 1;
                            return Ok(Some(frame));
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            // A damaged picture: skip to the next keyframe.
                            tracing::warn!("{}: frame {number}: {e}; waiting for a keyframe", self.what);
                            let mut stats = self.stats.lock().unwrap();
                            stats.decode_errors += 1;
                            stats.last_error = Some(e.to_string());
                            self.wait_for_keyframe = true;
                        }
                    }
                }
                Ok(WireEvent::SharedMemory(offer)) => {
                    if !conn.asked_for_shared_memory {
                        let why = "a SHARED_MEMORY chunk we did not ask for";
                        let e = Error::malformed(&self.what, conn.decoder.position(), why);
                        self.lose_connection(e).await?;
                        continue;
                    }
                    match ShmView::open(&offer) {
                        Ok(view) => conn.shm = Some(view),
                        Err(why) => self.fall_back_to_tcp(why).await?,
                    }
                }
                Ok(WireEvent::End) => {
                    self.ended = true;
                    self.conn = None;
                    return Ok(None);
                }
                Ok(WireEvent::Error { code, reason }) => {
                    let e = Error::invalid(format!("{}: the producer closed the connection: {reason}", self.what));
                    self.stats.lock().unwrap().last_error = Some(e.to_string());
                    self.conn = None;
                    if code == CloseCode::AuthFailed {
                        return Err(e);
                    }
                    self.reconnect(e).await?;
                }
                Ok(other) => {
                    let e = Error::invalid(format!(
                        "{}: unexpected {} in the middle of the stream",
                        self.what,
                        event_name(&other)
                    ));
                    self.lose_connection(e).await?;
                }
                Err(e) => self.lose_connection(e).await?,
            }
        }
    }

    async fn close(&mut self) -> Result<()> {
        self.conn = None;
        Ok(())
    }
}
