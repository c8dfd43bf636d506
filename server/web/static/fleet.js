// Fleet page: every edge and camera with state, fps, outbox depth, config version, model, last seen and
// drift alerts, filtered by camera group. Operators look; admins may also remove a camera or export the
// site file (the server checks the role again: 403).
import { getJson, request } from "./api.js";
import { h, fill, toast } from "./dom.js";
import { fmtDateTime, fmtNumber, t } from "./i18n.js";

const REFRESH_MS = 2000;

const short = (sha) => (sha ? sha.slice(0, 12) : "–");
const alertList = (alerts) => (alerts.length
  ? h("ul", { class: "fleet-alerts" }, alerts.map((a) => h("li", null, a)))
  : h("span", { class: "ok" }, t("fleet_ok")));

export function createFleetView(root, { user }) {
  const isAdmin = user.role === "admin";
  const groupSel = h("select", { id: "fleet-group", "aria-label": t("fleet_group") });
  const edgesBody = h("tbody");
  const camsBody = h("tbody");
  const exportBtn = isAdmin ? h("button", { type: "button", id: "fleet-export", onclick: exportSite }, t("fleet_export")) : null;
  fill(root,
    h("div", { class: "fleet" },
      h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
        h("label", null, h("span", null, t("fleet_group")), groupSel), exportBtn),
      h("h2", null, t("fleet_edges")),
      h("table", { id: "fleet-edges", class: "queue" },
        h("thead", null, h("tr", null, ["fleet_group", "fleet_edge", "fleet_version", "fleet_models", "fleet_config",
          "fleet_host", "fleet_last_seen", "fleet_alerts"].map((k) => h("th", null, t(k))))),
        edgesBody),
      h("h2", null, t("fleet_cameras")),
      h("table", { id: "fleet-cameras", class: "queue" },
        h("thead", null, h("tr", null, ["camera", "fleet_group", "state", "fleet_fps", "fleet_outbox", "fleet_config",
          "fleet_model", "fleet_last_seen", "fleet_alerts", isAdmin ? "fleet_actions" : null]
          .filter(Boolean).map((k) => h("th", null, t(k))))),
        camsBody)));
  let timer = null;
  let data = null;
  groupSel.addEventListener("change", render);

  async function exportSite() {
    const res = await request("/api/v1/fleet/site.yaml");
    const blob = new Blob([await res.text()], { type: "application/yaml" });
    const a = h("a", { href: URL.createObjectURL(blob), download: "site.yaml" });
    a.click();
  }

  async function rollback(group) {
    const pin = data.rollouts[group];
    if (!window.confirm(t("fleet_confirm_rollback", { group, model: pin.previous_model }))) return;
    try {
      await request(`/api/v1/fleet/groups/${encodeURIComponent(group)}/model/rollback`, { method: "POST" });
      toast(t("fleet_rolled_back", { group }));
      await refresh();
    } catch (e) {
      toast(t("error", { detail: e.detail || e.message }), "error");
    }
  }

  async function remove(cam) {
    if (!window.confirm(t("fleet_confirm_remove", { id: cam.id }))) return;
    try {
      await request(`/api/v1/fleet/cameras/${encodeURIComponent(cam.id)}`, { method: "DELETE" });
      toast(t("fleet_removed", { id: cam.id }));
      await refresh();
    } catch (e) {
      toast(t("error", { detail: e.detail || e.message }), "error");
    }
  }

  function render() {
    if (!data) return;
    const want = groupSel.value;
    const groups = ["", ...data.groups];
    if (groupSel.options.length !== groups.length) {
      fill(groupSel, groups.map((g) => h("option", { value: g }, g || t("fleet_all_groups"))));
      groupSel.value = want;
    }
    const keep = (g) => !groupSel.value || g === groupSel.value;
    fill(edgesBody, data.edges.filter((e) => keep(e.group)).map((e) => h("tr", {
      dataset: { group: e.group }, class: e.alerts.length ? "alert" : "" },
    h("td", null, e.group), h("td", null, e.edge_id), h("td", null, e.version),
    h("td", null, e.models.map((m) => `${m.name.split("/").pop()} ${short(m.sha256)}`).join(", "),
      data.rollouts[e.group]?.sha256 ? h("div", { class: "pin" }, `${t("fleet_pinned")} ${short(data.rollouts[e.group].sha256)}`) : null,
      isAdmin && data.rollouts[e.group]?.previous_sha256
        ? h("button", { type: "button", class: "rollback", onclick: () => rollback(e.group) },
          `${t("fleet_rollback")} → ${short(data.rollouts[e.group].previous_sha256)}`)
        : null),
    h("td", { class: "config" }, `v${e.config_version ?? "–"} / v${e.desired_version ?? "–"}`),
    h("td", null, `${e.host.cores} CPU${e.host.gpu ? `, ${e.host.gpu}` : ""}, ${fmtNumber(e.host.free_disk_bytes / 2 ** 30, 1)} GiB`),
    h("td", null, fmtDateTime(e.last_seen)), h("td", null, alertList(e.alerts)))));
    fill(camsBody, data.cameras.filter((c) => keep(c.group)).map((c) => h("tr", {
      dataset: { camera: c.id }, class: c.alerts.length ? "alert" : "" },
    h("td", null, `${c.name} (${c.id})`), h("td", null, c.group), h("td", null, c.state ? t(c.state) : t("unknown")),
    h("td", null, c.fps == null ? "–" : fmtNumber(c.fps, 1)), h("td", null, c.outbox_depth ?? "–"),
    h("td", null, c.config_version == null ? "–" : `v${c.config_version}`), h("td", null, c.model.split("/").pop()),
    h("td", null, c.last_seen ? fmtDateTime(c.last_seen) : "–"), h("td", null, alertList(c.alerts)),
    isAdmin ? h("td", null, h("button", { type: "button", class: "remove", onclick: () => remove(c) }, t("fleet_remove"))) : null)));
  }

  async function refresh() {
    try {
      data = await getJson("/api/v1/fleet");
      render();
    } catch (e) {
      toast(t("error", { detail: e.detail || e.message }), "error");
    }
  }

  return {
    show() { refresh(); timer = setInterval(refresh, REFRESH_MS); },
    hide() { clearInterval(timer); timer = null; },
    destroy() { clearInterval(timer); },
  };
}
