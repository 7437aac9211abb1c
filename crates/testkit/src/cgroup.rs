//! CPU accounting and confinement of a server under test and everything it starts, for the
//! benchmarks: a cgroup (`<hierarchy>/lambent/bench-<tag>`, on cgroup v1 or v2) whose CPU quota
//! can be set or lifted and whose CPU time and throttling are read, a command born inside it
//! (its sandboxes follow through `LAMBENT_CGROUP_PARENT`), and the CPU time of processes by
//! name and of the whole host. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The CFS period quotas are set against.
pub const PERIOD_US: u64 = 100_000;

/// Which cgroup layout the host has, for the node quotas.
#[derive(Clone, Copy, PartialEq)]
pub enum Layout {
    V1,
    V2,
}

pub fn layout() -> Layout {
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        Layout::V2
    } else {
        Layout::V1
    }
}

/// One node's CPU cgroup: `<cpu hierarchy>/lambent/bench-<tag>` with the quota, the node
/// process in its `node` child, its sandboxes (via `LAMBENT_CGROUP_PARENT`) beside it.
#[derive(Clone)]
pub struct CpuCgroup {
    /// Relative to each hierarchy's root: what `LAMBENT_CGROUP_PARENT` gets.
    pub relative: String,
    /// The directory carrying the quota.
    pub dir: PathBuf,
    pub layout: Layout,
}

impl CpuCgroup {
    pub fn create(tag: &str, cores: Option<f64>) -> CpuCgroup {
        let layout = layout();
        let relative = format!("lambent/bench-{tag}");
        let dir = match layout {
            Layout::V1 => Path::new(CGROUP_ROOT).join("cpu").join(&relative),
            Layout::V2 => Path::new(CGROUP_ROOT).join(&relative),
        };
        if layout == Layout::V2 {
            // Delegate cpu down to the node's directory (the sandbox crate does the rest).
            let _ = std::fs::create_dir_all(Path::new(CGROUP_ROOT).join("lambent"));
            for d in [
                Path::new(CGROUP_ROOT).to_path_buf(),
                Path::new(CGROUP_ROOT).join("lambent"),
            ] {
                let _ = std::fs::write(d.join("cgroup.subtree_control"), "+cpu");
            }
        }
        std::fs::create_dir_all(dir.join("node"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if layout == Layout::V2 {
            let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+cpu");
        }
        let cg = CpuCgroup {
            relative,
            dir,
            layout,
        };
        if layout == Layout::V1 {
            let acct = cg.cpuacct();
            std::fs::create_dir_all(&acct)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", acct.display()));
        }
        cg.set_quota(cores);
        cg
    }

    /// On cgroup v1, the node's directory in the `cpuacct` hierarchy (mounted apart from `cpu`
    /// here; the sandbox crate leaves it alone, so the node's sandboxes inherit it).
    pub fn cpuacct(&self) -> PathBuf {
        Path::new(CGROUP_ROOT).join("cpuacct").join(&self.relative)
    }

    /// The `cgroup.procs` files a node is born into: its `node` child of the quota directory,
    /// and on v1 its `cpuacct` directory (what [`CpuCgroup::usage`] reads).
    pub fn procs(&self) -> Vec<PathBuf> {
        let mut procs = vec![self.dir.join("node/cgroup.procs")];
        if self.layout == Layout::V1 {
            procs.push(self.cpuacct().join("cgroup.procs"));
        }
        procs
    }

    /// CPU seconds used so far by the node and its sandboxes.
    pub fn usage(&self) -> f64 {
        match self.layout {
            Layout::V1 => std::fs::read_to_string(self.cpuacct().join("cpuacct.usage"))
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .map_or(0.0, |ns| ns / 1e9),
            Layout::V2 => std::fs::read_to_string(self.dir.join("cpu.stat"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<f64>().ok())
                .map_or(0.0, |us| us / 1e6),
        }
    }

    /// `Some(cores)`: a CFS quota of that many cores; `None`: no quota.
    pub fn set_quota(&self, cores: Option<f64>) {
        let quota = cores.map(|c| ((c * PERIOD_US as f64) as u64).max(1000));
        let result = match self.layout {
            Layout::V1 => std::fs::write(self.dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())
                .and_then(|_| {
                    std::fs::write(
                        self.dir.join("cpu.cfs_quota_us"),
                        quota.map_or("-1".to_string(), |q| q.to_string()),
                    )
                }),
            Layout::V2 => std::fs::write(
                self.dir.join("cpu.max"),
                match quota {
                    Some(q) => format!("{q} {PERIOD_US}"),
                    None => format!("max {PERIOD_US}"),
                },
            ),
        };
        result
            .unwrap_or_else(|e| panic!("cannot set the CPU quota of {}: {e}", self.dir.display()));
    }

    /// (periods, throttled periods) so far.
    pub fn throttling(&self) -> (u64, u64) {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let get = |k: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse().ok())
                .unwrap_or(0)
        };
        (get("nr_periods "), get("nr_throttled "))
    }

    /// Removes the directories once the node and its sandboxes are gone (best effort).
    pub fn remove(&self) {
        let hierarchies: Vec<PathBuf> = match self.layout {
            Layout::V1 => ["cpu", "cpuacct", "memory", "pids", "freezer"]
                .iter()
                .map(|c| Path::new(CGROUP_ROOT).join(c).join(&self.relative))
                .collect(),
            Layout::V2 => vec![self.dir.clone()],
        };
        for dir in hierarchies {
            for _ in 0..20 {
                if remove_tree(&dir) || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Removes the cgroup directory `dir` and every cgroup below it (the server's own, such as its
/// tenants' parents, hold its sandboxes'), deepest first; true if `dir` is gone.
fn remove_tree(dir: &Path) -> bool {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

/// Makes `cmd`'s child write itself into each of `procs` (cgroups' `cgroup.procs`, as
/// [`CpuCgroup::procs`] gives them) before `execve`, so that every thread and process it ever
/// makes starts inside them.
pub fn born_into(cmd: &mut Command, procs: &[PathBuf]) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let procs: Vec<std::ffi::CString> = procs
        .iter()
        .map(|p| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap())
        .collect();
    // SAFETY: between fork and exec the closure only calls open, write and close (async-signal
    // safe) on paths prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for procs in &procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = std::io::Error::last_os_error();
                libc::close(fd);
                if written < 0 {
                    return Err(error);
                }
            }
            Ok(())
        });
    }
}

/// CPU seconds used so far by every process whose command is `comm` (from `/proc/*/stat`).
pub fn cpu_of(comm: &str) -> f64 {
    let tick = 100.0; // USER_HZ
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != comm {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let t = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        total += (t(11) + t(12)) / tick;
    }
    total
}

/// (busy, stolen) CPU seconds of the whole host so far (`/proc/stat`): busy is everything but
/// idle, iowait and steal (time the hypervisor gave to other guests).
pub fn host_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let f = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    let total: f64 = fields.iter().take(8).sum();
    ((total - f(3) - f(4) - f(7)) / 100.0, f(7) / 100.0)
}
