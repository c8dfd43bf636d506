// Live map: camera markers (status + live counts) and open incidents over the live WebSocket.
//
// Updates are coalesced: WebSocket messages only record the newest state per camera (and the newest
// incident list), and a render runs at most every RENDER_MS inside requestAnimationFrame, updating the
// existing markers' DOM in place (no marker is recreated). With 1,000 count updates a second the page
// renders four times a second whatever the message rate.
import { ApiError, getBlob, getJson } from "./api.js";
import { h, fill, dl, toast } from "./dom.js";
import { className, directionName, fmtDateTime, fmtNumber, onLangChange, qualityName, stateName, t, typeName, workflowName } from "./i18n.js";
import { renderIncident, shownKey } from "./incident.js";
import { beep } from "./sound.js";

const RENDER_MS = 250;
const FRAME_MS = 2000;
const CLOSED = new Set(["resolved", "false_alarm"]);
const WF_COLOURS = { new: ["#b03a2e", "#e74c3c"], acknowledged: ["#9a5b00", "#f39c12"], assigned: ["#5b2c6f", "#8e44ad"] };

function countTotal(c) {
  const counts = c.last_counts && c.last_counts.counts;
  if (!counts) return null;
  let n = 0;
  for (const v of Object.values(counts)) n += v;
  return n;
}

export function createMapView(root, { site, user, subscribe }) {
  const map = L.map(root.querySelector("#map"), { zoomControl: true, preferCanvas: false });
  map.setView([site.center.lat, site.center.lon], site.zoom);
  // Incidents above the camera markers (marker pane: 600), so one at a camera is never hidden by it.
  map.createPane("incidents").style.zIndex = "650";
  // Tiles are optional: with none configured or reachable the plain background still shows everything.
  if (site.tile_url) L.tileLayer(site.tile_url, { maxZoom: 19, attribution: "© OpenStreetMap" }).addTo(map);

  const cameras = new Map();   // camera_id -> {data, marker, el, dot, badge, li, liState, liCount, shown:{}}
  const incidents = new Map(); // incident_id -> {data, marker, li}
  const workflow = new Map();  // incident_id -> workflow item from "incident" messages (newer than lists)
  const pendingCams = new Map();
  let pendingIncidents = null; // newest full list of open incidents, or null
  let pendingAnnounce = false;
  let scheduled = false;
  let lastRender = 0;
  let detail = null;           // {kind, id, timer, url}
  const detailBox = root.querySelector("#map-detail");
  const stats = { messages: 0, cameraUpdates: 0, renders: 0, renderMs: 0, maxRenderMs: 0 };
  window.citywatchMapStats = stats; // read by bench/map_latency.py

  // --- cameras -------------------------------------------------------------------------------
  function createCamera(c) {
    const icon = L.divIcon({ className: "cam-icon", html: "", iconSize: [22, 22], iconAnchor: [11, 11] });
    const marker = L.marker([c.location.lat, c.location.lon], { icon, title: c.name, alt: c.name, keyboard: true }).addTo(map);
    const el = marker.getElement();
    const dot = h("span", { class: "cam-dot" });
    const badge = h("span", { class: "cam-count" });
    el.append(dot, badge);
    el.dataset.camera = c.camera_id;
    marker.on("click", () => openCamera(c.camera_id));
    const liState = h("small");
    const liCount = h("span", { class: "li-count" });
    const liDot = h("span", { class: "dot" });
    const li = h("li", { tabindex: "0", role: "button", dataset: { camera: c.camera_id } },
      liDot, h("span", { class: "name" }, c.name), " ", liState, " ", liCount);
    const open = () => { map.setView(marker.getLatLng(), Math.max(map.getZoom(), 16)); openCamera(c.camera_id); };
    li.addEventListener("click", open);
    li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
    const entry = { data: { state: "unknown", ...c }, marker, el, dot, badge, li, liDot, liState, liCount, shown: {} };
    cameras.set(c.camera_id, entry);
    root.querySelector("#camera-list").append(li);
    return entry;
  }

  function paintCamera(entry, force = false) {
    const d = entry.data;
    const state = d.state || "unknown";
    const total = countTotal(d);
    if (force || entry.shown.state !== state) {
      entry.el.dataset.state = state;
      entry.liDot.className = `dot ${state}`;
      entry.liState.textContent = stateName(state);
      entry.shown.state = state;
    }
    if (force || entry.shown.total !== total) {
      const text = total == null ? "" : fmtNumber(total);
      entry.badge.textContent = text;
      entry.badge.hidden = total == null;
      entry.liCount.textContent = text;
      entry.shown.total = total;
    }
    if (force || entry.shown.label !== `${state}|${total}`) {
      const label = `${d.name}: ${stateName(state)}${total == null ? "" : ` · ${fmtNumber(total)}`}`;
      entry.el.setAttribute("aria-label", label);
      entry.el.title = label;
      entry.shown.label = `${state}|${total}`;
    }
  }

  function updateCamera(c) {
    const entry = cameras.get(c.camera_id) || createCamera(c);
    Object.assign(entry.data, c);
    paintCamera(entry);
    if (detail && detail.kind === "camera" && detail.id === c.camera_id) renderCameraFacts();
  }

  // --- incidents -----------------------------------------------------------------------------
  function incidentItem(i) {
    const w = workflow.get(i.incident_id);
    return w ? { ...i, ...w } : i;
  }

  function setIncidents(list, announce) {
    const seen = new Set();
    let added = false;
    for (const raw of list) {
      const i = incidentItem(raw);
      if (CLOSED.has(i.workflow_state)) continue;
      seen.add(i.incident_id);
      const existing = incidents.get(i.incident_id);
      if (existing) {
        existing.data = i;
        paintIncident(existing);
        continue;
      }
      const cam = cameras.get(i.camera_id);
      const lat = i.latitude ?? cam?.data.location.lat;
      const lon = i.longitude ?? cam?.data.location.lon;
      if (lat == null || lon == null) continue;
      const marker = L.circleMarker([lat, lon], { pane: "incidents", radius: 10, weight: 2, fillOpacity: 0.85, className: "incident-marker" }).addTo(map);
      const el = marker.getElement();
      el.dataset.incident = i.incident_id;
      el.setAttribute("role", "button");
      el.setAttribute("tabindex", "0");
      marker.on("click", () => openIncident(i.incident_id));
      el.addEventListener("keydown", (e) => { if (e.key === "Enter") openIncident(i.incident_id); });
      const entry = { data: i, marker, el };
      incidents.set(i.incident_id, entry);
      paintIncident(entry);
      added = true;
    }
    for (const [id, entry] of incidents) {
      if (!seen.has(id)) { entry.marker.remove(); incidents.delete(id); }
    }
    if (added && announce) beep();
    renderIncidentList();
  }

  function paintIncident(entry) {
    const i = entry.data;
    const wf = i.workflow_state || "new";
    if (entry.wf !== wf) {
      const [color, fillColor] = WF_COLOURS[wf] || WF_COLOURS.new;
      entry.marker.setStyle({ color, fillColor });
      entry.el.dataset.workflow = wf;
      entry.wf = wf;
    }
    entry.el.setAttribute("aria-label", `${typeName(i.type)} · ${i.camera_id} · ${workflowName(wf)}`);
  }

  function renderIncidentList() {
    const list = [...incidents.values()].map((e) => e.data)
      .sort((a, b) => String(b.started_at).localeCompare(String(a.started_at)));
    root.querySelector("#incident-count").textContent = fmtNumber(list.length);
    const items = list.map((i) => {
      const wf = i.workflow_state || "new";
      const li = h("li", { class: `sev-${i.severity}`, tabindex: "0", role: "button", dataset: { incident: i.incident_id, workflow: wf } },
        h("span", { class: "type" }, typeName(i.type)), ` · ${cameras.get(i.camera_id)?.data.name || i.camera_id} · `,
        h("time", { datetime: i.started_at }, fmtDateTime(i.started_at)), " ",
        h("span", { class: `wf wf-${wf}` }, workflowName(wf)));
      const open = () => { const m = incidents.get(i.incident_id); if (m) map.setView(m.marker.getLatLng(), Math.max(map.getZoom(), 16)); openIncident(i.incident_id); };
      li.addEventListener("click", open);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      return li;
    });
    fill(root.querySelector("#incident-list"), items);
  }

  // --- the coalescing render loop ------------------------------------------------------------
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    const wait = Math.max(0, lastRender + RENDER_MS - performance.now());
    setTimeout(() => requestAnimationFrame(render), wait);
  }

  function render() {
    scheduled = false;
    const t0 = performance.now();
    lastRender = t0;
    if (pendingCams.size) {
      for (const c of pendingCams.values()) updateCamera(c);
      stats.cameraUpdates += pendingCams.size;
      pendingCams.clear();
    }
    if (pendingIncidents) {
      const list = pendingIncidents;
      pendingIncidents = null;
      setIncidents(list, pendingAnnounce);
      pendingAnnounce = false;
    }
    const ms = performance.now() - t0;
    stats.renders += 1;
    stats.renderMs += ms;
    stats.maxRenderMs = Math.max(stats.maxRenderMs, ms);
  }

  function onMessage(msg) {
    stats.messages += 1;
    if (msg.type === "snapshot" || msg.type === "change") {
      for (const c of msg.cameras || []) {
        const prev = pendingCams.get(c.camera_id);
        pendingCams.set(c.camera_id, prev ? Object.assign(prev, c) : c);
      }
      if (msg.incidents) {
        pendingIncidents = msg.incidents;
        pendingAnnounce = pendingAnnounce || msg.type === "change";
      }
      schedule();
    } else if (msg.type === "incident" && msg.incident) {
      const i = msg.incident;
      workflow.set(i.incident_id, i);
      const entry = incidents.get(i.incident_id);
      // Re-run the list through the reconciler so closed workflows leave the map.
      pendingIncidents = pendingIncidents || [...incidents.values()].map((e) => e.data);
      if (!entry && !CLOSED.has(i.workflow_state) && i.state === "open") pendingIncidents = [...pendingIncidents, i];
      schedule();
      const shown = detailBox.dataset.shown;
      if (detail && detail.kind === "incident" && detail.id === i.incident_id && shown !== shownKey({ ...entry?.data, ...i })) openIncident(i.incident_id, true);
    } else if (msg.type === "alert" && msg.alert) {
      beep();
      toast(t("new_alert", { summary: msg.alert.summary || typeName(msg.alert.type) }), "alert");
    }
  }

  // --- detail panel: camera ------------------------------------------------------------------
  function closeDetail() {
    if (detail) {
      clearInterval(detail.timer);
      clearInterval(detail.hourTimer);
      if (detail.url) URL.revokeObjectURL(detail.url);
      detail.aborted = true;
    }
    detail = null;
    delete detailBox.dataset.shown;
    detailBox.hidden = true;
    detailBox.replaceChildren();
  }

  function detailHeader(title) {
    return h("div", { class: "detail-head" }, h("h2", null, title),
      h("button", { type: "button", class: "close", "aria-label": t("close"), title: t("close"), onclick: closeDetail }, "×"));
  }

  function renderCameraFacts() {
    const entry = cameras.get(detail.id);
    const box = detailBox.querySelector(".cam-facts");
    if (!entry || !box) return;
    const d = entry.data;
    const counts = d.last_counts?.counts || {};
    const rows = Object.entries(counts).map(([k, v]) => {
      const [line, dir, cls] = k.split("/");
      return h("tr", null, h("td", null, line), h("td", null, directionName(dir)), h("td", null, className(cls)), h("td", { class: "num" }, fmtNumber(v)));
    });
    fill(box,
      dl([[t("state"), h("span", null, h("span", { class: `dot ${d.state}` }), stateName(d.state), d.state_reason ? ` (${d.state_reason})` : "")],
        [t("health"), d.state_health]]),
      d.last_counts ? h("div", null, h("h3", null, `${t("last_bin")}: ${fmtDateTime(d.last_counts.bin_start)}`),
        rows.length ? h("table", { class: "mini" }, h("tbody", null, rows)) : h("p", null, t("no_data"))) : null);
  }

  async function refreshFrame(cameraId, token) {
    const img = detailBox.querySelector("img.frame");
    const note = detailBox.querySelector(".frame-note");
    if (!img) return;
    try {
      const blob = await getBlob(`/api/v1/cameras/${encodeURIComponent(cameraId)}/frame.jpg`);
      if (token.aborted) return;
      const url = URL.createObjectURL(blob);
      if (token.url) URL.revokeObjectURL(token.url);
      token.url = url;
      img.src = url;
      img.hidden = false;
      note.textContent = "";
    } catch (e) {
      if (token.aborted) return;
      img.hidden = true;
      note.textContent = t("frame_unavailable", { detail: e instanceof ApiError ? e.detail : e.message });
      // No frame source configured: asking again every 2 s would not change that.
      if (e instanceof ApiError && e.status === 404) clearInterval(token.timer);
    }
  }

  async function loadLastHour(cameraId, token) {
    const box = detailBox.querySelector(".cam-hour");
    if (!box) return;
    const end = new Date();
    const start = new Date(end.getTime() - 3600_000);
    try {
      const body = await getJson("/api/v1/history/volume", {
        params: { start: start.toISOString(), end: end.toISOString(), bin: "15m", camera_id: cameraId, group_by: "cls" },
      });
      if (token.aborted) return;
      const byCls = new Map();
      const flagged = [];
      let total = 0;
      const seenBuckets = new Set();
      for (const r of body.rows) {
        if (r.cls) byCls.set(r.cls, (byCls.get(r.cls) || 0) + r.count);
        total += r.count;
        if (!seenBuckets.has(r.bucket)) {
          seenBuckets.add(r.bucket);
          if (r.quality !== "ok") flagged.push(`${fmtDateTime(r.bucket)}: ${qualityName(r.quality)}`);
        }
      }
      fill(box, h("h3", null, t("last_hour")),
        h("table", { class: "mini" }, h("tbody", null,
          [...byCls.entries()].sort((a, b) => b[1] - a[1]).map(([cls, n]) => h("tr", null, h("td", null, className(cls)), h("td", { class: "num" }, fmtNumber(n)))),
          h("tr", { class: "total" }, h("td", null, t("total")), h("td", { class: "num" }, fmtNumber(total))))),
        flagged.length ? h("ul", { class: "flags" }, flagged.map((f) => h("li", null, f))) : null);
    } catch (e) {
      if (!token.aborted) fill(box, h("p", { class: "error" }, t("error", { detail: e.detail || e.message })));
    }
  }

  function openCamera(cameraId) {
    closeDetail();
    const entry = cameras.get(cameraId);
    if (!entry) return;
    detail = { kind: "camera", id: cameraId };
    const token = detail;
    fill(detailBox, detailHeader(entry.data.name),
      h("div", { class: "cam-facts" }),
      h("h3", null, t("live_frame")),
      h("img", { class: "frame", alt: t("frame_alt", { name: entry.data.name }), hidden: true }),
      h("p", { class: "frame-note", "aria-live": "polite" }, t("loading")),
      h("div", { class: "cam-hour" }, t("loading")));
    detailBox.hidden = false;
    detailBox.dataset.camera = cameraId;
    delete detailBox.dataset.incident;
    renderCameraFacts();
    refreshFrame(cameraId, token);
    token.timer = setInterval(() => refreshFrame(cameraId, token), FRAME_MS);
    loadLastHour(cameraId, token);
    token.hourTimer = setInterval(() => loadLastHour(cameraId, token), 60_000);
  }

  // --- detail panel: incident ----------------------------------------------------------------
  function openIncident(incidentId, keepOpen = false) {
    if (!keepOpen) closeDetail();
    if (!detail) detail = { kind: "incident", id: incidentId };
    const fallback = incidents.get(incidentId)?.data;
    detailBox.hidden = false;
    detailBox.dataset.incident = incidentId;
    delete detailBox.dataset.camera;
    renderIncident(detailBox, incidentId, {
      user, site, fallback, onClose: closeDetail,
      onChange: (updated) => { workflow.set(updated.incident_id, updated); pendingIncidents = [...incidents.values()].map((e) => e.data); schedule(); },
    });
  }

  // --- lifecycle -----------------------------------------------------------------------------
  for (const c of site.cameras) updateCamera({ state: "unknown", ...c });
  const unsubscribe = subscribe(onMessage);
  const offLang = onLangChange(() => {
    for (const entry of cameras.values()) paintCamera(entry, true);
    for (const entry of incidents.values()) paintIncident(entry);
    renderIncidentList();
    if (detail?.kind === "camera") openCamera(detail.id);
    else if (detail?.kind === "incident") openIncident(detail.id, true);
  });

  return {
    show() { setTimeout(() => map.invalidateSize(), 0); },
    hide() { closeDetail(); },
    destroy() { closeDetail(); unsubscribe(); offLang(); map.remove(); },
  };
}
