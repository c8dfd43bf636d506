// The public open-data page: no login, only the /open/v1 API. Map and charts of today's and the last
// seven days' traffic by road, how to use the API, API usage, licence and downloads (from the catalogue).
import { TABLE } from "./public-i18n.js";

const LANG_KEY = "citywatch.public.lang";
let lang = localStorage.getItem(LANG_KEY) || (navigator.language || "vi").slice(0, 2);
if (!TABLE[lang]) lang = "vi";
let state = null;
const charts = {};

function t(key, vars = {}) {
  const s = (TABLE[lang] && TABLE[lang][key]) || TABLE.en[key] || key;
  return s.replace(/\{(\w+)\}/g, (_m, k) => String(vars[k] ?? ""));
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(`${res.status} ${detail}`);
  }
  return { body: await res.json(), next: nextLink(res.headers.get("Link")) };
}

function nextLink(link) {
  const m = link && link.match(/<([^>]+)>;\s*rel="next"/);
  return m ? m[1] : null;
}

/** Every entity of a paged NGSI-LD answer. */
async function allEntities(url) {
  const out = [];
  let next = url;
  while (next) {
    const page = await getJson(next);
    out.push(...page.body);
    next = page.next;
  }
  return out;
}

function addDays(iso, n) {
  const d = new Date(`${iso}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function fmtNumber(n) { return new Intl.NumberFormat(lang === "vi" ? "vi-VN" : "en-GB").format(n); }

function localHour(iso, tz) {
  return Number(new Intl.DateTimeFormat("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: tz }).format(new Date(iso)));
}

function localDay(iso, tz) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz }).format(new Date(iso));
}

async function load() {
  const status = document.getElementById("status");
  status.textContent = t("loading");
  const about = (await getJson("/open/v1/about")).body;
  const cameras = (await getJson("/open/v1/cameras.geojson")).body;
  const weekStart = addDays(about.today, -7);
  const [today, week] = about.publish_counts
    ? await Promise.all([
      allEntities(`/open/v1/flow?bin=1h&date=${about.today}&options=keyValues&limit=5000`),
      allEntities(`/open/v1/flow?bin=1d&date=${weekStart}&days=7&options=keyValues&limit=5000`),
    ])
    : [[], []];
  const catalog = (await getJson("/open/v1/catalog")).body;
  const usage = (await getJson("/open/v1/usage")).body;
  state = { about, cameras, today, week, weekStart, catalog, usage };
  status.textContent = today.length || week.length ? "" : t("no_data");
}

function byCamera(entities) {
  const out = new Map();
  for (const e of entities) out.set(e.cameraId, (out.get(e.cameraId) || 0) + e.intensity);
  return out;
}

let map = null;
function renderMap() {
  const { about, cameras, today } = state;
  if (!map) {
    map = L.map("map").setView([about.center.lat, about.center.lon], about.zoom);
    if (about.tile_url) L.tileLayer(about.tile_url, { maxZoom: 19, attribution: "© OpenStreetMap" }).addTo(map);
  }
  map.eachLayer((layer) => { if (layer instanceof L.CircleMarker) map.removeLayer(layer); });
  const totals = byCamera(today);
  const max = Math.max(1, ...totals.values());
  for (const f of cameras.features) {
    const [lon, lat] = f.geometry.coordinates;
    const n = totals.get(f.id) || 0;
    L.circleMarker([lat, lon], { radius: 6 + 14 * Math.sqrt(n / max), color: "#12355b", weight: 2, fillOpacity: 0.6, className: "road-marker" })
      .bindTooltip(`${f.properties.name}: ${fmtNumber(n)} ${t("vehicles")}`)
      .addTo(map);
  }
}

function renderRoads() {
  const { cameras, today, week } = state;
  const tdy = byCamera(today), wk = byCamera(week);
  const sample = new Set([...today, ...week].filter((e) => e.sample).map((e) => e.cameraId));
  const body = document.querySelector("#roads tbody");
  body.replaceChildren(...cameras.features.map((f) => el("tr", { "data-camera": f.id },
    el("td", {}, f.properties.name, ...(sample.has(f.id) ? [" ", el("span", { class: "sample-tag" }, `(${t("sample")})`)] : [])),
    el("td", { class: "num" }, fmtNumber(tdy.get(f.id) || 0)),
    el("td", { class: "num" }, fmtNumber(wk.get(f.id) || 0)))));
  document.getElementById("sample-banner").hidden = sample.size === 0;
}

function renderCharts() {
  const { about, cameras, today, week, weekStart } = state;
  const tz = about.timezone;
  const names = new Map(cameras.features.map((f) => [f.id, f.properties.name]));
  const hours = [...Array(24).keys()];
  const days = [...Array(7).keys()].map((i) => addDays(weekStart, i));
  const series = (entities, keys, keyOf) => [...names.keys()].map((cam) => {
    const data = keys.map(() => 0);
    for (const e of entities) {
      if (e.cameraId !== cam) continue;
      const i = keys.indexOf(keyOf(e.dateObservedFrom));
      if (i >= 0) data[i] += e.intensity;
    }
    return { label: names.get(cam), data };
  });
  const draw = (id, type, labels, datasets) => {
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart(document.getElementById(id), {
      type, data: { labels, datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  };
  draw("c-today", "bar", hours.map((h) => `${h}h`), series(today, hours, (iso) => localHour(iso, tz)));
  draw("c-week", "bar", days, series(week, days, (iso) => localDay(iso, tz)));
}

function renderApi() {
  const { about, usage } = state;
  const base = location.origin;
  const examples = [
    ["api_flow_hour", `/open/v1/flow?bin=1h&date=${about.today}`],
    ["api_flow_kv", `/open/v1/flow?bin=1h&date=${about.today}&options=keyValues`],
    ["api_flow_csv", `/open/v1/flow?bin=1d&date=${addDays(about.today, -7)}&days=7&format=csv`],
    ["api_cameras", "/open/v1/cameras.geojson"],
    ["api_catalog", "/open/v1/catalog"],
  ];
  document.getElementById("api-list").replaceChildren(...examples.map(([key, path]) =>
    el("li", {}, `${t(key)}: `, el("a", { href: path }, el("code", {}, base + path)))));
  const delay = about.delay_s >= 3600 ? t("hours", { n: about.delay_s / 3600 }) : t("minutes", { n: Math.round(about.delay_s / 60) });
  document.getElementById("privacy").textContent = t("privacy", { delay, k: about.k });
  document.querySelector("#usage tbody").replaceChildren(...usage.map((u) =>
    el("tr", {}, el("td", {}, u.day), el("td", {}, u.dataset), el("td", { class: "num" }, fmtNumber(u.requests)))));
}

function renderDownloads() {
  const { about, catalog } = state;
  const rows = new Map();
  for (const ds of catalog["dcat:dataset"]) {
    for (const d of ds["dcat:distribution"]) {
      const url = d["dcat:downloadURL"] && d["dcat:downloadURL"]["@id"];
      const m = url && url.match(/\/dumps\/([a-z-]+)\/(\d{4}-\d{2}-\d{2})\.(csv|parquet)$/);
      if (!m) continue;
      const key = `${m[1]} ${m[2]}`;
      if (!rows.has(key)) rows.set(key, { dataset: m[1], day: m[2] });
      rows.get(key)[m[3]] = new URL(url).pathname;
    }
  }
  const sorted = [...rows.values()].sort((a, b) => (b.day + b.dataset).localeCompare(a.day + a.dataset)).slice(0, 28);
  const link = (href, label) => (href ? el("a", { href, download: "" }, label) : "");
  document.querySelector("#dumps tbody").replaceChildren(...sorted.map((r) => el("tr", {},
    el("td", {}, r.dataset), el("td", {}, r.day), el("td", {}, link(r.csv, "CSV")), el("td", {}, link(r.parquet, "Parquet")))));
  const lic = document.getElementById("licence-link");
  lic.href = about.licence_url;
  lic.textContent = about.licence;
  document.getElementById("publisher").textContent = about.publisher.name;
  document.getElementById("site-name").textContent = about.name;
}

function applyStatic() {
  document.documentElement.lang = lang;
  document.getElementById("lang").value = lang;
  for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll("[data-i18n-aria]")) e.setAttribute("aria-label", t(e.dataset.i18nAria));
  document.title = `${t("title")} – ${state ? state.about.name : "citywatch"}`;
}

function render() {
  applyStatic();
  if (!state) return;
  renderMap();
  renderRoads();
  renderCharts();
  renderApi();
  renderDownloads();
  document.body.dataset.ready = "1";
}

document.getElementById("lang").addEventListener("change", (ev) => {
  lang = ev.target.value;
  localStorage.setItem(LANG_KEY, lang);
  render();
});

applyStatic();
load().then(render).catch((err) => {
  document.getElementById("status").textContent = t("error", { detail: err.message });
  document.body.dataset.ready = "error";
});
