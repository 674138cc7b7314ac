//! WebRTC without a browser: our WHEP client source pulls from our WHEP
//! sink over real ICE, DTLS and SRTP on 127.0.0.1 and decodes frames; the
//! signalling refuses bad requests with a 4xx and a reason; a viewer that
//! vanishes without `DELETE` is cleaned up by the idle timeout.

use std::time::{Duration, Instant};

use streamkit_builtins::{Pattern, TestSource};
use streamkit_core::stream::{StopHandle, Stream, StreamOptions};
use streamkit_core::uri::Uri;
use streamkit_core::{Fps, Source};
use streamkit_webrtc::http;
use streamkit_webrtc::peer::{self, IceOptions, Peer};
use streamkit_webrtc::{WhepClientSource, WhepSink, WhepSinkHandle, WhepSinkOptions};
use tokio::task::JoinHandle;

/// A `test:ball` stream at 320x240@30 in real time into a WHEP sink on a free port.
fn start_sink(options: WhepSinkOptions) -> (WhepSinkHandle, StopHandle, JoinHandle<()>) {
    let sink = WhepSink::create(WhepSinkOptions { addr: "127.0.0.1:0".parse().unwrap(), ..options }).unwrap();
    let handle = sink.handle();
    let source = TestSource::new(Pattern::Ball, 320, 240, Fps::new(30, 1)).unwrap();
    let stream =
        Stream::new(Box::new(source), vec![Box::new(sink)], StreamOptions { realtime: true, ..Default::default() });
    let stop = stream.stop_handle();
    let task = tokio::spawn(async move {
        stream.run().await.unwrap().into_result().unwrap();
    });
    (handle, stop, task)
}

async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_client_pulls_decoded_frames_from_whep_sink() {
    let (sink, stop, task) = start_sink(WhepSinkOptions::default());
    let uri = Uri::parse(&format!("whep-pull://{}", sink.local_addr())).unwrap();
    let mut client = WhepClientSource::from_uri(&uri).unwrap();

    let started = Instant::now();
    let mut frames = Vec::new();
    while frames.len() < 45 {
        let frame = tokio::time::timeout(Duration::from_secs(20), client.next_frame())
            .await
            .expect("a frame within 20 s")
            .unwrap()
            .expect("the stream goes on");
        frames.push(frame);
    }
    eprintln!("45 frames in {:?}", started.elapsed());
    assert_eq!((frames[0].width(), frames[0].height()), (320, 240));
    assert_eq!(client.info().width, Some(320));
    for pair in frames.windows(2) {
        assert!(pair[1].timing.pts > pair[0].timing.pts, "pts increase: {:?}", pair);
        assert_eq!(pair[1].timing.frame_number, pair[0].timing.frame_number + 1);
    }
    // 45 frames at 30 fps span ~1.5 s of media time (90 kHz).
    let span = frames[44].timing.pts - frames[0].timing.pts;
    assert!((120_000..=140_000).contains(&span), "pts span {span} ticks");
    // Capture times come from the sender's reports or arrival: recent, and never in the future.
    let now = streamkit_core::time::monotonic_ns();
    let last = frames.last().unwrap().timing.capture_time_ns;
    assert!(last <= now && now - last < 2_000_000_000, "capture time {last} vs now {now}");
    assert_eq!((sink.sessions(), sink.connected()), (1, 1));

    client.close().await.unwrap(); // DELETEs the session
    wait_until("the session to end after DELETE", Duration::from_secs(5), || sink.sessions() == 0).await;
    assert_eq!(sink.sessions_started_ended(), (1, 1));
    stop.stop();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_refuses_bad_requests_with_a_reason() {
    let token = "s3cret";
    let (sink, stop, task) = start_sink(WhepSinkOptions { token: Some(token.into()), ..WhepSinkOptions::default() });
    let endpoint = sink.endpoint();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str()), ("Content-Type", "application/sdp")];
    let post = |body: &'static [u8], headers: &'static [(&'static str, &'static str)]| {
        let endpoint = endpoint.clone();
        async move { http::request("POST", &endpoint, headers, body, Duration::from_secs(5)).await.unwrap() }
    };
    let text = |r: &http::ClientResponse| String::from_utf8_lossy(&r.body).into_owned();

    // The page is public; the endpoint needs the token.
    let page = http::request("GET", &format!("http://{}/", sink.local_addr()), &[], b"", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(text(&page).contains("RTCPeerConnection"));
    let r = post(b"v=0\r\n", &[("Content-Type", "application/sdp")]).await;
    assert_eq!(r.status, 401, "{}", text(&r));

    let r = http::request("POST", &endpoint, &auth, b"hello", Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("malformed SDP offer"), "{}", text(&r));
    let r =
        http::request("POST", &endpoint, &auth, b"v=0\r\nthis is not sdp\r\n", Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("malformed SDP offer"), "{}", text(&r));

    let json = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let r = http::request("POST", &endpoint, &json, b"{}", Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 415, "{}", text(&r));

    let huge = vec![b'a'; http::MAX_BODY_BYTES + 1];
    let r = http::request("POST", &endpoint, &auth, &huge, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 413, "{}", text(&r));

    // An audio-only offer (a valid SDP without video).
    let mut rtc = peer::new_rtc();
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::RecvOnly, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let r = http::request("POST", &endpoint, &auth, offer.to_sdp_string().as_bytes(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("no video"), "{}", text(&r));

    let r = http::request("DELETE", &format!("{endpoint}/nosuchsession"), &auth, b"", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(text(&r).contains("no session 'nosuchsession'"), "{}", text(&r));
    let r = http::request("GET", &format!("http://{}/nowhere", sink.local_addr()), &auth, b"", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Nothing of this created a session, and the server still serves.
    assert_eq!(sink.sessions_started_ended(), (0, 0));
    let page = http::request("GET", &format!("http://{}/", sink.local_addr()), &[], b"", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    stop.stop();
    task.await.unwrap();
}

/// A str0m viewer driven by hand (no decoding), so that a test controls
/// exactly what it sends — and can vanish without a word.
struct BareViewer {
    peer: Peer,
    mid: str0m::media::Mid,
    /// The sink session's UDP port, from its host candidate in the answer.
    session_port: u16,
}

impl BareViewer {
    async fn connect(endpoint: &str) -> BareViewer {
        let (socket, candidates) = IceOptions::default().bind().await.unwrap();
        let mut rtc = peer::new_rtc();
        for c in candidates {
            rtc.add_local_candidate(c);
        }
        let mut change = rtc.sdp_api();
        let mid = change.add_media(str0m::media::MediaKind::Video, str0m::media::Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let headers = [("Content-Type", "application/sdp")];
        let r = http::request("POST", endpoint, &headers, offer.to_sdp_string().as_bytes(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.header("location").unwrap().starts_with("/whep/"));
        let answer = String::from_utf8_lossy(&r.body).into_owned();
        // `a=candidate:… udp PRIO 127.0.0.1 PORT typ host`
        let session_port = answer
            .lines()
            .find(|l| l.starts_with("a=candidate:") && l.contains("127.0.0.1"))
            .and_then(|l| l.split_whitespace().nth(5)?.parse().ok())
            .unwrap_or_else(|| panic!("no host candidate in {answer}"));
        rtc.sdp_api().accept_answer(pending, str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        BareViewer { peer: Peer::new(rtc, socket).unwrap(), mid, session_port }
    }

    /// Runs the connection for up to 50 ms; returns the access units that arrived.
    async fn poll(&mut self) -> Vec<str0m::media::MediaData> {
        let timeout = self.peer.drain().unwrap();
        let media = std::mem::take(&mut self.peer.events)
            .into_iter()
            .filter_map(|e| match e {
                str0m::Event::MediaData(m) => Some(m),
                _ => None,
            })
            .collect();
        let wait = timeout.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
        match tokio::time::timeout(wait, self.peer.socket.recv_from(&mut self.peer.buf)).await {
            Ok(Ok((n, from))) => self.peer.receive(n, from).unwrap(),
            _ => self.peer.timeout().unwrap(),
        }
        media
    }

    fn request_keyframe(&mut self) {
        let mut writer = self.peer.rtc.writer(self.mid).unwrap();
        writer.request_keyframe(None, str0m::media::KeyframeRequestKind::Pli).unwrap();
    }
}

fn is_keyframe(m: &str0m::media::MediaData) -> bool {
    streamkit_h264::nal::is_keyframe(&m.data)
}

/// A PLI makes the one shared encoder produce a keyframe (keyframes are
/// otherwise a minute apart here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pli_forces_a_keyframe() {
    let encode = streamkit_media::encode::EncodeOptions {
        bitrate_bps: 1_000_000,
        keyframe_seconds: Some(60.0),
        ..streamkit_media::encode::EncodeOptions::default()
    };
    let (sink, stop, task) = start_sink(WhepSinkOptions { encode, ..WhepSinkOptions::default() });
    let mut viewer = BareViewer::connect(&sink.endpoint()).await;
    let mut units = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while units.len() < 20 {
        assert!(Instant::now() < deadline, "only {} units within 15 s", units.len());
        units.extend(viewer.poll().await);
    }
    assert!(is_keyframe(&units[0]), "a new viewer starts on a keyframe");
    assert!(units[1..].iter().all(|u| !is_keyframe(u)), "no other keyframe without a request");

    viewer.request_keyframe();
    let asked = Instant::now();
    loop {
        assert!(asked.elapsed() < Duration::from_secs(3), "no keyframe within 3 s of the PLI");
        if viewer.poll().await.iter().any(is_keyframe) {
            break;
        }
    }
    eprintln!("keyframe {:?} after the PLI", asked.elapsed());
    stop.stop();
    task.await.unwrap();
}

/// A viewer that connects, receives, then goes silent without `DELETE`
/// (a closed tab, a crashed player): the sink ends its session after the
/// idle timeout and frees its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_viewer_is_cleaned_up() {
    let ice = IceOptions { idle_timeout: Duration::from_secs(2), ..IceOptions::default() };
    let (sink, stop, task) = start_sink(WhepSinkOptions { ice, ..WhepSinkOptions::default() });
    let mut viewer = BareViewer::connect(&sink.endpoint()).await;
    let mut media = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while media < 10 {
        assert!(Instant::now() < deadline, "no media within 15 s");
        media += viewer.poll().await.len();
    }
    assert_eq!(sink.connected(), 1);
    let port = viewer.session_port;
    assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(), "the session holds its port");
    drop(viewer); // gone: no DELETE, no more STUN

    let vanished = Instant::now();
    wait_until("the abandoned session to end", Duration::from_secs(10), || sink.sessions() == 0).await;
    let took = vanished.elapsed();
    eprintln!("abandoned session ended after {took:?} (idle timeout 2 s)");
    assert!(took >= Duration::from_millis(1500), "ended before the idle timeout: {took:?}");
    assert_eq!((sink.connected(), sink.sessions_started_ended()), (0, (1, 1)));
    // Its UDP socket went with it.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(), "port {port} is free again");
    stop.stop();
    task.await.unwrap();
}

/// A STUN server on loopback that tells every client it is 192.0.2.7:40000.
async fn fake_stun_server() -> std::net::SocketAddr {
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = server.recv_from(&mut buf).await {
            if n < 20 || buf[0..2] != [0, 1] {
                continue; // not a binding request
            }
            let cookie = [0x21, 0x12, 0xA4, 0x42];
            let mut msg = vec![0x01, 0x01, 0, 12];
            msg.extend_from_slice(&cookie);
            msg.extend_from_slice(&buf[8..20]); // transaction id
            msg.extend_from_slice(&[0x00, 0x20, 0, 8, 0, 1]); // XOR-MAPPED-ADDRESS, IPv4
            msg.extend_from_slice(&(40000u16 ^ 0x2112).to_be_bytes());
            msg.extend([192u8, 0, 2, 7].iter().zip(cookie).map(|(a, k)| a ^ k));
            let _ = server.send_to(&msg, from).await;
        }
    });
    addr
}

/// `ice_servers`: a STUN server gives the session a server-reflexive
/// candidate; every server reaches players as `Link` headers (RFC 9725) and
/// in the viewer page. `max_viewers` and the token are enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_servers_candidates_limits_and_token() {
    let stun = fake_stun_server().await;
    let uri = format!(
        "whep://127.0.0.1:0?token=tok&max_viewers=1&ice_servers=stun:{stun},turn:turn.example:3478&turn_username=u&turn_credential=p"
    );
    let options = WhepSinkOptions::from_uri(&Uri::parse(&uri).unwrap()).unwrap();
    let (sink, stop, task) = start_sink(options);

    let page = http::request("GET", &format!("http://{}/", sink.local_addr()), &[], b"", Duration::from_secs(5))
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        page.contains(r#"{"urls":"turn:turn.example:3478","username":"u","credential":"p"}"#),
        "the page configures RTCPeerConnection with the servers"
    );

    let mut rtc = peer::new_rtc();
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Video, str0m::media::Direction::RecvOnly, None, None, None);
    let offer = change.apply().unwrap().0.to_sdp_string();
    let headers = [("Content-Type", "application/sdp"), ("Authorization", "Bearer tok")];
    let r = http::request("POST", &sink.endpoint(), &headers, offer.as_bytes(), Duration::from_secs(5)).await.unwrap();
    let answer = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, 201, "{answer}");
    assert!(answer.contains("192.0.2.7 40000 typ srflx"), "server-reflexive candidate from STUN: {answer}");
    assert!(answer.contains("127.0.0.1") && answer.contains("typ host"), "{answer}");
    let links: Vec<&str> = r.headers.iter().filter(|(n, _)| n == "link").map(|(_, v)| v.as_str()).collect();
    let turn =
        r#"<turn:turn.example:3478>; rel="ice-server"; username="u"; credential="p"; credential-type="password""#;
    assert_eq!(links, [format!("<stun:{stun}>; rel=\"ice-server\""), turn.to_string()]);

    // One viewer at most: the second is told to come back later.
    let again =
        http::request("POST", &sink.endpoint(), &headers, offer.as_bytes(), Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.status, 503, "{}", String::from_utf8_lossy(&again.body));

    // DELETE needs the token too, then ends the session.
    let resource = format!("http://{}{}", sink.local_addr(), r.header("location").unwrap());
    let denied = http::request("DELETE", &resource, &[], b"", Duration::from_secs(5)).await.unwrap();
    assert_eq!(denied.status, 401);
    let deleted = http::request("DELETE", &resource, &headers[1..], b"", Duration::from_secs(5)).await.unwrap();
    assert_eq!(deleted.status, 200);
    wait_until("the deleted session to end", Duration::from_secs(5), || sink.sessions() == 0).await;

    // The WHEP client source sends the token it is given, and is refused without it.
    let mut refused =
        WhepClientSource::from_uri(&Uri::parse(&format!("whep-pull://{}", sink.local_addr())).unwrap()).unwrap();
    let err = refused.next_frame().await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let uri = Uri::parse(&format!("whep-pull://{}?token=tok", sink.local_addr())).unwrap();
    let mut client = WhepClientSource::from_uri(&uri).unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(20), client.next_frame()).await.unwrap().unwrap().unwrap();
    assert_eq!((frame.width(), frame.height()), (320, 240));
    client.close().await.unwrap();
    stop.stop();
    task.await.unwrap();
}

/// The stream is encoded once however many viewers watch, and not at all
/// while nobody does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_share_one_encode() {
    let (sink, stop, task) = start_sink(WhepSinkOptions::default());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.frames_encoded(), 0, "nobody watches: nothing is encoded");

    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(BareViewer::connect(&sink.endpoint()).await);
    }
    let mut received = [0usize; 3];
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.iter().any(|&n| n < 10) {
        assert!(Instant::now() < deadline, "received {received:?} within 15 s");
        for (viewer, n) in viewers.iter_mut().zip(&mut received) {
            *n += viewer.poll().await.len();
        }
    }
    let (encoded0, t0) = (sink.frames_encoded(), Instant::now());
    let mut during = [0usize; 3];
    while t0.elapsed() < Duration::from_secs(2) {
        for (viewer, n) in viewers.iter_mut().zip(&mut during) {
            *n += viewer.poll().await.len();
        }
    }
    let encoded = sink.frames_encoded() - encoded0;
    let elapsed = t0.elapsed().as_secs_f64();
    eprintln!("{elapsed:.1} s: {encoded} frames encoded, viewers received {during:?}");
    // ~30 fps once, not ~90: one encode for three viewers (generous bounds, no timing verdict).
    assert!(encoded as f64 <= 40.0 * elapsed, "{encoded} frames encoded in {elapsed:.1} s");
    assert!(
        during.iter().all(|&n| n as u64 + 15 >= encoded),
        "every viewer got (nearly) every unit: {during:?} of {encoded}"
    );
    stop.stop();
    task.await.unwrap();
}

/// `whep://0.0.0.0:PORT`: sessions bind the outgoing interface's address
/// (str0m needs a concrete one), which a client on loopback still reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_on_all_interfaces_serves_a_loopback_client() {
    let sink = WhepSink::create(WhepSinkOptions { addr: "0.0.0.0:0".parse().unwrap(), ..Default::default() }).unwrap();
    let port = sink.handle().local_addr().port();
    let source = TestSource::new(Pattern::Ball, 320, 240, Fps::new(30, 1)).unwrap();
    let stream =
        Stream::new(Box::new(source), vec![Box::new(sink)], StreamOptions { realtime: true, ..Default::default() });
    let stop = stream.stop_handle();
    let task = tokio::spawn(stream.run());
    let uri = Uri::parse(&format!("whep-pull://127.0.0.1:{port}")).unwrap();
    let mut client = WhepClientSource::from_uri(&uri).unwrap();
    for _ in 0..10 {
        let frame = tokio::time::timeout(Duration::from_secs(20), client.next_frame()).await.unwrap().unwrap().unwrap();
        assert_eq!(frame.width(), 320);
    }
    client.close().await.unwrap();
    stop.stop();
    task.await.unwrap().unwrap().into_result().unwrap();
}

/// Players and encoders (OBS, GStreamer) often offer audio too: the audio
/// m-line is declined (port 0), the video one answered, on both endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_offers_are_answered_for_video() {
    use str0m::media::{Direction, MediaKind};
    let offer = |direction: Direction| {
        // str0m's default codecs (Opus, VP8, H.264, …), like a browser's offer.
        let mut rtc = str0m::RtcConfig::new().build(Instant::now());
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, direction, None, None, None);
        change.add_media(MediaKind::Video, direction, None, None, None);
        change.apply().unwrap().0.to_sdp_string()
    };
    let headers = [("Content-Type", "application/sdp")];
    let sink =
        WhepSink::create(WhepSinkOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() }).unwrap();
    let whip = streamkit_webrtc::WhipSource::create(streamkit_webrtc::WhipSourceOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: None,
        ice: IceOptions::default(),
    })
    .unwrap();
    let whip_endpoint = format!("http://{}/whip", whip.local_addr());
    for (endpoint, direction) in [(sink.handle().endpoint(), Direction::RecvOnly), (whip_endpoint, Direction::SendOnly)]
    {
        let r = http::request("POST", &endpoint, &headers, offer(direction).as_bytes(), Duration::from_secs(5))
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, 201, "{endpoint}: {answer}");
        assert!(answer.contains("m=audio 0 "), "audio declined: {answer}");
        assert!(answer.contains("H264/90000"), "video answered: {answer}");
    }
}

/// Every prefix-cut and byte-flipped variant of a real offer gets an answer
/// or a 4xx/503 — the server never falls over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mangled_offers_never_break_the_server() {
    let sink =
        WhepSink::create(WhepSinkOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() }).unwrap();
    let handle = sink.handle();
    let mut rtc = str0m::RtcConfig::new().build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Video, str0m::media::Direction::RecvOnly, None, None, None);
    let offer = change.apply().unwrap().0.to_sdp_string().into_bytes();
    let headers = [("Content-Type", "application/sdp")];
    let mut variants: Vec<Vec<u8>> = (0..offer.len()).step_by(23).map(|n| offer[..n].to_vec()).collect();
    for i in (0..offer.len()).step_by(29) {
        let mut flipped = offer.clone();
        flipped[i] ^= 0x5a;
        variants.push(flipped);
    }
    let mut statuses = std::collections::BTreeMap::new();
    for body in &variants {
        let r = http::request("POST", &handle.endpoint(), &headers, body, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(r.status, 201 | 400 | 503), "{} for {:?}", r.status, String::from_utf8_lossy(body));
        assert!(r.status == 201 || !r.body.is_empty(), "a refusal says why");
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    eprintln!("{} mangled offers: {statuses:?}", variants.len());
    assert!(statuses.get(&400).copied().unwrap_or(0) > 10);
    let page = http::request("GET", &format!("http://{}/", handle.local_addr()), &[], b"", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "still serving");
}
