// floodwatch monitor page: basemap (online XYZ or bundled Natural Earth outlines), one acquisition's rasters
// and flood polygons per AOI, its history chart, a swipe against a second date, downloads, the alert log.
// The URL carries ?aoi=&date=[&compare=] so that a link shows the same view.
"use strict";
const $ = (id) => document.getElementById(id);
const phone = window.matchMedia("(max-width: 700px)").matches;
const state = {
  cfg: null, aois: null, current: null, records: [], index: -1, compare: false, compareIndex: -1,
  details: new Map(), opacity: 0.8, outlines: null, latest: {},
};
const RASTERS = { sar: "SAR backdrop (VV)", probability: "Water probability", flood: "Flood mask" };
const Z = { sar: 1, probability: 2, flood: 3 };  // drawing order inside a raster pane

const map = L.map("map", { zoomControl: true }).setView([20, 0], 2);
map.attributionControl.setPrefix(false);
// panes, bottom to top: offline outlines < online basemap (tilePane 200) < rasters < polygons < AOI outlines
for (const [name, z] of [["fallback", 150], ["rasters", 350], ["compare", 355], ["polygons", 420],
                         ["comparePolygons", 425]]) {
  map.createPane(name).style.zIndex = z;
}
L.control.scale({ imperial: false, maxWidth: 140 }).addTo(map);
const groups = {
  sar: L.layerGroup(), probability: L.layerGroup(), flood: L.layerGroup(), polygons: L.layerGroup(),
  compare: L.layerGroup(),
};
const polygonRenderer = L.svg({ pane: "polygons" });
const comparePolygonRenderer = L.svg({ pane: "comparePolygons" });

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
const enc = encodeURIComponent;

async function setupBasemap(cfg, outlines) {
  // The Natural Earth outlines are always drawn, under any online basemap: when its tiles cannot be reached
  // (air-gapped, offline) the map still shows land, sea and borders.
  const ne = L.geoJSON(await outlines, {
    pane: "fallback", interactive: false, attribution: "Natural Earth (public domain)",
    style: (f) => (f.properties.kind === "land"
      ? { color: "#8d9aa6", weight: 0.8, fillColor: "#f2efe6", fillOpacity: 1, className: "basemap-land" }
      : { color: "#a7968e", weight: 0.8, dashArray: "3 3", fill: false, className: "basemap-border" }),
  }).addTo(map);
  $("map").dataset.basemap = "fallback";
  const bases = { "Outlines only (offline)": L.layerGroup() };
  if (cfg.basemap) {
    const online = L.tileLayer(cfg.basemap.url, { maxZoom: 19, attribution: cfg.basemap.attribution,
                                                  className: "basemap-tiles" });
    online.on("tileload", () => { $("map").dataset.basemap = "tiles"; });
    bases[/openstreetmap/i.test(cfg.basemap.url) ? "OpenStreetMap" : "Online basemap"] = online;
    online.addTo(map);
  } else {
    bases["Outlines only (offline)"].addTo(map);
  }
  return { bases, ne };
}

function legendControl() {
  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    div.id = "legend";
    // folded on a phone, where the map is small
    div.innerHTML = `<details${phone ? "" : " open"}><summary>Legend</summary>
      <div><span class="sw flood"></span>flood</div>
      <div><span class="sw permanent"></span>permanent water</div>
      <div><span class="sw polygon"></span>flood polygons</div>
      <div><span class="sw aoi"></span>area of interest</div>
      <div class="ramp-row">water probability<span class="ramp probability"></span><small>0</small><small>1</small></div>
      <div class="ramp-row">SAR VV<span class="ramp sar"></span><small>−25 dB</small><small>0 dB</small></div></details>`;
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  return legend;
}

async function init() {
  // independent requests go out together; the page waits only where one needs another's answer
  const aois = getJSON("/api/aois"), alerts = loadAlerts();
  state.cfg = await getJSON("/api/config");
  const { bases } = await setupBasemap(state.cfg, getJSON(state.cfg.fallback_basemap));
  state.aois = await aois;
  state.outlines = L.geoJSON(state.aois, {
    style: { color: "#1b1b1b", weight: 2, fill: false, dashArray: "5 4", className: "aoi" },
    onEachFeature: (f, layer) => layer.on("click", () => selectAoi(f.properties.name)),
  }).addTo(map);
  const overlays = {};
  for (const [k, label] of Object.entries(RASTERS)) overlays[label] = groups[k];
  overlays["Flood polygons"] = groups.polygons;
  overlays["AOI outlines"] = state.outlines;
  L.control.layers(bases, overlays, { collapsed: phone, position: "topright" }).addTo(map);
  for (const k of ["flood", "polygons", "compare"]) groups[k].addTo(map);
  legendControl().addTo(map);

  const select = $("aoi-select");
  for (const f of state.aois.features) select.add(new Option(f.properties.name, f.properties.name));
  select.addEventListener("change", () => selectAoi(select.value));
  $("slider").addEventListener("input", () => showRecord(Number($("slider").value)));
  $("opacity").addEventListener("input", () => setOpacity(Number($("opacity").value) / 100));
  $("compare-toggle").addEventListener("change", () => setCompare($("compare-toggle").checked));
  $("compare-select").addEventListener("change", () => {
    state.compareIndex = Number($("compare-select").value);
    if (state.compare) showCompare();
  });
  $("swipe").addEventListener("input", updateClip);
  dragSwipe();
  map.on("move zoom resize viewreset", updateClip);

  // every other AOI's latest flood, drawn lighter (fetched side by side, not one after another)
  const withRecords = state.aois.features.filter((x) => x.properties.records > 0);
  await Promise.all(withRecords.map(async (f) => {
    const fc = await getJSON(`/api/aois/${enc(f.properties.name)}/floods`);
    state.latest[f.properties.name] = L.geoJSON(fc, {
      style: { color: "#1f6fd1", weight: 1, fillColor: "#2f8cff", fillOpacity: 0.3, className: "flood-latest" },
    });
  }));
  const params = new URLSearchParams(location.search);
  const names = state.aois.features.map((f) => f.properties.name);
  if (names.length) {
    const want = names.includes(params.get("aoi")) ? params.get("aoi") : names[0];
    await selectAoi(want, params.get("date"), params.get("compare"));
  } else {
    $("aoi-info").textContent = "No AOI yet: floodwatch aoi add NAME --geojson FILE";
  }
  await alerts;
  document.body.dataset.ready = "1";
}

// the record at `iso`, else the last one before it, else -1
function recordAt(iso) {
  if (!iso) return -1;
  // compared as times: as text, a link's "2024-05-02" sorts before that day's "2024-05-02T10:00:00Z", and
  // "+02:00" offsets would not count; a date alone means the whole (UTC) day
  const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(iso) ? `${iso}T23:59:59.999Z` : iso);
  if (Number.isNaN(t)) return -1;
  let best = -1;
  state.records.forEach((r, k) => { if (Date.parse(r.acquired) <= t) best = k; });
  return best;
}

async function selectAoi(name, wantDate = null, wantCompare = null) {
  state.current = name;
  $("aoi-select").value = name;
  for (const [n, layer] of Object.entries(state.latest)) {
    if (n === name) map.removeLayer(layer); else layer.addTo(map);
  }
  const f = state.aois.features.find((x) => x.properties.name === name);
  const p = f.properties;
  $("aoi-info").textContent = `${fmt(p.area_km2, 2)} km² · ${p.records} acquisitions` +
    (p.threshold_km2 !== null ? ` · alert above ${p.threshold_km2} km²` : "") +
    (p.rise_percent !== null ? ` · alert on +${p.rise_percent}%` : "");
  const records = [];
  for (let url = `/api/aois/${enc(name)}/history?limit=500`; url;) {  // the API pages; follow `next`
    const page = await getJSON(url);
    records.push(...page.records);
    url = page.next;
  }
  state.records = records;
  $("key-new").hidden = !records.some((r) => r.kind === "change");
  $("csv-link").href = `/api/aois/${enc(name)}/history.csv`;
  const slider = $("slider");
  slider.max = Math.max(0, records.length - 1);
  slider.disabled = records.length < 2;
  const cmp = $("compare-select");
  cmp.innerHTML = "";
  records.forEach((r, k) => cmp.add(new Option(r.acquired.slice(0, 16).replace("T", " "), String(k))));
  $("compare-toggle").disabled = records.length < 2;
  const outline = state.outlines.getLayers().find((l) => l.feature.properties.name === name);
  if (outline) map.fitBounds(outline.getBounds(), { padding: [20, 20], maxZoom: 16 });
  const i = wantDate && recordAt(wantDate) >= 0 ? recordAt(wantDate) : records.length - 1;
  state.compareIndex = wantCompare && recordAt(wantCompare) >= 0 ? recordAt(wantCompare) : Math.max(0, i - 1);
  cmp.value = String(state.compareIndex);
  await showRecord(i);
  if (wantCompare && records.length > 1) { $("compare-toggle").checked = true; await setCompare(true); }
  else if (state.compare) await showCompare();
}

async function recordDetail(id) {
  if (!state.details.has(id)) state.details.set(id, await getJSON(`/api/records/${id}`));
  return state.details.get(id);
}

function rasterLayer(detail, name, pane) {
  const b = detail.bounds[name];  // [west, south, east, north]: tiles outside are never asked for
  const layer = L.tileLayer(detail.layers[name], {
    pane, maxZoom: 22, minZoom: detail.minzoom[name] || 0, opacity: state.opacity, zIndex: Z[name],
    className: `raster raster-${name}`,
    bounds: b ? L.latLngBounds([b[1], b[0]], [b[3], b[2]]) : undefined,
  });
  layer.on("tileload", () => {
    const key = `${pane}${name[0].toUpperCase()}${name.slice(1)}Tiles`;
    $("map").dataset[key] = String(Number($("map").dataset[key] || 0) + 1);
  });
  return layer;
}

async function showRecord(i) {
  state.index = i;
  $("slider").value = i;
  const rec = state.records[i];
  for (const k of ["sar", "probability", "flood", "polygons"]) groups[k].clearLayers();
  if (!rec) {
    $("time-label").textContent = "none recorded"; $("record-info").textContent = ""; $("downloads").innerHTML = "";
    drawChart();
    return;
  }
  $("time-label").textContent = rec.acquired;
  const [detail, fc] = await Promise.all([recordDetail(rec.id), getJSON(rec.downloads.geojson)]);
  if (state.index !== i) return;  // the user moved on while this was loading
  for (const name of Object.keys(RASTERS)) {
    if (detail.layers[name]) groups[name].addLayer(rasterLayer(detail, name, "rasters"));
  }
  groups.polygons.addLayer(L.geoJSON(fc, {
    renderer: polygonRenderer,
    style: { color: "#7a1010", weight: 1.2, fill: false, className: "flood" },
  }));
  $("map").dataset.floodTime = rec.acquired;
  const ql = rec.quicklook_url ? ` · <a href="${esc(rec.quicklook_url)}" target="_blank">quicklook</a>` : "";
  $("record-info").innerHTML = `${esc(rec.kind)} ${esc(rec.scene_id)}: <b>${fmt(rec.flooded_km2)} km²</b> flooded, ` +
    `permanent water ${fmt(rec.permanent_water_km2)} km², coverage ${rec.coverage === null ? "–" :
    Math.round(100 * rec.coverage) + "%"}${ql}`;
  const labels = { geojson: "flood polygons (GeoJSON)", flood_mask: "flood mask (COG)",
                   flood_probability: "probability (COG)", change_mask: "change mask (COG)",
                   change_score: "change score (COG)" };
  $("downloads").innerHTML = "Download: " + Object.entries(rec.downloads).filter(([k]) => labels[k])
    .map(([k, url]) => `<a href="${esc(url)}" download class="dl-${esc(k)}">${labels[k]}</a>`).join(" · ");
  drawChart();
  if (state.compare) await showCompare(); else updateUrl();
}

function drawChart() {
  const f = state.aois.features.find((x) => x.properties.name === state.current);
  drawHistoryChart($("chart"), state.records, {
    threshold: f ? f.properties.threshold_km2 : null, current: state.index,
    onPick: (k) => showRecord(k),
  });
}

function setOpacity(v) {
  state.opacity = v;
  for (const k of ["sar", "probability", "flood", "compare"]) groups[k].eachLayer((l) => l.setOpacity && l.setOpacity(v));
}

async function setCompare(on) {
  state.compare = on && state.records.length > 1;
  $("swipe-bar").hidden = !state.compare;
  $("swipe").disabled = !state.compare;
  document.body.classList.toggle("comparing", state.compare);
  if (state.compare) await showCompare();
  else { groups.compare.clearLayers(); updateClip(); updateUrl(); }
}

// Swipe: the compared date on the left of the divider, the shown date on the right.
async function showCompare() {
  groups.compare.clearLayers();
  const rec = state.records[state.compareIndex], cur = state.records[state.index];
  if (!rec || !cur) return;
  const [detail, fc] = await Promise.all([recordDetail(rec.id), getJSON(rec.downloads.geojson)]);
  for (const name of Object.keys(RASTERS)) {
    // the same raster layers as on the right (those switched on), for the other date
    if (detail.layers[name] && map.hasLayer(groups[name])) groups.compare.addLayer(rasterLayer(detail, name, "compare"));
  }
  groups.compare.addLayer(L.geoJSON(fc, {
    renderer: comparePolygonRenderer,
    style: { color: "#7a1010", weight: 1.2, fill: false, className: "flood-compare" },
  }));
  $("swipe-left-label").textContent = "◀ " + rec.acquired.slice(0, 16).replace("T", " ");
  $("swipe-right-label").textContent = cur.acquired.slice(0, 16).replace("T", " ") + " ▶";
  $("map").dataset.compareTime = rec.acquired;
  updateClip();
  updateUrl();
}

// the handle on the divider: drag it (mouse or touch) to move the divider; the panel's range input does the same
function dragSwipe() {
  const handle = $("swipe-handle");
  L.DomEvent.disableClickPropagation(handle);
  handle.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    handle.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const r = $("map").getBoundingClientRect();
      $("swipe").value = String(Math.min(100, Math.max(0, (100 * (ev.clientX - r.left)) / r.width)));
      updateClip();
    };
    const up = () => { handle.removeEventListener("pointermove", move); handle.removeEventListener("pointerup", up); };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
  });
}

function updateClip() {
  const panes = { left: ["compare", "comparePolygons"], right: ["rasters", "polygons"] };
  if (!state.compare) {
    for (const p of [...panes.left, ...panes.right]) map.getPane(p).style.clip = "";
    return;
  }
  const size = map.getSize(), dx = (size.x * Number($("swipe").value)) / 100;
  const nw = map.containerPointToLayerPoint([0, 0]), se = map.containerPointToLayerPoint(size);
  const cx = map.containerPointToLayerPoint([dx, 0]).x;
  const left = `rect(${nw.y}px, ${cx}px, ${se.y}px, ${nw.x}px)`;
  const right = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${cx}px)`;
  for (const p of panes.left) map.getPane(p).style.clip = left;
  for (const p of panes.right) map.getPane(p).style.clip = right;
  $("swipe-line").style.left = `${dx}px`;
  $("swipe-left-label").style.right = `${size.x - dx + 8}px`;  // each date's label beside the divider
  $("swipe-right-label").style.left = `${dx + 8}px`;
}

function updateUrl() {
  const p = new URLSearchParams();
  if (state.current) p.set("aoi", state.current);
  const rec = state.records[state.index];
  if (rec) p.set("date", rec.acquired);
  if (state.compare && state.records[state.compareIndex]) p.set("compare", state.records[state.compareIndex].acquired);
  history.replaceState(null, "", `${location.pathname}?${p}`);
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
