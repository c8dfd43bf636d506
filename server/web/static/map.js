// citywatch operations map: cameras and open incidents, live over the server's WebSocket.
"use strict";

const I18N = {
  vi: { connecting: "đang kết nối", live: "trực tiếp", offline: "mất kết nối", cameras: "Camera",
        incidents: "Sự cố đang mở", sound: "Âm báo", state: "Trạng thái", counts: "Lưu lượng (phút gần nhất)",
        online: "trực tuyến", degraded: "suy giảm", offline_state: "ngoại tuyến", unknown: "chưa rõ",
        started: "Bắt đầu", snapshot: "Ảnh hiện trường",
        types: { stopped_vehicle: "Xe dừng", wrong_way: "Đi ngược chiều", congestion: "Ùn tắc",
                 intrusion: "Xâm nhập", loitering: "Lảng vảng", crowding: "Tụ tập đông người",
                 tampering: "Camera bị can thiệp" } },
  en: { connecting: "connecting", live: "live", offline: "disconnected", cameras: "Cameras",
        incidents: "Open incidents", sound: "Alert sound", state: "State", counts: "Counts (last bin)",
        online: "online", degraded: "degraded", offline_state: "offline", unknown: "unknown",
        started: "Started", snapshot: "Evidence",
        types: { stopped_vehicle: "Stopped vehicle", wrong_way: "Wrong-way driving", congestion: "Congestion",
                 intrusion: "Intrusion", loitering: "Loitering", crowding: "Crowding",
                 tampering: "Camera tampering" } },
};
let lang = localStorage.getItem("citywatch.lang") || "vi";
const t = (key) => I18N[lang][key] || key;
const stateName = (s) => t(s === "offline" ? "offline_state" : s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

const map = L.map("map", { zoomControl: true });
const cameraMarkers = new Map();   // camera_id -> { marker, data }
const incidentMarkers = new Map(); // incident_id -> marker
let site = null;

function fmtTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB",
    { dateStyle: "short", timeStyle: "medium", timeZone: site.timezone }).format(new Date(iso));
}

function countsTable(counts) {
  if (!counts || !counts.lines || !counts.lines.length) return "";
  const nf = new Intl.NumberFormat(lang === "vi" ? "vi-VN" : "en-GB");
  const rows = counts.lines.map((c) => `<tr><td>${esc(c.line_id)}</td><td>${esc(c.direction)}</td><td>${esc(c.cls)}</td><td>${nf.format(c.count)}</td></tr>`);
  return `<div>${t("counts")}</div><table>${rows.join("")}</table>`;
}

function cameraPopup(c) {
  return `<div class="popup"><b>${esc(c.name)}</b><br>${t("state")}: <span class="dot ${esc(c.state)}"></span>${esc(stateName(c.state))}` +
    (c.state_reason ? ` (${esc(c.state_reason)})` : "") + (c.state_health && c.state_health.length ? ` [${esc(c.state_health.join(", "))}]` : "") +
    countsTable(c.last_counts) + `</div>`;
}

function cameraIcon(state) {
  return L.divIcon({ className: "", html: `<span class="dot ${esc(state)}" style="width:16px;height:16px;border:2px solid #fff;box-shadow:0 0 2px #000"></span>`, iconSize: [20, 20] });
}

function upsertCamera(c) {
  let entry = cameraMarkers.get(c.camera_id);
  if (!entry) {
    const marker = L.marker([c.location.lat, c.location.lon], { title: c.name, icon: cameraIcon(c.state) }).addTo(map);
    marker.getElement()?.setAttribute("data-camera", c.camera_id);
    entry = { marker, data: c };
    cameraMarkers.set(c.camera_id, entry);
  }
  entry.data = Object.assign(entry.data, c);
  entry.marker.setIcon(cameraIcon(entry.data.state));
  entry.marker.getElement()?.setAttribute("data-camera", c.camera_id);
  entry.marker.getElement()?.setAttribute("data-state", entry.data.state);
  entry.marker.bindPopup(cameraPopup(entry.data));
  renderCameraList();
}

function renderCameraList() {
  const ul = document.getElementById("camera-list");
  ul.innerHTML = "";
  for (const { marker, data } of cameraMarkers.values()) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="dot ${esc(data.state)}"></span>${esc(data.name)} <small>${esc(stateName(data.state))}</small>`;
    li.onclick = () => { map.setView(marker.getLatLng(), 16); marker.openPopup(); };
    ul.appendChild(li);
  }
}

function incidentPopup(i) {
  const type = (I18N[lang].types[i.type]) || i.type;
  return `<div class="popup"><b class="sev-${esc(i.severity)}">${esc(type)}</b> · ${esc(i.camera_id)}<br>${esc(i.summary)}<br>` +
    `${t("started")}: ${esc(fmtTime(i.started_at))}` +
    (i.has_snapshot ? `<br>${t("snapshot")}:<img alt="snapshot" src="/api/v1/incidents/${encodeURIComponent(i.incident_id)}/snapshot">` : "") + `</div>`;
}

function beep() {
  if (!document.getElementById("sound").checked) return;
  const ctx = new (window.AudioContext || window.webkitAudioContext)();
  const osc = ctx.createOscillator(); osc.frequency.value = 880; osc.connect(ctx.destination);
  osc.start(); osc.stop(ctx.currentTime + 0.25);
}

function setIncidents(list, announce) {
  const seen = new Set();
  for (const i of list) {
    seen.add(i.incident_id);
    if (incidentMarkers.has(i.incident_id)) continue;
    const lat = i.latitude ?? cameraMarkers.get(i.camera_id)?.data.location.lat;
    const lon = i.longitude ?? cameraMarkers.get(i.camera_id)?.data.location.lon;
    if (lat == null || lon == null) continue;
    const m = L.circleMarker([lat, lon], { radius: 11, color: "#b03a2e", fillColor: "#e74c3c", fillOpacity: 0.8 }).addTo(map);
    m.bindPopup(incidentPopup(i));
    m.getElement()?.setAttribute("data-incident", i.incident_id);
    m.getElement()?.classList.add("incident-marker");
    incidentMarkers.set(i.incident_id, m);
    if (announce) beep();
  }
  for (const [id, m] of incidentMarkers) if (!seen.has(id)) { m.remove(); incidentMarkers.delete(id); }
  document.getElementById("incident-count").textContent = String(incidentMarkers.size);
  const ul = document.getElementById("incident-list");
  ul.innerHTML = "";
  for (const i of list) {
    const li = document.createElement("li");
    li.className = `sev-${i.severity}`;
    li.setAttribute("data-incident", i.incident_id);
    li.textContent = `${(I18N[lang].types[i.type]) || i.type} · ${i.camera_id} · ${fmtTime(i.started_at)}`;
    li.onclick = () => { const m = incidentMarkers.get(i.incident_id); if (m) { map.setView(m.getLatLng(), 16); m.openPopup(); } };
    ul.appendChild(li);
  }
  window.lastIncidents = list;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const { data } of cameraMarkers.values()) upsertCamera(data);
  if (window.lastIncidents) { for (const m of incidentMarkers.values()) m.remove(); incidentMarkers.clear(); setIncidents(window.lastIncidents, false); }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/live/ws`);
  const badge = document.getElementById("conn");
  ws.onopen = () => { badge.className = "conn on"; badge.dataset.i18n = "live"; badge.textContent = t("live"); };
  ws.onclose = () => { badge.className = "conn off"; badge.dataset.i18n = "offline"; badge.textContent = t("offline"); setTimeout(connect, 2000); };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    for (const c of msg.cameras || []) upsertCamera(c);
    if (msg.incidents) setIncidents(msg.incidents, msg.type === "change");
  };
}

async function start() {
  site = await (await fetch("/api/v1/site")).json();
  document.getElementById("site-name").textContent = `citywatch · ${site.name}`;
  document.title = `citywatch · ${site.name}`;
  map.setView([site.center.lat, site.center.lon], site.zoom);
  // Tiles are optional: with none reachable the plain background still shows cameras and incidents.
  if (site.tile_url) L.tileLayer(site.tile_url, { maxZoom: 19, attribution: "© OpenStreetMap" }).addTo(map);
  for (const c of site.cameras) upsertCamera(Object.assign({ state: "unknown" }, c));
  const sel = document.getElementById("lang");
  sel.value = lang;
  sel.onchange = () => { lang = sel.value; localStorage.setItem("citywatch.lang", lang); applyLanguage(); };
  applyLanguage();
  connect();
}

start();
