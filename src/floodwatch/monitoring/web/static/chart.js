// History chart in plain SVG: flooded and permanent-water km² against date, the alert threshold, clickable points.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(parent, tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  parent.appendChild(el);
  return el;
}

// 1, 2 or 5 times a power of ten, so that about `n` ticks cover [0, max]
function niceStep(max, n) {
  const raw = max / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// records: oldest first, each {acquired, flooded_km2, permanent_water_km2}; onPick(index) when a point is clicked
function drawHistoryChart(svg, records, { threshold = null, current = -1, onPick = null } = {}) {
  svg.innerHTML = "";
  const W = 360, H = 210, m = { l: 46, r: 12, t: 12, b: 42 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  if (!records.length) {
    svgEl(svg, "text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no acquisition recorded");
    return;
  }
  const times = records.map((r) => Date.parse(r.acquired));
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 === t0) { t0 -= 86400e3; t1 += 86400e3; }  // one date: a two-day window centred on it
  const values = records.flatMap((r) => [r.flooded_km2, r.permanent_water_km2]).filter((v) => v !== null);
  const top = Math.max(...values, threshold || 0, 1e-6) * 1.1;
  const step = niceStep(top, 4), ymax = Math.ceil(top / step) * step;
  const x = (t) => m.l + (pw * (t - t0)) / (t1 - t0);
  const y = (v) => m.t + ph - (ph * v) / ymax;

  const axes = svgEl(svg, "g", { class: "axes" });
  for (let v = 0; v <= ymax + step / 2; v += step) {
    svgEl(axes, "line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "grid" });
    svgEl(axes, "text", { x: m.l - 4, y: y(v) + 3, "text-anchor": "end", class: "tick y" },
          v >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());
  }
  const nx = Math.min(4, records.length);
  for (let k = 0; k < nx; k++) {
    const t = nx === 1 ? (t0 + t1) / 2 : t0 + ((t1 - t0) * k) / (nx - 1);
    svgEl(axes, "line", { x1: x(t), x2: x(t), y1: m.t + ph, y2: m.t + ph + 4, class: "tickmark" });
    svgEl(axes, "text", { x: x(t), y: m.t + ph + 15, "text-anchor": k === 0 ? "start" : k === nx - 1 ? "end" : "middle",
                          class: "tick x" }, new Date(t).toISOString().slice(0, 10));
  }
  svgEl(axes, "line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, class: "axis" });
  svgEl(axes, "line", { x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph, class: "axis" });
  svgEl(axes, "text", { x: m.l + pw / 2, y: H - 6, "text-anchor": "middle", class: "axis-label x" },
        "acquisition date (UTC)");
  svgEl(axes, "text", { x: 12, y: m.t + ph / 2, "text-anchor": "middle", class: "axis-label y",
                        transform: `rotate(-90 12 ${m.t + ph / 2})` }, "area (km²)");

  if (threshold !== null && threshold !== undefined) {
    svgEl(svg, "line", { x1: m.l, x2: W - m.r, y1: y(threshold), y2: y(threshold), class: "threshold" });
    svgEl(svg, "text", { x: W - m.r - 2, y: y(threshold) - 3, "text-anchor": "end", class: "threshold-label" },
          `alert ≥ ${threshold} km²`);
  }
  // a change record's flooded_km2 is new water since the image before, not the flood's extent: its own series,
  // never one line zig-zagging between the two kinds
  const series = [["permanent_water_km2", "permanent", "map", "permanent water"], ["flooded_km2", "flooded", "map", "flooded"],
                  ["flooded_km2", "new", "change", "new water (change)"]];
  for (const [key, cls, kind, what] of series) {
    const pts = records.map((r, k) => [k, (r.kind || "map") === kind ? r[key] : null]).filter(([, v]) => v !== null && v !== undefined);
    if (!pts.length) continue;
    svgEl(svg, "polyline", { class: `series ${cls}`, points: pts.map(([k, v]) => `${x(times[k])},${y(v)}`).join(" ") });
    for (const [k, v] of pts) {
      const c = svgEl(svg, "circle", { cx: x(times[k]), cy: y(v), r: k === current ? 5 : 3.2,
                                       class: `dot ${cls}${k === current ? " current" : ""}`, "data-index": k });
      svgEl(c, "title", {}, `${records[k].acquired}: ${v.toFixed(3)} km² ${what}`);
      if (onPick) c.addEventListener("click", () => onPick(k));
    }
  }
}
