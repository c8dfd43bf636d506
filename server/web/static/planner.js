// Planner pages: volume by time bin, class and direction for chosen cameras and dates; peak hours; a
// two-period comparison; CSV / Parquet downloads. Bins whose data quality is not "ok" are drawn hatched
// grey and listed under the chart. Chart.js (npm, vendored by scripts/build_web.sh) is loaded on first use.
import { ApiError, getBlob, getJson } from "./api.js";
import { h, fill, toast } from "./dom.js";
import { className, directionName, fmtBucket, fmtDateTime, fmtNumber, fmtPercent, locale, onLangChange, qualityName, siteDate, siteWallToIso, t } from "./i18n.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const FLAG_GREY = "#9e9e9e";
let chartJs = null;

function loadChartJs() {
  if (!chartJs) {
    chartJs = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/static/vendor/chart.js/chart.umd.js";
      s.onload = () => resolve(window.Chart);
      s.onerror = () => reject(new Error("Chart.js could not be loaded"));
      document.head.append(s);
    });
  }
  return chartJs;
}

/** A diagonal grey hatch for bars of flagged bins. */
function hatch() {
  const c = document.createElement("canvas");
  c.width = c.height = 8;
  const g = c.getContext("2d");
  g.fillStyle = "#d5d5d5";
  g.fillRect(0, 0, 8, 8);
  g.strokeStyle = "#7a7a7a";
  g.lineWidth = 2;
  g.beginPath();
  g.moveTo(0, 8); g.lineTo(8, 0); g.moveTo(-2, 2); g.lineTo(2, -2); g.moveTo(6, 10); g.lineTo(10, 6);
  g.stroke();
  return g.createPattern(c, "repeat");
}

/** Chart.js plugin: shade the whole column of each flagged bin, behind the bars. */
const flaggedColumns = {
  id: "flaggedColumns",
  beforeDatasetsDraw(chart, _args, opts) {
    const idx = opts.indices || [];
    if (!idx.length) return;
    const x = chart.scales.x;
    const { top, bottom } = chart.chartArea;
    const ctx = chart.ctx;
    const width = x.width / Math.max(1, chart.data.labels.length);
    ctx.save();
    ctx.fillStyle = opts.pattern;
    ctx.globalAlpha = 0.3;
    for (const i of idx) ctx.fillRect(x.getPixelForValue(i) - width / 2, top, width, bottom - top);
    ctx.restore();
  },
};

export function createPlannerView(root, { site }) {
  const form = root.querySelector("#planner-form");
  const charts = {};
  let data = null;     // last volume answer + the query it came from
  let peaks = null;
  let comparison = null;

  function buildCameraChoices() {
    const fs = form.querySelector("#p-cameras");
    const checked = new Set([...fs.querySelectorAll("input:checked")].map((i) => i.value));
    const first = !fs.querySelector("input");
    fill(fs, h("legend", null, t("select_cameras")), site.cameras.map((c) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "camera", value: c.camera_id, checked: first || checked.has(c.camera_id) }), c.name)));
  }

  function query() {
    const cams = [...form.querySelectorAll("#p-cameras input:checked")].map((i) => i.value);
    const startDay = form.querySelector("#p-start").value;
    const endDay = form.querySelector("#p-end").value;
    const endNext = new Date(`${endDay}T00:00:00Z`);
    endNext.setUTCDate(endNext.getUTCDate() + 1);
    return {
      camera_id: cams,
      start: siteWallToIso(`${startDay}T00:00`),
      end: siteWallToIso(`${endNext.toISOString().slice(0, 10)}T00:00`),
      bin: form.querySelector("#p-bin").value,
    };
  }

  function chart(id, config) {
    charts[id]?.destroy();
    const Chart = window.Chart;
    Chart.defaults.locale = locale();
    charts[id] = new Chart(root.querySelector(`#${id}`), {
      ...config,
      options: { responsive: true, maintainAspectRatio: false, animation: false, locale: locale(), ...config.options },
    });
    return charts[id];
  }

  function drawVolume() {
    const { rows, bin } = data;
    const buckets = [...new Set(rows.map((r) => r.bucket))].sort((a, b) => new Date(a) - new Date(b));
    const index = new Map(buckets.map((b, i) => [b, i]));
    const byCls = new Map();
    const byDir = new Map();
    const flags = [];      // {bucket, camera_id, quality, coverage}
    const flaggedIdx = new Set();
    const seen = new Set();
    let total = 0;
    for (const r of rows) {
      const i = index.get(r.bucket);
      if (r.cls) {
        if (!byCls.has(r.cls)) byCls.set(r.cls, new Array(buckets.length).fill(0));
        byCls.get(r.cls)[i] += r.count;
      }
      if (r.direction) byDir.set(r.direction, (byDir.get(r.direction) || 0) + r.count);
      total += r.count;
      const key = `${r.camera_id}|${r.bucket}`;
      if (!seen.has(key)) {
        seen.add(key);
        // Demo history (sample data) is flagged like poor quality: never read as observed traffic.
        if (r.sample) { flags.push({ ...r, quality: "sample" }); flaggedIdx.add(i); }
        else if (r.quality !== "ok") { flags.push(r); flaggedIdx.add(i); }
      }
    }
    const pattern = hatch();
    const classes = [...byCls.keys()].sort();
    chart("c-volume", {
      type: "bar",
      data: {
        labels: buckets.map((b) => fmtBucket(b, bin)),
        datasets: classes.map((cls, k) => ({
          label: className(cls),
          data: byCls.get(cls),
          backgroundColor: buckets.map((_, i) => (flaggedIdx.has(i) ? pattern : PALETTE[k % PALETTE.length])),
          borderColor: buckets.map((_, i) => (flaggedIdx.has(i) ? FLAG_GREY : PALETTE[k % PALETTE.length])),
          borderWidth: 1,
        })),
      },
      options: {
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: t("count") } } },
        plugins: { flaggedColumns: { indices: [...flaggedIdx], pattern } },
      },
      plugins: [flaggedColumns],
    });
    const clsTotals = classes.map((c) => byCls.get(c).reduce((a, b) => a + b, 0));
    chart("c-class", {
      type: "bar",
      data: { labels: classes.map(className), datasets: [{ label: t("count"), data: clsTotals, backgroundColor: classes.map((_, k) => PALETTE[k % PALETTE.length]) }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } } },
    });
    const dirs = [...byDir.keys()].sort();
    chart("c-direction", {
      type: "bar",
      data: { labels: dirs.map(directionName), datasets: [{ label: t("count"), data: dirs.map((d) => byDir.get(d)), backgroundColor: "#12355b" }] },
      options: { plugins: { legend: { display: false } } },
    });
    root.querySelector("#p-total").textContent = `${t("total")}: ${fmtNumber(total)}`;
    const flagBox = root.querySelector("#p-flags");
    const camName = (id) => site.cameras.find((c) => c.camera_id === id)?.name || id;
    const runs = flagRuns(flags, buckets);
    if (!runs.length) fill(flagBox, h("p", { class: "ok" }, t("no_flags")));
    else {
      fill(flagBox, h("h3", null, `${t("quality_flags")} (${fmtNumber(flags.length)})`),
        h("table", { class: "mini flags-table" },
          h("thead", null, h("tr", null, [t("bucket"), t("camera"), t("quality"), t("coverage")].map((x) => h("th", null, x)))),
          h("tbody", null, runs.slice(0, 100).map((f) => h("tr", { dataset: { quality: f.quality } },
            h("td", null, h("time", { datetime: f.first }, fmtBucket(f.first, bin)),
              f.count > 1 ? [" – ", h("time", { datetime: f.last }, fmtBucket(f.last, bin)), ` (${fmtNumber(f.count)})`] : null),
            h("td", null, camName(f.camera_id)), h("td", null, qualityName(f.quality)),
            h("td", { class: "num" }, fmtPercent(f.coverage)))))));
    }
  }

  /** Consecutive flagged bins of one camera with the same quality, as one line each. */
  function flagRuns(flags, buckets) {
    const pos = new Map(buckets.map((b, i) => [b, i]));
    const sorted = [...flags].sort((a, b) => a.camera_id.localeCompare(b.camera_id) || pos.get(a.bucket) - pos.get(b.bucket));
    const runs = [];
    for (const f of sorted) {
      const last = runs.at(-1);
      if (last && last.camera_id === f.camera_id && last.quality === f.quality && pos.get(last.last) + 1 === pos.get(f.bucket)) {
        last.last = f.bucket;
        last.count += 1;
        last.coverage = Math.min(last.coverage, f.coverage);
      } else {
        runs.push({ camera_id: f.camera_id, quality: f.quality, first: f.bucket, last: f.bucket, count: 1, coverage: f.coverage });
      }
    }
    return runs;
  }

  function drawPeaks() {
    // Every hour of the day on the axis; hours never seen stay empty (no data is not zero traffic).
    const mean = new Map(peaks.by_hour_of_day.map((p) => [p.hour, p.mean]));
    const hours = [...Array(24).keys()];
    chart("c-peak", {
      type: "bar",
      data: {
        labels: hours.map((hr) => `${String(hr).padStart(2, "0")}:00`),
        datasets: [{ label: t("mean"), data: hours.map((hr) => mean.get(hr) ?? null), backgroundColor: "#d68910" }],
      },
      options: { plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: t("hour_of_day") } } } },
    });
    fill(root.querySelector("#p-peaks"), h("h3", null, t("top_hours")),
      h("ol", null, peaks.peaks.map((p) => h("li", null, `${fmtDateTime(p.hour_start)} · ${fmtNumber(p.count)}`))));
  }

  function drawComparison() {
    const camName = (id) => site.cameras.find((c) => c.camera_id === id)?.name || id;
    const perCam = new Map();
    for (const r of comparison.rows) {
      const v = perCam.get(r.camera_id) || { a: 0, b: 0 };
      v.a += r.a; v.b += r.b;
      perCam.set(r.camera_id, v);
    }
    const ids = [...perCam.keys()];
    chart("c-compare", {
      type: "bar",
      data: {
        labels: ids.map(camName),
        datasets: [
          { label: t("period_a"), data: ids.map((i) => perCam.get(i).a), backgroundColor: "#12355b" },
          { label: t("period_b"), data: ids.map((i) => perCam.get(i).b), backgroundColor: "#d68910" },
        ],
      },
    });
    const pct = (x) => (x == null ? "–" : fmtPercent(x / 100, 1));
    const head = h("thead", null, h("tr", null, [t("camera"), t("classes"), t("period_a"), t("period_b"), t("change")].map((x) => h("th", null, x))));
    const body = comparison.rows.map((r) => h("tr", null,
      h("td", null, camName(r.camera_id)), h("td", null, className(r.cls)), h("td", { class: "num" }, fmtNumber(r.a)),
      h("td", { class: "num" }, fmtNumber(r.b)), h("td", { class: "num" }, pct(r.change_pct))));
    const totalRow = h("tr", { class: "total" }, h("td", null, t("total")), h("td", null, ""),
      h("td", { class: "num" }, fmtNumber(comparison.total.a)), h("td", { class: "num" }, fmtNumber(comparison.total.b)),
      h("td", { class: "num" }, pct(comparison.total.change_pct)));
    fill(root.querySelector("#p-compare"), h("table", { class: "mini compare-table" }, head, h("tbody", null, body, totalRow)));
  }

  async function show() {
    const q = query();
    if (!q.camera_id.length) { toast(t("choose_camera"), "error"); return; }
    try {
      const [vol, pk] = await Promise.all([
        getJson("/api/v1/history/volume", { params: q }),
        getJson("/api/v1/history/peak-hours", { params: { start: q.start, end: q.end, camera_id: q.camera_id } }),
        loadChartJs(),
      ]);
      data = { rows: vol.rows, bin: q.bin };
      peaks = pk;
      drawVolume();
      drawPeaks();
      root.dataset.loaded = "true";
    } catch (e) {
      toast(t("error", { detail: e instanceof ApiError ? e.detail : e.message }), "error");
    }
  }

  async function compare(ev) {
    ev.preventDefault();
    const q = query();
    const day = (id, shift = 0) => {
      const d = new Date(`${root.querySelector(id).value}T00:00:00Z`);
      d.setUTCDate(d.getUTCDate() + shift);
      return siteWallToIso(`${d.toISOString().slice(0, 10)}T00:00`);
    };
    try {
      const [body] = await Promise.all([getJson("/api/v1/history/compare", {
        params: { a_start: day("#a-start"), a_end: day("#a-end", 1), b_start: day("#b-start"), b_end: day("#b-end", 1), camera_id: q.camera_id },
      }), loadChartJs()]);
      comparison = body;
      drawComparison();
    } catch (e) {
      toast(t("error", { detail: e instanceof ApiError ? e.detail : e.message }), "error");
    }
  }

  async function download(fmt) {
    const q = query();
    if (!q.camera_id.length) { toast(t("choose_camera"), "error"); return; }
    try {
      const blob = await getBlob("/api/v1/history/volume", { params: { ...q, format: fmt } });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `volume-${q.bin}-${form.querySelector("#p-start").value}_${form.querySelector("#p-end").value}.${fmt}`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30_000);
    } catch (e) {
      toast(t("error", { detail: e instanceof ApiError ? e.detail : e.message }), "error");
    }
  }

  buildCameraChoices();
  form.querySelector("#p-start").value = siteDate(-1);
  form.querySelector("#p-end").value = siteDate(0);
  root.querySelector("#a-start").value = siteDate(-13);
  root.querySelector("#a-end").value = siteDate(-7);
  root.querySelector("#b-start").value = siteDate(-6);
  root.querySelector("#b-end").value = siteDate(0);
  form.addEventListener("submit", (e) => { e.preventDefault(); show(); });
  form.querySelector("#p-csv").addEventListener("click", () => download("csv"));
  form.querySelector("#p-parquet").addEventListener("click", () => download("parquet"));
  root.querySelector("#compare-form").addEventListener("submit", compare);
  const offLang = onLangChange(() => {
    buildCameraChoices();
    if (data) drawVolume();
    if (peaks) drawPeaks();
    if (comparison) drawComparison();
  });
  let shown = false;

  return {
    show() { if (!shown) { shown = true; show(); } },
    hide() {},
    destroy() { offLang(); for (const c of Object.values(charts)) c.destroy(); },
  };
}
