//! `rtp://ADDRESS:PORT` as an input: RTP over UDP → frames, H.264 decoded
//! with OpenH264 or RFC 4175 raw video converted to I420.
//!
//! `streamkit run 'rtp://127.0.0.1:5004?sdp=in.sdp' --frames 60 -o out.y4m`
//! reads the address, port, payload and parameters from an SDP file (e.g.
//! FFmpeg's `-sdp_file`); without one, say `format=h264` or
//! `format=raw&size=WxH`. A multicast address joins the group.
//!
//! A receiving thread drains the socket all the time (a large `SO_RCVBUF`
//! absorbs the rest) and drives the sans-IO [`RtpReceiver`]; finished access
//! units and frames reach [`RtpSource::next_frame`] through a small queue
//! (full: the newest is dropped and counted, and H.264 waits for the next
//! keyframe). Frames are timed from the RTP timestamps (pts in 1/90000 s
//! from the first frame) and the arrival of their first packet
//! (`capture_time_ns`). The stream ends at the sender's RTCP BYE (on the
//! next port), or after `timeout` seconds without packets (once packets
//! have come).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use streamkit_core::frame::BufferPool;
use streamkit_core::time::monotonic_ns;
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Fps, Frame, PixelFormat, Result, Source, SourceInfo, TimeBase, Timing};
use streamkit_h264::nal::{nal_type, parse_sps, NAL_SPS};
use streamkit_h264::H264Decoder;
use tokio::sync::mpsc;

use crate::raw::{RawFormat, RawFrame};
use crate::receiver::{Received, ReceiverConfig, ReceiverStats, RtpReceiver, StreamKind};
use crate::sdp::{Payload, RtpDescription};
use crate::{net, RtpFormat};

/// How long a blocking read waits before the thread looks at its timers.
const POLL: Duration = Duration::from_millis(5);
/// Finished frames queued for `next_frame`.
const QUEUE: usize = 8;

/// Everything an [`RtpSource`] can be told (the URI's query, typed).
#[derive(Clone, Debug, PartialEq)]
pub struct RtpSourceOptions {
    /// Where to listen: a local address (0.0.0.0 for all) or a multicast group.
    pub address: SocketAddr,
    pub kind: StreamKind,
    pub payload_type: Option<u8>,
    pub fps: Option<Fps>,
    /// End of stream after this long without packets (once some came).
    pub timeout: Option<Duration>,
    /// Interface address to join a multicast group on.
    pub interface: Option<Ipv4Addr>,
    /// Socket receive buffer asked for (default 32 MiB for raw, 4 MiB for H.264).
    pub receive_buffer: usize,
    /// Packets held to repair reordering.
    pub reorder_window: usize,
}

impl RtpSourceOptions {
    /// Options from an SDP description (FFmpeg's `-sdp_file` or ours).
    pub fn from_description(description: &RtpDescription) -> Result<RtpSourceOptions> {
        let kind = match &description.payload {
            Payload::H264(h) => {
                if h.packetization_mode > 1 {
                    return Err(Error::Unsupported(format!(
                        "H.264 packetization-mode={}: streamkit reads modes 0 and 1 (non-interleaved)",
                        h.packetization_mode
                    )));
                }
                StreamKind::H264 { parameter_sets: h.sprop_parameter_sets.clone() }
            }
            Payload::Raw(r) => {
                r.check_supported()?;
                StreamKind::Raw(RawFormat::new(r.width, r.height)?)
            }
        };
        Ok(RtpSourceOptions::new(SocketAddr::new(description.address, description.port), kind)
            .with(|o| o.payload_type = Some(description.payload_type))
            .with(|o| o.fps = description.framerate))
    }

    pub fn new(address: SocketAddr, kind: StreamKind) -> RtpSourceOptions {
        let receive_buffer = if matches!(kind, StreamKind::Raw(_)) { 32 << 20 } else { 4 << 20 };
        RtpSourceOptions {
            address,
            kind,
            payload_type: None,
            fps: None,
            timeout: Some(Duration::from_secs(5)),
            interface: None,
            receive_buffer,
            reorder_window: 512,
        }
    }

    fn with(mut self, f: impl FnOnce(&mut RtpSourceOptions)) -> RtpSourceOptions {
        f(&mut self);
        self
    }

    /// `rtp://ADDRESS:PORT?format=h264|raw&size=WxH&fps=30&pt=96&timeout=5&iface=ADDR&buffer=BYTES`,
    /// or `rtp://?sdp=in.sdp` (address and port from the SDP unless given),
    /// or a bare `in.sdp`.
    pub fn from_uri(uri: &Uri) -> Result<RtpSourceOptions> {
        let mut o = uri.options();
        let body_sdp = (!uri.body.starts_with("//") && !uri.body.is_empty()).then(|| PathBuf::from(&uri.body));
        let sdp = o.string("sdp").map(PathBuf::from).or(body_sdp);
        let authority = uri.authority().filter(|a| !a.is_empty());
        let address = authority.map(net::resolve).transpose().map_err(|e| Error::uri(&uri.raw, e.to_string()))?;
        let format = o.string("format");
        let size = o.size("size")?;
        let mut options = match &sdp {
            Some(path) => {
                let mut options = RtpSourceOptions::from_description(&RtpDescription::read(path)?)?;
                if let Some(address) = address {
                    options.address = address;
                }
                options
            }
            None => {
                let address = address.ok_or_else(|| {
                    Error::uri(&uri.raw, "an RTP input needs rtp://ADDRESS:PORT or an SDP file (sdp=in.sdp)")
                })?;
                let format: RtpFormat =
                    format.unwrap_or("h264").parse().map_err(|e: Error| Error::uri(&uri.raw, e.to_string()))?;
                let kind = match format {
                    RtpFormat::H264 => StreamKind::H264 { parameter_sets: Vec::new() },
                    RtpFormat::Raw => {
                        let (w, h) = size.ok_or_else(|| {
                            Error::uri(&uri.raw, "raw RTP without an SDP file needs size=WIDTHxHEIGHT")
                        })?;
                        StreamKind::Raw(RawFormat::new(w, h)?)
                    }
                };
                RtpSourceOptions::new(address, kind)
            }
        };
        if let Some(fps) = o.fps("fps")? {
            options.fps = Some(fps);
        }
        if let Some(pt) = o.parse("pt", "a payload type, 0 to 127")? {
            options.payload_type = Some(pt);
        }
        if let Some(seconds) = o.parse::<f64>("timeout", "seconds without packets before the end, 0 = never")? {
            options.timeout = (seconds > 0.0).then(|| Duration::from_secs_f64(seconds));
        }
        options.interface = o.parse("iface", "an IPv4 interface address, e.g. 127.0.0.1")?;
        if let Some(bytes) = o.parse("buffer", "a socket receive buffer size in bytes")? {
            options.receive_buffer = bytes;
        }
        o.finish()?;
        Ok(options)
    }
}

/// Counters of a source: the receive path's and the decoder's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub receiver: ReceiverStats,
    /// Finished frames dropped because `next_frame` was not keeping up.
    pub queue_dropped: u64,
    pub decode_errors: u64,
    pub frames_out: u64,
    /// The socket receive buffer the kernel granted.
    pub receive_buffer: u64,
    /// H.264: the stream is waiting for a keyframe (at the start and after a
    /// loss); the sender should be asked for one.
    pub needs_keyframe: bool,
    /// The sender said goodbye (RTCP BYE).
    pub bye: bool,
}

struct Shared {
    stats: Mutex<ReceiverStats>,
    needs_keyframe: AtomicBool,
    bye: AtomicBool,
    queue_dropped: AtomicU64,
    stop: AtomicBool,
    want_keyframe: AtomicBool,
}

/// The RTP input. See the module documentation.
pub struct RtpSource {
    options: RtpSourceOptions,
    local: SocketAddr,
    receive_buffer: usize,
    shared: Arc<Shared>,
    frames: mpsc::Receiver<Received>,
    thread: Option<JoinHandle<()>>,
    decoder: Option<H264Decoder>,
    /// (RTP timestamp, arrival) of access units in the decoder, smallest first.
    pending: VecDeque<(u64, u64)>,
    flushed: VecDeque<Frame>,
    pool: Option<BufferPool>,
    first_timestamp: Option<u64>,
    frames_out: u64,
    decode_errors: u64,
    ended: bool,
}

impl RtpSource {
    /// Binds the socket now (so a sender may start at once) and starts receiving.
    pub fn open(options: RtpSourceOptions) -> Result<RtpSource> {
        let (socket, granted) = net::receiver_socket(options.address, options.interface, options.receive_buffer, POLL)?;
        let local = socket.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
        // RTCP on the next port, best effort: the sender's BYE ends the stream
        // at once instead of after `timeout`.
        let rtcp_address = SocketAddr::new(options.address.ip(), local.port().wrapping_add(1));
        let rtcp = net::receiver_socket(rtcp_address, options.interface, 1 << 16, POLL)
            .ok()
            .and_then(|(s, _)| s.set_nonblocking(true).ok().map(|_| s));
        if granted < options.receive_buffer && matches!(options.kind, StreamKind::Raw(_)) {
            tracing::warn!(
                "rtp://{local}: socket receive buffer is {granted} bytes (asked {}); raise net.core.rmem_max \
                 if raw video loses packets",
                options.receive_buffer
            );
        }
        let shared = Arc::new(Shared {
            stats: Mutex::new(ReceiverStats::default()),
            needs_keyframe: AtomicBool::new(matches!(options.kind, StreamKind::H264 { .. })),
            bye: AtomicBool::new(false),
            queue_dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            want_keyframe: AtomicBool::new(false),
        });
        let (tx, frames) = mpsc::channel(QUEUE);
        let mut config = ReceiverConfig::new(options.kind.clone());
        config.payload_type = options.payload_type;
        config.reorder_window = options.reorder_window;
        let receiver = RtpReceiver::new(config);
        let thread_shared = shared.clone();
        let timeout = options.timeout;
        let thread = std::thread::Builder::new()
            .name(format!("rtp-recv {local}"))
            .spawn(move || receive_loop(socket, rtcp, receiver, tx, thread_shared, timeout))
            .map_err(|e| Error::io("starting the RTP receiving thread", e))?;
        let decoder = match options.kind {
            StreamKind::H264 { .. } => Some(H264Decoder::with_fps(options.fps.unwrap_or(Fps::new(30, 1)))?),
            StreamKind::Raw(_) => None,
        };
        Ok(RtpSource {
            options,
            local,
            receive_buffer: granted,
            shared,
            frames,
            thread: Some(thread),
            decoder,
            pending: VecDeque::new(),
            flushed: VecDeque::new(),
            pool: None,
            first_timestamp: None,
            frames_out: 0,
            decode_errors: 0,
            ended: false,
        })
    }

    pub fn from_uri(uri: &Uri) -> Result<RtpSource> {
        RtpSource::open(RtpSourceOptions::from_uri(uri)?)
    }

    /// The address the socket is bound to (the port, when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> SourceStats {
        SourceStats {
            receiver: *self.shared.stats.lock().unwrap(),
            queue_dropped: self.shared.queue_dropped.load(Ordering::Relaxed),
            decode_errors: self.decode_errors,
            frames_out: self.frames_out,
            receive_buffer: self.receive_buffer as u64,
            needs_keyframe: self.shared.needs_keyframe.load(Ordering::Relaxed),
            bye: self.shared.bye.load(Ordering::Relaxed),
        }
    }

    fn timing(&mut self, timestamp: u64, arrival_ns: u64) -> Timing {
        let first = *self.first_timestamp.get_or_insert(timestamp);
        let timing = Timing {
            pts: timestamp as i64 - first as i64,
            time_base: TimeBase::RTP_VIDEO,
            capture_time_ns: arrival_ns,
            frame_number: self.frames_out,
            ..Timing::default()
        };
        self.frames_out += 1;
        timing
    }

    fn raw_frame(&mut self, raw: RawFrame) -> Result<Frame> {
        let (w, h) = (raw.format.width, raw.format.height);
        let format = if h.is_multiple_of(2) { PixelFormat::I420 } else { PixelFormat::Rgba8Premul };
        let pool = self.pool.get_or_insert_with(|| BufferPool::new(format.packed_layout(w, h).byte_len(), 4));
        let mut frame = Frame::from_pool(pool, format, w, h)?;
        crate::uyvy::uyvy_to_frame(raw.data(), raw.format.stride(), &mut frame)?;
        if !raw.complete {
            frame.metadata.insert("rtp_incomplete", raw.packets_lost.to_string());
        }
        frame.timing = self.timing(raw.timestamp, raw.arrival_ns);
        Ok(frame)
    }

    async fn decode(&mut self, data: Vec<u8>) -> Result<Option<Frame>> {
        let mut decoder = self.decoder.take().expect("H.264 source has a decoder");
        let (decoder, result) = tokio::task::spawn_blocking(move || {
            let result = decoder.decode(&data);
            (decoder, result)
        })
        .await
        .map_err(|e| Error::invalid(format!("H.264 decoder thread failed: {e}")))?;
        self.decoder = Some(decoder);
        result
    }

    fn timed(&mut self, mut frame: Frame) -> Frame {
        // Decoders output in display order: the smallest pending timestamp.
        let earliest = self.pending.iter().enumerate().min_by_key(|(_, p)| p.0).map(|(i, _)| i);
        let (timestamp, arrival) = earliest
            .and_then(|i| self.pending.remove(i))
            .unwrap_or((self.first_timestamp.unwrap_or(0), monotonic_ns()));
        frame.timing = self.timing(timestamp, arrival);
        frame
    }
}

/// Whether a BYE from the stream's sender is waiting on the RTCP socket.
fn bye_received(rtcp: Option<&std::net::UdpSocket>, receiver: &RtpReceiver, buffer: &mut [u8]) -> bool {
    let Some(rtcp) = rtcp else { return false };
    while let Ok((n, _)) = rtcp.recv_from(buffer) {
        let sources = crate::rtcp::bye_sources(&buffer[..n]);
        if receiver.ssrc().is_some_and(|ssrc| sources.contains(&ssrc)) {
            return true;
        }
    }
    false
}

fn receive_loop(
    socket: std::net::UdpSocket,
    rtcp: Option<std::net::UdpSocket>,
    mut receiver: RtpReceiver,
    tx: mpsc::Sender<Received>,
    shared: Arc<Shared>,
    timeout: Option<Duration>,
) {
    let mut buffer = vec![0u8; 65_536];
    let mut last_packet: Option<u64> = None;
    let mut last_stats = 0;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            *shared.stats.lock().unwrap() = receiver.stats();
            return;
        }
        match socket.recv_from(&mut buffer) {
            Ok((n, _)) => {
                let now = monotonic_ns();
                last_packet = Some(now);
                receiver.handle_packet(&buffer[..n], now);
            }
            Err(e) if net::is_timeout(&e) => {}
            Err(e) => tracing::debug!("rtp: receive error: {e}"),
        }
        let now = monotonic_ns();
        if receiver.poll_timeout().is_some_and(|t| now >= t) {
            receiver.handle_timeout(now);
        }
        let idle = match (timeout, last_packet) {
            (Some(timeout), Some(last)) => now.saturating_sub(last) >= timeout.as_nanos() as u64,
            _ => false,
        };
        let bye = bye_received(rtcp.as_ref(), &receiver, &mut buffer);
        if bye {
            // Packets sent before the BYE may still wait in the socket.
            if socket.set_nonblocking(true).is_ok() {
                while let Ok((n, _)) = socket.recv_from(&mut buffer) {
                    receiver.handle_packet(&buffer[..n], monotonic_ns());
                }
            }
            shared.bye.store(true, Ordering::Relaxed);
        }
        let idle = idle || bye;
        if idle {
            receiver.flush();
        }
        if shared.want_keyframe.swap(false, Ordering::Relaxed) {
            receiver.require_keyframe();
        }
        while let Some(out) = receiver.poll_output() {
            match tx.try_send(out) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    shared.queue_dropped.fetch_add(1, Ordering::Relaxed);
                    receiver.require_keyframe();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        if idle || now >= last_stats + 50_000_000 {
            *shared.stats.lock().unwrap() = receiver.stats();
            shared.needs_keyframe.store(receiver.needs_keyframe(), Ordering::Relaxed);
            last_stats = now;
        }
        if bye {
            tracing::info!("rtp: the sender said goodbye (RTCP BYE): end of stream");
            return;
        }
        if idle {
            tracing::info!("rtp: no packets for {:?}: end of stream", timeout.unwrap_or_default());
            return;
        }
    }
}

#[async_trait]
impl Source for RtpSource {
    fn info(&self) -> SourceInfo {
        let format = match &self.options.kind {
            StreamKind::H264 { .. } => "h264".to_string(),
            StreamKind::Raw(f) => format!("raw {}x{}", f.width, f.height),
        };
        let mut info = SourceInfo::new(format!("rtp://{} {format}", self.local));
        match &self.options.kind {
            StreamKind::Raw(f) => info = info.sized(f.width, f.height),
            // The size is in the SPS, when the SDP carried one.
            StreamKind::H264 { parameter_sets } => {
                let sps = parameter_sets.iter().find(|s| nal_type(s) == NAL_SPS).and_then(|s| parse_sps(s).ok());
                if let Some(sps) = sps {
                    info = info.sized(sps.width, sps.height);
                }
            }
        }
        if let Some(fps) = self.options.fps {
            info = info.with_fps(fps);
        }
        info.live = true;
        info
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.flushed.pop_front() {
                return Ok(Some(self.timed(frame)));
            }
            if self.ended {
                return Ok(None);
            }
            match self.frames.recv().await {
                None => {
                    self.ended = true;
                    if let Some(decoder) = &mut self.decoder {
                        self.flushed.extend(decoder.flush().unwrap_or_default());
                    }
                }
                Some(Received::Frame(raw)) => return self.raw_frame(raw).map(Some),
                Some(Received::AccessUnit(au)) => {
                    self.pending.push_back((au.timestamp, au.arrival_ns));
                    match self.decode(au.data).await {
                        Ok(Some(frame)) => return Ok(Some(self.timed(frame))),
                        Ok(None) => {}
                        Err(e) => {
                            self.pending.pop_back();
                            self.decode_errors += 1;
                            self.shared.want_keyframe.store(true, Ordering::Relaxed);
                            tracing::warn!("rtp://{}: {e}", self.local);
                        }
                    }
                    while self.pending.len() > 32 {
                        self.pending.pop_front();
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let s = self.stats();
        tracing::info!(
            "rtp://{}: {} frames, {} packets lost, {} malformed, {} frames dropped, {} decode errors",
            self.local,
            s.frames_out,
            s.receiver.lost(),
            s.receiver.malformed(),
            s.receiver.frames_dropped() + s.queue_dropped,
            s.decode_errors
        );
        Ok(())
    }
}

impl Drop for RtpSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
