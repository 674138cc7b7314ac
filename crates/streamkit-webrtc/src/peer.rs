//! One WebRTC peer connection: a str0m [`Rtc`] (sans-IO: ICE, DTLS, SRTP,
//! RTP/RTCP) and the UDP socket it talks through, owned by one tokio task.
//!
//! One socket per session rather than one shared socket demultiplexed by
//! ICE ufrag: the kernel does the demultiplexing, a session's task owns all
//! of its state (no locks, no routing table to keep in step), and a session
//! that ends frees its port with it. Sessions are few (a viewer count
//! limit bounds them), so the extra ports cost nothing.
//!
//! With a `turn:` server a session also allocates a relay on its socket
//! ([`crate::turn`]) and offers it as a relayed candidate: str0m's datagrams
//! from the relayed address go out wrapped to the TURN server, and what the
//! server relays to us is fed to str0m as received on the relayed address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::crypto::CryptoProvider;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig, RtcError};
use streamkit_core::{Error, Result};
use tokio::net::UdpSocket;

use crate::turn::{State as TurnState, TurnClient};

/// Largest datagram we accept (WebRTC keeps packets under ~1200 bytes).
const MAX_DATAGRAM: usize = 2048;

/// How long a session may stay silent before it is dropped: a viewer whose
/// tab closed without `DELETE` sends nothing (not even STUN consent checks,
/// which browsers send every few seconds).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a TURN allocation may take before the session goes on without
/// it (or, relay-only, fails).
pub const TURN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long ICE and DTLS may take before a new session is given up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) fn crypto() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags())).clone()
}

/// An `Rtc` that speaks H.264 only (constrained baseline and the other
/// profiles str0m knows, packetization-mode 0 and 1) and sends RTCP sender
/// reports every second.
pub fn new_rtc() -> Rtc {
    RtcConfig::new()
        .set_crypto_provider(crypto())
        .clear_codecs()
        .enable_h264(true)
        .set_rtcp_report_interval_video(Duration::from_secs(1))
        .build(Instant::now())
}

/// Where sessions bind their sockets and which candidates they announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceOptions {
    /// The address UDP sockets bind to (the HTTP server's host by default).
    pub bind_ip: IpAddr,
    /// `stun:` / `turn:` URLs given to browsers (viewer and publisher
    /// pages, `Link` headers); a `stun:` one is also asked for our own
    /// server-reflexive candidate.
    pub ice_servers: Vec<String>,
    /// Credentials of the `turn:` servers (browsers refuse TURN without them).
    pub turn_username: Option<String>,
    pub turn_credential: Option<String>,
    /// `ice_transport_policy=relay`: offer only the TURN relayed candidate
    /// (like `RTCConfiguration.iceTransportPolicy`), so all media crosses
    /// the TURN server.
    pub relay_only: bool,
    pub idle_timeout: Duration,
}

impl Default for IceOptions {
    fn default() -> Self {
        IceOptions {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ice_servers: Vec::new(),
            turn_username: None,
            turn_credential: None,
            relay_only: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl IceOptions {
    fn is_turn(url: &str) -> bool {
        url.starts_with("turn:") || url.starts_with("turns:")
    }

    /// RFC 9725 §4.6: ICE servers announced as `Link` headers on the answer.
    pub fn link_headers(&self) -> Vec<String> {
        self.ice_servers
            .iter()
            .map(|url| match (&self.turn_username, &self.turn_credential) {
                (Some(user), Some(credential)) if Self::is_turn(url) => format!(
                    "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote_free(user),
                    quote_free(credential)
                ),
                _ => format!("<{url}>; rel=\"ice-server\""),
            })
            .collect()
    }

    /// The JSON `iceServers` array for `RTCPeerConnection`.
    pub fn ice_servers_json(&self) -> String {
        let servers: Vec<String> = self
            .ice_servers
            .iter()
            .map(|url| match (&self.turn_username, &self.turn_credential) {
                (Some(user), Some(credential)) if Self::is_turn(url) => format!(
                    "{{\"urls\":\"{}\",\"username\":\"{}\",\"credential\":\"{}\"}}",
                    quote_free(url),
                    quote_free(user),
                    quote_free(credential)
                ),
                _ => format!("{{\"urls\":\"{}\"}}", quote_free(url)),
            })
            .collect();
        format!("[{}]", servers.join(","))
    }

    /// Checks that `turn:` servers come with their credentials.
    pub fn validate(&self) -> Result<()> {
        let has_turn = self.ice_servers.iter().any(|u| Self::is_turn(u));
        if has_turn && (self.turn_username.is_none() || self.turn_credential.is_none()) {
            return Err(Error::invalid(
                "turn: servers need turn_username= and turn_credential= (browsers refuse TURN without them)",
            ));
        }
        if self.relay_only && self.turn_server().is_none() {
            return Err(Error::invalid(
                "ice_transport_policy=relay needs a turn: server over UDP in ice_servers= (e.g. turn:turn.example.org:3478)",
            ));
        }
        Ok(())
    }

    /// Parses `ice_servers=stun:host:port,turn:host:port` (comma-separated).
    pub fn parse_ice_servers(text: &str) -> Result<Vec<String>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|url| {
                let known = ["stun:", "stuns:", "turn:", "turns:"].iter().any(|p| url.starts_with(p));
                if known {
                    Ok(url.to_string())
                } else {
                    Err(Error::invalid(format!(
                        "ice server '{url}' must start with stun:, stuns:, turn: or turns: (e.g. stun:stun.example.org:3478)"
                    )))
                }
            })
            .collect()
    }

    /// The first `turn:` server we can allocate on ourselves: UDP only
    /// (`turns:` and `?transport=tcp` are for browsers), port 3478 by default.
    pub fn turn_server(&self) -> Option<String> {
        self.ice_servers.iter().find_map(|url| {
            let rest = url.strip_prefix("turn:")?;
            let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
            if query.split('&').any(|kv| kv.eq_ignore_ascii_case("transport=tcp")) {
                return None;
            }
            let has_port = host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            Some(if has_port { host.to_string() } else { format!("{host}:3478") })
        })
    }

    /// Binds a fresh UDP socket and returns it with the candidates to
    /// announce: its host address, plus a server-reflexive one when a
    /// `stun:` server answers within a second, plus a relayed one when a
    /// `turn:` server allocates within [`TURN_TIMEOUT`] (only that one with
    /// `relay_only`, which fails when the allocation does).
    pub async fn bind(&self) -> Result<(Bound, Vec<Candidate>)> {
        // str0m matches each datagram's destination against its host
        // candidates, so the socket binds one concrete address, never 0.0.0.0.
        let ip = concrete_ip(self.bind_ip);
        let socket = StdUdpSocket::bind(SocketAddr::new(ip, 0))
            .map_err(|e| Error::invalid(format!("binding a UDP socket on {ip}: {e}")))?;
        socket.set_nonblocking(true).map_err(|e| Error::invalid(format!("UDP socket: {e}")))?;
        let socket = UdpSocket::from_std(socket).map_err(|e| Error::invalid(format!("UDP socket: {e}")))?;
        let local = socket.local_addr().map_err(|e| Error::invalid(format!("UDP socket: {e}")))?;
        let mut candidates = Vec::new();
        if !self.relay_only {
            candidates.push(
                Candidate::host(local, "udp")
                    .map_err(|e| Error::invalid(format!("no ICE host candidate for {local}: {e}")))?,
            );
        }
        let turn = match self.turn_server() {
            Some(server) => match self.allocate(&socket, &server).await {
                Ok(client) => {
                    let relayed = client.relayed().expect("allocated");
                    let candidate = Candidate::relayed(relayed, local, "udp")
                        .map_err(|e| Error::invalid(format!("no ICE relayed candidate for {relayed}: {e}")))?;
                    candidates.push(candidate);
                    Some(client)
                }
                Err(e) if self.relay_only => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}; going on without a relayed candidate");
                    None
                }
            },
            None => None,
        };
        for url in self.ice_servers.iter().filter(|u| u.starts_with("stun:") && !self.relay_only) {
            if let Some(mapped) = crate::stun::query(&socket, &url["stun:".len()..], Duration::from_secs(1)).await {
                if let Ok(c) = Candidate::server_reflexive(mapped, local, "udp") {
                    candidates.push(c);
                }
                break;
            }
        }
        Ok((Bound { socket, turn }, candidates))
    }

    /// Allocates a relay on `server` through `socket` (the session's own, so
    /// the relay forwards to the port str0m's other candidates use).
    async fn allocate(&self, socket: &UdpSocket, server: &str) -> Result<TurnClient> {
        let local_v4 = socket.local_addr().map(|a| a.is_ipv4()).unwrap_or(true);
        let addr = tokio::time::timeout(TURN_TIMEOUT, tokio::net::lookup_host(server))
            .await
            .ok()
            .and_then(|r| r.ok())
            .and_then(|mut addrs| addrs.find(|a| a.is_ipv4() == local_v4))
            .ok_or_else(|| Error::invalid(format!("TURN server {server}: cannot resolve it")))?;
        let username = self.turn_username.as_deref().unwrap_or_default();
        let credential = self.turn_credential.as_deref().unwrap_or_default();
        let mut client = TurnClient::new(addr, username, credential, Instant::now());
        let deadline = Instant::now() + TURN_TIMEOUT;
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            while let Some(datagram) = client.poll_transmit() {
                let _ = socket.send_to(&datagram, addr).await;
            }
            match client.state() {
                TurnState::Allocated { .. } => return Ok(client),
                TurnState::Failed(why) => return Err(Error::invalid(why.clone())),
                TurnState::Allocating => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::invalid(format!("TURN server {server} did not answer within {TURN_TIMEOUT:?}")));
            }
            match tokio::time::timeout(Duration::from_millis(100), socket.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) if from == addr => {
                    client.handle_input(&buf[..n], Instant::now());
                }
                _ => client.handle_timeout(Instant::now()),
            }
        }
    }
}

/// A session's UDP socket and, with a `turn:` server, the relay allocated on it.
pub struct Bound {
    pub socket: UdpSocket,
    pub turn: Option<TurnClient>,
}

/// `ip` itself, or for `0.0.0.0` the address of the interface that `toward`
/// (by default the default route) is reached through; loopback without one.
pub fn concrete_ip_toward(ip: IpAddr, toward: SocketAddr) -> IpAddr {
    if !ip.is_unspecified() {
        return ip;
    }
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    StdUdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect(toward).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn concrete_ip(ip: IpAddr) -> IpAddr {
    concrete_ip_toward(ip, SocketAddr::from(([192, 0, 2, 1], 9)))
}

/// Drops what would break out of a JSON string or a quoted header value.
fn quote_free(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '"' | '\\' | '<' | '>') && !c.is_control()).collect()
}

/// Browsers hide host addresses behind mDNS names (`….local`) that we
/// cannot resolve; those candidate lines are dropped from an offer or
/// answer (the browser's checks still reach us and ICE learns its address
/// as a peer-reflexive candidate).
pub fn strip_mdns_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let is_mdns =
            line.starts_with("a=candidate:") && line.split_whitespace().nth(4).is_some_and(|a| a.ends_with(".local"));
        if !is_mdns {
            out.push_str(line);
        }
    }
    out
}

/// The `Rtc` and its socket, with what a session loop needs between wake-ups.
pub struct Peer {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pub buf: Vec<u8>,
    /// When the last datagram arrived (the idle timeout counts from here).
    pub last_receive: Instant,
    pub events: Vec<Event>,
    turn: Option<TurnClient>,
}

impl Peer {
    pub fn new(rtc: Rtc, bound: Bound) -> Result<Peer> {
        let Bound { socket, turn } = bound;
        let local = socket.local_addr().map_err(|e| Error::invalid(format!("UDP socket: {e}")))?;
        let buf = vec![0; MAX_DATAGRAM];
        Ok(Peer { rtc, socket, local, buf, last_receive: Instant::now(), events: Vec::new(), turn })
    }

    /// Sends what the TURN client queued for its server.
    fn flush_turn(&mut self) {
        if let Some(turn) = &mut self.turn {
            while let Some(datagram) = turn.poll_transmit() {
                if let Err(e) = self.socket.try_send_to(&datagram, turn.server()) {
                    tracing::trace!("send to TURN server {}: {e}", turn.server());
                }
            }
        }
    }

    /// Drains the `Rtc` after a mutation (str0m's rule): sends every
    /// transmit, queues events in `self.events`, returns the next timeout.
    pub fn drain(&mut self) -> std::result::Result<Instant, RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.flush_turn();
                    return Ok(t);
                }
                Output::Transmit(t) => {
                    if let Some(turn) = self.turn.as_mut().filter(|turn| turn.relayed() == Some(t.source)) {
                        turn.send_to(t.destination, &t.contents, Instant::now());
                        continue;
                    }
                    // UDP send never waits for long; a full buffer drops the packet
                    // like the network would (RTCP NACK or a PLI recovers).
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        tracing::trace!("send to {}: {e}", t.destination);
                    }
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    /// Feeds a datagram received into `self.buf`.
    /// Feeds the result of a read from the socket; a failed read is only
    /// logged (ICMP errors surface here and must not end the session).
    pub fn received(
        &mut self,
        read: std::io::Result<(usize, SocketAddr)>,
        label: &str,
    ) -> std::result::Result<(), RtcError> {
        match read {
            Ok((len, source)) => self.receive(len, source),
            Err(e) => {
                tracing::debug!("{label}: receive: {e}");
                Ok(())
            }
        }
    }

    /// Ends the connection politely when the session is told to stop.
    pub fn stop(&mut self) {
        self.rtc.disconnect();
        let _ = self.drain();
    }

    pub fn receive(&mut self, len: usize, source: SocketAddr) -> std::result::Result<(), RtcError> {
        let now = Instant::now();
        if let Some(turn) = self.turn.as_mut().filter(|turn| turn.server() == source) {
            // From the TURN server: an answer to one of its requests, or a peer's relayed data.
            let relayed = turn.relayed();
            let unwrapped = turn.handle_input(&self.buf[..len], now);
            let input = match (unwrapped, relayed) {
                (Some((peer, data)), Some(relayed)) => data.try_into().ok().map(|contents| {
                    Input::Receive(now, Receive { proto: Protocol::Udp, source: peer, destination: relayed, contents })
                }),
                _ => None,
            };
            if let Some(input) = input {
                self.last_receive = now;
                if self.rtc.accepts(&input) {
                    self.rtc.handle_input(input)?;
                }
            }
            self.flush_turn();
            return Ok(());
        }
        let Ok(contents) = self.buf[..len].try_into() else {
            return Ok(()); // not STUN, DTLS or RTP: ignore
        };
        self.last_receive = now;
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: self.local, contents });
        if self.rtc.accepts(&input) {
            self.rtc.handle_input(input)?;
        }
        Ok(())
    }

    pub fn timeout(&mut self) -> std::result::Result<(), RtcError> {
        if let Some(turn) = &mut self.turn {
            turn.handle_timeout(Instant::now());
            self.flush_turn();
        }
        self.rtc.handle_input(Input::Timeout(Instant::now()))
    }

    /// Whether nothing arrived for `idle`.
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.last_receive.elapsed() > idle
    }
}

impl Drop for Peer {
    /// Frees the TURN allocation now rather than when its lifetime ends.
    fn drop(&mut self) {
        if let Some(turn) = &mut self.turn {
            turn.close(Instant::now());
            self.flush_turn();
        }
    }
}

/// An `Instant` for a `CLOCK_MONOTONIC` nanosecond value (what
/// `Timing::capture_time_ns` holds): `Instant` is `CLOCK_MONOTONIC` on
/// Linux but opaque, so go through "now" on both clocks.
pub fn instant_of_monotonic(ns: u64) -> Instant {
    let now_ns = streamkit_core::time::monotonic_ns();
    let now = Instant::now();
    if ns <= now_ns {
        now.checked_sub(Duration::from_nanos(now_ns - ns)).unwrap_or(now)
    } else {
        now + Duration::from_nanos(ns - now_ns)
    }
}

/// The `CLOCK_MONOTONIC` nanoseconds of an `Instant` (inverse of [`instant_of_monotonic`]).
pub fn monotonic_of_instant(at: Instant) -> u64 {
    let now_ns = streamkit_core::time::monotonic_ns();
    let now = Instant::now();
    if at <= now {
        now_ns.saturating_sub((now - at).as_nanos() as u64)
    } else {
        now_ns + (at - now).as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_candidates_are_dropped() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2113937151 4f8e2c1a-1111.local 54321 typ host\r\na=candidate:2 1 udp 2113937151 10.0.0.2 54322 typ host\r\n";
        let out = strip_mdns_candidates(sdp);
        assert!(!out.contains(".local") && out.contains("10.0.0.2") && out.starts_with("v=0\r\n"), "{out}");
    }

    #[test]
    fn ice_servers_parse_and_render() {
        let servers = IceOptions::parse_ice_servers("stun:stun.l.google.com:19302, turn:t.example:3478").unwrap();
        let ice = IceOptions { ice_servers: servers, ..IceOptions::default() };
        assert_eq!(
            ice.ice_servers_json(),
            r#"[{"urls":"stun:stun.l.google.com:19302"},{"urls":"turn:t.example:3478"}]"#
        );
        assert_eq!(ice.link_headers()[0], "<stun:stun.l.google.com:19302>; rel=\"ice-server\"");
        let err = IceOptions::parse_ice_servers("stun.example.org").unwrap_err().to_string();
        assert!(err.contains("must start with stun:"), "{err}");
    }

    #[test]
    fn turn_servers_and_relay_only() {
        let ice = |servers: &str, relay_only| IceOptions {
            ice_servers: IceOptions::parse_ice_servers(servers).unwrap(),
            turn_username: Some("u".into()),
            turn_credential: Some("p".into()),
            relay_only,
            ..IceOptions::default()
        };
        assert_eq!(ice("stun:s:1,turn:t.example", false).turn_server().as_deref(), Some("t.example:3478"));
        assert_eq!(ice("turn:t:1?transport=tcp,turn:u:2?transport=udp", false).turn_server().as_deref(), Some("u:2"));
        assert_eq!(ice("turns:t:5349", false).turn_server(), None);
        let err = ice("stun:s:1", true).validate().unwrap_err().to_string();
        assert!(err.contains("ice_transport_policy=relay needs a turn:"), "{err}");
        assert!(ice("turn:t:1", true).validate().is_ok());
    }

    #[test]
    fn sockets_bind_a_concrete_address() {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(concrete_ip_toward(any, "127.0.0.1:9".parse().unwrap()), loopback);
        assert_eq!(concrete_ip_toward(loopback, "192.0.2.1:9".parse().unwrap()), loopback);
        assert!(!concrete_ip(any).is_unspecified());
    }

    #[test]
    fn monotonic_instants_round_trip() {
        let ns = streamkit_core::time::monotonic_ns() - 5_000_000;
        let back = monotonic_of_instant(instant_of_monotonic(ns));
        assert!(back.abs_diff(ns) < 1_000_000, "{back} vs {ns}");
    }
}
