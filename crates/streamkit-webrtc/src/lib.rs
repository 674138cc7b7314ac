//! # streamkit-webrtc
//!
//! WebRTC with the standard HTTP signalling, so that browsers, OBS and
//! GStreamer's `whep`/`whip` elements work with streamkit:
//!
//! | scheme | kind | what |
//! |---|---|---|
//! | `whep://HOST:PORT` | sink | the design's `WebRTCSink`: a WHEP server with a viewer page at `/`, H.264 encoded once for every viewer |
//! | `whip://HOST:PORT` | source | a WHIP endpoint (RFC 9725): a publisher (browser camera page at `/`, OBS) → decoded frames |
//! | `whep-pull://HOST:PORT[/PATH]` | source | a WHEP client: pulls from another streamkit (or any WHEP server) → decoded frames |
//!
//! WebRTC itself is [str0m](https://github.com/algesten/str0m): sans-IO
//! (ICE, DTLS, SRTP, RTP/RTCP, H.264 packetisation as a state machine fed
//! bytes and time), like our RTP and PTP cores. Each session is one tokio
//! task owning its `Rtc` and UDP socket ([`peer`]); signalling is a small
//! bounded HTTP/1.1 server ([`http`]). Our own candidates are gathered by
//! us (str0m leaves that to the application): host, STUN server-reflexive
//! ([`stun`]) and TURN relayed ([`turn`], a sans-IO TURN client over UDP).
//!
//! ```sh
//! streamkit run 'test:smpte?size=1280x720&fps=30' --realtime -o 'whep://127.0.0.1:8889'   # open http://127.0.0.1:8889/
//! streamkit run 'whep-pull://127.0.0.1:8889' --frames 300 -o pulled.mp4
//! streamkit run 'whip://127.0.0.1:8890' -o published.mp4                                # open http://127.0.0.1:8890/
//! ```

pub mod http;
mod md5;
pub mod pages;
pub mod peer;
pub mod receive;
mod signalling;
pub mod stun;
pub mod turn;
pub mod whep_client;
pub mod whep_sink;
pub mod whip_source;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use str0m::change::SdpOffer;
use streamkit_core::registry::Registry;
use streamkit_core::uri::{Options, Uri};
use streamkit_core::{Error, Result};

pub use peer::IceOptions;
pub use whep_client::{WhepClientOptions, WhepClientSource};
pub use whep_sink::{WhepSink, WhepSinkHandle, WhepSinkOptions};
pub use whip_source::{WhipSource, WhipSourceOptions};

/// Registers `whep:` (sink), `whip:` and `whep-pull:` (sources).
pub fn register(registry: &mut Registry) {
    registry
        .plugin("webrtc", "WebRTC via str0m with WHEP/WHIP signalling: browsers watch, browsers and OBS publish")
        .sink(
            "whep",
            "WebRTC to browsers (WHEP at /whep, viewer page at /): H.264 encoded once for all viewers (token=, bitrate=, keyint=, ice_servers=, turn_username=, turn_credential=, ice_transport_policy=relay, max_viewers=, idle_timeout=)",
            "whep://127.0.0.1:8889?ice_servers=stun:stun.example.org:3478",
            |uri, _| Ok(Box::new(WhepSink::from_uri(uri)?)),
        )
        .source(
            "whip",
            "WebRTC publishers (WHIP at /whip, camera page at /): one publication, decoded (token=, ice_servers=, turn_username=, turn_credential=, ice_transport_policy=relay, idle_timeout=)",
            "whip://127.0.0.1:8890",
            |uri, _| Ok(Box::new(WhipSource::from_uri(uri)?)),
        )
        .source(
            "whep-pull",
            "pull WebRTC from a WHEP server, e.g. another streamkit's whep://, through NAT with TURN (token=, ice_servers=stun:…,turn:…, turn_username=, turn_credential=, ice_transport_policy=relay, idle_timeout=)",
            "whep-pull://127.0.0.1:8889",
            |uri, _| Ok(Box::new(WhepClientSource::from_uri(uri)?)),
        );
}

/// `//HOST:PORT` of a listening URI (`HOST` alone takes `default_port`).
fn parse_listen_addr(uri: &Uri, default_port: u16) -> Result<SocketAddr> {
    let authority = uri.authority().filter(|a| !a.is_empty()).unwrap_or("127.0.0.1");
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    with_port.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
        Error::uri(&uri.raw, format!("'{with_port}' is not an address to listen on (e.g. 127.0.0.1:{default_port})"))
    })
}

/// `ice_servers=`, `turn_username=`, `turn_credential=`, `ice_transport_policy=relay|all`,
/// `idle_timeout=` (seconds);
/// sockets bind to the server's IP.
fn ice_options(o: &mut Options<'_>, listen: SocketAddr) -> Result<IceOptions> {
    let defaults = IceOptions::default();
    let ice_servers = match o.string("ice_servers") {
        Some(text) => IceOptions::parse_ice_servers(text)?,
        None => Vec::new(),
    };
    let idle: Option<f64> = o.parse("idle_timeout", "seconds, e.g. 10")?;
    let ice = IceOptions {
        bind_ip: listen.ip(),
        ice_servers,
        turn_username: o.string("turn_username").map(str::to_string),
        turn_credential: o.string("turn_credential").map(str::to_string),
        relay_only: match o.string("ice_transport_policy") {
            None | Some("all") => false,
            Some("relay") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "option 'ice_transport_policy={other}' is not valid: expected relay or all"
                )))
            }
        },
        idle_timeout: idle.map(|s| Duration::from_secs_f64(s.max(0.5))).unwrap_or(defaults.idle_timeout),
    };
    ice.validate()?;
    Ok(ice)
}

/// The request's SDP offer, or a `4xx` saying what is wrong with it.
fn parse_offer(request: &http::Request) -> std::result::Result<SdpOffer, http::Response> {
    if let Some(kind) = request.header("content-type") {
        if !kind.to_ascii_lowercase().starts_with("application/sdp") {
            return Err(http::Response::text(
                415,
                format!("Content-Type is '{kind}'; send the offer as application/sdp"),
            ));
        }
    }
    let text = std::str::from_utf8(&request.body).map_err(|_| http::Response::text(400, "the offer is not UTF-8"))?;
    if !text.starts_with("v=0") {
        return Err(http::Response::text(400, "malformed SDP offer: it must start with 'v=0'"));
    }
    SdpOffer::from_sdp_string(&peer::strip_mdns_candidates(text))
        .map_err(|e| http::Response::text(400, format!("malformed SDP offer: {e}")))
}

/// An unguessable session id (128 bits from the OS), so that nobody can
/// end another viewer's session by guessing its `Location`.
fn session_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Not Linux: still unique, less secret.
        let n = streamkit_core::time::monotonic_ns() ^ (std::process::id() as u64) << 32;
        bytes[..8].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_host_and_port() {
        let addr = |text: &str| parse_listen_addr(&Uri::parse(text).unwrap(), 8889);
        assert_eq!(addr("whep://127.0.0.1:9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(addr("whep://0.0.0.0").unwrap(), "0.0.0.0:8889".parse().unwrap());
        assert_eq!(addr("whep:").unwrap(), "127.0.0.1:8889".parse().unwrap());
        assert!(addr("whep://no such host:1").is_err());
    }

    #[test]
    fn sink_options_parse_and_reject_unknown_keys() {
        let uri =
            Uri::parse("whep://127.0.0.1:0?token=t&bitrate=2000000&ice_servers=stun:s:3478&max_viewers=3").unwrap();
        let o = WhepSinkOptions::from_uri(&uri).unwrap();
        assert_eq!((o.token.as_deref(), o.encode.bitrate_bps, o.max_viewers), (Some("t"), 2_000_000, 3));
        assert_eq!(o.ice.ice_servers, vec!["stun:s:3478".to_string()]);
        let relay =
            "whep://127.0.0.1:0?ice_servers=turn:t:3478&turn_username=u&turn_credential=p&ice_transport_policy=relay";
        assert!(WhepSinkOptions::from_uri(&Uri::parse(relay).unwrap()).unwrap().ice.relay_only);
        let err = WhepSinkOptions::from_uri(&Uri::parse("whep://127.0.0.1:0?ice_transport_policy=none").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("expected relay or all"), "{err}");
        let err = WhepSinkOptions::from_uri(&Uri::parse("whep://127.0.0.1:0?bitrat=1").unwrap()).unwrap_err();
        assert!(err.to_string().contains("bitrate"), "{err}");
    }

    #[test]
    fn session_ids_are_long_and_distinct() {
        let (a, b) = (session_id(), session_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
