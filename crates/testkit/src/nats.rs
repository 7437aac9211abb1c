//! A private NATS server with JetStream for tests and benchmarks: [`NatsServer::start`] runs
//! Debian's `nats-server` on loopback with ports the server picks itself (`-p -1 -m -1`, reported
//! through `--ports_file_dir`, so no race between choosing and binding a port, and never the
//! default 4222), a JetStream store in its own temporary directory, and waits until
//! `/healthz` says JetStream is ready. It stops on [`NatsServer::stop`] or drop, and dies with
//! the test process even on a crash: every server is spawned by one long-lived helper thread with
//! `PR_SET_PDEATHSIG` (the death signal follows the thread that forked, so that thread lives as
//! long as the process). Temporary directories left by dead runs are removed on the next start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const DIR_PREFIX: &str = "lambent-nats-";
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running private `nats-server -js`.
pub struct NatsServer {
    dir: tempfile::TempDir,
    client_port: u16,
    monitor_port: u16,
    child: Mutex<Option<Child>>,
}

impl NatsServer {
    /// Starts a fresh server with an empty JetStream store; panics if it cannot.
    pub fn start() -> NatsServer {
        let binary = nats_server_binary();
        clean_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("creating the NATS temp dir");
        let mut cmd = Command::new(&binary);
        cmd.args(["-p", "-1", "-m", "-1", "--ports_file_dir"])
            .arg(dir.path());
        add_common_args(&mut cmd, dir.path());
        let child = spawn_tied(cmd).expect("spawning nats-server");
        let ports_file = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let (client_port, monitor_port) = match read_ports(&ports_file) {
            Ok(ports) => ports,
            Err(e) => {
                let log = std::fs::read_to_string(dir.path().join("nats.log")).unwrap_or_default();
                kill_and_wait(child);
                panic!("nats-server did not report its ports: {e}\n{log}");
            }
        };
        let server = NatsServer {
            dir,
            client_port,
            monitor_port,
            child: Mutex::new(Some(child)),
        };
        server.wait_healthy();
        server
    }

    /// One server for the whole test process (clusters are isolated by their ids); never stop it.
    pub fn shared() -> &'static NatsServer {
        static SHARED: OnceLock<NatsServer> = OnceLock::new();
        SHARED.get_or_init(NatsServer::start)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// `127.0.0.1:<port>` (as errors name it).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoint.
    pub fn monitoring_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The server's temporary directory (JetStream store under `js/`, log in `nats.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running.
    pub fn running(&self) -> bool {
        self.lock().is_some()
    }

    /// Stops the server (SIGTERM, then waits for it); a no-op if it is not running.
    pub fn stop(&self) {
        if let Some(child) = self.lock().take() {
            kill_and_wait(child);
        }
    }

    /// Starts the server again on the same ports with the same JetStream store (after
    /// [`NatsServer::stop`]), for reconnect tests.
    pub fn start_again(&self) {
        let mut guard = self.lock();
        assert!(guard.is_none(), "the NATS server is still running");
        let mut cmd = Command::new(nats_server_binary());
        cmd.args(["-p", &self.client_port.to_string()])
            .args(["-m", &self.monitor_port.to_string()]);
        add_common_args(&mut cmd, self.dir.path());
        *guard = Some(spawn_tied(cmd).expect("spawning nats-server again"));
        drop(guard);
        self.wait_healthy();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if healthz_ok(self.monitor_port) {
                return;
            }
            if let Some(child) = self.lock().as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("nats-server exited ({status}):\n{}", self.log());
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "nats-server not healthy after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn add_common_args(cmd: &mut Command, dir: &Path) {
    cmd.arg("-js")
        .arg("-sd")
        .arg(dir.join("js"))
        .args(["-a", "127.0.0.1", "-l"])
        .arg(dir.join("nats.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

fn nats_server_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("nats-server is not installed: apt-get install -y nats-server (./scripts/test installs it)")
        })
}

fn kill_and_wait(mut child: Child) {
    // SIGTERM lets JetStream close its store cleanly.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn read_ports(file: &Path) -> Result<(u16, u16), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
                let port = |key: &str| {
                    json[key][0]
                        .as_str()
                        .and_then(|u| u.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok())
                };
                if let (Some(c), Some(m)) = (port("nats"), port("monitoring")) {
                    return Ok((c, m));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no ports in {}", file.display()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn healthz_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

/// Removes the temporary directories of test processes that no longer run.
fn clean_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from the helper thread so that it gets SIGTERM when the test process dies.
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                // Lives as long as the process: the `Sender` sits in a static.
                for (mut cmd, reply) in rx {
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the testkit spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("the testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the testkit spawner thread is gone"))?
}
