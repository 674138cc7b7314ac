//! The HLS HTTP server driven by raw HTTP/1.1 over tokio sockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use streamkit_hls::{serve, serve_with, EncodedUnit, HlsOptions, HlsWriter, ServerOptions};
use streamkit_testkit::temp_dir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A small HLS directory written by the real writer (synthetic H.264 units).
async fn hls_dir(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let options = HlsOptions { segment_duration: Duration::from_secs(1), playlist_size: 3, ..HlsOptions::default() };
    let mut w = HlsWriter::create(&dir, options).await.unwrap();
    for n in 0..100u64 {
        let key = w.keyframe_due(n * 3000);
        let body: &[u8] =
            if key { &[0x67, 0x42, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88] } else { &[0x41, 0x9A] };
        let unit = EncodedUnit {
            data: [&[0u8, 0, 0, 1][..], body].concat(),
            pts_90k: n * 3000,
            dts_90k: n * 3000,
            keyframe: key,
            wallclock_ns: None,
        };
        w.write_unit(unit).await.unwrap();
    }
    w.finish().await.unwrap();
    dir
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (head + Content-Length body) from `stream`; `head_only` for HEAD.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Reply {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).unwrap().1.parse().unwrap();
    buf.drain(..head_end);
    let len = if head_only { 0 } else { len };
    while buf.len() < len {
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    Reply { status, headers, body }
}

/// One request on a fresh connection.
async fn request(addr: SocketAddr, raw: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_only = raw.starts_with("HEAD ");
    tokio::time::timeout(Duration::from_secs(10), read_reply(&mut stream, &mut buf, head_only)).await.unwrap()
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, &format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).await
}

fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn serves_the_player_playlist_and_segments() {
    let dir = hls_dir("hls-server-files").await;
    let server = serve(dir.clone(), local(), None).await.unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());

    let page = get(addr, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.text();
    assert!(html.contains(r#"<video id="video" src="index.m3u8" controls autoplay muted"#), "{html}");
    assert!(html.contains("currentTime") && html.contains("error"), "status line script");
    assert!(!html.contains("http://") && !html.contains("https://"), "no CDN");

    let playlist = get(addr, "/index.m3u8").await;
    assert_eq!(playlist.status, 200);
    assert_eq!(playlist.header("content-type"), Some("application/vnd.apple.mpegurl"));
    assert_eq!(playlist.header("cache-control"), Some("no-cache"));
    assert_eq!(playlist.header("access-control-allow-origin"), Some("*"));
    assert!(playlist.header("date").is_some_and(|d| d.ends_with(" GMT")));
    let on_disk = std::fs::read(dir.join("index.m3u8")).unwrap();
    assert_eq!(playlist.body, on_disk);
    assert!(playlist.text().ends_with("#EXT-X-ENDLIST\n"));

    let segment_name =
        playlist.text().lines().find(|l| l.ends_with(".ts")).expect("a segment in the playlist").to_string();
    let segment = get(addr, &format!("/{segment_name}")).await;
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("content-type"), Some("video/mp2t"));
    assert_eq!(segment.body, std::fs::read(dir.join(&segment_name)).unwrap());

    let head = request(addr, "HEAD /index.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(on_disk.len().to_string().as_str()));

    std::fs::write(dir.join("init.mp4"), b"ftyp").unwrap();
    std::fs::write(dir.join("part.m4s"), b"moof").unwrap();
    assert_eq!(get(addr, "/init.mp4").await.header("content-type"), Some("video/mp4"));
    assert_eq!(get(addr, "/part.m4s").await.header("content-type"), Some("video/mp4"));
    assert_eq!(get(addr, "/missing.ts").await.status, 404);
    std::fs::write(dir.join("index.m3u8.tmp"), b"half").unwrap();
    assert_eq!(get(addr, "/index.m3u8.tmp").await.status, 404, "half-written files are not served");

    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err(), "nothing listens after shutdown");
    cleanup(&dir);
}

#[tokio::test]
async fn keep_alive_and_pipelining() {
    let dir = hls_dir("hls-server-keepalive").await;
    let server = serve(dir.clone(), local(), None).await.unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        stream.write_all(b"GET /index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let r = read_reply(&mut stream, &mut buf, false).await;
        assert_eq!((r.status, r.header("connection")), (200, Some("keep-alive")));
    }
    // Two requests in one write, answered in order on the same connection.
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(read_reply(&mut stream, &mut buf, false).await.text().contains("<video"));
    let head = read_reply(&mut stream, &mut buf, true).await;
    assert_eq!(head.header("content-type"), Some("application/vnd.apple.mpegurl"));
    server.shutdown().await;
    cleanup(&dir);
}

#[tokio::test]
async fn path_traversal_never_reaches_outside_files() {
    let dir = hls_dir("hls-server-traversal").await;
    // A secret next to the served directory, and a link from inside to outside.
    let outside = dir.with_extension("secret");
    std::fs::write(&outside, b"root:x:0:0:secret").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.ts")).unwrap();
    let server = serve(dir.clone(), local(), None).await.unwrap();
    let addr = server.local_addr();
    let secret_name = outside.file_name().unwrap().to_str().unwrap().to_string();
    let targets = [
        "/../etc/passwd".to_string(),
        "/%2e%2e/".to_string(),
        "/%2e%2e/etc/passwd".to_string(),
        "/%2E%2E%2Fetc%2Fpasswd".to_string(),
        "/..%2f..%2f..%2fetc%2fpasswd".to_string(),
        "//etc/passwd".to_string(),
        "/%2F%2Fetc%2Fpasswd".to_string(),
        "/segment/../../etc/passwd".to_string(),
        "/./../etc/passwd".to_string(),
        "/..\\..\\etc\\passwd".to_string(),
        format!("/../{secret_name}"),
        "/link.ts".to_string(),
        "/%00index.m3u8".to_string(),
        "/.hidden".to_string(),
    ];
    for target in &targets {
        let r = get(addr, target).await;
        assert!(matches!(r.status, 400 | 403 | 404), "{target}: {}", r.status);
        let text = r.text();
        assert!(!text.contains("root:"), "{target} leaked a file: {text}");
    }
    assert_eq!(get(addr, "/../etc/passwd").await.status, 403);
    assert_eq!(get(addr, "/%2e%2e/").await.status, 403);
    assert_eq!(get(addr, "/link.ts").await.status, 403, "a link out of the root");
    server.shutdown().await;
    cleanup(&dir);
    let _ = std::fs::remove_file(outside);
}

#[tokio::test]
async fn token_is_required_when_set() {
    let dir = hls_dir("hls-server-token").await;
    let server = serve(dir.clone(), local(), Some("s3cret".into())).await.unwrap();
    let addr = server.local_addr();

    for target in ["/", "/index.m3u8", "/index.m3u8?token=wrong", "/index.m3u8?token=s3cre", "/segment_00001.ts"] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 401, "{target}");
        assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
        assert!(!r.text().contains("#EXTM3U"));
    }
    let wrong_bearer =
        request(addr, "GET /index.m3u8 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n")
            .await;
    assert_eq!(wrong_bearer.status, 401);

    // With the header, the playlist is served as it is on disk.
    let bearer = request(
        addr,
        "GET /index.m3u8 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(bearer.status, 200);
    assert_eq!(bearer.body, std::fs::read(dir.join("index.m3u8")).unwrap());

    // With the query, the segment URIs carry the token so a player's next requests pass.
    let query = get(addr, "/index.m3u8?token=s3cret").await;
    assert_eq!(query.status, 200);
    let text = query.text();
    let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!uris.is_empty() && uris.iter().all(|u| u.ends_with(".ts?token=s3cret")), "{text}");
    let segment = get(addr, &format!("/{}", uris[0])).await;
    assert_eq!((segment.status, segment.header("content-type")), (200, Some("video/mp2t")));

    let page = get(addr, "/?token=s3cret").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains(r#"src="index.m3u8?token=s3cret""#));
    server.shutdown().await;
    cleanup(&dir);
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let dir = hls_dir("hls-server-bad").await;
    let server = serve(dir.clone(), local(), None).await.unwrap();
    let addr = server.local_addr();
    let post = request(addr, "POST /index.m3u8 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(request(addr, "GET / HTTP/1.1\r\n\r\n").await.status, 400, "no Host");
    assert_eq!(request(addr, "NONSENSE\r\n\r\n").await.status, 400);
    assert_eq!(request(addr, "GET / HTTP/3.0\r\nHost: x\r\n\r\n").await.status, 505);
    let body = request(addr, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").await;
    assert_eq!(body.status, 400);
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n", "a".repeat(20_000));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything: ignore write errors.
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut buf = Vec::new();
    assert_eq!(read_reply(&mut stream, &mut buf, false).await.status, 431);
    server.shutdown().await;
    cleanup(&dir);
}

#[tokio::test]
async fn slowloris_is_cut_off_while_others_are_served() {
    let dir = hls_dir("hls-server-slowloris").await;
    let options = ServerOptions { header_timeout: Duration::from_secs(1), ..ServerOptions::default() };
    let server = serve_with(dir.clone(), local(), options).await.unwrap();
    let addr = server.local_addr();

    // One header byte every 100 ms: the head would take ~6 s to arrive.
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let request = b"GET /index.m3u8 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n";
        let feeder = tokio::spawn(async move {
            for byte in request {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut received = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received)).await;
        feeder.abort();
        (started.elapsed(), received)
    });

    // Meanwhile, normal clients are served promptly.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let r = get(addr, "/index.m3u8").await;
        assert_eq!(r.status, 200);
        assert!(started.elapsed() < Duration::from_millis(500), "served while the slow client dawdles");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (elapsed, received) = slow.await.unwrap();
    assert!(received.is_empty(), "the slow client got no response: {:?}", String::from_utf8_lossy(&received));
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    server.shutdown().await;
    cleanup(&dir);
}
