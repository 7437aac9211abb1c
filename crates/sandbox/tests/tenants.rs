//! Namespaces' cgroups on a real host (needs root): every sandbox of a namespace lives under
//! `<parent>/ns-<namespace>/`, whichever way it was born, with the namespace's CPU weight and
//! memory cap on that parent; a hog hitting the namespace's cap is OOM-killed while another
//! namespace's sandbox runs on; removing a namespace kills everything in it and leaves no
//! cgroup behind.

mod common;

use common::*;
use lambent_sandbox::{CgroupVersion, Sandbox, TenantLimits};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// A namespace name of this test process.
fn namespace(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// The value of a namespace's cgroup file, in the hierarchy that has it.
fn tenant_value(dirs: &[PathBuf], file: &str) -> Option<String> {
    dirs.iter()
        .map(|d| d.join(file))
        .find(|p| p.exists())
        .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
}

/// Whether every process of the sandbox is listed in its cgroup below `tenant_dirs`.
fn lives_under(sb: &Sandbox, tenant_dirs: &[PathBuf]) -> bool {
    let dirs = sb.cgroup_dirs();
    !dirs.is_empty()
        && dirs
            .iter()
            .all(|d| tenant_dirs.iter().any(|t| d.parent() == Some(t.as_path())))
        && dirs.iter().all(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap()
                .lines()
                .any(|p| p == sb.pid().to_string())
        })
}

/// How many cgroups of things made ahead (named `sb-ready-…`) hold a process under
/// `tenant_dirs`.
fn waiting_ahead(tenant_dirs: &[PathBuf]) -> usize {
    tenant_dirs
        .iter()
        .flat_map(|t| std::fs::read_dir(t).into_iter().flatten().flatten())
        .filter(|e| lambent_sandbox::made_ahead_cgroup(&e.path()))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("cgroup.procs"))
                .is_ok_and(|p| !p.trim().is_empty())
        })
        .count()
}

fn is_alive(sb: &Sandbox) -> bool {
    !wait_readable(sb.pidfd(), Duration::ZERO)
}

#[test]
fn every_sandbox_of_a_namespace_lives_under_its_cgroup_with_its_limits() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let ns = namespace("limits");
        let limits = TenantLimits {
            cpu_weight: 200,
            memory_max_bytes: Some(768 << 20),
        };
        fx.host.set_tenant_limits(&ns, limits).unwrap();
        let dirs = fx.host.tenant_cgroup_dirs(&ns).unwrap();
        assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
        let (weight, memory) = match fx.host.cgroup_version().unwrap() {
            CgroupVersion::V2 => ("cpu.weight", "memory.max"),
            CgroupVersion::V1 => ("cpu.shares", "memory.limit_in_bytes"),
        };
        let expected_weight = match fx.host.cgroup_version().unwrap() {
            CgroupVersion::V2 => "200",
            CgroupVersion::V1 => "2048",
        };
        assert_eq!(
            tenant_value(&dirs, weight).as_deref(),
            Some(expected_weight)
        );
        assert_eq!(
            tenant_value(&dirs, memory),
            Some((768u64 << 20).to_string())
        );
        // The first start has nothing made ahead (exec) and starts the pool of sandboxes made
        // ahead, under the namespace of that cold start; a later one claims one, which stays
        // in the cgroup it was made in (named as made ahead) with the function's limits.
        let mut sandboxes: Vec<Sandbox> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let made_ahead = |s: &Sandbox| {
            s.startup().birth == lambent_sandbox::Birth::Ahead
                && s.cgroup_dirs()
                    .iter()
                    .all(|d| lambent_sandbox::made_ahead_cgroup(d))
        };
        while !sandboxes.iter().any(made_ahead) {
            assert!(
                std::time::Instant::now() < deadline,
                "no sandbox made ahead was claimed"
            );
            let mut spec = fx.bash(&format!("ns{}", sandboxes.len()), "sleep 1000");
            spec.namespace = Some(ns.clone());
            let sb = fx.host.spawn(&spec).unwrap();
            assert!(
                lives_under(&sb, &dirs),
                "{:?} ({:?}) is not under {dirs:?}",
                sb.cgroup_dirs(),
                sb.startup().birth
            );
            sandboxes.push(sb);
            std::thread::sleep(Duration::from_millis(50));
        }
        // Changing the limits applies to the running namespace.
        let lower = TenantLimits {
            cpu_weight: 100,
            memory_max_bytes: Some(512 << 20),
        };
        fx.host.set_tenant_limits(&ns, lower).unwrap();
        assert_eq!(
            tenant_value(&dirs, memory),
            Some((512u64 << 20).to_string())
        );
        // One waits under the namespace again (its replacement), and goes with it uncounted.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while waiting_ahead(&dirs) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing made ahead under {dirs:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(sandboxes);
        let removal = fx.host.remove_tenant(&ns).unwrap();
        assert_eq!(removal.killed, 0, "dropped sandboxes left processes");
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?} left behind");
    });
}

#[test]
fn a_hog_at_its_namespaces_memory_cap_is_oom_killed_and_the_other_namespace_runs_on() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let (a, b) = (namespace("hog-a"), namespace("hog-b"));
        let cap = TenantLimits {
            memory_max_bytes: Some(160 << 20),
            ..TenantLimits::default()
        };
        fx.host.set_tenant_limits(&a, cap).unwrap();
        let mut neighbour = fx.bash("neighbour", "sleep 1000");
        neighbour.namespace = Some(b.clone());
        let neighbour = fx.host.spawn(&neighbour).unwrap();
        // Each sandbox may hold 512 MiB; the namespace, all of them together, 160.
        let mut hog = fx.spec(
            "hog",
            &[
                "/usr/bin/python3",
                "-c",
                "b = b'x' * (300 << 20); print('survived', len(b))",
            ],
        );
        hog.memory_mb = 512;
        hog.namespace = Some(a.clone());
        let (hog, out) = run_probe(&fx.host, &hog, Duration::from_secs(20));
        assert!(
            wait_exit(&hog, Duration::from_secs(20)),
            "the hog still runs"
        );
        assert!(!out.contains("survived"), "allocated past the cap: {out}");
        assert!(hog.oom_kills() > 0, "no OOM kill recorded; output: {out}");
        assert!(
            !hog.reached_own_memory_limit(),
            "the hog's own 512 MiB limit was reached, not its namespace's"
        );
        assert!(is_alive(&neighbour), "the other namespace's sandbox died");
        assert_eq!(neighbour.oom_kills(), 0);
        drop((hog, neighbour));
        for ns in [&a, &b] {
            fx.host.remove_tenant(ns).unwrap();
        }
    });
}

#[test]
fn removing_a_namespace_kills_everything_in_it_and_leaves_no_cgroup() {
    within(LIMIT, || {
        let fx = Fixture::full();
        let (doomed, kept) = (namespace("rm"), namespace("kept"));
        let mut sandboxes = Vec::new();
        for i in 0..3 {
            // Each starts children of its own: the whole tree must go.
            let mut spec = fx.bash(&format!("rm{i}"), "sleep 1000 & sleep 1000 & wait");
            spec.namespace = Some(doomed.clone());
            sandboxes.push(fx.host.spawn(&spec).unwrap());
        }
        let mut other = fx.bash("kept", "sleep 1000");
        other.namespace = Some(kept.clone());
        let other = fx.host.spawn(&other).unwrap();
        let dirs = fx.host.tenant_cgroup_dirs(&doomed).unwrap();
        let pids_of_tree = |dir: &Path| -> usize {
            walk(dir)
                .iter()
                .map(|d| {
                    std::fs::read_to_string(d.join("cgroup.procs"))
                        .map(|s| s.lines().count())
                        .unwrap_or(0)
                })
                .sum()
        };
        eventually(|| dirs.iter().map(|d| pids_of_tree(d)).max() == Some(9));

        let removal = fx.host.remove_tenant(&doomed).unwrap();
        assert!(removal.killed >= 3, "{removal:?}");
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?} left behind");
        for sb in &sandboxes {
            assert!(
                wait_readable(sb.pidfd(), Duration::from_secs(5)),
                "sandbox {} still runs",
                sb.id()
            );
        }
        assert!(is_alive(&other), "another namespace's sandbox was killed");
        // The handles outlive their cgroups: dropping them is quiet.
        drop(sandboxes);
        drop(other);
        fx.host.remove_tenant(&kept).unwrap();
        // Removing what is gone is no error.
        assert_eq!(fx.host.remove_tenant(&doomed).unwrap().removed_dirs, 0);
    });
}

/// `dir` and every directory below it.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            all.extend(walk(&e.path()));
        }
    }
    all
}

/// Waits (up to 10 s) until `check` holds.
fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("condition not met within 10 s");
}
