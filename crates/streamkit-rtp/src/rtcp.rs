//! RTCP sender reports (RFC 3550 §6.4.1), with the SDES CNAME every
//! compound packet carries (§6.5.1) and BYE (§6.6) at the end.
//!
//! A sender report ties the stream's RTP timestamps to wall-clock (NTP)
//! time, which receivers use to synchronise streams and measure delay.
//! streamkit sends one to the RTP port + 1 about once a second.

use crate::packet::RtpSender;

/// Seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The 64-bit NTP timestamp of Unix-epoch nanoseconds.
pub fn ntp_timestamp(unix_ns: u64) -> u64 {
    let seconds = unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET;
    let fraction = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

fn header(out: &mut Vec<u8>, count: u8, packet_type: u8, words_after: u16) {
    out.push(0x80 | (count & 0x1f));
    out.push(packet_type);
    out.extend_from_slice(&words_after.to_be_bytes());
}

/// A compound packet: sender report (no report blocks) + SDES CNAME, and
/// BYE when `bye`.
pub fn sender_report(sender: &RtpSender, unix_ns: u64, rtp_timestamp: u32, cname: &str, bye: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    header(&mut out, 0, 200, 6);
    out.extend_from_slice(&sender.ssrc.to_be_bytes());
    out.extend_from_slice(&ntp_timestamp(unix_ns).to_be_bytes());
    out.extend_from_slice(&rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&(sender.packets() as u32).to_be_bytes());
    out.extend_from_slice(&(sender.octets() as u32).to_be_bytes());

    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // SSRC, then the CNAME item (type, length, text), then a zero byte
    // ending the list, padded to a 32-bit boundary.
    let chunk_len = 4 + 2 + cname.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    header(&mut out, 1, 202, (padded / 4) as u16);
    out.extend_from_slice(&sender.ssrc.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + padded - (chunk_len - 1), 0);

    if bye {
        header(&mut out, 1, 203, 1);
        out.extend_from_slice(&sender.ssrc.to_be_bytes());
    }
    out
}

/// A sender report read back: (SSRC, NTP timestamp, RTP timestamp, packets, octets).
pub fn parse_sender_report(data: &[u8]) -> Option<(u32, u64, u32, u32, u32)> {
    if data.len() < 28 || data[0] >> 6 != 2 || data[1] != 200 {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    Some((word(4), (word(8) as u64) << 32 | word(12) as u64, word(16), word(20), word(24)))
}

/// The RTCP packet types in a compound packet, in order (200 SR, 202 SDES, 203 BYE).
pub fn packet_types(mut data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while data.len() >= 4 {
        types.push(data[1]);
        let len = (u16::from_be_bytes([data[2], data[3]]) as usize + 1) * 4;
        data = &data[len.min(data.len())..];
    }
    types
}

/// The SSRCs that say goodbye (BYE, packet type 203) in a compound packet;
/// empty when there is no BYE. Never panics on malformed input.
pub fn bye_sources(mut data: &[u8]) -> Vec<u32> {
    let mut sources = Vec::new();
    while data.len() >= 4 && data[0] >> 6 == 2 {
        let len = ((u16::from_be_bytes([data[2], data[3]]) as usize + 1) * 4).min(data.len());
        if data[1] == 203 {
            let count = (data[0] & 0x1f) as usize;
            sources
                .extend(data[4..len].chunks_exact(4).take(count).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
        }
        data = &data[len..];
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_layout() {
        let sender = RtpSender::new(0xabcd, 96, 0);
        let unix = 1_700_000_000_500_000_000;
        let sr = sender_report(&sender, unix, 1234, "streamkit@host", true);
        assert_eq!(sr.len() % 4, 0);
        assert_eq!(packet_types(&sr), [200, 202, 203]);
        let (ssrc, ntp, rtp, packets, octets) = parse_sender_report(&sr).unwrap();
        assert_eq!((ssrc, rtp, packets, octets), (0xabcd, 1234, 0, 0));
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31, "half a second");
        assert_eq!(bye_sources(&sr), [0xabcd]);
        assert!(bye_sources(&sender_report(&sender, unix, 1234, "x", false)).is_empty());
        assert!(bye_sources(&[0x81, 203, 0xff, 0xff, 1, 2]).is_empty(), "truncated: nothing, no panic");
    }
}
