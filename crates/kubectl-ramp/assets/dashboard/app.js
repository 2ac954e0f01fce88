// ramp dashboard: two pages (list, rollout) fed by Server-Sent Events.
// Data are put in the page with textContent only (never as HTML).
import { splitBar, seriesChart, fmt } from "./charts.js";

const main = document.getElementById("main");
const conn = document.getElementById("conn");
let source = null;       // the EventSource of the page shown
let timer = null;        // countdown ticker
let clockOffset = 0;     // server time - local time, ms

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function age(created) {
  if (!created) return "-";
  const s = Math.max(0, Math.floor((Date.now() + clockOffset - Date.parse(created)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 10800) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind}-${text}` }, text ?? "-");
}

function listen(url, onSnapshot) {
  if (source) source.close();
  source = new EventSource(url);
  source.addEventListener("open", () => { conn.textContent = "live"; conn.className = "conn live"; });
  source.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "conn down"; });
  source.addEventListener("snapshot", (ev) => {
    const data = JSON.parse(ev.data);
    if (data && data.now) clockOffset = Date.parse(data.now) - Date.now();
    onSnapshot(data);
  });
}

// ----- list page ------------------------------------------------------------

const filters = { ns: "", text: "" };

function listPage() {
  document.title = "Rollouts · ramp";
  const nsSelect = el("select", { id: "ns-filter" }, el("option", { value: "" }, "All namespaces"));
  const text = el("input", { id: "text-filter", type: "search", placeholder: "name, phase, state…", value: filters.text });
  const body = el("tbody", { id: "rollout-rows" });
  const errors = el("div", { id: "list-errors", class: "message error", role: "alert" });
  main.replaceChildren(
    el("h1", {}, "Rollouts"),
    errors,
    el("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      el("label", {}, "Namespace", nsSelect),
      el("label", {}, "Filter", text)),
    el("table", { id: "rollouts" },
      el("caption", { id: "list-caption" }, "Loading…"),
      el("thead", {}, el("tr", {},
        ["Name", "Namespace", "Phase", "Step", "State", "Canary weight", "Canary ready", "Analysis", "Age"]
          .map((h) => el("th", { scope: "col" }, h)))),
      body));
  let last = null;
  const draw = () => {
    if (!last) return;
    const namespaces = [...new Set(last.rollouts.map((r) => r.namespace))].sort();
    const have = [...nsSelect.options].map((o) => o.value).slice(1);
    if (have.join("\n") !== namespaces.join("\n")) {
      nsSelect.replaceChildren(el("option", { value: "" }, "All namespaces"),
        ...namespaces.map((n) => el("option", { value: n }, n)));
    }
    nsSelect.value = namespaces.includes(filters.ns) ? filters.ns : "";
    const q = filters.text.trim().toLowerCase();
    const rows = last.rollouts.filter((r) => (!filters.ns || r.namespace === filters.ns) &&
      (!q || [r.name, r.namespace, r.phase, r.state, r.message].some((f) => (f || "").toLowerCase().includes(q))));
    body.replaceChildren(...rows.map((r) => el("tr", { "data-rollout": `${r.namespace}/${r.name}` },
      el("td", {}, el("a", { href: `#/rollouts/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}` }, r.name)),
      el("td", {}, r.namespace),
      el("td", { class: "phase" }, badge(r.phase, "phase"), r.paused ? " paused" : ""),
      el("td", { class: "step" }, r.step ?? "-"),
      el("td", { class: "state" }, r.state ?? "-"),
      el("td", { class: "weight" }, r.weight),
      el("td", { class: "ready" }, r.ready ?? "-"),
      el("td", { class: "analysis" }, r.analysis),
      el("td", { class: "age" }, age(r.created)))));
    document.getElementById("list-caption").textContent =
      `${rows.length} of ${last.rollouts.length} rollouts, updated live`;
    errors.textContent = (last.errors || []).join("; ");
  };
  // Ages move with the clock (a redraw, not a request).
  timer = setInterval(draw, 5000);
  nsSelect.addEventListener("change", () => { filters.ns = nsSelect.value; draw(); });
  text.addEventListener("input", () => { filters.text = text.value; draw(); });
  listen("/api/stream", (data) => { last = data; draw(); });
}

// ----- rollout page ---------------------------------------------------------

const LABELS = {
  "approve": "Approve step", "approve-force": "Approve anyway", "promote-full": "Promote fully", "abort": "Abort", "retry": "Retry",
  "pause": "Pause", "resume": "Resume", "undo": "Undo",
};
const CONFIRM = {
  "approve": (r) => `Approve step ${r.step} of rollout ${r.namespace}/${r.name}? The rollout moves on to the next step.`,
  "approve-force": (r) => `An analysis metric of step ${r.step} of ${r.namespace}/${r.name} is failing (${r.analysis}). Approve anyway? The Event records that you forced it.`,
  "promote-full": (r) => `Skip the remaining steps of ${r.namespace}/${r.name} and finish the rollout now?`,
  "abort": (r) => `Abort ${r.namespace}/${r.name}? Traffic goes back to stable and the canary is scaled to zero.`,
  "retry": (r) => `Start ${r.namespace}/${r.name} again from step 1?`,
  "pause": (r) => `Hold ${r.namespace}/${r.name} where it is?`,
  "resume": (r) => `Let ${r.namespace}/${r.name} continue?`,
  "undo": (r) => `Put the workload of ${r.namespace}/${r.name} back to the stable revision?`,
};

function confirmDialog(title, text) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

async function runAction(ns, name, action, seen, message) {
  const ok = await confirmDialog(LABELS[action] + (action === "approve" ? ` ${seen.label}` : ""), CONFIRM[action](seen.row));
  if (!ok) return;
  message.className = "message";
  message.textContent = "…";
  let res, body;
  try {
    res = await fetch(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/actions/${action}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-ramp-dashboard": "1" },
      body: JSON.stringify(seen.step === null ? {} : { step: seen.step, state: seen.state }),
    });
    body = await res.json();
  } catch (e) {
    message.className = "message error";
    message.setAttribute("role", "alert");
    message.textContent = `The request failed: ${e}`;
    return;
  }
  message.className = body.ok ? "message ok" : "message error";
  message.setAttribute("role", body.ok ? "status" : "alert");
  message.textContent = body.ok ? body.message : `Refused: ${body.message}`;
  // The buttons are redrawn as the rollout moves: keep the keyboard on the answer.
  message.focus();
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v, id]) => [el("dt", {}, k), el("dd", { id }, v)]));
}

function trafficSection(data) {
  const out = [];
  out.push(el("p", { id: "canary-traffic" }, "Canary receives: ", el("strong", {}, data.traffic)));
  out.push(el("div", { class: "legend", "aria-hidden": "true" },
    el("span", {}, el("span", { class: "sw stable" }), "stable"),
    el("span", {}, el("span", { class: "sw canary" }), "canary"),
    el("span", {}, el("span", { class: "sw other" }), "other")));
  for (const obj of data.routing) {
    const fig = el("figure", { class: "routing", "data-kind": obj.kind, "data-name": obj.name });
    fig.append(el("figcaption", {}, el("strong", {}, `${obj.kind} ${obj.name}`),
      obj.missing ? " (not found)" : ` · hosts ${(obj.hosts || []).join(", ") || "-"}` +
        ((obj.gateways || []).length ? ` · gateways ${obj.gateways.join(", ")}` : "")));
    const rules = el("ol", { class: "rules" });
    obj.rules.forEach((rule, i) => {
      const when = rule.matches.length ? `requests matching ${rule.matches.join(" or ")}` :
        (i === obj.rules.length - 1 && obj.rules.length > 1 ? "all other requests" : "all requests");
      const split = rule.backends.map((b) => `${b.name} ${b.share}% (${b.role})`).join(", ");
      const mirror = rule.mirror ? `; mirror ${rule.mirror.percent}% to ${rule.mirror.name} (${rule.mirror.role})` : "";
      const canary = rule.backends.filter((b) => b.role === "canary").reduce((a, b) => a + b.share, 0);
      rules.append(el("li", { class: "rule", "data-canary-share": canary, "data-matches": rule.matches.join(" or ") },
        el("div", { class: "when" }, `${when} → `, el("span", { class: "split" }, split + mirror)),
        splitBar(rule)));
    });
    fig.append(rules);
    out.push(fig);
  }
  if (!data.routing.length) out.push(el("p", { class: "empty" }, "This rollout names no routing object."));
  return out;
}

function objectsSection(data) {
  const dep = el("table", { id: "deployments" },
    el("caption", {}, "Deployments"),
    el("thead", {}, el("tr", {}, ["Name", "Role", "Ready / wanted", "Updated", "Paused", "Image", "Env", "Conditions"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, data.deployments.map((d) => el("tr", {},
      el("td", {}, d.name), el("td", {}, d.role), el("td", {}, `${d.ready}/${d.replicas ?? "-"}`),
      el("td", {}, d.updated), el("td", {}, d.paused ? "yes" : "no"),
      el("td", { class: "mono" }, d.images.join(", ")), el("td", { class: "mono" }, d.env.join(" ")),
      el("td", {}, d.conditions.map((c) => el("div", {}, `${c.type}=${c.status}${c.reason ? " " + c.reason : ""}`
        + (c.status !== "True" && c.message ? `: ${c.message}` : ""))))))));
  const svc = el("table", { id: "services" },
    el("caption", {}, "Services"),
    el("thead", {}, el("tr", {}, ["Name", "Role", "Selector", "Ports"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, data.services.map((s) => el("tr", {},
      el("td", {}, s.name), el("td", {}, s.role),
      el("td", { class: "mono" }, Object.entries(s.selector).map(([k, v]) => `${k}=${v}`).join(", ")),
      el("td", {}, s.ports.join(", "))))));
  return [dep, svc];
}

function metricsSection(data, prom) {
  if (!data.metrics.length) return [el("p", { class: "empty" }, "No analysis in this rollout.")];
  const series = (name) => ((prom && prom.metrics) || []).find((p) => p.name === name);
  const note = !prom ? null : prom.address && prom.metrics.some((p) => p.points.length)
    ? `Grey: ${prom.address}, last 15 minutes. Dots: the measurements in the rollout's status.`
    : `Prometheus not charted: ${prom.error || (prom.metrics.find((p) => p.error) || {}).error || "no data in the last 15 minutes"}. Dots: the measurements in the rollout's status.`;
  return [note ? el("p", { class: "sub", id: "prometheus-note" }, note) : null,
    el("div", { class: "charts" }, data.metrics.map((m) => el("figure", { class: "chart", "data-metric": m.name },
    el("figcaption", {}, `${m.name} `, badge(m.phase || "pending", "verdict"),
      el("div", { class: "sub" }, `last ${fmt(m.value)} · range ${m.range}` +
        (m.samples !== null && m.samples !== undefined ? ` · ${Math.round(m.samples)} requests` : "") +
        (m.lastError ? ` · ${m.lastError}` : ""))),
    seriesChart(m, 316, 150, (series(m.name) || {}).points || []))))];
}

function rolloutPage(ns, name) {
  document.title = `${name} · ramp`;
  const message = el("div", { id: "action-message", class: "message", "aria-live": "polite", tabindex: "-1" });
  const actionsBar = el("div", { id: "actions", class: "actions", role: "group", "aria-label": "Actions" });
  const parts = {
    head: el("div", { class: "head" }),
    summary: el("section", { class: "panel", "aria-labelledby": "h-summary" }),
    steps: el("section", { class: "panel", "aria-labelledby": "h-steps" }),
    traffic: el("section", { id: "traffic", class: "panel", "aria-labelledby": "h-traffic" }),
    metrics: el("section", { id: "metrics", class: "panel", "aria-labelledby": "h-metrics" }),
    objects: el("section", { id: "objects", class: "panel", "aria-labelledby": "h-objects" }),
    events: el("section", { id: "events", class: "panel", "aria-labelledby": "h-events" }),
  };
  main.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← All rollouts")),
    parts.head, actionsBar, message,
    el("div", { class: "grid" },
      el("div", {}, parts.steps, parts.summary),
      el("div", {}, parts.traffic, parts.metrics)),
    parts.objects, parts.events);
  let actionsKey = null;
  let countdown = null;
  let prom = null;        // the metrics from Prometheus, fetched on open and per new measurement
  let promKey = null;
  let lastData = null;
  const drawMetrics = () => parts.metrics.replaceChildren(el("h2", { id: "h-metrics" }, "Analysis"),
    ...metricsSection(lastData, prom));
  const tick = () => {
    const e = document.getElementById("countdown");
    if (!e || !countdown) return;
    const left = Math.max(0, countdown.remaining - Math.floor((Date.now() - countdown.at) / 1000));
    e.textContent = `${left}s left of ${countdown.duration}s`;
  };
  if (timer) clearInterval(timer);
  timer = setInterval(tick, 1000);
  listen(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/stream`, (data) => {
    if (!data) {
      parts.head.replaceChildren(el("h1", {}, name), el("span", { class: "empty" }, `not found in namespace ${ns}`));
      actionsBar.replaceChildren();
      actionsKey = null;
      return;
    }
    const r = data.rollout;
    parts.head.replaceChildren(el("h1", {}, r.name), el("span", { class: "ns" }, `namespace ${r.namespace}`),
      badge(r.phase, "phase"), r.paused ? el("span", { class: "badge" }, "paused") : "");
    const seen = { step: r.stepIndex, state: r.state, label: r.step, row: r };
    const key = JSON.stringify([data.actions, r.stepIndex, r.state]);
    if (key !== actionsKey) {
      actionsKey = key;
      actionsBar.replaceChildren(...data.actions.map((a) => el("button", {
        type: "button", id: `action-${a}`,
        class: a === "approve" ? "primary" : (a === "abort" || a === "undo" || a === "approve-force" ? "danger" : ""),
        onclick: () => runAction(r.namespace, r.name, a, seen, message),
      }, a === "approve" ? `${LABELS[a]} ${r.step}` : LABELS[a])));
      if (data.readOnly) actionsBar.append(el("span", { class: "sub" }, "read-only: actions are disabled"));
    }
    countdown = data.countdown ? { ...data.countdown, at: Date.now() } : null;
    parts.summary.replaceChildren(el("h2", { id: "h-summary" }, "Status"), facts([
      ["Where", data.position, "position"],
      ["Waiting for", data.waitingFor, "waiting-for"],
      ["Timer", data.countdown ? " " : null, "countdown"],
      ["Canary weight", r.weight, "weight"],
      ["Canary ready", r.ready, "ready"],
      ["Analysis", r.analysis, "analysis"],
      ["Message", r.message, "status-message"],
      ["Age", age(r.created)],
    ]), el("h3", {}, "Canary pods"),
    (data.canaryPods || []).length
      ? el("ul", { id: "canary-pods", class: "pods" }, data.canaryPods.map((p) => el("li", { class: p.ready ? "ready" : "not-ready" },
        el("span", { class: "mono" }, p.name), ` ${p.phase || "-"}${p.ready ? ", ready" : ", not ready"}`,
        p.reason ? el("span", { class: "sub" }, ` — ${p.reason}`) : null)))
      : el("p", { class: "empty", id: "canary-pods" }, "No canary pods."));
    tick();
    parts.steps.replaceChildren(el("h2", { id: "h-steps" }, "Steps"),
      el("ol", { class: "steps", id: "steps" }, data.steps.map((s) => el("li", {
        class: s.current ? "current" : (s.done ? "done" : ""), "aria-current": s.current ? "step" : null,
      }, `${s.n}. ${s.text}`, el("span", { class: "sub" }, ` · canary ${s.weight}`),
        s.current && data.waitingFor ? el("span", { class: "wait" }, data.waitingFor) : null))));
    parts.traffic.replaceChildren(el("h2", { id: "h-traffic" }, "Traffic now"), ...trafficSection(data));
    lastData = data;
    drawMetrics();
    const measuredKey = JSON.stringify(data.metrics.map((m) => [m.name, m.history.length ? m.history[m.history.length - 1].t : 0]));
    if (data.metrics.length && measuredKey !== promKey) {
      promKey = measuredKey;
      fetch(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/prometheus`)
        .then((r) => r.json()).then((p) => { prom = p; if (lastData) drawMetrics(); }).catch(() => {});
    }
    parts.objects.replaceChildren(el("h2", { id: "h-objects" }, "Objects"), ...objectsSection(data));
    parts.events.replaceChildren(el("h2", { id: "h-events" }, "Events"),
      data.events.length ? el("table", { id: "event-rows" },
        el("thead", {}, el("tr", {}, ["Time", "Type", "Reason", "Message", "Count"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, [...data.events].reverse().map((e) => el("tr", { class: e.type === "Warning" ? "warn" : "" },
          el("td", {}, e.time ? new Date(e.time).toLocaleTimeString() : "-"), el("td", {}, e.type),
          el("td", {}, e.reason), el("td", {}, e.message), el("td", {}, e.count)))))
        : el("p", { class: "empty" }, "No events."));
  });
}

// ----- routing --------------------------------------------------------------

function route() {
  if (timer) { clearInterval(timer); timer = null; }
  const m = location.hash.match(/^#\/rollouts\/([^/]+)\/([^/]+)$/);
  if (m) rolloutPage(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
  else listPage();
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
