//! The child's half of a sandbox: one `clone3` into new mount, PID, IPC and UTS namespaces (a
//! new network namespace too, unless one made ahead is at hand; on cgroup v2, straight into the
//! sandbox's cgroup), then every set-up step up to `execve`, in the order the crate docs list.
//!
//! The parent is a multi-threaded server, so between `clone` and `execve` the child may only
//! make async-signal-safe calls: no allocation, no locks, no formatting, no panics. Everything
//! it needs is prepared by the parent in a [`ChildPlan`] (C strings, pointer arrays, the seccomp
//! program, the mount plan); the child reads it and makes raw system calls. A failing step is
//! reported over the handshake socket and the child exits with 127.

use crate::handshake::ChildChannel;
use crate::mounts::MountOp;
use crate::{seccomp, Layers, SetupStep, HOSTNAME, RUNTIME_API_PORT, SANDBOX_GID, SANDBOX_UID};
use libc::{c_char, c_int, c_long};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The namespaces a sandbox gets at birth: mount, PID, IPC and UTS (all four but in
/// measurements). A cgroup namespace follows once it has joined its cgroup; the network
/// namespace is either new too or one made ahead, see `netpool`.
/// Without `own_pid`, no PID namespace: a Python zygote's child brings its own (`zygote.rs`).
fn namespaces(layers: Layers, own_pid: bool) -> u64 {
    let mount = if layers.root { libc::CLONE_NEWNS } else { 0 };
    let others = match layers.pid_ipc_uts {
        true => libc::CLONE_NEWIPC | libc::CLONE_NEWUTS,
        false => 0,
    };
    let pid = match layers.pid_ipc_uts && own_pid {
        true => libc::CLONE_NEWPID,
        false => 0,
    };
    (mount | others | pid) as u64
}
const CLONE_NEWNET: u64 = libc::CLONE_NEWNET as u64;
const CLONE_PIDFD: u64 = libc::CLONE_PIDFD as u64;
/// (Not libc's constant: it overflows libc's `c_int`.)
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// Descriptors a sandbox may open (AWS Lambda's number).
const NOFILE: libc::rlim_t = 1024;

/// Everything the child needs, prepared by the parent. Pointers stay valid in the child: it
/// has a copy of the parent's memory.
pub(crate) struct ChildPlan<'a> {
    pub channel: ChildChannel,
    /// `cgroup.procs` of each of the sandbox's cgroups, to write `0` into.
    pub join_cgroup: &'a [RawFd],
    /// A network namespace made ahead, with the runtime API listener already in it (the parent
    /// holds that); `None`: the child gets a new one and makes the listener itself.
    pub netns: Option<RawFd>,
    pub mounts: &'a [MountOp],
    pub seccomp: &'a libc::sock_fprog,
    /// Which isolation steps to take (all of them but in measurements).
    pub layers: Layers,
    /// What to run. `None`: a sandbox made ahead (`ready.rs`), which sets everything up
    /// with empty `/var/task` and `/var/runtime`, says so, and waits for its program.
    pub exec: Option<Exec<'a>>,
    /// Stop with exit status 0 just before `execve` (the start-up self-test).
    pub dry_run: bool,
    /// A PID namespace of its own (always, but for a sandbox made ahead for a zygote's child,
    /// which makes its own and mounts its `/proc`).
    pub own_pid_namespace: bool,
}

/// The program a sandbox runs, and where its output goes.
pub(crate) struct Exec<'a> {
    /// Write end of the output pipe; becomes stdout and stderr. At least 3.
    pub output: RawFd,
    /// NULL-terminated; `argv[0]` is the program's absolute path inside the sandbox.
    pub argv: &'a [*const c_char],
    /// NULL-terminated `KEY=value` strings.
    pub envp: &'a [*const c_char],
    /// The working directory: `/var/task`, or the code's host path without the root layer.
    pub workdir: &'a std::ffi::CStr,
}

/// Strings (argv plus environment) a sandbox made ahead accepts.
const PROGRAM_STRINGS_MAX: usize = 4096;

/// The sandbox's init process, as the parent sees it.
#[derive(Debug)]
pub(crate) struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// `struct clone_args` (Linux 5.7 layout).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Starts the sandbox's init in new namespaces and runs `plan` in it. With `cgroup_dir` (v2)
/// the child is born in that cgroup; otherwise it joins through `plan.join_cgroup`. Falls back
/// from `clone3` to `clone` where `clone3` is unavailable (then without `CLONE_INTO_CGROUP`).
pub(crate) fn clone_sandbox(plan: &ChildPlan<'_>, cgroup_dir: Option<RawFd>) -> io::Result<Child> {
    // Block every signal around the clone, so no handler of the server's runs in the child
    // before it has reset them all.
    // SAFETY: sigset_t is plain data; pthread_sigmask only reads/writes these locals.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    // SAFETY: the child branch only runs `run`, which never returns.
    let result = unsafe { clone_blocked(plan, cgroup_dir) };
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

/// # Safety
/// Signals must be blocked in the calling thread.
unsafe fn clone_blocked(plan: &ChildPlan<'_>, cgroup_dir: Option<RawFd>) -> io::Result<Child> {
    let mut pidfd: c_int = -1;
    let namespaces =
        namespaces(plan.layers, plan.own_pid_namespace) | plan.netns.map_or(CLONE_NEWNET, |_| 0);
    let args = CloneArgs {
        flags: namespaces | CLONE_PIDFD | cgroup_dir.map_or(0, |_| CLONE_INTO_CGROUP),
        pidfd: &mut pidfd as *mut c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    // SAFETY: a fork-like clone (no CLONE_VM): the child gets a copy of this thread's stack.
    let mut rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == 0 {
        // SAFETY: we are the child.
        unsafe { run(plan, cgroup_dir.is_some()) }
    }
    if rc < 0 && errno() == libc::ENOSYS {
        // clone(flags, stack, parent_tid, ...): with CLONE_PIDFD the pidfd lands in parent_tid.
        let flags = (namespaces | CLONE_PIDFD) as c_long | libc::SIGCHLD as c_long;
        // SAFETY: as above; a null stack means "the same stack, copied".
        rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags,
                0 as c_long,
                &mut pidfd as *mut c_int,
                0 as c_long,
                0 as c_long,
            )
        };
        if rc == 0 {
            // SAFETY: we are the child.
            unsafe { run(plan, false) }
        }
    }
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel stored a new pidfd for the child.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Child {
        pid: rc as i32,
        pidfd,
    })
}

/// Reports a failed set-up step to the parent and exits with 127. Async-signal-safe.
fn die(channel: ChildChannel, step: SetupStep, index: usize, errno: c_int) -> ! {
    channel.send_failure(step, index as u32, errno);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(127) }
}

/// The child, from `clone` to `execve`. Never returns.
///
/// # Safety
/// Only in the child of a fork-like clone; async-signal-safe calls only from here on.
unsafe fn run(plan: &ChildPlan<'_>, in_cgroup: bool) -> ! {
    let (channel, layers) = (plan.channel, plan.layers);
    let fail =
        |step: SetupStep, index: usize, errno: c_int| -> ! { die(channel, step, index, errno) };
    let ok = |rc: c_int, step: SetupStep| {
        if rc < 0 {
            fail(step, 0, errno());
        }
    };

    // SAFETY (whole block): raw system calls on data the plan or this stack owns.
    unsafe {
        reset_signals();
        libc::umask(0o022);
        ok(libc::setsid(), SetupStep::NewSession);

        if !in_cgroup {
            for fd in plan.join_cgroup {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    fail(SetupStep::JoinCgroup, 0, errno());
                }
            }
        }
        if layers.cgroup {
            ok(
                libc::unshare(libc::CLONE_NEWCGROUP),
                SetupStep::CgroupNamespace,
            );
        }

        if let Some(netns) = plan.netns {
            ok(
                libc::setns(netns, libc::CLONE_NEWNET),
                SetupStep::NetworkNamespace,
            );
        } else {
            if let Err(e) = loopback_up() {
                fail(SetupStep::Loopback, 0, e);
            }
            let listener = listen_runtime_api().unwrap_or_else(|e| fail(SetupStep::Listen, 0, e));
            if let Err(e) = channel.send_listener(listener) {
                fail(SetupStep::SendListener, 0, e);
            }
            libc::close(listener);
        }

        for (i, op) in plan.mounts.iter().enumerate() {
            if let Err(e) = op.apply() {
                fail(SetupStep::Mount, i, e);
            }
        }
        if layers.pid_ipc_uts {
            ok(
                libc::sethostname(HOSTNAME.as_ptr().cast(), HOSTNAME.len()),
                SetupStep::Hostname,
            );
        }
        match &plan.exec {
            Some(exec) => start(
                plan,
                plan.seccomp,
                exec.output,
                None,
                exec.argv.as_ptr(),
                exec.envp.as_ptr(),
                exec.workdir,
            ),
            None => wait_for_program(plan),
        }
    }
}

/// A sandbox made ahead: says it is ready, waits for its program, attaches the code and
/// runtime mounts it came with at `/var/task` and `/var/runtime`, and starts it.
///
/// # Safety
/// Child only, after every set-up step up to the hostname.
unsafe fn wait_for_program(plan: &ChildPlan<'_>) -> ! {
    let channel = plan.channel;
    let fail =
        |step: SetupStep, index: usize, errno: c_int| -> ! { die(channel, step, index, errno) };
    // SAFETY (whole block): raw system calls on memory this process maps and owns.
    unsafe {
        // Whatever else the server had open when this process was cloned (client
        // connections, other sandboxes' handshake and output ends) must not stay open for as
        // long as this sandbox waits: only the channel stays, and /dev/null as stdio.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null < 0 || (0..3).any(|fd| libc::dup2(null, fd) < 0) {
            fail(SetupStep::Stdio, 0, errno());
        }
        let keep = channel.0 as libc::c_uint;
        if keep > 3 {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                keep - 1,
                0 as libc::c_uint,
            );
        }
        libc::syscall(
            libc::SYS_close_range,
            keep + 1,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
        // The seccomp program lives in the server's heap: keep a copy of our own, then let
        // go of the server's memory this process inherited, so that `execve` at the claim
        // does not have to tear it down (most of its time).
        let seccomp = own_seccomp_copy(plan.seccomp)
            .unwrap_or_else(|e| fail(SetupStep::ReceiveProgram, 0, e));
        shed_inherited_memory(&[seccomp.filter as usize]);
        if plan.layers.user {
            if let Err(e) = drop_bounding_set() {
                fail(SetupStep::DropPrivileges, 0, e);
            }
        }
        if channel.send_ready().is_err() {
            libc::_exit(0); // the host is gone
        }
        let pointers_len = (PROGRAM_STRINGS_MAX + 2) * std::mem::size_of::<*const c_char>();
        let map = |len: usize| {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                fail(SetupStep::ReceiveProgram, 0, errno());
            }
            p
        };
        let strings = std::slice::from_raw_parts_mut(
            map(crate::handshake::PROGRAM_MAX).cast::<u8>(),
            crate::handshake::PROGRAM_MAX,
        );
        let pointers = std::slice::from_raw_parts_mut(
            map(pointers_len).cast::<*const c_char>(),
            PROGRAM_STRINGS_MAX + 2,
        );
        let program = match channel.recv_program(strings) {
            Ok(Some(program)) => program,
            Ok(None) => libc::_exit(0), // dropped unused
            Err(e) => fail(SetupStep::ReceiveProgram, 0, e),
        };
        let (argc, envc) = (program.argc, program.envc);
        if argc == 0 || argc + envc > PROGRAM_STRINGS_MAX {
            fail(SetupStep::ReceiveProgram, 0, libc::EPROTO);
        }
        // argv pointers, NULL, envp pointers, NULL.
        let (mut found, mut begin) = (0usize, 0usize);
        for (i, byte) in strings[..program.len].iter().enumerate() {
            if *byte == 0 {
                let slot = if found < argc { found } else { found + 1 };
                if found >= argc + envc {
                    fail(SetupStep::ReceiveProgram, 0, libc::EPROTO);
                }
                pointers[slot] = strings.as_ptr().add(begin).cast();
                found += 1;
                begin = i + 1;
            }
        }
        if found != argc + envc || begin != program.len {
            fail(SetupStep::ReceiveProgram, 0, libc::EPROTO);
        }
        pointers[argc] = std::ptr::null();
        pointers[argc + 1 + envc] = std::ptr::null();
        let [code, runtime, output, stdin] = program.fds;
        for (i, (fd, at)) in [(code, c"/var/task"), (runtime, c"/var/runtime")]
            .into_iter()
            .enumerate()
        {
            let rc = libc::syscall(
                libc::SYS_move_mount,
                fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                at.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            );
            if rc < 0 {
                fail(SetupStep::AttachCode, i, errno());
            }
            libc::close(fd);
        }
        start(
            plan,
            &seccomp,
            output,
            Some(stdin),
            pointers.as_ptr(),
            pointers.as_ptr().add(argc + 1),
            c"/var/task",
        )
    }
}

/// A copy of `program` in memory this process maps itself.
///
/// # Safety
/// Child only; `program` points at a live BPF program.
unsafe fn own_seccomp_copy(program: &libc::sock_fprog) -> Result<libc::sock_fprog, c_int> {
    let bytes = usize::from(program.len) * std::mem::size_of::<libc::sock_filter>();
    // SAFETY: a fresh private anonymous mapping, then a copy of `bytes` from a live program.
    unsafe {
        let copy = libc::mmap(
            std::ptr::null_mut(),
            bytes.max(1),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if copy == libc::MAP_FAILED {
            return Err(errno());
        }
        std::ptr::copy_nonoverlapping(program.filter.cast::<u8>(), copy.cast::<u8>(), bytes);
        Ok(libc::sock_fprog {
            len: program.len,
            filter: copy.cast(),
        })
    }
}

/// Most inherited anonymous mappings [`shed_inherited_memory`] lets go of.
const SHED_MAX: usize = 512;

/// Unmaps the anonymous memory this process inherited from the server (its heap, its other
/// threads' stacks, …), except the mappings holding this thread's stack and thread-local
/// storage and those holding an address of `keep`. A sandbox made ahead does this while it
/// waits: what it unmaps it never reads again (everything it still needs is on its stack or
/// in `keep`), and its `execve` then has little to tear down. File mappings (code, read-only
/// data) stay. Best effort: if `/proc/self/maps` cannot be read whole, nothing is unmapped.
///
/// # Safety
/// Child only, with `/proc` of its own mounted; after this, nothing but the stack, the
/// thread-local storage, file mappings and `keep` may be touched.
unsafe fn shed_inherited_memory(keep: &[usize]) {
    let marker = 0u8;
    let stack = std::ptr::addr_of!(marker) as usize;
    // SAFETY: the calling thread's errno lives in its thread-local storage.
    let tls = unsafe { libc::__errno_location() } as usize;
    let kept = |start: usize, end: usize| {
        [stack, tls]
            .iter()
            .chain(keep)
            .any(|&a| (start..end).contains(&a))
    };
    let mut shed = [(0usize, 0usize); SHED_MAX];
    let mut count = 0;
    // SAFETY: reading /proc/self/maps into a stack buffer with raw calls.
    let complete = unsafe {
        let fd = libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut filled = 0usize;
        // End of the last mapping that was not inherited anonymous memory.
        let mut file_end = 0usize;
        let complete = 'read: loop {
            let n = libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled);
            if n < 0 {
                break false;
            }
            filled += n as usize;
            let mut begin = 0;
            while let Some(nl) = buf[begin..filled].iter().position(|&b| b == b'\n') {
                match maps_line(&buf[begin..begin + nl]) {
                    // Right after a file's mapping: that object's `.bss`.
                    Some((start, end, true)) if start == file_end => file_end = end,
                    Some((start, end, true)) => {
                        if !kept(start, end) && count < SHED_MAX {
                            shed[count] = (start, end);
                            count += 1;
                        }
                    }
                    Some((_, end, false)) => file_end = end,
                    None => break 'read false,
                }
                begin += nl + 1;
            }
            if n == 0 {
                break begin == filled;
            }
            if begin == 0 && filled == buf.len() {
                break false; // a line longer than the buffer
            }
            buf.copy_within(begin..filled, 0);
            filled -= begin;
        };
        libc::close(fd);
        complete
    };
    if !complete {
        return;
    }
    for &(start, end) in &shed[..count] {
        // SAFETY: unmapping inherited anonymous memory this process no longer uses.
        unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
    }
}

/// One line of `/proc/self/maps`: its range, and whether it is anonymous private memory the
/// server had (no file: the heap, stacks, anonymous mappings; not the kernel's `[vdso]`,
/// `[vvar]`, `[vsyscall]`). `None` if it does not parse.
fn maps_line(line: &[u8]) -> Option<(usize, usize, bool)> {
    let hex = |s: &[u8]| -> Option<usize> {
        let mut v = 0usize;
        for &b in s {
            let d = (b as char).to_digit(16)?;
            v = v.checked_mul(16)?.checked_add(d as usize)?;
        }
        (!s.is_empty()).then_some(v)
    };
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let (start, end) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    let perms = fields.next()?;
    let (_offset, _dev, inode) = (fields.next()?, fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or(b"");
    let private = perms.get(3) == Some(&b'p');
    let anonymous = inode == b"0"
        && (path.is_empty()
            || path == b"[heap]"
            || path == b"[stack]"
            || path.starts_with(b"[anon:"));
    Some((start, end, private && anonymous))
}

/// `move_mount`: the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// The last steps, identical for every sandbox: standard descriptors, limits, the user, the
/// seccomp filter, the working directory, `execve`.
///
/// # Safety
/// Child only; `argv` and `envp` NULL-terminated arrays of NUL-terminated strings.
unsafe fn start(
    plan: &ChildPlan<'_>,
    seccomp: &libc::sock_fprog,
    output: RawFd,
    stdin: Option<RawFd>,
    argv: *const *const c_char,
    envp: *const *const c_char,
    workdir: &std::ffi::CStr,
) -> ! {
    let (channel, layers) = (plan.channel, plan.layers);
    let fail =
        |step: SetupStep, index: usize, errno: c_int| -> ! { die(channel, step, index, errno) };
    let ok = |rc: c_int, step: SetupStep| {
        if rc < 0 {
            fail(step, 0, errno());
        }
    };
    // SAFETY (whole block): raw system calls on data the plan or the caller owns.
    unsafe {
        if let Err(e) = stdio(output, stdin) {
            fail(SetupStep::Stdio, 0, e);
        }
        // Everything but 0-2 closes at execve; the handshake socket stays usable until then.
        let rc = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        ok(rc as c_int, SetupStep::CloseFds);

        let nofile = libc::rlimit {
            rlim_cur: NOFILE,
            rlim_max: NOFILE,
        };
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        ok(
            libc::setrlimit(libc::RLIMIT_NOFILE, &nofile),
            SetupStep::Rlimits,
        );
        ok(
            libc::setrlimit(libc::RLIMIT_CORE, &no_core),
            SetupStep::Rlimits,
        );
        ok(batch_scheduling(), SetupStep::Scheduling);

        if layers.user {
            // A sandbox made ahead emptied its bounding set while it waited.
            let bounding_set = match stdin {
                Some(_) => Ok(()),
                None => drop_bounding_set(),
            };
            if let Err(e) = bounding_set.and_then(|()| become_sandbox_user()) {
                fail(SetupStep::DropPrivileges, 0, e);
            }
            ok(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                SetupStep::NoNewPrivileges,
            );
        }
        if layers.seccomp {
            if let Err(e) = seccomp::install(seccomp) {
                fail(SetupStep::Seccomp, 0, e);
            }
        }
        ok(libc::chdir(workdir.as_ptr()), SetupStep::Chdir);

        // Set-up is done. Said before the `execve`, which ends this process's part of the
        // handshake when it works: end-of-file without it is a child killed during set-up.
        // Best effort: a parent that went away learns nothing either way.
        let _ = channel.send_exec();
        if plan.dry_run {
            libc::_exit(0);
        }
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            0 as c_long,
            8 as c_long,
        );
        libc::execve(*argv, argv, envp);
        fail(SetupStep::Exec, 0, errno())
    }
}

/// Every signal back to its default action (ignored signals would stay ignored across
/// `execve`: Rust servers ignore `SIGPIPE`, for one). Errors are irrelevant: the kernel refuses
/// only `SIGKILL`/`SIGSTOP`, and libc its two internal signals, whose handlers `execve` resets.
///
/// # Safety
/// Child only.
unsafe fn reset_signals() {
    // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask.
    unsafe {
        let dfl: libc::sigaction = std::mem::zeroed();
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Brings the calling thread's network namespace's `lo` up. Async-signal-safe: used by the
/// child, and by the `netpool` thread.
/// Makes the calling process (and what it forks) `SCHED_BATCH`: a sandbox's runtime woken by
/// the server's write of an invocation does not preempt the server on that core, but runs
/// when the server next waits (or at the next tick), so that the server finishes what it was
/// doing (answering the caller, reading the next request) without a context switch each way.
/// A warm call cost the server ~1.2-1.7 context switches, ~0.6-0.7 with this (docs/architecture.md).
/// The runtime's share of the CPU is unchanged (same weight, same cgroup). Async-signal-safe
/// (one system call), so it may run between `clone` and `execve`.
pub(crate) fn batch_scheduling() -> c_int {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a system call reading a valid `sched_param` on the stack.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) }
}

pub(crate) fn loopback_up() -> Result<(), c_int> {
    // SAFETY: ioctls on a socket we own with a zero-initialised ifreq naming "lo".
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as c_char;
        ifr.ifr_name[1] = b'o' as c_char;
        let mut rc = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if rc == 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        }
        let e = errno();
        libc::close(s);
        if rc < 0 {
            Err(e)
        } else {
            Ok(())
        }
    }
}

/// A TCP socket listening on `127.0.0.1:9001` of the sandbox's own loopback.
///
/// # Safety
/// Child only.
unsafe fn listen_runtime_api() -> Result<RawFd, c_int> {
    // SAFETY: socket calls on a descriptor we own, with stack-allocated arguments.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(errno());
        }
        let one: c_int = 1;
        let int_len = std::mem::size_of::<c_int>() as libc::socklen_t;
        let one_ptr = &one as *const c_int as *const libc::c_void;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: RUNTIME_API_PORT.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let addr_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let ok = libc::setsockopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR, one_ptr, int_len) == 0
            && libc::setsockopt(s, libc::IPPROTO_TCP, libc::TCP_NODELAY, one_ptr, int_len) == 0
            && libc::bind(
                s,
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                addr_len,
            ) == 0
            && libc::listen(s, 1024) == 0;
        if ok {
            Ok(s)
        } else {
            let e = errno();
            libc::close(s);
            Err(e)
        }
    }
}

/// stdin from `stdin` (a sandbox made ahead gets one with its program: `/dev/null`, or a stem
/// cell's assignment pipe) or the sandbox's `/dev/null`, stdout and stderr to the output pipe.
///
/// # Safety
/// Child only, after `pivot_root`.
unsafe fn stdio(output: RawFd, stdin: Option<RawFd>) -> Result<(), c_int> {
    // SAFETY: descriptor shuffling on descriptors this process owns.
    unsafe {
        if let Some(fd) = stdin {
            if libc::dup2(fd, 0) < 0 {
                return Err(errno());
            }
            libc::close(fd);
        }
        let null = match stdin {
            Some(_) => 0,
            None => libc::open(c"/dev/null".as_ptr(), libc::O_RDWR),
        };
        if null < 0 {
            return Err(errno());
        }
        if null != 0 {
            if libc::dup2(null, 0) < 0 {
                return Err(errno());
            }
            if null > 2 {
                libc::close(null);
            }
        }
        if libc::dup2(output, 1) < 0 || libc::dup2(output, 2) < 0 {
            return Err(errno());
        }
        Ok(())
    }
}

/// Empties the capability bounding set: no capability can be gained by `execve` any more (the
/// ones this process holds stay until it changes its uid). A sandbox made ahead does it while
/// it waits, as it still needs its own capabilities only to attach its code.
///
/// # Safety
/// Child only.
unsafe fn drop_bounding_set() -> Result<(), c_int> {
    // SAFETY: prctl with plain integer arguments.
    unsafe {
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                match errno() {
                    libc::EINVAL => break, // past the last capability the kernel knows
                    e => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Drops supplementary groups and becomes the sandbox user, its bounding set already empty
/// ([`drop_bounding_set`]). Changing uid from 0 clears the permitted and effective sets;
/// `no_new_privs` (next step) keeps set-uid and file-capability binaries from giving any back.
///
/// # Safety
/// Child only. Raw system calls on purpose: libc's wrappers would try to synchronise the
/// credentials of the parent's other threads, which do not exist here.
unsafe fn become_sandbox_user() -> Result<(), c_int> {
    // SAFETY: credential system calls with plain integer arguments.
    unsafe {
        let (uid, gid) = (SANDBOX_UID as c_long, SANDBOX_GID as c_long);
        if libc::syscall(
            libc::SYS_setgroups,
            0 as c_long,
            std::ptr::null::<libc::gid_t>(),
        ) != 0
            || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
        {
            return Err(errno());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::maps_line;

    #[test]
    fn only_private_anonymous_memory_is_shed() {
        let line = |s: &str| maps_line(s.as_bytes());
        assert_eq!(
            line("7fb80d7e0000-7fb80d9e0000 rw-p 00000000 00:00 0 "),
            Some((0x7fb8_0d7e_0000, 0x7fb8_0d9e_0000, true))
        );
        assert_eq!(
            line("55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]"),
            Some((0x55d0_c000_0000, 0x55d0_c002_1000, true))
        );
        for kept in [
            "7fb80dbe3000-7fb80dc09000 r--p 00000000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6",
            "7fb80ded6000-7fb80ded8000 r-xp 00000000 00:00 0                          [vdso]",
            "7fb80ded0000-7fb80ded4000 r--p 00000000 00:00 0                          [vvar]",
            "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
            "7f0000000000-7f0000001000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)",
        ] {
            assert_eq!(line(kept).map(|(_, _, shed)| shed), Some(false), "{kept}");
        }
        assert_eq!(line("garbage"), None);
        assert_eq!(line("7fb8-zz rw-p 00000000 00:00 0"), None);
    }
}
