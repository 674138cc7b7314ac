//! `whep-pull://HOST:PORT[/PATH]` (or `whep-pull:http://…`) — a WHEP
//! client: pulls H.264 video from a WHEP server (another streamkit's
//! `whep://` sink, or any WHEP server) and yields decoded frames. A network
//! hop that crosses NAT: ICE with our host candidate, a STUN-learnt
//! server-reflexive one (`ice_servers=stun:…`) and a TURN relayed one
//! (`ice_servers=turn:…&turn_username=…&turn_credential=…`; only that one
//! with `ice_transport_policy=relay`).
//!
//! We make the offer (receive-only H.264), POST it, apply the answer, and
//! `DELETE` the session's `Location` when the source closes. The stream
//! ends when the server goes away.
//!
//! `streamkit run 'whep-pull://127.0.0.1:8889' --frames 90 -o out.mp4`

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Frame, Result, Source, SourceInfo};
use tokio::sync::{mpsc, oneshot};

use crate::http;
use crate::peer::{self, IceOptions, Peer};
use crate::receive::{self, RemoteVideo, UnitForwarder};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `whep-pull://HOST:PORT/whep?token=T&ice_servers=stun:…,turn:…&turn_username=U&turn_credential=P&ice_transport_policy=relay`.
#[derive(Clone, Debug, PartialEq)]
pub struct WhepClientOptions {
    /// `http://HOST:PORT/PATH` of the WHEP endpoint.
    pub endpoint: String,
    pub token: Option<String>,
    pub ice: IceOptions,
}

impl WhepClientOptions {
    pub fn from_uri(uri: &Uri) -> Result<WhepClientOptions> {
        let endpoint = if uri.body.starts_with("http://") {
            uri.body.clone()
        } else if let Some(rest) = uri.body.strip_prefix("//") {
            let (authority, path) = rest.split_once('/').map_or((rest, "whep"), |(a, p)| (a, p));
            let path = if path.is_empty() { "whep" } else { path };
            format!("http://{authority}/{path}")
        } else {
            return Err(Error::uri(
                &uri.raw,
                "expected whep-pull://HOST:PORT[/PATH] or whep-pull:http://HOST:PORT/PATH",
            ));
        };
        let (authority, _) = http::split_http_url(&endpoint)?;
        let mut o = uri.options();
        // Our host candidate: the interface the server is reached through.
        let server = std::net::ToSocketAddrs::to_socket_addrs(&authority)
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::uri(&uri.raw, format!("cannot resolve '{authority}'")))?;
        let bind_ip = peer::concrete_ip_toward(std::net::IpAddr::from([0, 0, 0, 0]), server);
        let ice = crate::ice_options(&mut o, SocketAddr::new(bind_ip, 0))?;
        let options = WhepClientOptions { endpoint, token: o.string("token").map(str::to_string), ice };
        o.finish()?;
        Ok(options)
    }
}

/// Ends the session (and `DELETE`s it on the server) when the source goes.
struct Session {
    stop: Option<oneshot::Sender<()>>,
    resource: Option<String>,
    token: Option<String>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(url), Ok(runtime)) = (self.resource.take(), tokio::runtime::Handle::try_current()) {
            let auth = self.token.take().map(|t| format!("Bearer {t}"));
            runtime.spawn(async move {
                let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("Authorization", a)).into_iter().collect();
                let _ = http::request("DELETE", &url, &headers, b"", HTTP_TIMEOUT).await;
            });
        }
    }
}

pub struct WhepClientSource {
    options: WhepClientOptions,
    inner: Option<RemoteVideo>,
}

impl WhepClientSource {
    /// Connects on the first `next_frame`.
    pub fn new(options: WhepClientOptions) -> WhepClientSource {
        WhepClientSource { options, inner: None }
    }

    pub fn from_uri(uri: &Uri) -> Result<WhepClientSource> {
        Ok(WhepClientSource::new(WhepClientOptions::from_uri(uri)?))
    }

    /// Offers, posts, applies the answer and starts the session task.
    async fn connect(options: WhepClientOptions) -> Result<RemoteVideo> {
        let what = format!("whep-pull {}", options.endpoint);
        let (bound, candidates) = options.ice.bind().await.map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        let mut rtc = peer::new_rtc();
        for candidate in candidates {
            rtc.add_local_candidate(candidate);
        }
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().ok_or_else(|| Error::invalid(format!("{what}: nothing to offer")))?;
        let auth = options.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/sdp")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let response =
            http::request("POST", &options.endpoint, &headers, offer.to_sdp_string().as_bytes(), HTTP_TIMEOUT).await?;
        if response.status != 201 && response.status != 200 {
            return Err(Error::invalid(format!(
                "{what}: the server refused the offer: {} {}",
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            )));
        }
        let answer_text = String::from_utf8_lossy(&response.body);
        let answer = SdpAnswer::from_sdp_string(&peer::strip_mdns_candidates(&answer_text))
            .map_err(|e| Error::invalid(format!("{what}: malformed SDP answer: {e}")))?;
        rtc.sdp_api().accept_answer(pending, answer).map_err(|e| Error::invalid(format!("{what}: bad answer: {e}")))?;
        let resource = response.header("location").map(|l| resolve(&options.endpoint, l));

        let peer = Peer::new(rtc, bound)?;
        let (tx, rx) = mpsc::channel(receive::UNIT_QUEUE);
        let decoder_wants_keyframe = Arc::new(AtomicBool::new(false));
        let forwarder = UnitForwarder::new(tx, decoder_wants_keyframe.clone());
        let (stop_tx, stop_rx) = oneshot::channel();
        let idle = options.ice.idle_timeout;
        tokio::spawn(receive::run_receiving_session(peer, forwarder, Some(mid), stop_rx, idle, what.clone()));
        let session = Session { stop: Some(stop_tx), resource, token: options.token.clone() };
        Ok(RemoteVideo::new(what, rx, decoder_wants_keyframe, Box::new(session)))
    }
}

/// A `Location` header against the endpoint it came from.
fn resolve(endpoint: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (authority, _) = http::split_http_url(endpoint).unwrap_or_default();
    if location.starts_with('/') {
        format!("http://{authority}{location}")
    } else {
        let base = endpoint.rsplit_once('/').map_or(endpoint, |(b, _)| b);
        format!("{base}/{location}")
    }
}

#[async_trait]
impl Source for WhepClientSource {
    fn info(&self) -> SourceInfo {
        match &self.inner {
            Some(inner) => inner.info(),
            None => {
                let mut info = SourceInfo::new(format!("whep-pull {}", self.options.endpoint));
                info.live = true;
                info
            }
        }
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.inner.is_none() {
            self.inner = Some(WhepClientSource::connect(self.options.clone()).await?);
        }
        self.inner.as_mut().expect("connected").next_frame().await
    }

    async fn close(&mut self) -> Result<()> {
        self.inner = None; // ends the session, DELETEs it
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_uris() {
        let endpoint = |text: &str| WhepClientOptions::from_uri(&Uri::parse(text).unwrap()).map(|o| o.endpoint);
        assert_eq!(endpoint("whep-pull://127.0.0.1:8889").unwrap(), "http://127.0.0.1:8889/whep");
        assert_eq!(endpoint("whep-pull://127.0.0.1:1/live/whep").unwrap(), "http://127.0.0.1:1/live/whep");
        assert_eq!(endpoint("whep-pull:http://localhost:1/x").unwrap(), "http://localhost:1/x");
        assert!(endpoint("whep-pull:h").is_err());
    }

    #[test]
    fn locations_resolve_against_the_endpoint() {
        assert_eq!(resolve("http://h:1/whep", "/whep/abc"), "http://h:1/whep/abc");
        assert_eq!(resolve("http://h:1/a/whep", "s/abc"), "http://h:1/a/s/abc");
        assert_eq!(resolve("http://h:1/whep", "http://o:2/x"), "http://o:2/x");
    }
}
