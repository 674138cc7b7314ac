//! SDP (RFC 8866) for one RTP video stream: written for receivers such as
//! FFmpeg (`ffmpeg -protocol_whitelist file,udp,rtp -i out.sdp`) and
//! GStreamer, and read from senders such as FFmpeg (`-sdp_file x.sdp`).
//!
//! Two payloads:
//!
//! ```text
//! m=video 5004 RTP/AVP 96
//! a=rtpmap:96 H264/90000
//! a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0Lg…,aM4…
//!
//! m=video 5004 RTP/AVP 96
//! a=rtpmap:96 raw/90000
//! a=fmtp:96 sampling=YCbCr-4:2:2; width=640; height=360; exactframerate=30; depth=8; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017
//! ```
//!
//! The H.264 parameters are RFC 6184 §8.1, the raw ones RFC 4175 §6.1 with
//! SMPTE ST 2110-20's additions (`exactframerate`, `TCS`, `PM`, `SSN`);
//! FFmpeg's reader (`rtpdec_rfc4175.c`) needs `sampling`, `width`, `height`
//! and `depth` and takes the others when present. The parser accepts CRLF or
//! LF, session- or media-level `c=`, `addr/ttl` for multicast, `;` with or
//! without spaces, and ignores what it does not know.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use streamkit_core::error::IoContext;
use streamkit_core::{Error, Fps, Result};

/// What an RTP video stream is and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpDescription {
    /// Destination (unicast or multicast group).
    pub address: IpAddr,
    pub port: u16,
    /// Multicast TTL (`c=IN IP4 239.1.1.1/16`).
    pub ttl: Option<u8>,
    pub payload_type: u8,
    pub payload: Payload,
    /// `a=framerate` (or the raw `exactframerate`).
    pub framerate: Option<Fps>,
    /// `s=`.
    pub session_name: String,
}

/// The payload format and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    H264(H264Params),
    Raw(RawParams),
}

/// RFC 6184 parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H264Params {
    pub packetization_mode: u8,
    /// Profile, constraints and level: the SPS bytes 1..4 (e.g. `42e01f`).
    pub profile_level_id: Option<[u8; 3]>,
    /// SPS and PPS NAL units (header byte first).
    pub sprop_parameter_sets: Vec<Vec<u8>>,
}

impl H264Params {
    /// Parameters for packetization-mode 1 from an SPS and PPS.
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> H264Params {
        H264Params {
            packetization_mode: 1,
            profile_level_id: sps.get(1..4).map(|b| [b[0], b[1], b[2]]),
            sprop_parameter_sets: vec![sps.to_vec(), pps.to_vec()],
        }
    }
}

/// RFC 4175 / ST 2110-20 parameters. streamkit sends and receives
/// `YCbCr-4:2:2`, depth 8, progressive; others parse but are refused by
/// [`RawParams::check_supported`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawParams {
    pub sampling: String,
    pub width: u32,
    pub height: u32,
    pub depth: u8,
    pub colorimetry: Option<String>,
    pub interlace: bool,
}

impl RawParams {
    /// YCbCr 4:2:2, 8 bit, BT.709: what streamkit sends.
    pub fn uyvy(width: u32, height: u32) -> RawParams {
        RawParams {
            sampling: "YCbCr-4:2:2".into(),
            width,
            height,
            depth: 8,
            colorimetry: Some("BT709".into()),
            interlace: false,
        }
    }

    /// An error naming what streamkit cannot take.
    pub fn check_supported(&self) -> Result<()> {
        if !self.sampling.eq_ignore_ascii_case("YCbCr-4:2:2") || self.depth != 8 || self.interlace {
            return Err(Error::Unsupported(format!(
                "RFC 4175 sampling={} depth={}{}: streamkit handles YCbCr-4:2:2, depth 8, progressive \
                 (FFmpeg: -c:v rawvideo -pix_fmt uyvy422)",
                self.sampling,
                self.depth,
                if self.interlace { " interlaced" } else { "" }
            )));
        }
        crate::raw::RawFormat::new(self.width, self.height).map(|_| ())
    }
}

impl RtpDescription {
    /// The SDP text (CRLF line ends, as RFC 8866 asks).
    pub fn to_sdp(&self) -> String {
        let family = if self.address.is_ipv4() { "IP4" } else { "IP6" };
        let mut connection = self.address.to_string();
        if self.address.is_multicast() && self.address.is_ipv4() {
            let _ = write!(connection, "/{}", self.ttl.unwrap_or(1));
        }
        let session_id = streamkit_core::time::realtime_ns() / 1_000_000_000 + 2_208_988_800;
        let pt = self.payload_type;
        let mut s = String::new();
        let mut line = |text: String| {
            s.push_str(&text);
            s.push_str("\r\n");
        };
        line("v=0".into());
        line(format!("o=- {session_id} 1 IN {family} {}", self.address));
        line(format!("s={}", if self.session_name.is_empty() { "streamkit" } else { &self.session_name }));
        line(format!("c=IN {family} {connection}"));
        line("t=0 0".into());
        line("a=tool:streamkit".into());
        line(format!("m=video {} RTP/AVP {pt}", self.port));
        match &self.payload {
            Payload::H264(h) => {
                line(format!("a=rtpmap:{pt} H264/90000"));
                let mut fmtp = format!("packetization-mode={}", h.packetization_mode);
                if let Some(p) = h.profile_level_id {
                    let _ = write!(fmtp, ";profile-level-id={:02x}{:02x}{:02x}", p[0], p[1], p[2]);
                }
                if !h.sprop_parameter_sets.is_empty() {
                    let sets: Vec<String> = h.sprop_parameter_sets.iter().map(|s| base64_encode(s)).collect();
                    let _ = write!(fmtp, ";sprop-parameter-sets={}", sets.join(","));
                }
                line(format!("a=fmtp:{pt} {fmtp}"));
            }
            Payload::Raw(r) => {
                line(format!("a=rtpmap:{pt} raw/90000"));
                let mut fmtp = format!("sampling={}; width={}; height={}", r.sampling, r.width, r.height);
                if let Some(fps) = self.framerate {
                    let _ = write!(fmtp, "; exactframerate={fps}");
                }
                let _ = write!(fmtp, "; depth={}; TCS=SDR", r.depth);
                if let Some(c) = &r.colorimetry {
                    let _ = write!(fmtp, "; colorimetry={c}");
                }
                if r.interlace {
                    fmtp.push_str("; interlace");
                }
                fmtp.push_str("; PM=2110GPM; SSN=ST2110-20:2017");
                line(format!("a=fmtp:{pt} {fmtp}"));
            }
        }
        if let Some(fps) = self.framerate {
            let rate = fps.as_f64();
            line(if rate.fract() == 0.0 { format!("a=framerate:{rate}") } else { format!("a=framerate:{rate:.3}") });
        }
        s
    }

    /// Reads the first video stream in H.264 or raw from SDP text.
    pub fn from_sdp(text: &str) -> Result<RtpDescription> {
        let sdp = Sdp::parse(text)?;
        let bad = |m: String| Error::malformed("sdp", 0, m);
        let media = sdp
            .media
            .iter()
            .find(|m| m.kind == "video" && m.formats.iter().any(|f| m.payload_of(f).is_some()))
            .ok_or_else(|| {
                bad("no m=video line with an H264/90000 or raw/90000 rtpmap (streamkit reads those two)".into())
            })?;
        let (pt, payload) = media
            .formats
            .iter()
            .find_map(|f| media.payload_of(f).map(|p| (f.parse::<u8>().unwrap_or(0), p)))
            .expect("found above");
        let connection = media
            .connection
            .clone()
            .or(sdp.connection.clone())
            .ok_or_else(|| bad("no c= connection line (session or media level)".into()))?;
        let framerate = media
            .attribute("framerate")
            .and_then(Fps::parse)
            .or_else(|| media.fmtp(pt).and_then(|f| param(f, "exactframerate")).and_then(Fps::parse));
        Ok(RtpDescription {
            address: connection.address,
            port: media.port,
            ttl: connection.ttl,
            payload_type: pt,
            payload,
            framerate,
            session_name: sdp.session_name,
        })
    }

    /// Reads an SDP file.
    pub fn read(path: &Path) -> Result<RtpDescription> {
        let text = std::fs::read_to_string(path).context(|| format!("reading SDP file {}", path.display()))?;
        RtpDescription::from_sdp(&text).map_err(|e| match e {
            Error::Malformed { message, .. } => Error::malformed(format!("sdp {}", path.display()), 0, message),
            other => other,
        })
    }

    /// Writes the SDP file atomically (a temporary file in the same folder,
    /// then a rename), so a reader never sees half of it.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sdp".into());
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, self.to_sdp()).context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    }
}

/// The value of `key` in an fmtp parameter list (`a=1;b=2` or `a=1; b=2`),
/// keys compared case-insensitively; a bare key gives `""`.
pub fn param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// A `c=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub address: IpAddr,
    pub ttl: Option<u8>,
}

/// One `m=` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub protocol: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    /// `a=name:value` (value `""` for a flag).
    pub attributes: Vec<(String, String)>,
}

impl Media {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `a=rtpmap:PT ENCODING/CLOCK…` for payload type `pt`: (encoding, clock).
    pub fn rtpmap(&self, pt: u8) -> Option<(&str, u32)> {
        self.attributes.iter().filter(|(n, _)| n == "rtpmap").find_map(|(_, v)| {
            let (p, rest) = v.split_once(' ')?;
            (p.trim().parse::<u8>().ok()? == pt).then_some(())?;
            let mut parts = rest.trim().split('/');
            let encoding = parts.next()?;
            let clock = parts.next()?.parse().ok()?;
            Some((encoding, clock))
        })
    }

    /// The parameters of `a=fmtp:PT …`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes.iter().filter(|(n, _)| n == "fmtp").find_map(|(_, v)| {
            let (p, rest) = v.split_once(' ').unwrap_or((v, ""));
            (p.trim().parse::<u8>().ok()? == pt).then(|| rest.trim())
        })
    }

    fn payload_of(&self, format: &str) -> Option<Payload> {
        let pt: u8 = format.parse().ok()?;
        let (encoding, clock) = self.rtpmap(pt)?;
        let fmtp = self.fmtp(pt).unwrap_or("");
        if clock != 90_000 {
            return None;
        }
        if encoding.eq_ignore_ascii_case("H264") {
            let sets = param(fmtp, "sprop-parameter-sets")
                .map(|v| v.split(',').filter_map(|s| base64_decode(s.trim())).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            Some(Payload::H264(H264Params {
                packetization_mode: param(fmtp, "packetization-mode").and_then(|v| v.parse().ok()).unwrap_or(0),
                profile_level_id: param(fmtp, "profile-level-id").and_then(parse_profile_level_id),
                sprop_parameter_sets: sets,
            }))
        } else if encoding.eq_ignore_ascii_case("raw") {
            let number = |k: &str| param(fmtp, k).and_then(|v| v.parse::<u32>().ok());
            Some(Payload::Raw(RawParams {
                sampling: param(fmtp, "sampling").unwrap_or("").to_string(),
                width: number("width").unwrap_or(0),
                height: number("height").unwrap_or(0),
                depth: number("depth").map_or(0, |d| d.min(255) as u8),
                colorimetry: param(fmtp, "colorimetry").map(str::to_string),
                interlace: param(fmtp, "interlace").is_some(),
            }))
        } else {
            None
        }
    }
}

/// The parts of an SDP this crate reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sdp {
    pub session_name: String,
    pub connection: Option<Connection>,
    pub media: Vec<Media>,
}

impl Sdp {
    /// Parses SDP text: `x=value` lines, unknown types ignored. Errors on a
    /// missing `v=0` or a malformed `c=` / `m=` line, naming the line.
    pub fn parse(text: &str) -> Result<Sdp> {
        let mut sdp = Sdp::default();
        let mut seen_version = false;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let bad = |m: &str| Error::malformed("sdp", n as u64 + 1, format!("line {} '{line}': {m}", n + 1));
            let (kind, value) = line.split_once('=').ok_or_else(|| bad("not of the form x=value"))?;
            match kind {
                "v" => {
                    if value.trim() != "0" {
                        return Err(bad("only SDP version 0 exists"));
                    }
                    seen_version = true;
                }
                "s" if sdp.media.is_empty() => sdp.session_name = value.to_string(),
                "c" => {
                    let connection =
                        parse_connection(value).ok_or_else(|| bad("expected c=IN IP4|IP6 ADDRESS[/TTL]"))?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(connection),
                        None => sdp.connection = Some(connection),
                    }
                }
                "m" => {
                    let mut parts = value.split_whitespace();
                    let media_kind = parts.next().ok_or_else(|| bad("missing media type"))?;
                    let port = parts
                        .next()
                        .and_then(|p| p.split('/').next()?.parse().ok())
                        .ok_or_else(|| bad("missing or bad port"))?;
                    let protocol = parts.next().ok_or_else(|| bad("missing protocol"))?;
                    sdp.media.push(Media {
                        kind: media_kind.to_string(),
                        port,
                        protocol: protocol.to_string(),
                        formats: parts.map(str::to_string).collect(),
                        ..Media::default()
                    });
                }
                "a" => {
                    if let Some(media) = sdp.media.last_mut() {
                        let (name, value) = value.split_once(':').unwrap_or((value, ""));
                        media.attributes.push((name.to_string(), value.to_string()));
                    }
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(Error::malformed("sdp", 0, "no v=0 line: this is not SDP"));
        }
        Ok(sdp)
    }
}

fn parse_connection(value: &str) -> Option<Connection> {
    let mut parts = value.split_whitespace();
    if parts.next()? != "IN" {
        return None;
    }
    let family = parts.next()?;
    let mut address = parts.next()?.split('/');
    let ip: IpAddr = address.next()?.parse().ok()?;
    if (family == "IP4") != ip.is_ipv4() {
        return None;
    }
    let ttl = if ip.is_ipv4() { address.next().and_then(|t| t.parse().ok()) } else { None };
    Some(Connection { address: ip, ttl })
}

fn parse_profile_level_id(hex: &str) -> Option<[u8; 3]> {
    if hex.len() != 6 {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as `sprop-parameter-sets` uses.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 (padding optional); `None` on any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_RAW: &str = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\n\
        a=tool:libavformat LIBAVFORMAT_VERSION\nm=video 5998 RTP/AVP 96\nb=AS:36864\na=rtpmap:96 raw/90000\n\
        a=fmtp:96 sampling=YCbCr-4:2:2; width=320; height=240; depth=8\n";
    const FFMPEG_H264: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        a=tool:libavformat LIBAVFORMAT_VERSION\r\nm=video 5996 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1\r\n";

    #[test]
    fn reads_what_ffmpeg_writes() {
        let raw = RtpDescription::from_sdp(FFMPEG_RAW).unwrap();
        assert_eq!((raw.address.to_string(), raw.port, raw.payload_type), ("127.0.0.1".into(), 5998, 96));
        let Payload::Raw(r) = &raw.payload else { panic!("raw expected") };
        assert_eq!((r.sampling.as_str(), r.width, r.height, r.depth), ("YCbCr-4:2:2", 320, 240, 8));
        r.check_supported().unwrap();

        let h = RtpDescription::from_sdp(FFMPEG_H264).unwrap();
        assert_eq!(h.payload, Payload::H264(H264Params { packetization_mode: 1, ..H264Params::default() }));
    }

    #[test]
    fn h264_round_trip_with_parameter_sets() {
        let sps = vec![0x67, 0x42, 0xe0, 0x1f, 0x8d, 0x68, 0x05, 0x00];
        let pps = vec![0x68, 0xce, 0x06, 0xe2];
        let d = RtpDescription {
            address: "239.1.2.3".parse().unwrap(),
            port: 5004,
            ttl: Some(4),
            payload_type: 96,
            payload: Payload::H264(H264Params::from_parameter_sets(&sps, &pps)),
            framerate: Some(Fps::new(30, 1)),
            session_name: "streamkit".into(),
        };
        let text = d.to_sdp();
        assert!(text.contains("c=IN IP4 239.1.2.3/4\r\n"), "{text}");
        assert!(text.contains("a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets="));
        assert_eq!(RtpDescription::from_sdp(&text).unwrap(), d);
    }

    #[test]
    fn raw_round_trip_and_the_fmtp_ffmpeg_parses() {
        let d = RtpDescription {
            address: "127.0.0.1".parse().unwrap(),
            port: 6000,
            ttl: None,
            payload_type: 96,
            payload: Payload::Raw(RawParams::uyvy(640, 360)),
            framerate: Some(Fps::new(30000, 1001)),
            session_name: "streamkit".into(),
        };
        let text = d.to_sdp();
        assert!(text.contains(
            "a=fmtp:96 sampling=YCbCr-4:2:2; width=640; height=360; exactframerate=30000/1001; depth=8; TCS=SDR; \
             colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017\r\n"
        ));
        assert!(text.contains("a=framerate:29.970\r\n"));
        let back = RtpDescription::from_sdp(&text).unwrap();
        assert_eq!(back.payload, d.payload);
        assert_eq!(back.framerate, Some(Fps::new(30000, 1001)));
    }

    #[test]
    fn unsupported_and_malformed_sdp_say_why() {
        let e = RtpDescription::from_sdp("hello").unwrap_err().to_string();
        assert!(e.contains("x=value"), "{e}");
        let e = RtpDescription::from_sdp("v=0\nm=audio 5000 RTP/AVP 0\n").unwrap_err().to_string();
        assert!(e.contains("H264/90000 or raw/90000"), "{e}");
        let e = RtpDescription::from_sdp("v=0\nm=video 5000 RTP/AVP 96\na=rtpmap:96 H264/90000\n").unwrap_err();
        assert!(e.to_string().contains("c= connection"), "{e}");
        let ten_bit = FFMPEG_RAW.replace("depth=8", "depth=10");
        let Payload::Raw(r) = RtpDescription::from_sdp(&ten_bit).unwrap().payload else { panic!() };
        assert!(r.check_supported().unwrap_err().to_string().contains("depth=10"));
        assert!(Sdp::parse("v=0\nc=IN IP4 nowhere\n").unwrap_err().to_string().contains("line 2"));
    }

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0xff, 0x00, 0x80]] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Z0LgH40="), Some(vec![0x67, 0x42, 0xe0, 0x1f, 0x8d]));
        assert_eq!(base64_decode("Z0*g"), None);
    }

    #[test]
    fn writes_atomically() {
        let dir = std::env::temp_dir().join(format!("streamkit-rtp-sdp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.sdp");
        let d = RtpDescription::from_sdp(FFMPEG_RAW).unwrap();
        d.write_atomic(&path).unwrap();
        assert_eq!(RtpDescription::read(&path).unwrap().payload, d.payload);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
