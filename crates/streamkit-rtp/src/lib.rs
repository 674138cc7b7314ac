//! # streamkit-rtp
//!
//! Video over RTP/UDP for streamkit: H.264 (RFC 6184, packetization-mode 1)
//! and uncompressed YCbCr 4:2:2 8-bit (RFC 4175, the SMPTE ST 2110-20
//! payload), described by SDP files (RFC 8866) that FFmpeg and GStreamer read
//! and write.
//!
//! The protocol work is sans-IO, as in str0m: state machines fed bytes and
//! times, answering with packets, frames and deadlines; they never read a
//! clock or touch a socket, so tests drive them deterministically.
//!
//! * [`packet`] — RTP headers (RFC 3550), packet batches, 64-bit extension
//!   of sequence numbers and timestamps;
//! * [`reorder`] — the reorder buffer: in sequence order out, holes become losses;
//! * [`h264`] — FU-A / STAP-A / single NAL packetiser and the depacketiser
//!   that reassembles access units, drops broken ones and waits for a keyframe;
//! * [`raw`] — RFC 4175 packetiser and depacketiser (into pooled buffers);
//! * [`receiver`] — all of the above behind one `handle_packet` / `poll_output`;
//! * [`pacer`] — token bucket spreading a frame over its interval;
//! * [`sdp`] — SDP writing and parsing; [`rtcp`] — sender reports;
//! * [`uyvy`] — 4:2:2 ⇄ I420 / RGBA conversions (to move into
//!   `streamkit_core::convert` once it has a 4:2:2 pixel format).
//!
//! The I/O around them is thin: [`RtpSink`] (`rtp://HOST:PORT?sdp=out.sdp`)
//! and [`RtpSource`] (`rtp://ADDR:PORT?sdp=in.sdp`), registered as the
//! `rtp` scheme by [`register`].
//!
//! ```
//! use streamkit_rtp::packet::{PacketBatch, RtpSender};
//! use streamkit_rtp::raw::{RawFormat, RawPacketizer};
//! use streamkit_rtp::receiver::{ReceiverConfig, Received, RtpReceiver, StreamKind};
//!
//! // A 64x8 UYVY frame → RFC 4175 packets → the receiver → the same pixels.
//! let format = RawFormat::new(64, 8).unwrap();
//! let pixels: Vec<u8> = (0..format.frame_bytes()).map(|i| i as u8).collect();
//! let mut packetizer = RawPacketizer::new(RtpSender::new(7, 96, 1), format, 300);
//! let mut batch = PacketBatch::new();
//! packetizer.packetize(&pixels, format.stride(), 90_000, &mut batch);
//!
//! let mut receiver = RtpReceiver::new(ReceiverConfig::new(StreamKind::Raw(format)));
//! for (i, packet) in batch.iter().enumerate() {
//!     receiver.handle_packet(packet, i as u64 * 1_000); // bytes and their arrival time
//! }
//! let Some(Received::Frame(frame)) = receiver.poll_output() else { panic!() };
//! assert!(frame.complete);
//! assert_eq!(frame.data(), &pixels[..]);
//! ```

use std::fmt;
use std::str::FromStr;

use streamkit_core::registry::Registry;
use streamkit_core::Error;

#[doc(hidden)]
pub mod fuzzing;
pub mod h264;
pub mod net;
pub mod pacer;
pub mod packet;
pub mod raw;
pub mod receiver;
pub mod reorder;
pub mod rtcp;
pub mod sdp;
pub mod sink;
pub mod source;
pub mod uyvy;

pub use sdp::RtpDescription;
pub use sink::{RtpSink, RtpSinkOptions};
pub use source::{RtpSource, RtpSourceOptions};

/// What an RTP stream carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtpFormat {
    /// H.264, RFC 6184.
    #[default]
    H264,
    /// YCbCr 4:2:2 8-bit, RFC 4175 / SMPTE ST 2110-20.
    Raw,
}

impl fmt::Display for RtpFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RtpFormat::H264 => "h264",
            RtpFormat::Raw => "raw",
        })
    }
}

impl FromStr for RtpFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<RtpFormat, Error> {
        match s.to_ascii_lowercase().as_str() {
            "h264" | "h.264" | "avc" => Ok(RtpFormat::H264),
            "raw" | "rfc4175" | "uyvy" | "2110" => Ok(RtpFormat::Raw),
            _ => Err(Error::invalid(format!("unknown RTP format '{s}'; known: h264, raw"))),
        }
    }
}

/// Registers the `rtp` scheme (source and sink) and `.sdp` files as RTP inputs.
pub fn register(registry: &mut Registry) {
    registry
        .plugin(
            "rtp",
            "RTP over UDP: H.264 (RFC 6184) and raw YCbCr 4:2:2 (RFC 4175 / ST 2110-20), SDP files, pacing, multicast",
        )
        .source(
            "rtp",
            "RTP input (sdp=in.sdp, or format=h264|raw&size=WxH; fps=, pt=, timeout=, iface=, buffer=)",
            "rtp://127.0.0.1:5004?sdp=in.sdp",
            |uri, _| Ok(Box::new(RtpSource::from_uri(uri)?)),
        )
        .sink(
            "rtp",
            "RTP output with an SDP file (sdp=, format=h264|raw, mtu=, bitrate=, keyint=, pace=, ttl=, iface=, rtcp=, pt=)",
            "rtp://127.0.0.1:5004?sdp=out.sdp&format=raw",
            |uri, _| Ok(Box::new(RtpSink::from_uri(uri)?)),
        )
        .file_extension("sdp", "rtp");
}
