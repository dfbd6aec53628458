// pihub dashboard: a page fed by the server's event stream (/events). No libraries.
"use strict";

const SPAN = 3600;          // seconds of history a chart shows at most
const BUCKET = 2;           // one point per this many seconds, as the server keeps them
const SVG = "http://www.w3.org/2000/svg";

const hubs = new Map();     // hub id -> {el, data, records: Map(name -> record)}
let offset = 0;             // server clock minus ours, in seconds

const $ = (sel, root = document) => root.querySelector(sel);
const now = () => Date.now() / 1000 + offset;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatValue(v) {
  if (v === null || v === undefined) return "—";
  if (v === true) return "ON";
  if (v === false) return "OFF";
  if (typeof v === "number") {
    return Math.abs(v) >= 10000 ? v.toFixed(0) : String(Number(v.toPrecision(4)));
  }
  return String(v);
}

function formatAge(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, s);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function numeric(v) {
  if (typeof v === "boolean") return v ? 1 : 0;
  return typeof v === "number" ? v : null;
}

function hubView(id) {
  let hub = hubs.get(id);
  if (hub) return hub;
  const section = el("section", "hub");
  section.dataset.hub = id;
  const head = el("div", "hub-head");
  head.append(el("h2", "", id), el("span", "badge status"), el("span", "hub-meta"));
  section.append(head, el("div", "tiles"));
  hub = {el: section, data: {}, records: new Map()};
  hubs.set(id, hub);
  const main = $("#hubs");
  const after = [...main.querySelectorAll("section.hub")].find((s) => s.dataset.hub > id);
  main.insertBefore(section, after || null);
  $("#waiting").hidden = true;
  return hub;
}

function recordView(hub, name) {
  let rec = hub.records.get(name);
  if (rec) return rec;
  const tile = el("div", "tile");
  tile.dataset.record = name;
  const head = el("div", "tile-head");
  head.append(el("span", "name", name), el("span", "badge state"));
  const reading = el("div", "reading");
  reading.append(el("span", "value", "—"), el("span", "unit"), el("span", "age"));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 100 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.append(document.createElementNS(SVG, "polyline"));
  tile.append(head, reading, svg);
  rec = {el: tile, data: {}, points: []};
  hub.records.set(name, rec);
  const tiles = $(".tiles", hub.el);
  const after = [...tiles.children].find((t) => t.dataset.record > name);
  tiles.insertBefore(tile, after || null);
  return rec;
}

function addPoint(rec, t, v) {
  const pts = rec.points;
  const last = pts[pts.length - 1];
  if (last && Math.floor(last[0] / BUCKET) === Math.floor(t / BUCKET)) {
    pts[pts.length - 1] = [t, v];
  } else if (!last || t > last[0]) {
    pts.push([t, v]);
  }
  while (pts.length && pts[0][0] < t - SPAN) pts.shift();
}

function drawChart(rec) {
  const pts = rec.points;
  const line = $("polyline", rec.el);
  if (pts.length < 2) { line.setAttribute("points", ""); return; }
  const t1 = Math.max(now(), pts[pts.length - 1][0]);
  const t0 = Math.min(pts[0][0], t1 - 60);
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of pts) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const xy = pts.map(([t, v]) =>
    `${((t - t0) / (t1 - t0) * 100).toFixed(2)},${(38 - (v - lo) / (hi - lo) * 36).toFixed(2)}`);
  line.setAttribute("points", xy.join(" "));
}

function applyHub(data, full) {
  const hub = hubView(data.hub);
  hub.data = data;
  const online = data.status === "online";
  hub.el.classList.toggle("offline", !online);
  hub.el.dataset.status = data.status;
  const badge = $(".status", hub.el);
  badge.textContent = data.status;
  badge.className = `badge status ${data.status}`;
  const meta = [];
  if (data.since) meta.push(`since ${new Date(data.since * 1000).toLocaleTimeString()}`);
  if (data.connected !== null) meta.push(data.connected ? "connected" : "disconnected");
  if (data.backlog !== null) meta.push(`backlog ${data.backlog}`);
  if (data.dropped !== null) meta.push(`dropped ${data.dropped}`);
  if (data.mqtt_error) meta.push(`broker says: ${data.mqtt_error}`);
  $(".hub-meta", hub.el).textContent = meta.join(" · ");
  for (const r of data.records) {
    const rec = recordView(hub, r.name);
    rec.data = r;
    if (full && r.history) {
      rec.points = r.history.slice();
    } else {
      const v = numeric(r.value);
      if (v !== null) addPoint(rec, r.time ?? now(), v);
    }
    $(".value", rec.el).textContent = formatValue(r.value);
    $(".unit", rec.el).textContent = r.unit || "";
    const state = $(".state", rec.el);
    state.textContent = r.state || "";
    state.className = `badge state ${r.state || ""}`;
    state.hidden = !r.state;
    drawChart(rec);
  }
}

function apply(msg, full) {
  offset = msg.time - Date.now() / 1000;
  $("#broker").textContent = `broker ${msg.broker}`;
  const problem = $("#problem");
  problem.hidden = !msg.problem;
  problem.textContent = msg.problem ? `${msg.problem}; retrying…` : "";
  if (full) {
    hubs.clear();
    $("#hubs").replaceChildren(el("p", "", "waiting for hubs…"));
    $("#hubs").firstChild.id = "waiting";
    $("#waiting").textContent = `waiting for hubs on ${msg.broker}…`;
  }
  for (const hub of msg.hubs) applyHub(hub, full);
  tick();
}

function tick() {
  $("#clock").textContent = new Date(now() * 1000).toLocaleTimeString();
  for (const hub of hubs.values()) {
    for (const rec of hub.records.values()) {
      const t = rec.data.time;
      $(".age", rec.el).textContent = t ? formatAge(now() - t) : "";
    }
  }
}

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("state", (e) => apply(JSON.parse(e.data), true));
  events.addEventListener("update", (e) => apply(JSON.parse(e.data), false));
  events.onerror = () => {
    const problem = $("#problem");
    problem.hidden = false;
    problem.textContent = "lost the dashboard server; retrying…";
  };
}

setInterval(tick, 1000);
setInterval(() => { for (const h of hubs.values()) for (const r of h.records.values()) drawChart(r); },
            5000);
connect();
