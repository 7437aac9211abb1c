// The console in a real browser: Debian's chromium driven by playwright-core (never a browser
// download). Started by crates/server/tests/console.rs once a node runs with functions, their
// invocations and a dead letter. Environment: LAMBENT_URL, LAMBENT_KEY, PLAYWRIGHT_DIR (holds
// node_modules/playwright-core), SCREENSHOTS (a directory), CHROMIUM (default /usr/bin/chromium).
// Prints one line per check; exits non-zero on the first failure.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";

const env = (k, d) => process.env[k] || d;
const base = env("LAMBENT_URL");
const key = env("LAMBENT_KEY");
const shots = env("SCREENSHOTS", "target/ui-screenshots");
const require = createRequire(env("PLAYWRIGHT_DIR", "/var/cache/lambent/playwright") + "/");
const { chromium } = require("playwright-core");
mkdirSync(shots, { recursive: true });

let passed = 0;
function check(ok, what, detail = "") {
  if (!ok) throw new Error(`FAILED: ${what} ${detail}`);
  passed++;
  console.log(`ok ${passed} - ${what}`);
}

async function v1(path, init = {}) {
  const r = await fetch(base + path, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers || {}) } });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

async function until(what, f, ms = 10000) {
  const start = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - start > ms) throw new Error(`FAILED: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const browser = await chromium.launch({ executablePath: env("CHROMIUM", "/usr/bin/chromium"), args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const page = await context.newPage();
const problems = [];
// The refusals this test provokes (a wrong key, the API after sign-out) log their 401s.
page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("status of 401")) problems.push("console error: " + m.text()); });
page.on("pageerror", (e) => problems.push("page error: " + e.message));
page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) problems.push("request left the node: " + r.url()); });
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
// The page's own session, for the API numbers the charts must match.
const inPage = (path) => page.evaluate((p) => fetch(p).then((r) => r.json()), path);

try {
  // A signed-out page redirects to the sign-in page.
  await page.goto(base + "/ui/functions/hello");
  check(new URL(page.url()).pathname === "/ui/login", "a signed-out page redirects to sign-in", page.url());
  check(new URL(page.url()).searchParams.get("next") === "/ui/functions/hello", "the redirect remembers the page");

  // A wrong key is refused.
  await page.fill("#key", "not-the-key");
  await page.click("button[type=submit]");
  await page.waitForFunction(() => (document.getElementById("error")?.textContent.length ?? 0) > 0);
  check((await page.textContent("#error")).includes("unknown API key"), "a wrong key is refused");
  check(new URL(page.url()).pathname === "/ui/login", "a wrong key stays on sign-in");
  await shot("login");

  // Sign in: back to the page asked for, with an HttpOnly session cookie.
  await page.fill("#key", key);
  await page.click("button[type=submit]");
  await page.waitForURL(base + "/ui/functions/hello");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "lambent_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  check(!(await page.evaluate(() => document.cookie)).includes("lambent_session"), "the page's script cannot read the session");

  // Overview: real functions with the API's numbers.
  await page.goto(base + "/ui/");
  await page.waitForSelector("table#functions tr[data-function=hello]");
  const overview = await inPage("/ui/api/overview?window=1h");
  const hello = overview.functions.find((f) => f.name === "hello");
  check(hello && hello.totals.invocations === Number(env("EXPECT_INVOCATIONS")), "the overview counts hello's invocations", JSON.stringify(hello && hello.totals));
  check(hello.totals.errors === Number(env("EXPECT_ERRORS")), "the overview counts hello's errors");
  const shown = await page.textContent("tr[data-function=hello] td[data-col=invocations]");
  check(Number(shown.replace(/,/g, "")) === hello.totals.invocations, "the table shows the API's invocations", shown);
  check(await page.$("tr[data-function=flaky]") !== null, "every function is listed");
  const spark = JSON.parse(await page.getAttribute("tr[data-function=hello] .sparkline", "data-series"));
  check(spark.reduce((a, b) => a + b, 0) === hello.totals.invocations, "the sparkline sums to the invocations");
  await shot("overview");

  // Function page: charts drawn from the API's series.
  await page.click("tr[data-function=hello] a");
  await page.waitForSelector(".chart[data-chart=Invocations] canvas");
  const fn = await inPage("/ui/api/functions/hello?window=1h");
  const drawn = JSON.parse(await page.getAttribute(".chart[data-chart=Invocations]", "data-series"));
  check(JSON.stringify(drawn[0].data) === JSON.stringify(fn.series.invocations), "the invocations chart draws the API's series");
  check(fn.series.invocations.reduce((a, b) => a + b, 0) === hello.totals.invocations, "the series sum to the overview's count");
  const durations = JSON.parse(await page.getAttribute(".chart[data-chart=Duration]", "data-series"));
  check(durations[0].data.some((v) => v > 0) && JSON.stringify(durations[2].data) === JSON.stringify(fn.series.p99_ms), "the duration chart draws the API's percentiles");
  const cold = JSON.parse(await page.getAttribute(".chart[data-chart='Cold starts']", "data-series"));
  check(cold[0].data.reduce((a, b) => a + b, 0) === fn.totals.cold && fn.totals.cold >= 1, "the cold-start chart counts the cold starts");
  // The series' colours are on the canvas: the lines were drawn, not just the axes. Any
  // series' colour counts: where series are equal (p50, p90 and p99 of a minute whose
  // invocations took alike), the last one drawn covers the others.
  const inked = await page.$$eval(".chart canvas", (canvases) => canvases.map((c) => {
    const palette = [[0x2f, 0x6f, 0xde], [0xc8, 0x37, 0x2d], [0xc9, 0x8a, 0x12], [0x2e, 0x8b, 0x57], [0x7b, 0x5b, 0xd6]];
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 100 && palette.some(([r, g, b]) => Math.abs(d[i] - r) < 24 && Math.abs(d[i + 1] - g) < 24 && Math.abs(d[i + 2] - b) < 24)) n++;
    }
    return n;
  }));
  check(inked.length === 6 && inked.every((n) => n >= 10), "every chart's canvas has its series drawn", JSON.stringify(inked));
  // Concurrency: the chart draws the API's series, and the series is the records' busy time
  // (init and handler, as /v1/activations lists them) over each step.
  const concurrency = JSON.parse(await page.getAttribute(".chart[data-chart=Concurrency]", "data-series"));
  check(JSON.stringify(concurrency[0].data) === JSON.stringify(fn.series.concurrency), "the concurrency chart draws the API's series");
  const records = (await inPage("/ui/api/v1/activations?function=hello&limit=100")).activations.filter((a) => a.status !== "throttled");
  const busy_s = records.reduce((s, a) => s + (a.duration_us + (a.cold ? a.init_us || 0 : 0)) / 1e6, 0);
  const charted_s = fn.series.concurrency.reduce((s, c) => s + c * fn.step_ms / 1000, 0);
  check(busy_s > 0 && Math.abs(charted_s - busy_s) < 1e-6 * Math.max(1, busy_s), "the concurrency series holds the records' busy time", `${charted_s} vs ${busy_s}`);
  check((await page.textContent(".advice")).includes("Peak memory"), "the right-sizing advice is shown");
  const config = await page.textContent("#configuration");
  check(config.includes("python3.12") && config.includes(`${fn.function.memory} MB`) && config.includes("app.handler"), "the configuration is shown", config);
  const own = await page.$$eval("ul.sources li", (lis) => lis.map((l) => l.textContent));
  check(["route GET /hello", "schedule nightly", "queue jobs", "topic orders", "bucket uploads", "table visits", "workflow greet"].every((s) => own.some((o) => o.startsWith(s))),
    "the function page lists its event sources", JSON.stringify(own));
  // The test-invoke panel: a state-changing request from the page, with its CSRF token.
  await page.fill("#event", JSON.stringify({ msg: "from-the-panel" }));
  await page.click("#invoke");
  await page.waitForSelector("#invoke-result a");
  const result = await page.textContent("#invoke-result");
  check(result.startsWith("200 ") && result.includes('"ok": true'), "the test-invoke panel invokes and links the invocation", result);
  await shot("function");

  // Invocations: a cold one's permanent link opens its page with the timeline.
  await page.goto(base + "/ui/invocations?function=hello&cold=true");
  await page.waitForSelector("table#invocations tr[data-id]");
  const rows = await page.$$eval("table#invocations tr[data-id] td:nth-child(5)", (tds) => tds.map((t) => t.textContent));
  check(rows.length >= 1 && rows.every((r) => r === "cold"), "the cold filter keeps cold invocations", JSON.stringify(rows));
  await shot("invocations");
  const id = await page.getAttribute("table#invocations tr[data-id]", "data-id");
  await page.click(`tr[data-id="${id}"] a`);
  await page.waitForURL(`${base}/ui/invocations/${id}`);
  await page.goto(`${base}/ui/invocations/${id}`); // the permanent link itself
  await page.waitForSelector("#timeline [data-phase=handler]");
  const phases = await page.$$eval("#timeline [data-phase]", (els) => els.map((e) => e.dataset.phase));
  check(["queue", "sandbox", "runtime", "import", "handler"].every((p) => phases.includes(p)), "the cold invocation's timeline has every phase", JSON.stringify(phases));
  check((await page.textContent("pre.logs")).includes("START RequestId"), "the invocation's logs are shown");
  await page.waitForSelector("#trace");
  await shot("invocation");

  // Live tail: a new invocation's log line within 2 s.
  await page.goto(base + "/ui/logs?function=hello");
  await page.waitForFunction(() => document.getElementById("tail-state")?.textContent === "live");
  await page.waitForSelector("#tail section.group");
  const marker = "tail-" + Math.random().toString(36).slice(2);
  const sent = Date.now();
  const invoked = await v1("/v1/functions/hello/invoke", { method: "POST", body: JSON.stringify({ msg: marker }) });
  check(invoked.status === 200, "the tail's invocation ran", JSON.stringify(invoked.body));
  await page.waitForFunction((m) => document.getElementById("tail").textContent.includes(m), marker, { timeout: 5000 });
  const latency = Date.now() - sent;
  check(latency <= 2000, `live tail showed the new line ${latency} ms after the invoke`);
  const group = invoked.headers.get("lambent-activation-id");
  const text = await page.textContent(`section.group[data-request="${group}"] pre`);
  check(text.includes(`"msg": "${marker}"`), "the tail groups by request id and pretty-prints JSON lines");
  await shot("logs");

  // Event sources: the dead letter is redriven with the button, and then succeeds.
  await page.goto(base + "/ui/sources");
  await page.waitForSelector("table#dead-letters tr[data-letter]");
  const map = await page.$$eval("table#map tbody tr", (trs) => trs.map((t) => [t.dataset.kind, t.textContent]));
  const kinds = map.filter(([, m]) => m.endsWith("hello")).map(([k]) => k).sort();
  check(JSON.stringify(kinds) === JSON.stringify(["bucket", "queue", "route", "schedule", "table", "topic", "workflow"]),
    "the map draws every kind of source to hello", JSON.stringify(map));
  check(map.some(([k, m]) => k === "queue" && m.startsWith("queue work") && m.endsWith("worker")), "the map draws the work queue to its worker", JSON.stringify(map));
  check((await page.textContent("table#buckets tr[data-bucket=uploads]")).includes("s3:ObjectCreated:* → hello"), "the bucket shows its notification's function");
  check((await page.textContent("table#tables tr[data-table=visits]")).includes("NEW_IMAGE→ hello"), "the table shows its stream and mapping");
  check((await page.textContent("table#workflows tr[data-workflow=greet]")).endsWith("hello"), "the workflow shows the function it invokes");
  const schedule = await page.textContent("table#schedules tbody tr td:nth-child(4)");
  check(/^\d{4}-\d\d-\d\d 03:00:00Z$/.test(schedule), "the schedule shows its next fire", schedule);
  const dlqCell = await page.textContent("table#queues tr[data-queue=jobs] td:nth-child(5) .depth");
  check(dlqCell === "1 in jobs-dlq", "the queue shows its dead-letter queue's depth", dlqCell);
  check((await page.textContent("table#queues tr[data-queue=work] .depth")) === "1 in work-dlq", "the failing consumer's message is in its dead-letter queue");
  await shot("sources");
  // The queue's dead letter goes back to its queue with the button, and the fixed worker consumes it.
  await page.click("table#queues tr[data-queue=work] button.redrive-queue");
  await page.waitForFunction(() => document.querySelector("table#queues tr[data-queue=work] .depth")?.textContent === "0 in work-dlq");
  const consumed = await until("the redriven message to be consumed", async () => {
    const r = await v1("/v1/activations?function=worker&status=success");
    return r.body.activations.find((a) => a.logs.includes('"bodies": ["job-42"]'));
  }, 30000);
  check(consumed.trigger === "sqs", "the redriven message was consumed from its queue", consumed.trigger);
  check(await page.$("table#queues tr[data-queue=work] button.redrive-queue") === null, "an empty dead-letter queue has no redrive button");
  const letter = await page.getAttribute("table#dead-letters tr[data-letter]", "data-letter");
  await page.click(`tr[data-letter="${letter}"] button.redrive`);
  await page.waitForSelector(`tr[data-letter="${letter}"]`, { state: "detached" });
  const succeeded = await until("the redriven invocation to succeed", async () => {
    const r = await v1("/v1/activations?function=flaky&status=success");
    return r.body.activations.length > 0 && r.body.activations[0];
  }, 20000);
  check(succeeded.status === "success", "the redriven dead letter succeeded");

  // Workflows: the execution's state graph and per-state timing, as the API has them.
  await page.goto(base + "/ui/workflows");
  await page.waitForSelector("table#workflows tr[data-workflow=greet]");
  check((await page.textContent("tr[data-workflow=greet]")).includes("SUCCEEDED"), "the workflows page shows the last execution");
  await page.click("tr[data-workflow=greet] a");
  await page.waitForSelector("#graph g[data-state=Greet]");
  const states = await page.$$eval("#graph g[data-state]", (gs) => gs.map((g) => g.dataset.state).sort());
  check(JSON.stringify(states) === JSON.stringify(["Check", "Done", "Greet", "Init", "Oops"]), "the workflow's graph has every state", JSON.stringify(states));
  check((await page.$$("#graph line")).length === 4, "the graph draws every transition");
  await page.waitForSelector("table#executions tr[data-execution=run-1]");
  await shot("workflow");
  await page.click("tr[data-execution=run-1] a");
  await page.waitForSelector("#state-timing [data-state]");
  const history = await v1("/v1/workflows/greet/executions/run-1/history");
  const timing = await page.$$eval("#state-timing [data-state]", (rows) => rows.map((r) => [r.dataset.state, Number(r.dataset.ms)]));
  check(JSON.stringify(timing) === JSON.stringify(history.body.timeline.map((t) => [t.state, t.duration_ms])),
    "the per-state timing is the API's timeline", JSON.stringify(timing));
  check(timing.find(([st]) => st === "Greet")[1] > 0, "the Task state took time");
  const outcomes = Object.fromEntries(await page.$$eval("#graph g[data-state]", (gs) => gs.map((g) => [g.dataset.state, g.dataset.outcome])));
  check(outcomes.Greet === "done" && outcomes.Done === "done" && outcomes.Oops === "skipped", "the graph marks the states run and skipped", JSON.stringify(outcomes));
  await shot("execution");

  // Cluster: the nodes with their state and load (on an embedded node, itself).
  await page.goto(base + "/ui/cluster");
  await page.waitForSelector("table#nodes tr[data-node]");
  const nodes = (await v1("/v1/nodes")).body;
  const shownNodes = await page.$$eval("table#nodes tr[data-node]", (trs) => trs.map((t) => [t.dataset.node, t.querySelector("[data-col=state]").textContent]));
  check(JSON.stringify(shownNodes) === JSON.stringify(nodes.nodes.map((n) => [n.id, n.state])), "the cluster page lists the nodes and their states", JSON.stringify(shownNodes));
  check(nodes.nodes.length >= 1 && shownNodes.some(([id, st]) => id === nodes.node && st === "up"), "this node is up");
  if (env("EXPECT_NODES")) check(nodes.nodes.length === Number(env("EXPECT_NODES")), "the embedded node shows the one node");
  check(await page.$(`tr[data-node="${nodes.node}"] [data-col=load] .bar`) !== null, "each node shows its load");
  await shot("cluster");

  // Sign out: the session ends, pages redirect again.
  await page.click("#signout");
  await page.waitForURL(/\/ui\/login/);
  await page.goto(base + "/ui/");
  check(new URL(page.url()).pathname === "/ui/login", "after sign-out pages redirect");
  const after = await page.evaluate(() => fetch("/ui/api/overview").then((r) => r.status));
  check(after === 401, "after sign-out the API refuses");

  check(problems.length === 0, "no console errors and no request left the node", JSON.stringify(problems));
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(e.message);
  if (problems.length) console.error(JSON.stringify(problems));
  await shot("failure").catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
