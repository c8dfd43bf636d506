// Police console: the incident queue with filters, SLA timers, the selected incident's workflow and
// audit trail; refreshed live from the WebSocket.
import { ApiError, getJson } from "./api.js";
import { h, fill } from "./dom.js";
import { fmtDateTime, fmtDuration, onLangChange, siteWallToIso, t, typeName, workflowName } from "./i18n.js";
import { renderIncident, shownKey, slaState, slaText } from "./incident.js";

const STATES = ["new", "acknowledged", "assigned", "resolved", "false_alarm"];
const DEFAULT_STATES = ["new", "acknowledged", "assigned"];
const TYPES = ["stopped_vehicle", "wrong_way", "congestion", "intrusion", "loitering", "crowding", "tampering",
  "collision", "vehicle_fallen", "person_down", "road_blocked"];
const REFRESH_MS = 500; // live messages are coalesced into one reload per half second at most

export function createConsoleView(root, { site, user, subscribe }) {
  const form = root.querySelector("#console-filters");
  const tbody = root.querySelector("#queue tbody");
  const detailBox = root.querySelector("#console-detail");
  let rows = new Map(); // incident_id -> {data, tr, cells}
  let selected = null;
  let reloadTimer = null;
  let loading = null;
  let tick = null;

  function buildFilters() {
    const fs = form.querySelector("#f-states");
    const checked = new Set(fs.querySelectorAll("input").length
      ? [...fs.querySelectorAll("input:checked")].map((i) => i.value) : DEFAULT_STATES);
    fill(fs, h("legend", null, t("workflow")), STATES.map((s) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "state", value: s, checked: checked.has(s) }), workflowName(s))));
    const typeSel = form.querySelector("#f-type");
    const tv = typeSel.value;
    fill(typeSel, h("option", { value: "" }, t("all")), TYPES.map((k) => h("option", { value: k }, typeName(k))));
    typeSel.value = tv;
    const camSel = form.querySelector("#f-camera");
    const cv = camSel.value;
    fill(camSel, h("option", { value: "" }, t("all")), site.cameras.map((c) => h("option", { value: c.camera_id }, c.name)));
    camSel.value = cv;
  }

  function params() {
    const states = [...form.querySelectorAll("#f-states input:checked")].map((i) => i.value);
    return {
      workflow_state: states.join(","),
      type: form.querySelector("#f-type").value,
      camera: form.querySelector("#f-camera").value,
      since: siteWallToIso(form.querySelector("#f-since").value),
      until: siteWallToIso(form.querySelector("#f-until").value),
      limit: 200,
    };
  }

  function paintSla(entry) {
    const s = slaState(entry.data);
    entry.cells.elapsed.textContent = fmtDuration(s.elapsed_s);
    for (const [key, part] of [["ack", s.ack], ["resolve", s.resolve]]) {
      const cell = entry.cells[key];
      const text = slaText(part);
      if (cell.textContent !== text) cell.textContent = text;
      cell.classList.toggle("breached", part.breached);
      cell.dataset.breached = String(part.breached);
    }
  }

  function rowFor(i) {
    const cam = site.cameras.find((c) => c.camera_id === i.camera_id);
    const wf = i.workflow_state || "new";
    const cells = { elapsed: h("td", { class: "num" }), ack: h("td", { class: "sla-cell" }), resolve: h("td", { class: "sla-cell" }) };
    const tr = h("tr", { tabindex: "0", class: `sev-row sev-${i.severity}`, dataset: { incident: i.incident_id, workflow: wf }, "aria-selected": String(selected === i.incident_id) },
      h("td", null, typeName(i.type)), h("td", null, cam?.name || i.camera_id),
      h("td", null, h("time", { datetime: i.started_at }, fmtDateTime(i.started_at))),
      h("td", null, h("span", { class: `wf wf-${wf}` }, workflowName(wf))),
      cells.elapsed, cells.ack, cells.resolve, h("td", null, i.assigned_to || ""));
    const open = () => select(i.incident_id);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
    const entry = { data: i, tr, cells };
    paintSla(entry);
    return entry;
  }

  function renderRows(list) {
    const next = new Map();
    for (const i of list) next.set(i.incident_id, rowFor(i));
    rows = next;
    if (!list.length) fill(tbody, h("tr", null, h("td", { colspan: 8, class: "empty" }, t("no_incidents"))));
    else fill(tbody, [...rows.values()].map((e) => e.tr));
    root.querySelector("#queue-count").textContent = t("result_count", { n: list.length });
  }

  async function reload() {
    if (loading) { loading.abort(); }
    const ctrl = new AbortController();
    loading = ctrl;
    try {
      const body = await getJson("/api/v1/incidents", { params: params(), signal: ctrl.signal });
      if (ctrl.signal.aborted) return;
      renderRows(body.incidents);
    } catch (e) {
      if (e.name === "AbortError") return;
      fill(tbody, h("tr", null, h("td", { colspan: 8, class: "error" }, t("error", { detail: e instanceof ApiError ? e.detail : e.message }))));
    } finally {
      if (loading === ctrl) loading = null;
    }
  }

  function scheduleReload() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => { reloadTimer = null; reload(); }, REFRESH_MS);
  }

  function select(id) {
    selected = id;
    for (const e of rows.values()) e.tr.setAttribute("aria-selected", String(e.data.incident_id === id));
    renderIncident(detailBox, id, {
      user, site, fallback: rows.get(id)?.data,
      onChange: (updated) => { patch(updated); scheduleReload(); },
    });
  }

  function patch(i) {
    const entry = rows.get(i.incident_id);
    if (!entry) return;
    const fresh = rowFor({ ...entry.data, ...i });
    entry.tr.replaceWith(fresh.tr);
    rows.set(i.incident_id, fresh);
  }

  async function loadSla() {
    const box = root.querySelector("#sla-summary");
    const end = new Date();
    const start = new Date(end.getTime() - 7 * 86400_000);
    try {
      const body = await getJson("/api/v1/sla", { params: { start: start.toISOString(), end: end.toISOString(), bin: "day" } });
      const sum = (k) => body.bins.reduce((a, b) => a + (b[k] || 0), 0);
      const last = body.bins.filter((b) => b.incidents).at(-1) || {};
      fill(box, h("h2", null, t("sla_summary")),
        h("p", null, t("sla_targets", { ack: fmtDuration(body.targets.ack_s), res: fmtDuration(body.targets.resolve_s) })),
        h("p", null, t("sla_line", { n: sum("incidents"), ack50: fmtDuration(last.ack_p50_s), ack90: fmtDuration(last.ack_p90_s), ab: sum("ack_breaches"), rb: sum("resolve_breaches") })));
    } catch (e) {
      fill(box, h("p", { class: "note-muted" }, t("error", { detail: e instanceof ApiError ? e.detail : e.message })));
    }
  }

  function onMessage(msg) {
    if (msg.type === "incident" && msg.incident) {
      patch(msg.incident);
      if (selected === msg.incident.incident_id && detailBox.dataset.shown !== shownKey({ ...rows.get(selected)?.data, ...msg.incident })) select(selected);
      scheduleReload();
    } else if (msg.type === "alert" || (msg.type === "change" && msg.incidents)) {
      scheduleReload();
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); reload(); });
  buildFilters();
  let unsubscribe = null;
  const offLang = onLangChange(() => {
    buildFilters();
    for (const e of rows.values()) patch(e.data);
    if (selected) select(selected);
    loadSla();
  });

  return {
    show() {
      unsubscribe = subscribe(onMessage);
      reload();
      loadSla();
      tick = setInterval(() => { for (const e of rows.values()) paintSla(e); }, 1000);
    },
    hide() { unsubscribe?.(); unsubscribe = null; clearInterval(tick); },
    destroy() { this.hide(); offLang(); },
  };
}
