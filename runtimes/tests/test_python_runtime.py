"""Drives runtimes/python/bootstrap.py as a subprocess against the mock Runtime API.

Run: cd /work/main && python3 -m unittest discover -s runtimes/tests -v
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

from mock_runtime_api import DEFAULT_ARN, DEFAULT_TRACE, MockRuntimeAPI

HERE = os.path.dirname(os.path.abspath(__file__))
BOOTSTRAP = os.path.join(os.path.dirname(HERE), "python", "bootstrap.py")
TASK_ROOT = os.path.join(HERE, "fixtures", "python")
# The platform runs Debian's interpreter; fall back to the one running the tests.
PYTHON = os.environ.get("LAMBENT_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
)
TIMEOUT = 10


class Run:
    def __init__(self, proc, stdout, stderr, records):
        self.returncode = proc.returncode
        self.stdout = stdout
        self.stderr = stderr
        self.records = records

    def posts(self):
        return [r for r in self.records if r["method"] == "POST"]

    def gets(self):
        return [r for r in self.records if r["method"] == "GET"]


def base_env(address, handler):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_LAMBDA_RUNTIME_API": address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": TASK_ROOT,
        "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.dirname(BOOTSTRAP)),
        "AWS_LAMBDA_FUNCTION_NAME": "test-fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/test-fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]abc",
        "AWS_REGION": "us-east-1",
    }
    return env


class PythonRuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = MockRuntimeAPI().start()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def run_runtime(self, handler, events, script=None, env=None, argv=()):
        s = {"events": events}
        s.update(script or {})
        self.api.reset(s)
        e = base_env(self.api.address, handler)
        e.update(env or {})
        proc = subprocess.Popen(
            [PYTHON, BOOTSTRAP] + list(argv), cwd=TASK_ROOT, env=e,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail("runtime did not exit within %ss; stderr:\n%s" % (TIMEOUT, err.decode()))
        return Run(proc, out.decode(), err.decode(), self.api.runtime_records())

    def assert_served_all(self, run, n_events):
        """The runtime asked for work n+1 times and exited on the mock's 410 once events ran out."""
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertEqual(len(run.gets()), n_events + 1, run.records)
        self.assertIn("answered HTTP 410", run.stderr)

    def response(self, run, i=0):
        posts = run.posts()
        self.assertGreater(len(posts), i, run.stderr)
        return posts[i]

    # ---- a connection opened ahead ---------------------------------------------------------

    def run_connected_early(self, early_address):
        """Runs ``app.ok_dict`` for one event after ``connect_early(early_address)``, the way a
        runtime forked ahead does; returns the run and when the runtime started serving."""
        self.api.reset({"events": [{"request_id": "early-1", "event": {"x": 1}}]})
        code = ("import bootstrap, sys, time\n"
                "bootstrap.connect_early(%r)\n"
                "time.sleep(0.2)\n"
                "print(time.time(), flush=True)\n"
                "sys.exit(bootstrap.run())\n" % early_address)
        proc = subprocess.run(
            [PYTHON, "-c", code], cwd=TASK_ROOT, env=dict(base_env(self.api.address, "app.ok_dict"),
                                                        PYTHONPATH=os.path.dirname(BOOTSTRAP)),
            capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        run = Run(proc, proc.stdout.decode(), proc.stderr.decode(), self.api.runtime_records())
        return run, float(run.stdout.split()[0])

    def test_the_first_request_goes_over_the_connection_opened_ahead(self):
        run, serving = self.run_connected_early(self.api.address)
        self.assert_served_all(run, 1)
        early = [conn for conn, t in self.api.accepted if t < serving]
        self.assertEqual(len(early), 1, self.api.accepted)
        self.assertTrue(all(r["conn"] == early[0] for r in run.records), (run.records, early))

    def test_a_connection_opened_ahead_to_another_address_is_not_used(self):
        elsewhere = MockRuntimeAPI().start()
        try:
            run, _ = self.run_connected_early(elsewhere.address)
            self.assert_served_all(run, 1)
            self.assertEqual(self.response(run)["json"], {"ok": True, "event": {"x": 1}})
            self.assertEqual(elsewhere.runtime_records(), [])
        finally:
            elsewhere.stop()

    def test_nothing_listening_ahead_is_no_loss(self):
        placeholder = socket.socket()
        placeholder.bind(("127.0.0.1", 0))
        try:
            run, _ = self.run_connected_early("127.0.0.1:%d" % placeholder.getsockname()[1])
            self.assert_served_all(run, 1)
        finally:
            placeholder.close()

    # ---- success ------------------------------------------------------------------------

    def test_success_dict(self):
        run = self.run_runtime("app.ok_dict", [{"request_id": "abc-1", "event": {"x": 1}}])
        self.assert_served_all(run, 1)
        r = self.response(run)
        self.assertEqual(r["path"], "/2018-06-01/runtime/invocation/abc-1/response")
        self.assertEqual(r["headers"]["content-type"], "application/json")
        self.assertEqual(r["json"], {"ok": True, "event": {"x": 1}})
        self.assertEqual(run.stdout, "")

    def test_success_none_is_null(self):
        run = self.run_runtime("app.ok_none", [{}])
        self.assertEqual(self.response(run)["body"], "null")

    def test_success_string(self):
        run = self.run_runtime("app.ok_str", [{}])
        self.assertEqual(self.response(run)["body"], '"hello"')

    def test_event_any_json_value(self):
        values = [[1, 2, 3], "text", 42, None, {"nested": {"ü": "ñ"}}]
        run = self.run_runtime("app.echo", [{"event": v} for v in values])
        self.assert_served_all(run, len(values))
        self.assertEqual([p["json"] for p in run.posts()], values)

    def test_empty_body_is_empty_object(self):
        run = self.run_runtime("app.echo", [{"body": ""}])
        self.assertEqual(self.response(run)["json"], {})

    def test_decimal_result(self):
        run = self.run_runtime("app.decimals", [{}])
        self.assertEqual(self.response(run)["json"], {"int": 10, "frac": 1.5})

    def test_import_time_is_sent_on_the_first_next_only(self):
        run = self.run_runtime("slow_import.handler", [{}, {}])
        self.assert_served_all(run, 2)
        gets = run.gets()
        first = gets[0]["headers"].get("lambent-handler-import-us")
        self.assertIsNotNone(first, gets[0]["headers"])
        self.assertTrue(first.isdigit(), first)
        self.assertGreaterEqual(int(first), 50_000, "the module sleeps 50 ms at import")
        self.assertLess(int(first), TIMEOUT * 1_000_000)
        for later in gets[1:]:
            self.assertNotIn("lambent-handler-import-us", later["headers"])

    def test_warm_reuse_and_one_persistent_connection(self):
        run = self.run_runtime("app.counter", [{}, {}, {}])
        self.assert_served_all(run, 3)
        bodies = [p["json"] for p in run.posts()]
        self.assertEqual([b["count"] for b in bodies], [1, 2, 3])
        self.assertEqual(len({b["pid"] for b in bodies}), 1)
        self.assertEqual(len({r["conn"] for r in run.records}), 1, "all requests on one kept-alive connection")

    def test_reconnects_when_server_closes_with_header(self):
        run = self.run_runtime("app.counter", [{}, {}], script={"close": "header"})
        self.assert_served_all(run, 2)
        self.assertEqual([p["json"]["count"] for p in run.posts()], [1, 2])
        self.assertEqual(len({r["conn"] for r in run.records}), len(run.records))

    def test_reconnects_when_server_closes_silently(self):
        run = self.run_runtime("app.counter", [{}, {}, {}], script={"close": "silent"})
        self.assert_served_all(run, 3)
        self.assertEqual([p["json"]["count"] for p in run.posts()], [1, 2, 3])

    def test_stdout_is_only_the_functions_output(self):
        run = self.run_runtime("app.prints", [{}])
        self.assertEqual(self.response(run)["json"], "printed")
        self.assertEqual(run.stdout, "hello from the handler\n")

    def test_the_root_logger_writes_lambdas_lines_at_the_configured_level(self):
        rid = "log-req-1"
        run = self.run_runtime("app.logs", [{"request_id": rid}], env={"AWS_LAMBDA_LOG_LEVEL": "INFO"})
        self.assertEqual(self.response(run)["json"], "logged")
        lines = run.stdout.splitlines()
        self.assertEqual(len(lines), 2, run.stdout)
        for line, (level, text) in zip(lines, [("INFO", "info line"), ("WARNING", "warning line")]):
            fields = line.split("\t")
            self.assertEqual(fields[0], "[%s]" % level, line)
            self.assertRegex(fields[1], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(fields[2:], [rid, text])
        # Without AWS_LAMBDA_LOG_LEVEL, logging's default level (WARNING), as on Lambda.
        run = self.run_runtime("app.logs", [{}])
        self.assertEqual(len(run.stdout.splitlines()), 1, run.stdout)
        self.assertIn("warning line", run.stdout)

    # ---- handler errors -----------------------------------------------------------------

    def test_handler_exception_then_continues(self):
        run = self.run_runtime("app.boom", [{"request_id": "e-1", "event": {"why": "nope"}}])
        self.assert_served_all(run, 1)
        r = self.response(run)
        self.assertEqual(r["path"], "/2018-06-01/runtime/invocation/e-1/error")
        self.assertEqual(r["headers"]["lambda-runtime-function-error-type"], "Unhandled")
        body = r["json"]
        self.assertEqual(body["errorType"], "ValueError")
        self.assertEqual(body["errorMessage"], "bad thing: nope")
        self.assertEqual(body["requestId"], "e-1")
        self.assertEqual(len(body["stackTrace"]), 1, body["stackTrace"])
        self.assertIn('app.py", line', body["stackTrace"][0])
        self.assertIn("in boom", body["stackTrace"][0])
        self.assertIn('raise ValueError("bad thing', body["stackTrace"][0])
        self.assertNotIn("bootstrap.py", "".join(body["stackTrace"]))
        self.assertIn("[ERROR] ValueError: bad thing: nope", run.stderr)

    def test_error_then_success_in_same_process(self):
        run = self.run_runtime("app.boom_custom", [{}, {}])
        self.assert_served_all(run, 2)
        errs = [p for p in run.posts() if p["path"].endswith("/error")]
        self.assertEqual(len(errs), 2)
        body = errs[0]["json"]
        self.assertEqual(body["errorType"], "BadThing")
        self.assertEqual(body["errorMessage"], "custom failure")
        self.assertEqual(len(body["stackTrace"]), 2)
        self.assertIn("in _helper", body["stackTrace"][1])

    def test_error_message_with_any_characters(self):
        run = self.run_runtime("app.boom_unicode", [{}, {}])
        self.assert_served_all(run, 2)
        self.assertEqual(run.posts()[0]["json"]["errorMessage"], "caf\u00e9 \ud800 \U0001F600")

    def test_marshal_error(self):
        run = self.run_runtime("app.not_serializable", [{"request_id": "m-1"}, {"request_id": "m-2"}])
        self.assert_served_all(run, 2)
        r = self.response(run)
        self.assertEqual(r["path"], "/2018-06-01/runtime/invocation/m-1/error")
        self.assertEqual(r["headers"]["lambda-runtime-function-error-type"], "Runtime.MarshalError")
        self.assertEqual(r["json"]["errorType"], "Runtime.MarshalError")
        self.assertIn("Unable to marshal response", r["json"]["errorMessage"])
        self.assertIn("set", r["json"]["errorMessage"])
        self.assertEqual(r["json"]["requestId"], "m-1")

    def test_nan_is_a_marshal_error(self):
        run = self.run_runtime("app.nan", [{}])
        self.assertEqual(self.response(run)["json"]["errorType"], "Runtime.MarshalError")

    def test_unmarshal_error(self):
        run = self.run_runtime("app.echo", [{"body": "{not json"}, {"event": 1}])
        self.assert_served_all(run, 2)
        first, second = run.posts()
        self.assertTrue(first["path"].endswith("/error"))
        self.assertEqual(first["json"]["errorType"], "Runtime.UnmarshalError")
        self.assertEqual(second["json"], 1)

    # ---- init errors --------------------------------------------------------------------

    def assert_init_error(self, run, error_type, message_part):
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertEqual(run.gets(), [], "no /next after an init error")
        posts = run.posts()
        self.assertEqual(len(posts), 1, run.records)
        r = posts[0]
        self.assertEqual(r["path"], "/2018-06-01/runtime/init/error")
        self.assertEqual(r["headers"]["lambda-runtime-function-error-type"], error_type)
        self.assertEqual(r["json"]["errorType"], error_type)
        self.assertIn(message_part, r["json"]["errorMessage"])
        self.assertIsInstance(r["json"]["stackTrace"], list)
        self.assertIn("[ERROR] " + error_type, run.stderr)
        return r["json"]

    def test_init_missing_module(self):
        body = self.assert_init_error(self.run_runtime("nope.handler", []), "Runtime.ImportModuleError",
                                      "Unable to import module 'nope': No module named 'nope'")
        self.assertEqual(body["stackTrace"], [])

    def test_init_missing_dependency(self):
        self.assert_init_error(self.run_runtime("imports_missing.handler", []), "Runtime.ImportModuleError",
                               "No module named 'definitely_not_installed_dependency'")

    def test_init_module_raises(self):
        body = self.assert_init_error(self.run_runtime("raises_on_import.handler", []), "Runtime.ImportModuleError",
                                      "RuntimeError: cannot start: missing configuration")
        self.assertIn("raises_on_import.py", "".join(body["stackTrace"]))

    def test_init_missing_function(self):
        self.assert_init_error(self.run_runtime("app.nope", []), "Runtime.HandlerNotFound",
                               "Handler 'nope' missing on module 'app'")

    def test_init_not_callable(self):
        self.assert_init_error(self.run_runtime("app.not_callable", []), "Runtime.HandlerNotFound",
                               "not callable")

    def test_init_malformed_handler(self):
        for spec in ("app", "", "app.", ".handler"):
            with self.subTest(spec=spec):
                self.assert_init_error(self.run_runtime(spec, []), "Runtime.MalformedHandlerName", "Bad handler")

    def test_init_handler_module_shadowed_by_stdlib(self):
        self.assert_init_error(self.run_runtime("os.handler", []), "Runtime.HandlerNotFound",
                               "(module 'os' was loaded from ")

    def test_init_builtin_module_conflict(self):
        self.assert_init_error(self.run_runtime("sys.handler", []), "Runtime.BuiltInModuleConflict",
                               "Cannot use built-in module sys")

    def test_init_syntax_error(self):
        body = self.assert_init_error(self.run_runtime("bad_syntax.handler", []), "Runtime.UserCodeSyntaxError",
                                      "Syntax error in module 'bad_syntax'")
        self.assertIn("bad_syntax.py", body["stackTrace"][0])

    # ---- handler names ------------------------------------------------------------------

    def test_slash_path_handler(self):
        run = self.run_runtime("src/app.handler", [{}])
        self.assertEqual(self.response(run)["json"], {"from": "src/app.py", "module": "src.app"})

    def test_dotted_package_handler(self):
        run = self.run_runtime("pkg.mod.handler", [{}])
        self.assertEqual(self.response(run)["json"], {"from": "pkg/mod.py", "module": "pkg.mod"})

    def test_handler_from_argv(self):
        run = self.run_runtime("app.nope", [{}], argv=["app.ok_str"])
        self.assertEqual(self.response(run)["json"], "hello")

    # ---- context ------------------------------------------------------------------------

    def test_context_fields(self):
        run = self.run_runtime("app.ctx", [{"request_id": "ctx-1", "deadline_in_ms": 5000}])
        c = self.response(run)["json"]
        self.assertEqual(c["function_name"], "test-fn")
        self.assertEqual(c["function_version"], "$LATEST")
        self.assertEqual(c["invoked_function_arn"], DEFAULT_ARN)
        self.assertEqual(c["memory_limit_in_mb"], 256)
        self.assertTrue(c["memory_is_int"])
        self.assertEqual(c["aws_request_id"], "ctx-1")
        self.assertEqual(c["log_group_name"], "/aws/lambda/test-fn")
        self.assertEqual(c["log_stream_name"], "2025/01/01/[$LATEST]abc")
        self.assertTrue(3000 < c["remaining"] <= 5000, c["remaining"])
        self.assertIsNone(c["identity_id"])
        self.assertTrue(c["client_context_is_none"])
        self.assertEqual(c["trace"], DEFAULT_TRACE)

    def test_remaining_time_past_deadline_is_zero(self):
        run = self.run_runtime("app.ctx", [{"deadline_ms": int(time.time() * 1000) - 1000}])
        self.assertEqual(self.response(run)["json"]["remaining"], 0)

    def test_client_context_and_identity(self):
        cc = {
            "client": {"installation_id": "inst-1", "app_title": "Demo", "app_version_name": "1.0",
                       "app_version_code": "10", "app_package_name": "com.example"},
            "custom": {"k": "v"},
            "env": {"platform": "linux"},
        }
        ident = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
        run = self.run_runtime("app.ctx", [{"client_context": cc, "cognito_identity": ident},
                                           {"client_context": "{broken", "cognito_identity": None}])
        first, second = [p["json"] for p in run.posts()]
        self.assertEqual(first["identity_id"], "id-1")
        self.assertEqual(first["identity_pool_id"], "pool-1")
        self.assertFalse(first["client_context_is_none"])
        self.assertEqual(first["client"], cc["client"])
        self.assertEqual(first["custom"], {"k": "v"})
        self.assertEqual(first["env"], {"platform": "linux"})
        # Malformed or absent headers do not fail the invocation.
        self.assertTrue(second["client_context_is_none"])
        self.assertIsNone(second["identity_id"])

    def test_trace_id_set_per_invoke(self):
        run = self.run_runtime("app.trace", [{"trace_id": "Root=1-a"}, {"trace_id": None}, {"trace_id": "Root=1-b"}])
        self.assertEqual([p["json"] for p in run.posts()], ["Root=1-a", None, "Root=1-b"])

    # ---- the Runtime API going away -----------------------------------------------------

    def test_unreachable_api_exits_1(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = base_env("127.0.0.1:%d" % port, "app.ok_dict")
        proc = subprocess.run([PYTHON, BOOTSTRAP], cwd=TASK_ROOT, env=env, capture_output=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"cannot reach the Runtime API at 127.0.0.1:%d" % port, proc.stderr)
        self.assertEqual(proc.stdout, b"")

    def test_missing_runtime_api_env_exits_1(self):
        env = base_env("", "app.ok_dict")
        del env["AWS_LAMBDA_RUNTIME_API"]
        proc = subprocess.run([PYTHON, BOOTSTRAP], cwd=TASK_ROOT, env=env, capture_output=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"AWS_LAMBDA_RUNTIME_API is not set", proc.stderr)

    def test_next_non_2xx_exits_1(self):
        run = self.run_runtime("app.ok_dict", [], script={"exhausted_status": 500})
        self.assertEqual(run.returncode, 1)
        self.assertIn("answered HTTP 500", run.stderr)
        self.assertEqual(len(run.gets()), 1)

    # ---- zygote-friendliness ------------------------------------------------------------

    def test_import_has_no_side_effects_and_run_is_callable(self):
        code = (
            "import sys; sys.path.insert(0, %r)\n"
            "import bootstrap\n"
            "heavy = {'http.client', 'socket', 'traceback', 'json', 're', 'enum'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "import os\n"
            "os.environ.update(%s)\n"
            "sys.exit(bootstrap.run('app.ok_str'))\n"
        )
        self.api.reset({"events": [{}]})
        env = base_env(self.api.address, "app.nope")
        runtime_env = {k: env.pop(k) for k in list(env) if k.startswith(("AWS_", "LAMBDA_", "_HANDLER"))}
        # Importing must work with none of the platform's variables set.
        proc = subprocess.run([PYTHON, "-c", code % (os.path.dirname(BOOTSTRAP), json.dumps(runtime_env))],
                              cwd=TASK_ROOT, env=env, capture_output=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        posts = self.api.runtime_records("POST")
        self.assertEqual([p["json"] for p in posts], ["hello"])

    def test_load_then_fork_then_serve(self):
        """The zygote pattern: import and load the handler, fork, serve in the child."""
        code = (
            "import os, sys\n"
            "sys.dont_write_bytecode = True\n"
            "sys.path.insert(0, %r)\n"
            "import bootstrap\n"
            "handler = bootstrap.load_handler('app.counter', %r)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os._exit(bootstrap.serve(handler))\n"
            "_, status = os.waitpid(pid, 0)\n"
            "print(os.getpid(), os.waitstatus_to_exitcode(status))\n"
        ) % (os.path.dirname(BOOTSTRAP), TASK_ROOT)
        self.api.reset({"events": [{}, {}]})
        proc = subprocess.run([PYTHON, "-c", code], cwd=TASK_ROOT, env=base_env(self.api.address, ""),
                              capture_output=True, text=True, timeout=TIMEOUT)
        parent, child_status = proc.stdout.split()
        self.assertEqual(child_status, "1", proc.stderr)
        bodies = [p["json"] for p in self.api.runtime_records("POST")]
        self.assertEqual([b["count"] for b in bodies], [1, 2])
        self.assertNotEqual(str(bodies[0]["pid"]), parent, "served by the forked child")


class HandlerModuleTest(unittest.TestCase):
    """load_handler loads a plain module file itself: the module is what importlib would make."""

    REPORT = (
        "import json, sys\n"
        "sys.dont_write_bytecode = True\n"
        "sys.path.insert(0, %r)\n"
        "import bootstrap\n"
        "root = %r\n"
        "if sys.argv[1] == 'importlib':\n"
        "    sys.path.insert(0, root)\n"
        "    import importlib; module = importlib.import_module('app')\n"
        "else:\n"
        "    module = sys.modules[bootstrap.load_handler('app.handler', root).__module__]\n"
        "spec = module.__spec__\n"
        "print(json.dumps({'name': module.__name__, 'file': module.__file__,\n"
        "    'package': module.__package__, 'loader': type(module.__loader__).__name__,\n"
        "    'spec': [spec.name, spec.origin, spec.has_location, spec.parent],\n"
        "    'doc': module.__doc__, 'in_sys_modules': sys.modules['app'] is module,\n"
        "    'answer': module.handler(None, None)}))\n"
    )

    def setUp(self):
        import tempfile
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)

    def write(self, name, text):
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def report(self, how):
        proc = subprocess.run([PYTHON, "-B", "-c", self.REPORT % (os.path.dirname(BOOTSTRAP), self.root), how],
                              capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)

    def test_a_plain_module_is_what_importlib_makes(self):
        self.write("app.py", '"""Docs."""\nimport os\ndef handler(e, c):\n    return os.path.basename(__file__)\n')
        loaded = self.report("bootstrap")
        self.assertEqual(loaded, self.report("importlib"))
        self.assertEqual(loaded["answer"], "app.py")

    def test_a_package_of_the_same_name_wins_as_with_importlib(self):
        self.write("app.py", "def handler(e, c):\n    return 'module'\n")
        self.write("app/__init__.py", "def handler(e, c):\n    return 'package'\n")
        self.assertEqual(self.report("bootstrap")["answer"], "package")

    def test_a_failed_module_is_not_left_in_sys_modules(self):
        self.write("app.py", "raise ValueError('no')\n")
        code = ("import sys\nsys.path.insert(0, %r)\nimport bootstrap\n"
                "try:\n    bootstrap.load_handler('app.handler', %r)\n"
                "except bootstrap.InitError as e:\n    print(e.report()['errorType'], 'app' in sys.modules)\n"
                ) % (os.path.dirname(BOOTSTRAP), self.root)
        proc = subprocess.run([PYTHON, "-B", "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(proc.stdout.split(), ["Runtime.ImportModuleError", "False"], proc.stderr)


class JSONHelpersTest(unittest.TestCase):
    """bootstrap's json_loads/json_dumps (on _json) behave exactly as json.loads/json.dumps."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, os.path.dirname(BOOTSTRAP))
        dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in runtimes/
        try:
            import bootstrap
        finally:
            sys.path.remove(os.path.dirname(BOOTSTRAP))
            sys.dont_write_bytecode = dont_write
        cls.b = bootstrap

    def test_same_as_json(self):
        values = [{"a": [1, 2.5, None, True, False, "\u00fc\n\"x\u2028"], "b": {}}, [], "x", 0, -1.5e300,
                  None, [[[]]], {"k": {"n": 10 ** 30}}, "\U0001F600"]
        for v in values:
            text = json.dumps(v)
            self.assertEqual(self.b.json_loads(text.encode()), v)
            self.assertEqual(self.b.json_loads(" \n" + text + "\r\n "), v)
            self.assertEqual(self.b.json_dumps(v, self.b._json_default),
                             json.dumps(v, ensure_ascii=False).encode("utf-8"))

    def test_errors_match_json(self):
        for bad in [b"", b"{", b"[1] x", b'{"a":}', b"\xff", b"tru"]:
            with self.assertRaises(ValueError) as got:
                self.b.json_loads(bad)
            with self.assertRaises(ValueError) as want:
                json.loads(bad)
            self.assertEqual(str(got.exception), str(want.exception))
        self.assertEqual(self.b.json_loads(b"\xef\xbb\xbf[1]"), [1])  # BOM: as json.loads
        # In a fresh interpreter too, where json.decoder is not loaded yet.
        code = ("import sys; sys.path.insert(0, %r); import bootstrap\n"
                "for bad in (b'{x', b'[1] 2', b''):\n"
                "    try:\n"
                "        bootstrap.json_loads(bad)\n"
                "    except ValueError as e:\n"
                "        print(type(e).__name__, e)\n" % os.path.dirname(BOOTSTRAP))
        proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                              env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"})
        self.assertEqual(proc.stdout.splitlines(), [
            "JSONDecodeError Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            "JSONDecodeError Extra data: line 1 column 5 (char 4)",
            "JSONDecodeError Expecting value: line 1 column 1 (char 0)",
        ], proc.stderr)
        circular = {}
        circular["self"] = circular
        for v, exc in [({1}, TypeError), (float("nan"), ValueError), (circular, ValueError)]:
            with self.assertRaises(exc):
                self.b.to_json(v)


class SdkTest(unittest.TestCase):
    """``bootstrap.use_sdk``: the runtime's SDK goes on sys.path after the task root, and what
    a zygote imported from it is forgotten when the function bundles any of it."""

    def run_child(self, code):
        """Runs ``code`` in a fresh interpreter with ``bootstrap`` importable; its stdout."""
        out = subprocess.run(
            [PYTHON, "-c", "import sys; sys.path.insert(0, %r); import bootstrap\n%s"
             % (os.path.dirname(BOOTSTRAP), code)],
            capture_output=True, text=True, timeout=TIMEOUT,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_a_bundled_module_makes_the_sdks_be_forgotten(self):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            runtime, task, plain = (os.path.join(tmp, d) for d in ("runtime", "task", "plain"))
            sdk = os.path.join(tmp, "cache", "python-1")
            for d in (os.path.join(sdk, "sdkmod"), os.path.join(task, "sdkmod"), plain,
                      os.path.join(runtime, "sdk")):
                os.makedirs(d)
            with open(os.path.join(sdk, "sdkmod", "__init__.py"), "w") as f:
                f.write("WHERE = 'sdk'\n")
            with open(os.path.join(task, "sdkmod", "__init__.py"), "w") as f:
                f.write("WHERE = 'task'\n")
            os.symlink(sdk, os.path.join(runtime, "sdk", "python"))
            code = """
sdk = bootstrap.sdk_path(%r)
assert sdk == %r, sdk
bootstrap.use_sdk(sdk, None, {})
import sdkmod
assert sdkmod.WHERE == 'sdk'
task = %r
bootstrap.use_sdk(sdk, task, {})
sys.path.insert(0, task)
import sdkmod
print(sdkmod.WHERE, sys.path.index(sdk) == 1)
"""
            self.assertEqual(self.run_child(code % (runtime, os.path.realpath(sdk), task)).split(),
                             ["task", "True"])
            self.assertEqual(self.run_child(code % (runtime, os.path.realpath(sdk), plain)).split(),
                             ["sdk", "True"])
            self.assertEqual(self.run_child("print(bootstrap.sdk_path(%r))" % plain).strip(), "None")

    def test_the_sdks_modules_are_found_once_while_no_module_comes_or_goes(self):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            sdk = os.path.join(tmp, "python-1")
            os.makedirs(os.path.join(sdk, "sdkmod"))
            with open(os.path.join(sdk, "sdkmod", "__init__.py"), "w") as f:
                f.write("")
            with open(os.path.join(sdk, "other.py"), "w") as f:
                f.write("")
            code = """
sdk = %r
sys.path.insert(0, sdk)
import sdkmod
first = bootstrap.sdk_modules(sdk)
again = bootstrap.sdk_modules(sdk)
import other
after = bootstrap.sdk_modules(sdk)
print(sorted(first), again is first, sorted(after))
"""
            self.assertEqual(self.run_child(code % sdk).strip(),
                             "['sdkmod'] True ['other', 'sdkmod']")


def run_python(case, code, path):
    """Runs ``code`` in a fresh interpreter with ``path`` first on sys.path; its stdout."""
    out = subprocess.run([PYTHON, "-B", "-c", "import sys; sys.path.insert(0, %r)\n%s" % (path, code)],
                         capture_output=True, text=True, timeout=TIMEOUT)
    case.assertEqual(out.returncode, 0, out.stderr)
    return out.stdout


class ZygoteSharingTest(unittest.TestCase):
    """What a zygote makes once for every runtime it forks."""

    def test_the_log_handler_is_made_once_and_each_runtime_sets_its_level(self):
        code = """
import bootstrap, logging
root = logging.getLogger()
bootstrap.install_log_handler(None)  # the zygote: the handler, no level
made, level = bootstrap._log_handler, root.level
bootstrap.install_log_handler({"AWS_LAMBDA_LOG_LEVEL": "info"})  # its runtime
print(root.handlers == [made], level == logging.WARNING, root.level == logging.INFO)
root.handlers.clear()  # a module that took the handler away gets it back
bootstrap.install_log_handler({})
print(root.handlers == [made])
"""
        self.assertEqual(run_python(self, code, os.path.dirname(BOOTSTRAP)).split(), ["True"] * 4)

    def test_a_quiet_fork_gives_the_child_a_fresh_random_seed(self):
        """zygote.fork skips the interpreter's after-fork hooks but re-seeds ``random``; the
        child's threading state is still usable."""
        code = """
import os, random, threading, zygote
r, w = os.pipe()
pid = zygote.fork()
if pid == 0:
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    os.write(w, b"%d %d" % (random.getrandbits(64), threading.main_thread() is threading.current_thread()))
    os._exit(0)
os.waitpid(pid, 0)
child, main = os.read(r, 64).split()
print(int(child) != random.getrandbits(64), main.decode())
"""
        self.assertEqual(run_python(self, code, os.path.dirname(BOOTSTRAP)).split(), ["True", "1"])

    def test_the_zygote_fills_the_holes_of_its_small_object_pools(self):
        code = """
import gc, zygote
gc.collect()
before = sum(zygote.small_object_holes().values())
zygote.fill_small_object_holes()
after = sum(zygote.small_object_holes().values())
print(before > 1000, after < before // 4, len(zygote._fillers) > 1000)
"""
        self.assertEqual(run_python(self, code, os.path.dirname(BOOTSTRAP)).split(), ["True"] * 3)

    def test_a_fork_the_zygote_cannot_make_is_reported_not_closed_silently(self):
        """A failed fork (here EAGAIN) reaches the server as ``Xfork 11`` on the report socket
        the message passed; a message without its descriptors is dropped, said on stderr, and
        its report socket only closes."""
        code = """
import errno, io, os, socket, sys, zygote
def no_fork():
    raise OSError(errno.EAGAIN, "fork")
zygote.fork = no_fork
sys.stderr = io.StringIO()
control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
failed, failed_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
dropped, dropped_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
def child(message, fds):
    return ((lambda: os._exit(3)), fds[0]) if message == b"S" else None
socket.send_fds(theirs, [b"S"], [failed_theirs.fileno()])
socket.send_fds(theirs, [b"?"], [dropped_theirs.fileno()])
failed_theirs.close(); dropped_theirs.close(); theirs.close()
zygote.fork_per_message(control, child)
print(failed.recv(64).decode(), repr(dropped.recv(64)))
print(sys.stderr.getvalue().strip() == "lambent zygote: dropped a b'?' message with 1 descriptors")
"""
        self.assertEqual(run_python(self, code, os.path.dirname(BOOTSTRAP)).split(),
                         ["Xfork", "11", "b''", "True"])


if __name__ == "__main__":
    unittest.main()
