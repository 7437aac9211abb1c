//! Helpers shared by the integration tests: fixtures, probe runs, reading a sandbox's output
//! and waiting for its exit, all bounded in time so that a broken sandbox fails a test instead
//! of hanging it.

#![allow(dead_code)]

use lambent_sandbox::{Host, HostOptions, Isolation, Sandbox, SandboxSpec};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the closure returned without sending"),
        },
    }
}

/// A unique sandbox id for this test process.
pub fn unique_id(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A host, a code directory (with `hello.txt`, mode 0777 so that only the read-only mount can
/// stop writes), a runtime directory and a state directory, all in one temporary directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub host: Host,
    pub code: PathBuf,
    pub runtime: PathBuf,
    pub state: PathBuf,
}

impl Fixture {
    pub fn new(isolation: Isolation) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let code = tmp.path().join("code");
        let runtime = tmp.path().join("runtime");
        let state = tmp.path().join("state");
        for d in [&code, &runtime] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(code.join("hello.txt"), "hello from the code dir\n").unwrap();
        std::fs::write(runtime.join("client.txt"), "runtime client\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&code, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let host = match Host::detect(HostOptions {
            isolation,
            state_dir: state.clone(),
            layers: lambent_sandbox::Layers::ALL,
            sdk_dir: None,
        }) {
            Ok(h) => h,
            Err(e) => panic!(
                "full-isolation tests need root on linux with cgroups (memory, pids, freezer); \
                 run them as root, as CI does. Host::detect said: {e}"
            ),
        };
        Fixture {
            tmp,
            host,
            code,
            runtime,
            state,
        }
    }

    /// Full isolation; fails fast, saying why, where it is unavailable.
    pub fn full() -> Fixture {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "full-isolation tests need root (effective uid is {euid}); run them as root, as CI does"
        );
        Fixture::new(Isolation::Full)
    }

    pub fn spec(&self, name: &str, argv: &[&str]) -> SandboxSpec {
        SandboxSpec {
            id: unique_id(name),
            code_dir: self.code.clone(),
            runtime_dir: self.runtime.clone(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            memory_mb: 256,
            pids_max: 128,
            tmp_mb: 16,
            allow_network: false,
            interpreter: None,
            aws_endpoint: false,
            namespace: None,
        }
    }

    /// A spec running `script` with bash.
    pub fn bash(&self, name: &str, script: &str) -> SandboxSpec {
        self.spec(name, &["/usr/bin/bash", "-c", script])
    }
}

/// Waits until `fd` is readable (or hung up), at most `timeout`. True if it is.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0
}

/// The init process's exit within `timeout`: true if it exited.
pub fn wait_exit(sb: &Sandbox, timeout: Duration) -> bool {
    wait_readable(sb.pidfd(), timeout)
}

/// Reads the output pipe into a string.
pub struct Output {
    fd: OwnedFd,
    pub text: String,
    pub eof: bool,
}

impl Output {
    pub fn of(sb: &mut Sandbox) -> Output {
        Output {
            fd: sb.take_output().expect("output not taken yet"),
            text: String::new(),
            eof: false,
        }
    }

    /// Reads what is there now, without waiting.
    pub fn drain(&mut self) -> usize {
        let mut total = 0;
        let mut buf = [0u8; 65536];
        loop {
            // SAFETY: reading into a stack buffer from a descriptor we own.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                self.text
                    .push_str(&String::from_utf8_lossy(&buf[..n as usize]));
                total += n as usize;
            } else {
                if n == 0 {
                    self.eof = true;
                }
                return total;
            }
        }
    }

    /// Reads until `pattern` appears or `timeout` passes; true if it appeared.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if self.text.contains(pattern) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.eof {
                return false;
            }
            use std::os::fd::AsFd;
            wait_readable(self.fd.as_fd(), left.min(Duration::from_millis(50)));
        }
    }

    /// Reads until end-of-file (every writer gone) or `timeout`. Panics on timeout.
    pub fn read_to_end(&mut self, timeout: Duration) -> &str {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            self.drain();
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() || self.eof,
                "no end-of-file within {timeout:?}; output so far:\n{}",
                self.text
            );
            use std::os::fd::AsFd;
            wait_readable(self.fd.as_fd(), left.min(Duration::from_millis(50)));
        }
        &self.text
    }
}

/// Spawns `spec` and returns its whole output (until end-of-file, at most `timeout`).
pub fn run_probe(host: &Host, spec: &SandboxSpec, timeout: Duration) -> (Sandbox, String) {
    let mut sb = host
        .spawn(spec)
        .unwrap_or_else(|e| panic!("spawn {}: {e}", spec.id));
    let mut out = Output::of(&mut sb);
    let text = out.read_to_end(timeout).to_string();
    (sb, text)
}

/// The line of `text` starting with `key`, without the key.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Accepts the sandbox's connection on its runtime API listener (non-blocking, polled until
/// `timeout`), reads one line from it and answers `reply`; returns the line. `output` is shown
/// if nothing connects.
pub fn accept_line(sb: &Sandbox, out: &mut Output, timeout: Duration, reply: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let deadline = Instant::now() + timeout;
    let conn = loop {
        match sb.runtime_api_listener().accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    out.drain();
                    panic!("no connection from the sandbox; output: {}", out.text);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(timeout)).unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    (&conn).write_all(reply.as_bytes()).unwrap();
    line
}
