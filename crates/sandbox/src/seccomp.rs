//! The seccomp filter every fully isolated sandbox runs under, kept as data (tables of system
//! calls with the reason each is denied, as Firecracker keeps its filters) and compiled once per
//! host into one classic BPF program. The default is to allow: the filter removes kernel surface
//! a function never needs on top of what dropping root already removes; it does not whitelist.
//!
//! | system calls | result |
//! | --- | --- |
//! | [`DENIED`] | `EPERM` |
//! | `clone` with any flag of [`CLONE_NAMESPACE_FLAGS`] | `EPERM` |
//! | `clone3` | `ENOSYS`, so libc falls back to `clone`, whose flags a filter can see (`clone3` passes them in memory) |
//! | x86_64's x32 ABI (numbers with bit 30 set) | `ENOSYS`: same audit architecture, other numbers, so they would slip past the table |
//! | another architecture's ABI (`int 0x80` on x86_64) | the process is killed |
//! | everything else | allowed |
//!
//! A package zygote (`package.rs`) imports a function's dependencies under a second profile,
//! [`Profile::PackageZygote`]: the same tables, except that `mount` and `unshare` are allowed,
//! `unshare` only without `CLONE_NEWUSER`. It is root in a user namespace of its own, and
//! needs those two to make each of its children a fresh sandbox; the children then install the
//! sandbox profile on top (filters stack: the stricter verdict wins).
//!
//! The program is generated here rather than with `seccompiler`, whose linear chain of
//! comparisons made attaching the filter cost 0.25 ms per sandbox (the kernel runs the filter
//! once per system call number when it is attached, to build its cache); the table is searched
//! as a balanced binary tree instead, and the whole filter is one program (one attach, about
//! 25 µs). The result is checked exhaustively against the tables by an interpreter in the tests,
//! and for real in a forked process.

use crate::SandboxError;
use libc::c_int;

/// System calls that fail with `EPERM`, and why a function has no business making them.
pub(crate) const DENIED: &[(libc::c_long, &str)] = &[
    // Changing the file system tree or escaping it.
    (libc::SYS_mount, "mount a file system"),
    (libc::SYS_umount2, "unmount a file system"),
    (libc::SYS_pivot_root, "change the root"),
    (libc::SYS_chroot, "change the root"),
    (libc::SYS_mount_setattr, "change mount attributes"),
    (libc::SYS_move_mount, "move a mount"),
    (libc::SYS_open_tree, "clone a mount"),
    (libc::SYS_fsopen, "create a file system context"),
    (libc::SYS_fsconfig, "configure a file system context"),
    (libc::SYS_fsmount, "mount a file system context"),
    (libc::SYS_fspick, "reconfigure a mounted file system"),
    (
        libc::SYS_open_by_handle_at,
        "open files by handle, bypassing paths",
    ),
    (libc::SYS_name_to_handle_at, "get file handles"),
    (libc::SYS_quotactl, "manage disk quotas"),
    (libc::SYS_swapon, "add swap"),
    (libc::SYS_swapoff, "remove swap"),
    // Entering or creating namespaces.
    (libc::SYS_unshare, "create namespaces"),
    (libc::SYS_setns, "enter namespaces"),
    // Looking into or controlling other processes.
    (libc::SYS_ptrace, "trace processes"),
    (libc::SYS_process_vm_readv, "read another process's memory"),
    (
        libc::SYS_process_vm_writev,
        "write another process's memory",
    ),
    (
        libc::SYS_perf_event_open,
        "profile the kernel and other processes",
    ),
    // Kernel code, keys and the machine.
    (libc::SYS_kexec_load, "load a new kernel"),
    (libc::SYS_kexec_file_load, "load a new kernel"),
    (libc::SYS_init_module, "load a kernel module"),
    (libc::SYS_finit_module, "load a kernel module"),
    (libc::SYS_delete_module, "unload a kernel module"),
    (libc::SYS_bpf, "load BPF programs"),
    (libc::SYS_keyctl, "use the kernel keyring"),
    (libc::SYS_add_key, "use the kernel keyring"),
    (libc::SYS_request_key, "use the kernel keyring"),
    (libc::SYS_reboot, "reboot the machine"),
    (libc::SYS_syslog, "read the kernel log"),
    (libc::SYS_acct, "switch process accounting"),
    (
        libc::SYS_lookup_dcookie,
        "look up directory entries by cookie",
    ),
    (libc::SYS_vhangup, "hang up the terminal"),
    (
        libc::SYS_userfaultfd,
        "handle page faults in user space (an exploit primitive)",
    ),
    // The clock is the host's.
    (libc::SYS_settimeofday, "set the clock"),
    (libc::SYS_clock_settime, "set the clock"),
    (libc::SYS_clock_adjtime, "adjust the clock"),
    (libc::SYS_adjtimex, "adjust the clock"),
    // Raw port I/O.
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_iopl, "change the I/O privilege level"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_ioperm, "access I/O ports"),
];

/// System calls that fail with `ENOSYS`, as if the kernel did not have them.
pub(crate) const UNIMPLEMENTED: &[(libc::c_long, &str)] = &[(
    libc::SYS_clone3,
    "its flags are out of a filter's reach; libc falls back to clone",
)];

/// What the package zygote profile allows on top of the sandbox's: its children's namespaces
/// and mounts (`unshare` then only without `CLONE_NEWUSER`).
pub(crate) const PACKAGE_ZYGOTE_ALLOWED: &[libc::c_long] = &[libc::SYS_mount, libc::SYS_unshare];

/// Which filter to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Every sandbox's runtime.
    Sandbox,
    /// A package zygote while it imports a function's dependencies and forks its children.
    PackageZygote,
}

/// `clone` flags that make a new namespace: `clone` with any of them fails with `EPERM`.
/// (`CLONE_NEWTIME` is absent: in `clone`, its bit is part of the exit signal.)
pub(crate) const CLONE_NAMESPACE_FLAGS: &[(c_int, &str)] = &[
    (libc::CLONE_NEWNS, "mount"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUSER, "user"),
    (libc::CLONE_NEWPID, "pid"),
    (libc::CLONE_NEWNET, "network"),
];

// Classic BPF and seccomp constants (linux/bpf_common.h, linux/seccomp.h, linux/audit.h).
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The low 32 bits of `args[0]` (the kernel reads only those of `clone`'s flags).
const DATA_ARG0_LOW: u32 = if cfg!(target_endian = "little") {
    16
} else {
    20
};
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_003E);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_00B7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// Where a system call number leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Errno(u32),
    /// `clone`: look at the flags.
    CloneFlags,
    /// `unshare` in a package zygote: `EPERM` with `CLONE_NEWUSER`, otherwise allowed.
    UnshareFlags,
}

/// A jump target while generating: a number of instructions to skip, or a shared block.
#[derive(Debug, Clone, Copy)]
enum Target {
    Skip(usize),
    Block(Verdict),
}

#[derive(Debug, Clone, Copy)]
enum Insn {
    Load(u32),
    Jump {
        op: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Goto(Verdict),
    Ret(u32),
}

/// The compiled filter.
#[derive(Debug)]
pub(crate) struct SeccompProgram {
    program: Vec<libc::sock_filter>,
}

impl SeccompProgram {
    /// Compiles the tables of `profile` for the architecture Lambent was built for.
    pub(crate) fn compile(profile: Profile) -> Result<SeccompProgram, SandboxError> {
        let arch = AUDIT_ARCH.ok_or_else(|| SandboxError::Unavailable {
            missing: format!(
                "a seccomp filter for {} (x86_64 and aarch64 only)",
                std::env::consts::ARCH
            ),
        })?;
        let allowed: &[libc::c_long] = match profile {
            Profile::Sandbox => &[],
            Profile::PackageZygote => PACKAGE_ZYGOTE_ALLOWED,
        };
        let unshare = match profile {
            Profile::Sandbox => None,
            Profile::PackageZygote => Some((libc::SYS_unshare as u32, Verdict::UnshareFlags)),
        };
        let mut table: Vec<(u32, Verdict)> = DENIED
            .iter()
            .filter(|(nr, _)| !allowed.contains(nr))
            .map(|(nr, _)| (*nr as u32, Verdict::Errno(libc::EPERM as u32)))
            .chain(
                UNIMPLEMENTED
                    .iter()
                    .map(|(nr, _)| (*nr as u32, Verdict::Errno(libc::ENOSYS as u32))),
            )
            .chain([(libc::SYS_clone as u32, Verdict::CloneFlags)])
            .chain(unshare)
            .collect();
        table.sort_by_key(|(nr, _)| *nr);
        if let Some(w) = table.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(SandboxError::Seccomp(format!(
                "system call {} listed twice",
                w[0].0
            )));
        }

        let mut body = vec![
            Insn::Load(DATA_ARCH),
            Insn::Jump {
                op: JMP_JEQ_K,
                k: arch,
                jt: Target::Skip(1),
                jf: Target::Skip(0),
            },
            Insn::Ret(RET_KILL_PROCESS),
            Insn::Load(DATA_NR),
        ];
        if cfg!(target_arch = "x86_64") {
            body.push(Insn::Jump {
                op: JMP_JGE_K,
                k: X32_SYSCALL_BIT,
                jt: Target::Block(Verdict::Errno(libc::ENOSYS as u32)),
                jf: Target::Skip(0),
            });
        }
        body.extend(search(&table));
        Ok(SeccompProgram {
            program: assemble(&body)?,
        })
    }

    /// The program as raw `sock_filter`s (8 bytes each), for a Python zygote to install.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.program.len() * 8);
        for f in &self.program {
            out.extend_from_slice(&f.code.to_ne_bytes());
            out.push(f.jt);
            out.push(f.jf);
            out.extend_from_slice(&f.k.to_ne_bytes());
        }
        out
    }

    /// The program as the kernel takes it; the pointer borrows `self`.
    pub(crate) fn fprog(&self) -> libc::sock_fprog {
        libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        }
    }
}

/// A balanced binary search over `table` (sorted); falls through to nothing: every path jumps.
fn search(table: &[(u32, Verdict)]) -> Vec<Insn> {
    if table.len() <= 3 {
        let mut code: Vec<Insn> = table
            .iter()
            .map(|(nr, verdict)| Insn::Jump {
                op: JMP_JEQ_K,
                k: *nr,
                jt: Target::Block(*verdict),
                jf: Target::Skip(0),
            })
            .collect();
        code.push(Insn::Goto(Verdict::Allow));
        return code;
    }
    let (low, high) = table.split_at(table.len() / 2);
    let pivot = high[0].0;
    let low = search(low);
    let high = search(high);
    let mut code = vec![Insn::Jump {
        op: JMP_JGE_K,
        k: pivot,
        jt: Target::Skip(low.len()),
        jf: Target::Skip(0),
    }];
    code.extend(low);
    code.extend(high);
    code
}

/// Resolves shared blocks (appended after the body) into relative jumps.
fn assemble(body: &[Insn]) -> Result<Vec<libc::sock_filter>, SandboxError> {
    let blocks = [
        Verdict::Allow,
        Verdict::Errno(libc::EPERM as u32),
        Verdict::Errno(libc::ENOSYS as u32),
        Verdict::CloneFlags,
        Verdict::UnshareFlags,
    ];
    // Block layout after the body: Allow (1), EPERM (1), ENOSYS (1), clone check (3),
    // unshare check (3).
    let mut block_at = Vec::new();
    let mut pos = body.len();
    for b in blocks {
        block_at.push((b, pos));
        pos += match b {
            Verdict::CloneFlags | Verdict::UnshareFlags => 3,
            _ => 1,
        };
    }
    let start_of = |v: Verdict| {
        block_at
            .iter()
            .find(|(b, _)| *b == v)
            .map(|(_, p)| *p)
            .expect("known block")
    };
    let offset = |at: usize, target: Target| -> Result<u8, SandboxError> {
        let skip = match target {
            Target::Skip(n) => n,
            Target::Block(v) => start_of(v) - at - 1,
        };
        u8::try_from(skip)
            .map_err(|_| SandboxError::Seccomp(format!("jump of {skip} at {at} too long")))
    };
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut out = Vec::with_capacity(pos);
    for (at, insn) in body.iter().enumerate() {
        out.push(match *insn {
            Insn::Load(offset) => op(LD_W_ABS, 0, 0, offset),
            Insn::Ret(k) => op(RET_K, 0, 0, k),
            Insn::Goto(v) => op(JMP_JA, 0, 0, (start_of(v) - at - 1) as u32),
            Insn::Jump {
                op: code,
                k,
                jt,
                jf,
            } => op(code, offset(at, jt)?, offset(at, jf)?, k),
        });
    }
    let namespaces = CLONE_NAMESPACE_FLAGS
        .iter()
        .fold(0u32, |m, (f, _)| m | *f as u32);
    out.push(op(RET_K, 0, 0, RET_ALLOW));
    out.push(op(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    out.push(op(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    for forbidden in [namespaces, libc::CLONE_NEWUSER as u32] {
        out.push(op(LD_W_ABS, 0, 0, DATA_ARG0_LOW));
        out.push(op(JMP_JSET_K, 0, 1, forbidden));
        out.push(op(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    }
    // Each check falls through to the next block when its flags are clear: the clone check
    // into the unshare check (which then allows, clone's flags having no CLONE_NEWUSER), the
    // unshare check into the final ALLOW.
    out.push(op(RET_K, 0, 0, RET_ALLOW));
    Ok(out)
}

/// Installs the filter in the calling thread. Called in the child after `no_new_privs`: one
/// raw system call. Returns the `errno` on failure.
pub(crate) fn install(program: &libc::sock_fprog) -> Result<(), c_int> {
    // SAFETY: `program` points at a live BPF program; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            program as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A classic BPF interpreter for the instructions the generator emits.
    fn run(program: &[libc::sock_filter], nr: u32, arch: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        data[16..24].copy_from_slice(&arg0.to_ne_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        for _ in 0..program.len() {
            let i = program[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let at = i.k as usize;
                    acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                RET_K => return i.k,
                JMP_JA => pc += i.k as usize,
                JMP_JEQ_K | JMP_JGE_K | JMP_JSET_K => {
                    let taken = match i.code {
                        JMP_JEQ_K => acc == i.k,
                        JMP_JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
        panic!("program ran off its end or looped");
    }

    fn expected(profile: Profile, nr: u32, arg0: u64) -> u32 {
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        if cfg!(target_arch = "x86_64") && nr >= X32_SYSCALL_BIT {
            return enosys;
        }
        if profile == Profile::PackageZygote {
            if nr == libc::SYS_unshare as u32 {
                let user = arg0 & libc::CLONE_NEWUSER as u64 != 0;
                return if user { eperm } else { RET_ALLOW };
            }
            if PACKAGE_ZYGOTE_ALLOWED.iter().any(|n| *n as u32 == nr) {
                return RET_ALLOW;
            }
        }
        if DENIED.iter().any(|(n, _)| *n as u32 == nr) {
            return eperm;
        }
        if UNIMPLEMENTED.iter().any(|(n, _)| *n as u32 == nr) {
            return enosys;
        }
        if nr == libc::SYS_clone as u32 {
            let ns = CLONE_NAMESPACE_FLAGS
                .iter()
                .any(|(f, _)| arg0 & *f as u64 != 0);
            return if ns { eperm } else { RET_ALLOW };
        }
        RET_ALLOW
    }

    #[test]
    fn every_system_call_number_gets_the_tables_verdict() {
        for profile in [Profile::Sandbox, Profile::PackageZygote] {
            every_system_call_number_gets_the_verdict_of(profile);
        }
    }

    fn every_system_call_number_gets_the_verdict_of(profile: Profile) {
        let program = SeccompProgram::compile(profile).unwrap().program;
        assert!(program.len() < 200, "{} instructions", program.len());
        let arch = AUDIT_ARCH.unwrap();
        for nr in (0..1024).chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT + 165, u32::MAX]) {
            for arg0 in [0, libc::CLONE_NEWUSER as u64, libc::CLONE_NEWNET as u64] {
                assert_eq!(
                    run(&program, nr, arch, arg0),
                    expected(profile, nr, arg0),
                    "{profile:?}: system call {nr} with {arg0:#x}"
                );
            }
        }
        let clone = libc::SYS_clone as u32;
        let fork_flags =
            (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
        let thread_flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD) as u64;
        for flags in [0, fork_flags, thread_flags, 1 << 40] {
            assert_eq!(
                run(&program, clone, arch, flags),
                RET_ALLOW,
                "clone {flags:#x}"
            );
        }
        for (flag, name) in CLONE_NAMESPACE_FLAGS {
            let flags = fork_flags | *flag as u64;
            assert_eq!(
                run(&program, clone, arch, flags),
                RET_ERRNO | libc::EPERM as u32,
                "clone {name}"
            );
        }
        assert_eq!(
            run(&program, 0, 0x4000_0003, 0),
            RET_KILL_PROCESS,
            "other architecture"
        );
    }

    #[test]
    fn tables_have_no_duplicates() {
        let all: Vec<_> = DENIED
            .iter()
            .chain(UNIMPLEMENTED)
            .map(|(nr, _)| *nr)
            .collect();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
        for nr in [
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_ptrace,
            libc::SYS_bpf,
        ] {
            assert!(all.contains(&nr), "system call {nr} must be denied");
        }
    }

    /// The filter in a forked child: denied calls fail with the documented errno, the rest work.
    /// Meaningful as root (where `mount` and `unshare` would otherwise succeed); also runs
    /// unprivileged, since installing a filter only needs `no_new_privs`.
    #[test]
    fn filter_denies_what_the_table_says_in_a_real_process() {
        let program = SeccompProgram::compile(Profile::Sandbox).unwrap();
        let fprog = program.fprog();
        // SAFETY: the child makes raw system calls only, then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: raw system calls on stack data; every path ends in `_exit`.
            unsafe {
                let errno = || *libc::__errno_location();
                let expect = |rc: libc::c_long, want: c_int, code: c_int| {
                    if rc != -1 || errno() != want {
                        libc::_exit(code);
                    }
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || install(&fprog).is_err()
                {
                    libc::_exit(10);
                }
                let tmp = c"/tmp";
                let tmpfs = c"tmpfs";
                let rc = libc::mount(
                    tmpfs.as_ptr(),
                    tmp.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    std::ptr::null(),
                );
                expect(rc as libc::c_long, libc::EPERM, 11);
                expect(
                    libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER),
                    libc::EPERM,
                    12,
                );
                expect(libc::syscall(libc::SYS_setns, -1, 0), libc::EPERM, 13);
                let flags = (libc::CLONE_NEWNET | libc::SIGCHLD) as libc::c_long;
                expect(
                    libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0),
                    libc::EPERM,
                    14,
                );
                expect(libc::syscall(libc::SYS_clone3, 0, 0), libc::ENOSYS, 15);
                expect(
                    libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0),
                    libc::EPERM,
                    16,
                );
                #[cfg(target_arch = "x86_64")]
                expect(
                    libc::syscall(0x4000_0000 | libc::SYS_getpid),
                    libc::ENOSYS,
                    17,
                );
                // Allowed: a plain fork (clone without namespace flags) and ordinary calls.
                let child =
                    libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
                if child == 0 {
                    libc::_exit(0);
                }
                if child < 0 || libc::getpid() <= 0 {
                    libc::_exit(18);
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "check number {} failed",
            libc::WEXITSTATUS(status)
        );
    }
}
