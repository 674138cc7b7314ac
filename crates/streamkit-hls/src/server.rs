//! A tiny HTTP/1.1 static file server for an HLS directory, on tokio.
//!
//! Made for watching a stream from a browser on the same machine or LAN, not
//! for the open internet:
//!
//! * `GET` and `HEAD` only (405 otherwise), no request bodies, keep-alive,
//!   pipelining tolerated;
//! * the request head must arrive within [`ServerOptions::header_timeout`]
//!   (counted from the moment the server starts waiting for it, so idle
//!   keep-alive connections and slowloris clients are both closed) and fit in
//!   [`ServerOptions::max_request_bytes`] (431 otherwise); at most
//!   [`ServerOptions::max_connections`] connections at once;
//! * paths are percent-decoded, `..` is refused (403), dot files and `.tmp`
//!   files (the writer's half-written files) are not served, and the
//!   canonical path must stay inside the canonical root (403): symbolic links
//!   out of it are refused;
//! * `Content-Type` from the extension (`application/vnd.apple.mpegurl`,
//!   `video/mp2t`, `video/mp4`, `text/html`), `Cache-Control: no-cache`,
//!   `Access-Control-Allow-Origin: *`;
//! * an optional token, as `?token=…` or `Authorization: Bearer …` (401
//!   otherwise). A playlist fetched with `?token=` has the token appended to
//!   the URIs in it, so a player's segment requests carry it too;
//! * `/` is a built-in player page: a plain `<video>` element (browsers with
//!   native HLS play it) and a status line.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use streamkit_core::error::IoContext;
use streamkit_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::playlist::civil_from_days;

/// Limits and the optional token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Required as `?token=` or `Authorization: Bearer`, when set.
    pub token: Option<String>,
    /// Time a client has to send a whole request head (default 10 s).
    pub header_timeout: Duration,
    /// Time a client has to take a whole response (default 60 s).
    pub write_timeout: Duration,
    /// Largest request head accepted (default 8 KiB).
    pub max_request_bytes: usize,
    /// Connections served at once; more are closed on accept (default 256).
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            token: None,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
            max_request_bytes: 8 * 1024,
            max_connections: 256,
        }
    }
}

/// A running server. Dropping it stops the server too.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection and waits for that to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves `dir` on `addr` (pass `127.0.0.1:…` to stay local) with default
/// limits, requiring `token` when given.
pub async fn serve(dir: PathBuf, addr: SocketAddr, token: Option<String>) -> Result<ServerHandle> {
    serve_with(dir, addr, ServerOptions { token, ..ServerOptions::default() }).await
}

/// [`serve`] with explicit [`ServerOptions`]. Creates `dir` if it is missing
/// (the writer may start after the server).
pub async fn serve_with(dir: PathBuf, addr: SocketAddr, options: ServerOptions) -> Result<ServerHandle> {
    if options.token.as_deref() == Some("") {
        return Err(Error::invalid("HLS server: the token must not be empty"));
    }
    if options.max_connections == 0 || options.max_request_bytes < 64 {
        return Err(Error::invalid("HLS server: max_connections must be positive and max_request_bytes at least 64"));
    }
    tokio::fs::create_dir_all(&dir).await.context(|| format!("creating {}", dir.display()))?;
    let root = tokio::fs::canonicalize(&dir).await.context(|| format!("resolving {}", dir.display()))?;
    let listener = TcpListener::bind(addr).await.context(|| format!("binding HLS server to {addr}"))?;
    let local_addr = listener.local_addr().context(|| "reading the HLS server's address".into())?;
    let (stop, stop_rx) = watch::channel(false);
    let state = Arc::new(State { root, options });
    tracing::info!("HLS server on http://{local_addr}/ serving {}", state.root.display());
    let task = tokio::spawn(accept_loop(listener, state, stop_rx));
    Ok(ServerHandle { local_addr, stop, task: Some(task) })
}

struct State {
    root: PathBuf,
    options: ServerOptions,
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= state.options.max_connections {
                        tracing::warn!("HLS server: {peer} refused, {} connections open", connections.len());
                        continue; // dropping the stream closes it
                    }
                    let _ = stream.set_nodelay(true);
                    connections.spawn(handle_connection(stream, peer, state.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("HLS server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    connections.shutdown().await;
    tracing::debug!("HLS server stopped");
}

/// A parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn wants_keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let has = |token: &str| connection.split(',').any(|t| t.trim() == token);
        if self.http10 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Body,
    extra_headers: Vec<(&'static str, String)>,
    close: bool,
}

enum Body {
    Bytes(Vec<u8>),
    File(tokio::fs::File, u64),
}

impl Response {
    fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, body: Body::Bytes(body), extra_headers: Vec::new(), close: false }
    }

    fn error(status: u16) -> Response {
        Response::bytes(status, "text/plain; charset=utf-8", format!("{status} {}\n", reason(status)).into_bytes())
    }

    fn closing(mut self) -> Response {
        self.close = true;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

enum HeadError {
    TooLarge,
    Closed,
}

async fn handle_connection(mut stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let read = tokio::time::timeout(
            state.options.header_timeout,
            read_head(&mut stream, &mut buf, state.options.max_request_bytes),
        )
        .await;
        let head_len = match read {
            Err(_) => {
                tracing::debug!("HLS server: {peer} sent no complete request in time; closing");
                return;
            }
            Ok(Err(HeadError::Closed)) => return,
            Ok(Err(HeadError::TooLarge)) => {
                let _ = write_response(&mut stream, Response::error(431).closing(), false).await;
                linger_close(stream).await;
                return;
            }
            Ok(Ok(n)) => n,
        };
        let head: Vec<u8> = buf.drain(..head_len).collect();
        let (response, head_only) = match parse_head(&head) {
            Ok(request) => {
                let head_only = request.method == "HEAD";
                let mut response = respond(&state, &request).await;
                if !request.wants_keep_alive() {
                    response.close = true;
                }
                (response, head_only)
            }
            Err(status) => (Response::error(status).closing(), false),
        };
        let close = response.close;
        let written =
            tokio::time::timeout(state.options.write_timeout, write_response(&mut stream, response, head_only)).await;
        match written {
            Ok(Ok(true)) if !close => {}
            Ok(Ok(true)) => return linger_close(stream).await,
            Err(_) => {
                tracing::debug!("HLS server: {peer} did not take the response in time; closing");
                return;
            }
            Ok(_) => return,
        }
    }
}

/// Closes after a response: sends FIN, then reads and discards what the
/// client still sends for a moment, so that unread request bytes do not
/// turn the close into a reset that could destroy the response in flight.
async fn linger_close(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 256 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
}

/// Reads until `buf` holds a whole request head; returns its length.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, max: usize) -> Result<usize, HeadError> {
    let mut searched = 0;
    loop {
        if let Some(end) = find_head_end(buf, searched) {
            return Ok(end);
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
        searched = buf.len().saturating_sub(3);
        let mut chunk = [0u8; 2048];
        let room = (max - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// End of the head (just past the empty line), accepting CRLF or bare LF.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    // Leading empty lines before the request line are skipped (RFC 9112 §2.2).
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let from = from.max(start);
    (from..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            return None;
        }
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

fn parse_head(head: &[u8]) -> Result<Request, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => return Err(505),
        _ => return Err(400),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(400);
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            return Err(400); // obsolete line folding
        }
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) || headers.len() >= 100 {
            return Err(400);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let request = Request { method: method.to_string(), target: target.to_string(), http10, headers };
    if !http10 && request.header("host").is_none() {
        return Err(400);
    }
    Ok(request)
}

async fn respond(state: &State, request: &Request) -> Response {
    // No request bodies: a client that sends one cannot be kept in sync.
    let has_body = request.header("transfer-encoding").is_some()
        || request.header("content-length").is_some_and(|l| l.trim() != "0");
    if request.method != "GET" && request.method != "HEAD" {
        let mut r = Response::error(405).closing();
        r.extra_headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if has_body {
        return Response::error(400).closing();
    }
    // origin-form, or absolute-form from a proxy-minded client.
    let mut target = request.target.as_str();
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            target = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    if !target.starts_with('/') {
        return Response::error(400);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut token_in_query = false;
    if let Some(token) = state.options.token.as_deref() {
        let from_query = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| *k == "token")
            .any(|(_, v)| percent_decode(v).is_some_and(|v| constant_time_eq(&v, token.as_bytes())));
        let from_header = request.header("authorization").is_some_and(|a| {
            let (scheme, value) = a.split_once(' ').unwrap_or((a, ""));
            scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(value.trim().as_bytes(), token.as_bytes())
        });
        if !from_query && !from_header {
            let mut r = Response::error(401);
            r.extra_headers.push(("WWW-Authenticate", "Bearer realm=\"streamkit\"".into()));
            return r;
        }
        token_in_query = from_query;
    }

    let Some(decoded) = percent_decode(path) else { return Response::error(400) };
    let Ok(decoded) = String::from_utf8(decoded) else { return Response::error(400) };
    if decoded.contains('\0') {
        return Response::error(400);
    }
    let mut relative = PathBuf::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return Response::error(403),
            p if p.starts_with('.') || p.ends_with(".tmp") => return Response::error(404),
            p => relative.push(p),
        }
    }
    // Only plain names may reach the file system: nothing absolute, no prefixes.
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Response::error(403);
    }
    if relative.as_os_str().is_empty() {
        let token = state.options.token.as_deref().filter(|_| token_in_query);
        return Response::bytes(200, "text/html; charset=utf-8", player_page(token).into_bytes());
    }

    let full = state.root.join(&relative);
    let canonical = match tokio::fs::canonicalize(&full).await {
        Ok(p) => p,
        Err(_) => return Response::error(404),
    };
    if !canonical.starts_with(&state.root) {
        return Response::error(403);
    }
    let file = match tokio::fs::File::open(&canonical).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Response::error(403),
        Err(_) => return Response::error(404),
    };
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return Response::error(404),
    };
    let content_type = content_type(&canonical);
    if content_type == PLAYLIST_TYPE && token_in_query {
        let token = state.options.token.as_deref().unwrap_or_default();
        let mut file = file;
        let mut text = String::new();
        if file.read_to_string(&mut text).await.is_err() {
            return Response::error(500);
        }
        return Response::bytes(200, content_type, append_token_to_uris(&text, token).into_bytes());
    }
    Response { status: 200, content_type, body: Body::File(file, len), extra_headers: Vec::new(), close: false }
}

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "m3u8" => PLAYLIST_TYPE,
        "ts" => "video/mp2t",
        "mp4" | "m4s" => "video/mp4",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Writes the response; returns whether the body was sent in full.
async fn write_response(stream: &mut TcpStream, response: Response, head_only: bool) -> std::io::Result<bool> {
    let len = match &response.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, len) => *len,
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {len}\r\nCache-Control: no-cache\r\n\
         Access-Control-Allow-Origin: *\r\nX-Content-Type-Options: nosniff\r\nConnection: {}\r\n",
        response.status,
        reason(response.status),
        http_date(streamkit_core::time::realtime_ns() / 1_000_000_000),
        response.content_type,
        if response.close { "close" } else { "keep-alive" },
    );
    for (name, value) in &response.extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    match response.body {
        Body::Bytes(body) => {
            if !head_only {
                out.extend_from_slice(&body);
            }
            stream.write_all(&out).await?;
        }
        Body::File(file, len) => {
            stream.write_all(&out).await?;
            if !head_only {
                let sent = tokio::io::copy(&mut file.take(len), stream).await?;
                if sent != len {
                    return Ok(false); // the file shrank: the connection is out of step
                }
            }
        }
    }
    stream.flush().await?;
    Ok(true)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[m as usize - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds `token=…` to every URI line and `URI="…"` attribute of a playlist.
fn append_token_to_uris(playlist: &str, token: &str) -> String {
    let param = format!("token={}", percent_encode(token));
    let with_token = |uri: &str| format!("{uri}{}{param}", if uri.contains('?') { '&' } else { '?' });
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in playlist.lines() {
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(&with_token(line.trim_end()));
        } else if let Some(start) = line.find("URI=\"").map(|i| i + 5) {
            match line[start..].find('"') {
                Some(len) => {
                    out.push_str(&line[..start]);
                    out.push_str(&with_token(&line[start..start + len]));
                    out.push_str(&line[start + len..]);
                }
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The built-in player: a `<video>` on `index.m3u8` and a status line.
fn player_page(token: Option<&str>) -> String {
    let src = match token {
        Some(t) => format!("index.m3u8?token={}", percent_encode(t)),
        None => "index.m3u8".to_string(),
    };
    PLAYER_PAGE.replace("{SRC}", &src)
}

const PLAYER_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamkit HLS</title>
<style>
body { margin: 0; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
video { display: block; width: 100%; max-height: 90vh; background: #000; }
#status { padding: 8px 12px; font-family: ui-monospace, monospace; white-space: pre-wrap; }
</style>
</head>
<body>
<video id="video" src="{SRC}" controls autoplay muted playsinline></video>
<div id="status">loading…</div>
<script>
"use strict";
const video = document.getElementById("video");
const status = document.getElementById("status");
let problem = video.canPlayType("application/vnd.apple.mpegurl") ? "" : "this browser reports no native HLS support";
function show() {
  const b = video.buffered;
  const ahead = b.length ? Math.max(0, b.end(b.length - 1) - video.currentTime).toFixed(1) : "0.0";
  status.textContent = "time " + video.currentTime.toFixed(2) + " s, buffered ahead " + ahead + " s" +
    (video.paused ? ", paused" : "") + (problem ? "\nerror: " + problem : "");
}
video.addEventListener("error", () => {
  const e = video.error;
  problem = e ? "media error " + e.code + (e.message ? ": " + e.message : "") : "unknown error";
  show();
});
// Browsers fire "stalled" when the network goes idle, even with everything buffered.
video.addEventListener("stalled", () => {
  if (video.readyState < video.HAVE_FUTURE_DATA) { problem = problem || "stalled"; show(); }
});
video.addEventListener("playing", () => { if (problem === "stalled") problem = ""; show(); });
video.addEventListener("timeupdate", () => { if (problem === "stalled") problem = ""; show(); });
setInterval(show, 500);
show();
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let r = parse_head(b"GET /a.ts?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/a.ts?x=1"));
        assert!(!r.wants_keep_alive());
        let r = parse_head(b"\r\nHEAD / HTTP/1.0\n\n").unwrap();
        assert!(r.http10 && !r.wants_keep_alive());
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n").unwrap_err(), 400, "no Host");
        assert_eq!(parse_head(b"GET / HTTP/2.0\r\n\r\n").unwrap_err(), 505);
        assert_eq!(parse_head(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err(), 400);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n").unwrap_err(), 400);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET", 0), Some(27));
        assert_eq!(find_head_end(b"\r\n\r\nGET / HTTP/1.1\r\n", 0), None);
    }

    #[test]
    fn dates_and_escapes() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(percent_decode("%2e%2E/a%20b").unwrap(), b"../a b");
        assert!(percent_decode("%2").is_none() && percent_decode("%zz").is_none());
        assert_eq!(percent_encode("a b/+"), "a%20b%2F%2B");
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }

    #[test]
    fn playlist_uris_get_the_token() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\nsegment_00000.ts\nx.ts?a=1\n";
        assert_eq!(
            append_token_to_uris(text, "s e"),
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?token=s%20e\"\n#EXTINF:2.000,\nsegment_00000.ts?token=s%20e\n\
             x.ts?a=1&token=s%20e\n"
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("index.m3u8")), "application/vnd.apple.mpegurl");
        assert_eq!(content_type(Path::new("a.TS")), "video/mp2t");
        assert_eq!(content_type(Path::new("a.m4s")), "video/mp4");
        assert_eq!(content_type(Path::new("init.mp4")), "video/mp4");
        assert_eq!(content_type(Path::new("p.html")), "text/html; charset=utf-8");
    }
}
