"""The status page's static files, kept as Python strings so they ship inside the package with no build step.

The script builds every element with createElement/textContent: peer user agents
and addresses are controlled by remote nodes, so nothing from status.json is ever
parsed as HTML. The page loads no inline script or style, which lets the server
send a Content-Security-Policy that forbids both.
"""

from __future__ import annotations

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>camelidd status</title>
<link rel="stylesheet" href="status.css">
<script src="status.js" defer></script>
</head>
<body>
<h1>camelidd <span id="network"></span></h1>
<p id="state">Loading status&hellip;</p>
<section>
  <h2>Chain tip</h2>
  <dl>
    <dt>Height</dt><dd id="tip-height">&ndash;</dd>
    <dt>Hash</dt><dd id="tip-hash" class="hash">&ndash;</dd>
    <dt>Time</dt><dd id="tip-time">&ndash;</dd>
  </dl>
</section>
<section>
  <h2>Charts</h2>
  <h3>Block intervals</h3>
  <p id="chart-blocks-caption" class="caption">&ndash;</p>
  <div id="chart-blocks" class="chart"></div>
  <h3>Jobs per minute, by outcome</h3>
  <p id="chart-jobs-caption" class="caption">&ndash;</p>
  <div id="chart-jobs" class="chart"></div>
  <p id="chart-jobs-legend" class="legend"></p>
  <h3>Job latency (arrival to delivery)</h3>
  <p id="chart-latency-caption" class="caption">&ndash;</p>
  <div id="chart-latency" class="chart"></div>
</section>
<section>
  <h2>Peers (<span id="peer-count">&ndash;</span>)</h2>
  <table>
    <thead><tr><th>Address</th><th>Direction</th><th>User agent</th><th>Height</th><th>Ping</th></tr></thead>
    <tbody id="peer-list"></tbody>
  </table>
</section>
<section>
  <h2>Mempool</h2>
  <dl>
    <dt>Transactions</dt><dd id="mempool-count">&ndash;</dd>
    <dt>Size</dt><dd id="mempool-bytes">&ndash;</dd>
  </dl>
</section>
<section>
  <h2>Mining</h2>
  <dl>
    <dt>Mining</dt><dd id="mining">&ndash;</dd>
    <dt>Hash rate</dt><dd id="hashrate">&ndash;</dd>
  </dl>
</section>
<section>
  <h2>Models served</h2>
  <ul id="models"></ul>
</section>
<section>
  <h2>Compute workers</h2>
  <p id="cpu">&ndash;</p>
  <table>
    <thead><tr><th>model</th><th>state</th><th>pid</th><th>restarts</th><th>last error</th></tr></thead>
    <tbody id="worker-list"></tbody>
  </table>
  <p id="build">&ndash;</p>
</section>
<section>
  <h2>Job pool</h2>
  <p id="jobs">&ndash;</p>
  <table>
    <thead><tr><th>job</th><th>state</th><th>role</th><th>verdict</th></tr></thead>
    <tbody id="job-list"></tbody>
  </table>
</section>
</body>
</html>
"""

PAGE_CSS = """body { font: 15px/1.4 system-ui, sans-serif; color: #222; }
body { margin: 1.5em auto; max-width: 60em; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h1 span { color: #777; font-weight: normal; }
h2 { font-size: 1.1em; border-bottom: 1px solid #ddd; margin-top: 1.4em; }
dl { display: grid; grid-template-columns: 9em 1fr; gap: 0.2em 1em; margin: 0; }
dt { color: #555; }
dd { margin: 0; }
.hash { font-family: ui-monospace, monospace; word-break: break-all; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.2em 0.6em 0.2em 0; border-bottom: 1px solid #eee; }
#state { color: #555; }
#state.error { color: #b00; }
ul { margin: 0; padding-left: 1.2em; }
#models { word-break: break-all; }
h3 { font-size: 0.95em; margin: 0.8em 0 0.1em; }
.caption { color: #555; margin: 0; font-size: 0.9em; }
.chart svg { display: block; width: 100%; height: 110px; background: #fafafa; }
.legend { font-size: 0.85em; margin: 0.2em 0 0; }
.legend span { margin-right: 1em; }
.swatch-verified { color: #2a7f3f; } .swatch-delivered { color: #5b9bd5; } .swatch-disputed { color: #e69500; }
.swatch-slashed { color: #c0392b; } .swatch-open { color: #bbbbbb; } .swatch-ended { color: #666666; }
"""

PAGE_JS = """"use strict";
const REFRESH_MS = 5000;

function setText(id, value) {
  document.getElementById(id).textContent = value;
}

function formatBytes(bytes) {
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1048576) return (bytes / 1024).toFixed(1) + " kB";
  return (bytes / 1048576).toFixed(1) + " MB";
}

function formatHashrate(hashps) {
  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s"];
  let i = 0;
  while (hashps >= 1000 && i < units.length - 1) { hashps /= 1000; i++; }
  return hashps.toFixed(i ? 2 : 0) + " " + units[i];
}

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_WIDTH = 600;
const CHART_HEIGHT = 110;
const OUTCOME_COLORS = {verified: "#2a7f3f", delivered: "#5b9bd5", disputed: "#e69500", slashed: "#c0392b",
  open: "#bbbbbb", ended: "#666666"};

function svgElement(tag, attributes) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

// bars: [{label, parts: [{name, value, color}]}], oldest first; each part a stacked segment with a tooltip.
function drawBars(id, bars, unit) {
  const svg = svgElement("svg", {viewBox: "0 0 " + CHART_WIDTH + " " + CHART_HEIGHT, role: "img",
    preserveAspectRatio: "none"});
  const totals = bars.map((bar) => bar.parts.reduce((sum, part) => sum + part.value, 0));
  const top = Math.max(1e-9, ...totals);
  const step = CHART_WIDTH / Math.max(bars.length, 1);
  const usable = CHART_HEIGHT - 14;
  bars.forEach((bar, i) => {
    let y = CHART_HEIGHT;
    for (const part of bar.parts) {
      if (part.value <= 0 && bar.parts.length > 1) continue;
      const height = Math.max(1, (part.value / top) * usable);  // a zero stays visible as a hairline
      y -= height;
      const rect = svgElement("rect", {x: (i * step + 1).toFixed(1), y: y.toFixed(1),
        width: Math.max(1, step - 2).toFixed(1), height: height.toFixed(1), fill: part.color});
      const title = svgElement("title", {});
      title.textContent = bar.label + ": " + part.value + " " + (part.name || unit);
      rect.appendChild(title);
      svg.appendChild(rect);
    }
  });
  const scale = svgElement("text", {x: 4, y: 11, "font-size": 11, fill: "#555"});
  scale.textContent = "max " + (Math.round(top * 10) / 10) + " " + unit;
  svg.appendChild(scale);
  document.getElementById(id).replaceChildren(svg);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}

function renderCharts(charts) {
  const blocks = charts.block_intervals;
  const seconds = blocks.map((block) => block.seconds);
  setText("chart-blocks-caption", blocks.length === 0 ? "no blocks after genesis yet"
    : "last " + blocks.length + " blocks: median " + median(seconds) + " s, longest " + Math.max(...seconds) + " s");
  drawBars("chart-blocks", blocks.map((block) => ({label: "block " + block.height,
    parts: [{name: "s", value: block.seconds, color: "#5b9bd5"}]})), "s");

  const legend = document.getElementById("chart-jobs-legend");
  if (charts.jobs_per_minute === null) {
    setText("chart-jobs-caption", "job service not running");
    setText("chart-latency-caption", "job service not running");
    document.getElementById("chart-jobs").replaceChildren();
    document.getElementById("chart-latency").replaceChildren();
    legend.replaceChildren();
    return;
  }
  const minutes = charts.jobs_per_minute;
  const total = minutes.reduce((sum, minute) => sum + charts.outcomes.reduce((n, o) => n + minute[o], 0), 0);
  setText("chart-jobs-caption", total === 0 ? "no jobs in the last " + minutes.length + " minutes"
    : total + " jobs in the last " + minutes.length + " minutes");
  drawBars("chart-jobs", minutes.map((minute) => ({label: new Date(minute.minute * 1000).toLocaleTimeString(),
    parts: charts.outcomes.map((name) => ({name: name, value: minute[name], color: OUTCOME_COLORS[name]}))})), "jobs");
  legend.replaceChildren(...charts.outcomes.map((name) => {
    const item = document.createElement("span");
    const swatch = document.createElement("b");
    swatch.textContent = "\u25a0 ";
    swatch.setAttribute("class", "swatch-" + name);
    item.append(swatch, name);
    return item;
  }));

  const latencies = charts.job_latency;
  setText("chart-latency-caption", latencies.length === 0 ? "no delivered jobs yet"
    : "last " + latencies.length + " delivered jobs: median " + median(latencies.map((l) => l.seconds)) + " s");
  drawBars("chart-latency", latencies.map((job) => ({label: "job " + job.jobid.slice(0, 16),
    parts: [{name: "s", value: job.seconds, color: "#2a7f3f"}]})), "s");
}

function peerRow(peer) {
  const row = document.createElement("tr");
  const ping = peer.pingtime === null ? "\\u2013" : (peer.pingtime * 1000).toFixed(1) + " ms";
  for (const value of [peer.addr, peer.inbound ? "in" : "out", peer.subver, peer.bestheight, ping]) {
    const cell = document.createElement("td");
    cell.textContent = String(value);
    row.appendChild(cell);
  }
  return row;
}

function renderModels(models) {
  const items = models === null ? ["model service not running"]
    : models.length === 0 ? ["none"]
    : models.map((model) => model.name + " (" + formatBytes(model.size) + ", id " + model.id + ")");
  document.getElementById("models").replaceChildren(...items.map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

function renderCompute(compute) {
  const list = document.getElementById("worker-list");
  if (compute === null) {
    setText("cpu", "compute service not running");
    list.replaceChildren();
    return;
  }
  setText("cpu", "CPU features: " + (compute.cpu_features.join(" ") || "unknown"));
  list.replaceChildren(...compute.models.map((worker) => {
    const row = document.createElement("tr");
    const cells = [worker.model_id.slice(0, 16) + "\u2026", worker.state, worker.pid ?? "\u2013", worker.restarts,
      worker.last_error ?? "\u2013"];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.appendChild(cell);
    }
    return row;
  }));
  const builds = [...new Set(compute.models.map((worker) => worker.build).filter((build) => build))];
  setText("build", builds.length ? "llama.cpp build: " + builds.join("; ") : "no worker running");
}

function renderJobs(jobs) {
  const list = document.getElementById("job-list");
  if (jobs === null) {
    setText("jobs", "job service not running");
    list.replaceChildren();
    return;
  }
  const states = Object.entries(jobs.by_state).map(([state, n]) => n + " " + state);
  setText("jobs", jobs.count === 0 ? "no jobs seen" : jobs.count + " jobs: " + states.join(", "));
  list.replaceChildren(...jobs.recent.map((job) => {
    const row = document.createElement("tr");
    for (const value of [job.jobid.slice(0, 16) + "\u2026", job.state, job.role, job.verdict ?? "\u2013"]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.appendChild(cell);
    }
    return row;
  }));
}

function render(status) {
  setText("network", status.network);
  if (!status.ready) {
    setText("state", "Starting: " + status.warmup);
    return;
  }
  setText("tip-height", status.tip.height);
  setText("tip-hash", status.tip.hash);
  setText("tip-time", new Date(status.tip.time * 1000).toISOString());
  const list = document.getElementById("peer-list");
  if (status.peers === null) {
    setText("peer-count", "P2P not running");
    list.replaceChildren();
  } else {
    const shown = status.peers.list.length;
    const count = status.peers.count;
    setText("peer-count", shown < count ? count + ", first " + shown + " shown" : count);
    list.replaceChildren(...status.peers.list.map(peerRow));
  }
  setText("mempool-count", status.mempool.count);
  setText("mempool-bytes", formatBytes(status.mempool.bytes));
  setText("mining", status.mining.mining ? "yes" : "no");
  setText("hashrate", formatHashrate(status.mining.hashps));
  renderModels(status.models);
  renderCompute(status.compute);
  renderJobs(status.jobs);
  renderCharts(status.charts);
  setText("state", "Updated " + new Date().toLocaleTimeString() + ", refreshing every " + REFRESH_MS / 1000 + " s.");
}

async function refresh() {
  const state = document.getElementById("state");
  try {
    const response = await fetch("status.json", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    state.classList.remove("error");
    render(await response.json());
  } catch (err) {
    state.classList.add("error");
    state.textContent = "Cannot reach the node: " + err.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
"""
