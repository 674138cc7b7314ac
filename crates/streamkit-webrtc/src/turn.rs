//! A sans-IO TURN client (RFC 8656) over UDP, so that our own side can
//! offer a relayed ICE candidate (str0m has no TURN client: it leaves
//! candidate gathering to the application).
//!
//! [`TurnClient`] is fed the TURN server's datagrams and the time, and queues
//! datagrams for the server, like str0m's `Rtc`: it allocates with the
//! long-term credential mechanism (an unauthenticated Allocate draws 401 with
//! REALM and NONCE; requests then carry USERNAME, REALM, NONCE and
//! MESSAGE-INTEGRITY keyed by `MD5(username:realm:password)`), refreshes the
//! allocation before its lifetime ends, installs a permission (CreatePermission)
//! and a channel (ChannelBind) for every peer we send to and refreshes both
//! every 4 minutes (permissions last 5), sends through a channel once bound
//! (Send indications before), and unwraps ChannelData and Data indications.
//! A stale nonce (438) is retried with the new one. [`peer`](crate::peer)
//! does the I/O.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::stun::{decode_address, MAGIC_COOKIE};

const ALLOCATE: u16 = 0x0003;
const REFRESH: u16 = 0x0004;
const SEND: u16 = 0x0006;
const DATA: u16 = 0x0007;
const CREATE_PERMISSION: u16 = 0x0008;
const CHANNEL_BIND: u16 = 0x0009;

const CLASS_REQUEST: u16 = 0x0000;
const CLASS_INDICATION: u16 = 0x0010;
const CLASS_SUCCESS: u16 = 0x0100;
const CLASS_ERROR: u16 = 0x0110;
const CLASS_MASK: u16 = 0x0110;

const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_CHANNEL_NUMBER: u16 = 0x000C;
const ATTR_LIFETIME: u16 = 0x000D;
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
const ATTR_DATA: u16 = 0x0013;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;

/// Permissions last 5 minutes, channels 10 (RFC 8656 §9, §12): refresh both
/// well before.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// First retransmission of an unanswered request (RFC 8489 §6.2.1), doubled each time.
const RTO: Duration = Duration::from_millis(500);
const MAX_TRIES: u32 = 7;
const FIRST_CHANNEL: u16 = 0x4000;
const LAST_CHANNEL: u16 = 0x4FFF;

/// Bytes relayed through TURN by every session of this process, both ways
/// (what tests and logs use to tell that the relayed path carried traffic).
static RELAYED_BYTES: AtomicU64 = AtomicU64::new(0);

pub fn relayed_bytes() -> u64 {
    RELAYED_BYTES.load(Ordering::Relaxed)
}

/// A request we may have to send again (retransmission, stale nonce).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Allocate,
    Refresh { lifetime: u32 },
    Permission(IpAddr),
    Bind(SocketAddr, u16),
}

struct Pending {
    request: Request,
    datagram: Vec<u8>,
    resend_at: Instant,
    tries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Allocating,
    Allocated { relayed: SocketAddr, mapped: Option<SocketAddr> },
    Failed(String),
}

struct Channel {
    number: u16,
    bound: bool,
}

pub struct TurnClient {
    server: SocketAddr,
    username: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<[u8; 16]>,
    state: State,
    refresh_at: Option<Instant>,
    pending: HashMap<[u8; 12], Pending>,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<SocketAddr, Channel>,
    by_number: HashMap<u16, SocketAddr>,
    next_channel: u16,
    outgoing: VecDeque<Vec<u8>>,
    seed: u64,
}

impl TurnClient {
    /// A client that allocates a UDP relay on `server` (queued at once).
    pub fn new(server: SocketAddr, username: &str, password: &str, now: Instant) -> TurnClient {
        let seed = streamkit_core::time::monotonic_ns() ^ (server.port() as u64) << 48 ^ 0x9E37_79B9_7F4A_7C15;
        let mut client = TurnClient {
            server,
            username: username.to_string(),
            password: password.to_string(),
            realm: None,
            nonce: None,
            key: None,
            state: State::Allocating,
            refresh_at: None,
            pending: HashMap::new(),
            permissions: HashMap::new(),
            channels: HashMap::new(),
            by_number: HashMap::new(),
            next_channel: FIRST_CHANNEL,
            outgoing: VecDeque::new(),
            seed,
        };
        client.request(Request::Allocate, now);
        client
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn relayed(&self) -> Option<SocketAddr> {
        match self.state {
            State::Allocated { relayed, .. } => Some(relayed),
            _ => None,
        }
    }

    /// The next datagram for the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    /// Queues `data` for `peer` through the relay, first installing a
    /// permission and a channel for it. The server handles our datagrams in
    /// order, so the permission is in place before this data arrives.
    pub fn send_to(&mut self, peer: SocketAddr, data: &[u8], now: Instant) {
        if self.relayed().is_none() {
            return;
        }
        if let Entry::Vacant(entry) = self.permissions.entry(peer.ip()) {
            entry.insert(now + PERMISSION_REFRESH);
            self.request(Request::Permission(peer.ip()), now);
        }
        if !self.channels.contains_key(&peer) && self.next_channel <= LAST_CHANNEL {
            let number = self.next_channel;
            self.next_channel += 1;
            self.channels.insert(peer, Channel { number, bound: false });
            self.by_number.insert(number, peer);
            self.request(Request::Bind(peer, number), now);
        }
        RELAYED_BYTES.fetch_add(data.len() as u64, Ordering::Relaxed);
        match self.channels.get(&peer) {
            Some(Channel { number, bound: true }) => {
                let mut datagram = Vec::with_capacity(4 + data.len());
                datagram.extend_from_slice(&number.to_be_bytes());
                datagram.extend_from_slice(&(data.len() as u16).to_be_bytes());
                datagram.extend_from_slice(data); // no padding over UDP (RFC 8656 §12.5)
                self.outgoing.push_back(datagram);
            }
            _ => {
                let transaction = self.transaction();
                let attrs =
                    [(ATTR_XOR_PEER_ADDRESS, encode_xor_address(peer, &transaction)), (ATTR_DATA, data.to_vec())];
                self.outgoing.push_back(encode(SEND | CLASS_INDICATION, &transaction, &attrs, None));
            }
        }
    }

    /// Handles a datagram from the server; returns the peer data it carried, if any.
    pub fn handle_input<'a>(&mut self, datagram: &'a [u8], now: Instant) -> Option<(SocketAddr, &'a [u8])> {
        let first = *datagram.first()?;
        if (0x40..=0x4F).contains(&first) {
            // ChannelData: channel number, length, data (maybe padded).
            let number = u16::from_be_bytes([first, *datagram.get(1)?]);
            let len = u16::from_be_bytes([*datagram.get(2)?, *datagram.get(3)?]) as usize;
            let peer = *self.by_number.get(&number)?;
            let data = datagram.get(4..4 + len)?;
            RELAYED_BYTES.fetch_add(data.len() as u64, Ordering::Relaxed);
            return Some((peer, data));
        }
        let message = Message::parse(datagram)?;
        if message.kind == DATA | CLASS_INDICATION {
            let peer = decode_address(message.attr(ATTR_XOR_PEER_ADDRESS)?, Some(&message.transaction))?;
            let data = message.attr(ATTR_DATA)?;
            RELAYED_BYTES.fetch_add(data.len() as u64, Ordering::Relaxed);
            return Some((peer, data));
        }
        let pending = self.pending.remove(&message.transaction)?;
        // Successes to authenticated requests must carry our integrity
        // (RFC 8489 §9.2.4); errors may lack it (a stale nonce's 438 does).
        if let Some(key) = self.key {
            let signed = message.attr(ATTR_MESSAGE_INTEGRITY).is_some();
            let required = message.kind & CLASS_MASK == CLASS_SUCCESS;
            if (signed || required) && !verify_integrity(datagram, &key) {
                tracing::debug!("TURN server {}: answer with a bad MESSAGE-INTEGRITY ignored", self.server);
                self.pending.insert(message.transaction, pending);
                return None;
            }
        }
        match message.kind & CLASS_MASK {
            CLASS_SUCCESS => self.on_success(pending.request, &message, now),
            CLASS_ERROR => self.on_error(pending.request, &message, now),
            _ => {}
        }
        None
    }

    /// Retransmits, refreshes the allocation, permissions and channels.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut given_up = Vec::new();
        for (transaction, pending) in self.pending.iter_mut() {
            if now < pending.resend_at {
                continue;
            }
            if pending.tries >= MAX_TRIES {
                given_up.push(*transaction);
                continue;
            }
            pending.tries += 1;
            pending.resend_at = now + RTO * (1 << (pending.tries - 1).min(6)); // 0.5, 1, 2, 4 … s
            self.outgoing.push_back(pending.datagram.clone());
        }
        for transaction in given_up {
            if let Some(p) = self.pending.remove(&transaction) {
                if p.request == Request::Allocate {
                    self.fail(format!("TURN server {} did not answer", self.server));
                } else {
                    tracing::debug!("TURN server {}: no answer to {:?}", self.server, p.request);
                }
            }
        }
        if self.relayed().is_none() {
            return;
        }
        if self.refresh_at.is_some_and(|at| now >= at) {
            self.refresh_at = None;
            self.request(Request::Refresh { lifetime: 600 }, now);
        }
        let due: Vec<IpAddr> = self.permissions.iter().filter(|(_, at)| now >= **at).map(|(ip, _)| *ip).collect();
        for ip in due {
            self.permissions.insert(ip, now + PERMISSION_REFRESH);
            self.request(Request::Permission(ip), now);
            let binds: Vec<(SocketAddr, u16)> = self
                .channels
                .iter()
                .filter(|(a, c)| a.ip() == ip && c.number != 0)
                .map(|(a, c)| (*a, c.number))
                .collect();
            for (peer, number) in binds {
                self.request(Request::Bind(peer, number), now);
            }
        }
    }

    /// Queues a Refresh with lifetime 0, which frees the allocation on the server.
    pub fn close(&mut self, now: Instant) {
        if self.relayed().is_some() {
            self.request(Request::Refresh { lifetime: 0 }, now);
            self.state = State::Failed("closed".into());
        }
    }

    fn on_success(&mut self, request: Request, message: &Message<'_>, now: Instant) {
        match request {
            Request::Allocate => {
                let Some(relayed) =
                    message.attr(ATTR_XOR_RELAYED_ADDRESS).and_then(|v| decode_address(v, Some(&message.transaction)))
                else {
                    return self.fail(format!("TURN server {}: allocation without a relayed address", self.server));
                };
                let mapped = message
                    .attr(crate::stun::XOR_MAPPED_ADDRESS)
                    .and_then(|v| decode_address(v, Some(&message.transaction)));
                self.state = State::Allocated { relayed, mapped };
                self.refresh_at = Some(now + refresh_delay(message.lifetime()));
            }
            Request::Refresh { lifetime: 0 } => {}
            Request::Refresh { .. } => self.refresh_at = Some(now + refresh_delay(message.lifetime())),
            Request::Permission(_) => {}
            Request::Bind(peer, _) => {
                if let Some(channel) = self.channels.get_mut(&peer) {
                    channel.bound = true;
                }
            }
        }
    }

    fn on_error(&mut self, request: Request, message: &Message<'_>, now: Instant) {
        let (code, reason) = message.error_code().unwrap_or((0, String::new()));
        let nonce = message.attr(ATTR_NONCE).map(|n| String::from_utf8_lossy(n).into_owned());
        let realm = message.attr(ATTR_REALM).map(|r| String::from_utf8_lossy(r).into_owned());
        match code {
            // The first Allocate draws 401 with the realm and a nonce: authenticate.
            401 if self.key.is_none() && nonce.is_some() && realm.is_some() => {
                let realm = realm.unwrap_or_default();
                self.key = Some(long_term_key(&self.username, &realm, &self.password));
                self.realm = Some(realm);
                self.nonce = nonce;
                self.request(request, now);
            }
            438 if nonce.is_some() => {
                self.nonce = nonce;
                self.request(request, now);
            }
            _ if request == Request::Allocate => self.fail(format!(
                "TURN server {} refused the allocation: {code} {reason}{}",
                self.server,
                if code == 401 { " (check turn_username= and turn_credential=)" } else { "" }
            )),
            _ => {
                if let Request::Bind(peer, number) = request {
                    // Stay on Send indications for this peer (channel 0: none).
                    self.channels.remove(&peer);
                    self.by_number.remove(&number);
                    self.channels.insert(peer, Channel { number: 0, bound: false });
                }
                tracing::warn!("TURN server {}: {request:?} refused: {code} {reason}", self.server);
            }
        }
    }

    fn fail(&mut self, why: String) {
        tracing::warn!("{why}");
        self.pending.clear();
        self.state = State::Failed(why);
    }

    fn request(&mut self, request: Request, now: Instant) {
        let transaction = self.transaction();
        let mut attrs: Vec<(u16, Vec<u8>)> = Vec::new();
        let method = match request {
            Request::Allocate => {
                attrs.push((ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])); // UDP
                ALLOCATE
            }
            Request::Refresh { lifetime } => {
                attrs.push((ATTR_LIFETIME, lifetime.to_be_bytes().to_vec()));
                REFRESH
            }
            Request::Permission(ip) => {
                attrs.push((ATTR_XOR_PEER_ADDRESS, encode_xor_address(SocketAddr::new(ip, 0), &transaction)));
                CREATE_PERMISSION
            }
            Request::Bind(peer, number) => {
                let mut value = number.to_be_bytes().to_vec();
                value.extend_from_slice(&[0, 0]);
                attrs.push((ATTR_CHANNEL_NUMBER, value));
                attrs.push((ATTR_XOR_PEER_ADDRESS, encode_xor_address(peer, &transaction)));
                CHANNEL_BIND
            }
        };
        if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
            attrs.push((ATTR_USERNAME, self.username.as_bytes().to_vec()));
            attrs.push((ATTR_REALM, realm.as_bytes().to_vec()));
            attrs.push((ATTR_NONCE, nonce.as_bytes().to_vec()));
        }
        let datagram = encode(method | CLASS_REQUEST, &transaction, &attrs, self.key.as_ref().map(|k| &k[..]));
        self.outgoing.push_back(datagram.clone());
        self.pending.insert(transaction, Pending { request, datagram, resend_at: now + RTO, tries: 1 });
    }

    /// A fresh transaction id (splitmix64; ids only need to be unique and
    /// hard to guess for an off-path attacker).
    fn transaction(&mut self) -> [u8; 12] {
        let mut next = || {
            self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (next().to_be_bytes(), next().to_be_bytes());
        std::array::from_fn(|i| if i < 8 { a[i] } else { b[i - 8] })
    }
}

/// Refresh a minute before the lifetime ends (half of it when it is short).
fn refresh_delay(lifetime: Option<u32>) -> Duration {
    let lifetime = Duration::from_secs(lifetime.unwrap_or(600) as u64);
    if lifetime > Duration::from_secs(120) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime / 2
    }
}

/// `MD5(username ":" realm ":" password)` (RFC 8489 §9.2.2; no SASLprep:
/// ASCII credentials are their own SASLprep).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    crate::md5::md5(format!("{username}:{realm}:{password}").as_bytes())
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    crate::peer::crypto().sha1_hmac_provider.sha1_hmac(key, parts)
}

/// A STUN message: header, attributes (padded to 4 bytes), and with a key a
/// MESSAGE-INTEGRITY over everything before it, the header's length already
/// counting it (RFC 8489 §14.5).
pub fn encode(kind: u16, transaction: &[u8; 12], attrs: &[(u16, Vec<u8>)], key: Option<&[u8]>) -> Vec<u8> {
    let mut msg = Vec::with_capacity(128);
    msg.extend_from_slice(&kind.to_be_bytes());
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg.extend_from_slice(transaction);
    for (attr, value) in attrs {
        msg.extend_from_slice(&attr.to_be_bytes());
        msg.extend_from_slice(&(value.len() as u16).to_be_bytes());
        msg.extend_from_slice(value);
        msg.resize(msg.len().next_multiple_of(4), 0);
    }
    if let Some(key) = key {
        let length = (msg.len() - 20 + 24) as u16;
        msg[2..4].copy_from_slice(&length.to_be_bytes());
        let mac = hmac_sha1(key, &[&msg]);
        msg.extend_from_slice(&ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        msg.extend_from_slice(&20u16.to_be_bytes());
        msg.extend_from_slice(&mac);
    } else {
        let length = (msg.len() - 20) as u16;
        msg[2..4].copy_from_slice(&length.to_be_bytes());
    }
    msg
}

/// Whether `msg`'s MESSAGE-INTEGRITY is right for `key` (attributes after it,
/// such as FINGERPRINT, are not covered: the length is set as if it ended there).
pub fn verify_integrity(msg: &[u8], key: &[u8]) -> bool {
    let Some(message) = Message::parse(msg) else { return false };
    let Some((offset, mac)) = message.attrs.iter().find(|a| a.0 == ATTR_MESSAGE_INTEGRITY).map(|a| (a.2, a.1)) else {
        return false;
    };
    let mut header = msg[..20].to_vec();
    header[2..4].copy_from_slice(&((offset - 20 + 24) as u16).to_be_bytes());
    let expected = hmac_sha1(key, &[&header, &msg[20..offset]]);
    mac.len() == 20 && expected.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// XOR-PEER-ADDRESS and friends (RFC 8489 §14.2).
fn encode_xor_address(addr: SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut value = vec![0];
    match addr.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            value.extend_from_slice(&port.to_be_bytes());
            value.extend(ip.octets().iter().zip(cookie).map(|(b, k)| b ^ k));
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            value.extend_from_slice(&port.to_be_bytes());
            value.extend(ip.octets().iter().zip(cookie.iter().chain(transaction.iter())).map(|(b, k)| b ^ k));
        }
    }
    value
}

/// A parsed STUN message: kind, transaction and (type, value, offset) attributes.
struct Message<'a> {
    kind: u16,
    transaction: [u8; 12],
    attrs: Vec<(u16, &'a [u8], usize)>,
}

impl<'a> Message<'a> {
    fn parse(msg: &'a [u8]) -> Option<Message<'a>> {
        if msg.len() < 20 || msg[0] & 0xC0 != 0 || msg[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return None;
        }
        let kind = u16::from_be_bytes([msg[0], msg[1]]);
        let length = u16::from_be_bytes([msg[2], msg[3]]) as usize;
        let body = msg.get(20..20 + length)?;
        let mut attrs = Vec::new();
        let mut at = 0;
        while at + 4 <= body.len() {
            let attr = u16::from_be_bytes([body[at], body[at + 1]]);
            let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
            attrs.push((attr, body.get(at + 4..at + 4 + len)?, 20 + at));
            at += (4 + len).next_multiple_of(4);
        }
        Some(Message { kind, transaction: msg[8..20].try_into().ok()?, attrs })
    }

    fn attr(&self, attr: u16) -> Option<&'a [u8]> {
        self.attrs.iter().find(|a| a.0 == attr).map(|a| a.1)
    }

    fn lifetime(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.attr(ATTR_LIFETIME)?.try_into().ok()?))
    }

    fn error_code(&self) -> Option<(u16, String)> {
        let v = self.attr(ATTR_ERROR_CODE)?;
        let code = (*v.get(2)? & 0x07) as u16 * 100 + *v.get(3)? as u16;
        Some((code, String::from_utf8_lossy(&v[4..]).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.4: a request with long-term authentication. Its username
    /// (マトリックス) and password ("TheMatrIX" after SASLprep) give this key.
    #[test]
    fn rfc_5769_long_term_integrity() {
        let key = long_term_key("\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}", "example.org", "TheMatrIX");
        let transaction: [u8; 12] = [0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e];
        let attrs = vec![
            (ATTR_USERNAME, "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}".as_bytes().to_vec()),
            (ATTR_NONCE, b"f//499k954d6OL34oL9FSTvy64sA".to_vec()),
            (ATTR_REALM, b"example.org".to_vec()),
        ];
        let encoded = encode(0x0001, &transaction, &attrs, Some(&key));
        let mac = &encoded[encoded.len() - 20..];
        let expected = [
            0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8,
            0x96, 0x66,
        ];
        assert_eq!(&encoded[..4], &[0x00, 0x01, 0x00, 0x60]);
        assert_eq!(mac, &expected);
        assert!(verify_integrity(&encoded, &key));
        assert!(!verify_integrity(&encoded, &long_term_key("x", "example.org", "TheMatrIX")));
    }

    /// A fake server: 401, then a relay; channel data both ways.
    #[test]
    fn allocates_with_long_term_credentials_and_relays() {
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let now = Instant::now();
        let mut client = TurnClient::new(server, "test", "secret", now);
        let first = client.poll_transmit().unwrap();
        let request = Message::parse(&first).unwrap();
        assert_eq!(request.kind, ALLOCATE);
        assert!(request.attr(ATTR_MESSAGE_INTEGRITY).is_none());

        let unauthorized = encode(
            ALLOCATE | CLASS_ERROR,
            &request.transaction,
            &[
                (ATTR_ERROR_CODE, [&[0, 0, 4, 1][..], b"Unauthorized"].concat()),
                (ATTR_REALM, b"streamkit".to_vec()),
                (ATTR_NONCE, b"n1".to_vec()),
            ],
            None,
        );
        assert!(client.handle_input(&unauthorized, now).is_none());
        let second = client.poll_transmit().unwrap();
        let key = long_term_key("test", "streamkit", "secret");
        assert!(verify_integrity(&second, &key));
        let request = Message::parse(&second).unwrap();
        assert_eq!(request.attr(ATTR_USERNAME), Some(&b"test"[..]));
        assert_eq!(request.attr(ATTR_NONCE), Some(&b"n1"[..]));

        let relayed: SocketAddr = "192.0.2.1:50000".parse().unwrap();
        let success = encode(
            ALLOCATE | CLASS_SUCCESS,
            &request.transaction,
            &[
                (ATTR_XOR_RELAYED_ADDRESS, encode_xor_address(relayed, &request.transaction)),
                (ATTR_LIFETIME, 600u32.to_be_bytes().to_vec()),
            ],
            Some(&key),
        );
        client.handle_input(&success, now);
        assert_eq!(client.relayed(), Some(relayed));

        // First data to a peer: CreatePermission, ChannelBind, then a Send indication.
        let peer: SocketAddr = "198.51.100.7:4000".parse().unwrap();
        client.send_to(peer, b"hello", now);
        let queued: Vec<Vec<u8>> = std::iter::from_fn(|| client.poll_transmit()).collect();
        let kinds: Vec<u16> = queued.iter().map(|d| Message::parse(d).unwrap().kind).collect();
        assert_eq!(kinds, vec![CREATE_PERMISSION, CHANNEL_BIND, SEND | CLASS_INDICATION]);
        let bind = Message::parse(&queued[1]).unwrap();
        assert_eq!(decode_address(bind.attr(ATTR_XOR_PEER_ADDRESS).unwrap(), Some(&bind.transaction)), Some(peer));
        let bound = encode(CHANNEL_BIND | CLASS_SUCCESS, &bind.transaction, &[], Some(&key));
        client.handle_input(&bound, now);
        client.send_to(peer, b"again", now);
        assert_eq!(client.poll_transmit().unwrap(), [&[0x40, 0x00, 0, 5][..], b"again"].concat());

        // Incoming: ChannelData (padded) and a Data indication.
        let channel_data = [&[0x40, 0x00, 0, 3][..], b"abc\0"].concat();
        assert_eq!(client.handle_input(&channel_data, now), Some((peer, &b"abc"[..])));
        let indication = encode(
            DATA | CLASS_INDICATION,
            &[9; 12],
            &[(ATTR_XOR_PEER_ADDRESS, encode_xor_address(peer, &[9; 12])), (ATTR_DATA, b"xyz".to_vec())],
            None,
        );
        assert_eq!(client.handle_input(&indication, now), Some((peer, &b"xyz"[..])));

        // The refresh comes before the lifetime ends; permissions every 4 minutes.
        client.handle_timeout(now + Duration::from_secs(241));
        let kinds: Vec<u16> =
            std::iter::from_fn(|| client.poll_transmit()).map(|d| Message::parse(&d).unwrap().kind).collect();
        assert!(kinds.contains(&CREATE_PERMISSION) && kinds.contains(&CHANNEL_BIND), "{kinds:x?}");
        client.handle_timeout(now + Duration::from_secs(541));
        let kinds: Vec<u16> =
            std::iter::from_fn(|| client.poll_transmit()).map(|d| Message::parse(&d).unwrap().kind).collect();
        assert!(kinds.contains(&REFRESH), "{kinds:x?}");
    }

    #[test]
    fn wrong_credentials_fail_naming_the_server() {
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let now = Instant::now();
        let mut client = TurnClient::new(server, "test", "wrong", now);
        for _ in 0..2 {
            let request = Message::parse(&client.poll_transmit().unwrap()).map(|m| m.transaction).unwrap();
            let unauthorized = encode(
                ALLOCATE | CLASS_ERROR,
                &request,
                &[
                    (ATTR_ERROR_CODE, [&[0, 0, 4, 1][..], b"Unauthorized"].concat()),
                    (ATTR_REALM, b"r".to_vec()),
                    (ATTR_NONCE, b"n".to_vec()),
                ],
                None,
            );
            client.handle_input(&unauthorized, now);
        }
        let State::Failed(why) = client.state() else { panic!("{:?}", client.state()) };
        assert!(why.contains("192.0.2.1:3478") && why.contains("401 Unauthorized"), "{why}");
    }
}
