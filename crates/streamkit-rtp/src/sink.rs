//! `rtp://HOST:PORT` as an output: frames → H.264 (RFC 6184) or raw
//! YCbCr 4:2:2 (RFC 4175) RTP packets over UDP, an SDP file describing the
//! stream for the receiver, paced sending and RTCP sender reports.
//!
//! `streamkit run 'test:smpte?size=640x360&fps=30' --frames 150 --realtime -o 'rtp://127.0.0.1:5004?sdp=out.sdp'`
//! then `ffmpeg -protocol_whitelist file,udp,rtp -i out.sdp …` (start it while
//! the stream runs; add `&format=raw` for uncompressed video).
//!
//! The async side converts or encodes and packetises a frame; a sending
//! thread then spreads its packets over 80 % of the frame interval with a
//! token bucket ([`crate::pacer`]). A thread, because pacing needs
//! sub-millisecond sleeps and tokio's timer ticks in milliseconds: a 1080p
//! raw frame is ~3,500 packets in 27 ms, and millisecond bursts of ~150 kB
//! overflow a receiver's default 208 kB socket buffer.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use streamkit_core::sink::StreamInfo;
use streamkit_core::time::{monotonic_ns, realtime_ns};
use streamkit_core::uri::Uri;
use streamkit_core::{Error, Fps, Frame, Result, Sink, TimeBase};
use streamkit_h264::nal::{nal_type, nal_units, NAL_PPS, NAL_SPS};
use streamkit_h264::{EncoderConfig, H264Encoder};

use crate::h264::H264Packetizer;
use crate::pacer::{frame_rate_for, Pacer};
use crate::packet::{random_u32, PacketBatch, RtpSender};
use crate::raw::{RawFormat, RawPacketizer};
use crate::sdp::{H264Params, Payload, RawParams, RtpDescription};
use crate::{net, rtcp, RtpFormat};

/// Fraction of the frame interval a frame's packets are spread over.
const PACING_SPREAD: f64 = 0.8;
/// Seconds between RTCP sender reports.
const RTCP_INTERVAL_NS: u64 = 1_000_000_000;

/// Everything an [`RtpSink`] can be told (the URI's query, typed).
#[derive(Clone, Debug, PartialEq)]
pub struct RtpSinkOptions {
    /// Where packets go: a unicast address or a multicast group.
    pub destination: SocketAddr,
    pub format: RtpFormat,
    /// Where to write the SDP file (atomically); none by default.
    pub sdp: Option<PathBuf>,
    /// Largest RTP packet, header included (default 1200 bytes: fits any
    /// path, tunnels included; raise to ~1450 on plain Ethernet, or more on
    /// loopback, for fewer packets).
    pub mtu: usize,
    /// H.264 target bitrate (default 8 Mb/s).
    pub bitrate_bps: u32,
    /// Seconds between H.264 keyframes (default 1: where a receiver that
    /// lost packets or joined late can start again).
    pub keyframe_seconds: f64,
    /// Spread each frame's packets over the frame interval (default on).
    pub pace: bool,
    /// Multicast TTL (default 1: this subnet only).
    pub ttl: u32,
    /// Interface address for multicast (default: the kernel's route).
    pub interface: Option<Ipv4Addr>,
    /// RTCP sender reports to port + 1 (default on).
    pub rtcp: bool,
    /// RTP payload type (dynamic, default 96).
    pub payload_type: u8,
}

impl RtpSinkOptions {
    pub fn new(destination: SocketAddr, format: RtpFormat) -> RtpSinkOptions {
        RtpSinkOptions {
            destination,
            format,
            sdp: None,
            mtu: 1200,
            bitrate_bps: 8_000_000,
            keyframe_seconds: 1.0,
            pace: true,
            ttl: 1,
            interface: None,
            rtcp: true,
            payload_type: 96,
        }
    }

    /// `rtp://HOST:PORT?sdp=out.sdp&format=h264|raw&mtu=1200&bitrate=8000000&keyint=1&pace=true&ttl=1&iface=ADDR&rtcp=true&pt=96`.
    pub fn from_uri(uri: &Uri) -> Result<RtpSinkOptions> {
        let authority = uri
            .authority()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::uri(&uri.raw, "an RTP output needs a destination: rtp://HOST:PORT?sdp=out.sdp"))?;
        let destination = net::resolve(authority).map_err(|e| Error::uri(&uri.raw, e.to_string()))?;
        let mut o = uri.options();
        let format = match o.string("format") {
            None => RtpFormat::H264,
            Some(f) => f.parse().map_err(|e: Error| Error::uri(&uri.raw, e.to_string()))?,
        };
        let mut options = RtpSinkOptions::new(destination, format);
        options.sdp = o.string("sdp").map(PathBuf::from);
        if let Some(mtu) = o.parse::<usize>("mtu", "the largest packet in bytes, 64 to 65507")? {
            if !(64..=crate::packet::MAX_UDP_PAYLOAD).contains(&mtu) {
                return Err(Error::uri(&uri.raw, format!("option 'mtu={mtu}' is not valid: expected 64 to 65507")));
            }
            options.mtu = mtu;
        }
        if let Some(bitrate) = o.parse("bitrate", "bits per second, e.g. 4000000")? {
            options.bitrate_bps = bitrate;
        }
        if let Some(seconds) = o.parse::<f64>("keyint", "seconds between keyframes, e.g. 1")? {
            options.keyframe_seconds = seconds.max(0.0);
        }
        options.pace = o.flag("pace")?.unwrap_or(true);
        options.ttl = o.parse("ttl", "a multicast TTL, 1 to 255")?.unwrap_or(1);
        options.interface = o.parse("iface", "an IPv4 interface address, e.g. 127.0.0.1")?;
        options.rtcp = o.flag("rtcp")?.unwrap_or(true);
        if let Some(pt) = o.parse::<u8>("pt", "a dynamic payload type, 96 to 127")? {
            if !(96..=127).contains(&pt) {
                return Err(Error::uri(&uri.raw, format!("option 'pt={pt}' is not valid: expected 96 to 127")));
            }
            options.payload_type = pt;
        }
        o.finish()?;
        Ok(options)
    }
}

/// Counters of a sink, readable while it runs.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub frames: AtomicU64,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub send_errors: AtomicU64,
    pub rtcp_reports: AtomicU64,
}

impl SinkStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

struct Job {
    batch: PacketBatch,
    frame_ns: u64,
    rtp_timestamp: u32,
    sender: RtpSender,
}

struct SenderThread {
    jobs: tokio::sync::mpsc::Sender<Job>,
    recycled: mpsc::Receiver<PacketBatch>,
    handle: JoinHandle<()>,
}

enum Packetizer {
    H264 { packetizer: H264Packetizer, encoder: Option<Box<H264Encoder>> },
    Raw { packetizer: RawPacketizer, uyvy: Vec<u8> },
}

/// The RTP output. See the module documentation.
pub struct RtpSink {
    options: RtpSinkOptions,
    fps: Fps,
    size: Option<(u32, u32)>,
    ssrc: u32,
    initial_sequence: u16,
    timestamp_offset: u32,
    packetizer: Option<Packetizer>,
    sender: Option<SenderThread>,
    /// The SDP as last written (rewritten once H.264 parameter sets are known).
    sdp: Option<RtpDescription>,
    stats: Arc<SinkStats>,
    frames_in: u64,
    last_ticks: Option<i64>,
}

impl RtpSink {
    pub fn new(options: RtpSinkOptions) -> Result<RtpSink> {
        if let Some(path) = &options.sdp {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    return Err(Error::invalid(format!(
                        "SDP file {}: folder {} does not exist",
                        path.display(),
                        parent.display()
                    )));
                }
            }
        }
        // RFC 3550: random SSRC, sequence and timestamp origin. FFmpeg's
        // RFC 4175 reader also needs a first timestamp other than 0.
        let timestamp_offset = random_u32().max(1);
        Ok(RtpSink {
            options,
            fps: Fps::new(30, 1),
            size: None,
            ssrc: random_u32(),
            initial_sequence: random_u32() as u16,
            timestamp_offset,
            packetizer: None,
            sender: None,
            sdp: None,
            stats: Arc::new(SinkStats::default()),
            frames_in: 0,
            last_ticks: None,
        })
    }

    pub fn from_uri(uri: &Uri) -> Result<RtpSink> {
        RtpSink::new(RtpSinkOptions::from_uri(uri)?)
    }

    pub fn options(&self) -> &RtpSinkOptions {
        &self.options
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// The stream's description (what the SDP file holds), once the frame
    /// size is known.
    pub fn description(&self) -> Option<&RtpDescription> {
        self.sdp.as_ref()
    }

    fn describe_stream(&self, width: u32, height: u32, h264: Option<H264Params>) -> RtpDescription {
        let payload = match self.options.format {
            RtpFormat::H264 => {
                Payload::H264(h264.unwrap_or(H264Params { packetization_mode: 1, ..Default::default() }))
            }
            RtpFormat::Raw => Payload::Raw(RawParams::uyvy(width, height)),
        };
        RtpDescription {
            address: self.options.destination.ip(),
            port: self.options.destination.port(),
            ttl: self.options.destination.ip().is_multicast().then_some(self.options.ttl.min(255) as u8),
            payload_type: self.options.payload_type,
            payload,
            framerate: Some(self.fps),
            session_name: "streamkit".into(),
        }
    }

    fn write_sdp(&mut self, description: RtpDescription) -> Result<()> {
        if let Some(path) = &self.options.sdp {
            description.write_atomic(path)?;
            tracing::info!("rtp: wrote {} for {}", path.display(), self.describe());
        }
        self.sdp = Some(description);
        Ok(())
    }

    /// Sets up for frames of `width` x `height`: the SDP file, the
    /// packetiser and the sending thread.
    fn start(&mut self, width: u32, height: u32) -> Result<()> {
        if self.sdp.is_none() {
            self.write_sdp(self.describe_stream(width, height, None))?;
        }
        let rtp = RtpSender::new(self.ssrc, self.options.payload_type, self.initial_sequence);
        self.packetizer = Some(match self.options.format {
            RtpFormat::H264 => {
                let mut config = EncoderConfig::new(width, height, self.fps);
                config.bitrate_bps = self.options.bitrate_bps;
                let seconds = self.options.keyframe_seconds;
                // 0 seconds: only the first frame (and forced ones) are keyframes.
                config.keyframe_interval =
                    if seconds > 0.0 { ((seconds * self.fps.as_f64()).round() as u32).max(1) } else { 0 };
                let encoder = H264Encoder::new(config).map_err(|e| e.in_stage(self.describe()))?;
                Packetizer::H264 {
                    packetizer: H264Packetizer::new(rtp, self.options.mtu),
                    encoder: Some(Box::new(encoder)),
                }
            }
            RtpFormat::Raw => {
                let format = RawFormat::new(width, height)?;
                Packetizer::Raw {
                    packetizer: RawPacketizer::new(rtp, format, self.options.mtu),
                    uyvy: vec![0; format.frame_bytes()],
                }
            }
        });
        let socket = net::sender_socket(self.options.destination, self.options.ttl, self.options.interface)?;
        self.sender = Some(spawn_sender(socket, &self.options, self.stats.clone())?);
        self.size = Some((width, height));
        Ok(())
    }

    /// The frame's pts in 90 kHz ticks from a random origin. Timestamps
    /// must grow (receivers split frames where they change): a pts that
    /// does not advance gets one frame interval more than the last.
    fn rtp_timestamp(&mut self, frame: &Frame) -> u32 {
        let mut ticks = TimeBase::RTP_VIDEO.from_ns(frame.timing.pts_ns());
        if let Some(last) = self.last_ticks {
            if ticks <= last {
                ticks = last + TimeBase::RTP_VIDEO.from_ns(self.fps.frame_ns() as i64).max(1);
            }
        }
        self.last_ticks = Some(ticks);
        self.timestamp_offset.wrapping_add(ticks as u32)
    }
}

fn spawn_sender(socket: UdpSocket, options: &RtpSinkOptions, stats: Arc<SinkStats>) -> Result<SenderThread> {
    let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(2);
    let (recycle, recycled) = mpsc::channel();
    let destination = options.destination;
    let rtcp_to = options.rtcp.then(|| SocketAddr::new(destination.ip(), destination.port().wrapping_add(1)));
    let (pace, mtu) = (options.pace, options.mtu);
    let min_rate = if options.format == RtpFormat::H264 { options.bitrate_bps as u64 } else { 0 };
    let cname = format!("streamkit@{}", std::process::id());
    let handle = std::thread::Builder::new()
        .name(format!("rtp-send {destination}"))
        .spawn(move || {
            // Sleep to the microsecond, not Linux's default 50 µs slack.
            // SAFETY: prctl with an integer argument only changes this thread's timer slack.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
            let mut pacer = Pacer::new(min_rate.max(1_000_000), 4 * mtu);
            let mut last_report: Option<u64> = None;
            let mut last: Option<(RtpSender, u32, u64)> = None;
            let mut logged_error = false;
            while let Some(job) = queue.blocking_recv() {
                let total = job.batch.bytes();
                let window = (job.frame_ns as f64 * PACING_SPREAD) as u64;
                let deadline = monotonic_ns() + window;
                let mut sent = 0;
                if let Some(to) = rtcp_to {
                    let now = monotonic_ns();
                    if last_report.is_none_or(|t| now >= t + RTCP_INTERVAL_NS) {
                        let report = rtcp::sender_report(&job.sender, realtime_ns(), job.rtp_timestamp, &cname, false);
                        if socket.send_to(&report, to).is_ok() {
                            SinkStats::add(&stats.rtcp_reports, 1);
                        }
                        last_report = Some(now);
                    }
                }
                for (i, packet) in job.batch.iter().enumerate() {
                    if pace {
                        let mut now = monotonic_ns();
                        if i % 16 == 0 {
                            // The rate that finishes the frame by its deadline: a
                            // sleep that overran (a busy machine) is made up by a
                            // slightly higher rate, not by one large burst.
                            let left = deadline.saturating_sub(now).max(window / 20);
                            let (rate, burst) = frame_rate_for(total - sent, left, 1.0, min_rate, mtu);
                            pacer.set_rate(rate, burst);
                        }
                        loop {
                            let at = pacer.ready_at(now, packet.len());
                            if at <= now {
                                break;
                            }
                            std::thread::sleep(Duration::from_nanos(at - now));
                            now = monotonic_ns();
                        }
                        pacer.consume(now, packet.len());
                    }
                    sent += packet.len();
                    match socket.send_to(packet, destination) {
                        Ok(_) => {
                            SinkStats::add(&stats.packets, 1);
                            SinkStats::add(&stats.bytes, packet.len() as u64);
                        }
                        Err(e) => {
                            SinkStats::add(&stats.send_errors, 1);
                            if !logged_error {
                                tracing::warn!("rtp: sending to {destination}: {e} (further errors counted)");
                                logged_error = true;
                            }
                        }
                    }
                }
                SinkStats::add(&stats.frames, 1);
                last = Some((job.sender, job.rtp_timestamp, job.frame_ns));
                let _ = recycle.send(job.batch);
            }
            if let (Some(to), Some((sender, timestamp, frame_ns))) = (rtcp_to, last) {
                // BYE ends the stream for receivers (FFmpeg stops reading at
                // once): let them read the last frame's packets first.
                std::thread::sleep(Duration::from_nanos(frame_ns.clamp(20_000_000, 200_000_000)));
                let bye = rtcp::sender_report(&sender, realtime_ns(), timestamp, &cname, true);
                let _ = socket.send_to(&bye, to);
            }
        })
        .map_err(|e| Error::io("starting the RTP sending thread", e))?;
    Ok(SenderThread { jobs, recycled, handle })
}

/// Encodes on a blocking thread so the runtime keeps running; gives the
/// encoder back unless its thread died.
async fn encode(
    mut encoder: Box<H264Encoder>,
    frame: &Frame,
    keyframe: bool,
) -> Result<(Box<H264Encoder>, Result<Vec<u8>>)> {
    let frame = frame.clone();
    tokio::task::spawn_blocking(move || {
        if keyframe {
            encoder.force_keyframe();
        }
        let encoded = encoder.encode(&frame).map(|e| e.data);
        (encoder, encoded)
    })
    .await
    .map_err(|e| Error::invalid(format!("the H.264 encoder thread failed: {e}")))
}

#[async_trait]
impl Sink for RtpSink {
    fn describe(&self) -> String {
        format!("rtp://{} ({})", self.options.destination, self.options.format)
    }

    /// Every frame is sent: a stream faster than real time is slowed to it
    /// by the pacing (as `ffmpeg -re` would), never thinned out.
    fn queue_policy(&self) -> streamkit_core::queue::QueuePolicy {
        streamkit_core::queue::QueuePolicy::Block
    }

    fn input_format(&self) -> Option<streamkit_core::PixelFormat> {
        (self.options.format == RtpFormat::H264).then_some(streamkit_core::PixelFormat::I420)
    }

    /// Writes the SDP file now when the size is known, so that a receiver
    /// can be started before the first packet.
    fn set_stream_info(&mut self, info: &StreamInfo) {
        self.fps = info.fps;
        if let Some((w, h)) = info.size {
            let description = self.describe_stream(w, h, None);
            if let Err(e) = self.write_sdp(description) {
                tracing::error!("{}: {e}", self.describe());
            }
        }
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        let (width, height) = frame.size();
        match self.size {
            None => self.start(width, height).map_err(|e| e.in_stage(self.describe()))?,
            Some(size) if size != (width, height) => {
                return Err(Error::invalid(format!(
                    "{}: frame size changed from {}x{} to {width}x{height}; an RTP stream keeps one size",
                    self.describe(),
                    size.0,
                    size.1
                )))
            }
            Some(_) => {}
        }
        let timestamp = self.rtp_timestamp(frame);
        let sender = self.sender.as_mut().expect("started");
        let mut batch = sender.recycled.try_recv().unwrap_or_default();
        batch.clear();
        let mut parameter_sets = None;
        let rtp = match self.packetizer.as_mut().expect("started") {
            Packetizer::H264 { packetizer, encoder } => {
                let first = self.frames_in == 0;
                let what = format!("rtp://{}", self.options.destination);
                let idle =
                    encoder.take().ok_or_else(|| Error::invalid(format!("{what}: the encoder failed earlier")))?;
                let (back, encoded) = encode(idle, frame, first).await.map_err(|e| e.in_stage(what.clone()))?;
                *encoder = Some(back);
                let au = encoded.map_err(|e| e.in_stage(what))?;
                if matches!(&self.sdp, Some(RtpDescription { payload: Payload::H264(h), .. }) if h.sprop_parameter_sets.is_empty())
                {
                    let sps = nal_units(&au).find(|n| nal_type(n) == NAL_SPS);
                    let pps = nal_units(&au).find(|n| nal_type(n) == NAL_PPS);
                    if let (Some(sps), Some(pps)) = (sps, pps) {
                        parameter_sets = Some(H264Params::from_parameter_sets(sps, pps));
                    }
                }
                packetizer.packetize(&au, timestamp, &mut batch);
                packetizer.sender().clone()
            }
            Packetizer::Raw { packetizer, uyvy } => {
                let stride = packetizer.format().stride();
                crate::uyvy::frame_to_uyvy(frame, uyvy, stride)?;
                packetizer.packetize(uyvy, stride, timestamp, &mut batch);
                packetizer.sender().clone()
            }
        };
        if let Some(params) = parameter_sets {
            // The SDP now names the profile and carries SPS/PPS (receivers
            // that read it later need not wait for in-band ones).
            let description = self.describe_stream(width, height, Some(params));
            self.write_sdp(description)?;
        }
        self.frames_in += 1;
        let job = Job { batch, frame_ns: self.fps.frame_ns(), rtp_timestamp: timestamp, sender: rtp };
        let sender = self.sender.as_mut().expect("started");
        if sender.jobs.send(job).await.is_err() {
            return Err(Error::invalid(format!("{}: the sending thread stopped", self.describe())));
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(sender) = self.sender.take() {
            drop(sender.jobs);
            let handle = sender.handle;
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        let s = &self.stats;
        tracing::info!(
            "{}: {} frames, {} packets, {} bytes sent, {} send errors, {} RTCP reports",
            self.describe(),
            SinkStats::get(&s.frames),
            SinkStats::get(&s.packets),
            SinkStats::get(&s.bytes),
            SinkStats::get(&s.send_errors),
            SinkStats::get(&s.rtcp_reports)
        );
        Ok(())
    }
}
