//! Full isolation, end to end: real sandboxes running probe scripts that report what they can
//! see and do. Needs root with cgroups (CI runs as root); without them every test fails at once
//! saying so. Each test is bounded in time.

mod common;

use common::*;
use lambent_sandbox::{
    Birth, CgroupVersion, Isolation, SandboxError, SetupStep, SANDBOX_GID, SANDBOX_UID,
};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const PROBE: Duration = Duration::from_secs(20);

#[test]
fn detects_full_isolation_with_cgroups() {
    within(LIMIT, || {
        let fx = Fixture::full();
        assert_eq!(fx.host.isolation(), Isolation::Full);
        let v = fx.host.cgroup_version().expect("a cgroup version");
        let layout = fx.host.layout(&fx.code, &fx.runtime);
        assert_eq!(layout.task_root, std::path::Path::new("/var/task"));
        assert_eq!(layout.runtime_dir, std::path::Path::new("/var/runtime"));
        eprintln!("cgroup version: {v:?}");
        assert!(matches!(v, CgroupVersion::V1 | CgroupVersion::V2));
    });
}

#[test]
fn sees_itself_as_pid_1_and_only_its_own_processes() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let spec = fx.bash(
            "pid1",
            "echo pid=$$; sleep 100 & echo procs=$(ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '); \
             ps -e -o pid=,comm= | sed 's/^ */ps: /'; kill %1",
        );
        let (_sb, out) = run_probe(&fx.host, &spec, PROBE);
        assert_eq!(field(&out, "pid="), Some("1"), "{out}");
        let procs: Vec<u32> = field(&out, "procs=")
            .unwrap_or_else(|| panic!("no process list: {out}"))
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(procs.contains(&1), "{out}");
        assert!(
            procs.iter().all(|p| *p < 10),
            "foreign processes visible: {out}"
        );
        let ps: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("ps: ")).collect();
        let comms: Vec<&str> = ps
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(ps.iter().any(|l| l.starts_with("1 bash")), "{out}");
        assert!(
            comms
                .iter()
                .all(|c| ["bash", "sleep", "ps", "sed"].contains(c)),
            "ps shows processes that are not the sandbox's: {out}"
        );
    });
}

#[test]
fn file_system_is_minimal_and_read_only_except_tmp() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let hidden = [
            "/root".to_string(),
            "/work".to_string(),
            "/home".to_string(),
            fx.state.display().to_string(),
            fx.tmp.path().display().to_string(),
        ];
        let script = format!(
            r#"
            cat /var/task/hello.txt
            cat /var/runtime/client.txt
            (echo x > /var/task/new) 2>&1 | sed 's/^.*: /task-write: /'
            (echo x > /var/runtime/new) 2>&1 | sed 's/^.*: /runtime-write: /'
            (echo x > /usr/new) 2>&1 | sed 's/^.*: /usr-write: /'
            (echo x > /etc/new) 2>&1 | sed 's/^.*: /etc-write: /'
            (echo x > /new) 2>&1 | sed 's/^.*: /root-write: /'
            echo tmp-data > /tmp/file && echo "tmp-read: $(cat /tmp/file)"
            echo shm-data > /dev/shm/file && echo "shm-read: $(cat /dev/shm/file)"
            echo discard > /dev/null && echo "dev-null: ok"
            echo "urandom: $(head -c 4 /dev/urandom | wc -c)"
            echo "tmp-mode: $(stat -c %a /tmp)"
            for p in {hidden}; do if [ -e "$p" ]; then echo "present: $p"; else echo "absent: $p"; fi; done
            echo "top: $(ls / | tr '\n' ' ')"
            echo "dev: $(ls /dev | tr '\n' ' ')"
            "#,
            hidden = hidden.join(" ")
        );
        let (_sb, out) = run_probe(&fx.host, &fx.bash("fs", &script), PROBE);
        assert!(out.contains("hello from the code dir"), "{out}");
        assert!(out.contains("runtime client"), "{out}");
        for what in ["task", "runtime", "usr", "etc", "root"] {
            assert_eq!(
                field(&out, &format!("{what}-write: ")),
                Some("Read-only file system"),
                "{what} must be read-only (EROFS): {out}"
            );
        }
        assert!(
            !fx.code.join("new").exists(),
            "a write went through to the host's code dir"
        );
        assert_eq!(field(&out, "tmp-read: "), Some("tmp-data"), "{out}");
        assert_eq!(field(&out, "shm-read: "), Some("shm-data"), "{out}");
        assert_eq!(field(&out, "dev-null: "), Some("ok"), "{out}");
        assert_eq!(field(&out, "urandom: "), Some("4"), "{out}");
        assert_eq!(field(&out, "tmp-mode: "), Some("1777"), "{out}");
        for p in &hidden {
            assert!(
                out.contains(&format!("absent: {p}")),
                "{p} must not be visible: {out}"
            );
        }
        let top: Vec<&str> = field(&out, "top: ").unwrap().split_whitespace().collect();
        let allowed = [
            "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
            "var",
        ];
        assert!(
            top.iter().all(|e| allowed.contains(e)),
            "unexpected top-level entries: {top:?}"
        );
        let dev: Vec<&str> = field(&out, "dev: ").unwrap().split_whitespace().collect();
        let allowed = [
            "fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero",
        ];
        assert!(
            dev.iter().all(|e| allowed.contains(e)),
            "unexpected /dev entries: {dev:?}"
        );
    });
}

/// Reports what [`assert_unprivileged_in_its_own_world`] checks.
const IDENTITY_PROBE: &str = r#"
    grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
    echo "hostname: $(hostname)"
    echo "policy: $(cut -d' ' -f41 /proc/self/stat)"
    echo "api: $AWS_LAMBDA_RUNTIME_API"
    echo "cwd: $(pwd)"
    read -r line; echo "stdin-eof: $?"
    echo "to-stderr" >&2
    echo "fds: $(ls /proc/self/fd | tr '\n' ' ')"
"#;

/// The output of [`IDENTITY_PROBE`] says: the sandbox user, no capability, seccomp on, its own
/// hostname, `SCHED_BATCH`, runtime API address and working directory, stdin empty, no leaked descriptor.
fn assert_unprivileged_in_its_own_world(out: &str) {
    let uid = SANDBOX_UID.to_string();
    let gid = SANDBOX_GID.to_string();
    let ids = |key| {
        field(out, key)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("Uid:"), [uid.as_str(); 4], "{out}");
    assert_eq!(ids("Gid:"), [gid.as_str(); 4], "{out}");
    assert_eq!(
        field(out, "Groups:"),
        Some(""),
        "no supplementary groups: {out}"
    );
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(out, cap), Some("0000000000000000"), "{cap} {out}");
    }
    assert_eq!(field(out, "NoNewPrivs:"), Some("1"), "{out}");
    assert_eq!(
        field(out, "Seccomp:"),
        Some("2"),
        "seccomp filter mode: {out}"
    );
    assert_eq!(field(out, "hostname: "), Some("lambent"), "{out}");
    // SCHED_BATCH (3): woken by an invocation, it does not preempt the server.
    assert_eq!(field(out, "policy: "), Some("3"), "{out}");
    assert_eq!(field(out, "api: "), Some("127.0.0.1:9001"), "{out}");
    assert_eq!(field(out, "cwd: "), Some("/var/task"), "{out}");
    assert_eq!(
        field(out, "stdin-eof: "),
        Some("1"),
        "stdin must be /dev/null: {out}"
    );
    assert!(
        out.contains("to-stderr"),
        "stderr goes to the same pipe: {out}"
    );
    // 0-2, plus the descriptor ls itself opens on /proc/self/fd.
    let fds: Vec<&str> = field(out, "fds: ").unwrap().split_whitespace().collect();
    assert!(fds.len() <= 4, "leaked descriptors: {out}");
}

#[test]
fn runs_unprivileged_with_no_capabilities_in_its_own_world() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let (_sb, out) = run_probe(&fx.host, &fx.bash("ids", IDENTITY_PROBE), PROBE);
        assert_unprivileged_in_its_own_world(&out);
    });
}

/// A sandbox made ahead empties its bounding set and sheds the server's memory while it waits:
/// once claimed it must be exactly as unprivileged as one made on demand.
#[test]
fn a_sandbox_made_ahead_is_as_unprivileged_once_claimed() {
    within(LIMIT, || {
        let fx = Fixture::full();
        // The first spawn starts the pool of sandboxes made ahead; a later one claims one.
        let deadline = Instant::now() + PROBE;
        loop {
            let (sb, out) = run_probe(&fx.host, &fx.bash("ahead", IDENTITY_PROBE), PROBE);
            if sb.startup().birth == Birth::Ahead {
                assert_unprivileged_in_its_own_world(&out);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no sandbox made ahead was claimed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn runtime_api_listener_is_reached_from_inside_and_the_host_loopback_is_not() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let host_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        host_listener.set_nonblocking(true).unwrap();
        let host_port = host_listener.local_addr().unwrap().port();
        let script = format!(
            r#"
            if (exec 4<>/dev/tcp/127.0.0.1/{host_port}) 2>/dev/null; then echo "host-port: reachable"; else echo "host-port: unreachable"; fi
            exec 3<>/dev/tcp/127.0.0.1/9001 || {{ echo "connect failed"; exit 1; }}
            echo "hello from inside" >&3
            read -r reply <&3
            echo "reply: $reply"
            "#
        );
        let mut sb = fx.host.spawn(&fx.bash("net", &script)).unwrap();
        let mut out = Output::of(&mut sb);
        let listener = sb.runtime_api_listener();
        assert_eq!(listener.local_addr().unwrap().to_string(), "127.0.0.1:9001");
        let line = accept_line(&sb, &mut out, PROBE, "pong\n");
        assert_eq!(line, "hello from inside\n");
        let text = out.read_to_end(PROBE).to_string();
        assert_eq!(field(&text, "host-port: "), Some("unreachable"), "{text}");
        assert_eq!(field(&text, "reply: "), Some("pong"), "{text}");
        assert!(
            host_listener.accept().is_err(),
            "the host's loopback listener was reached"
        );
    });
}

#[test]
fn memory_limit_gets_the_hog_oom_killed() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let mut spec = fx.spec(
            "oom",
            &[
                "/usr/bin/python3",
                "-c",
                "b = b'x' * (300 << 20); print('survived', len(b))",
            ],
        );
        spec.memory_mb = 64;
        let (sb, out) = run_probe(&fx.host, &spec, PROBE);
        assert!(wait_exit(&sb, PROBE), "the hog is still running");
        assert!(!out.contains("survived"), "allocated past the limit: {out}");
        assert!(sb.oom_kills() > 0, "no OOM kill recorded; output: {out}");
        let peak = sb.memory_peak_bytes().expect("a memory peak");
        assert!(peak <= 64 << 20, "peak {peak} above the 64 MiB limit");
        assert!(
            peak > 32 << 20,
            "peak {peak} implausibly low for a 300 MiB allocation"
        );
    });
}

#[test]
fn memory_peak_keeps_the_highest_use_since_start() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let script = "import sys\nb = b'x' * (80 << 20)\ndel b\nprint('freed', flush=True)\nsys.stdin.read()\nimport time\ntime.sleep(100)";
        let mut sb = fx
            .host
            .spawn(&fx.spec("peak", &["/usr/bin/python3", "-c", script]))
            .unwrap();
        let mut out = Output::of(&mut sb);
        assert!(out.wait_for("freed", PROBE), "{}", out.text);
        let peak = sb.memory_peak_bytes().expect("a memory peak");
        assert!(peak >= 80 << 20, "peak {peak} below the 80 MiB allocated");
        eprintln!("memory peak: {} MiB", peak >> 20);
        assert_eq!(sb.oom_kills(), 0);
    });
}

#[test]
fn pids_limit_contains_a_fork_bomb() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let script = r#"
import os, time
n = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    print(f"forked {n} errno 0 end")
except OSError as e:
    print(f"forked {n} errno {e.errno} end")
"#;
        let mut spec = fx.spec("pids", &["/usr/bin/python3", "-c", script]);
        spec.pids_max = 16;
        let mut sb = fx.host.spawn(&spec).unwrap();
        let mut out = Output::of(&mut sb);
        assert!(out.wait_for(" end", PROBE), "{}", out.text);
        let line = field(&out.text, "forked ").unwrap().to_string();
        let parts: Vec<&str> = line.split_whitespace().collect();
        let forked: u32 = parts[0].parse().unwrap();
        assert!(forked < 16, "forked {forked} processes past pids.max 16");
        assert_eq!(parts[2], "11", "fork must fail with EAGAIN: {line}");
        let started = Instant::now();
        sb.kill();
        assert!(
            wait_exit(&sb, Duration::from_secs(5)),
            "kill did not end the sandbox"
        );
        eprintln!(
            "killed {forked} forked processes in {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn mount_unshare_and_namespace_clones_fail_inside() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let script = r#"
            mount -t tmpfs none /tmp 2>/dev/null; echo "mount-cmd: $?"
            unshare --user --map-root-user true 2>/dev/null; echo "unshare-cmd: $?"
            python3 - <<'EOF'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(rc):
    return ctypes.get_errno() if rc == -1 else 0
print("unshare-user:", errno_of(libc.unshare(0x10000000)))
print("unshare-net:", errno_of(libc.unshare(0x40000000)))
print("mount:", errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
print("clone3:", errno_of(libc.syscall(435, None, 0)))
print("setns:", errno_of(libc.setns(0, 0)))
print("ptrace:", errno_of(libc.ptrace(0, 0, None, None)))
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("fork: ok")
EOF
        "#;
        let (_sb, out) = run_probe(&fx.host, &fx.bash("seccomp", script), PROBE);
        assert_ne!(field(&out, "mount-cmd: "), Some("0"), "{out}");
        assert_ne!(field(&out, "unshare-cmd: "), Some("0"), "{out}");
        let eperm = libc::EPERM.to_string();
        for call in [
            "unshare-user:",
            "unshare-net:",
            "mount:",
            "setns:",
            "ptrace:",
        ] {
            assert_eq!(
                field(&out, call),
                Some(eperm.as_str()),
                "{call} must fail with EPERM: {out}"
            );
        }
        assert_eq!(
            field(&out, "clone3:"),
            Some(libc::ENOSYS.to_string().as_str()),
            "{out}"
        );
        assert_eq!(
            field(&out, "fork:"),
            Some("ok"),
            "ordinary fork must work: {out}"
        );
    });
}

#[test]
fn kill_ends_the_whole_tree_quickly() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let script =
            "for i in 1 2 3 4; do (trap '' TERM HUP INT; sleep 1000) & done; echo started; wait";
        let mut sb = fx.host.spawn(&fx.bash("kill", script)).unwrap();
        let mut out = Output::of(&mut sb);
        assert!(out.wait_for("started", PROBE), "{}", out.text);
        let procs_file = sb.cgroup_dirs()[0].join("cgroup.procs");
        let count = || {
            std::fs::read_to_string(&procs_file)
                .unwrap_or_default()
                .lines()
                .count()
        };
        assert!(
            count() >= 5,
            "expected bash and 4 subshells (and sleeps) in the cgroup, got {}",
            count()
        );

        let started = Instant::now();
        sb.kill();
        let kill_returned = started.elapsed();
        assert!(
            wait_exit(&sb, Duration::from_secs(5)),
            "init still alive after kill"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while count() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} processes survived kill",
                count()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!(
            "kill returned in {kill_returned:?}, tree gone in {:?}",
            started.elapsed()
        );
        assert!(kill_returned < Duration::from_millis(100));
        sb.kill(); // idempotent
        out.read_to_end(PROBE);
    });
}

#[test]
fn drop_kills_reaps_and_removes_the_cgroup() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let sb = fx
            .host
            .spawn(&fx.spec("drop", &["/usr/bin/sleep", "1000"]))
            .unwrap();
        let dirs = sb.cgroup_dirs();
        assert!(!dirs.is_empty());
        for d in &dirs {
            assert!(d.is_dir(), "{} missing while running", d.display());
            assert!(d.ends_with(sb.id()), "{}", d.display());
            let own = d.parent().unwrap().file_name().unwrap().to_string_lossy();
            assert!(own.starts_with("host-"), "{}", d.display());
        }
        let pid = sb.pid();
        let started = Instant::now();
        drop(sb);
        eprintln!("drop took {:?}", started.elapsed());
        for d in &dirs {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        // Reaped: the pid no longer names our child.
        // SAFETY: waitpid on a pid that is not (any more) our child.
        let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(rc, -1, "the sandbox's init was not reaped");
    });
}

#[test]
fn freeze_stops_the_sandbox_and_thaw_resumes_it() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let script = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.01; done";
        let mut sb = fx.host.spawn(&fx.bash("freeze", script)).unwrap();
        let mut out = Output::of(&mut sb);
        assert!(out.wait_for("tick 3", PROBE), "{}", out.text);
        let started = Instant::now();
        sb.freeze().unwrap();
        let froze_in = started.elapsed();
        std::thread::sleep(Duration::from_millis(50));
        out.drain();
        let before = out.text.len();
        std::thread::sleep(Duration::from_millis(300));
        out.drain();
        assert_eq!(
            out.text.len(),
            before,
            "output while frozen: {}",
            &out.text[before..]
        );
        let started = Instant::now();
        sb.thaw().unwrap();
        let thawed_in = started.elapsed();
        let last = out.text.lines().last().unwrap().to_string();
        let n: u32 = last.strip_prefix("tick ").unwrap().parse().unwrap();
        assert!(
            out.wait_for(&format!("tick {}", n + 2), PROBE),
            "no output after thaw"
        );
        eprintln!("freeze took {froze_in:?}, thaw {thawed_in:?}");
        // A frozen sandbox can still be killed.
        sb.freeze().unwrap();
        sb.kill();
        assert!(
            wait_exit(&sb, Duration::from_secs(5)),
            "kill of a frozen sandbox failed"
        );
    });
}

#[test]
fn nonexistent_program_is_a_setup_error_naming_exec() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let spec = fx.spec("noexec", &["/var/task/does-not-exist", "arg"]);
        let err = fx.host.spawn(&spec).expect_err("spawn must fail");
        match &err {
            SandboxError::Setup { step, errno, .. } => {
                assert_eq!(*step, SetupStep::Exec);
                assert_eq!(*errno, nix::errno::Errno::ENOENT);
            }
            other => panic!("expected a setup error, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("exec '/var/task/does-not-exist'"), "{msg}");
        // The failed sandbox left nothing behind.
        let root = std::path::Path::new("/sys/fs/cgroup");
        for hierarchy in ["memory", "pids", "freezer", "cpu", ""] {
            let dir = root.join(hierarchy).join("lambent").join(&spec.id);
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    });
}

/// A claim on the caller's thread does not wait for the program's `execve`: an exec that
/// fails is told once the sandbox has ended, as `spawn` tells it.
#[test]
fn a_claim_that_does_not_wait_for_exec_still_names_a_failed_exec() {
    within(LIMIT, || {
        let fx = Fixture::full();
        fx.host.warm_up(None, &[], &fx.runtime, 16);
        let deadline = Instant::now() + Duration::from_secs(20);
        let claim = |name: &str, argv: &[&str]| loop {
            if let Some(sb) = fx.host.claim_waiting(&fx.spec(name, argv)) {
                return sb;
            }
            assert!(Instant::now() < deadline, "no sandbox made ahead to claim");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut failed = claim("noexec", &["/var/task/does-not-exist"]);
        assert!(wait_exit(&failed, Duration::from_secs(5)), "it did not end");
        match failed.setup_failure() {
            Some(SandboxError::Setup {
                step,
                errno,
                detail,
            }) => {
                assert_eq!(step, SetupStep::Exec);
                assert_eq!(errno, nix::errno::Errno::ENOENT);
                assert_eq!(detail, " '/var/task/does-not-exist'");
            }
            other => panic!("expected the failed exec, got {other:?}"),
        }
        assert!(failed.setup_failure().is_none(), "asked once");
        // One whose program runs has nothing to say, even once it has ended.
        let mut ran = claim("ran", &["/usr/bin/true"]);
        assert!(wait_exit(&ran, Duration::from_secs(5)), "it did not end");
        assert!(ran.setup_failure().is_none());
        assert_eq!(ran.startup().birth, lambent_core::Birth::Ahead);
    });
}

#[test]
fn unreadable_code_dir_is_a_setup_error_naming_the_task_root() {
    within(LIMIT, || {
        let fx = Fixture::full();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fx.code, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = fx
            .host
            .spawn(&fx.spec("perm", &["/usr/bin/true"]))
            .expect_err("spawn must fail");
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                SandboxError::Setup {
                    step: SetupStep::Chdir,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("/var/task"), "{msg}");
    });
}

#[test]
fn concurrent_spawns_keep_their_output_and_listener_apart() {
    within(LIMIT, || {
        let fx = std::sync::Arc::new(Fixture::full());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let fx = std::sync::Arc::clone(&fx);
                std::thread::spawn(move || {
                    for i in 0..8 {
                        let tag = format!("sandbox-{t}-{i}");
                        let script = format!(
                            "exec 3<>/dev/tcp/127.0.0.1/9001 && echo {tag} >&3 && echo {tag}"
                        );
                        let mut sb = fx.host.spawn(&fx.bash("conc", &script)).unwrap();
                        let mut out = Output::of(&mut sb);
                        let deadline = Instant::now() + PROBE;
                        let conn = loop {
                            match sb.runtime_api_listener().accept() {
                                Ok((c, _)) => break c,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    assert!(Instant::now() < deadline, "{tag}: no connection");
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                                Err(e) => panic!("accept: {e}"),
                            }
                        };
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(PROBE)).unwrap();
                        let mut line = String::new();
                        BufReader::new(&conn).read_line(&mut line).unwrap();
                        assert_eq!(line.trim(), tag, "a connection from another sandbox");
                        assert_eq!(
                            out.read_to_end(PROBE).trim(),
                            tag,
                            "output of another sandbox"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// Not an assertion: prints the numbers to quote. Back to back, and spaced out as sparse cold
/// starts are; with a plain `std::process::Command` of the same program for comparison.
#[test]
fn spawn_latency_median_over_20_runs() {
    within(Duration::from_secs(120), || {
        let fx = Fixture::full();
        let program = ["/usr/bin/echo", "ready"];
        // Warm up the page cache and let the network namespace pool fill.
        run_probe(&fx.host, &fx.spec("warm", &program), PROBE);
        std::thread::sleep(Duration::from_millis(50));
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        for gap in [Duration::ZERO, Duration::from_millis(50)] {
            let (mut spawn, mut first, mut teardown, mut plain) = (vec![], vec![], vec![], vec![]);
            for _ in 0..20 {
                std::thread::sleep(gap);
                let spec = fx.spec("lat", &program);
                let t0 = Instant::now();
                let mut sb = fx.host.spawn(&spec).unwrap();
                spawn.push(t0.elapsed());
                let mut out = Output::of(&mut sb);
                assert!(out.wait_for("ready", PROBE), "{}", out.text);
                first.push(t0.elapsed());
                assert!(wait_exit(&sb, PROBE));
                let t1 = Instant::now();
                drop(sb);
                teardown.push(t1.elapsed());

                std::thread::sleep(gap);
                let t0 = Instant::now();
                let mut child = std::process::Command::new(program[0])
                    .arg(program[1])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                plain.push(t0.elapsed());
                child.wait().unwrap();
            }
            eprintln!(
                "full isolation ({:?}), {program:?}, {gap:?} apart, medians of 20: spawn() {:?}, \
                 spawn to first output {:?} (plain Command: {:?}), drop {:?}",
                fx.host.cgroup_version().unwrap(),
                median(&mut spawn),
                median(&mut first),
                median(&mut plain),
                median(&mut teardown),
            );
        }
    });
}
