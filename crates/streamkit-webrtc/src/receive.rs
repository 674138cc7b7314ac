//! The receiving half shared by the WHIP source and the WHEP client source:
//! a session task hands depacketised H.264 access units to a [`RemoteVideo`]
//! source through a bounded queue, and the source decodes them at the
//! consumer's pace (OpenH264 on a blocking thread).
//!
//! Time: each unit's RTP time (90 kHz, extended to 64 bits by str0m)
//! becomes the frame's `pts` (from 0 at the first unit); its capture time is
//! the sender's wallclock from the latest RTCP sender report (RTP time →
//! NTP time, then onto our `CLOCK_MONOTONIC`) when that is plausible, else
//! the earliest-arrival estimate of [`CaptureClock`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::{Event, IceConnectionState};
use streamkit_core::time::{monotonic_ns, realtime_ns};
use streamkit_core::{Error, Frame, Result, Source, SourceInfo, TimeBase, Timing};
use streamkit_h264::H264Decoder;
use tokio::sync::mpsc;

use crate::peer::{monotonic_of_instant, Peer};

/// Units queued between a session and its source (a second at 30 fps):
/// beyond that the session drops units and asks the sender for a keyframe.
pub const UNIT_QUEUE: usize = 30;

/// One access unit as it arrived.
#[derive(Debug)]
pub struct ReceivedUnit {
    /// Annex-B.
    pub data: Arc<[u8]>,
    /// 90 kHz, extended.
    pub rtp_time: u64,
    /// Estimated `CLOCK_MONOTONIC` capture time at the sender.
    pub capture_time_ns: u64,
}

/// Maps RTP time to capture time without a sender report: the unit that
/// arrived earliest relative to its RTP time had the least delay, so
/// capture ≈ arrival of that unit + RTP time elapsed since. Jitter never
/// moves the estimate later; it re-anchors only on an earlier arrival.
#[derive(Clone, Debug, Default)]
pub struct CaptureClock {
    anchor: Option<(u64, u64)>,
}

impl CaptureClock {
    pub fn map(&mut self, rtp_time: u64, arrival_ns: u64) -> u64 {
        let predicted =
            self.anchor.map(|(rtp, ns)| ns as i128 + (rtp_time as i128 - rtp as i128) * 1_000_000_000 / 90_000);
        match predicted {
            Some(p) if p <= arrival_ns as i128 => p.max(0) as u64,
            _ => {
                self.anchor = Some((rtp_time, arrival_ns));
                arrival_ns
            }
        }
    }
}

/// Turns a sender report and a unit's RTP time into our monotonic clock.
fn from_sender_report(data: &MediaData, arrival_ns: u64) -> Option<u64> {
    let sr = data.last_sender_info?;
    let unix_ns = sr.ntp_time.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos() as i128;
    // The report's RTP time is the 32-bit wire value: compare modulo 2^32.
    let delta = (data.time.numer() as u32).wrapping_sub(sr.rtp_time.numer() as u32) as i32 as i128;
    let freq = data.time.denom().max(1) as i128;
    let captured_unix = unix_ns + delta * 1_000_000_000 / freq;
    let age = realtime_ns() as i128 - captured_unix;
    let mono = monotonic_ns() as i128 - age;
    // Plausible: before arrival, and not older than 5 s (clocks far apart otherwise).
    (mono <= arrival_ns as i128 + 2_000_000 && arrival_ns as i128 - mono < 5_000_000_000).then_some(mono.max(0) as u64)
}

/// What a receiving session does with incoming media: queue it for the
/// source, and ask the sender for a keyframe when the picture broke.
pub struct UnitForwarder {
    units: mpsc::Sender<ReceivedUnit>,
    clock: CaptureClock,
    need_keyframe: bool,
    /// Set by the source when its decoder failed.
    pub decoder_wants_keyframe: Arc<AtomicBool>,
    last_request: Option<Instant>,
    pub units_forwarded: u64,
    pub units_dropped: u64,
}

impl UnitForwarder {
    pub fn new(units: mpsc::Sender<ReceivedUnit>, decoder_wants_keyframe: Arc<AtomicBool>) -> UnitForwarder {
        UnitForwarder {
            units,
            clock: CaptureClock::default(),
            need_keyframe: true,
            decoder_wants_keyframe,
            last_request: None,
            units_forwarded: 0,
            units_dropped: 0,
        }
    }

    /// Whether the source is gone (the session should end).
    pub fn closed(&self) -> bool {
        self.units.is_closed()
    }

    /// Queues one access unit (or drops it until a keyframe, after a loss).
    pub fn forward(&mut self, data: MediaData) {
        let arrival = monotonic_of_instant(data.network_time);
        let keyframe = streamkit_h264::nal::is_keyframe(&data.data);
        if !data.contiguous {
            self.need_keyframe = true;
        }
        if self.need_keyframe && !keyframe {
            self.units_dropped += 1;
            return;
        }
        let rtp_time = data.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer();
        let mapped = self.clock.map(rtp_time, arrival);
        let capture_time_ns = from_sender_report(&data, arrival).unwrap_or(mapped);
        let unit = ReceivedUnit { data: data.data.clone(), rtp_time, capture_time_ns };
        match self.units.try_send(unit) {
            Ok(()) => {
                self.need_keyframe = false;
                self.units_forwarded += 1;
            }
            Err(_) => {
                // The consumer is behind: what follows depends on what we drop.
                self.units_dropped += 1;
                self.need_keyframe = true;
            }
        }
    }

    /// Sends a PLI when the picture needs a keyframe (at most twice a second).
    pub fn request_keyframe_if_needed(&mut self, peer: &mut Peer, mid: Option<Mid>) {
        let wanted = self.need_keyframe || self.decoder_wants_keyframe.swap(false, Ordering::Relaxed);
        let Some(mid) = mid.filter(|_| wanted) else { return };
        if self.last_request.is_some_and(|t| t.elapsed().as_millis() < 500) {
            return;
        }
        if let Some(mut writer) = peer.rtc.writer(mid) {
            if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
                self.last_request = Some(Instant::now());
            }
        }
    }
}

enum Wake {
    Stop,
    Packet(std::io::Result<(usize, std::net::SocketAddr)>),
    Timeout,
}

/// One receiving session's task (a WHIP publisher, or the server a WHEP
/// client pulls from): drive the `Rtc`, forward video, ask for keyframes.
/// `mid` is the video m-line when we made the offer (no `MediaAdded` then).
pub async fn run_receiving_session(
    mut peer: Peer,
    mut forwarder: UnitForwarder,
    mut mid: Option<Mid>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    idle: std::time::Duration,
    label: String,
) -> String {
    let started = Instant::now();
    let mut connected = false;
    let why = loop {
        let timeout = match peer.drain() {
            Ok(t) => t,
            Err(e) => break format!("WebRTC error: {e}"),
        };
        let mut ended = None;
        for event in std::mem::take(&mut peer.events) {
            match event {
                Event::Connected => connected = true,
                Event::MediaAdded(m) if m.kind == MediaKind::Video && mid.is_none() => mid = Some(m.mid),
                Event::MediaData(data) if Some(data.mid) == mid => forwarder.forward(data),
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    ended = Some("ICE disconnected".to_string())
                }
                _ => {}
            }
        }
        if let Some(why) = ended {
            break why;
        }
        if !peer.rtc.is_alive() {
            break "connection closed".into();
        }
        if forwarder.closed() {
            peer.stop();
            break "the source closed".into();
        }
        if !connected && started.elapsed() > crate::peer::CONNECT_TIMEOUT {
            break format!("not connected within {:?}", crate::peer::CONNECT_TIMEOUT);
        }
        if peer.idle_for(idle) {
            break format!("nothing received for {idle:?} (sender gone)");
        }
        if connected {
            forwarder.request_keyframe_if_needed(&mut peer, mid);
            if let Err(e) = peer.drain() {
                break format!("WebRTC error: {e}");
            }
        }
        let deadline = timeout.min(Instant::now() + std::time::Duration::from_millis(250));
        let wake = tokio::select! {
            _ = &mut stop => Wake::Stop,
            r = peer.socket.recv_from(&mut peer.buf) => Wake::Packet(r),
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        let fed = match wake {
            Wake::Stop => {
                peer.stop();
                break "ended by DELETE or the source closing".into();
            }
            Wake::Packet(read) => peer.received(read, &label),
            Wake::Timeout => peer.timeout(),
        };
        if let Err(e) = fed {
            break format!("WebRTC error: {e}");
        }
    };
    tracing::info!(
        "{label} ended: {why} ({} access units forwarded, {} dropped)",
        forwarder.units_forwarded,
        forwarder.units_dropped
    );
    why
}

/// A source of decoded frames from a remote WebRTC sender.
pub struct RemoteVideo {
    description: String,
    units: mpsc::Receiver<ReceivedUnit>,
    decoder: Option<H264Decoder>,
    decoder_wants_keyframe: Arc<AtomicBool>,
    size: Option<(u32, u32)>,
    first_rtp: Option<u64>,
    frames: u64,
    /// Keeps the server (or the client session) alive as long as the source.
    _guard: Box<dyn Send>,
}

impl RemoteVideo {
    pub fn new(
        description: String,
        units: mpsc::Receiver<ReceivedUnit>,
        decoder_wants_keyframe: Arc<AtomicBool>,
        guard: Box<dyn Send>,
    ) -> RemoteVideo {
        RemoteVideo {
            description,
            units,
            decoder: None,
            decoder_wants_keyframe,
            size: None,
            first_rtp: None,
            frames: 0,
            _guard: guard,
        }
    }

    async fn decode(&mut self, unit: &ReceivedUnit) -> Result<Option<Frame>> {
        let mut decoder = match self.decoder.take() {
            Some(d) => d,
            None => H264Decoder::new()?,
        };
        let data = unit.data.clone();
        let (decoder, decoded) = tokio::task::spawn_blocking(move || {
            let decoded = decoder.decode(&data);
            (decoder, decoded)
        })
        .await
        .map_err(|e| Error::invalid(format!("{}: decoder thread failed: {e}", self.description)))?;
        self.decoder = Some(decoder);
        Ok(decoded.unwrap_or_else(|e| {
            tracing::debug!("{}: undecodable access unit ({e}); asking for a keyframe", self.description);
            self.decoder_wants_keyframe.store(true, Ordering::Relaxed);
            None
        }))
    }
}

#[async_trait]
impl Source for RemoteVideo {
    fn info(&self) -> SourceInfo {
        let mut info = SourceInfo::new(self.description.clone());
        if let Some((w, h)) = self.size {
            info = info.sized(w, h);
        }
        info.live = true;
        info
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            let Some(unit) = self.units.recv().await else { return Ok(None) };
            let Some(mut frame) = self.decode(&unit).await? else { continue };
            let first = *self.first_rtp.get_or_insert(unit.rtp_time);
            frame.timing = Timing {
                pts: unit.rtp_time.saturating_sub(first) as i64,
                time_base: TimeBase::RTP_VIDEO,
                capture_time_ns: unit.capture_time_ns,
                frame_number: self.frames,
                ..Timing::default()
            };
            self.frames += 1;
            self.size = Some((frame.width(), frame.height()));
            return Ok(Some(frame));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_clock_follows_the_earliest_arrival() {
        let mut clock = CaptureClock::default();
        let ms = 1_000_000;
        // Frame 0 arrives after 20 ms of delay, frame 1 (33 ms later) after 5 ms: re-anchor.
        assert_eq!(clock.map(0, 1_000 * ms + 20 * ms), 1_020 * ms);
        assert_eq!(clock.map(3_000, 1_033 * ms + 5 * ms), 1_038 * ms);
        // Frame 2 is late (jitter 30 ms): its capture time stays on the anchor's line.
        let t = clock.map(6_000, 1_066 * ms + 35 * ms);
        assert_eq!(t, 1_071_333_333); // 1038 ms + 3000 ticks (33.3 ms)
    }
}
