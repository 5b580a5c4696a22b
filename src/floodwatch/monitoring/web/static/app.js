// floodwatch monitor page: AOIs, the flood polygons of one acquisition per AOI, a time slider, alert log.
"use strict";
const state = { aois: null, current: null, records: [], layers: { latest: {} } };
const $ = (id) => document.getElementById(id);
const map = L.map("map", { zoomControl: true, attributionControl: false }).setView([0, 0], 2);

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

// Text from the database (scene ids, statuses) may come from a STAC catalog: never insert it as HTML.
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function fmt(x, digits = 3) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }

async function init() {
  const cfg = await getJSON("/api/config");
  if (cfg.tile_url) L.tileLayer(cfg.tile_url, { maxZoom: 19 }).addTo(map);
  state.aois = await getJSON("/api/aois");
  state.layers.aois = L.geoJSON(state.aois, {
    style: { color: "#222", weight: 2, fill: false, dashArray: "4 3", className: "aoi" },
    onEachFeature: (f, layer) => layer.on("click", () => selectAoi(f.properties.name)),
  }).addTo(map);
  const select = $("aoi-select");
  for (const f of state.aois.features) select.add(new Option(f.properties.name, f.properties.name));
  select.addEventListener("change", () => selectAoi(select.value));
  $("slider").addEventListener("input", () => showRecord(Number($("slider").value)));
  // every AOI's latest flood, drawn lighter; the selected AOI's is replaced by the slider's choice
  for (const f of state.aois.features.filter((x) => x.properties.records > 0)) {
    const fc = await getJSON(`/api/aois/${encodeURIComponent(f.properties.name)}/floods`);
    state.layers.latest[f.properties.name] = L.geoJSON(fc, {
      style: { color: "#1f6fd1", weight: 1, fillColor: "#2f8cff", fillOpacity: 0.3, className: "flood-latest" },
    });
  }
  if (state.aois.features.length) {
    map.fitBounds(state.layers.aois.getBounds(), { padding: [20, 20] });
    await selectAoi(state.aois.features[0].properties.name);
  } else {
    $("aoi-info").textContent = "No AOI yet: floodwatch aoi add NAME --geojson FILE";
  }
  await loadAlerts();
  document.body.dataset.ready = "1";
}

async function selectAoi(name) {
  state.current = name;
  $("aoi-select").value = name;
  for (const [n, layer] of Object.entries(state.layers.latest)) {
    if (n === name) map.removeLayer(layer); else layer.addTo(map);
  }
  const f = state.aois.features.find((x) => x.properties.name === name);
  const p = f.properties;
  $("aoi-info").textContent = `${fmt(p.area_km2, 2)} km² · ${p.records} acquisitions` +
    (p.threshold_km2 !== null ? ` · alert above ${p.threshold_km2} km²` : "") +
    (p.rise_percent !== null ? ` · alert on +${p.rise_percent}%` : "");
  const hist = await getJSON(`/api/aois/${encodeURIComponent(name)}/history`);
  state.records = hist.records;
  const slider = $("slider");
  slider.max = Math.max(0, state.records.length - 1);
  slider.disabled = state.records.length < 2;
  slider.value = slider.max;
  drawChart();
  await showRecord(Number(slider.value));
}

async function showRecord(i) {
  const rec = state.records[i];
  if (state.layers.flood) { map.removeLayer(state.layers.flood); state.layers.flood = null; }
  if (!rec) { $("time-label").textContent = "none recorded"; $("record-info").textContent = ""; return; }
  $("time-label").textContent = rec.acquired;
  const url = `/api/aois/${encodeURIComponent(state.current)}/floods?time=${encodeURIComponent(rec.acquired)}&kind=${rec.kind}`;
  const fc = await getJSON(url);
  if (Number($("slider").value) !== i) return;  // the user moved on while this was loading
  state.layers.flood = L.geoJSON(fc, {
    style: { color: "#1f6fd1", weight: 1, fillColor: "#2f8cff", fillOpacity: 0.6, className: "flood" },
  }).addTo(map);
  $("map").dataset.floodTime = rec.acquired;
  const ql = rec.quicklook_url ? ` · <a href="${esc(rec.quicklook_url)}" target="_blank">quicklook</a>` : "";
  $("record-info").innerHTML = `${esc(rec.kind)} ${esc(rec.scene_id)}: <b>${fmt(rec.flooded_km2)} km²</b> flooded, ` +
    `permanent water ${fmt(rec.permanent_water_km2)} km², coverage ${rec.coverage === null ? "–" :
    Math.round(100 * rec.coverage) + "%"}${ql}`;
  drawChart(i);
}

function drawChart(current) {
  const svg = $("chart"), recs = state.records;
  svg.innerHTML = "";
  if (!recs.length) return;
  const max = Math.max(...recs.map((r) => r.flooded_km2), 1e-9);
  const x = (k) => (recs.length === 1 ? 150 : 10 + (280 * k) / (recs.length - 1));
  const y = (v) => 80 - (70 * v) / max;
  const ns = "http://www.w3.org/2000/svg";
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("class", "line");
  line.setAttribute("points", recs.map((r, k) => `${x(k)},${y(r.flooded_km2)}`).join(" "));
  svg.appendChild(line);
  recs.forEach((r, k) => {
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", x(k)); c.setAttribute("cy", y(r.flooded_km2)); c.setAttribute("r", 3);
    c.setAttribute("class", k === current ? "dot current" : "dot");
    const t = document.createElementNS(ns, "title");
    t.textContent = `${r.acquired}: ${fmt(r.flooded_km2)} km²`;
    c.appendChild(t);
    svg.appendChild(c);
  });
}

async function loadAlerts() {
  const rows = await getJSON("/api/alerts?limit=100");
  const tbody = $("alerts").querySelector("tbody");
  tbody.innerHTML = "";
  for (const a of rows) {
    const tr = tbody.insertRow();
    const d = a.deliveries.map((x) => `<span class="${esc(x.status)}">${esc(x.status)} (${esc(x.attempts)})</span>`).join(" ");
    for (const v of [a.acquired, a.aoi, a.rule, fmt(a.message.flooded_km2, 2)]) tr.insertCell().textContent = v;
    tr.insertCell().innerHTML = d || "console only";
  }
}

init().catch((e) => { $("aoi-info").textContent = String(e); document.body.dataset.error = String(e); });
