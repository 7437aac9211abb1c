// Lambent's Node.js runtime interface client.
//
// Runs inside a function sandbox as `/usr/bin/node /var/runtime/node/bootstrap.mjs`, speaks the AWS
// Lambda Runtime API (2018-06-01) to the platform and calls the user's handler. Core modules only.
//
// Handlers: `file.export` (`src/app.handler`, nested `app.a.b`), where <task root>/<file> is tried
// with `.js`, `.mjs` and `.cjs`. As AWS's runtime does, CommonJS (`.cjs`, and `.js` outside a
// package whose nearest package.json says `"type": "module"`) is loaded with `require`, ES
// modules with `import()`. A handler may be
// `async (event, context)`, return a promise or a value, or take `(event, context, callback)`
// when it declares three parameters.

import { Agent, createServer, request } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
// Sent on the first GET /next only: how long loading the handler took, for the platform's
// cold-start breakdown (activation records and metrics).
const IMPORT_US_HEADER = 'Lambent-Handler-Import-Us';
const USER_AGENT = `lambent-node/${process.version}`;
const EXTENSIONS = ['.js', '.mjs', '.cjs'];

class RuntimeAPIError extends Error {}

class InitError extends Error {
  constructor(errorType, message, stackTrace = []) {
    super(message);
    this.errorType = errorType;
    this.stackTrace = stackTrace;
  }
}

// ---------------------------------------------------------------------------------------------
// Runtime API client: one kept-alive connection (the agent reconnects when the server closed it)
// ---------------------------------------------------------------------------------------------

function parseAddress(address) {
  const i = address.lastIndexOf(':');
  if (i < 0 || !/^\d+$/.test(address.slice(i + 1))) return { host: address, port: 80 };
  return { host: address.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(address.slice(i + 1)) };
}

class RuntimeClient {
  constructor(address) {
    this.address = address;
    Object.assign(this, parseAddress(address));
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
    // Its first request goes over the connection a stem cell opened while it waited, if any.
    this.early = takeEarlyConnection(address);
    if (this.early) {
      const early = this.early;
      this.agent.createConnection = () => {
        delete this.agent.createConnection;
        return early;
      };
    }
  }

  // Resolves { status, headers, body: Buffer }; resends once if a reused connection turned out closed.
  call(method, path, body, headers = {}, retry = true) {
    // The first request goes over the early connection, if any (see the constructor).
    const early = this.early;
    this.early = null;
    return new Promise((resolve, reject) => {
      const h = { 'User-Agent': USER_AGENT, ...headers };
      if (body !== undefined) h['Content-Length'] = body.length;
      const req = request({
        host: this.host, port: this.port, method, path: API_PREFIX + path, headers: h, agent: this.agent,
      });
      req.on('socket', (socket) => socket.setNoDelay(true));
      req.on('response', (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (e) => reject(new RuntimeAPIError(`reading the answer to ${method} ${API_PREFIX}${path}: ${e.message}`)));
      });
      req.on('error', (e) => {
        // A stem cell's early connection that failed while it waited (its error not seen yet)
        // is replaced as a reused one that turned out closed is.
        const failedEarly = early !== null && req.socket === early;
        if (retry && (failedEarly || (req.reusedSocket && ['ECONNRESET', 'EPIPE', 'ECONNABORTED'].includes(e.code)))) {
          this.call(method, path, body, headers, false).then(resolve, reject);
        } else {
          reject(new RuntimeAPIError(`cannot reach the Runtime API at ${this.address}: ${e.message}`));
        }
      });
      req.end(body);
    });
  }

  async next(headers = {}) {
    const res = await this.call('GET', '/invocation/next', undefined, headers);
    if (res.status < 200 || res.status >= 300) {
      throw new RuntimeAPIError(`GET ${API_PREFIX}/invocation/next answered HTTP ${res.status}: ${res.body.toString('utf8', 0, 500)}`);
    }
    const id = res.headers['lambda-runtime-aws-request-id'];
    if (!id) throw new RuntimeAPIError(`GET ${API_PREFIX}/invocation/next answered without a Lambda-Runtime-Aws-Request-Id`);
    return { id, headers: res.headers, body: res.body };
  }

  async post(path, text, headers) {
    const res = await this.call('POST', path, Buffer.from(text, 'utf8'), { 'Content-Type': 'application/json', ...headers });
    const detail = () => `POST ${API_PREFIX}${path} answered HTTP ${res.status}: ${res.body.toString('utf8', 0, 500)}`;
    if (res.status >= 500) throw new RuntimeAPIError(detail());
    if (res.status < 200 || res.status >= 300) process.stderr.write(`lambent runtime: ${detail()}\n`);
  }

  postResponse(id, text) {
    return this.post(`/invocation/${encodeURIComponent(id)}/response`, text, {});
  }

  postError(id, report, errorType) {
    return this.post(`/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(report), { [ERROR_TYPE_HEADER]: errorType });
  }

  postInitError(report) {
    return this.post('/init/error', JSON.stringify(report), { [ERROR_TYPE_HEADER]: report.errorType });
  }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

function errorType(err) {
  if (err instanceof Error || (err && typeof err === 'object' && typeof err.message === 'string')) {
    const name = typeof err.name === 'string' && err.name ? err.name : 'Error';
    const ctor = err.constructor && typeof err.constructor.name === 'string' ? err.constructor.name : '';
    return name === 'Error' && ctor && ctor !== 'Object' ? ctor : name;
  }
  return typeof err;
}

function errorMessage(err) {
  if (err instanceof Error || (err && typeof err === 'object' && typeof err.message === 'string')) return String(err.message);
  if (err && typeof err === 'object') {
    try {
      return JSON.stringify(err);
    } catch {
      return String(err);
    }
  }
  return String(err);
}

const SELF = import.meta.url;

// The error's stack lines, cut where the runtime's own frames begin.
function stackOf(err) {
  if (!err || typeof err.stack !== 'string') return [];
  const lines = err.stack.split('\n');
  const own = lines.findIndex((l) => l.includes(SELF));
  return own > 0 ? lines.slice(0, own) : lines;
}

function errorReport(err, requestId, type = errorType(err), message = errorMessage(err)) {
  return { errorMessage: message, errorType: type, requestId, stackTrace: stackOf(err) };
}

function logError(report) {
  const lines = [`[ERROR] ${report.errorType}: ${report.errorMessage}`];
  // A V8 stack starts with "Name: message", already said above.
  const stack = report.stackTrace || [];
  lines.push(...(stack.length && !/^\s+at /.test(stack[0]) && stack[0].includes(report.errorMessage.split('\n')[0]) ? stack.slice(1) : stack));
  process.stderr.write(lines.join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------
// Handler loading
// ---------------------------------------------------------------------------------------------

function lookup(obj, path) {
  return path.split('.').reduce((o, key) => (o === undefined || o === null ? undefined : o[key]), obj);
}

// Whether the package `dir` is in says its `.js` files are ES modules: the nearest package.json's
// `"type"` is `"module"` (as node decides, and AWS's runtime; none found, or one that cannot be
// read: CommonJS). The search stops at a node_modules directory and at the root.
function inModulePackage(dir) {
  for (;;) {
    if (basename(dir) === 'node_modules') return false;
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        return JSON.parse(readFileSync(manifest, 'utf8'))?.type === 'module';
      } catch {
        return false;
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

// Whether a handler's file is CommonJS, which is loaded with `require`: synchronous, and about
// half the time of `import()` here (0.47 against 0.82-0.95 ms in a warmed node), whose file read
// goes through libuv's thread pool. ES modules are loaded with `import()`.
function commonJs(file) {
  return file.endsWith('.cjs') || (file.endsWith('.js') && !inModulePackage(dirname(file)));
}

const requireModule = createRequire(import.meta.url);

async function loadHandler(spec, taskRoot) {
  spec = (spec || '').trim();
  if (spec.includes('..')) {
    throw new InitError('Runtime.MalformedHandlerName',
      `'${spec}' is not a valid handler name. Relative paths ('..') are not allowed in handler names.`);
  }
  const slash = spec.lastIndexOf('/');
  const moduleRoot = slash >= 0 ? spec.slice(0, slash) : '';
  const match = /^([^.]+)\.(.+)$/.exec(spec.slice(slash + 1));
  if (!match || match[2].split('.').some((p) => !p)) {
    throw new InitError('Runtime.MalformedHandlerName', `Bad handler ${spec}: expected '<file>.<export>', e.g. 'index.handler'`);
  }
  const [, moduleName, handlerPath] = match;
  const base = resolvePath(taskRoot, moduleRoot, moduleName);
  const file = EXTENSIONS.map((ext) => base + ext).find((f) => existsSync(f));
  const shown = moduleRoot ? `${moduleRoot}/${moduleName}` : moduleName;
  if (!file) {
    throw new InitError('Runtime.ImportModuleError',
      `Error: Cannot find module '${shown}' (looked for ${EXTENSIONS.map((e) => shown + e).join(', ')} in ${taskRoot})`);
  }
  let ns;
  try {
    ns = commonJs(file) ? requireModule(file) : await import(pathToFileURL(file).href);
  } catch (e) {
    if (e instanceof SyntaxError) {
      // V8 puts the location first in the stack of a parse error: "/path/file.js:3".
      const where = stackOf(e)[0];
      const at = where && /^(file:\/\/)?\/.*:\d+$/.test(where) ? ` (${where.replace(/^file:\/\//, '')})` : ` (while loading ${file})`;
      throw new InitError('Runtime.UserCodeSyntaxError', `SyntaxError: ${e.message}${at}`, stackOf(e));
    }
    // A missing dependency (ERR_MODULE_NOT_FOUND / MODULE_NOT_FOUND) or any error the module threw.
    throw new InitError('Runtime.ImportModuleError', `Unable to import module '${shown}': ${errorType(e)}: ${errorMessage(e)}`, stackOf(e));
  }
  let handler = lookup(ns, handlerPath);
  if (handler === undefined && ns.default !== undefined && ns.default !== null) handler = lookup(ns.default, handlerPath);
  const full = `${shown}.${handlerPath}`;
  if (handler === undefined) throw new InitError('Runtime.HandlerNotFound', `${full} is undefined or not exported`);
  if (typeof handler !== 'function') throw new InitError('Runtime.HandlerNotFound', `${full} is not a function`);
  return handler;
}

// ---------------------------------------------------------------------------------------------
// Invocations
// ---------------------------------------------------------------------------------------------

function parseJSONHeader(value) {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value);
    return v !== null && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}

function functionInfo(env) {
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
  };
}

function makeContext(inv, fn, done) {
  const deadline = Number(inv.headers['lambda-runtime-deadline-ms']) || 0;
  const identity = parseJSONHeader(inv.headers['lambda-runtime-cognito-identity']);
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: fn.functionName,
    functionVersion: fn.functionVersion,
    invokedFunctionArn: inv.headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: fn.memoryLimitInMB,
    awsRequestId: inv.id,
    logGroupName: fn.logGroupName,
    logStreamName: fn.logStreamName,
    identity: identity && {
      cognitoIdentityId: identity.cognitoIdentityId,
      cognitoIdentityPoolId: identity.cognitoIdentityPoolId,
    },
    clientContext: parseJSONHeader(inv.headers['lambda-runtime-client-context']),
    tenantId: inv.headers['lambda-runtime-aws-tenant-id'],
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    // Legacy completion API.
    done: (err, result) => done(err, result),
    succeed: (result) => done(null, result),
    fail: (err) => done(err === undefined || err === null ? 'handled' : err),
  };
}

// What to do when the event loop runs dry during an invocation ('beforeExit'): post the result a
// callback handler passed while callbackWaitsForEmptyEventLoop was true, or, as AWS does, a null
// result when the handler never finished.
let afterDrain = null;
process.on('beforeExit', () => {
  const fn = afterDrain;
  afterDrain = null;
  if (fn) fn();
});

// Calls the handler; resolves { ok: true, result } or { ok: false, error }.
function callHandler(handler, event, inv, fn) {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome) => {
      if (!settled) {
        settled = true;
        afterDrain = null;
        resolve(outcome);
      }
    };
    const done = (err, result) => settle(err === undefined || err === null ? { ok: true, result } : { ok: false, error: err });
    const context = makeContext(inv, fn, done);
    afterDrain = () => done(null, null);
    const callback = (err, result) => {
      if (context.callbackWaitsForEmptyEventLoop) afterDrain = () => done(err, result);
      else done(err, result);
    };
    let ret;
    try {
      ret = handler.length >= 3 ? handler(event, context, callback) : handler(event, context);
    } catch (e) {
      settle({ ok: false, error: e });
      return;
    }
    if (ret && typeof ret.then === 'function') {
      // Promise.resolve: a thenable whose then() throws becomes a rejection, not a crash.
      Promise.resolve(ret).then((result) => settle({ ok: true, result }), (error) => settle({ ok: false, error }));
    } else if (handler.length < 3) {
      settle({ ok: true, result: ret });
    }
  });
}

let client;
let current = null; // the invocation in flight: { id, reported }
let initDone = false;

async function invoke(handler, inv, fn) {
  const id = inv.id;
  current = { id, reported: false };
  const trace = inv.headers['lambda-runtime-trace-id'];
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;

  let event;
  try {
    const text = inv.body.toString('utf8');
    event = text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    const report = errorReport(e, id, 'Runtime.UnmarshalError', `Unable to unmarshal input: ${e.message}`);
    report.stackTrace = [];
    logError(report);
    await finish(id, () => client.postError(id, report, 'Runtime.UnmarshalError'));
    return;
  }

  const outcome = await callHandler(handler, event, inv, fn);
  if (!outcome.ok) {
    const report = errorReport(outcome.error, id);
    logError(report);
    await finish(id, () => client.postError(id, report, 'Unhandled'));
    return;
  }
  let body;
  try {
    body = JSON.stringify(outcome.result === undefined ? null : outcome.result);
    if (body === undefined) body = 'null'; // functions and symbols serialize to nothing
  } catch (e) {
    const report = { errorMessage: `Unable to stringify response body: ${e.message}`, errorType: 'Runtime.MarshalError', requestId: id, stackTrace: [] };
    logError(report);
    await finish(id, () => client.postError(id, report, 'Runtime.MarshalError'));
    return;
  }
  await finish(id, () => client.postResponse(id, body));
}

// Posts the outcome of `id` unless a process-level error already reported it.
async function finish(id, post) {
  if (!current || current.id !== id || current.reported) return;
  current.reported = true;
  await post();
  current = null;
}

// An error escaping the handler's control (uncaughtException / unhandledRejection): report it for
// the current invocation (or as the init error), then exit so that the platform starts afresh.
let dying = false;
function processLevelError(err, rejection) {
  if (dying) return;
  dying = true;
  const type = rejection ? 'Runtime.UnhandledPromiseRejection' : errorType(err);
  const message = rejection ? (err instanceof Error ? `${err.name}: ${err.message}` : errorMessage(err)) : errorMessage(err);
  let post = null;
  if (current && !current.reported) {
    const id = current.id;
    current.reported = true;
    const report = errorReport(err, id, type, message);
    logError(report);
    post = client.postError(id, report, 'Unhandled');
  } else if (!initDone && client) {
    const report = { errorMessage: message, errorType: type, stackTrace: stackOf(err) };
    logError(report);
    post = client.postInitError(report);
  } else {
    logError(errorReport(err, undefined, type, message));
  }
  // Never linger: exit once the report is posted, or after a short grace period.
  setTimeout(() => process.exit(1), 2000);
  Promise.resolve(post).then(() => process.exit(1), (e) => {
    process.stderr.write(`lambent runtime: ${e.message}\n`);
    process.exit(1);
  });
}

function fatal(message) {
  process.stderr.write(`lambent runtime: ${message}; exiting\n`);
  process.exit(1);
}

async function run(spec, env = process.env) {
  const address = env.AWS_LAMBDA_RUNTIME_API;
  if (!address) fatal('AWS_LAMBDA_RUNTIME_API is not set; this program runs inside a Lambent sandbox');
  if (spec === undefined) spec = env._HANDLER || '';
  const taskRoot = env.LAMBDA_TASK_ROOT || process.cwd();
  client = new RuntimeClient(address);
  process.on('uncaughtException', (err) => processLevelError(err, false));
  process.on('unhandledRejection', (reason) => processLevelError(reason, true));

  let handler;
  const importStart = process.hrtime.bigint();
  try {
    handler = await loadHandler(spec, taskRoot);
  } catch (e) {
    const report = e instanceof InitError
      ? { errorMessage: e.message, errorType: e.errorType, stackTrace: e.stackTrace }
      : { errorMessage: errorMessage(e), errorType: 'Runtime.Unknown', stackTrace: stackOf(e) };
    logError(report);
    dying = true;
    try {
      await client.postInitError(report);
    } catch (err) {
      process.stderr.write(`lambent runtime: ${err.message}\n`);
    }
    process.exit(1);
  }
  initDone = true;
  const importUs = (process.hrtime.bigint() - importStart) / 1000n;
  const fn = functionInfo(env);
  let first = { [IMPORT_US_HEADER]: importUs.toString() };
  for (;;) {
    const inv = await client.next(first);
    first = {};
    await invoke(handler, inv, fn);
  }
}

// A stem cell: node was started in its sandbox before its function was known. The function's
// complete environment (KEY=VALUE, NUL-separated) arrives on stdin once its code is attached at
// the task root; it replaces this process's environment before anything reads it.
//
// While it waits, it rehearses what its first invocation does, so that V8 has compiled those
// paths before the function's clock starts: loading a handler from a file as loadHandler does
// (node's file: loader, its fs reads, the module formats of .mjs and .js: throwaway modules in
// this sandbox's private /tmp, removed after), and invocations through `invoke` and a
// RuntimeClient (GET /next, the event's JSON, the context, a handler that logs with console.log,
// the POST of its response), against a throwaway server of its own on its loopback (never the
// platform's Runtime API, which is not served before the claim). Nothing of any function is
// involved, and nothing reaches the function's log: the rehearsal's console writes go nowhere.
// V8 compiles a function's code lazily, on its first call, and keeps feedback for later calls:
// paths that a rehearsal did not take are slow the first time. With GET /next and POST only
// rehearsed (not `invoke`, the context, console.log, the log's streams), a first invocation
// took 2.3-2.5 ms of a cold start on this machine; with them, 1.0-1.3 ms, for the same making
// time (docs/architecture.md, "A stem cell that rehearses its first invocation").
const REHEARSALS = 3;
// Modules of each format loaded in the rehearsal (the loader's paths, warmed a little more by each).
const REHEARSED_MODULES = 4;

async function rehearse() {
  // The streams of the function's log (made on first use), and their write paths: a write of
  // nothing reaches the log pipe as nothing.
  process.stdout.write('');
  process.stderr.write('');
  await import('data:text/javascript,export const handler = async (event) => ({ event });');
  const dir = mkdtempSync('/tmp/.lambent-rehearsal-');
  try {
    for (let i = 0; i < REHEARSED_MODULES; i++) {
      writeFileSync(`${dir}/esm${i}.mjs`, `export const handler = async (event) => ({ event, i: ${i} });\n`);
      writeFileSync(`${dir}/cjs${i}.js`, `exports.handler = async (event) => ({ event, i: ${i} });\n`);
      await loadHandler(`esm${i}.handler`, dir);
      await loadHandler(`cjs${i}.handler`, dir);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Lambda-Runtime-Aws-Request-Id', 'rehearsal');
      res.setHeader('Lambda-Runtime-Deadline-Ms', String(Date.now() + 1000));
      res.setHeader('Lambda-Runtime-Invoked-Function-Arn', 'arn:aws:lambda:local:000000000000:function:rehearsal');
      res.setHeader('Lambda-Runtime-Trace-Id', 'Root=1-00000000-000000000000000000000000;Sampled=0');
      res.end(req.method === 'GET' ? '{"rehearsal":true}' : '{"status":"OK"}');
    });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  // The invocations go through `invoke` as the function's will, their handler logging as
  // handlers do, into nothing: the log's streams write nothing meanwhile (a write's callback,
  // the second argument or the third, is told it succeeded).
  const handler = async (event, context) => {
    console.log('rehearsal %s', context.awsRequestId, event);
    return { event, remaining: context.getRemainingTimeInMillis() };
  };
  const writes = [process.stdout, process.stderr].map((stream) => [stream, Object.hasOwn(stream, 'write'), stream.write]);
  for (const [stream] of writes) {
    stream.write = (_chunk, encoding, callback) => {
      const done = typeof encoding === 'function' ? encoding : callback;
      if (typeof done === 'function') done(null);
      return true;
    };
  }
  client = new RuntimeClient(`127.0.0.1:${server.address().port}`);
  try {
    for (let i = 0; i < REHEARSALS; i++) {
      await invoke(handler, await client.next({ [IMPORT_US_HEADER]: '0' }), functionInfo({}));
    }
  } finally {
    for (const [stream, own, write] of writes) {
      if (own) stream.write = write;
      else delete stream.write;
    }
    client.agent.destroy();
    client = undefined;
    delete process.env._X_AMZN_TRACE_ID;
    await new Promise((resolve) => server.close(resolve));
  }
}

// A stem cell's connection to the Runtime API, opened while it waits (its address is the
// sandbox's, known before the function is): the platform serves it from the claim on, so that
// the first GET /next does not pay for a socket and its connect (~0.3 ms in node). Used once,
// by the runtime client of the same address, unless it failed meanwhile.
let earlyConnection = null;

function connectEarly() {
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) return;
  const socket = connect(parseAddress(address));
  socket.setNoDelay(true);
  socket.on('error', () => { if (earlyConnection?.socket === socket) earlyConnection = null; });
  earlyConnection = { address, socket };
}

function takeEarlyConnection(address) {
  const early = earlyConnection;
  earlyConnection = null;
  if (!early || early.address !== address || early.socket.destroyed) {
    early?.socket.destroy();
    return null;
  }
  return early.socket;
}

// Tells the host that this stem cell waits for its function: one byte on stdin, the runtime's
// end of the host's assignment socket (the host prefers cells that said so). If the host has
// already written the assignment and closed its end (it claimed this cell while it was still
// starting), the byte has nowhere to go: that is fine, the assignment is still there to read.
function sayWaiting() {
  try {
    writeSync(0, 'w');
  } catch {
    // EPIPE: claimed already.
  }
}

// The assignment, read up to the host's end of it. A host that claimed this cell while its
// waiting byte was still unread closes a socket with data in it, which resets this end: the
// read after the last of the host's data then fails with ECONNRESET instead of returning 0. All
// the host wrote came before its close, so that reset ends the assignment as an end of file does.
function readAssignment() {
  const chunks = [];
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    let n;
    try {
      n = readSync(0, buffer, 0, buffer.length, null);
    } catch (e) {
      if (e.code === 'ECONNRESET') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function adoptAssignment() {
  const assignment = readAssignment();
  for (const key of Object.keys(process.env)) delete process.env[key];
  for (const item of assignment.split('\0')) {
    const eq = item.indexOf('=');
    if (eq > 0) process.env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  process.chdir(process.env.LAMBDA_TASK_ROOT || '/var/task');
}

if (process.env.LAMBENT_STEM_CELL === '1') {
  // A failed rehearsal only means a slower first invocation.
  await rehearse().catch((e) => process.stderr.write(`lambent runtime: stem cell rehearsal failed: ${e.message}\n`));
  connectEarly();
  // One turn of the event loop: the loopback connect completes meanwhile, and the socket is
  // ready to write when the claim comes (readSync below blocks the loop until then).
  await new Promise((resolve) => setImmediate(resolve));
  sayWaiting();
  adoptAssignment();
}
run(process.argv[2]).catch((e) => fatal(e instanceof RuntimeAPIError ? e.message : (e && e.stack) || String(e)));
