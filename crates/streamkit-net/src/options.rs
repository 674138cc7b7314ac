//! URI option parsing shared by the network sources and sinks: durations,
//! bitrates, `host:port`, tokens and compression settings.

use std::time::Duration;

use streamkit_core::uri::{Options, Uri};
use streamkit_core::{Error, Result};

use crate::auth::Token;
use crate::codec::CompressOptions;
use crate::wire::Compression;

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (seconds.is_finite() && (0.0..=86_400.0 * 365.0).contains(&seconds)).then(|| Duration::from_secs_f64(seconds))
}

/// `8M`, `800k`, `2.5M` or plain bits per second.
pub fn parse_bitrate(text: &str) -> Option<u32> {
    let text = text.trim();
    let (number, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1e3),
        b'm' | b'M' => (&text[..text.len() - 1], 1e6),
        _ => (text, 1.0),
    };
    let bps = number.parse::<f64>().ok()? * scale;
    (bps >= 1000.0 && bps <= i32::MAX as f64).then_some(bps as u32)
}

pub(crate) fn duration(o: &mut Options<'_>, uri: &Uri, key: &'static str) -> Result<Option<Duration>> {
    match o.string(key) {
        None => Ok(None),
        Some(v) => parse_duration(v).map(Some).ok_or_else(|| {
            Error::uri(&uri.raw, format!("option '{key}={v}' is not valid: expected a duration like 500ms, 2s or 1m"))
        }),
    }
}

/// `token=SECRET` or `token_file=PATH`.
pub(crate) fn token(o: &mut Options<'_>, uri: &Uri) -> Result<Option<Token>> {
    match (o.string("token"), o.string("token_file")) {
        (Some(_), Some(_)) => Err(Error::uri(&uri.raw, "give token= or token_file=, not both")),
        (Some(t), None) => Token::new(t).map(Some).map_err(|e| Error::uri(&uri.raw, e.to_string())),
        (None, Some(path)) => Token::from_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

/// `compression=`, `quality=`, `bitrate=`, `keyframe=`.
pub(crate) fn compress_options(o: &mut Options<'_>, uri: &Uri) -> Result<CompressOptions> {
    let mut options = CompressOptions::default();
    if let Some(c) = o.string("compression") {
        options.compression =
            c.parse::<Compression>().map_err(|e| Error::uri(&uri.raw, format!("option 'compression': {e}")))?;
    }
    if let Some(q) = o.parse::<u8>("quality", "a JPEG quality from 1 to 100")? {
        if !(1..=100).contains(&q) {
            return Err(Error::uri(&uri.raw, format!("option 'quality={q}' is not valid: expected 1 to 100")));
        }
        options.jpeg_quality = q;
    }
    if let Some(b) = o.string("bitrate") {
        options.bitrate_bps = parse_bitrate(b).ok_or_else(|| {
            Error::uri(&uri.raw, format!("option 'bitrate={b}' is not valid: expected bits per second like 8M or 800k"))
        })?;
    }
    if let Some(k) = duration(o, uri, "keyframe")? {
        options.keyframe_seconds = Some(k.as_secs_f64().max(0.001));
    }
    let mentions_codec_option =
        ["quality", "bitrate", "keyframe"].iter().any(|k| uri.query.iter().any(|(q, _)| q == k));
    if mentions_codec_option && options.compression == Compression::None {
        return Err(Error::uri(
            &uri.raw,
            "quality=, bitrate= and keyframe= only apply with compression=jpeg or compression=h264",
        ));
    }
    Ok(options)
}

/// The `host:port` of a `tcp://` URI; `default_host` when the host is empty
/// (`tcp://:9000`). IPv6 hosts go in brackets (`tcp://[::1]:9000`).
pub(crate) fn host_port(uri: &Uri, default_host: Option<&str>) -> Result<(String, u16)> {
    let bad = |m: &str| Error::uri(&uri.raw, m.to_string());
    let authority =
        uri.authority().ok_or_else(|| bad("expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:9000)"))?.to_string();
    if uri.body.trim_start_matches("//").contains('/') {
        return Err(bad("a tcp:// URI has no path: expected tcp://HOST:PORT"));
    }
    let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("no port: expected tcp://HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| bad(&format!("port '{port}' is not a number from 0 to 65535")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match (host.is_empty(), default_host) {
        (false, _) => host.to_string(),
        (true, Some(d)) => d.to_string(),
        (true, None) => return Err(bad("no host: expected tcp://HOST:PORT")),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_bitrates() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_bitrate("8M"), Some(8_000_000));
        assert_eq!(parse_bitrate("800k"), Some(800_000));
        assert_eq!(parse_bitrate("2500000"), Some(2_500_000));
        assert_eq!(parse_bitrate("10"), None);
    }

    #[test]
    fn host_and_port() {
        let uri = Uri::parse("tcp://:9000").unwrap();
        assert_eq!(host_port(&uri, Some("127.0.0.1")).unwrap(), ("127.0.0.1".into(), 9000));
        assert!(host_port(&uri, None).unwrap_err().to_string().contains("no host"));
        let uri = Uri::parse("tcp://[::1]:9000").unwrap();
        assert_eq!(host_port(&uri, None).unwrap(), ("::1".into(), 9000));
        let e = host_port(&Uri::parse("tcp://host:99999").unwrap(), None).unwrap_err().to_string();
        assert!(e.contains("port '99999'"), "{e}");
        let e = host_port(&Uri::parse("tcp:host").unwrap(), None).unwrap_err().to_string();
        assert!(e.contains("tcp://HOST:PORT"), "{e}");
    }
}
