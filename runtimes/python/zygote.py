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
5. says ``E`` (entered; it runs as soon as it is forked, so this can come before its parent's
   ``P``: the server takes the two in either order) and only then receives its function's
   environment (``KEY=VALUE`` strings, NUL-separated) on the report socket, closes it, changes to ``/var/task`` again and
   runs ``bootstrap.run()``. The server forks runtimes ahead of cold starts: they wait here, in
   a sandbox whose ``/var/task`` is empty until a cold start attaches its code over it. Those
   are asked for with ``A`` instead of ``S`` (same descriptors): before saying ``E``, such a
   runtime *rehearses* its cold start on a throwaway function of its own (see ``rehearse``).

A failed step is reported as ``X<step> <errno>`` and the runtime exits; the server then starts
that sandbox by ``execve`` instead. Forked children get a fresh random seed (``fork`` re-seeds
``random``) but share the zygote's string-hash seed.

Package zygotes
---------------
The second message the zygote receives is the package zygote's seccomp program
(``crates/sandbox/src/seccomp.rs``: the sandbox's, plus ``mount`` and ``unshare`` without
``CLONE_NEWUSER``). A ``Z`` message, with ``[pidfd of a sandbox made ahead, report socket,
cgroup.procs files...]``, asks for a *package zygote* for one function: a child that

P1. joins that sandbox's cgroups and namespaces as in step 1, leaves a ``/proc`` there (of a
    PID namespace that ends at once: its children need one in view to mount their own), and
    ``unshare``s a user namespace; says ``U<pid>``, and the server maps root in it to an
    unprivileged host user of that zygote's own, 993 and 990 to themselves, and answers ``M``;
P2. becomes that root, points stdio at ``/dev/null``, closes every other descriptor, sets the
    rlimits and ``no_new_privs``, installs the package zygote program, says ``E``, and receives
    its function's environment (as in step 5);
P3. runs, as 993:990 (its saved user id still root, for P4), the *leading imports* of the
    function's handler module (the ``import`` statements before its first other statement):
    the function's own dependencies, run in the same order, environment and directory as in a
    runtime that imports its handler; says ``R<count>`` and serves, or ``N<why>`` and exits when
    there is nothing to import or a thread was started (``fork`` would lose it);
P4. then, for each ``S<tmp_mb>`` message on the report socket, with ``[report socket, output
    pipe, cgroup.procs files...]``, forks a child that joins those cgroups, ``unshare``s new
    mount, network, IPC, UTS, cgroup and PID namespaces, mounts a fresh ``/tmp`` and
    ``/dev/shm`` (``tmp_mb`` each), sets the hostname, brings up its loopback and passes the
    runtime API listener (``L`` with the socket), forks the runtime (``P<pid>``) and exits;
    the runtime takes steps 3-5 (its capability bounding set emptied in the user namespace,
    993:990 mapped to the same host ids, the sandbox program on top of the zygote's).

Everything a package zygote runs is its own function's: it serves no other.
"""

import gc

# No collection while the zygote imports: what it imports lives as long as it does.
gc.disable()

import ctypes  # noqa: E402
import fcntl
import os
import resource
import signal
import socket
import struct
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
import random
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

# The AWS SDK's services whose models the zygote loads ahead (those Lambent serves).
SDK_SERVICES = ("lambda", "s3", "dynamodb", "sqs", "sns", "stepfunctions")


def import_sdk():
    """Imports boto3 from the runtime's SDK (``../sdk/python``, at the same path in every
    sandbox), as much of botocore as a client needs, and the models of ``SDK_SERVICES``, so
    that a handler importing boto3 and making a client at module level costs milliseconds.

    Zygote hygiene: nothing here holds a secret. Credentials are never resolved (the clients
    made to warm up get placeholder keys), and botocore's configuration and credential files
    are read as ``/dev/null`` (never root's ``~/.aws``). Every new botocore session shares one
    loader whose models are loaded here (boto3's default session, made here, too); a function
    that bundles the SDK or points botocore at configuration gets fresh ones
    (``bootstrap.use_sdk``)."""
    sdk = bootstrap.sdk_path(os.path.dirname(HERE))
    if sdk is None:
        return
    saved = dict(os.environ)
    os.environ.update(HOME="/nonexistent", AWS_CONFIG_FILE=os.devnull,
                      AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    bootstrap.use_sdk(sdk, None, os.environ)
    try:
        import boto3
        import boto3.session
        import botocore.loaders
        import botocore.session

        class SearchPaths(list):
            """boto3 appends its data path at every session: once is enough."""

            def append(self, path):
                if path not in self:
                    super().append(path)

        loader = botocore.loaders.Loader(include_default_search_paths=False)
        loader._search_paths = SearchPaths([botocore.loaders.Loader.BUILTIN_DATA_PATH])
        for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
            loader.load_data(name)
        for service in SDK_SERVICES:
            for kind in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
                try:
                    loader.load_service_model(service, kind)
                except Exception:  # not every service has waiters
                    pass
        create_loader = botocore.session.create_loader

        def shared_loader(search_path_string=None):
            return loader if search_path_string is None else create_loader(search_path_string)

        botocore.session.create_loader = shared_loader
        for service in SDK_SERVICES:
            boto3.session.Session(
                region_name="us-east-1", aws_access_key_id="zygote", aws_secret_access_key="zygote",
            ).client(service, endpoint_url="http://127.0.0.1:9")
        boto3.setup_default_session()
    except Exception as e:  # a broken SDK must not cost the zygote
        sys.stderr.write("lambent zygote: could not import the AWS SDK from %s: %r\n" % (sdk, e))
        for name in list(sys.modules):
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(sdk + os.sep):
                del sys.modules[name]
    finally:
        os.environ.clear()
        os.environ.update(saved)

CONTROL_FD = 3
RUNTIME_API = ("127.0.0.1", 9001)
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
CLONE_NEWUSER = 0x10000000
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
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
HOSTNAME = b"lambent"
LISTEN_BACKLOG = 1024  # as crates/sandbox/src/spawn.rs

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
    report_failure(report.fileno(), step, errno)
    os._exit(1)


def join_cgroups(procs):
    for fd in procs:
        try:
            os.write(fd, b"0")
        except OSError as e:
            raise StepFailed("join_cgroup", e.errno)
        os.close(fd)


def join_sandbox(pidfd, procs):
    """Step 1 (and P1): the cgroups and namespaces of the sandbox made ahead behind ``pidfd``."""
    join_cgroups(procs)
    check(libc.setns(pidfd, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP),
          "setns")
    os.close(pidfd)


# Whether fork() skips the interpreter's work after a fork (a package zygote's imports are its
# function's: it sets this to False).
quiet_fork = True


def fork():
    """``os.fork()``, but while ``quiet_fork`` without the interpreter's work after a fork in the
    child: reinitialising its locks and thread states, and the hooks its modules registered with
    ``os.register_at_fork`` (those the zygote imports: threading, logging,
    concurrent.futures.thread, random). The zygote is single-threaded, so no other thread can
    hold a lock or leave a state to clear: that work changes nothing but the pages it writes,
    which copy-on-write makes each runtime's own (~0.3 MB of a runtime's memory, measured on
    a server). The one hook that matters, ``random``'s fresh seed, runs here. A
    package zygote keeps every hook (``quiet_fork`` False): its imports are its function's."""
    if not quiet_fork:
        return os.fork()
    pid = libc.fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork")
    if pid == 0:
        random.seed()
    return pid


def spawn_runtime(report, output, fprog, prepare, ahead=False):
    """A zygote's child: takes its own steps (``prepare``, which leaves it with a new PID
    namespace for its children), forks the runtime as PID 1 of that namespace, reports the
    runtime's pid (``P<pid>``) and exits; the runtime takes steps 3-5. Never returns."""
    try:
        prepare()
        pid = fork()
    except StepFailed as e:
        die(report, e.step, e.errno)
    except OSError as e:
        die(report, "setup", e.errno)
    if pid:
        send(report, b"P%d" % pid)
        os._exit(0)
    runtime(report, output, fprog, ahead)


def enter(fds, fprog, ahead):
    """The forked child: steps 1-2 (``ahead``: for a runtime forked ahead). Never returns."""
    pidfd, report_fd, output, *procs = fds

    def prepare():
        join_sandbox(pidfd, procs)
        check(libc.unshare(CLONE_NEWPID), "pid_namespace")

    spawn_runtime(socket.socket(fileno=report_fd), output, fprog, prepare, ahead)


def isolate_stdio(report, output):
    """stdin on ``/dev/null``, stdout and stderr on ``output`` (``None``: ``/dev/null`` too),
    every descriptor but those and ``report`` closed, the sandbox's rlimits and scheduling policy."""
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null if output is None else output, 1)
    os.dup2(null if output is None else output, 2)
    keep = report.fileno()
    os.closerange(3, keep)
    # One close_range(2) for all the rest (os.closerange would try each number in turn).
    if libc.syscall(SYS_CLOSE_RANGE, keep + 1, 0xFFFFFFFF, 0) != 0:
        os.closerange(keep + 1, NOFILE * 64)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # SCHED_BATCH, as the host's sandboxes (crates/sandbox/src/spawn.rs `batch_scheduling`):
    # woken by an invocation, the runtime does not preempt the server on its core.
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def receive_environment(report):
    """Step 5 (and P2): says ``E``, then takes the function's environment as its own."""
    send(report, b"E")
    try:
        environment = report.recv(MAX_MESSAGE)
    except OSError:
        os._exit(1)
    if not environment:
        os._exit(0)  # not needed after all
    adopt_environment(environment)


def adopt_environment(environment):
    """Replaces this process's environment with ``environment`` (``KEY=VALUE``, NUL-separated)."""
    os.environ.clear()
    for item in environment.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq:
            os.environb[key] = value
    time.tzset()


def runtime(report, output, fprog, ahead=False):
    """The runtime, PID 1 of its namespace: steps 3-5 (``ahead``: forked ahead of its cold start,
    it rehearses it first). Never returns."""
    try:
        check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount_proc")
        os.setsid()
        os.umask(0o022)
        isolate_stdio(report, output)
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
    if ahead:
        rehearse()
        # Its sandbox's Runtime API, served from the claim on: the first GET /next needs no
        # connect of its own.
        bootstrap.connect_early("%s:%d" % RUNTIME_API)
    receive_environment(report)
    report.close()
    try:
        # Again: a runtime forked ahead of its cold start had its code attached over the empty
        # /var/task it waited in.
        os.chdir(TASK_ROOT)
    except OSError:
        os._exit(1)
    gc.enable()
    sys.argv = [BOOTSTRAP]
    os._exit(bootstrap.run())


# A runtime forked ahead rehearses on a function of its own (see ``rehearse``): its module,
# written to the sandbox's private /tmp and removed after, and its environment (the names a
# function's has, placeholder values; the Runtime API a throwaway server of its own).
REHEARSAL_DIR = "/tmp/.lambent-rehearsal"
REHEARSAL_MODULE = "lambent_rehearsal"
REHEARSAL_SOURCE = b"def handler(event, context):\n    return {'rehearsal': event['rehearsal']}\n"
REHEARSAL_ENV = (
    "HOME=/tmp", "PATH=/var/task/bin:/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TZ=:UTC",
    "LD_LIBRARY_PATH=/var/task/lib:/usr/lib", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
    "_HANDLER=%s.handler" % REHEARSAL_MODULE, "LAMBDA_TASK_ROOT=%s" % REHEARSAL_DIR,
    "LAMBDA_RUNTIME_DIR=/var/runtime", "AWS_REGION=rehearsal", "AWS_DEFAULT_REGION=rehearsal",
    "AWS_EXECUTION_ENV=AWS_Lambda_python3", "AWS_LAMBDA_FUNCTION_NAME=rehearsal",
    "AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
    "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/rehearsal", "AWS_LAMBDA_LOG_STREAM_NAME=rehearsal",
    "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand", "AWS_ACCESS_KEY_ID=rehearsal",
    "AWS_SECRET_ACCESS_KEY=rehearsal", "AWS_SESSION_TOKEN=rehearsal",
)


def rehearse():
    """A runtime forked ahead, while it waits for a cold start, runs once through what that cold
    start will run: it adopts an environment, loads a handler module from source the way
    ``bootstrap.run`` does, connects, asks for work (``GET /next``), runs the invocation and
    posts its response, all with ``bootstrap``'s own functions, on a throwaway function of its
    own (``REHEARSAL_*``) and against a throwaway server on its own loopback (never the
    platform's Runtime API, which serves nothing before the claim). Then it puts back what it
    changed. Nothing of any function is involved.

    Why: until then this process shares nearly all its memory with the zygote copy-on-write,
    and the first write to each page copies it: those steps write to ~300 pages (reference
    counts, the allocator's pools, the environment), about a millisecond and a half of page
    faults that each cold start paid. Rehearsed, the cold start finds them copied already. They
    are pages its first invocation writes anyway, so an idle warm runtime owns no more memory.
    A failed rehearsal only means a slower cold start."""
    root = logging.getLogger()
    handlers, path = root.handlers[:], sys.path[:]
    module = os.path.join(REHEARSAL_DIR, REHEARSAL_MODULE + ".py")
    listener = server = client = None
    try:
        os.mkdir(REHEARSAL_DIR, 0o700)
        fd = os.open(module, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, REHEARSAL_SOURCE)
        finally:
            os.close(fd)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        adopt_environment("\0".join(REHEARSAL_ENV + ("AWS_LAMBDA_RUNTIME_API=" + address,)).encode())
        env = os.environ
        # bootstrap.run's steps, in its order.
        client = bootstrap.RuntimeClient(address)
        bootstrap.use_sdk(bootstrap.sdk_path(env.get("LAMBDA_RUNTIME_DIR")), REHEARSAL_DIR, env)
        bootstrap.install_log_handler(env)
        handler = bootstrap.load_handler(env["_HANDLER"], REHEARSAL_DIR)
        function = bootstrap._function_info(env)
        client.conn.connect()
        server, _ = listener.accept()
        # The server's two answers, as the platform's look, sent ahead: the client reads them
        # in turn after each of its requests (which nobody reads).
        event = b'{"rehearsal": true}'
        server.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"lambda-runtime-aws-request-id: rehearsal\r\nlambda-runtime-deadline-ms: %d\r\n"
            b"lambda-runtime-invoked-function-arn: arn:aws:lambda:rehearsal:0:function:rehearsal\r\n"
            b"lambda-runtime-trace-id: Root=rehearsal\r\ncontent-length: %d\r\n"
            b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n%s"
            b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 15\r\n"
            b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n{\"status\":\"OK\"}"
            % (int(time.time() * 1000) + 60000, len(event), event))
        invocation = client.next({bootstrap.IMPORT_US_HEADER: "0"})
        bootstrap.handle_invocation(client, handler, invocation, function)
    except Exception:
        pass
    finally:
        for sock in (client.conn if client is not None else None, server, listener):
            if sock is not None:
                sock.close()
        sys.modules.pop(REHEARSAL_MODULE, None)
        sys.path[:] = path
        root.handlers[:] = handlers
        bootstrap._current_request_id = None
        os.environ.clear()
        for remove, leftover in ((os.unlink, module), (os.rmdir, REHEARSAL_DIR)):
            try:
                remove(leftover)
            except OSError:
                pass
        gc.collect()


# --------------------------------------------------------------------------------------------
# Package zygotes (steps P1-P4)
# --------------------------------------------------------------------------------------------


def leave_proc():
    """A ``/proc`` in the sandbox, of a PID namespace that ends at once: in a user namespace the
    kernel lets a child mount its own ``/proc`` only where one is already fully in view."""
    pid = os.fork()
    if pid == 0:
        try:
            if libc.unshare(CLONE_NEWPID) != 0:
                os._exit(1)
            inner = os.fork()
            if inner == 0:
                os._exit(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0)
            os._exit(os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1]))
        except BaseException:
            os._exit(2)
    if os.waitpid(pid, 0)[1] != 0:
        raise StepFailed("mount_proc", 0)


def leading_imports(source):
    """The modules the ``import`` statements before a module's first other statement name
    (its docstring and ``from __future__`` imports aside)."""
    import ast

    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module != "__future__":
                names.append(node.module)
        else:
            break
    return names


def preload(handler_spec):
    """P3: imports the leading imports of the handler's module, as a runtime would on its way to
    the handler. Returns how many modules that added, or why there is nothing to keep."""
    path = handler_spec.strip().rpartition(".")[0]
    while path.startswith("./"):
        path = path[2:]
    source = None
    for candidate in (path + ".py", os.path.join(path, "__init__.py")):
        try:
            with open(os.path.join(TASK_ROOT, candidate), "rb") as f:
                source = f.read()
            break
        except OSError:
            continue
    if not path or source is None:
        return 0, "no handler module"
    try:
        names = leading_imports(source)
    except (SyntaxError, ValueError):
        return 0, "the handler module does not parse"
    bootstrap.use_sdk(bootstrap.sdk_path(os.environ.get("LAMBDA_RUNTIME_DIR")), TASK_ROOT, os.environ)
    before = len(sys.modules)
    sys.path.insert(0, TASK_ROOT)
    for name in names:
        try:
            __import__(name)
        except BaseException:
            # The runtime will fail the same way, and report it as the function's init error.
            return 0, "importing %s failed" % name
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return 0, "an import started a thread"
    if len(sys.modules) == before:
        return 0, "nothing to import beyond the base zygote"
    return len(sys.modules) - before, None


def package(fds, fprog, package_fprog):
    """A package zygote: steps P1-P4. Never returns."""
    global quiet_fork
    quiet_fork = False  # what it imports may register hooks that matter
    pidfd, report_fd, *procs = fds
    report = socket.socket(fileno=report_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        join_sandbox(pidfd, procs)
        leave_proc()
        check(libc.unshare(CLONE_NEWUSER), "user_namespace")
    except StepFailed as e:
        die(report, e.step, e.errno)
    except OSError as e:
        die(report, "setup", e.errno)
    send(report, b"U%d" % os.getpid())
    try:
        mapped = report.recv(16)
    except OSError:
        os._exit(1)
    if mapped != b"M":
        os._exit(1)
    try:
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        isolate_stdio(report, None)
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privileges")
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(package_fprog), 0, 0), "seccomp")
        os.chdir(TASK_ROOT)
    except StepFailed as e:
        die(report, e.step, e.errno)
    except OSError as e:
        die(report, "setup", e.errno)
    receive_environment(report)
    try:
        # The imports run as the sandbox's user; the saved user id keeps root for step P4.
        os.setresgid(SANDBOX_GID, SANDBOX_GID, 0)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, 0)
        added, why = preload(os.environ.get("_HANDLER", ""))
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)
    except OSError as e:
        die(report, "switch_user", e.errno)
    if why is not None:
        send(report, b"N" + why.encode())
        os._exit(0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    settle_memory()
    send(report, b"R%d" % added)

    def child(message, fds):
        if message.startswith(b"S") and message[1:].isdigit() and len(fds) >= 2:
            return (lambda: instance(fds, int(message[1:]), fprog)), fds[0]
        return None

    fork_per_message(report, child)
    os._exit(0)  # the server evicted this zygote, or is gone


def loopback_listener():
    """Brings ``lo`` up and listens on the runtime API's address, non-blocking."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    request = struct.pack("16sH14x", b"lo", 0)
    flags = struct.unpack("16sH14x", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
    fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    probe.close()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(RUNTIME_API)
    listener.listen(LISTEN_BACKLOG)
    listener.setblocking(False)
    return listener


def instance(fds, tmp_mb, fprog):
    """P4: a package zygote's child, making its own sandbox. Never returns."""
    report_fd, output, *procs = fds
    report = socket.socket(fileno=report_fd)

    def prepare():
        join_cgroups(procs)
        check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
                           | CLONE_NEWPID), "namespaces")
        options = b"size=%dm,mode=1777" % tmp_mb
        check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options), "mount_tmp")
        check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options), "mount_shm")
        check(libc.sethostname(HOSTNAME, len(HOSTNAME)), "hostname")
        listener = loopback_listener()
        socket.send_fds(report, [b"L"], [listener.fileno()])
        listener.close()

    spawn_runtime(report, output, fprog, prepare)


# --------------------------------------------------------------------------------------------
# The zygote
# --------------------------------------------------------------------------------------------


def fork_per_message(control, child):
    """Serves ``control`` until it closes: for each message and the descriptors it passes,
    ``child(message, fds)`` says what a forked child runs and which descriptor it reports on
    (``(run, report_fd)``; ``None``: the message is dropped); this process closes the
    descriptors either way. The child runs without ``control``. A fork that fails is reported
    on that descriptor (``Xfork <errno>``), so the server names the cause instead of seeing its
    report socket close; a message whose descriptors did not all arrive is dropped, said on
    stderr (the server's log)."""
    while True:
        try:
            message, fds, flags, _addr = socket.recv_fds(control, 32, MAX_FDS)
        except OSError:
            return
        if not message:
            return
        truncated = flags & socket.MSG_CTRUNC
        wanted = None if truncated else child(message, fds)
        if wanted is None:
            sys.stderr.write("lambent zygote: dropped a %r message with %d descriptors%s\n"
                             % (message[:1], len(fds), " (truncated)" if truncated else ""))
        else:
            run, report_fd = wanted
            try:
                pid = fork()
            except OSError as e:
                pid = -1
                report_failure(report_fd, "fork", e.errno)
            if pid == 0:
                control.close()
                run()
        for fd in fds:
            os.close(fd)


def report_failure(report_fd, step, errno):
    """Reports a failed step on ``report_fd`` (``X<step> <errno>``); the zygote's own for a
    fork it could not make, a child's through ``die``."""
    try:
        os.write(report_fd, b"X%s %d" % (step.encode(), errno or 0))
    except OSError:
        pass  # the server gave up on this sandbox


# Objects that fill the free blocks of the zygote's small-object pools (see fill_small_object_holes).
_fillers = []


def small_object_holes():
    """Free blocks in partly used pools of CPython's small-object allocator, per size class
    (``sys._debugmallocstats``, written to the C stderr; ``{}`` where it is not there)."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None or not hasattr(os, "memfd_create"):
        return {}
    try:
        out = os.memfd_create("mallocstats")
    except OSError:
        return {}
    saved = os.dup(2)
    try:
        os.dup2(out, 2)
        stats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    os.lseek(out, 0, os.SEEK_SET)
    text = b""
    while True:
        chunk = os.read(out, 65536)
        if not chunk:
            break
        text += chunk
    os.close(out)
    holes = {}
    for line in text.split(b"\n"):
        fields = line.split()
        if len(fields) == 5 and all(f.isdigit() for f in fields):
            holes[int(fields[0])] = int(fields[4])
    return holes


def fill_small_object_holes(rounds=8):
    """Fills the free blocks of partly used small-object pools with objects the zygote keeps.
    A runtime's new objects would otherwise land in those holes, scattered over the zygote's
    pages, and copy a page (two, with its pool's header) for each; once filled, they go to
    fresh pools, a page for many."""
    for _ in range(rounds):
        holes = small_object_holes()
        if not any(holes.values()):
            return
        for size_class, count in holes.items():
            if size_class >= 2:  # a bytes object of n bytes takes 33 + n (class c: 16c+1..16c+16)
                _fillers.extend(bytes(size_class * 16 - 17) for _ in range(count))
            else:  # a bytearray's buffer of n bytes (its object itself is in class 3)
                _fillers.extend(bytearray(size_class * 16 + 15) for _ in range(count))


def settle_memory():
    """Before the first fork: collects what the imports left for garbage (they ran with the
    collector off) and gives the freed heap back to the system, so that every forked runtime
    maps (and is charged its share of) less; fills the holes that left in the small-object
    pools (~0.45 MB less private memory per idle warm runtime, measured on a server);
    then moves everything to the permanent generation: the runtimes' collections never walk
    (and so never copy) the pages they share with it."""
    gc.collect()
    libc.malloc_trim(0)
    fill_small_object_holes()
    gc.freeze()


def seccomp_program(control):
    """The next message, a seccomp program: its ``sock_fprog`` and the buffer it points into."""
    program = control.recv(MAX_MESSAGE)
    if not program or len(program) % 8:
        sys.exit("lambent zygote: expected a seccomp program")
    filters = ctypes.create_string_buffer(program, len(program))
    return SockFprog(len(program) // 8, ctypes.addressof(filters)), filters


def serve(control):
    import_sdk()
    sdk = bootstrap.sdk_path(os.path.dirname(HERE))
    if sdk is not None:
        bootstrap.sdk_modules(sdk)  # found once here, for every runtime (see its docs)
    # Made once here: every runtime's root logger has it already.
    bootstrap.install_log_handler(None)
    fprog, _filters = seccomp_program(control)
    package_fprog, _package_filters = seccomp_program(control)
    # The children exit as soon as they have forked their runtime; the kernel reaps them. The
    # runtimes become the server's (it is their subreaper), not ours.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    settle_memory()
    control.send(b"R")

    def child(message, fds):
        if message in (b"S", b"A") and len(fds) >= 3:
            return (lambda: enter(fds, fprog, message == b"A")), fds[1]
        if message == b"Z" and len(fds) >= 2:
            return (lambda: package(fds, fprog, package_fprog)), fds[1]
        return None

    fork_per_message(control, child)  # until the server is gone


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
