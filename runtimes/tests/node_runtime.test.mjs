// Drives runtimes/node/bootstrap.mjs as a subprocess against the mock Runtime API
// (runtimes/tests/mock_runtime_api.py, started once as a child process).
//
// Run: cd /work/main && node --test runtimes/tests/

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BOOTSTRAP = join(HERE, '..', 'node', 'bootstrap.mjs');
const MOCK = join(HERE, 'mock_runtime_api.py');
const TASK_ROOT = join(HERE, 'fixtures', 'node');
const PYTHON = process.env.LAMBENT_PYTHON || 'python3';
const NODE = process.env.LAMBENT_NODE || process.execPath;
const TIMEOUT_MS = 10_000;
const ARN = 'arn:aws:lambda:us-east-1:123456789012:function:test-fn';
const TRACE = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';

let mock;
let port;

function control(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({
      host: '127.0.0.1', port, method, path, agent: false,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {},
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`mock control ${path} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

before(async () => {
  mock = spawn(PYTHON, [MOCK], { stdio: ['pipe', 'pipe', 'inherit'] });
  port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('mock Runtime API did not start')), TIMEOUT_MS);
    let buf = '';
    mock.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(buf.slice(0, nl)).port);
      }
    });
    mock.on('error', reject);
    mock.on('exit', (code) => reject(new Error(`mock Runtime API exited with ${code}`)));
  });
});

after(async () => {
  mock.stdin.end();
  const exited = new Promise((resolve) => mock.once('exit', resolve));
  const timer = setTimeout(() => mock.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
});

function baseEnv(address, handler) {
  return {
    PATH: process.env.PATH || '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    TZ: ':UTC',
    AWS_LAMBDA_RUNTIME_API: address,
    _HANDLER: handler,
    LAMBDA_TASK_ROOT: TASK_ROOT,
    LAMBDA_RUNTIME_DIR: join(HERE, '..'),
    AWS_LAMBDA_FUNCTION_NAME: 'test-fn',
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
    AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/test-fn',
    AWS_LAMBDA_LOG_STREAM_NAME: '2025/01/01/[$LATEST]abc',
    AWS_REGION: 'us-east-1',
  };
}

function spawnRuntime(env, argv = []) {
  return new Promise((resolve) => {
    const child = spawn(NODE, [BOOTSTRAP, ...argv], { cwd: TASK_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

async function runRuntime(handler, events, { script = {}, env = {}, argv = [] } = {}) {
  await control('POST', '/_mock/reset', { events, ...script });
  const res = await spawnRuntime({ ...baseEnv(`127.0.0.1:${port}`, handler), ...env }, argv);
  assert.ok(!res.timedOut, `runtime did not exit within ${TIMEOUT_MS} ms; stderr:\n${res.stderr}`);
  const { records } = await control('GET', '/_mock/records');
  return {
    ...res,
    records,
    gets: records.filter((r) => r.method === 'GET'),
    posts: records.filter((r) => r.method === 'POST'),
  };
}

// The runtime served every event and exited on the mock's 410 once they ran out.
function assertServedAll(run, n) {
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.gets.length, n + 1, JSON.stringify(run.records));
  assert.match(run.stderr, /answered HTTP 410/);
}

function response(run, i = 0) {
  assert.ok(run.posts.length > i, `expected a POST #${i}; stderr:\n${run.stderr}`);
  return run.posts[i];
}

describe('success', () => {
  test('the import time is sent on the first /next only', async () => {
    const run = await runRuntime('slow_import.handler', [{}, {}]);
    assertServedAll(run, 2);
    const first = run.gets[0].headers['lambent-handler-import-us'];
    assert.match(first ?? '', /^\d+$/, JSON.stringify(run.gets[0].headers));
    assert.ok(Number(first) >= 50_000, `the module waits 50 ms while loading: ${first}`);
    assert.ok(Number(first) < TIMEOUT_MS * 1000, first);
    for (const later of run.gets.slice(1)) assert.equal(later.headers['lambent-handler-import-us'], undefined);
  });

  test('object result (async handler, CommonJS)', async () => {
    const run = await runRuntime('cjs.okObject', [{ request_id: 'abc-1', event: { x: 1 } }]);
    assertServedAll(run, 1);
    const r = response(run);
    assert.equal(r.path, '/2018-06-01/runtime/invocation/abc-1/response');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.json, { ok: true, event: { x: 1 } });
    assert.equal(run.stdout, '');
  });

  test('undefined result is null', async () => {
    const run = await runRuntime('cjs.okUndefined', [{}]);
    assert.equal(response(run).body, 'null');
  });

  test('string result', async () => {
    const run = await runRuntime('cjs.okString', [{}]);
    assert.equal(response(run).body, '"hello"');
  });

  test('event may be any JSON value', async () => {
    const values = [[1, 2, 3], 'text', 42, null, { nested: { 'ü': 'ñ' } }];
    const run = await runRuntime('cjs.echo', values.map((event) => ({ event })));
    assertServedAll(run, values.length);
    assert.deepEqual(run.posts.map((p) => p.json), values);
  });

  test('empty body is an empty object', async () => {
    const run = await runRuntime('cjs.echo', [{ body: '' }]);
    assert.deepEqual(response(run).json, {});
  });

  test('plain function returning a value', async () => {
    const run = await runRuntime('cjs.syncValue', [{ event: 7 }]);
    assert.deepEqual(response(run).json, { sync: true, event: 7 });
  });

  test('function returning a promise', async () => {
    const run = await runRuntime('cjs.promise', [{ event: 'p' }]);
    assert.deepEqual(response(run).json, { promised: 'p' });
  });

  test('warm reuse on one persistent connection', async () => {
    const run = await runRuntime('cjs.counter', [{}, {}, {}]);
    assertServedAll(run, 3);
    const bodies = run.posts.map((p) => p.json);
    assert.deepEqual(bodies.map((b) => b.count), [1, 2, 3]);
    assert.equal(new Set(bodies.map((b) => b.pid)).size, 1);
    assert.equal(new Set(run.records.map((r) => r.conn)).size, 1, 'all requests on one kept-alive connection');
  });

  test('reconnects when the server closes with Connection: close', async () => {
    const run = await runRuntime('cjs.counter', [{}, {}], { script: { close: 'header' } });
    assertServedAll(run, 2);
    assert.deepEqual(run.posts.map((p) => p.json.count), [1, 2]);
    assert.equal(new Set(run.records.map((r) => r.conn)).size, run.records.length);
  });

  test('reconnects when the server closes silently', async () => {
    const run = await runRuntime('cjs.counter', [{}, {}, {}], { script: { close: 'silent' } });
    assertServedAll(run, 3);
    assert.deepEqual(run.posts.map((p) => p.json.count), [1, 2, 3]);
  });

  test('stdout is only the function\'s output', async () => {
    const run = await runRuntime('cjs.prints', [{}]);
    assert.equal(response(run).json, 'printed');
    assert.equal(run.stdout, 'hello from the handler\n');
  });
});

describe('module formats and handler names', () => {
  test('ES module (.mjs) with warm state', async () => {
    const run = await runRuntime('esm.handler', [{ request_id: 'm-1' }, { request_id: 'm-2' }]);
    assertServedAll(run, 2);
    assert.deepEqual(run.posts.map((p) => p.json), [
      { esm: true, count: 1, requestId: 'm-1' },
      { esm: true, count: 2, requestId: 'm-2' },
    ]);
  });

  test('export found on the default export', async () => {
    const run = await runRuntime('esm.fromDefault', [{}]);
    assert.equal(response(run).json, 'default export');
  });

  test('.cjs file with module.exports = {...}', async () => {
    const run = await runRuntime('exports_object.handler', [{}]);
    assert.deepEqual(response(run).json, { cjs: true, ext: '.cjs' });
  });

  test('CommonJS export invisible to static analysis', async () => {
    const run = await runRuntime('dynamic_exports.handler', [{}]);
    assert.equal(response(run).json, 'found via default');
  });

  test('CommonJS is loaded with require, as on AWS', async () => {
    const run = await runRuntime('cjs.loadedBy', [{}]);
    assert.deepEqual(response(run).json, { required: true });
  });

  test('ES module in a .js file of a "type": "module" package is imported', async () => {
    const run = await runRuntime('esm_pkg/index.handler', [{}]);
    assert.deepEqual(response(run).json, { format: 'esm', url: true });
  });

  test('ES module with top-level await is imported, its body run once', async () => {
    const run = await runRuntime('tla_counts.handler', [{}]);
    assert.deepEqual(response(run).json, { evaluations: 1 });
  });

  test('path handler src/app.handler', async () => {
    const run = await runRuntime('src/app.handler', [{}]);
    assert.deepEqual(response(run).json, { from: 'src/app.js' });
  });

  test('nested export path', async () => {
    const run = await runRuntime('cjs.nested.deeper.fn', [{}]);
    assert.equal(response(run).json, 'nested ok');
  });

  test('handler from argv', async () => {
    const run = await runRuntime('cjs.nope', [{}], { argv: ['cjs.okString'] });
    assert.equal(response(run).json, 'hello');
  });
});

describe('callback style', () => {
  test('callback(null, result)', async () => {
    const run = await runRuntime('cjs.cb', [{ event: { a: 1 } }]);
    assert.deepEqual(response(run).json, { via: 'callback', event: { a: 1 } });
  });

  test('callback(err)', async () => {
    const run = await runRuntime('cjs.cbError', [{ request_id: 'cb-1' }]);
    const r = response(run);
    assert.equal(r.path, '/2018-06-01/runtime/invocation/cb-1/error');
    assert.equal(r.json.errorType, 'RangeError');
    assert.equal(r.json.errorMessage, 'callback failure');
  });

  test('waits for the event loop to drain by default', async () => {
    const run = await runRuntime('cjs.cbWaits', [{}]);
    const r = response(run);
    assert.deepEqual(r.json, { waited: true });
    assert.ok(r.t - run.gets[0].t >= 0.25, `answered after ${r.t - run.gets[0].t}s, before the 300 ms timer`);
  });

  test('callbackWaitsForEmptyEventLoop = false answers at once', async () => {
    const run = await runRuntime('cjs.cbNoWait', [{}]);
    const r = response(run);
    assert.deepEqual(r.json, { waited: false });
    assert.ok(r.t - run.gets[0].t < 0.25, `answered after ${r.t - run.gets[0].t}s`);
  });

  test('callback never called: null once the event loop drains', async () => {
    const run = await runRuntime('cjs.cbNeverCalled', [{}, {}]);
    assertServedAll(run, 2);
    assert.deepEqual(run.posts.map((p) => p.body), ['null', 'null']);
  });

  test('context.succeed', async () => {
    const run = await runRuntime('cjs.legacySucceed', [{}]);
    assert.deepEqual(response(run).json, { via: 'succeed' });
  });
});

describe('handler errors', () => {
  test('thrown error is reported and the runtime continues', async () => {
    const run = await runRuntime('cjs.boom', [{ request_id: 'e-1', event: { why: 'nope' } }, { event: { why: 'again' } }]);
    assertServedAll(run, 2);
    const r = response(run);
    assert.equal(r.path, '/2018-06-01/runtime/invocation/e-1/error');
    assert.equal(r.headers['lambda-runtime-function-error-type'], 'Unhandled');
    assert.equal(r.json.errorType, 'TypeError');
    assert.equal(r.json.errorMessage, 'bad thing: nope');
    assert.equal(r.json.requestId, 'e-1');
    assert.equal(r.json.stackTrace[0], 'TypeError: bad thing: nope');
    assert.match(r.json.stackTrace[1], /cjs\.js:\d+:\d+/);
    assert.equal(response(run, 1).json.errorMessage, 'bad thing: again');
    assert.match(run.stderr, /\[ERROR\] TypeError: bad thing: nope/);
  });

  test('custom error class name', async () => {
    const run = await runRuntime('cjs.boomCustom', [{}]);
    assert.equal(response(run).json.errorType, 'BadThing');
    assert.equal(response(run).json.errorMessage, 'custom failure');
  });

  test('thrown string', async () => {
    const run = await runRuntime('cjs.throwString', [{}]);
    assert.deepEqual(response(run).json.errorType, 'string');
    assert.deepEqual(response(run).json.errorMessage, 'just a string');
  });

  test('promise rejected with undefined is an error', async () => {
    const run = await runRuntime('cjs.rejectUndefined', [{}]);
    assert.match(response(run).path, /\/error$/);
    assert.equal(response(run).json.errorType, 'undefined');
  });

  test('thenable whose then() throws is an error, not a crash', async () => {
    const run = await runRuntime('cjs.badThenable', [{}, {}]);
    assertServedAll(run, 2);
    assert.equal(response(run).json.errorMessage, 'then() threw');
  });

  test('BigInt result is a Runtime.MarshalError', async () => {
    const run = await runRuntime('cjs.notSerializable', [{ request_id: 'm-1' }, {}]);
    assertServedAll(run, 2);
    const r = response(run);
    assert.equal(r.path, '/2018-06-01/runtime/invocation/m-1/error');
    assert.equal(r.headers['lambda-runtime-function-error-type'], 'Runtime.MarshalError');
    assert.equal(r.json.errorType, 'Runtime.MarshalError');
    assert.match(r.json.errorMessage, /BigInt/);
    assert.equal(r.json.requestId, 'm-1');
  });

  test('circular result is a Runtime.MarshalError', async () => {
    const run = await runRuntime('cjs.circular', [{}]);
    assert.equal(response(run).json.errorType, 'Runtime.MarshalError');
  });

  test('invalid JSON event is a Runtime.UnmarshalError', async () => {
    const run = await runRuntime('cjs.echo', [{ body: '{not json' }, { event: 1 }]);
    assertServedAll(run, 2);
    assert.equal(run.posts[0].json.errorType, 'Runtime.UnmarshalError');
    assert.equal(run.posts[1].json, 1);
  });

  test('uncaught exception: reported for the request, then exit 1', async () => {
    const run = await runRuntime('cjs.uncaught', [{ request_id: 'u-1' }, {}]);
    assert.equal(run.code, 1);
    assert.equal(run.gets.length, 1, 'no /next after a process-level error');
    const r = response(run);
    assert.equal(r.path, '/2018-06-01/runtime/invocation/u-1/error');
    assert.equal(r.json.errorType, 'Error');
    assert.equal(r.json.errorMessage, 'thrown from a timer');
  });

  test('unhandled rejection: reported for the request, then exit 1', async () => {
    const run = await runRuntime('cjs.unhandled', [{ request_id: 'u-2' }, {}]);
    assert.equal(run.code, 1);
    assert.equal(run.gets.length, 1);
    const r = response(run);
    assert.equal(r.path, '/2018-06-01/runtime/invocation/u-2/error');
    assert.equal(r.json.errorType, 'Runtime.UnhandledPromiseRejection');
    assert.equal(r.json.errorMessage, 'Error: nobody catches me');
  });
});

describe('init errors', () => {
  async function initError(handler, type, message) {
    const run = await runRuntime(handler, [{}]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.gets.length, 0, 'no /next after an init error');
    assert.equal(run.posts.length, 1, JSON.stringify(run.records));
    const r = run.posts[0];
    assert.equal(r.path, '/2018-06-01/runtime/init/error');
    assert.equal(r.headers['lambda-runtime-function-error-type'], type);
    assert.equal(r.json.errorType, type);
    assert.match(r.json.errorMessage, message);
    assert.ok(Array.isArray(r.json.stackTrace));
    assert.ok(run.stderr.includes(`[ERROR] ${type}`), run.stderr);
    return r.json;
  }

  test('missing module', () => initError('nope.handler', 'Runtime.ImportModuleError', /Cannot find module 'nope'/));
  test('missing dependency', () => initError('imports_missing.handler', 'Runtime.ImportModuleError', /definitely-not-installed-dependency/));
  test('module throws while loading', async () => {
    const body = await initError('throws_on_load.handler', 'Runtime.ImportModuleError', /Error: cannot start: missing configuration/);
    assert.match(body.stackTrace.join('\n'), /throws_on_load\.js/);
  });
  test('missing function', () => initError('cjs.nope', 'Runtime.HandlerNotFound', /cjs\.nope is undefined or not exported/));
  test('not a function', () => initError('cjs.notFunction', 'Runtime.HandlerNotFound', /cjs\.notFunction is not a function/));
  for (const spec of ['cjs', '', 'cjs.', '.handler', '../cjs.handler']) {
    test(`malformed handler name ${JSON.stringify(spec)}`, () => initError(spec, 'Runtime.MalformedHandlerName', /handler/));
  }
  test('syntax error', () => initError('bad_syntax.handler', 'Runtime.UserCodeSyntaxError', /^SyntaxError: /));
  test('promise rejected while loading', () => initError('rejects_on_load.handler', 'Runtime.UnhandledPromiseRejection', /rejected at load/));
});

describe('context', () => {
  test('fields', async () => {
    const run = await runRuntime('cjs.ctx', [{ request_id: 'ctx-1', deadline_in_ms: 5000 }]);
    const c = response(run).json;
    assert.equal(c.functionName, 'test-fn');
    assert.equal(c.functionVersion, '$LATEST');
    assert.equal(c.invokedFunctionArn, ARN);
    assert.equal(c.memoryLimitInMB, '512');
    assert.equal(c.memoryType, 'string');
    assert.equal(c.awsRequestId, 'ctx-1');
    assert.equal(c.logGroupName, '/aws/lambda/test-fn');
    assert.equal(c.logStreamName, '2025/01/01/[$LATEST]abc');
    assert.ok(c.remaining > 3000 && c.remaining <= 5000, String(c.remaining));
    assert.equal(c.identity, 'absent');
    assert.equal(c.clientContext, 'absent');
    assert.equal(c.callbackWaitsForEmptyEventLoop, true);
    assert.equal(c.trace, TRACE);
  });

  test('remaining time past the deadline is 0', async () => {
    const run = await runRuntime('cjs.ctx', [{ deadline_ms: Date.now() - 1000 }]);
    assert.equal(response(run).json.remaining, 0);
  });

  test('client context and identity', async () => {
    const cc = {
      client: { installation_id: 'inst-1', app_title: 'Demo', app_version_name: '1.0', app_version_code: '10', app_package_name: 'com.example' },
      custom: { k: 'v' },
      env: { platform: 'linux' },
    };
    const identity = { cognitoIdentityId: 'id-1', cognitoIdentityPoolId: 'pool-1' };
    const run = await runRuntime('cjs.ctx', [
      { client_context: cc, cognito_identity: identity },
      { client_context: '{broken' },
    ]);
    const [first, second] = run.posts.map((p) => p.json);
    assert.deepEqual(first.clientContext, cc);
    assert.deepEqual(first.identity, identity);
    assert.equal(second.clientContext, 'absent');
    assert.equal(second.identity, 'absent');
  });

  test('_X_AMZN_TRACE_ID set per invocation', async () => {
    const run = await runRuntime('cjs.ctx', [{ trace_id: 'Root=1-a' }, { trace_id: null }, { trace_id: 'Root=1-b' }]);
    assert.deepEqual(run.posts.map((p) => p.json.trace), ['Root=1-a', null, 'Root=1-b']);
  });
});

describe('the Runtime API going away', () => {
  test('unreachable API: exit 1 with a message', async () => {
    const free = await new Promise((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const res = await spawnRuntime(baseEnv(`127.0.0.1:${free}`, 'cjs.okObject'));
    assert.ok(!res.timedOut);
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`cannot reach the Runtime API at 127\\.0\\.0\\.1:${free}`));
    assert.equal(res.stdout, '');
  });

  test('AWS_LAMBDA_RUNTIME_API unset: exit 1', async () => {
    const env = baseEnv('', 'cjs.okObject');
    delete env.AWS_LAMBDA_RUNTIME_API;
    const res = await spawnRuntime(env);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /AWS_LAMBDA_RUNTIME_API is not set/);
  });

  test('non-2xx from /next: exit 1', async () => {
    const run = await runRuntime('cjs.okObject', [], { script: { exhausted_status: 500 } });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /answered HTTP 500/);
    assert.equal(run.gets.length, 1);
  });
});
