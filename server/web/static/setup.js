// Camera setup (admins): name, position picked on the map, source; then counting lines (with their
// direction names) and zones drawn by clicking points on the camera's live frame (the frame proxy);
// rules attached as JSON; saved through PUT /api/v1/fleet/cameras/{id}. The server validates exactly as
// `citywatch config check` and answers each problem with its field: shown next to that field.
import { getBlob, getJson, session } from "./api.js";
import { h, fill, toast } from "./dom.js";
import { t } from "./i18n.js";

const ZONE_KINDS = ["monitor", "restricted", "no_stopping", "crowd", "carriageway", "loitering"];
const round = (v) => Math.round(v * 1000) / 1000;

export function createSetupView(root, { site }) {
  const input = (id, attrs = {}) => h("input", { id, ...attrs });
  const err = (name) => h("span", { class: "field-error error", dataset: { for: name }, role: "alert" });
  const field = (label, el, name) => h("label", null, h("span", null, label), el, err(name));
  const pick = h("select", { id: "setup-camera" });
  const f = {
    id: input("cam-id"),
    name: input("cam-name"),
    group: input("cam-group", { value: "default" }),
    kind: h("select", { id: "cam-source-kind" }, ["file", "stream", "webcam"].map((k) => h("option", { value: k }, k))),
    source: input("cam-source", { placeholder: "rtsp://… / /videos/clip.mp4 / 0" }),
    loop: h("input", { id: "cam-loop", type: "checkbox" }),
    lat: input("cam-lat", { type: "number", step: "any" }),
    lon: input("cam-lon", { type: "number", step: "any" }),
    rules: h("textarea", { id: "cam-rules", rows: 4, placeholder: '[{"id": "ww", "type": "wrong_way", "line": "…", "expected": "…"}]' }),
  };
  const draw = {
    kind: h("select", { id: "draw-kind" }, h("option", { value: "line" }, t("setup_line")), h("option", { value: "zone" }, t("setup_zone"))),
    id: input("draw-id", { placeholder: "id" }),
    pos: input("dir-pos", { placeholder: t("setup_dir_pos") }),
    neg: input("dir-neg", { placeholder: t("setup_dir_neg") }),
    zoneKind: h("select", { id: "zone-kind" }, ZONE_KINDS.map((k) => h("option", { value: k }, k))),
  };
  const img = h("img", { id: "setup-frame", alt: t("setup_frame") });
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.id = "setup-overlay";
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  const linesList = h("ul", { id: "setup-lines" });
  const zonesList = h("ul", { id: "setup-zones" });
  const general = h("div", { id: "setup-errors", class: "error", role: "alert" });
  const mapBox = h("div", { id: "setup-map" });
  let lines = [];
  let zones = [];
  let extra = {};  // fields of an existing camera this form does not edit (detector, analysis, …)
  let points = [];

  fill(root, h("div", { class: "setup" },
    h("form", { id: "setup-form", class: "setup-form", onsubmit: (e) => { e.preventDefault(); save(); } },
      h("label", null, h("span", null, t("camera")), pick),
      field(t("setup_id"), f.id, "id"), field(t("setup_name"), f.name, "name"), field(t("fleet_group"), f.group, "group"),
      field(t("setup_source_kind"), f.kind, "source.kind"), field(t("setup_source"), f.source, "source"),
      h("label", null, f.loop, h("span", null, t("setup_loop"))),
      field(t("setup_lat"), f.lat, "location"), field(t("setup_lon"), f.lon, "location.lon"),
      mapBox,
      field(t("setup_rules"), f.rules, "rules"),
      general,
      h("button", { type: "submit", id: "setup-save" }, t("setup_save"))),
    h("div", { class: "setup-draw" },
      h("div", { class: "filters" }, draw.kind, draw.id, draw.pos, draw.neg, draw.zoneKind,
        h("button", { type: "button", id: "draw-add", onclick: addShape }, t("setup_add_shape")),
        h("button", { type: "button", id: "draw-clear", onclick: () => { points = []; paint(); } }, t("setup_clear")),
        h("button", { type: "button", id: "setup-reload-frame", onclick: loadFrame }, t("setup_reload_frame"))),
      h("div", { id: "setup-frame-box", class: "frame-box" }, img, svg),
      h("h3", null, t("setup_lines")), linesList, err("lines"),
      h("h3", null, t("setup_zones")), zonesList, err("zones"))));

  const map = L.map(mapBox).setView([site.center.lat, site.center.lon], site.zoom || 14);
  if (site.tile_url) L.tileLayer(site.tile_url, { maxZoom: 19 }).addTo(map);
  let marker = null;
  function setPosition(lat, lon) {
    f.lat.value = Number(lat).toFixed(6);
    f.lon.value = Number(lon).toFixed(6);
    if (marker) marker.setLatLng([lat, lon]); else marker = L.marker([lat, lon]).addTo(map);
  }
  map.on("click", (e) => setPosition(e.latlng.lat, e.latlng.lng));

  svg.addEventListener("click", (e) => {
    const r = svg.getBoundingClientRect();
    points.push([round((e.clientX - r.left) / r.width), round((e.clientY - r.top) / r.height)]);
    paint();
  });

  function shape(tag, pts, cls) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    el.setAttribute("points", pts.map((p) => p.join(",")).join(" "));
    el.setAttribute("class", cls);
    el.setAttribute("vector-effect", "non-scaling-stroke");
    return el;
  }

  function paint() {
    svg.replaceChildren(
      ...lines.map((l) => shape("polyline", l.points, "drawn-line")),
      ...zones.map((z) => shape("polygon", z.polygon, "drawn-zone")),
      shape(draw.kind.value === "zone" ? "polygon" : "polyline", points, "drawing"));
    fill(linesList, lines.map((l, i) => h("li", { dataset: { line: l.id } },
      `${l.id}: ${l.directions.positive} / ${l.directions.negative} (${l.points.length} pts) `,
      h("button", { type: "button", onclick: () => { lines.splice(i, 1); paint(); } }, "×"))));
    fill(zonesList, zones.map((z, i) => h("li", { dataset: { zone: z.id } }, `${z.id}: ${z.kind} (${z.polygon.length} pts) `,
      h("button", { type: "button", onclick: () => { zones.splice(i, 1); paint(); } }, "×"))));
  }

  function addShape() {
    const id = draw.id.value.trim();
    if (!id) { toast(t("setup_need_id"), "error"); return; }
    if (draw.kind.value === "line") {
      if (points.length < 2) { toast(t("setup_need_points", { n: 2 }), "error"); return; }
      lines.push({ id, points, directions: { positive: draw.pos.value.trim() || "positive", negative: draw.neg.value.trim() || "negative" } });
    } else {
      if (points.length < 3) { toast(t("setup_need_points", { n: 3 }), "error"); return; }
      zones.push({ id, kind: draw.zoneKind.value, polygon: points });
    }
    points = [];
    draw.id.value = "";
    paint();
  }

  async function loadFrame() {
    const id = f.id.value.trim();
    if (!id) return;
    try {
      const blob = await getBlob(`/api/v1/cameras/${encodeURIComponent(id)}/frame.jpg`);
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
      img.dataset.loaded = "1";
    } catch (e) {
      toast(t("setup_no_frame"), "error");
    }
  }

  function source() {
    const v = f.source.value.trim();
    if (f.kind.value === "file") return { kind: "file", path: v, loop: f.loop.checked };
    if (f.kind.value === "stream") return { kind: "stream", url: v };
    return { kind: "webcam", index: Number(v || 0) };
  }

  function showErrors(issues) {
    for (const el of root.querySelectorAll(".field-error")) el.textContent = "";
    general.textContent = "";
    const spans = [...root.querySelectorAll(".field-error")];
    for (const { field: path, message } of issues) {
      const target = spans.find((s) => path === s.dataset.for || path.startsWith(`${s.dataset.for}.`) || path.startsWith(`${s.dataset.for}[`));
      if (target) target.textContent = [target.textContent, message].filter(Boolean).join("; ");
      else general.textContent = [general.textContent, `${path || t("camera")}: ${message}`].filter(Boolean).join("; ");
    }
  }

  async function save() {
    let rules = [];
    try { rules = f.rules.value.trim() ? JSON.parse(f.rules.value) : []; } catch (e) {
      showErrors([{ field: "rules", message: t("setup_bad_json", { detail: e.message }) }]);
      return;
    }
    const body = {
      ...extra, id: f.id.value.trim(), name: f.name.value.trim(), group: f.group.value.trim() || "default",
      location: { lat: Number(f.lat.value), lon: Number(f.lon.value) }, source: source(), lines, zones, rules,
    };
    // Our own fetch: the 422 answer's `detail` is a list of {field, message} to place next to fields.
    const res = await fetch(`/api/v1/fleet/cameras/${encodeURIComponent(body.id || "-")}`, {
      method: "PUT", cache: "no-store", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${session.token}` },
    });
    if (!res.ok) {
      const answer = await res.json().catch(() => ({ detail: res.statusText }));
      const issues = Array.isArray(answer.detail)
        ? answer.detail.map((d) => ({ field: d.field ?? (d.loc || []).slice(2).join("."), message: d.message ?? d.msg }))
        : [{ field: "", message: String(answer.detail) }];
      showErrors(issues);
      return;
    }
    showErrors([]);
    toast(t("setup_saved", { id: body.id }));
    root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
    await loadCameras(body.id);
  }

  function edit(cam) {
    const known = new Set(["id", "name", "group", "location", "source", "lines", "zones", "rules"]);
    extra = Object.fromEntries(Object.entries(cam || {}).filter(([k]) => !known.has(k)));
    f.id.value = cam?.id || ""; f.id.readOnly = Boolean(cam);
    f.name.value = cam?.name || ""; f.group.value = cam?.group || "default";
    const src = cam?.source || { kind: "file", path: "" };
    f.kind.value = src.kind; f.source.value = src.path ?? src.url ?? src.index ?? ""; f.loop.checked = Boolean(src.loop);
    if (cam) setPosition(cam.location.lat, cam.location.lon); else { f.lat.value = ""; f.lon.value = ""; }
    lines = cam?.lines?.map((l) => ({ ...l, directions: { positive: "positive", negative: "negative", ...(l.directions || {}) } })) || [];
    zones = cam?.zones?.map((z) => ({ kind: "monitor", ...z })) || [];
    f.rules.value = cam?.rules?.length ? JSON.stringify(cam.rules, null, 1) : "";
    points = [];
    paint();
    showErrors([]);
    if (cam) loadFrame();
  }

  async function loadCameras(selected) {
    const fleet = await getJson("/api/v1/fleet");
    fill(pick, h("option", { value: "" }, t("setup_new")), fleet.cameras.map((c) => h("option", { value: c.id }, `${c.name} (${c.id})`)));
    pick.value = selected || "";
  }

  pick.addEventListener("change", async () => {
    edit(pick.value ? await getJson(`/api/v1/fleet/cameras/${encodeURIComponent(pick.value)}`) : null);
  });
  draw.kind.addEventListener("change", paint);

  return {
    async show() { await loadCameras(pick.value); map.invalidateSize(); },
    hide() {},
    destroy() { map.remove(); },
  };
}
