//! The smallest HTTP/1.1 that WHIP and WHEP need, on tokio: a server (one
//! request per connection, `Connection: close`) and a client for the WHEP
//! pull source.
//!
//! Bounded everywhere, for a server on a LAN rather than the open internet:
//! the request head must arrive within [`HEAD_TIMEOUT`] and fit in
//! [`MAX_HEAD_BYTES`], a body (an SDP offer) in [`MAX_BODY_BYTES`] (413
//! otherwise), and at most [`MAX_CONNECTIONS`] connections are served at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use streamkit_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Browsers' offers are 4–8 KiB; 64 KiB leaves room for many m-lines.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_CONNECTIONS: usize = 64;

/// One parsed request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// Path without the query, percent-escapes left as they are.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether the request carries `token`, as `Authorization: Bearer …` or `?token=…`.
    pub fn authorized(&self, token: Option<&str>) -> bool {
        let Some(token) = token else { return true };
        let bearer = self.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        [bearer, self.query("token")]
            .into_iter()
            .flatten()
            .any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
    }
}

/// A response; [`Response::text`] for errors keeps every refusal explained.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type".into(), content_type.into())], body: body.into() }
    }

    /// A plain-text response, e.g. `400` with the reason an offer was refused.
    pub fn text(status: u16, message: impl Into<String>) -> Response {
        let mut body = message.into();
        body.push('\n');
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The response on the wire; `HEAD` gets the head alone.
    fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        // WHIP/WHEP players run on other origins (a page on another port).
        head.push_str("Access-Control-Allow-Origin: *\r\n");
        head.push_str("Access-Control-Expose-Headers: Location, Link, ETag\r\n");
        head.push_str("Cache-Control: no-cache\r\n");
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()));
        let mut bytes = head.into_bytes();
        if with_body {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A running server; dropping it (or [`Server::shutdown`]) stops accepting.
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers every request on `listener` (already bound, non-blocking) with
/// `handler`. Must be called inside a tokio runtime.
pub fn serve_std<H, F>(listener: std::net::TcpListener, handler: H) -> Result<Server>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let addr = listener.local_addr().map_err(|e| Error::invalid(format!("HTTP listener: {e}")))?;
    let listener =
        TcpListener::from_std(listener).map_err(|e| Error::invalid(format!("HTTP listener on {addr}: {e}")))?;
    let handler = Arc::new(handler);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue; // full: dropping the stream closes it
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _permit = permit;
                handle_connection(stream, &*handler).await;
            });
        }
    });
    Ok(Server { addr, task })
}

async fn handle_connection<H, F>(mut stream: TcpStream, handler: &H)
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let (response, with_body) = match tokio::time::timeout(HEAD_TIMEOUT, read_request(&mut stream)).await {
        Err(_) => return, // too slow: close without a word
        Ok(Err(refusal)) => (refusal, true),
        Ok(Ok(request)) => {
            let with_body = request.method != "HEAD";
            (handler(request).await, with_body)
        }
    };
    let _ = tokio::time::timeout(HEAD_TIMEOUT, stream.write_all(&response.to_bytes(with_body))).await;
    let _ = stream.shutdown().await;
}

/// Reads the head and body of one request, or the response that refuses it.
async fn read_request(stream: &mut TcpStream) -> std::result::Result<Request, Response> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Response::text(431, format!("request head over {MAX_HEAD_BYTES} bytes")));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Response::text(400, "connection closed before the request head ended")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Response::text(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target)) = (start.next(), start.next()) else {
        return Err(Response::text(400, "malformed request line"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_ascii_uppercase(),
        path: path.to_string(),
        query: parse_query(query),
        ..Request::default()
    };
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request.headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = match request.header("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| Response::text(400, format!("bad Content-Length '{v}'")))?,
        None if request.header("transfer-encoding").is_some() => {
            return Err(Response::text(411, "send the body with a Content-Length (chunked bodies are not accepted)"))
        }
        None => 0,
    };
    if length > MAX_BODY_BYTES {
        return Err(Response::text(413, format!("body of {length} bytes; at most {MAX_BODY_BYTES} accepted")));
    }
    let mut body = buf[head_end + 4..].to_vec();
    body.truncate(length);
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Response::text(400, "connection closed before the body ended")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    request.body = body;
    Ok(request)
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoding; invalid escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A response from [`request`].
#[derive(Debug)]
pub struct ClientResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `http://host:port/path` split into the address to connect to and the path.
pub fn split_http_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::invalid(format!("'{url}': only http:// URLs are supported (no TLS)")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    Ok((authority, path.to_string()))
}

/// One HTTP/1.1 exchange (`Connection: close`), bounded by `timeout`.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<ClientResponse> {
    let (authority, path) = split_http_url(url)?;
    let exchange = async {
        let mut stream = TcpStream::connect(&authority).await?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        // Bounded: an answer is a few KiB.
        (&mut stream).take((MAX_HEAD_BYTES + MAX_BODY_BYTES) as u64).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::invalid(format!("{method} {url}: no response within {timeout:?}")))?
        .map_err(|e| Error::invalid(format!("{method} {url}: {e}")))?;
    parse_response(&raw).ok_or_else(|| Error::invalid(format!("{method} {url}: malformed HTTP response")))
}

fn parse_response(raw: &[u8]) -> Option<ClientResponse> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(len) = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()) {
        body.truncate(len);
    }
    Some(ClientResponse { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_from_the_header_or_the_query() {
        let mut r = Request::default();
        assert!(r.authorized(None));
        assert!(!r.authorized(Some("s3cret")));
        r.headers.push(("authorization".into(), "Bearer s3cret".into()));
        assert!(r.authorized(Some("s3cret")));
        assert!(!r.authorized(Some("other")));
        let r = Request { query: parse_query("token=a%20b"), ..Request::default() };
        assert!(r.authorized(Some("a b")));
    }

    #[test]
    fn responses_parse_plain_and_chunked() {
        let raw = b"HTTP/1.1 201 Created\r\nLocation: /whep/abc\r\nContent-Length: 3\r\n\r\nv=0";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.header("location"), &r.body[..]), (201, Some("/whep/abc"), &b"v=0"[..]));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nv=0\r\n2\r\n\r\n\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap().body, b"v=0\r\n");
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(split_http_url("http://h:9/whep").unwrap(), ("h:9".into(), "/whep".into()));
        assert_eq!(split_http_url("http://h").unwrap(), ("h:80".into(), "/".into()));
        assert!(split_http_url("https://h/").is_err());
    }
}
