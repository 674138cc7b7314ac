//! [`NetworkSink`]: a TCP server that any number of consumers join and leave
//! while the stream runs (the design's `NetworkSink(port=8000, compression=…)`).
//!
//! ```text
//!             ┌─ compress once ─┐   Arc<EncodedChunk>
//! write(frame)┤  (raw: no copy) ├──┬─▶ queue (policy) ─▶ consumer task ─▶ socket
//!             └─────────────────┘  ├─▶ queue (policy) ─▶ consumer task ─▶ socket
//!                                  └─▶ …
//! accept task: HELLO → JOIN (version, capabilities, HMAC) → WELCOME → consumer task
//! ```
//!
//! * **Binds `127.0.0.1`** unless the URI names another address
//!   (`tcp://0.0.0.0:9000` for every interface).
//! * **Compression happens once per frame** and the encoded chunk is shared by
//!   every consumer; with nobody connected, frames are not even encoded.
//! * **Each consumer has its own bounded queue** and task, so a slow, stuck
//!   or hostile consumer never delays the others — except under `block`:
//!   * `latest-only` (default, live): the queue holds the newest chunk; a
//!     consumer that falls behind skips frames. [`NetworkSink::write`] never waits.
//!   * `drop-oldest`: up to `queue_capacity` chunks (default 4), the oldest dropped.
//!   * `block` (lossless): `write` waits until every consumer has room, so the
//!     stream runs at the pace of the slowest consumer and nobody misses a
//!     frame. A consumer that makes no progress for `stall` (default 10 s) is
//!     disconnected so that the others go on.
//!
//!   Under every policy a consumer whose socket accepts nothing for `stall` is
//!   disconnected, and frames written while nobody is connected are not sent
//!   (nor encoded). An H.264 consumer that lost a chunk (to its queue policy)
//!   skips to the next keyframe and asks the encoder for one — honoured at
//!   most every 0.5 s ([`RECOVERY_KEYFRAME_INTERVAL`]), since every consumer
//!   pays for a keyframe's bits. For H.264 to a consumer that may fall
//!   behind, `block` (or `drop-oldest` with room) loses less than `latest-only`.
//! * **Same-host consumers get raw frames through shared memory** (see
//!   [`crate::shm`]): one copy into the consumer's ring instead of two socket
//!   copies and two checksums. Only for consumers that ask and connected
//!   over loopback; `shm=off` on either side turns it off.
//! * **A consumer that joins an H.264 stream starts at a keyframe**: joining
//!   forces an IDR on the next frame ([`streamkit_h264::H264Encoder::force_keyframe`]).
//! * **Hostile peers**: the whole handshake must finish within
//!   `handshake_timeout` (default 5 s; slowloris), at most 16 handshakes run
//!   at once, at most `max_consumers` (default 32) are served; every refusal
//!   sends an ERROR chunk saying why, is counted in [`NetworkSinkStats`], and
//!   closes only that connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use streamkit_core::queue::{self, QueuePolicy};
use streamkit_core::sink::StreamInfo;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Fps, Frame, Result, Sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::{random_nonce, Token};
use crate::codec::{write_all_vectored, CompressOptions, EncodedChunk, FrameCompressor};
use crate::options;
use crate::shm::{self, ShmRing};
use crate::wire::{self, CloseCode, Compression, ErrorKind, Hello, Join, JOIN_LEN};

/// Handshakes that may run at once; more connections are closed at once.
pub const MAX_PENDING_HANDSHAKES: usize = 16;

/// Least time between two keyframes forced for consumers that lost chunks
/// (joining consumers get theirs at once): a consumer that cannot keep up
/// must not turn everyone's stream into keyframes.
pub const RECOVERY_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Everything a [`NetworkSink`] can be told; [`NetworkSinkConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct NetworkSinkConfig {
    /// Address to listen on (default `127.0.0.1`: this machine only).
    pub bind_address: String,
    /// Port to listen on; 0 picks a free one (see [`NetworkSink::local_addr`]).
    pub port: u16,
    pub compress: CompressOptions,
    /// Shared secret consumers must prove they know.
    pub token: Option<Token>,
    /// What a consumer's queue does when it is full (default latest-only).
    pub queue: QueuePolicy,
    /// Chunks a consumer's queue holds (latest-only: 1).
    pub queue_capacity: usize,
    pub max_consumers: usize,
    /// Time a connection has for the whole handshake.
    pub handshake_timeout: Duration,
    /// Time a consumer may make no progress before it is disconnected.
    pub stall_timeout: Duration,
    /// Send raw frames to same-host consumers that ask through shared memory.
    pub shared_memory: bool,
}

impl NetworkSinkConfig {
    pub fn new(port: u16) -> NetworkSinkConfig {
        NetworkSinkConfig {
            bind_address: "127.0.0.1".into(),
            port,
            compress: CompressOptions::default(),
            token: None,
            queue: QueuePolicy::LatestOnly,
            queue_capacity: 4,
            max_consumers: 32,
            handshake_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(10),
            shared_memory: true,
        }
    }

    pub fn with_compression(mut self, compression: Compression) -> NetworkSinkConfig {
        self.compress.compression = compression;
        self
    }

    /// `tcp://HOST:PORT?compression=&token=&token_file=&queue=&capacity=&max_consumers=&bitrate=&quality=&keyframe=&handshake_timeout=&stall=&shm=`
    pub fn from_uri(uri: &Uri) -> Result<NetworkSinkConfig> {
        let (host, port) = options::host_port(uri, Some("127.0.0.1"))?;
        let mut config = NetworkSinkConfig::new(port);
        config.bind_address = host;
        let mut o = uri.options();
        config.compress = options::compress_options(&mut o, uri)?;
        config.token = options::token(&mut o, uri)?;
        if let Some(q) = o.string("queue") {
            config.queue = q.parse().map_err(|e: Error| Error::uri(&uri.raw, format!("option 'queue': {e}")))?;
        }
        if let Some(c) = o.parse::<usize>("capacity", "a number of frames from 1 to 64")? {
            if !(1..=64).contains(&c) {
                return Err(Error::uri(&uri.raw, format!("option 'capacity={c}' is not valid: expected 1 to 64")));
            }
            config.queue_capacity = c;
        }
        if let Some(m) = o.parse::<usize>("max_consumers", "a number of consumers from 1 to 1024")? {
            if !(1..=1024).contains(&m) {
                return Err(Error::uri(
                    &uri.raw,
                    format!("option 'max_consumers={m}' is not valid: expected 1 to 1024"),
                ));
            }
            config.max_consumers = m;
        }
        if let Some(t) = options::duration(&mut o, uri, "handshake_timeout")? {
            config.handshake_timeout = t.max(Duration::from_millis(10));
        }
        if let Some(t) = options::duration(&mut o, uri, "stall")? {
            config.stall_timeout = t.max(Duration::from_millis(10));
        }
        if let Some(shm) = o.flag("shm")? {
            config.shared_memory = shm;
        }
        o.finish()?;
        Ok(config)
    }
}

/// Counters of a running sink, from [`NetworkSink::stats`] or a [`SinkStatsHandle`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSinkStats {
    /// Consumers being served now.
    pub consumers: usize,
    /// Consumers that completed the handshake since the start.
    pub consumers_joined: u64,
    /// Consumers that closed their connection (or whose socket failed).
    pub consumers_left: u64,
    /// Consumers disconnected because they made no progress for `stall`.
    pub consumers_stalled: u64,
    /// Frames given to [`Sink::write`].
    pub frames_written: u64,
    /// Frames compressed (once per frame whatever the number of consumers).
    pub frames_encoded: u64,
    /// Frames not encoded because nobody was connected.
    pub frames_without_consumers: u64,
    /// Chunks written to sockets, summed over consumers.
    pub chunks_sent: u64,
    /// Of those, raw frames whose pixels went through shared memory.
    pub chunks_shared: u64,
    pub bytes_sent: u64,
    /// Chunks consumer queues dropped (latest-only, drop-oldest).
    pub chunks_dropped: u64,
    /// H.264 chunks a consumer skipped while waiting for a keyframe.
    pub chunks_skipped_for_keyframe: u64,
    /// IDR frames forced for joining or recovering consumers.
    pub keyframes_forced: u64,
    /// Handshakes refused: wrong or missing token.
    pub rejected_auth: u64,
    /// Handshakes refused: another wire version.
    pub rejected_version: u64,
    /// Handshakes refused: bad magic, checksum, or a consumer that cannot decode the stream.
    pub rejected_protocol: u64,
    /// Handshakes that did not finish within `handshake_timeout`.
    pub rejected_timeout: u64,
    /// Connections refused because `max_consumers` or the handshake limit was reached.
    pub rejected_busy: u64,
}

#[derive(Default)]
struct Counters {
    consumers_joined: AtomicU64,
    consumers_left: AtomicU64,
    consumers_stalled: AtomicU64,
    frames_written: AtomicU64,
    frames_encoded: AtomicU64,
    frames_without_consumers: AtomicU64,
    chunks_sent: AtomicU64,
    chunks_shared: AtomicU64,
    bytes_sent: AtomicU64,
    chunks_dropped: AtomicU64,
    chunks_skipped_for_keyframe: AtomicU64,
    keyframes_forced: AtomicU64,
    rejected_auth: AtomicU64,
    rejected_version: AtomicU64,
    rejected_protocol: AtomicU64,
    rejected_timeout: AtomicU64,
    rejected_busy: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What HELLO tells joining consumers about the stream.
#[derive(Clone, Copy, Default)]
struct Announced {
    fps: Option<Fps>,
    size: Option<(u32, u32)>,
}

struct Consumer {
    id: u64,
    peer: SocketAddr,
    queue: queue::Sender<Arc<EncodedChunk>>,
    task: JoinHandle<()>,
    reported_drops: u64,
}

struct Shared {
    what: String,
    config: NetworkSinkConfig,
    /// Frame rate and size announced in HELLO.
    announced: Mutex<Announced>,
    consumers: Mutex<Vec<Consumer>>,
    /// Set under the `consumers` lock: no consumer is added after it.
    closed: AtomicBool,
    /// A consumer joined an H.264 stream: the next frame is an IDR.
    keyframe_for_join: AtomicBool,
    /// A consumer lost chunks and waits for an IDR (rate-limited, see
    /// [`RECOVERY_KEYFRAME_INTERVAL`]).
    keyframe_for_recovery: AtomicBool,
    pending_handshakes: AtomicUsize,
    next_id: AtomicU64,
    counters: Counters,
}

impl Shared {
    fn request_keyframe(&self) {
        self.keyframe_for_recovery.store(true, Ordering::Release);
    }

    fn remove(&self, id: u64) -> Option<Consumer> {
        let mut consumers = self.consumers.lock().unwrap();
        let index = consumers.iter().position(|c| c.id == id)?;
        Some(consumers.swap_remove(index))
    }

    fn stats(&self) -> NetworkSinkStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NetworkSinkStats {
            consumers: self.consumers.lock().unwrap().len(),
            consumers_joined: get(&c.consumers_joined),
            consumers_left: get(&c.consumers_left),
            consumers_stalled: get(&c.consumers_stalled),
            frames_written: get(&c.frames_written),
            frames_encoded: get(&c.frames_encoded),
            frames_without_consumers: get(&c.frames_without_consumers),
            chunks_sent: get(&c.chunks_sent),
            chunks_shared: get(&c.chunks_shared),
            bytes_sent: get(&c.bytes_sent),
            chunks_dropped: get(&c.chunks_dropped),
            chunks_skipped_for_keyframe: get(&c.chunks_skipped_for_keyframe),
            keyframes_forced: get(&c.keyframes_forced),
            rejected_auth: get(&c.rejected_auth),
            rejected_version: get(&c.rejected_version),
            rejected_protocol: get(&c.rejected_protocol),
            rejected_timeout: get(&c.rejected_timeout),
            rejected_busy: get(&c.rejected_busy),
        }
    }
}

/// Reads a sink's counters from anywhere, also after the sink moved into a stream.
#[derive(Clone)]
pub struct SinkStatsHandle(Arc<Shared>);

impl SinkStatsHandle {
    pub fn snapshot(&self) -> NetworkSinkStats {
        self.0.stats()
    }

    /// Waits until at least `n` consumers are being served.
    pub async fn wait_for_consumers(&self, n: usize) {
        while self.0.consumers.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Serves frames to any number of TCP consumers. See the module docs.
pub struct NetworkSink {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// The bound socket until the accept task takes it (it needs a runtime).
    listener: Option<std::net::TcpListener>,
    accept_task: Option<JoinHandle<()>>,
    compressor: Option<FrameCompressor>,
    seq: u64,
    closed: bool,
    last_forced_keyframe: Option<std::time::Instant>,
}

impl NetworkSink {
    /// Binds the port now (so that "address in use" is reported here) and
    /// accepts consumers from then on — at once when called inside a tokio
    /// runtime, else from the first frame.
    pub fn bind(config: NetworkSinkConfig) -> Result<NetworkSink> {
        let host = if config.bind_address.contains(':') {
            format!("[{}]:{}", config.bind_address, config.port)
        } else {
            format!("{}:{}", config.bind_address, config.port)
        };
        let listener = std::net::TcpListener::bind(&host)
            .map_err(|e| Error::io(format!("NetworkSink: listening on tcp://{host}"), e))?;
        listener.set_nonblocking(true).map_err(|e| Error::io("NetworkSink: setting up the socket", e))?;
        let local_addr = listener.local_addr().map_err(|e| Error::io("NetworkSink: reading the bound address", e))?;
        let shared = Arc::new(Shared {
            what: format!("tcp://{local_addr}"),
            announced: Mutex::new(Announced::default()),
            consumers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            keyframe_for_join: AtomicBool::new(false),
            keyframe_for_recovery: AtomicBool::new(false),
            pending_handshakes: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            config: config.clone(),
        });
        let mut sink = NetworkSink {
            shared,
            local_addr,
            listener: Some(listener),
            accept_task: None,
            compressor: Some(FrameCompressor::new(config.compress)),
            seq: 0,
            closed: false,
            last_forced_keyframe: None,
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            sink.start()?;
        }
        Ok(sink)
    }

    /// A sink from a `tcp://HOST:PORT?…` URI (see [`NetworkSinkConfig::from_uri`]).
    pub fn from_uri(uri: &Uri) -> Result<NetworkSink> {
        NetworkSink::bind(NetworkSinkConfig::from_uri(uri)?)
    }

    /// The address consumers connect to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> NetworkSinkStats {
        self.shared.stats()
    }

    pub fn stats_handle(&self) -> SinkStatsHandle {
        SinkStatsHandle(self.shared.clone())
    }

    fn start(&mut self) -> Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let listener = TcpListener::from_std(listener)
            .map_err(|e| Error::io(format!("{}: starting to accept consumers", self.shared.what), e))?;
        self.accept_task = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
        Ok(())
    }

    fn announce(&self, fps: Option<Fps>, size: Option<(u32, u32)>) {
        let mut announced = self.shared.announced.lock().unwrap();
        if fps.is_some() {
            announced.fps = fps;
        }
        if size.is_some() {
            announced.size = size;
        }
    }

    /// Whether this frame must be an IDR: at once for a joining consumer, at
    /// most every [`RECOVERY_KEYFRAME_INTERVAL`] for consumers that lost chunks.
    fn keyframe_due(&mut self) -> bool {
        if self.shared.config.compress.compression != Compression::H264 {
            return false;
        }
        let recent = self.last_forced_keyframe.is_some_and(|t| t.elapsed() < RECOVERY_KEYFRAME_INTERVAL);
        let due = self.shared.keyframe_for_join.swap(false, Ordering::AcqRel)
            || (!recent && self.shared.keyframe_for_recovery.swap(false, Ordering::AcqRel));
        if due {
            self.last_forced_keyframe = Some(std::time::Instant::now());
        }
        due
    }

    async fn compress(&mut self, frame: &Frame, force_keyframe: bool) -> Result<EncodedChunk> {
        let mut compressor = self.compressor.take().ok_or_else(|| {
            Error::invalid(format!("{}: an earlier encode failed badly; the sink cannot go on", self.shared.what))
        })?;
        if compressor.options().compression == Compression::None {
            let chunk = compressor.compress(frame, force_keyframe);
            self.compressor = Some(compressor);
            return chunk;
        }
        let frame = frame.clone();
        let (compressor, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = compressor.compress(&frame, force_keyframe);
            (compressor, chunk)
        })
        .await
        .map_err(|e| Error::invalid(format!("{}: the encoder thread failed: {e}", self.shared.what)))?;
        self.compressor = Some(compressor);
        chunk
    }

    fn shut_down(&mut self) -> Vec<Consumer> {
        if let Some(task) = self.accept_task.take() {
            task.abort(); // also aborts the handshakes in flight (they live in its JoinSet)
        }
        self.listener = None;
        let mut consumers = self.shared.consumers.lock().unwrap();
        self.shared.closed.store(true, Ordering::Release);
        consumers.drain(..).collect()
    }
}

impl Drop for NetworkSink {
    /// A sink dropped without [`Sink::close`] (a crash, an aborted task) cuts
    /// every connection at once, without END: consumers see the producer go away.
    fn drop(&mut self) {
        for consumer in self.shut_down() {
            consumer.task.abort();
        }
    }
}

#[async_trait]
impl Sink for NetworkSink {
    fn describe(&self) -> String {
        self.shared.what.clone()
    }

    fn queue_policy(&self) -> QueuePolicy {
        self.shared.config.queue
    }

    fn input_format(&self) -> Option<streamkit_core::PixelFormat> {
        (self.shared.config.compress.compression == Compression::H264).then_some(streamkit_core::PixelFormat::I420)
    }

    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.announce(Some(info.fps), info.size);
        if let Some(c) = &mut self.compressor {
            c.set_fps(info.fps);
        }
        if let Err(e) = self.start() {
            tracing::error!("{e}");
        }
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.closed {
            return Err(Error::invalid(format!("{}: write after close", self.shared.what)));
        }
        self.start()?;
        bump(&self.shared.counters.frames_written);
        self.announce(None, Some(frame.size()));
        let targets: Vec<(u64, queue::Sender<Arc<EncodedChunk>>)> =
            self.shared.consumers.lock().unwrap().iter().map(|c| (c.id, c.queue.clone())).collect();
        if targets.is_empty() {
            bump(&self.shared.counters.frames_without_consumers);
            return Ok(());
        }
        let force_keyframe = self.keyframe_due();
        let mut chunk = self.compress(frame, force_keyframe).await.map_err(|e| e.in_stage(self.shared.what.clone()))?;
        bump(&self.shared.counters.frames_encoded);
        if force_keyframe && chunk.keyframe {
            bump(&self.shared.counters.keyframes_forced);
        }
        self.seq += 1;
        chunk.seq = self.seq;
        fan_out(&self.shared, Arc::new(chunk), targets).await;
        Ok(())
    }

    /// Stops accepting, lets every consumer drain its queue and receive END
    /// (waiting at most `stall`), then closes the connections.
    async fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let consumers = self.shut_down();
        for consumer in &consumers {
            consumer.queue.close();
        }
        let deadline = tokio::time::Instant::now() + self.shared.config.stall_timeout;
        for mut consumer in consumers {
            if tokio::time::timeout_at(deadline, &mut consumer.task).await.is_err() {
                tracing::warn!(
                    "{}: consumer {} did not take the end of the stream in time",
                    self.shared.what,
                    consumer.peer
                );
                consumer.task.abort();
            }
        }
        Ok(())
    }
}

/// Hands `chunk` to every consumer; disconnects those that stalled.
async fn fan_out(shared: &Shared, chunk: Arc<EncodedChunk>, targets: Vec<(u64, queue::Sender<Arc<EncodedChunk>>)>) {
    let block = shared.config.queue == QueuePolicy::Block;
    let stall = shared.config.stall_timeout;
    for (id, queue) in targets {
        let delivered = if block {
            match tokio::time::timeout(stall, queue.send(chunk.clone())).await {
                Ok(result) => result.is_ok(),
                Err(_) => {
                    if let Some(consumer) = shared.remove(id) {
                        tracing::warn!(
                            "{}: consumer {} made no progress for {stall:?}; disconnected so the others go on",
                            shared.what,
                            consumer.peer
                        );
                        consumer.task.abort();
                        bump(&shared.counters.consumers_stalled);
                    }
                    continue;
                }
            }
        } else {
            queue.send(chunk.clone()).await.is_ok()
        };
        if !delivered {
            // The consumer's task ended (it counted why) and closed its queue.
            shared.remove(id);
        }
    }
    let mut consumers = shared.consumers.lock().unwrap();
    for consumer in consumers.iter_mut() {
        let drops = consumer.queue.dropped();
        if drops > consumer.reported_drops {
            shared.counters.chunks_dropped.fetch_add(drops - consumer.reported_drops, Ordering::Relaxed);
            consumer.reported_drops = drops;
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.pending_handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_HANDSHAKES {
                        shared.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
                        bump(&shared.counters.rejected_busy);
                        tracing::warn!("{}: {MAX_PENDING_HANDSHAKES} handshakes already running; closed {peer}", shared.what);
                        continue;
                    }
                    handshakes.spawn(admit(stream, peer, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!("{}: accepting a connection failed: {e}", shared.what);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
        }
    }
}

/// A refused handshake: the ERROR chunk to send and the counter to bump.
struct Refusal {
    code: CloseCode,
    reason: String,
}

impl Refusal {
    fn new(code: CloseCode, reason: impl Into<String>) -> Refusal {
        Refusal { code, reason: reason.into() }
    }
}

async fn admit(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let config = &shared.config;
    let result = tokio::time::timeout(config.handshake_timeout, handshake(&mut stream, &shared)).await;
    shared.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
    let refusal = match result {
        Ok(Ok(join)) => {
            let shared_memory =
                join.shared_memory && config.shared_memory && peer.ip().is_loopback() && crate::shm::available();
            return register(stream, peer, shared_memory, shared);
        }
        Ok(Err(refusal)) => refusal,
        Err(_) => Refusal::new(
            CloseCode::Timeout,
            format!("the handshake did not finish within {:?}", config.handshake_timeout),
        ),
    };
    let counter = match refusal.code {
        CloseCode::AuthFailed => &shared.counters.rejected_auth,
        CloseCode::UnsupportedVersion => &shared.counters.rejected_version,
        CloseCode::Timeout => &shared.counters.rejected_timeout,
        CloseCode::TooManyConsumers => &shared.counters.rejected_busy,
        _ => &shared.counters.rejected_protocol,
    };
    bump(counter);
    tracing::warn!("{}: refused {peer}: {}", shared.what, refusal.reason);
    let chunk = wire::error_chunk(refusal.code, &refusal.reason);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(&chunk).await?;
        stream.shutdown().await
    })
    .await;
}

async fn handshake(stream: &mut TcpStream, shared: &Shared) -> Result<Join, Refusal> {
    let config = &shared.config;
    let io = |e: std::io::Error| {
        Refusal::new(CloseCode::Protocol, format!("the connection failed during the handshake: {e}"))
    };
    let _ = stream.set_nodelay(true);
    let nonce = random_nonce();
    let Announced { fps, size } = *shared.announced.lock().unwrap();
    let hello = Hello {
        version: wire::VERSION,
        auth_required: config.token.is_some(),
        handshake: true,
        compression: config.compress.compression,
        fps,
        size,
        nonce,
    };
    stream.write_all(&hello.encode()).await.map_err(io)?;

    let mut buf = [0u8; JOIN_LEN];
    let mut got = 0;
    let join = loop {
        match Join::parse(&buf[..got]) {
            Ok(Some(join)) => break join,
            Ok(None) => {}
            Err(e) => {
                let code = match e.kind {
                    ErrorKind::UnsupportedVersion { .. } => CloseCode::UnsupportedVersion,
                    _ => CloseCode::Protocol,
                };
                return Err(Refusal::new(code, format!("join: {e}")));
            }
        }
        let n = stream.read(&mut buf[got..]).await.map_err(io)?;
        if n == 0 {
            return Err(Refusal::new(
                CloseCode::Protocol,
                format!("the consumer left during the handshake ({got} bytes of JOIN)"),
            ));
        }
        got += n;
    };
    let compression = config.compress.compression;
    if join.capabilities & compression.bit() == 0 {
        return Err(Refusal::new(
            CloseCode::Incompatible,
            format!("the consumer cannot decode {compression} (capabilities {:#x})", join.capabilities),
        ));
    }
    let proof = match &config.token {
        Some(token) => {
            if !token.verify_join(&nonce, &join.nonce, &join.response) {
                return Err(Refusal::new(
                    CloseCode::AuthFailed,
                    "authentication failed: the consumer's token does not match this producer's",
                ));
            }
            token.welcome_proof(&join.nonce, &nonce)
        }
        None => [0; wire::NONCE_LEN],
    };
    {
        let consumers = shared.consumers.lock().unwrap();
        if consumers.len() >= config.max_consumers {
            return Err(Refusal::new(
                CloseCode::TooManyConsumers,
                format!("this producer serves at most {} consumers", config.max_consumers),
            ));
        }
    }
    stream.write_all(&wire::welcome_chunk(&proof)).await.map_err(io)?;
    Ok(join)
}

fn register(stream: TcpStream, peer: SocketAddr, shared_memory: bool, shared: Arc<Shared>) {
    let config = &shared.config;
    let (tx, rx) = queue::bounded(config.queue_capacity, config.queue);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let mut consumers = shared.consumers.lock().unwrap();
    if shared.closed.load(Ordering::Acquire) {
        return;
    }
    let task = tokio::spawn(serve(stream, peer, id, rx, shared_memory, shared.clone()));
    consumers.push(Consumer { id, peer, queue: tx, task, reported_drops: 0 });
    drop(consumers);
    bump(&shared.counters.consumers_joined);
    if config.compress.compression == Compression::H264 {
        shared.keyframe_for_join.store(true, Ordering::Release);
    }
    let how = if shared_memory { " (raw frames through shared memory)" } else { "" };
    tracing::info!("{}: consumer {peer} joined{how}", shared.what);
}

enum Outcome {
    Ended,
    Left,
    Stalled,
    Failed(String),
}

/// One consumer's task: its queue to its socket.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    queue: queue::Receiver<Arc<EncodedChunk>>,
    shared_memory: bool,
    shared: Arc<Shared>,
) {
    let outcome = feed(stream, &queue, shared_memory, &shared).await;
    // Whoever takes the consumer off the list counts a stall: this task, or
    // a blocked write() whose own stall timeout fired at the same moment.
    let listed = shared.remove(id).is_some();
    drop(queue); // closes the queue: a blocked write() stops waiting for us
    let counters = &shared.counters;
    match outcome {
        Outcome::Ended => tracing::debug!("{}: consumer {peer} got the end of the stream", shared.what),
        Outcome::Left => {
            bump(&counters.consumers_left);
            tracing::info!("{}: consumer {peer} left", shared.what);
        }
        Outcome::Stalled if !listed => {}
        Outcome::Stalled => {
            bump(&counters.consumers_stalled);
            tracing::warn!(
                "{}: consumer {peer} accepted nothing for {:?}; disconnected",
                shared.what,
                shared.config.stall_timeout
            );
        }
        Outcome::Failed(why) => {
            bump(&counters.consumers_left);
            tracing::warn!("{}: consumer {peer}: {why}", shared.what);
        }
    }
}

async fn feed(
    stream: TcpStream,
    queue: &queue::Receiver<Arc<EncodedChunk>>,
    shared_memory: bool,
    shared: &Shared,
) -> Outcome {
    let (mut reader, mut writer) = stream.into_split();
    let mut via_memory = shared_memory.then(SharedMemoryPath::default);
    let stall = shared.config.stall_timeout;
    let h264 = shared.config.compress.compression == Compression::H264;
    let mut need_keyframe = h264;
    let mut last_seq: Option<u64> = None;
    let mut probe = [0u8; 64];
    loop {
        let chunk = tokio::select! {
            item = queue.recv() => match item {
                Some(chunk) => chunk,
                None => {
                    let _ = tokio::time::timeout(stall, async {
                        writer.write_all(&wire::end_chunk()).await?;
                        writer.shutdown().await
                    })
                    .await;
                    return Outcome::Ended;
                }
            },
            read = reader.read(&mut probe) => return match read {
                Ok(0) => Outcome::Left,
                Ok(n) => Outcome::Failed(format!("sent {n} bytes after its JOIN; consumers only listen")),
                Err(e) => Outcome::Failed(format!("connection failed: {e}")),
            },
        };
        if h264 && last_seq.is_some_and(|last| chunk.seq != last + 1) {
            need_keyframe = true; // the queue dropped a chunk: the decoder would break
        }
        last_seq = Some(chunk.seq);
        if need_keyframe && !chunk.keyframe {
            bump(&shared.counters.chunks_skipped_for_keyframe);
            shared.request_keyframe();
            continue;
        }
        need_keyframe = false;
        let in_memory = match via_memory.as_mut().map(|path| path.prepare(&chunk)) {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                tracing::warn!("{}: shared memory failed ({e}); sending raw frames over TCP", shared.what);
                via_memory = None;
                None
            }
            None => None,
        };
        let (parts, len) = match &in_memory {
            Some(bytes) => ([&bytes[..], &[][..], &[][..]], bytes.len()),
            None => (chunk.parts(), chunk.len()),
        };
        match tokio::time::timeout(stall, write_all_vectored(&mut writer, &parts)).await {
            Ok(Ok(())) => {
                bump(&shared.counters.chunks_sent);
                if in_memory.is_some() {
                    bump(&shared.counters.chunks_shared);
                }
                shared.counters.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                return match e.kind() {
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Outcome::Left,
                    _ => Outcome::Failed(format!("writing failed: {e}")),
                }
            }
            Err(_) => return Outcome::Stalled,
        }
    }
}

/// Rings a consumer may not have opened yet (their SHARED_MEMORY chunk still
/// in flight) stay open, up to this many; a consumer further behind than
/// that fails to open one and reconnects.
const RETIRED_RINGS: usize = 4;

/// One consumer's shared-memory ring and what the consumer knows of it.
#[derive(Default)]
struct SharedMemoryPath {
    ring: Option<ShmRing>,
    /// Rings replaced by a bigger one before the consumer was seen using the
    /// ring after them: it may still have to open them.
    retired: Vec<ShmRing>,
}

impl SharedMemoryPath {
    /// For a raw chunk, copies the pixels into a free slot and returns what
    /// to send instead (a new ring's SHARED_MEMORY chunk first when the
    /// frame outgrew the old one); `None` to send the chunk inline (not raw,
    /// or every slot still held by the consumer). After an error, send this
    /// consumer everything over TCP.
    fn prepare(&mut self, chunk: &EncodedChunk) -> Result<Option<Vec<u8>>> {
        let Some((header, pixels)) = chunk.raw() else {
            return Ok(None);
        };
        let fresh = self.ring.as_ref().is_none_or(|r| r.slot_len() < pixels.len());
        if fresh {
            let ring = ShmRing::create(pixels.len(), shm::RING_SLOTS)
                .map_err(|e| Error::io("creating a shared-memory ring", e))?;
            if let Some(old) = self.ring.replace(ring) {
                self.retired.push(old);
                if self.retired.len() > RETIRED_RINGS {
                    self.retired.remove(0);
                }
            }
        } else if !self.retired.is_empty() && self.ring.as_ref().is_some_and(ShmRing::mapped_by_consumer) {
            self.retired.clear(); // the consumer got past every older ring
        }
        let ring = self.ring.as_mut().expect("made above");
        let Some(slot) = ring.put(pixels) else {
            assert!(!fresh, "a new ring has free slots");
            return Ok(None);
        };
        let mut out = if fresh { wire::shared_memory_chunk(ring.offer()) } else { Vec::new() };
        out.extend(wire::shared_frame_chunk(header, slot)?);
        Ok(Some(out))
    }
}
