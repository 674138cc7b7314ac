//! `whip://HOST:PORT` — a WHIP endpoint (RFC 9725) that a publisher
//! (a browser, OBS, GStreamer's `whipclientsink`) sends H.264 to; the
//! design's `NetworkSource(host, port, protocol='webrtc')`.
//!
//! `POST /whip` an SDP offer → `201` with the answer and the session's
//! `Location`; `DELETE` it to stop publishing. `/` is a page that publishes
//! the browser's camera. One publisher at a time (`409` for a second one);
//! the stream ends when the publisher leaves (`DELETE`, ICE gone, or silent
//! for `idle_timeout`), so `streamkit run whip://… -o out.mp4` records one
//! publication and finalises the file.
//!
//! `streamkit run 'whip://127.0.0.1:8890' -o out.mp4`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Frame, Result, Source, SourceInfo};
use tokio::sync::{mpsc, oneshot};

use crate::http::{self, Request, Response};
use crate::peer::{self, IceOptions, Peer};
use crate::receive::{self, ReceivedUnit, RemoteVideo, UnitForwarder};
use crate::signalling;

pub const DEFAULT_PORT: u16 = 8890;

/// `whip://HOST:PORT?token=T&ice_servers=…&idle_timeout=10`.
#[derive(Clone, Debug, PartialEq)]
pub struct WhipSourceOptions {
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub ice: IceOptions,
}

impl WhipSourceOptions {
    pub fn from_uri(uri: &Uri) -> Result<WhipSourceOptions> {
        let addr = crate::parse_listen_addr(uri, DEFAULT_PORT)?;
        let mut o = uri.options();
        let options = WhipSourceOptions {
            addr,
            token: o.string("token").map(str::to_string),
            ice: crate::ice_options(&mut o, addr)?,
        };
        o.finish()?;
        Ok(options)
    }
}

struct Shared {
    options: WhipSourceOptions,
    /// Taken by the first publisher: when its session ends, the stream ends.
    units: Mutex<Option<mpsc::Sender<ReceivedUnit>>>,
    sessions: signalling::Sessions,
    decoder_wants_keyframe: Arc<AtomicBool>,
    page: String,
}

/// Ends every session when the source goes (held by [`RemoteVideo`]).
struct Guard {
    shared: Arc<Shared>,
    _server: http::Server,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (_, stop) in self.shared.sessions.lock().unwrap().drain() {
            let _ = stop.send(());
        }
    }
}

pub struct WhipSource {
    addr: SocketAddr,
    inner: RemoteVideo,
}

impl WhipSource {
    /// Starts listening at once (inside a tokio runtime).
    pub fn create(options: WhipSourceOptions) -> Result<WhipSource> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "whip: a WHIP source must be created inside a tokio runtime (it listens at once)",
            ));
        }
        let listener = std::net::TcpListener::bind(options.addr).map_err(|e| {
            Error::invalid(format!("whip: cannot listen on {}: {e} (is the port in use?)", options.addr))
        })?;
        listener.set_nonblocking(true).map_err(|e| Error::invalid(format!("whip: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::invalid(format!("whip: {e}")))?;
        let (tx, rx) = mpsc::channel(receive::UNIT_QUEUE);
        let decoder_wants_keyframe = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            page: crate::pages::publisher(&options.ice),
            options,
            units: Mutex::new(Some(tx)),
            sessions: Mutex::new(HashMap::new()),
            decoder_wants_keyframe: decoder_wants_keyframe.clone(),
        });
        let routed = shared.clone();
        let server = http::serve_std(listener, move |request| route(routed.clone(), request))?;
        eprintln!("publish to http://{addr}/whip (WHIP), or open http://{addr}/ to send a camera");
        let guard = Guard { shared, _server: server };
        let inner = RemoteVideo::new(format!("whip://{addr}"), rx, decoder_wants_keyframe, Box::new(guard));
        Ok(WhipSource { addr, inner })
    }

    pub fn from_uri(uri: &Uri) -> Result<WhipSource> {
        WhipSource::create(WhipSourceOptions::from_uri(uri)?)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

#[async_trait]
impl Source for WhipSource {
    fn info(&self) -> SourceInfo {
        self.inner.info()
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        self.inner.next_frame().await
    }
}

async fn route(shared: Arc<Shared>, request: Request) -> Response {
    let endpoint = signalling::Endpoint {
        path: "/whip",
        page: &shared.page,
        token: shared.options.token.as_deref(),
        sessions: &shared.sessions,
    };
    signalling::route(endpoint, &request, || async {
        start_session(&shared, &request).await.unwrap_or_else(|refusal| refusal)
    })
    .await
}

async fn start_session(shared: &Arc<Shared>, request: &Request) -> std::result::Result<Response, Response> {
    let offer = crate::parse_offer(request)?;
    if !offer.to_sdp_string().contains("m=video") {
        return Err(Response::text(400, "the offer has no video m-line (publish H.264 video)"));
    }
    if shared.units.lock().unwrap().is_none() {
        return Err(Response::text(409, "a publisher is already connected (this source takes one publication)"));
    }
    let (bound, candidates) = shared.options.ice.bind().await.map_err(|e| Response::text(500, e.to_string()))?;
    let mut rtc = peer::new_rtc();
    for candidate in candidates {
        rtc.add_local_candidate(candidate);
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| Response::text(400, format!("cannot answer this offer: {e}")))?
        .to_sdp_string();
    if !answer.contains("H264/90000") {
        return Err(Response::text(400, "the offer has no H.264 (this endpoint takes H.264 video)"));
    }
    let Some(units) = shared.units.lock().unwrap().take() else {
        return Err(Response::text(409, "a publisher is already connected (this source takes one publication)"));
    };
    let peer = Peer::new(rtc, bound).map_err(|e| Response::text(500, e.to_string()))?;
    let id = crate::session_id();
    let (stop_tx, stop_rx) = oneshot::channel();
    shared.sessions.lock().unwrap().insert(id.clone(), stop_tx);
    let forwarder = UnitForwarder::new(units, shared.decoder_wants_keyframe.clone());
    let idle = shared.options.ice.idle_timeout;
    let ended = shared.clone();
    let session = id.clone();
    tokio::spawn(async move {
        receive::run_receiving_session(peer, forwarder, None, stop_rx, idle, format!("whip session {session}")).await;
        ended.sessions.lock().unwrap().remove(&session);
    });
    let mut response = Response::new(201, "application/sdp", answer)
        .with_header("Location", format!("/whip/{id}"))
        .with_header("ETag", format!("\"{id}\""));
    for link in shared.options.ice.link_headers() {
        response = response.with_header("Link", link);
    }
    Ok(response)
}
