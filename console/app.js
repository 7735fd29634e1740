// floodgate console: polls the HTTP shim's JSON every POLL_MS and draws it.
// Every string from the server reaches the page through textContent (or a
// DOM attribute), never as HTML. The admin token lives in this tab's
// sessionStorage only and travels in the Authorization header only.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "floodgate.adminToken";
const SVG_NS = "http://www.w3.org/2000/svg";
const WINDOWS = ["1h", "3h", "6h", "12h", "24h"];
const USER_TYPES = ["anonymous", "registered", "privileged"];

let authRequired = false;
let pollTimer = null;
let liveConfig = null;

/** Raised when the server refuses the token (401/403). */
class AuthFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- DOM helpers ----------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, String(v));
  }
  e.append(...children.map((c) => (c instanceof Node ? c : String(c))));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setText(id, value) {
  $(id).textContent = String(value);
}

function badge(word) {
  const w = String(word);
  return h("span", { class: "badge " + w.toLowerCase().replace(/[^a-z_]/g, "") }, w.toUpperCase());
}

function seconds(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 10000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms / 1000) + " s";
}

function percent(ratio) {
  return (ratio * 100).toFixed(1) + " %";
}

// ---- talking to floodgate -------------------------------------------------

function authHeaders() {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  return headers;
}

async function call(method, path, body) {
  const init = { method, headers: authHeaders(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let json = null;
  try {
    json = await response.json();
  } catch (_) {
    json = null;
  }
  if (response.status === 401 || response.status === 403) {
    const why = json && typeof json.error === "string" ? json.error : response.statusText;
    throw new AuthFailure(response.status, why);
  }
  return { status: response.status, ok: response.ok, json };
}

async function getJson(path) {
  const r = await call("GET", path);
  if (!r.ok) {
    const why = r.json && typeof r.json.error === "string" ? r.json.error : "HTTP " + r.status;
    throw new Error(path + ": " + why);
  }
  return r.json;
}

// ---- status, errors, auth -------------------------------------------------

function showError(message) {
  const e = $("error");
  e.textContent = message;
  e.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

/** Removes every value drawn from the server (a refused token shows none). */
function clearData() {
  $("data").hidden = true;
  for (const id of ["capacity-steps", "process-rows", "circuit-rows", "throttle-periods", "throttle-reasons",
    "top-sessions", "queue-rows", "dead-letters", "alert-list", "pressure-gauge", "throttle-chart", "config-result"]) {
    $(id).replaceChildren();
  }
  for (const id of ["cap-concurrent", "cap-effective", "cap-queue", "cap-total", "load", "pressure",
    "limit-anonymous", "limit-registered", "limit-privileged", "accepting-anonymous", "accepting-registered",
    "accepting-privileged", "queue-leased", "queue-dead", "live-config", "config-version", "circuit-message"]) {
    $(id).textContent = "";
  }
  liveConfig = null;
}

function askForToken() {
  stopPolling();
  $("token-form").hidden = false;
  $("forget-token").hidden = true;
  $("token").focus();
}

function onAuthFailure(failure) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearData();
  setText("status", "not connected");
  const what = failure.status === 403 ? "is not an admin token" : "was refused";
  showError("The admin token " + what + " (HTTP " + failure.status + ": " + failure.message + "). Enter a valid admin token.");
  askForToken();
}

function stopPolling() {
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

// ---- polling --------------------------------------------------------------

async function poll() {
  stopPolling();
  try {
    const [system, capacity, processes, minutes, recovery, queues, config] = await Promise.all([
      getJson("/monitoring/system"),
      getJson("/debug/capacity-calculation"),
      getJson("/monitoring/processes"),
      getJson("/monitoring/throttling/minutes"),
      getJson("/monitoring/circuit-breakers/recovery"),
      getJson("/monitoring/queues"),
      getJson("/monitoring/runtime-config"),
    ]);
    liveConfig = config.config;
    drawCapacity(capacity, system.enhanced_queue_stats, config.config);
    drawProcesses(processes);
    drawCircuits(recovery);
    drawThrottling(minutes, system.throttling_by_period);
    drawQueues(queues);
    drawAlerts(system.alerts);
    drawConfig(config);
    clearError();
    $("data").hidden = false;
    $("token-form").hidden = true;
    $("forget-token").hidden = !authRequired;
    setText("status", "updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof AuthFailure) {
      onAuthFailure(e);
      return;
    }
    showError("Could not read floodgate: " + e.message);
    setText("status", "retrying");
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

// ---- panels ---------------------------------------------------------------

function drawCapacity(report, queue, config) {
  const t = report.totals;
  setText("cap-concurrent", t.total_concurrent);
  setText("cap-effective", t.effective);
  setText("cap-queue", t.queue_capacity);
  setText("cap-total", t.system_total);
  setText("load", queue.total_queue);
  setText("pressure", queue.pressure_ratio.toFixed(2));
  setText("limit-anonymous", t.anonymous_limit);
  setText("limit-registered", t.registered_limit);
  setText("limit-privileged", t.privileged_limit);
  for (const u of USER_TYPES) {
    $("accepting-" + u).replaceChildren(badge(queue["accepting_" + u] ? "yes" : "no"));
  }
  const steps = Object.keys(report.calculations_breakdown).sort();
  $("capacity-steps").replaceChildren(...steps.map((k) => h("li", {}, report.calculations_breakdown[k])));
  drawGauge(queue.pressure_ratio, queue.total_queue, t.system_total, config);
}

/** A half-circle gauge of L/T with ticks at the three thresholds. */
function drawGauge(ratio, load, total, config) {
  const g = $("pressure-gauge");
  const cx = 100, cy = 104, r = 80;
  const at = (v) => {
    const a = Math.PI * (1 - Math.max(0, Math.min(1, v)));
    return [cx + r * Math.cos(a), cy - r * Math.sin(a)];
  };
  const arc = (v) => {
    const [x0, y0] = at(0);
    const [x1, y1] = at(v);
    return `M ${x0.toFixed(2)} ${y0.toFixed(2)} A ${r} ${r} 0 0 1 ${x1.toFixed(2)} ${y1.toFixed(2)}`;
  };
  const thresholds = config
    ? [config.anonymous_threshold, config.registered_threshold, config.hard_limit_threshold]
    : [];
  const level = ratio >= (thresholds[1] ?? 0.8) ? "high" : ratio >= (thresholds[0] ?? 0.6) ? "raised" : "low";
  const parts = [svg("path", { class: "gauge-track", d: arc(1) })];
  if (ratio > 0) parts.push(svg("path", { class: "gauge-value " + level, d: arc(ratio) }));
  for (const v of thresholds) {
    const a = Math.PI * (1 - v);
    const inner = [cx + (r - 12) * Math.cos(a), cy - (r - 12) * Math.sin(a)];
    const outer = [cx + (r + 12) * Math.cos(a), cy - (r + 12) * Math.sin(a)];
    parts.push(svg("line", { class: "gauge-tick", x1: inner[0], y1: inner[1], x2: outer[0], y2: outer[1] }));
  }
  parts.push(svg("text", { class: "gauge-text", x: cx, y: cy - 14 }, percent(ratio)));
  parts.push(svg("text", { class: "gauge-sub", x: cx, y: cy + 4 }, `load ${load} of ${total}`));
  parts.push(svg("title", {}, `pressure ${ratio.toFixed(3)} (ticks: user-type thresholds)`));
  g.replaceChildren(...parts);
}

function drawProcesses(view) {
  const rows = view.processes.map((p) =>
    h("tr", { "data-process": p.process_id },
      h("td", {}, p.instance_id),
      h("td", {}, p.process_id),
      h("td", {}, p.group),
      h("td", {}, badge(p.health)),
      h("td", {}, `${p.load} / ${p.capacity}`),
      h("td", {}, seconds(p.last_heartbeat_age_ms) + " ago"),
    ));
  if (rows.length === 0) rows.push(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "no process has sent a heartbeat")));
  $("process-rows").replaceChildren(...rows);
}

function drawCircuits(view) {
  const rows = Object.entries(view.circuits).map(([name, c]) => {
    const button = h("button", { type: "button", "data-reset": name }, "Reset");
    button.addEventListener("click", () => resetCircuit(name));
    const halfOpen = c.half_open_in_ms === null ? "–" : c.half_open_in_ms === 0 ? "due" : seconds(c.half_open_in_ms);
    return h("tr", { "data-circuit": name },
      h("td", {}, name),
      h("td", { class: "state" }, badge(c.state)),
      h("td", {}, `${c.current_window_failures} / ${c.consecutive_failures} / ${c.failure_count}`),
      h("td", {}, c.total_requests),
      h("td", {}, halfOpen),
      h("td", {}, button),
    );
  });
  $("circuit-rows").replaceChildren(...rows);
}

async function resetCircuit(name) {
  try {
    const r = await call("POST", "/admin/circuit-breakers/" + encodeURIComponent(name) + "/reset");
    const why = r.json && typeof r.json.error === "string" ? r.json.error : "HTTP " + r.status;
    setText("circuit-message", r.ok ? `${r.json.circuit_name} reset: now ${r.json.state}` : `reset of ${name} failed: ${why}`);
    await poll();
  } catch (e) {
    if (e instanceof AuthFailure) onAuthFailure(e);
    else setText("circuit-message", "reset failed: " + e.message);
  }
}

/** Admitted and refused per minute over the last hour, as two polylines with points. */
function drawThrottling(view, periods) {
  const chart = $("throttle-chart");
  const W = 640, H = 200, left = 40, right = 10, top = 10, bottom = 24;
  const points = view.minutes;
  const max = Math.max(1, ...points.map((p) => Math.max(p.admitted, p.refused)));
  const n = Math.max(points.length - 1, 1);
  const x = (i) => left + (i * (W - left - right)) / n;
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const parts = [
    svg("line", { class: "axis", x1: left, y1: y(0), x2: W - right, y2: y(0) }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: y(0) }),
    svg("text", { class: "axis-label", x: left - 4, y: top + 8, "text-anchor": "end" }, max),
    svg("text", { class: "axis-label", x: left - 4, y: y(0), "text-anchor": "end" }, 0),
    svg("text", { class: "axis-label", x: left, y: H - 6 }, `−${points.length} min`),
    svg("text", { class: "axis-label", x: W - right, y: H - 6, "text-anchor": "end" }, "now"),
  ];
  for (const kind of ["admitted", "refused"]) {
    const coords = points.map((p, i) => `${x(i).toFixed(1)},${y(p[kind]).toFixed(1)}`).join(" ");
    parts.push(svg("polyline", { class: "series " + kind, points: coords }));
    points.forEach((p, i) => {
      if (p[kind] === 0) return;
      const dot = svg("circle", { class: "point " + kind, cx: x(i).toFixed(1), cy: y(p[kind]).toFixed(1), r: 3,
        "data-kind": kind, "data-value": p[kind] });
      dot.append(svg("title", {}, `${new Date(p.minute_start_ms).toLocaleTimeString()}: ${p[kind]} ${kind}`));
      parts.push(dot);
    });
  }
  chart.replaceChildren(...parts);

  $("throttle-periods").replaceChildren(...WINDOWS.filter((w) => periods[w]).map((w) => {
    const p = periods[w];
    return h("tr", { "data-window": w },
      h("td", {}, w), h("td", {}, p.total_requests), h("td", {}, p.total_throttled),
      h("td", {}, p.throttle_rate.toFixed(1) + " %"), h("td", {}, p.rate_limit_429),
      h("td", {}, p.backpressure_503), h("td", {}, p.circuit_open_503));
  }));

  const hour = periods["1h"];
  const reasons = hour
    ? [["rate limit (429)", hour.rate_limit_429], ["backpressure (503)", hour.backpressure_503], ["circuit open (503)", hour.circuit_open_503]]
    : [];
  const most = Math.max(1, ...reasons.map((r) => r[1]));
  $("throttle-reasons").replaceChildren(...reasons.map(([label, n]) => {
    const bar = h("div", { class: "bar" });
    bar.style.width = `${(100 * n) / most}%`;
    return h("li", {}, h("span", {}, label), h("div", {}, bar), h("span", {}, n));
  }));
  const sessions = hour ? hour.top_sessions : [];
  $("top-sessions").replaceChildren(...(sessions.length
    ? sessions.map((s) => h("li", {}, h("code", {}, s.session_id), ` ${s.throttled} refused`))
    : [h("li", { class: "muted" }, "none")]));
}

function drawQueues(view) {
  $("queue-rows").replaceChildren(...USER_TYPES.map((u) => h("tr", { "data-class": u }, h("td", {}, u),
    h("td", {}, view.queued[u] ?? 0), h("td", {}, seconds(view.oldest_task_age_ms[u])))));
  setText("queue-leased", view.leased);
  setText("queue-dead", view.dead_letters);
  $("dead-letters").replaceChildren(...view.recent_dead_letters.map((d) =>
    h("li", {}, h("code", {}, d.task_id), ` ${d.user_type}, ${d.delivery_count} deliveries, dead at ${new Date(d.dead_at_ms).toLocaleTimeString()}` +
      (d.last_holder ? `, last held by ${d.last_holder.instance_id}/${d.last_holder.process_id}` : ""))));
}

function drawAlerts(alerts) {
  const items = alerts.map((a) =>
    h("li", { "data-code": a.code }, badge(a.severity), " ", h("code", {}, a.code), " ", a.message,
      h("span", { class: "muted" }, ` since ${new Date(a.since_ms).toLocaleTimeString()}`)));
  if (items.length === 0) items.push(h("li", { class: "muted" }, "no active alert"));
  $("alert-list").replaceChildren(...items);
}

function drawConfig(view) {
  setText("live-config", JSON.stringify(view.config, null, 2));
  setText("config-version", `version ${view.version}`);
}

// ---- configuration: validate / apply --------------------------------------

function readChange() {
  try {
    return { change: JSON.parse($("config-change").value) };
  } catch (e) {
    return { error: "not JSON: " + e.message };
  }
}

function fieldErrors(errors) {
  return h("ul", { class: "field-errors" }, ...errors.map((e) => h("li", {}, h("code", {}, e.field), ": ", e.message)));
}

async function sendConfig(apply) {
  const out = $("config-result");
  const { change, error } = readChange();
  if (error) {
    out.replaceChildren(h("p", { class: "bad" }, error));
    return;
  }
  try {
    const path = apply ? "/admin/gateway/update-config" : "/admin/gateway/validate-config";
    const r = await call("POST", path, change);
    const body = r.json || {};
    const parts = [];
    if (Array.isArray(body.errors) && body.errors.length) {
      parts.push(h("p", { class: "bad" }, apply ? "Not applied:" : "Invalid:"), fieldErrors(body.errors));
    } else if (!r.ok) {
      parts.push(h("p", { class: "bad" }, typeof body.error === "string" ? body.error : "HTTP " + r.status));
    } else if (apply) {
      parts.push(h("p", { class: "ok" }, `Applied as version ${body.version}.`));
    } else {
      const total = body.preview ? body.preview.totals.system_total : "?";
      parts.push(h("p", { class: "ok" }, `Valid. System total would be ${total}.`));
    }
    for (const w of body.warnings || []) parts.push(h("p", { class: "muted" }, "warning: " + w));
    out.replaceChildren(...parts);
    if (apply && r.ok) await poll();
  } catch (e) {
    if (e instanceof AuthFailure) onAuthFailure(e);
    else out.replaceChildren(h("p", { class: "bad" }, e.message));
  }
}

// ---- start ----------------------------------------------------------------

async function start() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    clearError();
    $("token-form").hidden = true;
    setText("status", "connecting…");
    poll();
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearData();
    setText("status", "not connected");
    askForToken();
  });
  $("config-validate").addEventListener("click", () => sendConfig(false));
  $("config-apply").addEventListener("click", () => sendConfig(true));
  try {
    const session = await (await fetch("/ui/session", { cache: "no-store" })).json();
    authRequired = session.auth_required === true;
  } catch (e) {
    showError("Could not reach floodgate: " + e.message);
    return;
  }
  if (authRequired && !sessionStorage.getItem(TOKEN_KEY)) {
    setText("status", "admin token needed");
    askForToken();
  } else {
    poll();
  }
}

start();
