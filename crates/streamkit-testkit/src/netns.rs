//! Test hosts on one machine: network namespaces joined by veth pairs, with
//! processes started inside them. Everything a [`Lab`] made (namespaces,
//! links, processes) is removed when it drops, also when a test fails.
//!
//! Needs root and iproute2's `ip`: [`available`] says whether a test can
//! run, and under `CI=true` a missing `ip` or root is a failure, not a skip.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Root and `ip` present; else a note and `false` (a panic under `CI=true`).
pub fn available(what: &str) -> bool {
    let ci = crate::in_ci();
    // `ip` has no `-version` (the testkit's probe); ask it with -V.
    if !Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success()) {
        if ci {
            panic!("ip (iproute2) is required in CI (CI=true) for {what} but is not on PATH");
        }
        eprintln!("note: ip (iproute2) is not on PATH; skipping {what}");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if ci {
            panic!("{what} needs root in CI (network namespaces)");
        }
        eprintln!("note: not root; skipping {what} (needs network namespaces)");
        return false;
    }
    true
}

/// Runs `ip ARGS`, panicking with its message on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Namespaces, links and processes of one test; removed on drop.
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// `name` should be short: interface names have at most 15 characters.
    pub fn new(name: &str) -> Lab {
        Lab { tag: format!("{name}{}", std::process::id() % 100_000), namespaces: Vec::new(), children: Vec::new() }
    }

    /// This lab's unique tag, for naming more devices.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A new namespace with loopback up; returns its name.
    pub fn ns(&mut self, suffix: &str) -> String {
        let name = format!("sk{}{suffix}", self.tag);
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair with one end in each namespace; returns the two names.
    pub fn veth(&mut self, a: &str, a_suffix: &str, b: &str, b_suffix: &str) -> (String, String) {
        let (va, vb) = (format!("v{}{a_suffix}", self.tag), format!("v{}{b_suffix}", self.tag));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", a]);
        ip(&["link", "set", &vb, "netns", b]);
        (va, vb)
    }

    /// Gives `dev` in `ns` an address (`10.0.0.1/24`), if any, and brings it up.
    pub fn up(&self, ns: &str, dev: &str, addr: Option<&str>) {
        if let Some(addr) = addr {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        }
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }

    /// A link between two namespaces with an address on each end.
    pub fn link(&mut self, a: &str, a_addr: &str, b: &str, b_addr: &str, suffix: &str) {
        let (va, vb) = self.veth(a, &format!("{suffix}a"), b, &format!("{suffix}b"));
        self.up(a, &va, Some(a_addr));
        self.up(b, &vb, Some(b_addr));
    }

    /// Runs `cmd` in namespace `ns`; its stdout and stderr lines go to the
    /// returned receiver.
    pub fn spawn(&mut self, label: &str, ns: &str, cmd: &[&str], env: &[(&str, String)]) -> mpsc::Receiver<String> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).args(cmd).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        self.children.push((label.to_string(), child));
        rx
    }

    /// Waits up to `timeout` for the process `label` to exit; its exit code
    /// (`None` if it is still running and was killed, or died by a signal).
    pub fn wait(&mut self, label: &str, timeout: Duration) -> Option<i32> {
        let i = self.children.iter().position(|(l, _)| l == label)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.children[i].1.try_wait() {
                self.children.remove(i);
                return status.code();
            }
            if Instant::now() >= deadline {
                self.kill(label);
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self, label: &str) {
        if let Some(i) = self.children.iter().position(|(l, _)| l == label) {
            let (_, mut child) = self.children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes the veth ends in it (and their peers).
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Waits up to `timeout` for a line matching `pred`, collecting all lines
/// into `seen` (for failure messages).
pub fn wait_line(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if pred(&line) {
                    return Some(line);
                }
            }
            Err(_) => return None,
        }
    }
    None
}
