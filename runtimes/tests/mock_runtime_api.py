"""A scripted mock of the AWS Lambda Runtime API (2018-06-01), for testing runtime clients.

In-process (the Python tests)::

    api = MockRuntimeAPI().start()
    api.reset({"events": [{"event": {"x": 1}}]})
    ... run a runtime with AWS_LAMBDA_RUNTIME_API=api.address ...
    api.records  # every Runtime API request received, in order
    api.stop()

As a process (the Node tests): ``python3 mock_runtime_api.py`` prints one line ``{"port": N}``,
then serves until its stdin closes. Control routes, not recorded:
``POST /_mock/reset`` (body: a script, clears the records) and ``GET /_mock/records``.

A script is ``{"events": [...], "exhausted_status": 410, "close": "none"|"header"|"silent"}``.
Each event may have:

- ``event`` (any JSON value, the payload) or ``body`` (raw payload text);
- ``request_id`` (default ``req-<n>``);
- ``deadline_in_ms`` (relative to when /next answers, default 30000) or ``deadline_ms`` (absolute);
- ``function_arn``, ``trace_id`` (``null`` omits the header), ``client_context``,
  ``cognito_identity`` (objects are JSON-encoded; strings are sent as is), ``headers`` (extra).

``GET /next`` hands out the events in order; once they are used up it answers
``exhausted_status`` (default 410), which makes a runtime exit. ``close`` makes the server end the
connection after each response, announced with ``Connection: close`` ("header") or not ("silent",
like a kept-alive connection timing out on the server).
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:test-fn"
DEFAULT_TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MockRuntimeAPI/1.0"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", headers=None, control=False):
        mock = self.server.mock
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        close = None if control else mock.script.get("close", "none")
        if close == "header":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if close in ("header", "silent"):
            self.close_connection = True

    def _record(self, body):
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        rec = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": text,
            "json": parsed,
            "t": time.time(),
            "conn": "%s:%s" % self.client_address[:2],
        }
        with self.server.mock.lock:
            self.server.mock.records.append(rec)

    def do_GET(self):
        mock = self.server.mock
        if self.path == "/_mock/records":
            with mock.lock:
                body = json.dumps({"records": mock.records}).encode()
            return self._send(200, body, control=True)
        self._record(b"")
        if self.path == "/2018-06-01/runtime/invocation/next":
            ev = mock.take_event()
            if ev is None:
                status = mock.script.get("exhausted_status", 410)
                body = json.dumps({"errorType": "MockExhausted", "errorMessage": "no more scripted events"})
                return self._send(status, body.encode())
            return self._send(200, *mock.render(ev))
        self._send(404, b'{"errorType":"NotFound","errorMessage":"no such route"}')

    def do_POST(self):
        mock = self.server.mock
        body = self._read_body()
        if self.path == "/_mock/reset":
            mock.reset(json.loads(body or b"{}"))
            return self._send(200, b'{"status":"OK"}', control=True)
        self._record(body)
        p = self.path
        if p == "/2018-06-01/runtime/init/error" or (
            p.startswith("/2018-06-01/runtime/invocation/") and p.endswith(("/response", "/error"))
        ):
            return self._send(202, b'{"status":"OK"}')
        self._send(404, b'{"errorType":"NotFound","errorMessage":"no such route"}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        sock, client = super().get_request()
        with self.mock.lock:
            self.mock.accepted.append(("%s:%s" % client[:2], time.time()))
        return sock, client

    def handle_error(self, request, client_address):
        # A runtime that exits (or is killed) mid-connection is normal here; anything else is loud.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class MockRuntimeAPI:
    def __init__(self, script=None):
        self.lock = threading.Lock()
        self.records = []
        # (client address, time) of each connection accepted, in order.
        self.accepted = []
        self.script = {}
        self.events = []
        self.served = 0
        self.reset(script or {})
        self.server = None
        self.thread = None

    def reset(self, script):
        with self.lock:
            self.script = dict(script)
            self.events = list(script.get("events", []))
            self.records = []
            self.accepted = []
            self.served = 0

    def take_event(self):
        with self.lock:
            if not self.events:
                return None
            self.served += 1
            ev = self.events.pop(0)
            ev.setdefault("request_id", "req-%d" % self.served)
            return ev

    @staticmethod
    def render(ev):
        if "body" in ev:
            body = ev["body"].encode("utf-8")
        else:
            body = json.dumps(ev.get("event", {})).encode("utf-8")
        if "deadline_ms" in ev:
            deadline = int(ev["deadline_ms"])
        else:
            deadline = int(time.time() * 1000) + int(ev.get("deadline_in_ms", 30000))
        headers = {
            "Lambda-Runtime-Aws-Request-Id": ev["request_id"],
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": ev.get("function_arn", DEFAULT_ARN),
        }
        trace = ev.get("trace_id", DEFAULT_TRACE)
        if trace is not None:
            headers["Lambda-Runtime-Trace-Id"] = trace
        for key, name in (("client_context", "Lambda-Runtime-Client-Context"),
                          ("cognito_identity", "Lambda-Runtime-Cognito-Identity")):
            if ev.get(key) is not None:
                v = ev[key]
                headers[name] = v if isinstance(v, str) else json.dumps(v)
        headers.update(ev.get("headers", {}))
        return body, headers

    def start(self, host="127.0.0.1", port=0):
        self.server = _Server((host, port), _Handler)
        self.server.mock = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def runtime_records(self, method=None):
        with self.lock:
            return [r for r in self.records if method is None or r["method"] == method]

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def main():
    api = MockRuntimeAPI().start()
    sys.stdout.write(json.dumps({"port": api.port}) + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)
    finally:
        api.stop()


if __name__ == "__main__":
    main()
