//! A minimal blocking HTTP/1.1 client for tests: one request per connection,
//! `Content-Length` or read-to-close bodies, nothing else. Enough to talk to
//! chromedriver and to poke our own servers (status codes, headers) without
//! a browser.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What came back: status, headers in order, body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url` with a 30 s timeout.
pub fn get(url: &str) -> io::Result<HttpResponse> {
    request("GET", url, &[], None, Duration::from_secs(30))
}

/// Sends `method url` with `headers` and an optional JSON `body`, over a
/// fresh connection (`Connection: close`), and reads the whole response.
/// Only `http://host:port/path?query` URLs. `timeout` bounds each read and
/// write, not the whole exchange.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {url}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| invalid("only http:// URLs"))?;
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(invalid("no host"));
    }
    let addr = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };

    let mut stream = TcpStream::connect(&addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n", body.len()));
    } else if matches!(method, "POST" | "PUT") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&out)?;
    stream.flush()?;
    read_response(BufReader::new(stream), method == "HEAD")
}

fn read_response(mut reader: impl BufRead, head_only: bool) -> io::Result<HttpResponse> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(bad(format!("bad status line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("bad status line {line:?}")));
    }
    let status: u16 = code.parse().map_err(|_| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside the response head".into()));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| bad(format!("bad header line {header:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut response = HttpResponse { status, headers, body: Vec::new() };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    if response.header("transfer-encoding").is_some_and(|t| !t.eq_ignore_ascii_case("identity")) {
        return Err(bad("chunked bodies are not supported".into()));
    }
    match response.header("content-length") {
        Some(len) => {
            let len: usize = len.parse().map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
            response.body.resize(len, 0);
            reader.read_exact(&mut response.body)?;
        }
        None => {
            reader.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn parses_content_length_and_close_delimited_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length:5\r\nX-A: b\r\n\r\nhelloEXTRA";
        let r = read_response(&raw[..], false).unwrap();
        assert_eq!((r.status, r.text().as_str(), r.header("x-a")), (200, "hello", Some("b")));
        let r = read_response(&b"HTTP/1.0 401 Unauthorized\n\nnope"[..], false).unwrap();
        assert_eq!((r.status, r.text().as_str()), (401, "nope"));
        let r = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..], true).unwrap();
        assert!(r.body.is_empty());
        assert!(read_response(&b"SSH-2.0\r\n\r\n"[..], false).is_err());
    }

    #[test]
    fn round_trip_over_a_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                reader.read_line(&mut head).unwrap();
            }
            let mut body = vec![0; 7];
            reader.read_exact(&mut body).unwrap();
            stream.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok").unwrap();
            (head, body)
        });
        let r =
            request("POST", &format!("http://{addr}/p?q=1"), &[], Some(b"{\"a\":1}"), Duration::from_secs(5)).unwrap();
        assert_eq!((r.status, r.text().as_str()), (201, "ok"));
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("POST /p?q=1 HTTP/1.1\r\n") && head.contains("Content-Length: 7"), "{head}");
        assert_eq!(body, b"{\"a\":1}");
    }
}
