//! URIs that name sources, sinks and layers, and their typed options.
//!
//! Forms: `scheme:body?key=value&…` (`test:smpte?size=1280x720`),
//! `scheme://host:port?…` (`tcp://127.0.0.1:9000`), a bare path whose
//! extension picks the scheme (`out.y4m`), and `-` for stdin/stdout.
//! Bodies and values are percent-decoded (`%3F` for a literal `?`).
//!
//! Each factory reads its options through [`Options`], one typed parser for
//! every caller (CLI, Python keyword arguments, config files); unknown keys
//! are an error that lists the known ones.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::time::Fps;

/// A parsed URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// The text as the user wrote it (for error messages).
    pub raw: String,
    /// Lower-case scheme; `""` for a bare path, `"-"` for stdin/stdout.
    pub scheme: String,
    /// Everything between the scheme's `:` and the `?`, percent-decoded
    /// (for `tcp://h:p` this is `//h:p`).
    pub body: String,
    pub query: Vec<(String, String)>,
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri> {
        let raw = text.to_string();
        if text.trim().is_empty() {
            return Err(Error::uri(text, "empty URI"));
        }
        if text == "-" {
            return Ok(Uri { raw, scheme: "-".into(), body: String::new(), query: Vec::new() });
        }
        let (head, query) = match text.split_once('?') {
            Some((h, q)) => (h, parse_query(text, q)?),
            None => (text, Vec::new()),
        };
        let (scheme, body) = match split_scheme(head) {
            Some((s, b)) => (s.to_ascii_lowercase(), b),
            None => (String::new(), head),
        };
        let body = percent_decode(body).map_err(|m| Error::uri(text, m))?;
        Ok(Uri { raw, scheme, body, query })
    }

    /// For `scheme://host:port/...` URIs: the `host:port` part.
    pub fn authority(&self) -> Option<&str> {
        let rest = self.body.strip_prefix("//")?;
        Some(rest.split('/').next().unwrap_or(rest))
    }

    /// The body's file extension, lower-cased (`out.Y4M` → `y4m`).
    pub fn extension(&self) -> Option<String> {
        let name = self.body.rsplit('/').next()?;
        let (_, ext) = name.rsplit_once('.')?;
        (!ext.is_empty()).then(|| ext.to_ascii_lowercase())
    }

    /// A copy with another scheme (used when an extension picks the scheme).
    pub fn with_scheme(&self, scheme: &str) -> Uri {
        Uri { scheme: scheme.to_string(), ..self.clone() }
    }

    pub fn options(&self) -> Options<'_> {
        Options { uri: self, asked: BTreeSet::new(), taken: vec![false; self.query.len()] }
    }

    /// Removes and returns the value of `key` (used for options that a
    /// wrapper handles before the factory sees the rest).
    pub fn take_query(&mut self, key: &str) -> Option<String> {
        let index = self.query.iter().position(|(k, _)| k == key)?;
        Some(self.query.remove(index).1)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `scheme:` needs at least two characters so `C:\x` stays a path; a scheme
/// starts with a letter and holds letters, digits, `+`, `-`, `.`.
fn split_scheme(head: &str) -> Option<(&str, &str)> {
    let (scheme, body) = head.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = scheme.len() >= 2
        && chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some((scheme, body))
}

fn parse_query(uri: &str, query: &str) -> Result<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode(s).map_err(|m| Error::uri(uri, m));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or_else(|| format!("bad percent escape at '{}'", &text[i..]))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent escapes do not form UTF-8".to_string())
}

/// Typed access to a URI's query, checked for unknown keys by [`Options::finish`].
pub struct Options<'a> {
    uri: &'a Uri,
    asked: BTreeSet<&'static str>,
    taken: Vec<bool>,
}

impl<'a> Options<'a> {
    /// The raw value of `key`, if present.
    pub fn string(&mut self, key: &'static str) -> Option<&'a str> {
        self.asked.insert(key);
        let uri = self.uri;
        let index = uri.query.iter().rposition(|(k, _)| k == key)?;
        self.taken[index] = true;
        Some(uri.query[index].1.as_str())
    }

    /// `key` parsed as `T`; an error names the key, the value and `expected`.
    pub fn parse<T: FromStr>(&mut self, key: &'static str, expected: &str) -> Result<Option<T>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::uri(&self.uri.raw, format!("option '{key}={v}' is not valid: expected {expected}"))
            }),
        }
    }

    pub fn size(&mut self, key: &'static str) -> Result<Option<(u32, u32)>> {
        Ok(self.parse::<Size>(key, "WIDTHxHEIGHT, e.g. 1280x720")?.map(|s| (s.0, s.1)))
    }

    pub fn fps(&mut self, key: &'static str) -> Result<Option<Fps>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => Fps::parse(v).map(Some).ok_or_else(|| {
                Error::uri(
                    &self.uri.raw,
                    format!("option '{key}={v}' is not valid: expected a rate like 30, 29.97 or 30000/1001"),
                )
            }),
        }
    }

    /// `true` for a bare `key`, `key=1|true|yes|on`; `false` for `0|false|no|off`.
    pub fn flag(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.string(key) {
            None => Ok(None),
            Some("" | "1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(v) => {
                Err(Error::uri(&self.uri.raw, format!("option '{key}={v}' is not valid: expected true or false")))
            }
        }
    }

    /// Fails on any query key that no accessor asked for, listing the known ones.
    pub fn finish(self) -> Result<()> {
        let unknown: Vec<&str> = self
            .uri
            .query
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|((k, _), _)| k.as_str())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known = if self.asked.is_empty() {
            "this scheme takes no options".to_string()
        } else {
            format!("known: {}", self.asked.iter().copied().collect::<Vec<_>>().join(", "))
        };
        let hints: String = unknown
            .iter()
            .filter_map(|u| closest(u, self.asked.iter().copied()).map(|s| format!("; did you mean '{s}'?")))
            .collect();
        Err(Error::uri(&self.uri.raw, format!("unknown option '{}'; {known}{hints}", unknown.join("', '"))))
    }
}

/// `1920x1080`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u32, pub u32);

impl FromStr for Size {
    type Err = Error;

    fn from_str(s: &str) -> Result<Size> {
        let bad = || Error::invalid(format!("size '{s}' is not WIDTHxHEIGHT (e.g. 1280x720)"));
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (w, h) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
        crate::frame::check_size(crate::PixelFormat::Rgba8Premul, w, h)?;
        Ok(Size(w, h))
    }
}

/// The candidate nearest to `word` by edit distance, if close enough to be a typo.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d > 0)
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + (ca != *cb) as usize).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() {
        let u = Uri::parse("test:smpte?size=1920x1080&fps=30").unwrap();
        assert_eq!((u.scheme.as_str(), u.body.as_str()), ("test", "smpte"));
        assert_eq!(u.query, vec![("size".into(), "1920x1080".into()), ("fps".into(), "30".into())]);

        let u = Uri::parse("tcp://127.0.0.1:9000?compression=h264").unwrap();
        assert_eq!(u.authority(), Some("127.0.0.1:9000"));

        let u = Uri::parse("out/clip.Y4M").unwrap();
        assert_eq!((u.scheme.as_str(), u.extension().as_deref()), ("", Some("y4m")));

        let u = Uri::parse("png:frames/%2505d.png").unwrap();
        assert_eq!(u.body, "frames/%05d.png");

        assert_eq!(Uri::parse("-").unwrap().scheme, "-");
        assert_eq!(Uri::parse("text:Frame {frame}").unwrap().body, "Frame {frame}");
        assert_eq!(Uri::parse("c:/x.y4m").unwrap().scheme, "", "one-letter prefixes are paths");
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        assert!(Uri::parse("").unwrap_err().to_string().contains("empty"));
        let e = Uri::parse("test:x?a=%zz").unwrap_err().to_string();
        assert!(e.contains("percent escape") && e.contains("test:x?a=%zz"), "{e}");
    }

    #[test]
    fn options_are_typed_and_checked() {
        let u = Uri::parse("test:smpte?sze=10x10&fps=abc&live").unwrap();
        let mut o = u.options();
        assert_eq!(o.size("size").unwrap(), None);
        let e = o.fps("fps").unwrap_err().to_string();
        assert!(e.contains("fps=abc") && e.contains("30000/1001"), "{e}");
        assert_eq!(o.flag("live").unwrap(), Some(true));
        let e = o.finish().unwrap_err().to_string();
        assert!(e.contains("unknown option 'sze'") && e.contains("known: fps, live, size"), "{e}");
        assert!(e.contains("did you mean 'size'?"), "{e}");

        let u = Uri::parse("test:?size=99999x10").unwrap();
        assert!(u.options().size("size").is_err());
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("hsl", ["file", "hls", "test"]), Some("hls"));
        assert_eq!(closest("zzzzzz", ["file", "hls"]), None);
    }
}
