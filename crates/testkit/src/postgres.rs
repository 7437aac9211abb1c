//! A private PostgreSQL server for tests and benchmarks: Debian's `postgres` binaries, run as the
//! `postgres` user on 127.0.0.1 with an ephemeral port (never 5432), its data and socket in a
//! temporary directory named after the test process (stale ones of dead runs are removed), and
//! tuned for speed (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`).
//!
//! [`PgServer::shared`] is one server per test binary, started on first use; each test takes
//! [`PgServer::fresh_database`]. [`PgServer::start`] gives an owned server that a test can
//! [`stop`](PgServer::stop) and [`start_again`](PgServer::start_again) (same port, same data)
//! to see its code survive the dependency going away. Every server dies with the test process:
//! it is spawned from one long-lived thread with `PR_SET_PDEATHSIG` (set after the uid change,
//! which would clear it), and an owned server is stopped when dropped.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running (or stopped, for an owned one) private PostgreSQL server.
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists() && p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed: apt-get install -y postgresql (./scripts/test installs it)"
        )
    })
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy out at once.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        panic!(
            "PostgreSQL is not installed (no 'postgres' user): apt-get install -y postgresql \
             (./scripts/test installs it)"
        );
    }
    // SAFETY: checked non-null above.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the private PostgreSQL of the tests must be started as root: initdb and postgres \
             refuse to run as root, so the harness drops to the 'postgres' user, which needs \
             root (run the tests as root, e.g. with sudo, as ./scripts/test does)"
        );
    }
}

/// A command run as the `postgres` user, dying with the thread that spawned it.
fn as_postgres(program: &Path) -> Command {
    let (uid, gid) = postgres_user();
    let mut cmd = Command::new(program);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // After the uid change, which clears the parent-death signal.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns on one thread that lives as long as the process: `PR_SET_PDEATHSIG` fires when the
/// spawning *thread* exits, and a test's own thread ends with the test.
fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pg-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the PostgreSQL spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((cmd, tx))
        .expect("PostgreSQL spawner thread gone");
    rx.recv().expect("PostgreSQL spawner thread gone")
}

fn chown_to_postgres(path: &Path) {
    let (uid, gid) = postgres_user();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
}

/// This process's directory (`$TMPDIR/lambent-pg-<pid>`); directories of dead processes are
/// removed on first use.
fn process_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("lambent-pg-"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = tmp.join(format!("lambent-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL test directory");
        chown_to_postgres(&dir);
        dir
    })
}

/// A data directory made by `initdb` once per process, copied for each server.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        require_root();
        let bin = bin_dir();
        let data = process_dir().join("template");
        let out = as_postgres(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        data
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    l.local_addr().unwrap().port()
}

impl PgServer {
    /// One server per test binary, started on first use (it dies with the process).
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(PgServer::start)
    }

    /// A server of one's own, stopped when dropped.
    pub fn start() -> PgServer {
        let template = template();
        let dir = process_dir().join(format!("srv-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).unwrap();
        chown_to_postgres(&dir);
        let status = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(dir.join("data"))
            .status()
            .expect("running cp");
        assert!(status.success(), "copying the PostgreSQL template failed");
        let server = PgServer {
            port: free_port(),
            dir,
            child: Mutex::new(None),
        };
        server.start_again();
        server
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database with a name never used before in this process; returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs one SQL command as `postgres` on database `postgres`, panicking on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs one SQL command on `database`, panicking on failure; returns its unaligned output.
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-qAt", "-d"])
            .args([database, "-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server (fast shutdown) and waits for it; its port and data stay.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and data directory; waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let mut slot = self.child.lock().unwrap();
        assert!(slot.is_none(), "the PostgreSQL server is already running");
        let bin = bin_dir();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("opening the PostgreSQL log");
        let mut cmd = as_postgres(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = spawn(cmd).expect("starting postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "postgres exited ({status}) at start: {}",
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 30 s: {}",
                std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        *slot = Some(child);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
