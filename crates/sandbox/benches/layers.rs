//! What each isolation layer costs at the sandbox level, without any server around it: for each
//! configuration (all layers, each layer left out in turn), `Host::spawn` of `/bin/true` until
//! its `execve` succeeded, and until the program has exited (the sandbox's whole life), beside a
//! plain `fork`+`exec` of the same program (`std::process::Command`) measured in the same run.
//! Sandboxes are started 10 ms apart. Sandboxes made ahead need every layer, so the rows that
//! leave a layer out compare with "without sandboxes made ahead".
//!
//! Run: `cargo bench -p lambent-sandbox --bench layers` (root needed). `LAMBENT_BENCH_N` sets the
//! number of sandboxes per configuration (default 200).

use lambent_sandbox::{Host, HostOptions, Isolation, Layers, SandboxSpec};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn p(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i].as_secs_f64() * 1000.0
}

/// Blocks until the pidfd is readable (the init process exited).
fn wait_exit(pidfd: std::os::fd::BorrowedFd<'_>) {
    let mut fds = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own.
    unsafe { libc::poll(&mut fds, 1, 10_000) };
}

fn main() {
    let n: usize = std::env::var("LAMBENT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::set_permissions(&code, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let all = Layers::ALL;
    let configs = [
        ("all layers", all),
        (
            "without read-only root (mount ns)",
            Layers { root: false, ..all },
        ),
        (
            "without pid/ipc/uts namespaces",
            Layers {
                pid_ipc_uts: false,
                ..all
            },
        ),
        (
            "without cgroup",
            Layers {
                cgroup: false,
                ..all
            },
        ),
        ("without unprivileged user", Layers { user: false, ..all }),
        (
            "without seccomp",
            Layers {
                seccomp: false,
                ..all
            },
        ),
        (
            "without netns made ahead",
            Layers {
                netns_ahead: false,
                ..all
            },
        ),
        (
            "without sandboxes made ahead",
            Layers {
                sandboxes_ahead: false,
                ..all
            },
        ),
    ];
    let mut table = comfy_table::Table::new();
    table.set_header([
        "configuration",
        "spawn to execve p50 ms",
        "p99 ms",
        "spawn to exit p50 ms",
        "p99 ms",
        "exit vs plain exec (p50) ms",
    ]);
    let mut plain: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            std::process::Command::new("/bin/true").status().unwrap();
            t.elapsed()
        })
        .collect();
    let plain_p50 = p(&mut plain, 0.5);
    for (label, layers) in configs {
        let host = Host::detect(HostOptions {
            isolation: Isolation::Full,
            state_dir: dir.path().join("state"),
            layers,
            sdk_dir: None,
        })
        .unwrap_or_else(|e| panic!("full isolation unavailable (root needed): {e}"));
        // Let the network namespace pool fill before measuring.
        std::thread::sleep(Duration::from_millis(300));
        let (mut exec, mut exit) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let spec = SandboxSpec {
                id: format!("bench-{}-{i}", std::process::id()),
                code_dir: code.clone(),
                runtime_dir: code.clone(),
                argv: vec!["/bin/true".into()],
                env: vec![],
                memory_mb: 128,
                pids_max: 64,
                tmp_mb: 16,
                allow_network: false,
                interpreter: None,
                aws_endpoint: false,
                namespace: None,
            };
            let t = Instant::now();
            let sandbox = host.spawn(&spec).unwrap();
            exec.push(t.elapsed());
            wait_exit(sandbox.pidfd());
            exit.push(t.elapsed());
            drop(sandbox);
            // Cold starts come apart, not back to back: the time the background threads
            // (namespaces and sandboxes made ahead) have to refill, the same for every row.
            std::thread::sleep(Duration::from_millis(10));
        }
        let exit_p50 = p(&mut exit, 0.5);
        table.add_row(vec![
            label.to_string(),
            format!("{:.2}", p(&mut exec, 0.5)),
            format!("{:.2}", p(&mut exec, 0.99)),
            format!("{exit_p50:.2}"),
            format!("{:.2}", p(&mut exit, 0.99)),
            format!("{:+.2}", exit_p50 - plain_p50),
        ]);
    }
    table.add_row(vec![
        "plain fork+exec (std::process::Command)".to_string(),
        "-".into(),
        "-".into(),
        format!("{plain_p50:.2}"),
        format!("{:.2}", p(&mut plain, 0.99)),
        "+0.00".into(),
    ]);
    println!("{table}");
}
