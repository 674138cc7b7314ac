//! Our own side through a real TURN server (coturn's `turnserver` on
//! 127.0.0.1): a `whep-pull://` client that may only offer its relayed
//! candidate (`ice_transport_policy=relay`) decodes frames from a `whep://`
//! sink, so every frame crossed the relay (coturn's log shows our
//! allocation, a permission and a channel for the sink, and the allocation
//! freed on close; our TURN counter shows the bytes); the sink can answer
//! with a relayed candidate only; wrong credentials fail with a message
//! naming the server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamkit_builtins::{Pattern, TestSource};
use streamkit_core::stream::{Stream, StreamOptions};
use streamkit_core::uri::Uri;
use streamkit_core::{Fps, Source};
use streamkit_webrtc::{turn, WhepClientSource, WhepSink, WhepSinkOptions};

/// A `turnserver` with user `test:secret` in realm `streamkit`, killed on drop.
struct Coturn {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Coturn {
    async fn start() -> Option<Coturn> {
        if !streamkit_testkit::require_tool("turnserver") {
            return None;
        }
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("streamkit-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("turnserver.log");
        let (pidfile, db) = (dir.join("turnserver.pid"), dir.join("turndb"));
        #[rustfmt::skip]
        let args = [
            "-n", "-v", "--listening-port", &port.to_string(),
            "--lt-cred-mech", "--user", "test:secret", "--realm", "streamkit",
            "--no-tls", "--no-dtls", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
            "--allow-loopback-peers", "--no-cli", "--log-file", "stdout",
            "--pidfile", pidfile.to_str().unwrap(), "--db", db.to_str().unwrap(),
        ];
        let child = Command::new("turnserver")
            .args(args)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting turnserver");
        let coturn = Coturn { child, port, dir, log };
        // Ready when it answers a STUN binding request.
        let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while streamkit_webrtc::stun::query(&probe, &server, Duration::from_millis(300)).await.is_none() {
            assert!(Instant::now() < deadline, "turnserver did not answer STUN on {server}:\n{}", coturn.log());
        }
        Some(coturn)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `test:ball` stream at 320x240@30 in real time into a WHEP sink.
fn start_sink(query: &str) -> (String, streamkit_core::stream::StopHandle, tokio::task::JoinHandle<()>) {
    let uri = Uri::parse(&format!("whep://127.0.0.1:0{query}")).unwrap();
    let sink = WhepSink::create(WhepSinkOptions::from_uri(&uri).unwrap()).unwrap();
    let addr = sink.handle().local_addr().to_string();
    let source = TestSource::new(Pattern::Ball, 320, 240, Fps::new(30, 1)).unwrap();
    let stream =
        Stream::new(Box::new(source), vec![Box::new(sink)], StreamOptions { realtime: true, ..Default::default() });
    let stop = stream.stop_handle();
    let task = tokio::spawn(async move {
        stream.run().await.unwrap().into_result().unwrap();
    });
    (addr, stop, task)
}

async fn pull_frames(client: &mut WhepClientSource, count: usize) {
    for _ in 0..count {
        let frame = tokio::time::timeout(Duration::from_secs(20), client.next_frame())
            .await
            .expect("a frame within 20 s")
            .unwrap()
            .expect("the stream goes on");
        assert_eq!((frame.width(), frame.height()), (320, 240));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_client_pulls_through_a_turn_relay_only() {
    let Some(coturn) = Coturn::start().await else { return };
    let (addr, stop, task) = start_sink("");
    let before = turn::relayed_bytes();
    let turn = format!(
        "ice_servers=turn:127.0.0.1:{}&turn_username=test&turn_credential=secret&ice_transport_policy=relay",
        coturn.port
    );
    let mut client = WhepClientSource::from_uri(&Uri::parse(&format!("whep-pull://{addr}?{turn}")).unwrap()).unwrap();
    let started = Instant::now();
    pull_frames(&mut client, 45).await;
    eprintln!("45 frames through TURN in {:?}", started.elapsed());
    let relayed = turn::relayed_bytes() - before;
    assert!(relayed > 20_000, "only {relayed} bytes crossed the relay");

    client.close().await.unwrap();
    stop.stop();
    task.await.unwrap();
    let log = coturn.log();
    let processed =
        |what: &str| log.contains(&format!("realm <streamkit> user <test>: incoming packet {what} processed, success"));
    assert!(processed("ALLOCATE"), "no allocation by us:\n{log}");
    assert!(processed("CREATE_PERMISSION"), "no permission for the sink:\n{log}");
    assert!(processed("CHANNEL_BIND"), "no channel to the sink:\n{log}");
    // The session task frees the allocation as it ends, just after the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !coturn.log().contains("username=<test>, lifetime=0") {
        assert!(Instant::now() < deadline, "the allocation was not freed on close:\n{}", coturn.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sink side relays too (its answer offers only the relayed candidate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_sink_answers_with_a_relayed_candidate() {
    let Some(coturn) = Coturn::start().await else { return };
    let turn = format!(
        "?ice_servers=turn:127.0.0.1:{}&turn_username=test&turn_credential=secret&ice_transport_policy=relay",
        coturn.port
    );
    let (addr, stop, task) = start_sink(&turn);
    let mut client = WhepClientSource::from_uri(&Uri::parse(&format!("whep-pull://{addr}")).unwrap()).unwrap();
    pull_frames(&mut client, 30).await;
    client.close().await.unwrap();
    stop.stop();
    task.await.unwrap();
    let log = coturn.log();
    assert!(log.contains("CHANNEL_BIND processed, success"), "no channel to the client:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_turn_credentials_fail_naming_the_server() {
    let Some(coturn) = Coturn::start().await else { return };
    let (addr, stop, task) = start_sink("");
    let uri = format!(
        "whep-pull://{addr}?ice_servers=turn:127.0.0.1:{}&turn_username=test&turn_credential=wrong&ice_transport_policy=relay",
        coturn.port
    );
    let mut client = WhepClientSource::from_uri(&Uri::parse(&uri).unwrap()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), client.next_frame()).await.unwrap().unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains(&format!("TURN server 127.0.0.1:{}", coturn.port)), "{message}");
    assert!(message.contains("401"), "{message}");
    stop.stop();
    task.await.unwrap();
}
