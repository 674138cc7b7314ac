//! Issue 7 proof with a real client: headless Chromium (Debian's) watches
//! our WHEP sink through the built-in viewer page — three viewers at once,
//! all decoding at the right size — and publishes its fake camera through
//! our WHIP source into an MP4 that ffprobe reads. A browser killed without
//! `DELETE` leaves no session behind.
//!
//! Skipped with a note when Chromium or chromedriver is missing, a failure
//! with `CI=true`. Never timed on performance: deadlines are generous.

use std::time::{Duration, Instant};

use serde_json::Value;
use streamkit_builtins::{Pattern, TestSource};
use streamkit_core::stream::{Stream, StreamOptions};
use streamkit_core::Fps;
use streamkit_media::{Mp4Sink, Mp4SinkOptions};
use streamkit_testkit::chromium::{self, Browser};
use streamkit_testkit::{ffprobe_video, temp_dir};
use streamkit_webrtc::http;
use streamkit_webrtc::peer::{self, IceOptions};
use streamkit_webrtc::{WhepSink, WhepSinkOptions, WhipSource, WhipSourceOptions};

/// Waits (polling every 100 ms) until `check` is true of the page's value of `js`.
fn wait_page(browser: &Browser, js: &str, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let value = browser.eval(js);
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out; last value of `{js}`: {value}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn decoded(v: &Value) -> u64 {
    v["framesDecoded"].as_u64().unwrap_or(0)
}

/// Three viewers (the page and two iframes of it) decode 1280x720 H.264
/// from one encoder; killing the browser ends their sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_viewers_decode_the_whep_stream() {
    let Some(browser) = Browser::launch() else { return };
    // A TURN server in the page's configuration (unreachable: the host path is
    // used) proves the iceServers the page builds are ones Chromium accepts.
    let ice = IceOptions {
        idle_timeout: Duration::from_secs(3),
        ice_servers: vec!["turn:127.0.0.1:9".into()],
        turn_username: Some("user".into()),
        turn_credential: Some("secret".into()),
        ..IceOptions::default()
    };
    let sink =
        WhepSink::create(WhepSinkOptions { addr: "127.0.0.1:0".parse().unwrap(), ice, ..Default::default() }).unwrap();
    let handle = sink.handle();
    let source = TestSource::new(Pattern::Ball, 1280, 720, Fps::new(30, 1)).unwrap();
    let stream =
        Stream::new(Box::new(source), vec![Box::new(sink)], StreamOptions { realtime: true, ..Default::default() });
    let stop = stream.stop_handle();
    let task = tokio::spawn(stream.run());

    let page = format!("http://{}/", handle.local_addr());
    let started = Instant::now();
    browser.goto(&page);
    let first = wait_page(&browser, "return window.streamkitViewer", Duration::from_secs(30), |v| decoded(v) > 30);
    eprintln!("viewer 1 decoding after {:?}: {first}", started.elapsed());
    assert_eq!((first["frameWidth"].as_u64(), first["frameHeight"].as_u64()), (Some(1280), Some(720)), "{first}");

    // Two more viewers, as iframes of the same page (same origin: their state is readable).
    browser.eval(&format!(
        "for (let i = 0; i < 2; i++) {{ const f = document.createElement('iframe'); f.src = '{page}'; \
         f.width = 320; f.height = 200; document.body.appendChild(f); }} return true"
    ));
    let all = "return [window.streamkitViewer, ...[...document.querySelectorAll('iframe')]\
               .map(f => f.contentWindow.streamkitViewer || {})].map(v => ({framesDecoded: v.framesDecoded || 0, \
               frameWidth: v.frameWidth || 0, frameHeight: v.frameHeight || 0, state: v.state || null}))";
    let before =
        wait_page(&browser, all, Duration::from_secs(30), |v| v.as_array().unwrap().iter().all(|x| decoded(x) > 10));
    std::thread::sleep(Duration::from_secs(2));
    let after = browser.eval(all);
    eprintln!("three viewers: {before} → {after}");
    for (b, a) in before.as_array().unwrap().iter().zip(after.as_array().unwrap()) {
        assert!(decoded(a) > decoded(b) + 15, "every viewer keeps decoding: {b} → {a}");
        assert_eq!((a["frameWidth"].as_u64(), a["frameHeight"].as_u64()), (Some(1280), Some(720)), "{a}");
    }
    assert_eq!((handle.sessions(), handle.connected()), (3, 3));
    // RTCP sender reports reach the player (one a second).
    wait_page(&browser, "return window.streamkitViewer.senderReports", Duration::from_secs(10), |v| {
        v.as_u64() > Some(0)
    });

    // Kill Chromium outright: no DELETE, no goodbye. The idle timeout (3 s) ends all three.
    let pid = browser.browser_pid().expect("chromedriver reports Chromium's pid");
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    let killed = Instant::now();
    while handle.sessions() > 0 {
        assert!(killed.elapsed() < Duration::from_secs(20), "{} sessions still open", handle.sessions());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("sessions of the killed browser ended after {:?}", killed.elapsed());
    assert_eq!((handle.connected(), handle.sessions_started_ended()), (0, (3, 3)));
    drop(browser);
    stop.stop();
    task.await.unwrap().unwrap().into_result().unwrap();
}

/// Chromium's fake camera → WHIP → our source → MP4 → ffprobe; a second
/// publisher is refused; the publisher's `DELETE` ends the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_over_whip_into_an_mp4() {
    if !chromium::available(streamkit_testkit::in_ci()) {
        return;
    }
    let dir = temp_dir("whip-publish");
    let path = dir.join("published.mp4");
    let source = WhipSource::create(WhipSourceOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: Some("pub".into()),
        ice: IceOptions::default(),
    })
    .unwrap();
    let addr = source.local_addr();
    let sink = Mp4Sink::create(&path, Mp4SinkOptions::default()).unwrap();
    let stream = Stream::new(Box::new(source), vec![Box::new(sink)], StreamOptions::default());
    let task = tokio::spawn(stream.run());

    let browser = Browser::launch_with(&["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        .expect("Chromium is available");
    browser.goto(&format!("http://{addr}/?token=pub&width=640&height=480"));
    let sent = wait_page(&browser, "return window.streamkitPublisher", Duration::from_secs(30), |v| {
        v["framesEncoded"].as_u64().unwrap_or(0) > 60 || v["state"] == "failed"
    });
    assert_ne!(sent["state"], "failed", "{sent}");
    eprintln!("publisher: {sent}");

    // One publication at a time: a second publisher gets 409 with a reason.
    let mut rtc = peer::new_rtc();
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Video, str0m::media::Direction::SendOnly, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let headers = [("Content-Type", "application/sdp"), ("Authorization", "Bearer pub")];
    let second = http::request(
        "POST",
        &format!("http://{addr}/whip"),
        &headers,
        offer.to_sdp_string().as_bytes(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(second.status, 409, "{}", String::from_utf8_lossy(&second.body));

    // The publisher stops (DELETE): the stream ends and the MP4 is finalised.
    browser.eval("return window.streamkitPublisher.stop().then(() => true)");
    let report = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the stream ends when the publisher leaves")
        .unwrap()
        .unwrap()
        .into_result()
        .unwrap();
    drop(browser);
    eprintln!("{} frames recorded", report.frames_out);
    assert!(report.frames_out >= 30, "{} frames", report.frames_out);

    let Some(probe) = ffprobe_video(&path) else { return };
    eprintln!("ffprobe: {probe:?}");
    assert_eq!(probe.codec, "h264");
    assert_eq!((probe.width, probe.height), (640, 480));
    assert_eq!(probe.frames, report.frames_out);
}
