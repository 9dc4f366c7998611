"""The router's live picture of its graph: the HTML page answered at ``GET /graph``.

The page is one self-contained document (inline CSS and JS, no fetch but the router's
own ``/metrics``), made once per plan by :func:`render_graph_page`: the plan's
structure goes in as JSON, and the script draws the nodes and their steps and fills
each model-call step's figures from the Prometheus text it scrapes every few seconds
(docs/observability.md, "GET /graph").
"""
from __future__ import annotations

import json

ROUTER_TYPES = ("Sequence", "Splitter", "Ensemble", "Switch")


def plan_structure(plan) -> dict:
    """What the page draws, from a CompiledPlan: nodes (root first) with their steps,
    each step labelled as /metrics labels its series (node, step name else index)."""
    nodes = []
    for node in plan.nodes:
        steps = []
        weight_start = 0
        for step in node.steps:
            node_name, label, url = step.site
            entry = {
                "index": step.index,
                "name": step.name,
                "label": label,
                "condition": step.condition_text or None,
                "hard": bool(step.hard),
                "policy": step.policy is not None,
            }
            if node.router_type == 1:
                entry["weight"] = step.weight_end - weight_start
                weight_start = step.weight_end
            if step.target == 1:
                entry["node"] = step.node_index
            else:
                entry["url"] = url
                entry["backend"] = step.backend.description if step.backend is not None else url
            steps.append(entry)
        nodes.append({"name": node.name, "router": ROUTER_TYPES[node.router_type], "steps": steps})
    return {"graph": plan.name or "graph", "nodes": nodes, "step_metrics": bool(plan.step_metrics)}


def _script_json(value) -> str:
    """JSON that is inert inside a <script> element: no character of it can end the
    element or open a comment, whatever the names in the plan say."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_graph_page(plan) -> bytes:
    """The /graph page of a CompiledPlan, UTF-8 HTML."""
    return _PAGE.replace("/*PLAN*/", _script_json(plan_structure(plan))).encode()


# The icon link is an empty data URL because a browser's /favicon.ico request would
# run the graph (every path the router does not keep runs it); the CSP meta keeps the
# page from reaching anything but the router's own /metrics.
_PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; connect-src 'self'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<link rel="icon" href="data:,">
<title>graph</title>
<style>
:root {
  --bg: #0d1117; --panel: #161b22; --panel2: #1c232d; --line: #2d3642; --text: #e6edf3;
  --muted: #8b98a8; --accent: #58a6ff; --ok: #3fb950; --warn: #d29922; --bad: #f85149;
  --seq: #58a6ff; --split: #bc8cff; --ens: #39c5cf; --switch: #f0883e;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.num { font-variant-numeric: tabular-nums; }
header { display: flex; align-items: center; gap: 32px; padding: 18px 28px;
  background: var(--panel); border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.title { min-width: 200px; }
.kicker { color: var(--muted); font-size: 12px; letter-spacing: .08em; text-transform: uppercase; }
h1 { margin: 2px 0 0; font-size: 26px; font-weight: 650; word-break: break-all; }
.totals { display: flex; gap: 28px; flex-wrap: wrap; }
.total { display: flex; flex-direction: column; }
.total .cap, .fig .cap { color: var(--muted); font-size: 11px; letter-spacing: .06em; text-transform: uppercase; }
.total .big { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
.total .big.bad { color: var(--bad); }
.status { margin-left: auto; display: flex; align-items: center; gap: 10px; color: var(--muted); }
.dot { width: 11px; height: 11px; border-radius: 50%; background: var(--muted); }
.dot.live { background: var(--ok); box-shadow: 0 0 8px var(--ok); }
.dot.down { background: var(--bad); box-shadow: 0 0 8px var(--bad); }
.legend { margin: 0; padding: 10px 28px; color: var(--muted); font-size: 13px; border-bottom: 1px solid var(--line); }
.legend b { color: var(--text); font-weight: 600; }
#diagram { position: relative; display: flex; gap: 72px; padding: 28px; align-items: flex-start;
  overflow-x: auto; min-height: 200px; }
#edges { position: absolute; left: 0; top: 0; pointer-events: none; overflow: visible; z-index: 0; }
.column { display: flex; flex-direction: column; gap: 28px; z-index: 1; }
.node { width: clamp(330px, calc((100vw - 56px - 72px * (var(--cols, 3) - 1)) / var(--cols, 3)), 560px); background: var(--panel); border: 1px solid var(--line);
  border-radius: 10px; border-top: 4px solid var(--rt, var(--accent)); box-shadow: 0 4px 18px rgba(0,0,0,.35); }
.node:target { outline: 2px solid var(--accent); }
.node.Sequence { --rt: var(--seq); } .node.Splitter { --rt: var(--split); }
.node.Ensemble { --rt: var(--ens); } .node.Switch { --rt: var(--switch); }
.node-head { display: flex; align-items: baseline; gap: 10px; padding: 10px 14px 8px; }
.node-name { font-size: 18px; font-weight: 650; word-break: break-all; }
.router { color: var(--rt); font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .06em; }
.how { color: var(--muted); font-size: 12px; margin-left: auto; white-space: nowrap; }
.steps { list-style: none; margin: 0; padding: 0 8px 8px; }
.step { background: var(--panel2); border-radius: 7px; margin-top: 6px; padding: 8px 10px 8px 12px;
  border-left: 4px solid var(--line); }
.step.ok { border-left-color: var(--ok); } .step.warn { border-left-color: var(--warn); }
.step.bad { border-left-color: var(--bad); } .step.to-node { border-left-color: var(--rt); }
.step-head { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.idx { color: var(--muted); font-size: 12px; min-width: 1.2em; }
.step-name { font-weight: 600; word-break: break-all; }
.badge { font-size: 11px; padding: 1px 7px; border-radius: 9px; background: var(--line); color: var(--text); }
.badge.cond { background: rgba(240,136,62,.18); color: #ffb77c; font-family: ui-monospace, Menlo, Consolas, monospace; }
.badge.hard { background: rgba(248,81,73,.16); color: #ff9b95; }
.badge.weight { background: rgba(188,140,255,.18); color: #d8bcff; }
.badge.policy { background: rgba(88,166,255,.16); color: #9ccaff; }
.target { color: var(--muted); font: 12px ui-monospace, Menlo, Consolas, monospace; margin-top: 3px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
a.goto { color: var(--accent); text-decoration: none; font-weight: 600; }
.figures { display: grid; grid-template-columns: repeat(4, 1fr); gap: 6px; margin-top: 7px; }
.fig { display: flex; flex-direction: column; }
.fig .val { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.fig .val.ok { color: var(--ok); } .fig .val.warn { color: var(--warn); } .fig .val.bad { color: var(--bad); }
.fig .val.none { color: var(--muted); }
.note { color: var(--muted); font-size: 12px; margin-top: 4px; }
#breakers { padding: 0 28px 24px; display: flex; gap: 10px; flex-wrap: wrap; }
.breaker { background: var(--panel); border: 1px solid var(--line); border-radius: 7px; padding: 6px 10px;
  font: 12px ui-monospace, Menlo, Consolas, monospace; }
.breaker.s1 { border-color: var(--bad); color: #ff9b95; } .breaker.s2 { border-color: var(--warn); color: #f2cc60; }
</style>
</head>
<body data-scrapes="0">
<header>
  <div class="title"><div class="kicker">InferenceGraph</div><h1 id="name"></h1></div>
  <div class="totals">
    <div class="total"><span class="cap">requests</span><span class="big" data-total="requests" data-value="">&mdash;</span></div>
    <div class="total"><span class="cap">rate</span><span class="big" data-total="rate" data-value="">&mdash;</span></div>
    <div class="total"><span class="cap">5xx</span><span class="big" data-total="failed" data-value="">&mdash;</span></div>
    <div class="total"><span class="cap">in flight</span><span class="big" data-total="in_flight" data-value="">&mdash;</span></div>
    <div class="total"><span class="cap">p99</span><span class="big" data-total="p99" data-value="">&mdash;</span></div>
  </div>
  <div class="status"><span class="dot" id="dot"></span><span id="status">loading&hellip;</span></div>
</header>
<p class="legend" id="legend"></p>
<main id="diagram"><svg id="edges" xmlns="http://www.w3.org/2000/svg"></svg></main>
<section id="breakers"></section>
<script type="application/json" id="plan">/*PLAN*/</script>
<script>
"use strict";
const PLAN = JSON.parse(document.getElementById("plan").textContent);
const HOW = {Sequence: "in order", Splitter: "one, by weight", Ensemble: "all at once", Switch: "first match"};
const STATES = ["closed", "open", "half-open"];
const query = new URLSearchParams(location.search);
const REFRESH = Number(query.get("refresh")) >= 1 ? Number(query.get("refresh")) : 5;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- the drawing: one column per depth from the root, a card per node -------------
function depths() {
  const depth = PLAN.nodes.map(() => -1);
  depth[0] = 0;
  const queue = [0];
  while (queue.length) {
    const n = queue.shift();
    for (const s of PLAN.nodes[n].steps) {
      if (s.node !== undefined && depth[s.node] < 0) { depth[s.node] = depth[n] + 1; queue.push(s.node); }
    }
  }
  return depth.map(d => Math.max(d, 0));
}

const figures = [];   // {node, step, cells: {field: element}, row}
const links = [];     // [step row, target node card]

function figure(parent, node, step, field, caption) {
  const f = el("div", "fig");
  f.appendChild(el("span", "cap", caption));
  const v = el("span", "val none", "\u2014");
  v.dataset.node = node; v.dataset.step = step; v.dataset.field = field; v.dataset.value = "";
  f.appendChild(v);
  parent.appendChild(f);
  return v;
}

function draw() {
  document.getElementById("name").textContent = PLAN.graph;
  document.title = PLAN.graph + " \u00b7 graph";
  document.getElementById("legend").innerHTML =
    "<b>requests</b> model calls since the router started \u00b7 <b>rate</b> calls/s over the last refresh (" +
    REFRESH + " s) \u00b7 <b>p99</b> 99th percentile of every call's duration since the router started, " +
    "interpolated in its histogram bucket as histogram_quantile does \u00b7 <b>errors</b> failed calls / calls " +
    "since the router started \u00b7 header: the graph's requests since start, 5xx answers, in flight now";
  const diagram = document.getElementById("diagram");
  const depth = depths();
  const columns = [];
  const cards = [];
  PLAN.nodes.forEach((node, n) => {
    while (columns.length <= depth[n]) { columns.push(diagram.appendChild(el("div", "column"))); }
    const card = el("section", "node " + node.router);
    card.id = "node-" + n;
    card.dataset.node = node.name;
    const head = card.appendChild(el("div", "node-head"));
    head.appendChild(el("span", "node-name", node.name));
    head.appendChild(el("span", "router", node.router));
    head.appendChild(el("span", "how", n === 0 ? "root \u00b7 " + HOW[node.router] : HOW[node.router]));
    const list = card.appendChild(el("ol", "steps"));
    for (const s of node.steps) {
      const row = list.appendChild(el("li", "step"));
      row.dataset.node = node.name; row.dataset.step = s.label;
      const sh = row.appendChild(el("div", "step-head"));
      sh.appendChild(el("span", "idx num", String(s.index)));
      sh.appendChild(el("span", "step-name", s.name || "step " + s.index));
      if (s.condition) sh.appendChild(el("span", "badge cond", "if " + s.condition));
      if (s.weight !== undefined) sh.appendChild(el("span", "badge weight", s.weight + "%"));
      if (s.hard) sh.appendChild(el("span", "badge hard", "hard"));
      if (s.policy) sh.appendChild(el("span", "badge policy", "policy"));
      if (s.node !== undefined) {
        row.classList.add("to-node");
        const t = row.appendChild(el("div", "target"));
        const a = t.appendChild(el("a", "goto", "\u2192 node " + PLAN.nodes[s.node].name));
        a.href = "#node-" + s.node;
        row.appendChild(el("div", "note", "its calls are counted at that node's steps"));
        links.push([row, s.node]);
        continue;
      }
      const t = row.appendChild(el("div", "target", s.backend || s.url || ""));
      t.title = s.url || s.backend || "";
      if (!PLAN.step_metrics) { row.appendChild(el("div", "note", "per-step metrics are off (--no-metrics)")); continue; }
      const grid = row.appendChild(el("div", "figures"));
      figures.push({node: node.name, step: s.label, row, cells: {
        requests: figure(grid, node.name, s.label, "requests", "requests"),
        rate: figure(grid, node.name, s.label, "rate", "rate"),
        p99: figure(grid, node.name, s.label, "p99", "p99"),
        errors: figure(grid, node.name, s.label, "errors", "errors"),
      }});
    }
    columns[depth[n]].appendChild(card);
    cards.push(card);
  });
  diagram.style.setProperty("--cols", String(columns.length));
  drawEdges.cards = cards;
  drawEdges();
  window.addEventListener("resize", drawEdges);
}

function drawEdges() {
  const diagram = document.getElementById("diagram");
  const svg = document.getElementById("edges");
  const box = diagram.getBoundingClientRect();
  const ox = box.left - diagram.scrollLeft, oy = box.top - diagram.scrollTop;
  svg.setAttribute("width", diagram.scrollWidth);
  svg.setAttribute("height", diagram.scrollHeight);
  const ns = "http://www.w3.org/2000/svg";
  let out = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" ' +
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6e7c8c"/></marker></defs>';
  svg.innerHTML = out;
  for (const [row, target] of links) {
    const a = row.getBoundingClientRect(), b = drawEdges.cards[target].getBoundingClientRect();
    const x1 = a.right - ox, y1 = a.top + a.height / 2 - oy;
    const x2 = b.left - ox, y2 = b.top + 22 - oy;
    const dx = Math.max(36, Math.abs(x2 - x1) / 2);
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`);
    p.setAttribute("fill", "none"); p.setAttribute("stroke", "#6e7c8c"); p.setAttribute("stroke-width", "2");
    p.setAttribute("marker-end", "url(#arrow)");
    svg.appendChild(p);
  }
}

// ---- Prometheus text -------------------------------------------------------------
function number(text) {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    let i = 0;
    while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
    const sample = {name: line.slice(0, i), labels: {}, value: NaN};
    if (line[i] === "{") {
      i++;
      while (i < line.length && line[i] !== "}") {
        if (line[i] === "," || line[i] === " ") { i++; continue; }
        const eq = line.indexOf("=", i);
        if (eq < 0) { i = line.length; break; }
        const key = line.slice(i, eq).trim();
        i = eq + 2;   // past ="
        let v = "";
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\" && i + 1 < line.length) { v += line[i + 1] === "n" ? "\n" : line[i + 1]; i += 2; }
          else v += line[i++];
        }
        i++;
        sample.labels[key] = v;
      }
      i++;
    }
    sample.value = number(line.slice(i).trim().split(/\s+/)[0]);
    out.push(sample);
  }
  return out;
}

// histogram_quantile's estimate: the bucket holding the rank, linear inside it; the
// highest finite bound when the rank falls in +Inf
function quantile(q, buckets) {
  const b = [...buckets.entries()].sort((x, y) => x[0] - y[0]);
  if (b.length < 2 || b[b.length - 1][0] !== Infinity) return NaN;
  const total = b[b.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let i = 0;
  while (i < b.length - 1 && b[i][1] < rank) i++;
  if (i === b.length - 1) return b[b.length - 2][0];
  if (i === 0 && b[0][0] <= 0) return b[0][0];
  const start = i > 0 ? b[i - 1][0] : 0, below = i > 0 ? b[i - 1][1] : 0;
  return start + (b[i][0] - start) * ((rank - below) / (b[i][1] - below));
}

function collect(samples) {
  const steps = new Map();
  const totals = {requests: NaN, failed: NaN, in_flight: NaN, buckets: new Map()};
  const breakers = [];
  const step = labels => {
    const key = labels.node + "\u0000" + labels.step;
    if (!steps.has(key)) steps.set(key, {count: 0, errors: 0, kinds: {}, codes: {}, buckets: new Map()});
    return steps.get(key);
  };
  const add = (map, le, v) => map.set(number(le), (map.get(number(le)) || 0) + v);
  for (const s of samples) {
    const L = s.labels;
    if (L.graph !== PLAN.graph) continue;
    switch (s.name) {
      case "ige_step_duration_seconds_bucket": add(step(L).buckets, L.le, s.value); break;
      case "ige_step_duration_seconds_count": step(L).count += s.value; step(L).codes[L.code] = s.value; break;
      case "ige_step_errors_total": step(L).errors += s.value; step(L).kinds[L.kind] = s.value; break;
      case "ige_requests_total": totals.requests = s.value; break;
      case "ige_requests_failed_total": totals.failed = s.value; break;
      case "ige_requests_in_flight": totals.in_flight = s.value; break;
      case "ige_request_duration_seconds_bucket": add(totals.buckets, L.le, s.value); break;
      case "ige_endpoint_circuit_state": breakers.push([L.endpoint, s.value]); break;
    }
  }
  return {steps, totals, breakers};
}

// ---- figures ---------------------------------------------------------------------
function fixed(x) { return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0); }
function seconds(s) { return s >= 1 ? fixed(s) + " s" : fixed(s * 1000) + " ms"; }
function percent(r) { return (r > 0 && r < 0.01 ? (r * 100).toFixed(2) : (r * 100).toFixed(1)) + "%"; }
function count(n) { return n.toLocaleString("en-US"); }

function show(e, value, text, tone) {
  const known = Number.isFinite(value);
  e.dataset.value = known ? String(value) : "";
  e.textContent = known ? text : "\u2014";
  e.classList.remove("ok", "warn", "bad", "none");
  e.classList.add(known ? (tone || "plain") : "none");
}

function tone(ratio) { return ratio === 0 ? "ok" : ratio < 0.05 ? "warn" : "bad"; }

let previous = null;   // {time, steps: Map key -> count, requests}

function update(text) {
  const now = performance.now();
  const {steps, totals, breakers} = collect(parseMetrics(text));
  const dt = previous ? (now - previous.time) / 1000 : 0;
  const rate = (n, before) => previous && dt > 0 && before !== undefined && n >= before ? (n - before) / dt : NaN;
  const counts = new Map();
  for (const f of figures) {
    const key = f.node + "\u0000" + f.step;
    const s = steps.get(key) || {count: 0, errors: 0, kinds: {}, codes: {}, buckets: new Map()};
    counts.set(key, s.count);
    const r = rate(s.count, previous && previous.steps.get(key));
    const p99 = quantile(0.99, s.buckets);
    const ratio = s.count > 0 ? s.errors / s.count : NaN;
    show(f.cells.requests, s.count, count(s.count));
    show(f.cells.rate, r, fixed(r) + "/s");
    show(f.cells.p99, p99, seconds(p99));
    show(f.cells.errors, ratio, percent(ratio), tone(ratio));
    f.cells.errors.dataset.count = String(s.errors);
    f.cells.errors.title = Object.entries(s.kinds).map(([k, v]) => k + " " + v).join(", ");
    f.cells.requests.title = Object.entries(s.codes).map(([k, v]) => k + ": " + v).join(", ");
    f.row.classList.remove("ok", "warn", "bad");
    if (s.count > 0) f.row.classList.add(tone(ratio));
  }
  const total = name => document.querySelector(`[data-total="${name}"]`);
  show(total("requests"), totals.requests, count(totals.requests));
  show(total("failed"), totals.failed, count(totals.failed), totals.failed > 0 ? "bad" : "plain");
  show(total("in_flight"), totals.in_flight, count(totals.in_flight));
  show(total("rate"), rate(totals.requests, previous && previous.requests), fixed(rate(totals.requests, previous && previous.requests)) + "/s");
  const p99 = quantile(0.99, totals.buckets);
  show(total("p99"), p99, seconds(p99));
  const strip = document.getElementById("breakers");
  strip.textContent = "";
  for (const [endpoint, state] of breakers) {
    strip.appendChild(el("span", "breaker s" + state, "breaker " + (STATES[state] || state) + " \u00b7 " + endpoint));
  }
  previous = {time: now, steps: counts, requests: totals.requests};
  document.body.dataset.scrapes = String(Number(document.body.dataset.scrapes) + 1);
  drawEdges();
}

function status(live, text) {
  document.getElementById("dot").className = "dot " + (live ? "live" : "down");
  document.getElementById("status").textContent = text;
}

async function scrape() {
  try {
    const answer = await fetch("metrics", {cache: "no-store"});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    update(await answer.text());
    status(true, "updated " + new Date().toLocaleTimeString("en-GB") + " \u00b7 every " + REFRESH + " s");
  } catch (e) {
    status(false, "no metrics: " + e.message);
  }
  setTimeout(scrape, REFRESH * 1000);
}

draw();
scrape();
</script>
</body>
</html>
"""
