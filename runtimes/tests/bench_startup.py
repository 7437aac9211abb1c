"""Measures runtime start-up: process spawn to the first GET /2018-06-01/runtime/invocation/next.

Run: cd /work/main && python3 runtimes/tests/bench_startup.py [runs]
Not a test (the unittest pattern test*.py does not match it). For each runtime it prints the wall
time from spawn to the first /next (median, min) and the child's CPU time (user+sys) for a whole
run that stops at that /next (the mock answers it 410), which is steadier on a noisy machine.
Baselines: a bare script per interpreter that only sends GET /next, measured the same way; the
difference is the runtime client's own overhead.
"""

import os
import shutil
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mock_runtime_api import MockRuntimeAPI  # noqa: E402
from test_python_runtime import PYTHON, base_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIMES = os.path.dirname(HERE)
NODE = os.environ.get("LAMBENT_NODE") or "/usr/bin/node"
PY_ROOT = os.path.join(HERE, "fixtures", "python")
NODE_ROOT = os.path.join(HERE, "fixtures", "node")

CASES = [
    ("python", [PYTHON, os.path.join(RUNTIMES, "python", "bootstrap.py")], "minimal.handler", PY_ROOT),
    ("node (cjs handler)", [NODE, os.path.join(RUNTIMES, "node", "bootstrap.mjs")], "minimal_cjs.handler", NODE_ROOT),
    ("node (esm handler)", [NODE, os.path.join(RUNTIMES, "node", "bootstrap.mjs")], "minimal_esm.handler", NODE_ROOT),
]
# Baselines: the least a client can do, a bare GET /next as soon as the interpreter runs.
BARE_PY = (
    "import _socket, os\n"
    "h, p = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')\n"
    "s = _socket.socket(); s.connect((h, int(p)))\n"
    "s.sendall(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); s.recv(65536)\n"
)
BARE_MJS = (
    "import { get } from 'node:http';\n"
    "get('http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime/invocation/next', (r) => r.resume());\n"
)


def spawn(argv, cwd=None, env=None):
    """Runs argv to completion; returns (start wall time, child CPU ms)."""
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        pid, _, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return t0, (ru.ru_utime + ru.ru_stime) * 1000
        if time.time() > deadline:
            proc.kill()
        time.sleep(0.001)


def stats(xs):
    xs = sorted(xs)
    return "median %5.1f ms, min %5.1f ms" % (xs[len(xs) // 2], xs[0])


def measure(api, argv, root, env):
    walls, cpus = [], []
    for _ in range(RUNS):
        api.reset({"events": []})
        t0, cpu = spawn(argv, root, env)
        gets = api.runtime_records("GET")
        if gets:
            walls.append((gets[0]["t"] - t0) * 1000)
            cpus.append(cpu)
    return "spawn->/next: %s | cpu %s" % (stats(walls), stats(cpus))


RUNS = 20


def main():
    global RUNS
    RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    api = MockRuntimeAPI().start()
    tmp = tempfile.mkdtemp()
    try:
        bare_mjs = os.path.join(tmp, "bare.mjs")
        with open(bare_mjs, "w") as f:
            f.write(BARE_MJS)
        env = base_env(api.address, "")
        print("%-20s %s" % ("bare python GET", measure(api, [PYTHON, "-c", BARE_PY], tmp, env)))
        print("%-20s %s" % ("bare node GET", measure(api, [NODE, bare_mjs], tmp, env)))
        for name, argv, handler, root in CASES:
            env = base_env(api.address, handler)
            env["LAMBDA_TASK_ROOT"] = root
            print("%-20s %s" % (name, measure(api, argv, root, env)))
    finally:
        api.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
