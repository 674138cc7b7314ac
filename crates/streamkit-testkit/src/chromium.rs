//! Headless Chromium for tests, driven through chromedriver's plain HTTP API
//! (W3C WebDriver): no Selenium, no async runtime, just [`crate::http`] and
//! serde_json.
//!
//! ```no_run
//! use streamkit_testkit::chromium::Browser;
//! let Some(browser) = Browser::launch() else { return }; // skipped: not installed (panics with CI=true)
//! browser.goto("http://127.0.0.1:8080/");
//! let t = browser.eval("return document.getElementById('video').currentTime");
//! browser.screenshot_png(std::path::Path::new("page.png"));
//! // dropping `browser` ends the session and kills chromedriver and every Chromium process
//! ```
//!
//! Playback must be checked in real time: `--virtual-time-budget` stalls HLS
//! in Chromium, so it is never passed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http;

/// Debian's Chromium (its launcher script; it `exec`s the real binary).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Looked up on `PATH` (Debian's `chromium-driver` installs `/usr/bin/chromedriver`).
pub const CHROMEDRIVER: &str = "chromedriver";

/// Flags every session gets (plus `--user-data-dir` with a fresh profile).
/// Headless, no GPU, no sandbox (CI runs as root), no network chatter, and
/// autoplay without a user gesture so that `<video autoplay>` starts.
pub const DEFAULT_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,720",
];

/// Timeout of each HTTP exchange with chromedriver; longer than the page
/// load and script timeouts set on the session, so that those fire first.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
const PAGE_LOAD_TIMEOUT_MS: u64 = 30_000;
const SCRIPT_TIMEOUT_MS: u64 = 30_000;

/// A failed WebDriver command: the HTTP status (0 when the exchange itself
/// failed) and the W3C error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebDriverError {
    pub status: u16,
    /// e.g. `javascript error`, `no such element`, `timeout` (or `transport`).
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebDriver {} ({}): {}", self.error, self.status, self.message)
    }
}

impl std::error::Error for WebDriverError {}

/// Whether Chromium and chromedriver are installed. Missing + `ci` panics;
/// missing otherwise prints a note (the caller skips).
pub fn available(ci: bool) -> bool {
    let chromium = is_executable(Path::new(CHROMIUM));
    let driver = find_on_path(CHROMEDRIVER).is_some();
    if chromium && driver {
        return true;
    }
    let missing = match (chromium, driver) {
        (false, false) => format!("{CHROMIUM} and {CHROMEDRIVER}"),
        (false, true) => CHROMIUM.to_string(),
        _ => CHROMEDRIVER.to_string(),
    };
    if ci {
        panic!("{missing} required in CI (CI=true) but not installed (scripts/test installs chromium and chromium-driver as root)");
    }
    eprintln!("note: {missing} not installed; skipping the browser check");
    false
}

/// One headless Chromium with its own chromedriver and a fresh profile.
/// Independent instances may run side by side (each has its own driver
/// port and profile). Dropping it ends the session, kills chromedriver and
/// every process in its process group (Chromium and its helpers), and
/// removes the profile.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT` of chromedriver.
    base: String,
    session: Option<String>,
    browser_pid: Option<u32>,
    dir: PathBuf,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.base)
            .field("session", &self.session)
            .field("browser_pid", &self.browser_pid)
            .finish()
    }
}

impl Browser {
    /// Starts Chromium with [`DEFAULT_ARGS`]. `None` when Chromium or
    /// chromedriver is missing (a panic with `CI=true`); panics when they
    /// are installed but do not start.
    pub fn launch() -> Option<Browser> {
        Browser::launch_with(&[])
    }

    /// [`Browser::launch`] with more Chromium flags, e.g.
    /// `--use-fake-device-for-media-stream`, `--use-fake-ui-for-media-stream`.
    pub fn launch_with(extra_args: &[&str]) -> Option<Browser> {
        if !available(crate::in_ci()) {
            return None;
        }
        Some(Browser::start(extra_args).unwrap_or_else(|e| panic!("starting headless Chromium: {e}")))
    }

    fn start(extra_args: &[&str]) -> Result<Browser, String> {
        static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "streamkit-chromium-{}-{}",
            std::process::id(),
            LAUNCHES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).map_err(|e| format!("creating {}: {e}", profile.display()))?;
        let log = dir.join("chromedriver.log");

        // Its own process group, so that Drop can kill Chromium's whole tree
        // with it (Chromium's processes stay in the driver's group).
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("running {CHROMEDRIVER}: {e}"))?;
        let stdout = driver.stdout.take().expect("piped");
        let mut browser = Browser { driver, base: String::new(), session: None, browser_pid: None, dir };

        // "ChromeDriver was started successfully on port 45947." on stdout.
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    let _ = port_tx.send(port.trim_end_matches('.').trim().parse::<u16>().ok());
                }
            } // then drain until chromedriver exits, so it never blocks on a full pipe
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .ok_or_else(|| format!("chromedriver did not report its port; log: {}", browser.log_tail()))?;
        browser.base = format!("http://127.0.0.1:{port}");

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser.send("GET", "/status", None).is_ok_and(|v| v["ready"] == true);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("chromedriver on port {port} never became ready; log: {}", browser.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }

        let mut args: Vec<String> = DEFAULT_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": PAGE_LOAD_TIMEOUT_MS, "script": SCRIPT_TIMEOUT_MS },
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                }
            }
        });
        let created = browser
            .send("POST", "/session", Some(capabilities))
            .map_err(|e| format!("creating a session: {e}; log: {}", browser.log_tail()))?;
        let session = created["sessionId"].as_str().ok_or_else(|| format!("no sessionId in {created}"))?;
        browser.session = Some(session.to_string());
        browser.browser_pid = created["capabilities"]["goog:processID"].as_u64().map(|p| p as u32);
        Ok(browser)
    }

    /// Opens `url` and waits for its `load` event (30 s at most).
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url })).unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Runs `js` as the body of a function in the page (so write `return …`)
    /// and returns its result as JSON; a returned promise is awaited. Panics
    /// when the script throws.
    pub fn eval(&self, js: &str) -> Value {
        self.try_eval(js).unwrap_or_else(|e| panic!("{e}\nscript: {js}"))
    }

    /// [`Browser::eval`] that returns the error (e.g. `javascript error`).
    pub fn try_eval(&self, js: &str) -> Result<Value, WebDriverError> {
        self.command("POST", "/execute/sync", json!({ "script": js, "args": [] }))
    }

    /// Runs `js` with a completion callback as its last argument
    /// (`const done = arguments[arguments.length - 1]; … done(result)`),
    /// waiting up to 30 s for it to be called.
    pub fn eval_async(&self, js: &str) -> Value {
        self.command("POST", "/execute/async", json!({ "script": js, "args": [] }))
            .unwrap_or_else(|e| panic!("{e}\nscript: {js}"))
    }

    /// Evaluates `js` every 100 ms until it returns something truthy (not
    /// `null`, `false`, `0` or `""`) and returns that; `None` after `timeout`.
    pub fn wait_for(&self, js: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(js);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Some(value);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the visible viewport, as bytes.
    pub fn screenshot(&self) -> Vec<u8> {
        let value = self.command("GET", "/screenshot", Value::Null).unwrap_or_else(|e| panic!("screenshot: {e}"));
        let text = value.as_str().unwrap_or_else(|| panic!("screenshot returned {value}"));
        base64_decode(text).unwrap_or_else(|| panic!("screenshot is not base64"))
    }

    /// Writes [`Browser::screenshot`] to `path`.
    pub fn screenshot_png(&self, path: &Path) {
        std::fs::write(path, self.screenshot()).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The Chromium browser process (as chromedriver reports it).
    pub fn browser_pid(&self) -> Option<u32> {
        self.browser_pid
    }

    /// The chromedriver process.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// A session command: `method /session/{id}{path}` with `body` (`Null`
    /// sends none); returns the response's `value`.
    pub fn command(&self, method: &str, path: &str, body: Value) -> Result<Value, WebDriverError> {
        let session = self.session.as_deref().expect("a session is open");
        self.send(method, &format!("/session/{session}{path}"), (!body.is_null()).then_some(body))
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let transport = |message: String| WebDriverError { status: 0, error: "transport".into(), message };
        let body = body.map(|b| b.to_string());
        let response = http::request(
            method,
            &format!("{}{path}", self.base),
            &[],
            body.as_deref().map(str::as_bytes),
            COMMAND_TIMEOUT,
        )
        .map_err(|e| transport(format!("{method} {path}: {e}")))?;
        let parsed: Value = serde_json::from_slice(&response.body)
            .map_err(|e| transport(format!("{method} {path}: {e}: {}", response.text())))?;
        let value = parsed.get("value").cloned().unwrap_or(Value::Null);
        if response.status == 200 {
            return Ok(value);
        }
        let field = |name: &str| value[name].as_str().unwrap_or("").to_string();
        Err(WebDriverError { status: response.status, error: field("error"), message: field("message") })
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Chromium quits cleanly when its session ends.
            let _ = self.send("DELETE", &format!("/session/{session}"), None);
        }
        // Then the whole process group: chromedriver and whatever of Chromium
        // is still there. The driver is our unreaped child, so its id (the
        // group id) cannot have been reused.
        // SAFETY: kill(2) on a process group we created; no memory involved.
        unsafe { libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.driver.wait();
        // Chromium's crash handler (its own session) may still be writing
        // into the profile for a moment.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether `pid` is gone or a zombie (exited, not yet reaped by its parent).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

/// Standard base64 (with or without padding; whitespace ignored).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let digits = digits.strip_suffix(b"==").or_else(|| digits.strip_suffix(b"=")).unwrap_or(&digits);
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = acc << 6 | value(c)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64_decode("iVBORw0K\nGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("Zm9v!").is_none() && base64_decode("Z").is_none());
    }

    #[test]
    fn missing_tools_skip_or_fail_in_ci() {
        // Only meaningful where they are missing; where they are installed both calls say so.
        if available(false) {
            assert!(available(true));
        } else {
            assert!(std::panic::catch_unwind(|| available(true)).is_err());
        }
    }

    /// The client against the real browser; leaves no process behind.
    #[test]
    fn drives_chromium_and_cleans_up() {
        let Some(browser) = Browser::launch() else { return };
        browser.goto("data:text/html,<title>t</title><p id=p style='font-size:80px'>hello</p>");
        assert_eq!(browser.eval("return document.getElementById('p').textContent + 1"), json!("hello1"));
        assert_eq!(browser.eval("return new Promise(r => setTimeout(() => r({a: [1, 2]}), 50))"), json!({"a": [1, 2]}));
        assert_eq!(browser.eval_async("const done = arguments[0]; setTimeout(() => done(42), 50)"), json!(42));
        let err = browser.try_eval("throw new Error('boom')").unwrap_err();
        assert!(err.error == "javascript error" && err.message.contains("boom"), "{err}");
        assert_eq!(browser.wait_for("return window.__late", Duration::from_millis(300)), None);
        browser.eval("setTimeout(() => window.__late = 'yes', 100)");
        assert_eq!(browser.wait_for("return window.__late", Duration::from_secs(5)), Some(json!("yes")));
        let png = browser.screenshot();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "{} bytes", png.len());

        let (driver, chromium) = (browser.driver_pid(), browser.browser_pid().expect("chromedriver reports the pid"));
        let profile = browser.dir.clone();
        assert!(!process_gone(chromium) && !process_gone(driver));
        drop(browser);
        assert!(process_gone(driver), "chromedriver {driver} still runs");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !process_gone(chromium) || !live_in_group(driver).is_empty() {
            let left = live_in_group(driver);
            assert!(Instant::now() < deadline, "chromium {chromium} or its processes {left:?} still run");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!profile.exists(), "{} was removed", profile.display());
    }

    /// Processes (not zombies) whose process group is `pgid`.
    fn live_in_group(pgid: u32) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
                let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().collect());
                // state, ppid, pgrp
                fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X")
            })
            .collect()
    }
}
