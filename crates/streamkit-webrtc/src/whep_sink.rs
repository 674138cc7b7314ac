//! `whep://HOST:PORT` — the design's `WebRTCSink`: browsers (and any WHEP
//! player) watch the stream over WebRTC.
//!
//! One HTTP server answers WHEP (`POST /whep` an SDP offer → `201` with the
//! answer and the session's `Location`; `DELETE` that location to leave) and
//! serves a viewer page at `/`. The stream is encoded **once** (H.264
//! constrained baseline, [`EncodeStage`] on a blocking thread) and every
//! access unit goes, shared, to every viewer through a bounded broadcast
//! queue: a viewer that falls behind loses the oldest units, waits for the
//! next keyframe and asks for one. A new viewer, a PLI or a FIR forces a
//! keyframe from the single encoder (at most one every
//! [`MIN_KEYFRAME_SPACING`]); with no viewer connected nothing is encoded.
//!
//! Each viewer is a task owning a str0m `Rtc` and its own UDP socket
//! (see [`crate::peer`]); it ends on `DELETE`, when ICE reports the peer
//! gone, or when nothing arrived for `idle_timeout` (a closed tab).
//!
//! `streamkit run 'test:smpte?size=1280x720&fps=30' --realtime -o 'whep://127.0.0.1:8889'`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, IceConnectionState};
use streamkit_core::queue::QueuePolicy;
use streamkit_core::sink::StreamInfo;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Frame, PixelFormat, Result, Sink};
use streamkit_media::encode::{pts_90k, EncodeOptions, EncodeStage};
use tokio::sync::{broadcast, oneshot};

use crate::http::{self, Request, Response};
use crate::peer::{self, IceOptions, Peer};
use crate::signalling;

/// Forced keyframes are at least this far apart, so that a burst of PLIs
/// (many viewers joining, a lossy link) cannot turn the stream into IDRs.
pub const MIN_KEYFRAME_SPACING: Duration = Duration::from_millis(300);

/// Access units a viewer may lag behind before it skips to a keyframe
/// (two seconds at 30 fps).
const FEED_CAPACITY: usize = 60;

pub const DEFAULT_PORT: u16 = 8889;

/// `WebRTCSink(ice_servers=[…])` options, from `whep://HOST:PORT?…`.
#[derive(Clone, Debug, PartialEq)]
pub struct WhepSinkOptions {
    /// Where the HTTP server listens (`127.0.0.1:8889` by default).
    pub addr: SocketAddr,
    /// Required as `Authorization: Bearer …` (or `?token=` on the page) when set.
    pub token: Option<String>,
    pub encode: EncodeOptions,
    pub ice: IceOptions,
    /// Viewers at once; more get `503`.
    pub max_viewers: usize,
}

impl Default for WhepSinkOptions {
    fn default() -> Self {
        WhepSinkOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            token: None,
            encode: EncodeOptions { bitrate_bps: 4_000_000, keyframe_seconds: Some(2.0), ..EncodeOptions::default() },
            ice: IceOptions::default(),
            max_viewers: 16,
        }
    }
}

impl WhepSinkOptions {
    /// `whep://HOST:PORT?token=T&bitrate=4000000&keyint=2&ice_servers=stun:…&max_viewers=16&idle_timeout=10`.
    pub fn from_uri(uri: &Uri) -> Result<WhepSinkOptions> {
        let defaults = WhepSinkOptions::default();
        let addr = crate::parse_listen_addr(uri, DEFAULT_PORT)?;
        let mut o = uri.options();
        let options = WhepSinkOptions {
            addr,
            token: o.string("token").map(str::to_string),
            encode: EncodeOptions {
                bitrate_bps: o
                    .parse("bitrate", "bits per second, e.g. 4000000")?
                    .unwrap_or(defaults.encode.bitrate_bps),
                keyframe_seconds: o
                    .parse("keyint", "seconds between keyframes, e.g. 2")?
                    .or(defaults.encode.keyframe_seconds),
                ..EncodeOptions::default()
            },
            ice: crate::ice_options(&mut o, addr)?,
            max_viewers: o.parse("max_viewers", "a number of viewers, e.g. 16")?.unwrap_or(defaults.max_viewers),
        };
        o.finish()?;
        Ok(options)
    }
}

/// One encoded access unit, shared by every viewer.
#[derive(Debug)]
pub struct EncodedUnit {
    /// Annex-B; a keyframe starts with its SPS and PPS.
    pub data: Arc<[u8]>,
    pub keyframe: bool,
    /// Media time, 90 kHz.
    pub rtp_time: u64,
    /// When the frame was captured (the RTCP sender reports map `rtp_time` to it).
    pub capture: Instant,
}

/// What the sink and its sessions share.
struct Shared {
    options: WhepSinkOptions,
    feed: broadcast::Sender<Arc<EncodedUnit>>,
    sessions: signalling::Sessions,
    keyframe_wanted: AtomicBool,
    connected: AtomicUsize,
    sessions_started: AtomicU64,
    sessions_ended: AtomicU64,
    frames_encoded: AtomicU64,
    /// The viewer page, with the ICE servers filled in.
    page: String,
}

impl Shared {
    fn want_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }
}

/// A cheap handle on a running sink, for tests and supervisors.
#[derive(Clone)]
pub struct WhepSinkHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl WhepSinkHandle {
    /// Where the HTTP server listens (the port is real even when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/whep`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/whep", self.addr)
    }

    /// Sessions that exist (negotiated, connecting or connected).
    pub fn sessions(&self) -> usize {
        self.shared.sessions.lock().unwrap().len()
    }

    /// Sessions whose ICE and DTLS are up.
    pub fn connected(&self) -> usize {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Frames the one encoder encoded (none while nobody watches), however many viewers.
    pub fn frames_encoded(&self) -> u64 {
        self.shared.frames_encoded.load(Ordering::Relaxed)
    }

    /// Sessions started and ended since the sink started.
    pub fn sessions_started_ended(&self) -> (u64, u64) {
        (self.shared.sessions_started.load(Ordering::Relaxed), self.shared.sessions_ended.load(Ordering::Relaxed))
    }
}

pub struct WhepSink {
    shared: Arc<Shared>,
    encode: EncodeStage,
    listener: Option<std::net::TcpListener>,
    server: Option<http::Server>,
    addr: SocketAddr,
    last_forced: Option<Instant>,
}

impl WhepSink {
    /// Binds the HTTP port now (so that a port in use fails at once and the
    /// real port is known); serving starts with the stream.
    pub fn create(options: WhepSinkOptions) -> Result<WhepSink> {
        let listener = std::net::TcpListener::bind(options.addr).map_err(|e| {
            Error::invalid(format!("whep: cannot listen on {}: {e} (is the port in use?)", options.addr))
        })?;
        listener.set_nonblocking(true).map_err(|e| Error::invalid(format!("whep: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::invalid(format!("whep: {e}")))?;
        let page = crate::pages::viewer(&options.ice);
        let encode = EncodeStage::live(options.encode, format!("whep://{addr}"));
        let shared = Arc::new(Shared {
            feed: broadcast::channel(FEED_CAPACITY).0,
            sessions: Mutex::new(HashMap::new()),
            keyframe_wanted: AtomicBool::new(true),
            connected: AtomicUsize::new(0),
            sessions_started: AtomicU64::new(0),
            sessions_ended: AtomicU64::new(0),
            frames_encoded: AtomicU64::new(0),
            page,
            options,
        });
        let mut sink = WhepSink { shared, encode, listener: Some(listener), server: None, addr, last_forced: None };
        if tokio::runtime::Handle::try_current().is_ok() {
            sink.start_server()?;
        }
        Ok(sink)
    }

    pub fn from_uri(uri: &Uri) -> Result<WhepSink> {
        WhepSink::create(WhepSinkOptions::from_uri(uri)?)
    }

    pub fn handle(&self) -> WhepSinkHandle {
        WhepSinkHandle { shared: self.shared.clone(), addr: self.addr }
    }

    fn start_server(&mut self) -> Result<()> {
        let Some(listener) = self.listener.take() else { return Ok(()) };
        let shared = self.shared.clone();
        let server = http::serve_std(listener, move |request| route(shared.clone(), request))?;
        eprintln!("watch at http://{}/ (WHEP endpoint http://{}/whep)", self.addr, self.addr);
        self.server = Some(server);
        Ok(())
    }

    /// Whether this frame must be a keyframe: a viewer asked (joined, PLI,
    /// FIR, fell behind), and the last forced one is old enough.
    fn take_keyframe_request(&mut self) -> bool {
        let spaced = self.last_forced.is_none_or(|t| t.elapsed() >= MIN_KEYFRAME_SPACING);
        if spaced && self.shared.keyframe_wanted.swap(false, Ordering::Relaxed) {
            self.last_forced = Some(Instant::now());
            return true;
        }
        false
    }
}

#[async_trait]
impl Sink for WhepSink {
    fn describe(&self) -> String {
        format!("whep://{}", self.addr)
    }

    /// Live: a viewer wants the newest picture, not every old one.
    fn queue_policy(&self) -> QueuePolicy {
        QueuePolicy::LatestOnly
    }

    fn input_format(&self) -> Option<PixelFormat> {
        Some(PixelFormat::I420) // what the encoder reads
    }

    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.encode.set_stream_info(info);
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        self.start_server()?;
        if self.shared.connected.load(Ordering::Relaxed) == 0 {
            // Nobody watches: spend nothing; the next viewer starts on a keyframe.
            self.shared.want_keyframe();
            return Ok(());
        }
        let keyframe = self.take_keyframe_request();
        let encoded = self.encode.encode(frame, keyframe).await?;
        self.shared.frames_encoded.fetch_add(1, Ordering::Relaxed);
        let capture = if frame.timing.capture_time_ns != 0 {
            peer::instant_of_monotonic(frame.timing.capture_time_ns)
        } else {
            Instant::now()
        };
        let unit = EncodedUnit {
            data: encoded.data.into(),
            keyframe: encoded.keyframe,
            rtp_time: pts_90k(&frame.timing).max(0) as u64,
            capture,
        };
        let _ = self.shared.feed.send(Arc::new(unit)); // no receiver: nobody connected any more
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let sessions: Vec<_> = self.shared.sessions.lock().unwrap().drain().collect();
        for (_, stop) in sessions {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        Ok(())
    }
}

impl Drop for WhepSink {
    fn drop(&mut self) {
        for (_, stop) in self.shared.sessions.lock().unwrap().drain() {
            let _ = stop.send(());
        }
    }
}

async fn route(shared: Arc<Shared>, request: Request) -> Response {
    let endpoint = signalling::Endpoint {
        path: "/whep",
        page: &shared.page,
        token: shared.options.token.as_deref(),
        sessions: &shared.sessions,
    };
    signalling::route(endpoint, &request, || async {
        start_session(&shared, &request).await.unwrap_or_else(|refusal| refusal)
    })
    .await
}

/// Negotiates one viewer: answer the offer, spawn its task.
async fn start_session(shared: &Arc<Shared>, request: &Request) -> std::result::Result<Response, Response> {
    if shared.sessions.lock().unwrap().len() >= shared.options.max_viewers {
        return Err(Response::text(503, format!("{} viewers already; try later", shared.options.max_viewers)));
    }
    let offer = crate::parse_offer(request)?;
    if !offer.to_sdp_string().contains("m=video") {
        return Err(Response::text(400, "the offer has no video m-line (a WHEP viewer offers to receive video)"));
    }
    let (bound, candidates) = shared.options.ice.bind().await.map_err(|e| Response::text(500, e.to_string()))?;
    let mut rtc = peer::new_rtc();
    for candidate in candidates {
        rtc.add_local_candidate(candidate);
    }
    let answer =
        rtc.sdp_api().accept_offer(offer).map_err(|e| Response::text(400, format!("cannot answer this offer: {e}")))?;
    let answer = answer.to_sdp_string();
    if !answer.contains("H264/90000") {
        return Err(Response::text(400, "the offer has no H.264 (this server sends H.264 constrained baseline)"));
    }
    let peer = Peer::new(rtc, bound).map_err(|e| Response::text(500, e.to_string()))?;
    let id = crate::session_id();
    let (stop_tx, stop_rx) = oneshot::channel();
    shared.sessions.lock().unwrap().insert(id.clone(), stop_tx);
    shared.sessions_started.fetch_add(1, Ordering::Relaxed);
    let feed = shared.feed.subscribe();
    tokio::spawn(run_viewer(peer, shared.clone(), feed, stop_rx, id.clone()));
    let mut response = Response::new(201, "application/sdp", answer)
        .with_header("Location", format!("/whep/{id}"))
        .with_header("ETag", format!("\"{id}\""));
    for link in shared.options.ice.link_headers() {
        response = response.with_header("Link", link);
    }
    Ok(response)
}

/// The H.264 payload type to send: constrained baseline with
/// packetization-mode 1 when the viewer offered it, else any H.264.
fn pick_h264(peer: &mut Peer, mid: Mid) -> Option<Pt> {
    let writer = peer.rtc.writer(mid)?;
    let rank = |p: &str0m::format::PayloadParams| {
        let f = p.spec().format;
        let cb = f.profile_level_id.is_some_and(|id| id >> 8 == 0x42e0);
        let baseline = f.profile_level_id.is_some_and(|id| id >> 16 == 0x42);
        (f.packetization_mode == Some(1), cb, baseline)
    };
    writer.payload_params().filter(|p| p.spec().codec == Codec::H264).max_by_key(|p| rank(p)).map(|p| p.pt())
}

enum Wake {
    Stop,
    Packet(std::io::Result<(usize, SocketAddr)>),
    Unit(std::result::Result<Arc<EncodedUnit>, broadcast::error::RecvError>),
    Timeout,
}

/// One viewer's task: drive its `Rtc`, send it the shared access units.
async fn run_viewer(
    mut peer: Peer,
    shared: Arc<Shared>,
    mut feed: broadcast::Receiver<Arc<EncodedUnit>>,
    mut stop: oneshot::Receiver<()>,
    id: String,
) {
    let idle = shared.options.ice.idle_timeout;
    let label = format!("whep session {id}");
    let started = Instant::now();
    let mut video: Option<(Mid, Pt)> = None;
    let mut connected = false;
    let mut need_keyframe = true;
    let why = loop {
        let timeout = match peer.drain() {
            Ok(t) => t,
            Err(e) => break format!("WebRTC error: {e}"),
        };
        let mut ended = None;
        for event in std::mem::take(&mut peer.events) {
            match event {
                Event::Connected => {
                    connected = true;
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                    shared.want_keyframe();
                }
                Event::MediaAdded(m) if m.kind == MediaKind::Video && video.is_none() => {
                    video = pick_h264(&mut peer, m.mid).map(|pt| (m.mid, pt));
                }
                Event::KeyframeRequest(_) => shared.want_keyframe(),
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    ended = Some("ICE disconnected".to_string())
                }
                _ => {}
            }
        }
        if let Some(why) = ended {
            break why;
        }
        if !peer.rtc.is_alive() {
            break "connection closed".into();
        }
        if !connected && started.elapsed() > peer::CONNECT_TIMEOUT {
            break format!("not connected within {:?}", peer::CONNECT_TIMEOUT);
        }
        if peer.idle_for(idle) {
            break format!("nothing received for {idle:?} (viewer gone)");
        }
        // Wake at least once a second to check the idle timeout.
        let deadline = timeout.min(Instant::now() + Duration::from_secs(1));
        let sending = connected && video.is_some();
        let wake = tokio::select! {
            _ = &mut stop => Wake::Stop,
            r = peer.socket.recv_from(&mut peer.buf) => Wake::Packet(r),
            u = feed.recv(), if sending => Wake::Unit(u),
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        let fed = match wake {
            Wake::Stop => {
                peer.stop();
                break "ended by DELETE or the sink closing".into();
            }
            Wake::Packet(read) => peer.received(read, &label),
            Wake::Timeout => peer.timeout(),
            Wake::Unit(Err(broadcast::error::RecvError::Lagged(n))) => {
                tracing::debug!("whep session {id}: {n} access units behind; skipping to a keyframe");
                need_keyframe = true;
                shared.want_keyframe();
                Ok(())
            }
            Wake::Unit(Err(broadcast::error::RecvError::Closed)) => break "the stream ended".into(),
            Wake::Unit(Ok(unit)) => {
                if need_keyframe && !unit.keyframe {
                    continue; // a decoder cannot start (or resume) here
                }
                need_keyframe = false;
                let (mid, pt) = video.expect("sending only with video");
                match peer.rtc.writer(mid) {
                    Some(writer) => {
                        writer.write(pt, unit.capture, MediaTime::from_90khz(unit.rtp_time), unit.data.clone())
                    }
                    None => Ok(()),
                }
            }
        };
        if let Err(e) = fed {
            break format!("WebRTC error: {e}");
        }
    };
    tracing::info!("whep session {id} ended: {why}");
    if connected {
        shared.connected.fetch_sub(1, Ordering::Relaxed);
    }
    shared.sessions.lock().unwrap().remove(&id);
    shared.sessions_ended.fetch_add(1, Ordering::Relaxed);
}
