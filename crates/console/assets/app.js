// The console's pages, drawn in the browser from the console's JSON endpoints (/ui/api/…).
// No framework: each page is a function that fetches and builds DOM nodes. Charts are uPlot
// (vendored); the invocation timeline and the trace waterfall are plain bars.
"use strict";

const $ = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
};

// Replaces an element's children, leaving out the absent ones (null, undefined) and flattening lists.
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)lambent_csrf=([^;]+)/);
  return m ? m[1] : "";
}

async function api(path, opts = {}) {
  const method = opts.method || "GET";
  const headers = Object.assign({}, opts.headers || {});
  if (method !== "GET") headers["x-csrf-token"] = csrf();
  if (opts.json !== undefined) {
    headers["content-type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
  }
  const r = await fetch("/ui/api" + path, { method, headers, body: opts.body, credentials: "same-origin" });
  if (r.status === 401) {
    location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("signed out");
  }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!r.ok && !opts.allowError) {
    const msg = (body && (body.error || body.message)) || `${r.status} ${r.statusText}`;
    throw new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
  }
  return opts.withResponse ? { response: r, body } : body;
}

const fmt = {
  int: (n) => (n ?? 0).toLocaleString("en-US"),
  ms: (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s"),
  pct: (v) => ((v || 0) * 100).toFixed(1) + " %",
  cost: (v) => "$" + (v || 0).toFixed(v >= 1 ? 2 : 6),
  time: (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"),
  us: (us) => fmt.ms(us / 1000),
};

const page = () => document.getElementById("page");
let cleanup = [];
function onLeave(f) { cleanup.push(f); }

function setPage(title, ...children) {
  cleanup.forEach((f) => f());
  cleanup = [];
  document.title = title + " · Lambent";
  fill(page(), $("h1", { text: title }), children);
}

function showError(where, e) {
  where.replaceChildren($("p", { class: "error", text: String(e.message || e) }));
}

// ---- charts ---------------------------------------------------------------------------------

const COLORS = ["#2f6fde", "#c8372d", "#c98a12", "#2e8b57", "#7b5bd6", "#2fa3a3", "#9aa3b5"];

function chart(title, times, series, opts = {}) {
  const box = $("div", { class: "chart", "data-chart": title });
  box.append($("h3", { text: title }));
  // Two charts a row, as wide as the page allows.
  const width = opts.width || Math.max(420, Math.floor((page().clientWidth - 60) / 2));
  const plot = new uPlot(
    {
      width,
      height: opts.height || 200,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5,
        fill: s.fill ? COLORS[i % COLORS.length] + "33" : undefined, spanGaps: false, points: { show: true, size: 6 } }))],
      axes: [{}, { size: 70, values: opts.yValues }],
      scales: { x: { time: true } },
    },
    [times, ...series.map((s) => s.data)],
    box,
  );
  // The numbers drawn, for whoever checks the chart against the API (the browser tests).
  box.dataset.series = JSON.stringify(series.map((s) => ({ label: s.label, data: s.data })));
  onLeave(() => plot.destroy());
  return box;
}

// Axis labels for values that may be far below 1 (costs, mean concurrency).
const smallValues = (u, vals) => vals.map((v) => (v === 0 ? "0" : v.toPrecision(2)));

function sparkline(times, data) {
  const box = $("div", { class: "sparkline" });
  const plot = new uPlot(
    { width: 140, height: 32, cursor: { show: false }, legend: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
      series: [{}, { stroke: COLORS[0], fill: COLORS[0] + "22", width: 1 }] },
    [times, data],
    box,
  );
  box.dataset.series = JSON.stringify(data);
  onLeave(() => plot.destroy());
  return box;
}

function windowPicker(current, onPick) {
  return $("div", { class: "windows" },
    ["1h", "24h", "7d"].map((w) => $("button", { type: "button", class: w === current ? "active" : "",
      "data-window": w, onclick: () => onPick(w) }, w)));
}

function currentWindow() {
  return new URLSearchParams(location.search).get("window") || "1h";
}

function pickWindow(w) {
  const u = new URL(location.href);
  u.searchParams.set("window", w);
  navigate(u.pathname + u.search);
}

// ---- overview -------------------------------------------------------------------------------

async function overview() {
  const w = currentWindow();
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Overview", windowPicker(w, pickWindow), body);
  try {
    const data = await api("/overview?window=" + w);
    const rows = data.functions.map((f) => {
      const t = f.totals;
      return $("tr", { "data-function": f.name },
        $("td", {}, $("a", { href: "/ui/functions/" + encodeURIComponent(f.name) + "?window=" + w, text: f.name }),
          f.deployed ? null : $("span", { class: "muted", text: " (deleted)" })),
        $("td", { text: f.runtime || "–" }),
        $("td", { class: "num", "data-col": "invocations", text: fmt.int(t.invocations) }),
        $("td", { class: "num", "data-col": "errors", text: fmt.int(t.errors) }),
        $("td", { class: "num", "data-col": "throttles", text: fmt.int(t.throttles) }),
        $("td", { class: "num", text: fmt.ms(t.p50_ms) }),
        $("td", { class: "num", text: fmt.ms(t.p99_ms) }),
        $("td", { class: "num", text: fmt.pct(t.cold_share) }),
        $("td", { class: "num", text: fmt.cost(t.cost) }),
        $("td", {}, sparkline(data.times, f.sparkline)));
    });
    body.replaceChildren(rows.length === 0
      ? $("p", { class: "muted", text: "No functions yet: deploy one with lambent deploy." })
      : $("table", { id: "functions" },
        $("thead", {}, $("tr", {}, ["Function", "Runtime"].map((h) => $("th", { text: h })),
          ["Invocations", "Errors", "Throttles", "p50", "p99", "Cold starts", "Cost"].map((h) => $("th", { class: "num", text: h })),
          $("th", { text: "Invocations (" + w + ")" }))),
        $("tbody", {}, rows)));
  } catch (e) { showError(body, e); }
}

// ---- function -------------------------------------------------------------------------------

async function functionPage(name) {
  const w = currentWindow();
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage(name, windowPicker(w, pickWindow), body);
  try {
    const [data, sources] = await Promise.all([api(`/functions/${encodeURIComponent(name)}?window=${w}`), eventSources()]);
    const s = data.series, t = data.totals, adv = data.rightsizing;
    const cards = $("div", { class: "cards" },
      [["Invocations", fmt.int(t.invocations)], ["Errors", fmt.int(t.errors)], ["Throttles", fmt.int(t.throttles)],
        ["p50", fmt.ms(t.p50_ms)], ["p90", fmt.ms(t.p90_ms)], ["p99", fmt.ms(t.p99_ms)],
        ["Cold starts", fmt.int(t.cold) + " (" + fmt.pct(t.cold_share) + ")"], ["Cost", fmt.cost(t.cost)]]
        .map(([k, v]) => $("div", { class: "card" }, $("span", { class: "muted", text: k }), $("b", { text: v }))));
    const charts = $("div", { class: "charts" },
      chart("Invocations", s.times, [{ label: "invocations", data: s.invocations }, { label: "errors", data: s.errors },
        { label: "throttles", data: s.throttles }]),
      chart("Duration", s.times, [{ label: "p50 ms", data: s.p50_ms }, { label: "p90 ms", data: s.p90_ms },
        { label: "p99 ms", data: s.p99_ms }]),
      chart("Cold starts", s.times, [{ label: "cold starts", data: s.cold }, { label: "sandbox ms", data: s.init_sandbox_ms },
        { label: "runtime ms", data: s.init_runtime_ms }, { label: "import ms", data: s.init_import_ms },
        { label: "other init ms", data: s.init_other_ms }]),
      chart("Memory (MB)", s.times, [{ label: "used", data: s.memory_used_mb }, { label: "configured", data: s.memory_configured_mb }]),
      chart("Cost ($)", s.times, [{ label: "cost", data: s.cost, fill: true }], { yValues: smallValues }),
      chart("Concurrency", s.times, [{ label: "concurrent executions (mean)", data: s.concurrency, fill: true }], { yValues: smallValues }));
    const advice = adv.max_used_mb === null ? $("p", { class: "muted", text: "No memory measured in this window." })
      : $("div", { class: "advice" }, adv.recommended_mb < adv.memory_mb
        ? `Peak memory ${adv.max_used_mb.toFixed(1)} MB of ${adv.memory_mb} MB configured: ${adv.recommended_mb} MB would hold it with headroom and cost ${fmt.cost(adv.recommended_cost)} instead of ${fmt.cost(adv.cost)} (same durations assumed).`
        : `Peak memory ${adv.max_used_mb.toFixed(1)} MB of ${adv.memory_mb} MB configured: the size fits.`);
    fill(body, cards, charts, $("h2", { text: "Right-sizing" }), advice,
      configSection(data), sourcesFor(name, sources), invokePanel(name),
      $("p", {}, $("a", { href: "/ui/invocations?function=" + encodeURIComponent(name), text: "All invocations of " + name + " →" })));
  } catch (e) { showError(body, e); }
}

function keyValues(pairs) {
  return $("table", { class: "kv" }, $("tbody", {}, pairs.map(([k, v]) => $("tr", {}, $("th", { text: k }), $("td", {}, v)))));
}

function configSection(data) {
  const f = data.function;
  const out = [$("h2", { text: "Configuration" })];
  if (!f) return [...out, $("p", { class: "muted", text: "Deleted: only its history remains." })];
  // The function's settings are flattened into it (as GET /v1/functions/NAME shows them).
  const runtime = typeof f.runtime === "string" ? f.runtime : JSON.stringify(f.runtime);
  out.push($("div", { id: "configuration" }, keyValues([["Runtime", runtime], ["Handler", f.handler || "–"], ["Memory", (f.memory ?? "?") + " MB"],
    ["Timeout", (f.timeout ?? "?") + " s"], ["Revision", f.revision], ["Code", (f.code_sha256 || "").slice(0, 16) + "…"],
    ["Environment", Object.keys(f.env || {}).join(", ") || "–"], ["Updated", fmt.time(f.updated_ms)]])));
  out.push($("h2", { text: "Versions and aliases" }));
  const versions = data.versions.map((v) => $("tr", {}, $("td", { text: v.version }), $("td", { text: v.description || "" }), $("td", { text: fmt.time(v.created_ms) })));
  const aliases = data.aliases.map((a) => $("tr", {}, $("td", { text: a.name }), $("td", { text: a.function_version }),
    $("td", { text: JSON.stringify(a.additional_weights || {}) })));
  out.push(versions.length ? $("table", {}, $("thead", {}, $("tr", {}, ["Version", "Description", "Published"].map((h) => $("th", { text: h })))), $("tbody", {}, versions))
    : $("p", { class: "muted", text: "No published versions." }));
  out.push(aliases.length ? $("table", {}, $("thead", {}, $("tr", {}, ["Alias", "Version", "Weights"].map((h) => $("th", { text: h })))), $("tbody", {}, aliases))
    : $("p", { class: "muted", text: "No aliases." }));
  return out;
}

function sourcesFor(name, src) {
  const items = src.edges.filter((e) => e.function === name);
  return [$("h2", { text: "Event sources" }), items.length
    ? $("ul", { class: "sources" }, items.map((e) => $("li", {}, $("b", { text: e.kind + " " }), e.source)))
    : $("p", { class: "muted", text: "None: invoked directly only." })];
}

function invokePanel(name) {
  const storeKey = "lambent.saved-events." + name;
  const saved = () => JSON.parse(localStorage.getItem(storeKey) || "{}");
  const text = $("textarea", { id: "event", spellcheck: "false" });
  text.value = "{}";
  const select = $("select", { id: "saved" });
  const refresh = () => fill(select, $("option", { value: "", text: "saved events…" }),
    Object.keys(saved()).map((k) => $("option", { value: k, text: k })));
  refresh();
  select.addEventListener("change", () => { if (select.value) text.value = saved()[select.value]; });
  const out = $("div", { id: "invoke-result" });
  const invoke = async () => {
    out.replaceChildren($("p", { class: "muted", text: "Invoking…" }));
    try {
      JSON.parse(text.value);
      const { response, body } = await api(`/v1/functions/${encodeURIComponent(name)}/invoke`,
        { method: "POST", body: text.value, headers: { "content-type": "application/json" }, withResponse: true, allowError: true });
      const id = response.headers.get("lambent-activation-id");
      out.replaceChildren($("p", {}, `${response.status} `, id ? $("a", { href: "/ui/invocations/" + encodeURIComponent(id), text: id }) : null),
        $("pre", { text: typeof body === "string" ? body : JSON.stringify(body, null, 2) }));
    } catch (e) { showError(out, e); }
  };
  const save = () => {
    const label = prompt("Save this event as");
    if (!label) return;
    const all = saved();
    all[label] = text.value;
    localStorage.setItem(storeKey, JSON.stringify(all));
    refresh();
  };
  return [$("h2", { text: "Test invoke" }), $("div", { class: "panel" }, select, text,
    $("p", {}, $("button", { type: "button", class: "primary", id: "invoke", onclick: invoke }, "Invoke"), " ",
      $("button", { type: "button", onclick: save }, "Save event")), out)];
}

// ---- invocations ----------------------------------------------------------------------------

async function invocations() {
  const params = new URLSearchParams(location.search);
  const fns = await api("/v1/functions").catch(() => ({ functions: [] }));
  const field = (label, input) => $("label", {}, label, input);
  const fn = $("select", { name: "function" }, $("option", { value: "", text: "all" }),
    fns.functions.map((f) => $("option", { value: f.name, text: f.name })));
  const status = $("select", { name: "status" }, ["", "success", "function_error", "timeout", "out_of_memory", "throttled", "init_error", "platform_error"]
    .map((s) => $("option", { value: s, text: s || "any" })));
  const cold = $("select", { name: "cold" }, [["", "any"], ["true", "cold"], ["false", "warm"]].map(([v, t]) => $("option", { value: v, text: t })));
  const since = $("input", { type: "datetime-local", name: "since" });
  const until = $("input", { type: "datetime-local", name: "until" });
  const text = $("input", { type: "search", name: "text", placeholder: "log text" });
  for (const [el, k] of [[fn, "function"], [status, "status"], [cold, "cold"], [since, "since"], [until, "until"], [text, "text"]]) {
    if (params.get(k)) el.value = params.get(k);
  }
  const tbody = $("tbody");
  const more = $("button", { type: "button", id: "more", hidden: true }, "Load more");
  let cursor = null;
  const query = () => {
    const q = new URLSearchParams({ limit: "50" });
    if (fn.value) q.set("function", fn.value);
    if (status.value) q.set("status", status.value);
    if (cold.value) q.set("cold", cold.value);
    if (since.value) q.set("since_ms", String(Date.parse(since.value + "Z")));
    if (until.value) q.set("until_ms", String(Date.parse(until.value + "Z")));
    if (text.value) q.set("text", text.value);
    if (cursor) q.set("cursor", cursor);
    return q;
  };
  const load = async (reset) => {
    if (reset) { cursor = null; tbody.replaceChildren(); }
    const data = await api("/v1/activations?" + query());
    cursor = data.next_cursor;
    more.hidden = !cursor;
    tbody.append(...data.activations.map((a) => $("tr", { "data-id": a.id },
      $("td", {}, $("a", { href: "/ui/invocations/" + encodeURIComponent(a.id), text: a.id })),
      $("td", {}, $("a", { href: "/ui/functions/" + encodeURIComponent(a.function), text: a.function })),
      $("td", { text: fmt.time(a.start_ms) }),
      $("td", { class: "status-" + a.status, text: a.status }),
      $("td", { text: a.cold ? "cold" : "warm" }),
      $("td", { class: "num", text: fmt.us(a.duration_us) }),
      $("td", { class: "num", text: a.max_memory_bytes ? (a.max_memory_bytes / 1048576).toFixed(1) + " MB" : "–" }))));
    if (!tbody.children.length) tbody.append($("tr", {}, $("td", { colspan: "7", class: "muted", text: "No invocations match." })));
  };
  const apply = (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [el, k] of [[fn, "function"], [status, "status"], [cold, "cold"], [since, "since"], [until, "until"], [text, "text"]]) if (el.value) q.set(k, el.value);
    history.replaceState(null, "", "/ui/invocations" + (q.toString() ? "?" + q : ""));
    load(true).catch((err) => showError(tbody, err));
  };
  more.addEventListener("click", () => load(false));
  setPage("Invocations",
    $("form", { class: "filters", onsubmit: apply }, field("Function", fn), field("Status", status), field("Start", cold),
      field("Since (UTC)", since), field("Until (UTC)", until), field("Logs contain", text), $("button", { type: "submit", class: "primary" }, "Filter")),
    $("table", { id: "invocations" }, $("thead", {}, $("tr", {}, ["Request id", "Function", "Started", "Status", "Start", "Duration", "Memory"]
      .map((h) => $("th", { text: h })))), tbody), more);
  await load(true).catch((err) => showError(tbody, err));
}

// The phases of one invocation, in order, with their durations (µs). The queue wait is the
// part of the wall time that is neither init nor handler (admission, waiting for memory).
function phases(a) {
  const wall = Math.max(0, (a.end_ms - a.start_ms) * 1000);
  const init = a.cold ? (a.init_us || 0) : 0;
  const out = [];
  const queue = Math.max(0, wall - init - a.duration_us);
  out.push(["queue wait", "queue", queue]);
  if (a.cold) {
    const b = a.init || {};
    const known = (b.sandbox_us || 0) + (b.runtime_us || 0) + (b.import_us || 0);
    out.push(["sandbox" + (b.birth ? " (" + b.birth + ")" : ""), "sandbox", b.sandbox_us || 0]);
    out.push(["runtime start", "runtime", (b.runtime_us || 0) + Math.max(0, init - known)]);
    out.push(["import", "import", b.import_us || 0]);
  }
  out.push(["handler", "handler", a.duration_us]);
  return out;
}

function timeline(a) {
  const ps = phases(a);
  const total = Math.max(1, ps.reduce((s, p) => s + p[2], 0));
  let offset = 0;
  const rows = ps.map(([label, kind, us]) => {
    const bar = $("div", { class: "bar " + kind });
    bar.style.left = (offset / total * 100) + "%";
    bar.style.width = (us / total * 100) + "%";
    offset += us;
    return $("div", { class: "phase", "data-phase": kind }, $("span", { text: label }), $("div", { class: "track" }, bar), $("span", { class: "num", text: fmt.us(us) }));
  });
  return $("div", { class: "timeline", id: "timeline" }, rows);
}

// The trace waterfall, from the traces API when the server has it (GET /v1/traces/{trace_id}:
// {spans: [{span_id, parent_span_id, name, start_unix_nano, end_unix_nano, attributes}]}).
async function waterfall(a) {
  const box = $("div", { id: "trace" });
  const traceId = a.trace_id || (a.trace && a.trace.trace_id);
  if (!traceId) { box.append($("p", { class: "muted", text: "No trace recorded for this invocation." })); return box; }
  const r = await api("/v1/traces/" + encodeURIComponent(traceId), { allowError: true, withResponse: true });
  if (!r.response.ok || !r.body || !Array.isArray(r.body.spans)) {
    box.append($("p", { class: "muted", text: `Trace ${traceId}: not available (${r.response.status}).` }));
    return box;
  }
  const spans = r.body.spans.map((s) => ({ ...s, start: Number(BigInt(s.start_unix_nano) / 1000n), end: Number(BigInt(s.end_unix_nano) / 1000n) }));
  const start = Math.min(...spans.map((s) => s.start)), end = Math.max(...spans.map((s) => s.end));
  const byParent = new Map();
  for (const s of spans) { const k = s.parent_span_id || ""; if (!byParent.has(k)) byParent.set(k, []); byParent.get(k).push(s); }
  const ids = new Set(spans.map((s) => s.span_id));
  const rows = [];
  const walk = (s, depth) => {
    const bar = $("div", { class: "bar handler" });
    bar.style.left = ((s.start - start) / Math.max(1, end - start) * 100) + "%";
    bar.style.width = ((s.end - s.start) / Math.max(1, end - start) * 100) + "%";
    const label = $("span", { text: "\u00a0".repeat(depth * 2) + s.name, title: JSON.stringify(s.attributes || {}) });
    rows.push($("div", { class: "phase", "data-span": s.span_id }, label, $("div", { class: "track" }, bar), $("span", { class: "num", text: fmt.us(s.end - s.start) })));
    (byParent.get(s.span_id) || []).sort((x, y) => x.start - y.start).forEach((c) => walk(c, depth + 1));
  };
  spans.filter((s) => !s.parent_span_id || !ids.has(s.parent_span_id)).sort((x, y) => x.start - y.start).forEach((s) => walk(s, 0));
  box.append($("p", { class: "muted", text: "Trace " + traceId }), $("div", { class: "timeline" }, rows));
  return box;
}

async function invocationPage(id) {
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Invocation " + id, body);
  try {
    const a = await api("/v1/activations/" + encodeURIComponent(id));
    const facts = keyValues([
      ["Function", $("a", { href: "/ui/functions/" + encodeURIComponent(a.function), text: a.function })],
      ["Status", $("span", { class: "status-" + a.status, text: a.status + (a.error_type ? " · " + a.error_type : "") })],
      ["Started", fmt.time(a.start_ms)], ["Trigger", a.trigger], ["Revision", a.revision],
      ["Start", a.cold ? "cold (" + (a.cold_reason || "?") + ")" : "warm"],
      ["Duration", fmt.us(a.duration_us)], ["Billed", a.billed_ms + " ms"],
      ["Memory", (a.max_memory_bytes ? (a.max_memory_bytes / 1048576).toFixed(1) : "?") + " of " + a.memory_mb + " MB"],
      ["Node", a.node || "–"], ["Permalink", $("a", { href: location.pathname, text: location.origin + location.pathname })]]);
    const kept = (k) => a[k] === undefined || a[k] === null ? $("p", { class: "muted", text: "Not kept." }) : $("pre", { text: JSON.stringify(a[k], null, 2) });
    fill(body, facts,
      $("h2", { text: "Timeline" }), timeline(a),
      $("h2", { text: "Trace" }), await waterfall(a),
      a.error_message ? $("div", {}, $("h2", { text: "Error" }), $("pre", { class: "error", text: a.error_message })) : null,
      $("h2", { text: "Event" }), kept("event"), $("h2", { text: "Result" }), kept("result"),
      $("h2", { text: "Logs" }), logBlock(a.logs));
  } catch (e) { showError(body, e); }
}

// ---- logs -----------------------------------------------------------------------------------

// One log line, with a JSON value (the whole line, or its last tab-separated field, as
// Lambda's [LEVEL]\tTIME\tREQUEST_ID\tMESSAGE lines have) pretty-printed.
function prettyLine(line) {
  const parts = line.split("\t");
  const last = parts[parts.length - 1].trim();
  if (last.startsWith("{") || last.startsWith("[")) {
    try {
      const value = JSON.parse(last);
      const head = parts.slice(0, -1).join("\t");
      return (head ? head + "\t" : "") + JSON.stringify(value, null, 2);
    } catch (_) { /* not JSON */ }
  }
  return line;
}

function logBlock(logs) {
  return $("pre", { class: "logs", text: (logs || "").split("\n").filter((l, i, all) => l || i < all.length - 1).map(prettyLine).join("\n") || "(no output)" });
}

async function logs() {
  const params = new URLSearchParams(location.search);
  const fns = await api("/v1/functions").catch(() => ({ functions: [] }));
  const fn = $("select", { name: "function" }, $("option", { value: "", text: "all functions" }),
    fns.functions.map((f) => $("option", { value: f.name, text: f.name })));
  fn.value = params.get("function") || "";
  const state = $("span", { class: "muted", id: "tail-state", text: "connecting…" });
  const list = $("div", { id: "tail" });
  let source = null;
  const connect = () => {
    if (source) source.close();
    list.replaceChildren();
    source = new EventSource("/ui/api/tail" + (fn.value ? "?function=" + encodeURIComponent(fn.value) : ""));
    source.addEventListener("open", () => { state.textContent = "live"; });
    source.addEventListener("error", () => { state.textContent = "reconnecting…"; });
    source.addEventListener("activation", (e) => {
      const a = JSON.parse(e.data);
      // Grouped by request id: a record replaces its group if it arrives again.
      const old = list.querySelector(`[data-request="${CSS.escape(a.id)}"]`);
      const group = $("section", { class: "group", "data-request": a.id },
        $("header", {}, $("a", { href: "/ui/invocations/" + encodeURIComponent(a.id), text: a.id }),
          $("span", { text: a.function }), $("span", { class: "status-" + a.status, text: a.status }),
          $("span", { class: "muted", text: fmt.time(a.start_ms) + " · " + fmt.us(a.duration_us) + (a.cold ? " · cold" : "") })),
        logBlock(a.logs));
      if (old) old.replaceWith(group); else list.prepend(group);
      while (list.children.length > 200) list.lastChild.remove();
    });
  };
  fn.addEventListener("change", () => {
    history.replaceState(null, "", "/ui/logs" + (fn.value ? "?function=" + encodeURIComponent(fn.value) : ""));
    connect();
  });
  setPage("Logs", $("div", { class: "filters" }, $("label", {}, "Function", fn), state), list);
  onLeave(() => source && source.close());
  connect();
}

// ---- event sources --------------------------------------------------------------------------

async function eventSources() {
  const get = (p, k) => api(p).then((b) => b[k] || []).catch(() => []);
  const [routes, schedules, queues, topics, mappings, dlq, buckets, tables, workflowList] = await Promise.all([
    get("/v1/routes", "routes"), get("/v1/schedules", "schedules"), get("/v1/queues", "queues"), get("/v1/topics", "topics"),
    api("/v1/mappings").catch(() => ({})), get("/v1/dlq", "dead_letters"), get("/v1/buckets", "buckets"),
    get("/v1/tables", "tables"), get("/v1/workflows", "workflows")]);
  const each = (list, f) => Promise.all(list.map((x) => f(x).catch(() => null)));
  const [subscriptions, notifications, workflows] = await Promise.all([
    each(topics, (t) => get(`/v1/topics/${encodeURIComponent(t.name)}/subscriptions`, "subscriptions")).then((l) => l.flat().filter(Boolean)),
    each(buckets, (b) => api(`/v1/buckets/${encodeURIComponent(b.name)}/notification`)
      .then((n) => (n.configurations || []).map((c) => ({ ...c, bucket: b.name })))).then((l) => l.flat().filter(Boolean)),
    each(workflowList, (w) => api("/v1/workflows/" + encodeURIComponent(w.name))).then((l) => l.filter(Boolean))]);
  // Each edge: a source, and the function or workflow it runs.
  const edges = [];
  const to = (kind, source, target) => target.function ? edges.push({ kind, source, function: target.function })
    : target.workflow && edges.push({ kind, source, workflow: target.workflow });
  routes.forEach((r) => to("route", `${r.method} ${r.path}`, r));
  schedules.forEach((s) => to("schedule", `${s.name} ${s.expression}`, s));
  (mappings.mappings || []).forEach((m) => to("queue", m.queue, m));
  (mappings.stream_mappings || []).forEach((m) => to("table", m.table + " (stream)", m));
  subscriptions.forEach((s) => s.kind === "function" && to("topic", s.topic, { function: s.target }));
  notifications.forEach((n) => to("bucket", `${n.bucket} ${(n.events || []).join(" ")}`.trim(), n));
  workflows.forEach((w) => workflowFunctions(w.definition).forEach((f) => to("workflow", w.name, { function: f })));
  return { routes, schedules, queues, topics, subscriptions, mappings, dlq, buckets, notifications, tables, workflows, edges };
}

// The functions a workflow definition's Task states invoke (a Lambda ARN as the resource, or
// the lambda:invoke integration's FunctionName), in every branch and iteration.
function workflowFunctions(definition) {
  const found = new Set();
  const name = (ref) => {
    if (typeof ref !== "string") return null;
    const m = ref.match(/:function:([^:]+)/);
    return m ? m[1] : ref.includes(":") ? null : ref;
  };
  const walk = (machine) => Object.values((machine && machine.States) || {}).forEach((st) => {
    if (st.Type === "Task" && typeof st.Resource === "string") {
      const f = st.Resource.includes(":states:::lambda:invoke") ? name(st.Parameters && st.Parameters.FunctionName)
        : st.Resource.includes(":lambda:") ? name(st.Resource) : null;
      if (f) found.add(f);
    }
    (st.Branches || []).forEach(walk);
    walk(st.ItemProcessor || st.Iterator);
  });
  walk(typeof definition === "string" ? safeJson(definition) : definition);
  return [...found];
}

function safeJson(text) {
  try { return JSON.parse(text); } catch (_) { return null; }
}

function table(id, heads, rows, empty) {
  if (!rows.length) return $("p", { class: "muted", text: empty });
  return $("table", { id }, $("thead", {}, $("tr", {}, heads.map((h) => $("th", { text: h })))), $("tbody", {}, rows));
}

const fnLink = (f) => $("a", { href: "/ui/functions/" + encodeURIComponent(f), text: f });
const workflowLink = (w) => $("a", { href: "/ui/workflows/" + encodeURIComponent(w), text: w });
const targetLink = (t) => (t.function ? fnLink(t.function) : t.workflow ? $("span", {}, "workflow ", workflowLink(t.workflow)) : "–");

// A state-changing button: disabled while its request runs, then `done` (a redraw).
async function act(button, path, done, json) {
  button.disabled = true;
  try { await api(path, { method: "POST", json }); await done(); } catch (e) { button.disabled = false; alert(e.message); }
}

async function sources() {
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Event sources", body);
  const draw = async () => {
    const s = await eventSources();
    const queueCell = (q) => {
      const dlq = q.dead_letter_queue && s.queues.find((x) => x.name === q.dead_letter_queue);
      if (!dlq) return $("td", { text: "–" });
      return $("td", { class: "dlq" }, $("span", { class: "depth", text: fmt.int(dlq.messages.visible) + " in " + dlq.name }),
        dlq.messages.visible > 0 ? $("button", { type: "button", class: "redrive-queue",
          onclick: (e) => act(e.target, `/v1/queues/${encodeURIComponent(dlq.name)}/redrive`, draw, { destination: q.name }) }, "Redrive") : null);
    };
    const stream = (t) => (t.StreamSpecification && t.StreamSpecification.StreamEnabled ? t.StreamSpecification.StreamViewType : "–");
    const tableMappings = (t) => (s.mappings.stream_mappings || []).filter((m) => m.table === t.TableName);
    fill(body,
      $("h2", { text: "Map" }), table("map", ["Source", "", "Target"], s.edges.map((e) =>
        $("tr", { "data-kind": e.kind }, $("td", {}, $("b", { text: e.kind + " " }), e.source), $("td", { text: "→" }), $("td", {}, targetLink(e)))), "No event sources."),
      $("h2", { text: "Routes" }), table("routes", ["Method", "Path", "Target", "Auth"], s.routes.map((r) =>
        $("tr", {}, $("td", { text: r.method }), $("td", { text: r.path }), $("td", {}, targetLink(r)),
          $("td", { text: typeof r.auth === "string" ? r.auth : JSON.stringify(r.auth) }))), "No routes."),
      $("h2", { text: "Schedules" }), table("schedules", ["Name", "Expression", "Function", "Next fire"], s.schedules.map((x) =>
        $("tr", {}, $("td", { text: x.name }), $("td", { text: x.expression + (x.timezone && x.timezone !== "UTC" ? " " + x.timezone : "") }),
          $("td", {}, fnLink(x.function)), $("td", { text: x.next_fire_ms ? fmt.time(x.next_fire_ms) : "done" }))), "No schedules."),
      $("h2", { text: "Queues" }), table("queues", ["Queue", "Visible", "In flight", "Delayed", "Dead letters"], s.queues.map((q) =>
        $("tr", { "data-queue": q.name }, $("td", { text: q.name }), $("td", { class: "num", text: fmt.int(q.messages.visible) }),
          $("td", { class: "num", text: fmt.int(q.messages.in_flight) }), $("td", { class: "num", text: fmt.int(q.messages.delayed) }),
          queueCell(q))), "No queues."),
      $("h2", { text: "Dead letters of asynchronous invocations" }),
      s.dlq.length ? $("p", {}, $("button", { type: "button", id: "redrive-all", onclick: (e) => act(e.target, "/v1/dlq/redrive", draw) }, "Redrive all")) : null,
      table("dead-letters", ["Id", "Function", "Failed", "Attempts", "Error", ""], s.dlq.map((d) =>
        $("tr", { "data-letter": d.id }, $("td", {}, d.activation_id ? $("a", { href: "/ui/invocations/" + encodeURIComponent(d.activation_id), text: d.id }) : d.id),
          $("td", {}, fnLink(d.function)), $("td", { text: fmt.time(d.failed_ms) }), $("td", { class: "num", text: d.attempts }),
          $("td", { text: d.error_type + ": " + d.error_message }),
          $("td", {}, $("button", { type: "button", class: "redrive", onclick: (e) => act(e.target, `/v1/dlq/${encodeURIComponent(d.id)}/redrive`, draw) }, "Redrive")))),
        "No dead letters."),
      $("h2", { text: "Topics and subscriptions" }), table("topics", ["Topic", "Subscriber"], s.subscriptions.map((x) =>
        $("tr", {}, $("td", { text: x.topic }), $("td", {}, x.kind === "function" ? fnLink(x.target) : x.kind + " " + x.target))),
        s.topics.length ? "Topics without subscribers: " + s.topics.map((t) => t.name).join(", ") : "No topics."),
      $("h2", { text: "Mappings" }), table("mappings", ["Source", "Function", "Batch", "Enabled"], [...(s.mappings.mappings || []), ...(s.mappings.stream_mappings || [])].map((m) =>
        $("tr", {}, $("td", { text: m.queue || (m.table && m.table + " (stream)") || m.source || m.id }), $("td", {}, fnLink(m.function)), $("td", { class: "num", text: m.batch_size }),
          $("td", { text: m.enabled === false ? "no" : "yes" }))), "No mappings."),
      $("h2", { text: "Buckets" }), table("buckets", ["Bucket", "Created", "Notifications"], s.buckets.map((b) =>
        $("tr", { "data-bucket": b.name }, $("td", { text: b.name }), $("td", { text: b.created_ms ? fmt.time(b.created_ms) : "" }),
          $("td", {}, s.notifications.filter((n) => n.bucket === b.name).map((n) =>
            $("div", {}, (n.events || []).join(", ") + (n.prefix ? " " + n.prefix + "*" : "") + (n.suffix ? " *" + n.suffix : "") + " → ",
              n.function || n.workflow ? targetLink(n) : (n.queue ? "queue " + n.queue : "topic " + n.topic)))))), "No buckets."),
      $("h2", { text: "Tables" }), table("tables", ["Table", "Items", "Stream", "Mappings"], s.tables.map((t) =>
        $("tr", { "data-table": t.TableName }, $("td", { text: t.TableName }), $("td", { class: "num", text: fmt.int(t.ItemCount) }), $("td", { text: stream(t) }),
          $("td", {}, tableMappings(t).map((m) => $("div", {}, "→ ", fnLink(m.function)))))), "No tables."),
      $("h2", { text: "Workflows" }), table("workflows", ["Workflow", "Type", "Invokes"], s.workflows.map((w) =>
        $("tr", { "data-workflow": w.name }, $("td", {}, workflowLink(w.name)), $("td", { text: w.type }),
          $("td", {}, workflowFunctions(w.definition).map((f) => $("div", {}, fnLink(f)))))), "No workflows."));
  };
  await draw().catch((e) => showError(body, e));
}

// ---- workflows ------------------------------------------------------------------------------

async function workflowsPage() {
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Workflows", body);
  try {
    const list = (await api("/v1/workflows")).workflows;
    const rows = await Promise.all(list.map(async (w) => {
      const ex = await api(`/v1/workflows/${encodeURIComponent(w.name)}/executions?limit=1`).catch(() => ({ executions: [] }));
      const last = ex.executions[0];
      return $("tr", { "data-workflow": w.name }, $("td", {}, workflowLink(w.name)), $("td", { text: w.type }), $("td", { text: "r" + w.revision }),
        $("td", {}, last ? $("span", { class: "exec-" + last.status, text: last.status + " · " + fmt.time(last.start_ms) }) : "–"));
    }));
    fill(body, table("workflows", ["Workflow", "Type", "Revision", "Last execution"], rows, "No workflows: deploy one with lambent deploy."));
  } catch (e) { showError(body, e); }
}

// The states of a definition's top level (Parallel and Map states drawn as one box each) as
// layers from StartAt: [{name, type, layer, next: [names]}].
function stateGraph(definition) {
  const machine = typeof definition === "string" ? safeJson(definition) : definition;
  const states = (machine && machine.States) || {};
  const nexts = (st) => [st.Next, st.Default, ...(st.Choices || []).map((c) => c.Next), ...(st.Catch || []).map((c) => c.Next)]
    .filter((n, i, all) => n && all.indexOf(n) === i && states[n]);
  const layer = new Map();
  const queue = machine && states[machine.StartAt] ? [[machine.StartAt, 0]] : [];
  while (queue.length) {
    const [n, d] = queue.shift();
    if (layer.has(n)) continue;
    layer.set(n, d);
    nexts(states[n]).forEach((m) => queue.push([m, d + 1]));
  }
  // States nothing reaches still show, below the rest.
  const deepest = Math.max(0, ...layer.values());
  Object.keys(states).forEach((n) => { if (!layer.has(n)) layer.set(n, deepest + 1); });
  return Object.entries(states).map(([name, st]) => ({ name, type: st.Type, layer: layer.get(name), next: nexts(st) }));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (k === "text") el.textContent = v; else el.setAttribute(k, v);
  children.forEach((c) => el.append(c));
  return el;
}

// The state graph, each state coloured by how it went in `entries` (a timeline) of an
// execution that ended with `status`, if given.
function graphView(definition, entries, status) {
  const nodes = stateGraph(definition);
  const W = 170, H = 38, GX = 40, GY = 44;
  const byLayer = new Map();
  nodes.forEach((n) => { if (!byLayer.has(n.layer)) byLayer.set(n.layer, []); byLayer.get(n.layer).push(n); });
  const widest = Math.max(1, ...[...byLayer.values()].map((l) => l.length));
  const width = widest * (W + GX) + GX, height = byLayer.size * (H + GY);
  const pos = new Map();
  for (const [d, layerNodes] of byLayer) {
    const offset = (width - layerNodes.length * (W + GX) + GX) / 2;
    layerNodes.forEach((n, i) => pos.set(n.name, { x: offset + i * (W + GX), y: GY / 2 + d * (H + GY) }));
  }
  // Where a failed execution failed: the last state entered that met an error.
  const failedAt = status && status !== "SUCCEEDED" && status !== "RUNNING"
    ? [...(entries || [])].reverse().find((e) => e.error || e.type === "Fail") : null;
  const outcome = (name) => {
    const mine = (entries || []).filter((e) => e.state === name);
    if (!entries) return "plain";
    if (!mine.length) return "skipped";
    if (mine[mine.length - 1].duration_ms === null) return "running";
    return failedAt && failedAt.state === name ? "failed" : "done";
  };
  const root = svg("svg", { class: "graph", id: "graph", width, height, viewBox: `0 0 ${width} ${height}` },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa3b5" }))));
  nodes.forEach((n) => n.next.forEach((m) => {
    const a = pos.get(n.name), b = pos.get(m);
    root.append(svg("line", { x1: a.x + W / 2, y1: a.y + H, x2: b.x + W / 2, y2: b.y, stroke: "#9aa3b5", "stroke-width": "1.5", "marker-end": "url(#arrow)" }));
  }));
  nodes.forEach((n) => {
    const p = pos.get(n.name), o = outcome(n.name);
    root.append(svg("g", { class: "state " + o, "data-state": n.name, "data-outcome": o },
      svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: "6" }),
      svg("text", { x: p.x + W / 2, y: p.y + 16, "text-anchor": "middle", text: n.name }),
      svg("text", { x: p.x + W / 2, y: p.y + 31, "text-anchor": "middle", class: "kind", text: n.type })));
  });
  return $("div", { class: "graph-box" }, root);
}

async function workflowPage(name) {
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Workflow " + name, body);
  try {
    const [w, ex] = await Promise.all([api("/v1/workflows/" + encodeURIComponent(name)),
      api(`/v1/workflows/${encodeURIComponent(name)}/executions?limit=100`)]);
    const rows = ex.executions.map((e) => $("tr", { "data-execution": e.name },
      $("td", {}, $("a", { href: `/ui/workflows/${encodeURIComponent(name)}/executions/${encodeURIComponent(e.name)}`, text: e.name })),
      $("td", { class: "exec-" + e.status, text: e.status }), $("td", { text: fmt.time(e.start_ms) }),
      $("td", { class: "num", text: e.stop_ms ? fmt.ms(e.stop_ms - e.start_ms) : "–" }), $("td", { class: "num", text: e.transitions })));
    const invokes = workflowFunctions(w.definition);
    fill(body, keyValues([["Type", w.type], ["Revision", w.revision], ["ARN", w.arn], ["Updated", fmt.time(w.updated_ms)],
      ["Invokes", invokes.length ? $("span", {}, invokes.map((f, i) => [i ? ", " : "", fnLink(f)]).flat()) : "–"]]),
    $("h2", { text: "States" }), graphView(w.definition),
    $("h2", { text: "Executions" }), table("executions", ["Execution", "Status", "Started", "Duration", "Transitions"], rows, "No executions yet."));
  } catch (e) { showError(body, e); }
}

async function executionPage(workflow, name) {
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Execution " + name, body);
  try {
    const path = `/v1/workflows/${encodeURIComponent(workflow)}/executions/${encodeURIComponent(name)}`;
    const h = await api(path + "/history");
    const e = h.execution, entries = h.timeline;
    const start = e.start_ms, end = Math.max(e.stop_ms || Date.now(), ...entries.map((t) => t.start_ms + (t.duration_ms || 0)));
    const span = Math.max(1, end - start);
    const bars = entries.map((t) => {
      const bar = $("div", { class: "bar state-" + t.type });
      bar.style.left = ((t.start_ms - start) / span * 100) + "%";
      bar.style.width = ((t.duration_ms || 0) / span * 100) + "%";
      return $("div", { class: "phase", "data-state": t.state, "data-ms": t.duration_ms ?? "" },
        $("span", { text: t.state, title: t.type + (t.retries ? ` · ${t.retries} retries` : "") + (t.error ? ` · ${t.error}` : "") }),
        $("div", { class: "track" }, bar), $("span", { class: "num", text: t.duration_ms === null ? "running" : fmt.ms(t.duration_ms) }));
    });
    fill(body, keyValues([["Workflow", workflowLink(workflow)], ["Status", $("span", { class: "exec-" + e.status, text: e.status })],
      ["Started", fmt.time(e.start_ms)], ["Duration", e.stop_ms ? fmt.ms(e.stop_ms - e.start_ms) : "running"], ["Transitions", e.transitions]]),
    $("h2", { text: "State graph" }), graphView(h.definition, entries, e.status),
    $("h2", { text: "Per-state timing" }), $("div", { class: "timeline", id: "state-timing" }, bars),
    e.error ? $("div", {}, $("h2", { text: "Error" }), $("pre", { class: "error", text: e.error + (e.cause ? ": " + e.cause : "") })) : null,
    $("h2", { text: "Input" }), $("pre", { text: JSON.stringify(e.input, null, 2) }),
    $("h2", { text: "Output" }), e.output === undefined ? $("p", { class: "muted", text: "None." }) : $("pre", { text: JSON.stringify(e.output, null, 2) }));
  } catch (err) { showError(body, err); }
}

// ---- cluster --------------------------------------------------------------------------------

async function clusterPage() {
  const body = $("div", {}, $("p", { class: "muted", text: "Loading…" }));
  setPage("Cluster", body);
  const draw = async () => {
    const c = await api("/v1/nodes");
    const rows = c.nodes.map((n) => {
      const st = n.stats || {};
      const mem = st.memory_budget_mb ? `${fmt.int(st.memory_used_mb)} of ${fmt.int(st.memory_budget_mb)} MB` : "–";
      const meter = $("div", { class: "track" }, $("div", { class: "bar" }));
      meter.firstChild.style.width = Math.min(100, (st.load || 0) * 100) + "%";
      return $("tr", { "data-node": n.id }, $("td", {}, n.id, n.id === c.node ? $("span", { class: "muted", text: " (this node)" }) : null),
        $("td", { text: n.address }), $("td", { class: "node-" + n.state, "data-col": "state", text: n.state }), $("td", { text: n.version }),
        $("td", { class: "num", text: fmt.ms(n.heartbeat_age_ms) }),
        $("td", { class: "num", "data-col": "inflight", text: fmt.int(st.inflight) }), $("td", { class: "num", "data-col": "busy", text: fmt.int(st.busy) }),
        $("td", { class: "num", "data-col": "warm", text: fmt.int(st.warm) }),
        $("td", { "data-col": "load" }, $("div", { class: "load" }, $("span", { class: "num", text: (st.load || 0).toFixed(2) }), meter)),
        $("td", { class: "num", text: mem }));
    });
    fill(body, table("nodes", ["Node", "Address", "State", "Version", "Heartbeat age", "In flight", "Busy", "Warm", "Load", "Memory"], rows, "No nodes."),
      $("p", { class: "muted", text: (c.leases || []).length ? "Leases held here: " + c.leases.join(", ") : "This node holds no singleton lease." }));
  };
  await draw().catch((e) => showError(body, e));
  const timer = setInterval(() => draw().catch(() => {}), 5000);
  onLeave(() => clearInterval(timer));
}

// ---- routing --------------------------------------------------------------------------------

function route() {
  const path = location.pathname;
  const m = (re) => path.match(re);
  document.querySelectorAll("header nav a").forEach((a) => a.classList.remove("active"));
  const active = (n) => { const a = document.querySelector(`[data-nav="${n}"]`); if (a) a.classList.add("active"); };
  let r;
  if (path === "/ui/" || path === "/ui") { active("overview"); return overview(); }
  if ((r = m(/^\/ui\/functions\/([^/]+)$/))) { active("overview"); return functionPage(decodeURIComponent(r[1])); }
  if (path === "/ui/invocations") { active("invocations"); return invocations(); }
  if ((r = m(/^\/ui\/invocations\/([^/]+)$/))) { active("invocations"); return invocationPage(decodeURIComponent(r[1])); }
  if (path === "/ui/logs") { active("logs"); return logs(); }
  if (path === "/ui/sources") { active("sources"); return sources(); }
  if (path === "/ui/workflows") { active("workflows"); return workflowsPage(); }
  if ((r = m(/^\/ui\/workflows\/([^/]+)$/))) { active("workflows"); return workflowPage(decodeURIComponent(r[1])); }
  if ((r = m(/^\/ui\/workflows\/([^/]+)\/executions\/([^/]+)$/))) { active("workflows"); return executionPage(decodeURIComponent(r[1]), decodeURIComponent(r[2])); }
  if (path === "/ui/cluster") { active("cluster"); return clusterPage(); }
  setPage("Not found", $("p", { text: "No such page." }));
}

function navigate(to) {
  history.pushState(null, "", to);
  route();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || a.target || e.ctrlKey || e.metaKey || e.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui/") || url.pathname.startsWith("/ui/assets/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);

document.getElementById("signout").addEventListener("click", async () => {
  await api("/session", { method: "DELETE" }).catch(() => {});
  location.assign("/ui/login");
});

api("/session").then((s) => { document.getElementById("namespace").textContent = "namespace " + s.namespace; }).catch(() => {});
route();
