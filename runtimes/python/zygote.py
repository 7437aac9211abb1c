"""Lambent's Python zygote: an interpreter that has already imported the runtime client and the
standard modules most handlers use, and forks a new sandboxed runtime for each cold start.

Started by the server (``crates/sandbox/src/zygote.rs``) as root on the host, with a minimal
environment, as ``python3 -I -B -u zygote.py``; its control socket (``SOCK_SEQPACKET``) is
descriptor 3. It never runs function code and never sees a function's environment: it only
forks. The first message it receives is the sandbox's seccomp program (raw ``sock_filter``
array); it answers ``R`` once it is ready. Then each ``S`` message carries, as ``SCM_RIGHTS``:

    [pidfd of a sandbox made ahead, report socket, output pipe, cgroup.procs files...]

For each, the zygote forks a child that

1. joins the sandbox's cgroups, then its mount, network, IPC, UTS and cgroup namespaces
   (``setns`` through the pidfd), and ``unshare``s a PID namespace;
2. forks the runtime, PID 1 of that new namespace, reports the runtime's host pid (``P<pid>``)
   on the report socket, and exits;

and the runtime

3. mounts its ``/proc``, starts a new session, points stdin at ``/dev/null`` and stdout and
   stderr at the output pipe, closes every other descriptor, limits descriptors to 1024 and core
   dumps to 0;
4. empties its capability bounding set, becomes 993:990 with no supplementary groups, sets
   ``no_new_privs`` (dumpable, as after an ``execve``) and installs the seccomp filter: the same steps, in the same order, as a
   sandbox that ``execve``s (``crates/sandbox/src/spawn.rs``);
5. says ``E`` (entered) and only then receives its function's environment (``KEY=VALUE``
   strings, NUL-separated) on the report socket, closes it, and runs ``bootstrap.run()``.

A failed step is reported as ``X<step> <errno>`` and the runtime exits; the server then starts
that sandbox by ``execve`` instead. Forked children get a fresh random seed (``random``
re-seeds itself after ``fork``) but share the zygote's string-hash seed.
"""

import gc

# No collection while the zygote imports: what it imports lives as long as it does.
gc.disable()

import ctypes  # noqa: E402
import os
import resource
import signal
import socket
import sys
import time

# What most handlers import, loaded once here and shared copy-on-write by every runtime.
import base64  # noqa: F401
import collections  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import hmac  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import logging  # noqa: F401
import math  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401
import string  # noqa: F401
import traceback  # noqa: F401
import typing  # noqa: F401
import urllib.parse  # noqa: F401
import uuid  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bootstrap  # noqa: E402

del sys.path[0]

CONTROL_FD = 3
SANDBOX_UID = 993
SANDBOX_GID = 990
NOFILE = 1024
TASK_ROOT = "/var/task"
BOOTSTRAP = "/var/runtime/python/bootstrap.py"
MAX_FDS = 64
MAX_MESSAGE = 256 * 1024

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
SYS_CLOSE_RANGE = 436  # the same number on every architecture
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class StepFailed(Exception):
    def __init__(self, step, errno):
        super().__init__(step)
        self.step = step
        self.errno = errno


def check(rc, step):
    if rc != 0:
        raise StepFailed(step, ctypes.get_errno())


def send(report, message):
    try:
        report.send(message)
    except OSError:
        os._exit(1)  # the server gave up on this sandbox


def die(report, step, errno):
    """Reports a failed step to the server, which starts this sandbox by exec instead."""
    send(report, b"X%s %d" % (step.encode(), errno or 0))
    os._exit(1)


def enter(fds, fprog):
    """The forked child: steps 1-2. Never returns."""
    pidfd, report_fd, output, *procs = fds
    report = socket.socket(fileno=report_fd)
    try:
        for fd in procs:
            try:
                os.write(fd, b"0")
            except OSError as e:
                raise StepFailed("join_cgroup", e.errno)
            os.close(fd)
        check(libc.setns(pidfd, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP),
              "setns")
        os.close(pidfd)
        check(libc.unshare(CLONE_NEWPID), "pid_namespace")
        pid = os.fork()
    except StepFailed as e:
        die(report, e.step, e.errno)
    except OSError as e:
        die(report, "fork", e.errno)
    if pid:
        send(report, b"P%d" % pid)
        os._exit(0)
    runtime(report, output, fprog)


def runtime(report, output, fprog):
    """The runtime, PID 1 of its namespace: steps 3-5. Never returns."""
    try:
        check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount_proc")
        os.setsid()
        os.umask(0o022)
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        keep = report.fileno()
        os.closerange(3, keep)
        # One close_range(2) for all the rest (os.closerange would try each number in turn).
        if libc.syscall(SYS_CLOSE_RANGE, keep + 1, 0xFFFFFFFF, 0) != 0:
            os.closerange(keep + 1, NOFILE * 64)
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for cap in range(64):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                if ctypes.get_errno() == 22:  # EINVAL: past the last capability
                    break
                raise StepFailed("drop_privileges", ctypes.get_errno())
        os.setgroups([])
        os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        # Changing uids made the process non-dumpable (its /proc/self files root's); an exec'd
        # runtime is dumpable again after its execve: so is this one (core dumps stay off).
        check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privileges")
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "seccomp")
        os.chdir(TASK_ROOT)
    except StepFailed as e:
        die(report, e.step, e.errno)
    except OSError as e:
        die(report, "setup", e.errno)
    send(report, b"E")
    try:
        environment = report.recv(MAX_MESSAGE)
    except OSError:
        os._exit(1)
    report.close()
    if not environment:
        os._exit(0)  # not needed after all
    os.environ.clear()
    for item in environment.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq:
            os.environb[key] = value
    time.tzset()
    gc.enable()
    sys.argv = [BOOTSTRAP]
    os._exit(bootstrap.run())


def serve(control):
    program = control.recv(MAX_MESSAGE)
    if not program or len(program) % 8:
        sys.exit("lambent zygote: expected a seccomp program first")
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(filters))
    # The children exit as soon as they have forked their runtime; the kernel reaps them. The
    # runtimes become the server's (it is their subreaper), not ours.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Everything imported so far moves to the permanent generation: the runtimes' collections
    # never walk (and so never copy) the pages they share with the zygote.
    gc.freeze()
    control.send(b"R")
    while True:
        message, fds, _flags, _addr = socket.recv_fds(control, 16, MAX_FDS)
        if not message:
            return  # the server is gone
        if message != b"S" or len(fds) < 3:
            for fd in fds:
                os.close(fd)
            continue
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            control.close()
            enter(fds, fprog)
        for fd in fds:
            os.close(fd)


def main():
    control = socket.socket(fileno=CONTROL_FD)
    # The zygote never keeps a descriptor its children could inherit by mistake.
    os.closerange(CONTROL_FD + 1, 4096)
    try:
        serve(control)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
