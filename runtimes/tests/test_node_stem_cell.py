"""Drives runtimes/node/bootstrap.mjs as a stem cell (`LAMBENT_STEM_CELL=1`), the way the host
does (crates/sandbox/src/stem.rs, host.rs `start_stem_cell`): node starts before its function is
known, its stdin one end of a Unix stream socket pair; it writes one byte (`w`) when it waits,
and the host claims it by writing the function's environment (KEY=VALUE, NUL-separated), then
shutting down its side and closing it. A claim may come at any point of that: after the host
read the byte, before the byte was written, or with the byte written but not read yet.

Run: cd /work/main && python3 -m unittest discover -s runtimes/tests -v
"""

import os
import shutil
import socket
import subprocess
import time
import unittest

from mock_runtime_api import MockRuntimeAPI

HERE = os.path.dirname(os.path.abspath(__file__))
BOOTSTRAP = os.path.join(os.path.dirname(HERE), "node", "bootstrap.mjs")
TASK_ROOT = os.path.join(HERE, "fixtures", "node")
NODE = os.environ.get("LAMBENT_NODE") or shutil.which("node")
TIMEOUT = 10

# What a waiting stem cell has (`StemProgram::environment`): nothing of any function.
STEM_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TZ": ":UTC",
    "LAMBENT_STEM_CELL": "1",
    "LAMBDA_TASK_ROOT": TASK_ROOT,
}


def start_stem_cell(stem_env):
    """A stem cell started as the host starts one: its process, and the host's end of the
    assignment socket (its stdin)."""
    host, runtime = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen(
        [NODE, BOOTSTRAP], cwd="/", env=stem_env, stdin=runtime,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    runtime.close()
    host.settimeout(TIMEOUT)
    return proc, host


def assign(host, environment):
    """Claims it: the function's environment written, the host's end shut down and closed."""
    host.sendall("\0".join("%s=%s" % kv for kv in environment.items()).encode())
    host.shutdown(socket.SHUT_WR)
    host.close()


class NodeStemCellTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if NODE is None:
            raise RuntimeError("node is not installed (set LAMBENT_NODE): scripts/test installs it")
        cls.api = MockRuntimeAPI().start()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def claim(self, when, stem_env=STEM_ENV, handler="minimal_cjs.handler"):
        """Starts a stem cell, claims it `when` its waiting byte is in a given state, and returns
        (exit code, stderr, the runtime's requests) once it served one event; its stdout is
        left in ``self.stdout``."""
        self.api.reset({"events": [{"request_id": "stem-1", "event": {"n": 1}}]})
        proc, host = start_stem_cell(stem_env)
        if when == "read":
            self.assertEqual(host.recv(1), b"w")
        elif when == "unread":
            # Written, still in the host's receive queue when the host closes its end.
            self.assertEqual(host.recv(1, socket.MSG_PEEK), b"w")
        self.claimed_at = time.time()
        environment = dict(STEM_ENV)
        del environment["LAMBENT_STEM_CELL"]
        environment.update({
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "_HANDLER": handler,
            "AWS_LAMBDA_FUNCTION_NAME": "stem-fn",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        })
        assign(host, environment)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            self.fail("the stem cell did not exit within %ss; stderr:\n%s" % (TIMEOUT, err.decode()))
        self.stdout = out.decode()
        return proc.returncode, err.decode(), self.api.runtime_records()

    def assert_served(self, when):
        self.assert_served_with(STEM_ENV, when)

    def assert_served_with(self, stem_env, when="read"):
        code, stderr, records = self.claim(when, stem_env)
        posts = [r for r in records if r["method"] == "POST"]
        self.assertEqual(len(posts), 1, "claimed with the byte %s: %s" % (when, stderr))
        self.assertEqual(posts[0]["path"], "/2018-06-01/runtime/invocation/stem-1/response")
        self.assertEqual(posts[0]["json"], {"ok": True})
        # It exits on the mock's 410 once the event ran out, as any runtime does.
        self.assertEqual(code, 1, stderr)
        self.assertIn("answered HTTP 410", stderr)

    def test_claimed_after_the_host_read_that_it_waits(self):
        self.assert_served("read")

    def test_claimed_with_its_waiting_byte_unread(self):
        # The host's end closed with unread data resets the runtime's: its read of the
        # environment ends in ECONNRESET after the data, not in an end of file.
        self.assert_served("unread")

    def test_claimed_before_it_said_it_waits(self):
        self.assert_served("before")

    def test_its_rehearsal_leaves_nothing_in_the_function_log(self):
        # It rehearses invocations whose handler logs with console.log, before its claim,
        # with its stdout and stderr already the function's log.
        code, stderr, records = self.claim("read", handler="cjs.prints")
        self.assertEqual(code, 1, stderr)
        self.assertEqual([r["method"] for r in records], ["GET", "POST", "GET"], stderr)
        self.assertEqual(self.stdout, "hello from the handler\n")
        self.assertNotIn("rehearsal", stderr)
        self.assertEqual(stderr.count("\n"), 1, stderr)  # the runtime's own line on the 410

    def test_its_first_request_goes_over_the_connection_it_opened_while_waiting(self):
        # As the host starts it: the sandbox's Runtime API address is known before the function.
        stem_env = dict(STEM_ENV, AWS_LAMBDA_RUNTIME_API=self.api.address)
        code, stderr, records = self.claim("read", stem_env)
        self.assertEqual(code, 1, stderr)
        self.assertEqual([r["method"] for r in records], ["GET", "POST", "GET"], stderr)
        early = [conn for conn, t in self.api.accepted if t < self.claimed_at]
        self.assertEqual(len(early), 1, "connections before the claim: %s" % self.api.accepted)
        self.assertTrue(all(r["conn"] == early[0] for r in records), "%s, early: %s" % (records, early))

    def test_an_early_connection_that_failed_while_it_waited_is_replaced(self):
        # Nothing listens at the address while it waits (its connect is refused); the Runtime
        # API is there by the claim.
        placeholder = socket.socket()
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        stem_env = dict(STEM_ENV, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % port)
        proc, host = start_stem_cell(stem_env)
        try:
            self.assertEqual(host.recv(1), b"w")
            placeholder.close()
            api = MockRuntimeAPI({"events": [{"request_id": "stem-1", "event": {"n": 1}}]}).start(port=port)
            try:
                environment = dict(stem_env, _HANDLER="minimal_cjs.handler")
                del environment["LAMBENT_STEM_CELL"]
                assign(host, environment)
                _, err = proc.communicate(timeout=TIMEOUT)
                posts = api.runtime_records("POST")
                self.assertEqual([p["path"] for p in posts],
                                 ["/2018-06-01/runtime/invocation/stem-1/response"], err.decode())
            finally:
                api.stop()
        finally:
            proc.kill()
            proc.wait()

    def test_a_stem_cell_claimed_for_another_address_connects_there(self):
        elsewhere = MockRuntimeAPI().start()
        try:
            stem_env = dict(STEM_ENV, AWS_LAMBDA_RUNTIME_API=elsewhere.address)
            self.assert_served_with(stem_env)
            self.assertEqual(elsewhere.runtime_records(), [])
        finally:
            elsewhere.stop()


if __name__ == "__main__":
    unittest.main()
