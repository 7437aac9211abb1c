//! The sandbox's root file system, as a plan: a list of [`MountOp`]s built in the parent (where
//! allocating is allowed, and where the plan is unit-tested without root) and applied by the
//! child with raw system calls, in order.
//!
//! The root is a small tmpfs holding:
//!
//! | path | what |
//! | --- | --- |
//! | `/usr`, `/etc` | the host's, bind-mounted read-only, `nosuid`, `nodev` |
//! | `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64`, `/libx32` | the host's symlinks (Debian's merged `/usr`), or read-only binds where the host has directories |
//! | `/var/task` | the function's code, read-only |
//! | `/var/runtime` | Lambent's runtime clients, read-only |
//! | the SDK directory, at its host path | the AWS SDKs that come with the runtimes (when the host has them), read-only |
//! | `/node_modules` | a symlink to `/var/runtime/sdk/node/node_modules`: Node.js finds the SDK for JavaScript after the function's own `node_modules` (ESM and CommonJS alike), with no `NODE_PATH` |
//! | `/tmp` | a private tmpfs of `tmp_mb` MiB, mode 1777 |
//! | `/proc` | a fresh proc of the sandbox's own PID namespace |
//! | `/dev` | a read-only tmpfs with `null`, `zero`, `full`, `random`, `urandom` bound from the host, `fd`/`stdin`/`stdout`/`stderr` symlinks into `/proc/self/fd`, and a `shm` tmpfs of `tmp_mb` MiB |
//!
//! The child first makes every inherited mount private (nothing propagates back to the host),
//! then builds the tree under the host directory `<state_dir>/rootfs` (one directory serves all
//! sandboxes: each mounts its tmpfs there in its own mount namespace), `pivot_root`s into it,
//! detaches the host's root and finally makes its own root read-only. Binds are not recursive:
//! mounts below the host's `/usr` or `/etc` do not follow.
//!
//! `/etc` is the host's, read-only (users, CA certificates, time zones, `ld.so.cache`): do not
//! keep secrets readable by others in the host's `/etc`. `/sys` is not mounted.

use crate::SandboxError;
use libc::{c_int, c_ulong, mode_t};
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Top-level host directories the sandbox sees (as binds or as symlinks).
const HOST_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];
/// Device nodes bound from the host's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];
/// Symlinks in `/dev`.
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

const RO_REMOUNT: c_ulong =
    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;

/// What the host's root offers at the top level, scanned once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostRootfs {
    /// The host's root (`/`; a temporary directory in tests).
    root: PathBuf,
    entries: Vec<(String, HostEntry)>,
    /// The SDK directory shared with every sandbox, at the same path.
    sdk: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostEntry {
    /// A directory, bound read-only.
    Dir,
    /// A symlink, recreated with the same target.
    Symlink(PathBuf),
}

impl HostRootfs {
    /// Looks at `root`'s top-level system directories; absent ones are skipped.
    pub(crate) fn scan(root: &Path) -> std::io::Result<HostRootfs> {
        let mut entries = Vec::new();
        for name in HOST_DIRS {
            let path = root.join(name);
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if meta.file_type().is_symlink() {
                entries.push((
                    name.to_string(),
                    HostEntry::Symlink(std::fs::read_link(&path)?),
                ));
            } else if meta.is_dir() {
                entries.push((name.to_string(), HostEntry::Dir));
            }
        }
        Ok(HostRootfs {
            root: root.to_path_buf(),
            entries,
            sdk: None,
        })
    }

    /// Shares host directory `sdk` (absolute, normalized, existing) with every sandbox, at the
    /// same path. Refused where the sandbox has something of its own (`/usr`, `/tmp`,
    /// `/var/task`, …) or is the root.
    pub(crate) fn share_sdk(&mut self, sdk: &Path) -> Result<(), SandboxError> {
        use std::path::Component;
        let refuse = |why: &str| {
            Err(SandboxError::InvalidSpec(format!(
                "the SDK directory {} {why}",
                sdk.display()
            )))
        };
        let normal: Vec<&std::ffi::OsStr> = match sdk
            .components()
            .skip_while(|c| *c == Component::RootDir)
            .map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
        {
            Some(n) if sdk.is_absolute() && !n.is_empty() => n,
            _ => return refuse("must be an absolute path without '.' or '..', not /"),
        };
        let top = normal[0].to_string_lossy();
        let own = ["tmp", "proc", "dev", "node_modules"];
        if HOST_DIRS.contains(&top.as_ref()) || own.contains(&top.as_ref()) {
            return refuse(&format!(
                "cannot be under /{top}, which sandboxes have their own"
            ));
        }
        if sdk.starts_with(crate::TASK_ROOT) || sdk.starts_with(crate::RUNTIME_ROOT) {
            return refuse("cannot be under /var/task or /var/runtime");
        }
        if !sdk.is_dir() {
            return refuse("is not a directory");
        }
        self.sdk = Some(sdk.to_path_buf());
        Ok(())
    }
}

/// One step of building the root, with every path already a C string.
pub(crate) enum MountOp {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    Mkdir {
        path: CString,
        mode: mode_t,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Creates an empty file to bind a device node on.
    Touch {
        path: CString,
    },
    /// `pivot_root` into `new_root`, then detach the old root.
    PivotRoot {
        new_root: CString,
    },
}

fn opt_ptr(s: &Option<CString>) -> *const libc::c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(rc: c_int) -> Result<(), c_int> {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

impl MountOp {
    /// Runs the step. Called in the child between `clone` and `execve`: raw system calls only,
    /// no allocation. Returns the `errno` of the failing call.
    pub(crate) fn apply(&self) -> Result<(), c_int> {
        // SAFETY: every pointer is a live NUL-terminated string owned by `self`, or null where
        // the system call accepts null.
        unsafe {
            match self {
                MountOp::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => check(libc::mount(
                    opt_ptr(source),
                    target.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                )),
                MountOp::Mkdir { path, mode } => match check(libc::mkdir(path.as_ptr(), *mode)) {
                    Err(libc::EEXIST) => Ok(()),
                    other => other,
                },
                MountOp::Symlink { target, link } => {
                    check(libc::symlink(target.as_ptr(), link.as_ptr()))
                }
                MountOp::Touch { path } => {
                    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOCTTY;
                    let fd = libc::open(path.as_ptr(), flags, 0o644 as libc::c_uint);
                    check(fd)?;
                    libc::close(fd);
                    Ok(())
                }
                MountOp::PivotRoot { new_root } => {
                    let dot: &CStr = c".";
                    check(libc::chdir(new_root.as_ptr()))?;
                    // pivot_root(".", "."): the old root ends up stacked under the new one,
                    // from where it is detached; no directory for it is needed.
                    check(
                        libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as c_int,
                    )?;
                    check(libc::umount2(dot.as_ptr(), libc::MNT_DETACH))?;
                    check(libc::chdir(c"/".as_ptr()))
                }
            }
        }
    }
}

impl fmt::Display for MountOp {
    /// What the step does, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            MountOp::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let target = s(target);
                let fstype = fstype.as_ref().map(s).unwrap_or_default();
                if flags & libc::MS_REMOUNT != 0 {
                    write!(f, "make {target} read-only")
                } else if flags & libc::MS_BIND != 0 {
                    let source = source.as_ref().map(s).unwrap_or_default();
                    write!(f, "bind-mount {source} on {target}")
                } else if flags & libc::MS_PRIVATE != 0 {
                    write!(f, "make every mount below {target} private")
                } else if let Some(data) = data {
                    write!(f, "mount {fstype} ({}) on {target}", s(data))
                } else {
                    write!(f, "mount {fstype} on {target}")
                }
            }
            MountOp::Mkdir { path, .. } => write!(f, "create directory {}", s(path)),
            MountOp::Symlink { target, link } => {
                write!(f, "create symlink {} -> {}", s(link), s(target))
            }
            MountOp::Touch { path } => write!(f, "create {}", s(path)),
            MountOp::PivotRoot { new_root } => write!(f, "pivot_root into {}", s(new_root)),
        }
    }
}

impl fmt::Debug for MountOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A path as a C string; paths with NUL bytes are refused.
/// Attaches detached mounts (`open_tree`) at their paths inside the mount namespace of the
/// process behind `pidfd`, from outside: for a sandbox whose own processes may no longer
/// mount (a zygote's child joining it, a stem cell already running as the sandbox user). A
/// short-lived thread unshares its file-system attributes, enters the namespace and moves the
/// mounts in; the rest of the server is untouched.
pub(crate) fn attach_inside(
    pidfd: std::os::fd::BorrowedFd<'_>,
    mounts: &[(std::os::fd::OwnedFd, &CStr)],
) -> Result<(), SandboxError> {
    use std::os::fd::AsRawFd;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let pidfd = pidfd.as_raw_fd();
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::io::Result<()> {
                // SAFETY: unshare/setns/move_mount on descriptors the caller keeps open for the
                // whole scope, affecting only this thread (CLONE_FS unshared first).
                unsafe {
                    if libc::unshare(libc::CLONE_FS) != 0
                        || libc::setns(pidfd, libc::CLONE_NEWNS) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    for (fd, at) in mounts {
                        let rc = libc::syscall(
                            libc::SYS_move_mount,
                            fd.as_raw_fd(),
                            c"".as_ptr(),
                            libc::AT_FDCWD,
                            at.as_ptr(),
                            MOVE_MOUNT_F_EMPTY_PATH,
                        );
                        if rc < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("attach thread panicked")))
    })
    .map_err(SandboxError::Io)
}

pub(crate) fn c_path(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        SandboxError::InvalidSpec(format!("path {} contains a NUL byte", path.display()))
    })
}

fn c_str(s: &str) -> CString {
    CString::new(s).expect("static mount strings have no NUL")
}

/// Builds the plan, with paths under `new_root` (the host directory the tmpfs root goes on).
struct Builder<'a> {
    new_root: &'a Path,
    ops: Vec<MountOp>,
}

impl Builder<'_> {
    fn inside(&self, rel: &str) -> Result<CString, SandboxError> {
        match rel.trim_start_matches('/') {
            "" => c_path(self.new_root),
            rel => c_path(&self.new_root.join(rel)),
        }
    }

    fn mount(
        &mut self,
        source: Option<CString>,
        target: CString,
        fstype: Option<&str>,
        flags: c_ulong,
        data: Option<String>,
    ) {
        self.ops.push(MountOp::Mount {
            source,
            target,
            fstype: fstype.map(c_str),
            flags,
            data: data.map(|d| CString::new(d).expect("mount options have no NUL")),
        });
    }

    fn mkdir(&mut self, rel: &str, mode: mode_t) -> Result<(), SandboxError> {
        let path = self.inside(rel)?;
        self.ops.push(MountOp::Mkdir { path, mode });
        Ok(())
    }

    fn tmpfs(&mut self, rel: &str, flags: c_ulong, options: String) -> Result<(), SandboxError> {
        let target = self.inside(rel)?;
        self.mount(
            Some(c_str("tmpfs")),
            target,
            Some("tmpfs"),
            flags,
            Some(options),
        );
        Ok(())
    }

    /// Binds `source` (a host path) on `rel`, which must exist, without remounting.
    fn bind(&mut self, source: &Path, rel: &str) -> Result<(), SandboxError> {
        let target = self.inside(rel)?;
        self.mount(Some(c_path(source)?), target, None, libc::MS_BIND, None);
        Ok(())
    }

    fn read_only(&mut self, rel: &str, flags: c_ulong) -> Result<(), SandboxError> {
        let target = self.inside(rel)?;
        self.mount(None, target, None, flags, None);
        Ok(())
    }

    /// A directory `rel` holding a read-only, nosuid, nodev view of host directory `source`.
    fn bind_dir_ro(&mut self, source: &Path, rel: &str) -> Result<(), SandboxError> {
        self.mkdir(rel, 0o755)?;
        self.bind(source, rel)?;
        self.read_only(rel, RO_REMOUNT)
    }

    fn symlink(&mut self, target: &Path, rel: &str) -> Result<(), SandboxError> {
        let link = self.inside(rel)?;
        self.ops.push(MountOp::Symlink {
            target: c_path(target)?,
            link,
        });
        Ok(())
    }
}

/// Everything the child mounts, in order, for one sandbox.
///
/// `code`: the code and runtime directories to bind at `/var/task` and `/var/runtime`; `None`
/// (a sandbox made ahead) leaves both empty, to be attached later (`attach`). Without `proc`,
/// `/proc` stays an empty directory: a zygote's child mounts the one of its own PID namespace.
pub(crate) fn plan(
    host: &HostRootfs,
    new_root: &Path,
    code: Option<(&Path, &Path)>,
    tmp_mb: u32,
    proc: bool,
) -> Result<Vec<MountOp>, SandboxError> {
    let mut b = Builder {
        new_root,
        ops: Vec::with_capacity(48),
    };
    let private = libc::MS_REC | libc::MS_PRIVATE;
    b.mount(None, c_str("/"), None, private, None);
    b.tmpfs(
        "",
        libc::MS_NOSUID | libc::MS_NODEV,
        "size=1m,nr_inodes=4096,mode=0755".into(),
    )?;

    for (name, entry) in &host.entries {
        match entry {
            HostEntry::Dir => b.bind_dir_ro(&host.root.join(name), name)?,
            HostEntry::Symlink(target) => b.symlink(target, name)?,
        }
    }

    b.mkdir("var", 0o755)?;
    match code {
        Some((code_dir, runtime_dir)) => {
            b.bind_dir_ro(code_dir, crate::TASK_ROOT)?;
            b.bind_dir_ro(runtime_dir, crate::RUNTIME_ROOT)?;
        }
        None => {
            b.mkdir(crate::TASK_ROOT, 0o755)?;
            b.mkdir(crate::RUNTIME_ROOT, 0o755)?;
        }
    }

    if let Some(sdk) = &host.sdk {
        let rel = sdk.strip_prefix("/").unwrap_or(sdk);
        let mut parents: Vec<&Path> = rel
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        parents.reverse();
        for parent in parents {
            b.mkdir(&parent.to_string_lossy(), 0o755)?;
        }
        b.bind_dir_ro(sdk, &rel.to_string_lossy())?;
        b.symlink(
            &Path::new(crate::RUNTIME_ROOT).join("sdk/node/node_modules"),
            "node_modules",
        )?;
    }

    b.mkdir("tmp", 0o755)?;
    b.tmpfs(
        "tmp",
        libc::MS_NOSUID | libc::MS_NODEV,
        format!("size={tmp_mb}m,mode=1777"),
    )?;

    b.mkdir("proc", 0o555)?;
    if proc {
        let target = b.inside("proc")?;
        let proc_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        b.mount(Some(c_str("proc")), target, Some("proc"), proc_flags, None);
    }

    b.mkdir("dev", 0o755)?;
    let dev_flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    b.tmpfs("dev", dev_flags, "size=64k,nr_inodes=64,mode=0755".into())?;
    for dev in DEVICES {
        let rel = format!("dev/{dev}");
        let path = b.inside(&rel)?;
        b.ops.push(MountOp::Touch { path });
        b.bind(&host.root.join("dev").join(dev), &rel)?;
    }
    for (name, target) in DEV_LINKS {
        b.symlink(Path::new(target), &format!("dev/{name}"))?;
    }
    b.mkdir("dev/shm", 0o755)?;
    let shm_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    b.tmpfs("dev/shm", shm_flags, format!("size={tmp_mb}m,mode=1777"))?;
    b.read_only(
        "dev",
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | dev_flags,
    )?;

    b.ops.push(MountOp::PivotRoot {
        new_root: c_path(new_root)?,
    });
    b.mount(None, c_str("/"), None, RO_REMOUNT, None);
    Ok(b.ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_host() -> (tempfile::TempDir, HostRootfs) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["usr/bin", "usr/lib", "etc", "lib64", "dev"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        // Not system directories: never exposed.
        std::fs::create_dir_all(root.join("root")).unwrap();
        std::fs::create_dir_all(root.join("work")).unwrap();
        let host = HostRootfs::scan(root).unwrap();
        (tmp, host)
    }

    fn render(ops: &[MountOp], new_root: &Path) -> Vec<String> {
        let r = new_root.display().to_string();
        ops.iter()
            .map(|op| op.to_string().replace(&r, "R"))
            .collect()
    }

    #[test]
    fn scan_keeps_symlinks_as_symlinks_and_skips_the_rest() {
        let (_tmp, host) = fake_host();
        let names: Vec<(&str, &HostEntry)> =
            host.entries.iter().map(|(n, e)| (n.as_str(), e)).collect();
        assert_eq!(
            names,
            vec![
                ("usr", &HostEntry::Dir),
                ("bin", &HostEntry::Symlink("usr/bin".into())),
                ("lib", &HostEntry::Symlink("usr/lib".into())),
                ("lib64", &HostEntry::Dir),
                ("etc", &HostEntry::Dir),
            ]
        );
    }

    #[test]
    fn plan_builds_a_minimal_read_only_root() {
        let (tmp, host) = fake_host();
        let h = tmp.path().display().to_string();
        let new_root = Path::new("/state/rootfs");
        let ops = plan(
            &host,
            new_root,
            Some((Path::new("/data/code/f1"), Path::new("/data/runtimes"))),
            256,
            true,
        )
        .unwrap();
        let got: Vec<String> = render(&ops, new_root)
            .into_iter()
            .map(|s| s.replace(&h, "H"))
            .collect();
        let expected = [
            "make every mount below / private",
            "mount tmpfs (size=1m,nr_inodes=4096,mode=0755) on R",
            "create directory R/usr",
            "bind-mount H/usr on R/usr",
            "make R/usr read-only",
            "create symlink R/bin -> usr/bin",
            "create symlink R/lib -> usr/lib",
            "create directory R/lib64",
            "bind-mount H/lib64 on R/lib64",
            "make R/lib64 read-only",
            "create directory R/etc",
            "bind-mount H/etc on R/etc",
            "make R/etc read-only",
            "create directory R/var",
            "create directory R/var/task",
            "bind-mount /data/code/f1 on R/var/task",
            "make R/var/task read-only",
            "create directory R/var/runtime",
            "bind-mount /data/runtimes on R/var/runtime",
            "make R/var/runtime read-only",
            "create directory R/tmp",
            "mount tmpfs (size=256m,mode=1777) on R/tmp",
            "create directory R/proc",
            "mount proc on R/proc",
            "create directory R/dev",
            "mount tmpfs (size=64k,nr_inodes=64,mode=0755) on R/dev",
            "create R/dev/null",
            "bind-mount H/dev/null on R/dev/null",
            "create R/dev/zero",
            "bind-mount H/dev/zero on R/dev/zero",
            "create R/dev/full",
            "bind-mount H/dev/full on R/dev/full",
            "create R/dev/random",
            "bind-mount H/dev/random on R/dev/random",
            "create R/dev/urandom",
            "bind-mount H/dev/urandom on R/dev/urandom",
            "create symlink R/dev/fd -> /proc/self/fd",
            "create symlink R/dev/stdin -> /proc/self/fd/0",
            "create symlink R/dev/stdout -> /proc/self/fd/1",
            "create symlink R/dev/stderr -> /proc/self/fd/2",
            "create directory R/dev/shm",
            "mount tmpfs (size=256m,mode=1777) on R/dev/shm",
            "make R/dev read-only",
            "pivot_root into R",
            "make / read-only",
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn the_sdk_is_bound_read_only_at_its_own_path() {
        let (_tmp, mut host) = fake_host();
        // Any existing directory outside what sandboxes have of their own (not under /tmp).
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        host.share_sdk(&sdk).unwrap();
        let new_root = Path::new("/state/rootfs");
        let ops = plan(&host, new_root, None, 16, true).unwrap();
        let got = render(&ops, new_root);
        let rel = sdk.display().to_string();
        let at = got
            .iter()
            .position(|op| *op == format!("bind-mount {rel} on R{rel}"))
            .unwrap_or_else(|| panic!("no bind of the SDK in {got:#?}"));
        assert_eq!(got[at - 1], format!("create directory R{rel}"));
        assert_eq!(got[at + 1], format!("make R{rel} read-only"));
        assert_eq!(
            got[at + 2],
            "create symlink R/node_modules -> /var/runtime/sdk/node/node_modules"
        );
        // Every parent is made first, outermost first.
        let parent = sdk.parent().unwrap().display().to_string();
        let made = |p: &str| {
            got.iter()
                .position(|op| *op == format!("create directory R{p}"))
        };
        assert!(made(&parent).unwrap() < at - 1);
        for bad in [
            "/usr/share/sdk",
            "/tmp/sdk",
            "/var/task/x",
            "/var/runtime",
            "/",
            "rel/sdk",
            "/a/../b",
        ] {
            assert!(host.share_sdk(Path::new(bad)).is_err(), "{bad}");
        }
        assert!(host
            .share_sdk(Path::new("/nonexistent-lambent-sdk"))
            .is_err());
    }

    #[test]
    fn every_bind_is_remounted_read_only_nosuid_nodev() {
        let (_tmp, host) = fake_host();
        let ops = plan(
            &host,
            Path::new("/r"),
            Some((Path::new("/c"), Path::new("/rt"))),
            1,
            true,
        )
        .unwrap();
        for (i, op) in ops.iter().enumerate() {
            let MountOp::Mount { flags, target, .. } = op else {
                continue;
            };
            let is_device = target.to_bytes().starts_with(b"/r/dev/");
            if flags & libc::MS_BIND != 0 && flags & libc::MS_REMOUNT == 0 && !is_device {
                let MountOp::Mount {
                    flags: next,
                    target: t2,
                    ..
                } = &ops[i + 1]
                else {
                    panic!("bind of {target:?} not followed by a remount");
                };
                assert_eq!(t2, target);
                assert_eq!(*next, RO_REMOUNT, "{op}");
            }
        }
    }

    #[test]
    fn paths_with_nul_bytes_are_refused() {
        let (_tmp, host) = fake_host();
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/code\0x"));
        let err = plan(
            &host,
            Path::new("/r"),
            Some((bad, Path::new("/rt"))),
            1,
            true,
        )
        .unwrap_err();
        assert!(matches!(err, SandboxError::InvalidSpec(_)), "{err}");
    }
}
