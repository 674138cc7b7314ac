//! Issue 7 acceptance: `streamkit run 'test:smpte?size=1280x720&fps=30'
//! --realtime -o 'whep://127.0.0.1:PORT'` serves the viewer page at `/` and
//! the WHEP endpoint at `/whep`, and a second `streamkit` pulls it over
//! WebRTC (`whep-pull://`) into an MP4 that ffprobe reads. (Chromium's side
//! is proven in `crates/streamkit-webrtc/tests/browser.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use streamkit_testkit::{ffprobe_video, http, temp_dir};

fn streamkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamkit"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Kills the serving `streamkit` when the test ends, passed or not.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn whep_sink_serves_page_and_endpoint_and_streamkit_pulls_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = streamkit()
        .args(["run", "test:smpte?size=1280x720&fps=30", "--realtime", "-o", &format!("whep://127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // "watch at http://127.0.0.1:PORT/ (WHEP endpoint http://127.0.0.1:PORT/whep)" once it listens.
    let stderr = child.stderr.take().unwrap();
    let _serving = Serving(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let announced = (0..50)
        .find_map(|_| rx.recv_timeout(Duration::from_secs(20)).ok().filter(|l| l.contains("watch at")))
        .expect("streamkit announces the viewer page");
    let base = format!("http://127.0.0.1:{port}");
    assert!(announced.contains(&format!("{base}/")) && announced.contains(&format!("{base}/whep")), "{announced}");

    let page = http::get(&format!("{base}/")).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text().contains("RTCPeerConnection") && page.text().contains("\"whep\""), "the page speaks WHEP");

    let sdp = [("Content-Type", "application/sdp")];
    let bad =
        http::request("POST", &format!("{base}/whep"), &sdp, Some(b"not an offer"), Duration::from_secs(10)).unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("malformed SDP offer"), "{}", bad.text());
    let unknown = http::request("DELETE", &format!("{base}/whep/nope"), &[], None, Duration::from_secs(10)).unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    let out = temp_dir("cli-whep-pull").join("pulled.mp4");
    let pulled = streamkit()
        .args([
            "run",
            &format!("whep-pull://127.0.0.1:{port}"),
            "--frames",
            "60",
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(pulled.status.success(), "whep-pull failed:\n{}", String::from_utf8_lossy(&pulled.stderr));
    let Some(probe) = ffprobe_video(&out) else { return };
    assert_eq!((probe.codec.as_str(), probe.width, probe.height, probe.frames), ("h264", 1280, 720, 60), "{probe:?}");
}
