"""Lambent's Python runtime interface client.

Runs inside a function sandbox as ``/usr/bin/python3 /var/runtime/python/bootstrap.py``, speaks the
AWS Lambda Runtime API (2018-06-01) to the platform and calls the user's ``handler(event, context)``.

Standard library only. Importing this module has no side effects: it reads no environment variable
and opens no socket. All the work is in :func:`run` (load the handler, then serve), which a
zygote may call after ``fork()``, or :func:`load_handler` and :func:`serve` separately;
:func:`main` is the script entry point.

HTTP: one persistent HTTP/1.1 keep-alive connection (TCP_NODELAY), reopened when the server has
closed it. It is a small client on ``_socket`` rather than ``http.client``: ``http.client`` pulls
in ``email`` and ``ssl`` and would cost ~30 ms of imports at every cold start (``socket.py`` alone
~8 ms), more than everything else here together.
"""

import _imp
import _socket
import os
import sys
import time

try:  # CPython's JSON accelerator, which json.loads/json.dumps use themselves
    from _json import encode_basestring as _c_encode_str
    from _json import encode_basestring_ascii as _c_encode_str_ascii
    from _json import make_encoder as _c_make_encoder
    from _json import make_scanner as _c_make_scanner
except ImportError:  # other interpreters: the json package does it all
    _c_make_scanner = _c_make_encoder = _c_encode_str = _c_encode_str_ascii = None

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# Sent on the first GET /next only: how long importing the handler took, for the platform's
# cold-start breakdown (activation records and metrics).
IMPORT_US_HEADER = "Lambent-Handler-Import-Us"
CONNECT_TIMEOUT_S = 2.0
USER_AGENT = "lambent-python/%d.%d.%d" % sys.version_info[:3]
_MAX_LINE = 65536
_THIS_FILE = __file__


# --------------------------------------------------------------------------------------------
# JSON
#
# ``json.loads`` and ``json.dumps(indent=None)`` are thin wrappers over the C scanner and encoder
# of ``_json``; importing the ``json`` package costs ~10 ms (it imports ``re`` and ``enum``). These
# call ``_json`` the way ``json`` does, with the same results, and fall back to ``json`` for
# error messages and on interpreters without ``_json``.
# --------------------------------------------------------------------------------------------

_JSON_WS = " \t\n\r"


class _DecodeContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = None


_scan_once = _c_make_scanner(_DecodeContext) if _c_make_scanner is not None else None


def json_loads(data):
    """``json.loads(data)`` for bytes or str."""
    if _scan_once is not None:
        try:
            s = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
            start = len(s) - len(s.lstrip(_JSON_WS))
            obj, end = _scan_once(s, start)
            if not s[end:].strip(_JSON_WS):
                return obj
        except (ValueError, StopIteration, SystemError):
            # json.loads says what is wrong (or copes, e.g. with a BOM). SystemError: the C
            # scanner raises json.decoder.JSONDecodeError only if json.decoder is already loaded.
            pass
    import json

    return json.loads(data)


def json_dumps(obj, default, allow_nan=True, ensure_ascii=False):
    """``json.dumps(obj, ensure_ascii=..., default=default, allow_nan=allow_nan)``, as UTF-8."""
    if _c_make_encoder is not None:
        encode_str = _c_encode_str_ascii if ensure_ascii else _c_encode_str
        encode = _c_make_encoder({}, default, encode_str, None, ": ", ", ", False, False, allow_nan)
        return "".join(encode(obj, 0)).encode("utf-8")
    import json

    return json.dumps(obj, ensure_ascii=ensure_ascii, default=default, allow_nan=allow_nan).encode("utf-8")


# --------------------------------------------------------------------------------------------
# Runtime API client
# --------------------------------------------------------------------------------------------


class RuntimeAPIError(Exception):
    """The Runtime API could not be reached or answered something unusable."""


class _StaleConnection(Exception):
    """The server closed a kept-alive connection before answering; safe to resend once."""


def _quote(segment):
    """Percent-encodes one URL path segment (request ids are UUIDs; this is only a safety net)."""
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    if all(c in safe for c in segment):
        return segment
    return "".join(c if c in safe else "".join("%%%02X" % b for b in c.encode("utf-8")) for c in segment)


class HTTPConnection:
    """A minimal persistent HTTP/1.1 client connection (Content-Length and chunked bodies).

    Built on the ``_socket`` extension module directly: ``socket.py`` imports ``selectors`` and
    ``enum`` and costs ~8 ms at every cold start, for nothing this client needs.
    """

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.host_header = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
        self.sock = None
        self.buf = bytearray()

    def connect(self):
        err = None
        # A bytes host spares getaddrinfo the import of the idna codec.
        host = self.host.encode("ascii") if self.host.isascii() else self.host
        for family, kind, proto, _, addr in _socket.getaddrinfo(host, self.port, 0, _socket.SOCK_STREAM):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(CONNECT_TIMEOUT_S)
                sock.connect(addr)
            except OSError as e:
                sock.close()
                err = e
                continue
            sock.settimeout(None)  # the long poll on /next must never time out
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.sock = sock
            self.buf = bytearray()
            return
        raise err if err is not None else OSError("no address for %s" % self.host)

    def close(self):
        sock, self.sock = self.sock, None
        self.buf = bytearray()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def request(self, method, path, body=None, headers=None):
        """Sends one request and returns ``(status, headers, body)``; headers have lower-case names."""
        reused = self.sock is not None
        if not reused:
            self.connect()
        try:
            return self._exchange(method, path, body, headers)
        except _StaleConnection:
            self.close()
            if not reused:
                raise RuntimeAPIError("the server closed the connection without answering")
        except BaseException:
            self.close()
            raise
        # The kept-alive connection had been closed by the server: resend once on a fresh one.
        self.connect()
        try:
            return self._exchange(method, path, body, headers)
        except _StaleConnection:
            self.close()
            raise RuntimeAPIError("the server closed the connection without answering")
        except BaseException:
            self.close()
            raise

    # -- reading ---------------------------------------------------------------------------

    def _fill(self, want=65536):
        chunk = self.sock.recv(want)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _readline(self):
        """One line including its newline; what is left (maybe b"") at the end of the stream."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > _MAX_LINE:
                raise RuntimeAPIError("response line longer than %d bytes" % _MAX_LINE)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill(min(max(n - len(self.buf), 65536), 1 << 20)):
                raise RuntimeAPIError("connection closed after %d of %d body bytes" % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _read_to_eof(self):
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    # -- one exchange ----------------------------------------------------------------------

    def _exchange(self, method, path, body, headers):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + self.host_header, "User-Agent: " + USER_AGENT]
        if body is not None:
            lines.append("Content-Length: %d" % len(body))
        if headers:
            for name, value in headers.items():
                lines.append("%s: %s" % (name, value))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        try:
            self.sock.sendall(head + body if body else head)
            line = self._readline()
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            raise _StaleConnection()
        if not line:
            raise _StaleConnection()
        while True:
            status, version = self._status(line)
            resp_headers = self._headers()
            if status >= 200 or status == 101:
                break
            line = self._readline()  # skip 1xx interim responses
            if not line:
                raise RuntimeAPIError("connection closed after an interim response")
        data = self._body(method, status, resp_headers)
        conn = resp_headers.get("connection", "").lower()
        if "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn):
            self.close()
        return status, resp_headers, data

    def _status(self, line):
        parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise RuntimeAPIError("malformed HTTP status line %r" % line[:200])
        return int(parts[1]), parts[0]

    def _headers(self):
        headers = {}
        while True:
            line = self._readline()
            if not line:
                raise RuntimeAPIError("connection closed while reading response headers")
            if line in (b"\r\n", b"\n"):
                return headers
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name = name.strip().decode("latin-1").lower()
            value = value.strip().decode("utf-8", "replace")
            headers[name] = headers[name] + ", " + value if name in headers else value

    def _body(self, method, status, headers):
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = self._readline()
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise RuntimeAPIError("malformed chunk size %r" % size_line[:100])
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self._read_exact(size))
                self._read_exact(2)  # CRLF after each chunk
        length = headers.get("content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                raise RuntimeAPIError("malformed Content-Length %r" % length)
            return self._read_exact(n) if n else b""
        data = self._read_to_eof()  # delimited by the end of the connection
        self.close()
        return data


class Invocation:
    __slots__ = ("request_id", "body", "deadline_ms", "function_arn", "trace_id", "client_context",
                 "cognito_identity", "tenant_id")

    def __init__(self, headers, body):
        self.request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.body = body
        try:
            self.deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
        except ValueError:
            self.deadline_ms = 0
        self.function_arn = headers.get("lambda-runtime-invoked-function-arn")
        self.trace_id = headers.get("lambda-runtime-trace-id")
        self.client_context = _json_header(headers.get("lambda-runtime-client-context"))
        self.cognito_identity = _json_header(headers.get("lambda-runtime-cognito-identity"))
        self.tenant_id = headers.get("lambda-runtime-aws-tenant-id")


def _json_header(value):
    """Parses an optional JSON header; anything absent, empty or not a JSON object is None."""
    if not value:
        return None
    try:
        parsed = json_loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


class RuntimeClient:
    """The Runtime API endpoints, over one persistent connection."""

    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            host, port = address, "80"
        self.address = address
        self.conn = HTTPConnection(host.strip("[]") or "127.0.0.1", int(port))

    def _call(self, method, path, body=None, headers=None):
        try:
            return self.conn.request(method, API_PREFIX + path, body, headers)
        except OSError as e:
            raise RuntimeAPIError("cannot reach the Runtime API at %s: %s" % (self.address, e))

    def next(self, headers=None):
        status, headers, body = self._call("GET", "/invocation/next", None, headers)
        if not 200 <= status < 300:
            raise RuntimeAPIError("GET %s/invocation/next answered HTTP %d: %s"
                                  % (API_PREFIX, status, body[:500].decode("utf-8", "replace")))
        inv = Invocation(headers, body)
        if not inv.request_id:
            raise RuntimeAPIError("GET %s/invocation/next answered without a Lambda-Runtime-Aws-Request-Id"
                                  % API_PREFIX)
        return inv

    def _post(self, path, body, headers):
        status, _, resp = self._call("POST", path, body, headers)
        if status >= 500:
            raise RuntimeAPIError("POST %s%s answered HTTP %d: %s"
                                  % (API_PREFIX, path, status, resp[:500].decode("utf-8", "replace")))
        if not 200 <= status < 300:
            _stderr("lambent runtime: POST %s%s answered HTTP %d: %s"
                    % (API_PREFIX, path, status, resp[:500].decode("utf-8", "replace")))
        return status

    def post_response(self, request_id, body):
        return self._post("/invocation/%s/response" % _quote(request_id), body,
                          {"Content-Type": "application/json"})

    def post_error(self, request_id, error, error_type):
        return self._post("/invocation/%s/error" % _quote(request_id), _dump_error(error),
                          {"Content-Type": "application/json", ERROR_TYPE_HEADER: error_type})

    def post_init_error(self, error):
        return self._post("/init/error", _dump_error(error),
                          {"Content-Type": "application/json", ERROR_TYPE_HEADER: error["errorType"]})


def _dump_error(error):
    # ASCII: an error message may hold anything, lone surrogates included, and must still go out.
    return json_dumps(error, str, ensure_ascii=True)


# --------------------------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity=None):
        identity = identity or {}
        self.cognito_identity_id = identity.get("cognitoIdentityId")
        self.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id, self.cognito_identity_pool_id)


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, client):
        for name in self.__slots__:
            setattr(self, name, client.get(name))

    def __repr__(self):
        return "Client(%s)" % ",".join("%s=%s" % (n, getattr(self, n)) for n in self.__slots__)


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __init__(self, context):
        self.custom = context.get("custom")
        self.env = context.get("env")
        client = context.get("client")
        self.client = Client(client) if isinstance(client, dict) else None

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


class LambdaContext:
    """The ``context`` argument, with the attributes of AWS Lambda's Python context."""

    def __init__(self, invocation, function):
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.function_arn
        self.function_name = function["function_name"]
        self.function_version = function["function_version"]
        self.memory_limit_in_mb = function["memory_limit_in_mb"]
        self.log_group_name = function["log_group_name"]
        self.log_stream_name = function["log_stream_name"]
        self.identity = CognitoIdentity(invocation.cognito_identity)
        cc = invocation.client_context
        self.client_context = ClientContext(cc) if cc is not None else None
        self.tenant_id = invocation.tenant_id
        self._epoch_deadline_time_in_ms = invocation.deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (self.aws_request_id, self.log_group_name, self.log_stream_name, self.function_name,
               self.memory_limit_in_mb, self.function_version, self.invoked_function_arn,
               self.client_context, self.identity)
        )


def _function_info(env):
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    try:
        memory = int(memory) if memory is not None else None
    except ValueError:
        memory = None
    return {
        "function_name": env.get("AWS_LAMBDA_FUNCTION_NAME"),
        "function_version": env.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "memory_limit_in_mb": memory,
        "log_group_name": env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
        "log_stream_name": env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
    }


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class InitError(Exception):
    """The handler could not be loaded; ``error_type`` is one of AWS's ``Runtime.*`` names."""

    def __init__(self, error_type, message, stack_trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []

    def report(self):
        return {"errorMessage": self.message, "errorType": self.error_type, "stackTrace": self.stack_trace}


def _stack_trace(tb):
    """The frames of ``tb`` as ``traceback.format_list`` lines, less the runtime's own leading ones."""
    import traceback  # only on error paths: it costs ~10 ms of imports

    frames = traceback.extract_tb(tb)
    i = 0
    while i < len(frames) and _is_runtime_frame(frames[i].filename):
        i += 1
    return traceback.format_list(frames[i:])


def _is_runtime_frame(filename):
    return (filename == _THIS_FILE or filename.startswith("<frozen ")
            or filename.endswith(os.sep + "importlib" + os.sep + "__init__.py"))


def _exception_report(exc, request_id):
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": _stack_trace(exc.__traceback__),
    }


def _stderr(text):
    try:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _log_error(report):
    lines = ["[ERROR] %s: %s" % (report["errorType"], report["errorMessage"])]
    if report.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in report["stackTrace"])
    _stderr("\n".join(lines))


# --------------------------------------------------------------------------------------------
# The AWS SDK that comes with the runtime
# --------------------------------------------------------------------------------------------

# Variables that make botocore read configuration a session made ahead (in the zygote) would
# not have read: such a function gets a fresh default session.
_SDK_CONFIG_VARS = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE",
                    "AWS_DEFAULT_PROFILE", "AWS_DATA_PATH")


def sdk_path(runtime_dir):
    """Where the runtime's boto3 lives: ``<runtime_dir>/sdk/python`` resolved (a link into the
    machine's SDK cache, which sandboxes see at the same path), or ``None`` without one."""
    if not runtime_dir:
        return None
    path = os.path.realpath(os.path.join(runtime_dir, "sdk", "python"))
    return path if os.path.isdir(path) else None


# (sdk, len(sys.modules), top-level names loaded from sdk) as last found by ``sdk_modules``.
_sdk_modules = None


def sdk_modules(sdk):
    """The top-level names of the modules loaded from ``sdk``. Remembered while no module is
    added or removed: a zygote finds them before it forks, so that its runtimes do not walk
    every module (each ``getattr`` of a module's ``__file__`` writes to the reference counts
    of objects shared with the zygote, which copies about a page each)."""
    global _sdk_modules
    count = len(sys.modules)
    if _sdk_modules is not None and _sdk_modules[:2] == (sdk, count):
        return _sdk_modules[2]
    prefix = sdk + os.sep
    loaded = frozenset(name.partition(".")[0] for name, module in list(sys.modules.items())
                       if (getattr(module, "__file__", None) or "").startswith(prefix))
    _sdk_modules = (sdk, len(sys.modules), loaded)
    return loaded


def use_sdk(sdk, task_root, environ):
    """Puts the runtime's SDK first on ``sys.path`` (the task root goes before it when the
    handler is loaded: a version the function bundles wins, as on Lambda). In a runtime forked
    from a zygote that imported it already: when the function's code bundles any of the
    modules the zygote loaded from the SDK (boto3, botocore, urllib3, …), every one of them is
    forgotten, so that imports resolve as in a fresh interpreter; when the function's
    environment points botocore at configuration, boto3's default session made ahead goes."""
    if sdk is None:
        return
    if sdk in sys.path:
        sys.path.remove(sdk)
    sys.path.insert(0, sdk)
    loaded = sdk_modules(sdk)
    if not loaded:
        return
    try:
        names = set(os.listdir(task_root)) if task_root else set()
    except OSError:
        names = set()
    if any(name in names or name + ".py" in names for name in loaded):
        for name in list(sys.modules):
            if name.partition(".")[0] in loaded:
                del sys.modules[name]
    elif "boto3" in sys.modules and any(environ.get(v) for v in _SDK_CONFIG_VARS):
        sys.modules["boto3"].DEFAULT_SESSION = None


# --------------------------------------------------------------------------------------------
# Handler loading
# --------------------------------------------------------------------------------------------


def _plain_module_file(modname, task_root):
    """The path of ``task_root/<modname>.py`` when importing ``modname`` can only load that
    file from source: a top-level name nothing else claims (not imported yet, not built in or
    frozen, no package directory, extension module or compiled file of that name, no
    ``__pycache__``). Otherwise ``None``."""
    if (not task_root or "." in modname or modname in sys.modules
            or modname in sys.builtin_module_names or _imp.is_frozen(modname)):
        return None
    try:
        names = os.listdir(task_root)
    except OSError:
        return None
    source = modname + ".py"
    if source not in names or "__pycache__" in names:
        return None
    if any(n != source and (n == modname or n.startswith(modname + ".")) for n in names):
        return None
    return os.path.join(task_root, source)


def _import_module(modname, task_root):
    """Imports the handler's module. A plain module file in the task root (the usual case) is
    loaded as importlib's source loader would (same module attributes but ``__cached__``, same
    compilation, a failed module removed from ``sys.modules``) without going through its
    finders and loader: in a runtime forked from a zygote, their bookkeeping alone writes to
    (and so copies) about 300 KB of memory shared with the zygote. Anything else is imported
    with ``__import__`` (as importlib.import_module, without importing importlib, ~1 ms)."""
    path = _plain_module_file(modname, task_root)
    if path is None:
        __import__(modname)
        return sys.modules[modname]
    bootstrap, external = sys.modules["_frozen_importlib"], sys.modules["_frozen_importlib_external"]
    loader = external.SourceFileLoader(modname, path)
    spec = bootstrap.ModuleSpec(modname, loader, origin=path)
    spec.has_location = True
    module = type(sys)(modname)
    module.__spec__, module.__loader__, module.__file__, module.__package__ = spec, loader, path, ""
    sys.modules[modname] = module
    try:
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return sys.modules[modname]  # a module may have replaced itself there, as importlib honours


def load_handler(handler_spec, task_root=None):
    """Imports the handler named ``module.function`` (module dotted, or with slashes relative to
    the task root) and returns it; raises :class:`InitError` with AWS's error types."""
    if task_root:
        if task_root in sys.path:
            sys.path.remove(task_root)
        sys.path.insert(0, task_root)
    spec = (handler_spec or "").strip()
    path, dot, fname = spec.rpartition(".")
    while path.startswith("./"):
        path = path[2:]
    modname = path.replace("/", ".")
    if not dot or not modname or not fname or modname.startswith(".") or modname.endswith(".") or ".." in modname:
        raise InitError("Runtime.MalformedHandlerName",
                        "Bad handler '%s': expected '<module>.<function>', e.g. 'app.handler'" % spec)
    if modname.split(".")[0] in sys.builtin_module_names:
        raise InitError("Runtime.BuiltInModuleConflict",
                        "Cannot use built-in module %s as a handler module" % modname)
    try:
        module = _import_module(modname, task_root)
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, (e.text or "").strip("\n"))]
        raise InitError("Runtime.UserCodeSyntaxError",
                        "Syntax error in module '%s': %s" % (modname, e), trace)
    except ImportError as e:
        raise InitError("Runtime.ImportModuleError",
                        "Unable to import module '%s': %s" % (modname, e), _stack_trace(e.__traceback__))
    except Exception as e:
        raise InitError("Runtime.ImportModuleError",
                        "Unable to import module '%s': %s: %s" % (modname, type(e).__name__, e),
                        _stack_trace(e.__traceback__))
    handler = getattr(module, fname, None)
    if handler is None or not callable(handler):
        # Say so when a module of the same name shadowed the function's (e.g. a stdlib one).
        where = getattr(module, "__file__", None)
        hint = ""
        if task_root and where and not os.path.abspath(where).startswith(os.path.abspath(task_root) + os.sep):
            hint = " (module '%s' was loaded from %s, not from %s)" % (modname, where, task_root)
        what = "missing on" if handler is None else "is not callable in"
        raise InitError("Runtime.HandlerNotFound", "Handler '%s' %s module '%s'%s" % (fname, what, modname, hint))
    return handler


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _json_default(obj):
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        if obj.is_finite() and obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def to_json(result):
    """The response body for ``result``; raises TypeError/ValueError when it is not serializable."""
    return json_dumps(result, _json_default, allow_nan=False)


def _flush_std():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError, AttributeError):
            pass


# The request being handled, for the root logger's lines (see install_log_handler).
_current_request_id = None

# AWS_LAMBDA_LOG_LEVEL's values and the logging levels they name.
_LOG_LEVELS = {"TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING",
               "WARNING": "WARNING", "ERROR": "ERROR", "FATAL": "CRITICAL", "CRITICAL": "CRITICAL"}


def install_log_handler(env):
    """Lambda's habit that handlers rely on: the root logger has a handler writing
    ``[LEVEL]\tTIME\tREQUEST_ID\tMESSAGE`` lines to the function's log, so an unconfigured
    ``logging.getLogger().info(...)`` is logged; the root level is ``AWS_LAMBDA_LOG_LEVEL``'s
    when it is set (else logging's own default, WARNING, as on Lambda). The handler is added
    once per process: a zygote adds it (``env`` ``None``, no level) for all its runtimes, which
    copy-on-write would otherwise each make their own."""
    global _log_handler
    import logging

    if _log_handler is None:
        _log_handler = _lambda_log_handler(logging)
    root = logging.getLogger()
    if _log_handler not in root.handlers:
        root.addHandler(_log_handler)
    level = _LOG_LEVELS.get((env.get("AWS_LAMBDA_LOG_LEVEL") or "").strip().upper()) if env else None
    if level:
        root.setLevel(level)


# The handler install_log_handler adds to the root logger, once made.
_log_handler = None


def _lambda_log_handler(logging):
    class RequestId(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id
            return True

    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.terminator = ""
    handler.addFilter(RequestId())
    return handler


def handle_invocation(client, handler, inv, function):
    """Runs one invocation and posts its outcome."""
    global _current_request_id
    rid = inv.request_id
    _current_request_id = rid
    if inv.trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = inv.trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        body = inv.body.strip()
        event = json_loads(body) if body else {}
    except (ValueError, RecursionError) as e:
        report = {"errorMessage": "Unable to unmarshal input: %s" % e, "errorType": "Runtime.UnmarshalError",
                  "requestId": rid, "stackTrace": []}
        _log_error(report)
        client.post_error(rid, report, "Runtime.UnmarshalError")
        return
    context = LambdaContext(inv, function)
    try:
        result = handler(event, context)
    except Exception as e:
        _flush_std()
        report = _exception_report(e, rid)
        _log_error(report)
        client.post_error(rid, report, "Unhandled")
        return
    _flush_std()
    try:
        payload = to_json(result)
    except Exception as e:
        report = {"errorMessage": "Unable to marshal response: %s" % e, "errorType": "Runtime.MarshalError",
                  "requestId": rid, "stackTrace": []}
        _log_error(report)
        client.post_error(rid, report, "Runtime.MarshalError")
        return
    client.post_response(rid, payload)


# A Runtime API connection opened ahead of the function (see ``connect_early``).
_early_client = None


def connect_early(address):
    """Connects to the Runtime API at ``address`` before the function is known: a runtime
    forked ahead does while it waits (its sandbox's address is the same for every function),
    and the platform serves the connection from the claim on. ``run`` makes its first request
    over it when its address is the same, which spares the cold start a socket and its connect.
    A failed connect costs nothing: ``run`` connects as usual."""
    global _early_client
    client = RuntimeClient(address)
    try:
        client.conn.connect()
    except OSError:
        return
    _early_client = client


def _client_for(address):
    """The client for ``address``: the early one if it was made for it, else a new one."""
    global _early_client
    client, _early_client = _early_client, None
    if client is not None and client.address == address:
        return client
    if client is not None:
        client.conn.close()
    return RuntimeClient(address)


def run(handler_spec=None, environ=None):
    """Loads the handler and serves invocations until the Runtime API goes away.

    Returns the process exit status (always 1: the loop only ends on failure). Reads its
    configuration from ``environ`` (default ``os.environ``) when called, so a forked child
    may set its environment first.
    """
    env = os.environ if environ is None else environ
    address = env.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _stderr("lambent runtime: AWS_LAMBDA_RUNTIME_API is not set; this program runs inside a Lambent sandbox")
        return 1
    if handler_spec is None:
        handler_spec = env.get("_HANDLER", "")
    client = _client_for(address)
    import_start = time.monotonic_ns()
    task_root = env.get("LAMBDA_TASK_ROOT") or os.getcwd()
    use_sdk(sdk_path(env.get("LAMBDA_RUNTIME_DIR")), task_root, env)
    install_log_handler(env)
    try:
        handler = load_handler(handler_spec, task_root)
    except InitError as e:
        report = e.report()
        _flush_std()
        _log_error(report)
        try:
            client.post_init_error(report)
        except RuntimeAPIError as err:
            _stderr("lambent runtime: %s" % err)
        client.conn.close()
        return 1
    import_us = (time.monotonic_ns() - import_start) // 1000
    return serve(handler, env, client, import_us)


def serve(handler, environ=None, client=None, import_us=None):
    """The invocation loop for an already loaded ``handler`` (a zygote that imported the
    function's code before forking calls this in the child). Returns the exit status, 1.

    ``import_us``: how long loading the handler took, reported to the platform on the first
    ``GET /next`` (header ``Lambent-Handler-Import-Us``); ``None`` reports nothing."""
    env = os.environ if environ is None else environ
    if client is None:
        address = env.get("AWS_LAMBDA_RUNTIME_API")
        if not address:
            _stderr("lambent runtime: AWS_LAMBDA_RUNTIME_API is not set; this program runs inside a Lambent sandbox")
            return 1
        client = RuntimeClient(address)
    function = _function_info(env)
    first = {IMPORT_US_HEADER: "%d" % import_us} if import_us is not None else None
    try:
        inv = client.next(first)
        while True:
            handle_invocation(client, handler, inv, function)
            inv = client.next()
    except RuntimeAPIError as e:
        _flush_std()
        _stderr("lambent runtime: %s; exiting" % e)
        return 1
    finally:
        client.conn.close()


def main():
    # The script's own directory holds only this file: the task root takes its place on sys.path.
    here = os.path.dirname(os.path.abspath(_THIS_FILE))
    if sys.path and sys.path[0] in (here, os.path.dirname(os.path.realpath(_THIS_FILE))):
        del sys.path[0]
    spec = sys.argv[1] if len(sys.argv) > 1 else None
    sys.exit(run(spec))


if __name__ == "__main__":
    main()
