//! IEEE 1588-2019 (PTP version 2) messages on the wire: bounds-checked
//! parsing and serialising of the messages an ordinary clock in the slave
//! role needs (Sync, Delay_Req, Follow_Up, Delay_Resp, Announce).
//!
//! Parsing never panics: every length is checked against both the buffer and
//! the header's `messageLength`, and a failure names the reason
//! ([`ParseError`]) so that the port can count it.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// UDP port of event messages (Sync, Delay_Req), which are timestamped.
pub const EVENT_PORT: u16 = 319;
/// UDP port of general messages (Follow_Up, Delay_Resp, Announce).
pub const GENERAL_PORT: u16 = 320;
/// The primary IPv4 multicast group of PTP (all messages but peer delay).
pub const PRIMARY_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 129);

/// Length of the common header.
pub const HEADER_LEN: usize = 34;
/// Sync, Delay_Req and Follow_Up: header + one timestamp.
pub const SYNC_LEN: usize = 44;
/// Delay_Resp: header + timestamp + requesting port identity.
pub const DELAY_RESP_LEN: usize = 54;
/// Announce without TLVs.
pub const ANNOUNCE_LEN: usize = 64;

/// `flagField` bit: the sender sends a Follow_Up with the precise origin time.
pub const FLAG_TWO_STEP: u16 = 0x0200;
/// `flagField` bit: the message was sent unicast.
pub const FLAG_UNICAST: u16 = 0x0400;
/// `flagField` bit: the grandmaster's timescale is PTP (TAI), not arbitrary.
pub const FLAG_PTP_TIMESCALE: u16 = 0x0008;
/// `flagField` bit: `currentUtcOffset` is valid.
pub const FLAG_UTC_OFFSET_VALID: u16 = 0x0004;

/// An EUI-64 clock identity, printed as linuxptp does: `001122.fffe.334455`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockIdentity(pub [u8; 8]);

impl ClockIdentity {
    /// The identity IEEE 1588-2008 derives from a MAC address (`FFFE` in the middle).
    pub fn from_mac(mac: [u8; 6]) -> ClockIdentity {
        ClockIdentity([mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
    }

    /// A MAC-based identity with two chosen middle bytes (IEEE 1588-2019
    /// 7.5.2.2.2 allows any 2 octets there), so that several processes on one
    /// interface — or ptp4l beside us — never share an identity.
    pub fn from_mac_with(mac: [u8; 6], middle: [u8; 2]) -> ClockIdentity {
        ClockIdentity([mac[0], mac[1], mac[2], middle[0], middle[1], mac[3], mac[4], mac[5]])
    }
}

impl fmt::Display for ClockIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7])
    }
}

impl FromStr for ClockIdentity {
    type Err = String;

    /// Parses `001122.fffe.334455`, `00:11:22:ff:fe:33:44:55` or 16 hex digits.
    fn from_str(text: &str) -> Result<ClockIdentity, String> {
        let hex: String = text.chars().filter(|c| !matches!(c, '.' | ':' | '-')).collect();
        if hex.len() != 16 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad clock identity '{text}': expected 16 hex digits like 001122.fffe.334455"));
        }
        let mut out = [0u8; 8];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(ClockIdentity(out))
    }
}

/// A clock identity and the number of one of its ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortIdentity {
    pub clock: ClockIdentity,
    pub port: u16,
}

impl fmt::Display for PortIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.clock, self.port)
    }
}

/// A PTP timestamp: 48-bit seconds and nanoseconds since the PTP epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: u64,
    pub nanos: u32,
}

impl Timestamp {
    /// Nanoseconds since the epoch.
    pub fn as_ns(self) -> i128 {
        self.seconds as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// The timestamp of `ns` nanoseconds since the epoch (clamped to 48-bit seconds).
    pub fn from_ns(ns: i128) -> Timestamp {
        let ns = ns.clamp(0, (1i128 << 48) * 1_000_000_000 - 1);
        Timestamp { seconds: (ns / 1_000_000_000) as u64, nanos: (ns % 1_000_000_000) as u32 }
    }
}

/// The `messageType` nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Sync,
    DelayReq,
    PdelayReq,
    PdelayResp,
    FollowUp,
    DelayResp,
    PdelayRespFollowUp,
    Announce,
    Signaling,
    Management,
}

impl MessageType {
    pub fn from_nibble(n: u8) -> Option<MessageType> {
        Some(match n {
            0x0 => MessageType::Sync,
            0x1 => MessageType::DelayReq,
            0x2 => MessageType::PdelayReq,
            0x3 => MessageType::PdelayResp,
            0x8 => MessageType::FollowUp,
            0x9 => MessageType::DelayResp,
            0xA => MessageType::PdelayRespFollowUp,
            0xB => MessageType::Announce,
            0xC => MessageType::Signaling,
            0xD => MessageType::Management,
            _ => return None,
        })
    }

    pub fn nibble(self) -> u8 {
        match self {
            MessageType::Sync => 0x0,
            MessageType::DelayReq => 0x1,
            MessageType::PdelayReq => 0x2,
            MessageType::PdelayResp => 0x3,
            MessageType::FollowUp => 0x8,
            MessageType::DelayResp => 0x9,
            MessageType::PdelayRespFollowUp => 0xA,
            MessageType::Announce => 0xB,
            MessageType::Signaling => 0xC,
            MessageType::Management => 0xD,
        }
    }

    /// Event messages are timestamped and travel on port 319.
    pub fn is_event(self) -> bool {
        matches!(self, MessageType::Sync | MessageType::DelayReq | MessageType::PdelayReq | MessageType::PdelayResp)
    }

    /// The obsolete `controlField` value for this type (IEEE 1588-2008 table 23).
    fn control_field(self) -> u8 {
        match self {
            MessageType::Sync => 0,
            MessageType::DelayReq => 1,
            MessageType::FollowUp => 2,
            MessageType::DelayResp => 3,
            MessageType::Management => 4,
            _ => 5,
        }
    }
}

/// The common 34-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub message_type: MessageType,
    /// `majorSdoId` (the former `transportSpecific`), 0 for IEEE 1588 default profiles.
    pub major_sdo_id: u8,
    pub minor_sdo_id: u8,
    pub version: u8,
    pub minor_version: u8,
    pub message_length: u16,
    pub domain: u8,
    pub flags: u16,
    /// `correctionField`: nanoseconds × 2^16.
    pub correction: i64,
    pub source: PortIdentity,
    pub sequence_id: u16,
    pub log_message_interval: i8,
}

impl Header {
    /// A header for a message of `message_type` with the usual defaults.
    pub fn new(message_type: MessageType, domain: u8, source: PortIdentity, sequence_id: u16) -> Header {
        Header {
            message_type,
            major_sdo_id: 0,
            minor_sdo_id: 0,
            version: 2,
            minor_version: 0,
            message_length: 0,
            domain,
            flags: 0,
            correction: 0,
            source,
            sequence_id,
            log_message_interval: 0x7f,
        }
    }

    pub fn two_step(&self) -> bool {
        self.flags & FLAG_TWO_STEP != 0
    }

    /// The correction field in whole nanoseconds (rounded toward minus infinity).
    pub fn correction_ns(&self) -> i128 {
        (self.correction >> 16) as i128
    }
}

/// The grandmaster's quality as announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClockQuality {
    pub clock_class: u8,
    pub clock_accuracy: u8,
    pub offset_scaled_log_variance: u16,
}

/// The body of an Announce message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    pub origin_timestamp: Timestamp,
    pub current_utc_offset: i16,
    pub grandmaster_priority1: u8,
    pub grandmaster_quality: ClockQuality,
    pub grandmaster_priority2: u8,
    pub grandmaster_identity: ClockIdentity,
    pub steps_removed: u16,
    pub time_source: u8,
}

/// The bodies the slave understands; everything else is [`Body::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Sync {
        origin_timestamp: Timestamp,
    },
    DelayReq {
        origin_timestamp: Timestamp,
    },
    FollowUp {
        precise_origin_timestamp: Timestamp,
    },
    DelayResp {
        receive_timestamp: Timestamp,
        requesting_port: PortIdentity,
    },
    Announce(Announce),
    /// A valid message of a type the slave ignores (peer delay, signaling, management).
    Other,
}

/// One parsed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Why bytes are not a PTP message we can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the header, than `messageLength`, or than the body needs.
    Truncated { needed: usize, got: usize },
    /// `versionPTP` is not 2.
    Version(u8),
    /// An unassigned `messageType`.
    UnknownType(u8),
    /// A timestamp with nanoseconds ≥ 10^9.
    BadTimestamp,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated { needed, got } => write!(f, "truncated: {got} bytes, needed {needed}"),
            ParseError::Version(v) => write!(f, "PTP version {v}, expected 2"),
            ParseError::UnknownType(t) => write!(f, "unknown message type {t:#x}"),
            ParseError::BadTimestamp => f.write_str("timestamp nanoseconds out of range"),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn read_port_identity(b: &[u8], at: usize) -> PortIdentity {
    let mut clock = [0u8; 8];
    clock.copy_from_slice(&b[at..at + 8]);
    PortIdentity { clock: ClockIdentity(clock), port: be16(b, at + 8) }
}

fn read_timestamp(b: &[u8], at: usize) -> Result<Timestamp, ParseError> {
    let mut secs = [0u8; 8];
    secs[2..].copy_from_slice(&b[at..at + 6]);
    let nanos = u32::from_be_bytes([b[at + 6], b[at + 7], b[at + 8], b[at + 9]]);
    if nanos >= 1_000_000_000 {
        return Err(ParseError::BadTimestamp);
    }
    Ok(Timestamp { seconds: u64::from_be_bytes(secs), nanos })
}

/// Parses one message from a datagram.
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    if buf.len() < HEADER_LEN {
        return Err(ParseError::Truncated { needed: HEADER_LEN, got: buf.len() });
    }
    let version = buf[1] & 0x0f;
    if version != 2 {
        return Err(ParseError::Version(version));
    }
    let type_nibble = buf[0] & 0x0f;
    let message_type = MessageType::from_nibble(type_nibble).ok_or(ParseError::UnknownType(type_nibble))?;
    let message_length = be16(buf, 2);
    let declared = message_length as usize;
    if declared < HEADER_LEN || declared > buf.len() {
        return Err(ParseError::Truncated { needed: declared.max(HEADER_LEN), got: buf.len() });
    }
    let header = Header {
        message_type,
        major_sdo_id: buf[0] >> 4,
        minor_sdo_id: buf[5],
        version,
        minor_version: buf[1] >> 4,
        message_length,
        domain: buf[4],
        flags: be16(buf, 6),
        correction: i64::from_be_bytes(buf[8..16].try_into().expect("8 bytes")),
        source: read_port_identity(buf, 20),
        sequence_id: be16(buf, 30),
        log_message_interval: buf[33] as i8,
    };
    let b = &buf[..declared];
    let need = |n: usize| if b.len() < n { Err(ParseError::Truncated { needed: n, got: b.len() }) } else { Ok(()) };
    let body = match message_type {
        MessageType::Sync => {
            need(SYNC_LEN)?;
            Body::Sync { origin_timestamp: read_timestamp(b, 34)? }
        }
        MessageType::DelayReq => {
            need(SYNC_LEN)?;
            Body::DelayReq { origin_timestamp: read_timestamp(b, 34)? }
        }
        MessageType::FollowUp => {
            need(SYNC_LEN)?;
            Body::FollowUp { precise_origin_timestamp: read_timestamp(b, 34)? }
        }
        MessageType::DelayResp => {
            need(DELAY_RESP_LEN)?;
            Body::DelayResp { receive_timestamp: read_timestamp(b, 34)?, requesting_port: read_port_identity(b, 44) }
        }
        MessageType::Announce => {
            need(ANNOUNCE_LEN)?;
            let mut gm = [0u8; 8];
            gm.copy_from_slice(&b[53..61]);
            Body::Announce(Announce {
                origin_timestamp: read_timestamp(b, 34)?,
                current_utc_offset: be16(b, 44) as i16,
                grandmaster_priority1: b[47],
                grandmaster_quality: ClockQuality {
                    clock_class: b[48],
                    clock_accuracy: b[49],
                    offset_scaled_log_variance: be16(b, 50),
                },
                grandmaster_priority2: b[52],
                grandmaster_identity: ClockIdentity(gm),
                steps_removed: be16(b, 61),
                time_source: b[63],
            })
        }
        _ => Body::Other,
    };
    Ok(Message { header, body })
}

fn put_timestamp(out: &mut Vec<u8>, ts: Timestamp) {
    out.extend_from_slice(&ts.seconds.to_be_bytes()[2..]);
    out.extend_from_slice(&ts.nanos.to_be_bytes());
}

fn put_port_identity(out: &mut Vec<u8>, id: PortIdentity) {
    out.extend_from_slice(&id.clock.0);
    out.extend_from_slice(&id.port.to_be_bytes());
}

impl Message {
    /// Serialises the message; `messageLength` is computed. [`Body::Other`]
    /// serialises as a bare header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let h = &self.header;
        let mut out = Vec::with_capacity(ANNOUNCE_LEN);
        out.push((h.major_sdo_id << 4) | h.message_type.nibble());
        out.push((h.minor_version << 4) | (h.version & 0x0f));
        out.extend_from_slice(&[0, 0]); // length, patched below
        out.push(h.domain);
        out.push(h.minor_sdo_id);
        out.extend_from_slice(&h.flags.to_be_bytes());
        out.extend_from_slice(&h.correction.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        put_port_identity(&mut out, h.source);
        out.extend_from_slice(&h.sequence_id.to_be_bytes());
        out.push(h.message_type.control_field());
        out.push(h.log_message_interval as u8);
        match self.body {
            Body::Sync { origin_timestamp } | Body::DelayReq { origin_timestamp } => {
                put_timestamp(&mut out, origin_timestamp)
            }
            Body::FollowUp { precise_origin_timestamp } => put_timestamp(&mut out, precise_origin_timestamp),
            Body::DelayResp { receive_timestamp, requesting_port } => {
                put_timestamp(&mut out, receive_timestamp);
                put_port_identity(&mut out, requesting_port);
            }
            Body::Announce(a) => {
                put_timestamp(&mut out, a.origin_timestamp);
                out.extend_from_slice(&a.current_utc_offset.to_be_bytes());
                out.push(0);
                out.push(a.grandmaster_priority1);
                out.push(a.grandmaster_quality.clock_class);
                out.push(a.grandmaster_quality.clock_accuracy);
                out.extend_from_slice(&a.grandmaster_quality.offset_scaled_log_variance.to_be_bytes());
                out.push(a.grandmaster_priority2);
                out.extend_from_slice(&a.grandmaster_identity.0);
                out.extend_from_slice(&a.steps_removed.to_be_bytes());
                out.push(a.time_source);
            }
            Body::Other => {}
        }
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port() -> PortIdentity {
        PortIdentity { clock: ClockIdentity([0, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]), port: 1 }
    }

    #[test]
    fn identity_formats_like_linuxptp() {
        let id = port().clock;
        assert_eq!(id.to_string(), "001122.fffe.334455");
        assert_eq!("001122.fffe.334455".parse::<ClockIdentity>().unwrap(), id);
        assert_eq!(ClockIdentity::from_mac([0, 0x11, 0x22, 0x33, 0x44, 0x55]), id);
        assert!("0011".parse::<ClockIdentity>().is_err());
        assert_eq!(port().to_string(), "001122.fffe.334455-1");
    }

    #[test]
    fn round_trips_every_body() {
        let ts = Timestamp { seconds: 0x0102_0304_0506, nanos: 999_999_999 };
        let announce = Announce {
            origin_timestamp: ts,
            current_utc_offset: 37,
            grandmaster_priority1: 1,
            grandmaster_quality: ClockQuality {
                clock_class: 248,
                clock_accuracy: 0xfe,
                offset_scaled_log_variance: 0xffff,
            },
            grandmaster_priority2: 128,
            grandmaster_identity: port().clock,
            steps_removed: 3,
            time_source: 0xa0,
        };
        let bodies = [
            (MessageType::Sync, Body::Sync { origin_timestamp: ts }),
            (MessageType::DelayReq, Body::DelayReq { origin_timestamp: ts }),
            (MessageType::FollowUp, Body::FollowUp { precise_origin_timestamp: ts }),
            (MessageType::DelayResp, Body::DelayResp { receive_timestamp: ts, requesting_port: port() }),
            (MessageType::Announce, Body::Announce(announce)),
        ];
        for (message_type, body) in bodies {
            let mut header = Header::new(message_type, 127, port(), 4242);
            header.correction = -5 << 16;
            header.flags = FLAG_TWO_STEP;
            header.log_message_interval = -3;
            let bytes = Message { header, body }.to_bytes();
            let parsed = parse(&bytes).unwrap();
            assert_eq!(parsed.body, body);
            assert_eq!(parsed.header.message_length as usize, bytes.len());
            assert_eq!(parsed.header.domain, 127);
            assert_eq!(parsed.header.correction_ns(), -5);
            assert!(parsed.header.two_step());
            assert_eq!(parsed.header.sequence_id, 4242);
            assert_eq!(parsed.header.log_message_interval, -3);
            assert_eq!(parsed.header.source, port());
            // Every prefix is rejected, none panics.
            for cut in 0..bytes.len() {
                assert!(
                    matches!(parse(&bytes[..cut]), Err(ParseError::Truncated { .. })),
                    "{message_type:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_version_type_and_timestamps() {
        let bytes = Message {
            header: Header::new(MessageType::Sync, 0, port(), 1),
            body: Body::Sync { origin_timestamp: Timestamp::default() },
        }
        .to_bytes();
        let mut v1 = bytes.clone();
        v1[1] = 1;
        assert_eq!(parse(&v1), Err(ParseError::Version(1)));
        let mut unknown = bytes.clone();
        unknown[0] = 0x5;
        assert_eq!(parse(&unknown), Err(ParseError::UnknownType(5)));
        let mut bad_ns = bytes.clone();
        bad_ns[40..44].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(parse(&bad_ns), Err(ParseError::BadTimestamp));
        let mut long = bytes.clone();
        long[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert!(matches!(parse(&long), Err(ParseError::Truncated { needed: 100, .. })));
        // Trailing bytes (TLVs, padding) beyond messageLength are fine.
        let mut padded = bytes;
        padded.extend_from_slice(&[0; 10]);
        assert!(parse(&padded).is_ok());
    }

    #[test]
    fn timestamp_ns_round_trip() {
        let ts = Timestamp::from_ns(1_795_485_257_333_460_642);
        assert_eq!(ts.seconds, 1_795_485_257);
        assert_eq!(ts.nanos, 333_460_642);
        assert_eq!(ts.as_ns(), 1_795_485_257_333_460_642);
    }
}
