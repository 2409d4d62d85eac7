/**
 * The dashboard page: one HTML document with its own CSS and script, no framework and nothing
 * loaded from elsewhere. It reads `/events` (server-sent events: `snapshot`, `log`) and redraws;
 * EventSource reconnects by itself after a server restart. Every value from the mesh is put in
 * with `textContent`, never as HTML (task output and names are untrusted). Readable on a phone:
 * node cards wrap, the task table scrolls sideways.
 *
 * Issue 19: each node card shows the memory the node offers cutter (`--max-memory`, else the
 * host's total) beside the host's; each task row has its newest log lines in an expandable block
 * (newest line in the summary, up to LOG_LINES lines and 4000 characters inside; open when the
 * page first sees the task live, closed when it first sees it finished, then as the user leaves it); Ollama calls are one row per model and node
 * (snapshot.ollama, ollama-groups.ts) instead of one task row per call.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cutter</title>
<style>
  :root { color-scheme: light dark; --ok: #2e7d32; --warn: #ef6c00; --bad: #c62828; --bar: #1565c0; --muted: #888; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 12px; }
  h1 { font-size: 18px; margin: 0 0 8px; display: flex; gap: 8px; align-items: center; }
  h2 { font-size: 15px; margin: 16px 0 8px; }
  #conn { font-size: 12px; font-weight: normal; color: var(--muted); }
  #nodes { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 10px; }
  .card { border: 1px solid #8884; border-radius: 8px; padding: 10px; }
  .card h3 { margin: 0 0 6px; font-size: 15px; display: flex; justify-content: space-between; gap: 6px; word-break: break-all; }
  .badge { font-size: 12px; padding: 1px 6px; border-radius: 10px; color: #fff; white-space: nowrap; }
  .online, .running, .succeeded { background: var(--ok); }
  .draining, .queued, .assigned, .unknown { background: var(--warn); }
  .offline, .failed, .lost, .cancelled { background: var(--bad); }
  .row { display: flex; justify-content: space-between; font-size: 12px; color: var(--muted); }
  .bar { height: 8px; background: #8883; border-radius: 4px; margin: 2px 0 6px; overflow: hidden; }
  .bar > div { height: 100%; background: var(--bar); }
  .table { overflow-x: auto; }
  table { border-collapse: collapse; width: 100%; min-width: 560px; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #8883; vertical-align: top; }
  td.mono, pre { font-family: ui-monospace, monospace; font-size: 12px; }
  pre { margin: 4px 0 0; max-height: 10em; overflow: auto; white-space: pre-wrap; word-break: break-all; background: #8881; padding: 4px; }
  .empty { color: var(--muted); }
  details > summary { cursor: pointer; font-family: ui-monospace, monospace; font-size: 12px; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 60ch; }
  /* A phone: each task is a block of lines instead of a wide row. */
  @media (max-width: 600px) {
    table { min-width: 0; }
    thead { display: none; }
    table, tbody, tr, td { display: block; }
    tr { border-bottom: 1px solid #8883; padding: 6px 0; }
    td { border: 0; padding: 1px 0; }
    td:nth-child(2), td:nth-child(3), td:nth-child(4), td:nth-child(5) { display: inline-block; margin-right: 8px; }
  }
</style>
</head>
<body>
<h1>cutter <span id="conn">connecting…</span></h1>
<h2>Nodes</h2>
<div id="nodes"><p class="empty">no nodes have joined</p></div>
<h2>Tasks</h2>
<div class="table"><table>
  <thead><tr><th>task</th><th>state</th><th>kind</th><th>node</th><th>duration</th><th>what</th></tr></thead>
  <tbody id="tasks"><tr><td colspan="6" class="empty">no tasks</td></tr></tbody>
</table></div>
<h2>Ollama requests</h2>
<div class="table"><table>
  <thead><tr><th>model</th><th>node</th><th>requests</th><th>live</th><th>failed</th><th>latest</th></tr></thead>
  <tbody id="ollama"><tr><td colspan="6" class="empty">no Ollama requests</td></tr></tbody>
</table></div>
<script>
"use strict";
let snap = null, receivedAt = 0;
const tails = {};
/** taskId → true/false once the user opened or closed its log; else open while the task is live. */
const logOpen = {};
const LOG_LINES = 40;
const GiB = 1024 ** 3;
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function bytes(n) {
  if (n == null) return "-";
  return n >= GiB ? (n / GiB).toFixed(1) + " GiB" : (n / 1024 ** 2).toFixed(0) + " MiB";
}
function dur(ms) {
  if (ms == null || ms < 0) return "-";
  const s = Math.round(ms / 1000);
  return s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " m " + (s % 60) + " s" : Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " m";
}
function bar(fraction, title) {
  const inner = el("div");
  inner.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + "%";
  return el("div", { class: "bar", title }, inner);
}
function skew() { return Date.now() - receivedAt; }
function drawNodes() {
  const box = document.getElementById("nodes");
  box.replaceChildren();
  if (!snap.nodes.length) { box.append(el("p", { class: "empty" }, "no nodes have joined")); return; }
  for (const n of snap.nodes) {
    const cap = n.status.capacity, offer = n.status.offer;
    const card = el("div", { class: "card", "data-node": n.node });
    card.append(el("h3", {}, n.node, el("span", { class: "badge " + n.state, "data-field": "state" }, n.state + (n.drained ? " (drained)" : ""))));
    if (cap) {
      const used = cap.memory.total - cap.memory.available;
      card.append(el("div", { class: "row" }, el("span", {}, "memory"), el("span", {}, bytes(cap.memory.available) + " free of " + bytes(cap.memory.total))));
      card.append(bar(used / cap.memory.total, "memory in use"));
      if (offer) {
        const offered = offer.maxMemory != null ? offer.maxMemory : cap.memory.total;
        card.append(el("div", { class: "row" }, el("span", {}, "offered to cutter"), el("span", { "data-field": "memory-offered" }, bytes(offered) + " of " + bytes(cap.memory.total) + " host")));
        card.append(bar(offered / cap.memory.total, "memory offered to cutter"));
      }
      card.append(el("div", { class: "row" }, el("span", {}, "CPU (" + cap.cpu.cores + " cores)"), el("span", {}, cap.cpu.loadPercent.toFixed(0) + " %")));
      card.append(bar(cap.cpu.loadPercent / 100, "CPU load"));
      cap.gpus.forEach((g, i) => {
        if (g.memoryTotal) {
          card.append(el("div", { class: "row" }, el("span", {}, "GPU " + i + " " + g.model), el("span", {}, bytes(g.memoryFree) + " free")));
          card.append(bar(1 - (g.memoryFree || 0) / g.memoryTotal, "GPU memory in use"));
        }
      });
      if (cap.ollama && cap.ollama.available) {
        card.append(el("div", { class: "row" }, el("span", {}, "Ollama " + (cap.ollama.version || "")), el("span", {}, cap.ollama.loaded.length + " loaded, " + cap.ollama.models.length + " models")));
      }
    }
    const tasks = offer ? n.status.running.length + " / " + offer.maxTasks : String(n.status.running.length);
    card.append(el("div", { class: "row" }, el("span", {}, "tasks " + tasks), el("span", { "data-field": "heartbeat", "data-seen": String(n.lastSeenAgoMs) }, "heartbeat " + dur(n.lastSeenAgoMs + skew()) + " ago")));
    if (n.offlineReason) card.append(el("div", { class: "row" }, n.offlineReason));
    const l = n.status.lending;
    if (l) card.append(el("div", { class: "row", "data-field": "lending" }, el("span", {}, "lending"), el("span", { class: "badge " + (l.state === "lending" ? "online" : l.state === "suspended" ? "draining" : "offline") }, l.state !== "lending" && l.reason ? l.state + ": " + l.reason : l.state)));
    box.append(card);
  }
}
function drawTasks() {
  const body = document.getElementById("tasks");
  body.replaceChildren();
  const shown = snap.tasks.filter((t) => t.kind !== "ollama");
  if (!shown.length) { body.append(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "no tasks"))); return; }
  const now = snap.now + skew();
  for (const t of shown) {
    const start = t.startedAt != null ? t.startedAt : null;
    const end = t.finishedAt != null ? t.finishedAt : now;
    const what = el("td", {}, t.summary);
    if (t.error) what.append(el("div", { class: "row" }, t.error.code + ": " + t.error.message));
    else if (t.reason) what.append(el("div", { class: "row" }, t.reason));
    const tail = tails[t.taskId];
    if (tail) what.append(logBlock(t, tail));
    body.append(el("tr", { "data-task": t.taskId },
      el("td", { class: "mono" }, t.taskId),
      el("td", {}, el("span", { class: "badge " + t.state, "data-field": "state" }, t.state)),
      el("td", {}, t.kind),
      el("td", {}, t.node || "-"),
      el("td", {}, start != null ? dur(end - start) : "-"),
      what));
  }
}
function logBlock(t, tail) {
  const lines = tail.replace(/\\n$/, "").split("\\n").slice(-LOG_LINES);
  const live = !["succeeded", "failed", "cancelled", "lost"].includes(t.state);
  const d = el("details", { "data-field": "log-block" },
    el("summary", { "data-field": "log-newest", title: "newest log lines" }, lines[lines.length - 1] || "(empty line)"),
    el("pre", { "data-field": "log" }, lines.join("\\n")));
  // First seen live: open; first seen finished: closed; after that, as the user left it.
  if (logOpen[t.taskId] == null) logOpen[t.taskId] = live;
  d.open = logOpen[t.taskId];
  d.addEventListener("toggle", () => { logOpen[t.taskId] = d.open; });
  return d;
}
function ago(ms) { return dur(Math.max(0, ms)) + " ago"; }
function drawOllama() {
  const body = document.getElementById("ollama");
  body.replaceChildren();
  const groups = snap.ollama || [];
  if (!groups.length) { body.append(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "no Ollama requests"))); return; }
  const now = snap.now + skew();
  for (const g of groups) {
    const l = g.latest;
    body.append(el("tr", { "data-ollama": g.model + "@" + (g.node || "-") },
      el("td", { class: "mono", "data-field": "model" }, g.model),
      el("td", { "data-field": "node" }, g.node || "-"),
      el("td", { "data-field": "count" }, String(g.count)),
      el("td", { "data-field": "live" }, String(g.live)),
      el("td", { "data-field": "failed" }, String(g.failed)),
      el("td", { "data-field": "latest" }, el("span", { class: "badge " + l.state }, l.state), " " + l.op + " " + ago(now - l.updatedAt) + (l.durationMs != null ? ", ran " + dur(l.durationMs) : ""))));
  }
}
function draw() { if (snap) { drawNodes(); drawTasks(); drawOllama(); } }
const es = new EventSource("events");
es.addEventListener("open", () => { document.getElementById("conn").textContent = "live"; });
es.addEventListener("error", () => { document.getElementById("conn").textContent = "reconnecting…"; });
es.addEventListener("snapshot", (e) => {
  snap = JSON.parse(e.data);
  receivedAt = Date.now();
  for (const [id, text] of Object.entries(snap.tails)) tails[id] = text;
  draw();
});
es.addEventListener("log", (e) => {
  const m = JSON.parse(e.data);
  tails[m.taskId] = ((tails[m.taskId] || "") + m.data).slice(-4000);
  if (snap) drawTasks();
});
setInterval(draw, 1000);
</script>
</body>
</html>
`;
