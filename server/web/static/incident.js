// One incident in a detail panel: evidence (snapshot, classes, track ids), SLA, workflow buttons allowed
// for the user's role, audit trail, events and alert deliveries. Used by the map and the police console.
import { ApiError, getBlob, getJson, postJson } from "./api.js";
import { h, fill, dl, toast } from "./dom.js";
import { auditName, className, eventName, fmtDateTime, fmtDuration, severityName, t, typeName, workflowName } from "./i18n.js";
import { ACTION_PATH, actionsFor, canSeeEvidence } from "./roles.js";

// Every look at evidence is audited by the server: fetch each snapshot once per page and keep it.
const snapshots = new Map(); // snapshot path -> object URL (the 30 newest)
const SNAPSHOT_CACHE = 30;

/** SLA state of an incident now: {elapsed_s, ack: {due_s, breached, done}, resolve: {...}}. */
export function slaState(i, now = Date.now()) {
  const sla = i.sla || {};
  const wf = i.workflow_state || "new";
  const resolvedDone = wf === "resolved" || wf === "false_alarm";
  const ackDone = wf !== "new" || Boolean(i.acknowledged_at);
  const part = (dueIso, done, doneAt, serverBreached) => {
    if (!dueIso) return { due_s: null, breached: Boolean(serverBreached), done };
    const due = new Date(dueIso).getTime();
    const end = done && doneAt ? new Date(doneAt).getTime() : now;
    return { due_s: (due - (done ? end : now)) / 1000, breached: Boolean(serverBreached) || end > due, done };
  };
  return {
    elapsed_s: i.started_at ? ((resolvedDone && i.resolved_at ? new Date(i.resolved_at).getTime() : now) - new Date(i.started_at).getTime()) / 1000 : null,
    ack: part(sla.ack_due_at, ackDone, i.acknowledged_at, sla.ack_breached),
    resolve: part(sla.resolve_due_at, resolvedDone, i.resolved_at, sla.resolve_breached),
  };
}

/** The text of one SLA part: "in 4 min 10 s", "2 min 03 s over", "done". */
export function slaText(part) {
  if (part.due_s == null) return part.done ? t("done") : "–";
  if (part.done) return part.breached ? `${t("done")} (${t("breached")})` : t("done");
  return part.due_s >= 0 ? t("due_in", { d: fmtDuration(part.due_s) }) : t("overdue_by", { d: fmtDuration(-part.due_s) });
}

function slaBlock(i) {
  const s = slaState(i);
  const cell = (label, part) => h("div", { class: `sla-part${part.breached ? " breached" : ""}`, dataset: { breached: String(part.breached) } },
    h("span", { class: "label" }, label), " ", h("span", { class: "value" }, slaText(part)));
  return h("div", { class: "sla" },
    h("div", { class: "sla-part" }, h("span", { class: "label" }, t("elapsed")), " ", h("span", null, fmtDuration(s.elapsed_s))),
    cell(t("ack_due"), s.ack), cell(t("resolve_due"), s.resolve));
}

async function showSnapshot(box, i) {
  const path = i.snapshot_url || (i.has_snapshot ? `/api/v1/incidents/${encodeURIComponent(i.incident_id)}/snapshot` : null);
  if (!path) { fill(box, h("p", null, t("no_snapshot"))); return; }
  try {
    let url = snapshots.get(path);
    if (!url) {
      url = URL.createObjectURL(await getBlob(path));
      snapshots.set(path, url);
      if (snapshots.size > SNAPSHOT_CACHE) {
        const [oldest, oldUrl] = snapshots.entries().next().value;
        snapshots.delete(oldest);
        URL.revokeObjectURL(oldUrl);
      }
    }
    fill(box, h("img", { class: "snapshot", src: url, alt: t("snapshot_alt", { id: i.incident_id }) }));
  } catch (e) {
    fill(box, h("p", { class: "error" }, t("error", { detail: e instanceof ApiError ? e.detail : e.message })));
  }
}

// The video clip of a critical incident (WebM, played by the browser itself). It arrives some seconds
// after the incident starts; fetched once per page like the snapshot, since every look is audited.
const clips = new Map(); // clip path -> object URL (the 10 newest)
const CLIP_CACHE = 10;

async function showClip(box, i) {
  if (!i.clip_url) { box.replaceChildren(); return; }
  try {
    let url = clips.get(i.clip_url);
    if (!url) {
      url = URL.createObjectURL(await getBlob(i.clip_url));
      clips.set(i.clip_url, url);
      if (clips.size > CLIP_CACHE) {
        const [oldest, oldUrl] = clips.entries().next().value;
        clips.delete(oldest);
        URL.revokeObjectURL(oldUrl);
      }
    }
    fill(box, h("video", { class: "clip", src: url, controls: true, muted: true, preload: "metadata",
      "aria-label": t("clip_alt", { id: i.incident_id }) }));
  } catch (e) {
    fill(box, h("p", { class: "error" }, t("error", { detail: e instanceof ApiError ? e.detail : e.message })));
  }
}

function actionForm(container, i, ctx) {
  const actions = actionsFor(ctx.user.role, i.workflow_state);
  if (!actions.length) return null;
  const note = h("textarea", { id: `note-${i.incident_id}`, class: "note", rows: 2 });
  const assignee = actions.includes("assign") ? h("input", { id: `assignee-${i.incident_id}`, class: "assignee", value: i.assigned_to || "" }) : null;
  const status = h("p", { class: "action-status", role: "status" });
  const buttons = actions.map((a) => h("button", {
    type: "button", class: `act act-${a}`, dataset: { action: a },
    onclick: async (ev) => {
      const body = { note: note.value.trim() };
      if (a === "assign") {
        body.assignee = assignee.value.trim();
        if (!body.assignee) { status.textContent = t("assignee_needed"); assignee.focus(); return; }
      }
      if ((a === "resolve" || a === "false_alarm") && !body.note) { status.textContent = t("note_needed"); note.focus(); return; }
      for (const b of container.querySelectorAll("button.act")) b.disabled = true;
      ev.target.setAttribute("aria-busy", "true");
      try {
        const updated = await postJson(`/api/v1/incidents/${encodeURIComponent(i.incident_id)}/${ACTION_PATH[a]}`, body);
        toast(t("action_done", { state: workflowName(updated.workflow_state) }));
        container.dataset.shown = shownKey(updated); // the live echo of this change needs no re-render
        ctx.onChange?.(updated);
        await renderIncident(container, i.incident_id, ctx);
      } catch (e) {
        const msg = e instanceof ApiError && e.status === 409 ? t("action_conflict", { detail: e.detail })
          : e instanceof ApiError && e.status === 403 ? t("action_forbidden")
            : e instanceof ApiError && e.status === 422 ? t("action_conflict", { detail: e.detail })
            : t("error", { detail: e.detail || e.message });
        status.textContent = msg;
        for (const b of container.querySelectorAll("button.act")) b.disabled = false;
      }
    },
  }, t(`act_${a}`)));
  return h("div", { class: "actions" },
    h("label", { for: note.id }, t("note")), note,
    assignee ? [h("label", { for: assignee.id }, t("assignee")), assignee] : null,
    h("div", { class: "buttons" }, buttons), status);
}

function auditEntry(a) {
  return h("li", { dataset: { action: a.action } },
    h("time", { datetime: a.at }, fmtDateTime(a.at)), " · ", h("b", null, a.actor || ""), " · ",
    h("span", { class: "action" }, auditName(a.action)),
    a.details && Object.keys(a.details).length ? h("span", { class: "details" }, ` – ${detailsText(a.details)}`) : null);
}

/** The audit trail: workflow actions in order; looks at the evidence folded into one line. */
function auditList(i) {
  if (!i.audit) return null;
  const views = i.audit.filter((a) => a.action === "evidence_view");
  const actions = i.audit.filter((a) => a.action !== "evidence_view");
  return h("section", { class: "audit", "aria-label": t("audit") }, h("h3", null, t("audit")),
    h("ol", null, actions.map(auditEntry)),
    views.length ? h("details", { class: "views" }, h("summary", null, t("evidence_views", { n: views.length })),
      h("ol", null, views.map(auditEntry))) : null);
}

function detailsText(d) {
  if (typeof d === "string") return d;
  const parts = [];
  if (d.from || d.to) parts.push(`${d.from ? workflowName(d.from) : ""} → ${d.to ? workflowName(d.to) : ""}`);
  if (d.assignee) parts.push(`${t("assigned_to")}: ${d.assignee}`);
  if (d.note) parts.push(`${t("note")}: ${d.note}`);
  for (const [k, v] of Object.entries(d)) {
    if (["from", "to", "assignee", "note"].includes(k) || v == null || v === "") continue;
    parts.push(`${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  return parts.join(" · ");
}

function eventsList(i) {
  if (!i.events || !i.events.length) return null;
  return h("section", { class: "events" }, h("h3", null, t("events")),
    h("ol", null, i.events.map((e) => h("li", null, h("time", { datetime: e.at }, fmtDateTime(e.at)), ` · ${eventName(e.event)}`, e.summary ? ` – ${e.summary}` : ""))));
}

function alertsList(i) {
  if (!i.alerts || !i.alerts.length) return null;
  return h("section", { class: "alerts" }, h("h3", null, t("alerts")),
    h("ul", null, i.alerts.map((a) => h("li", null, `${a.rule_id} · L${a.escalation_level} · ${fmtDateTime(a.raised_at)}`,
      h("ul", null, (a.deliveries || []).map((d) => h("li", { class: d.ok ? "ok" : "failed" },
        `${d.channel} #${d.attempt}: ${d.ok ? t("delivery_ok") : t("delivery_failed")}${d.error ? ` (${d.error})` : ""} · ${fmtDateTime(d.at)}`)))))));
}

/** What a re-render would change: workflow facts (a live message with the same key needs none). */
export function shownKey(i) {
  return [i.incident_id, i.workflow_state, i.assigned_to, i.state, i.ended_at].join("|");
}

/**
 * Render the incident into container (fetching its details); ctx: {user, site, fallback, onChange, onClose}.
 * fallback is the list item to show while the details endpoint is unavailable.
 */
export async function renderIncident(container, incidentId, ctx) {
  const seq = (container._cwSeq = (container._cwSeq || 0) + 1);
  let i;
  let partial = false;
  try {
    i = await getJson(`/api/v1/incidents/${encodeURIComponent(incidentId)}`);
  } catch (e) {
    if (!ctx.fallback) {
      fill(container, h("p", { class: "error" }, t("error", { detail: e.detail || e.message })));
      return;
    }
    i = ctx.fallback;
    partial = true;
  }
  if (seq !== container._cwSeq) return; // a newer render started meanwhile
  const camName = ctx.site.cameras.find((c) => c.camera_id === i.camera_id)?.name || i.camera_id;
  const wf = i.workflow_state || "new";
  const evidenceBox = h("div", { class: "evidence-img" }, t("loading"));
  const clipBox = h("div", { class: "evidence-clip" });
  fill(container,
    h("div", { class: "detail-head" },
      h("h2", { class: `sev-${i.severity}` }, `${typeName(i.type)} · ${camName}`),
      ctx.onClose ? h("button", { type: "button", class: "close", "aria-label": t("close"), title: t("close"), onclick: ctx.onClose }, "×") : null),
    h("p", null, h("span", { class: `wf wf-${wf}`, dataset: { workflow: wf } }, workflowName(wf)), " ",
      h("span", { class: `sev sev-${i.severity}` }, severityName(i.severity))),
    dl([
      [t("summary"), i.summary],
      [t("started"), fmtDateTime(i.started_at)],
      [t("ended"), fmtDateTime(i.ended_at)],
      [t("edge_state"), i.state ? t(i.state) : null],
      [t("zone"), i.zone_id], [t("line"), i.line_id],
      [t("acknowledged_by"), i.acknowledged_by ? `${i.acknowledged_by} · ${fmtDateTime(i.acknowledged_at)}` : null],
      [t("assigned_to"), i.assigned_to ? `${i.assigned_to} · ${fmtDateTime(i.assigned_at)}` : null],
      [t("resolved_by"), i.resolved_by ? `${i.resolved_by} · ${fmtDateTime(i.resolved_at)}` : null],
    ]),
    i.sla ? slaBlock(i) : null,
    canSeeEvidence(ctx.user.role) ? h("section", { class: "evidence", "aria-label": t("evidence") }, h("h3", null, t("evidence")),
      dl([[t("classes"), (i.classes || []).map(className)], [t("track_ids"), (i.track_ids || []).map(String)]]),
      evidenceBox, clipBox) : null,
    partial ? h("p", { class: "note-muted" }, t("details_unavailable")) : actionForm(container, i, ctx),
    auditList(i), eventsList(i), alertsList(i));
  container.dataset.shown = shownKey(i);
  if (canSeeEvidence(ctx.user.role)) await Promise.all([showSnapshot(evidenceBox, i), showClip(clipBox, i)]);
}
