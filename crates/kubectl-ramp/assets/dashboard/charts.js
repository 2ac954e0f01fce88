// Inline SVG drawings: the traffic split of a routing rule and the analysis
// time series with its threshold. No library: a few SVG elements.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const COLORS = { stable: "#1d4ed8", canary: "#b45309", other: "#5b6470" };

// A horizontal bar split by backend share; a dashed band under it for a mirror.
export function splitBar(rule, width = 560) {
  const h = rule.mirror ? 52 : 30;
  const s = svg("svg", { width, height: h, viewBox: `0 0 ${width} ${h}`, role: "img", class: "split-bar" });
  const parts = rule.backends.map((b) => `${b.name} ${b.share}%`);
  if (rule.mirror) parts.push(`mirror ${rule.mirror.percent}% to ${rule.mirror.name}`);
  s.setAttribute("aria-label", parts.join(", "));
  const total = rule.backends.reduce((a, b) => a + b.share, 0) || 1;
  let x = 0;
  for (const b of rule.backends) {
    const w = (b.share / total) * width;
    if (w <= 0) continue;
    s.append(svg("rect", { x, y: 0, width: w, height: 26, fill: COLORS[b.role] || COLORS.other }));
    // A label only where it fits (about 7.5 px a character at 13 px); the
    // rule's text line says it anyway.
    const label = `${b.name} ${b.share}%`;
    const short = `${b.share}%`;
    const fits = (t) => t.length * 7.5 + 16 <= w;
    const text = fits(label) ? label : (fits(short) ? short : null);
    if (text) {
      s.append(svg("text", { x: x + 8, y: 18, fill: "#fff", "font-size": 13, "font-weight": 600 }, text));
    }
    x += w;
  }
  if (rule.mirror) {
    const w = Math.max(2, (rule.mirror.percent / 100) * width);
    s.append(svg("rect", { x: 0, y: 31, width: w, height: 18, fill: "none",
      stroke: COLORS[rule.mirror.role] || COLORS.other, "stroke-width": 2, "stroke-dasharray": "6 4" }));
    s.append(svg("text", { x: 6, y: 45, fill: "#1b1f24", "font-size": 12 },
      `copy of ${rule.mirror.percent}% → ${rule.mirror.name}`));
  }
  return s;
}

export function fmt(v) {
  if (v === null || v === undefined) return "-";
  return Math.abs(v) >= 100 ? v.toFixed(0) : String(Math.round(v * 1000) / 1000);
}

// A time series: values as a line, the threshold(s) as dashed red lines,
// NoData/Error measurements as hollow marks on the bottom axis.
export function seriesChart(metric, width = 316, height = 150, prom = []) {
  const pad = { l: 46, r: 10, t: 10, b: 22 };
  const pts = metric.history || [];
  const s = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const last = pts.length ? pts[pts.length - 1] : null;
  s.setAttribute("aria-label",
    `${metric.name}: ${pts.length} measurements, last ${last ? fmt(last.v) + " " + last.phase : "none"}, range ${metric.range}`);
  const vals = pts.filter((p) => p.v !== null && p.v !== undefined).map((p) => p.v)
    .concat(prom.map((p) => p.v));
  const bounds = [...vals];
  if (metric.min !== null && metric.min !== undefined) bounds.push(metric.min);
  if (metric.max !== null && metric.max !== undefined) bounds.push(metric.max);
  let lo = bounds.length ? Math.min(...bounds) : 0;
  let hi = bounds.length ? Math.max(...bounds) : 1;
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const span = hi - lo; lo -= span * 0.1; hi += span * 0.1;
  const times = pts.map((p) => p.t).concat(prom.map((p) => p.t));
  const t0 = times.length ? Math.min(...times) : 0;
  const t1 = times.length ? Math.max(...times) : 1;
  const tx = (t) => pad.l + (t1 === t0 ? (width - pad.l - pad.r) / 2 : ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r));
  const ty = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (height - pad.t - pad.b);
  s.append(svg("rect", { x: pad.l, y: pad.t, width: width - pad.l - pad.r, height: height - pad.t - pad.b,
    fill: "#fafbfc", stroke: "#cdd3db" }));
  s.append(svg("text", { x: pad.l - 4, y: pad.t + 10, "text-anchor": "end", "font-size": 11, fill: "#4a5360" }, fmt(hi)));
  s.append(svg("text", { x: pad.l - 4, y: height - pad.b, "text-anchor": "end", "font-size": 11, fill: "#4a5360" }, fmt(lo)));
  for (const [label, v] of [["min", metric.min], ["max", metric.max]]) {
    if (v === null || v === undefined) continue;
    const y = ty(v);
    s.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, stroke: "#b91c1c",
      "stroke-width": 1.5, "stroke-dasharray": "5 3", class: "threshold" }));
    s.append(svg("text", { x: width - pad.r - 2, y: y - 3, "text-anchor": "end", "font-size": 11, fill: "#b91c1c" },
      `${label} ${fmt(v)}`));
  }
  if (prom.length > 1) {
    s.append(svg("polyline", { points: prom.map((p) => `${tx(p.t)},${ty(p.v)}`).join(" "), fill: "none",
      stroke: "#6b7280", "stroke-width": 1.25, class: "prometheus" }));
  }
  const line = pts.filter((p) => p.v !== null && p.v !== undefined).map((p) => `${tx(p.t)},${ty(p.v)}`);
  if (line.length > 1) {
    s.append(svg("polyline", { points: line.join(" "), fill: "none", stroke: "#1d4ed8", "stroke-width": 2 }));
  }
  for (const p of pts) {
    if (p.v === null || p.v === undefined) {
      s.append(svg("circle", { cx: tx(p.t), cy: height - pad.b - 4, r: 3.5, fill: "#fff", stroke: "#92400e" }));
    } else {
      s.append(svg("circle", { cx: tx(p.t), cy: ty(p.v), r: 3.5,
        fill: p.phase === "Failed" ? "#b91c1c" : "#166534", class: "point" }));
    }
  }
  if (!pts.length && !prom.length) {
    s.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", "font-size": 12, fill: "#4a5360" },
      "no measurements yet"));
  }
  return s;
}
