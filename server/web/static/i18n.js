// Every visible string of the app, in Vietnamese and English, and Intl formatting in the chosen locale
// and the site's time zone. Elements with data-i18n / data-i18n-aria / data-i18n-placeholder / data-i18n-title
// are translated by applyStatic(); modules call t() when they render.

const TABLE = {
  vi: {
    app_title: "citywatch – điều hành giao thông",
    language: "Ngôn ngữ",
    login_title: "Đăng nhập",
    username: "Tên đăng nhập",
    password: "Mật khẩu",
    login: "Đăng nhập",
    logout: "Đăng xuất",
    wrong_login: "Sai tên đăng nhập hoặc mật khẩu",
    too_many: "Quá nhiều lần thử. Thử lại sau {s} giây.",
    login_failed: "Không đăng nhập được ({status})",
    session_expired: "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại",
    nav: "Trang",
    page_map: "Bản đồ trực tiếp",
    page_console: "Bảng điều khiển công an",
    page_planner: "Phân tích quy hoạch",
    role_admin: "quản trị", role_operator: "điều hành viên", role_police: "công an", role_planner: "quy hoạch",
    connecting: "đang kết nối", live: "trực tiếp", disconnected: "mất kết nối",
    sound: "Âm báo",
    cameras: "Camera",
    incidents_open: "Sự cố đang mở",
    map_label: "Bản đồ camera và sự cố",
    close: "Đóng",
    state: "Trạng thái",
    online: "trực tuyến", degraded: "suy giảm", offline: "ngoại tuyến", unknown: "chưa rõ",
    last_bin: "Khoảng đếm gần nhất",
    health: "Tình trạng hình ảnh",
    live_frame: "Khung hình mới nhất (có chú thích)",
    frame_alt: "Khung hình mới nhất của camera {name}",
    frame_unavailable: "Không có khung hình: {detail}",
    last_hour: "Lưu lượng 1 giờ qua",
    total: "Tổng",
    no_data: "Không có dữ liệu",
    loading: "Đang tải…",
    error: "Lỗi: {detail}",
    // incidents
    incident: "Sự cố",
    type: "Loại", severity: "Mức độ", camera: "Camera", started: "Bắt đầu", ended: "Kết thúc",
    summary: "Mô tả", classes: "Đối tượng", track_ids: "Mã theo vết", zone: "Vùng", line: "Vạch",
    edge_state: "Trên camera", open: "đang diễn ra", closed: "đã kết thúc",
    workflow: "Xử lý",
    wf_new: "mới", wf_acknowledged: "đã tiếp nhận", wf_assigned: "đã phân công", wf_resolved: "đã giải quyết",
    wf_false_alarm: "báo động giả",
    sev_critical: "nghiêm trọng", sev_warning: "cảnh báo", sev_info: "thông tin",
    evidence: "Bằng chứng",
    snapshot_alt: "Ảnh hiện trường của sự cố {id}",
    clip_alt: "Video hiện trường của sự cố {id}",
    no_snapshot: "Không có ảnh hiện trường",
    note: "Ghi chú",
    assignee: "Giao cho (cán bộ / tổ)",
    act_acknowledge: "Tiếp nhận", act_assign: "Phân công", act_resolve: "Đã giải quyết",
    act_false_alarm: "Báo động giả",
    assignee_needed: "Nhập người hoặc tổ được giao",
    note_needed: "Cần ghi chú khi đóng sự cố",
    action_done: "Đã cập nhật: {state}",
    action_conflict: "Không thể thực hiện: {detail}",
    action_forbidden: "Vai trò của bạn không được phép thực hiện thao tác này",
    audit: "Nhật ký xử lý",
    evidence_views: "Đã xem bằng chứng {n} lần",
    event_names: { start: "bắt đầu", update: "cập nhật", end: "kết thúc" },
    audit_actions: {
      acknowledge: "tiếp nhận", assign: "phân công", resolve: "giải quyết", false_alarm: "báo động giả",
      evidence_view: "xem bằng chứng",
    },
    events: "Diễn biến",
    alerts: "Cảnh báo đã gửi",
    delivery_ok: "đã gửi", delivery_failed: "lỗi",
    acknowledged_by: "Tiếp nhận bởi", assigned_to: "Giao cho", resolved_by: "Giải quyết bởi",
    new_alert: "Cảnh báo mới: {summary}",
    details_unavailable: "Chưa có chi tiết xử lý từ máy chủ",
    types: {
      stopped_vehicle: "Xe dừng", wrong_way: "Đi ngược chiều", congestion: "Ùn tắc", intrusion: "Xâm nhập",
      loitering: "Lảng vảng", crowding: "Tụ tập đông người", tampering: "Camera bị can thiệp",
      collision: "Va chạm giao thông", vehicle_fallen: "Xe bị lật/ngã", person_down: "Người nằm trên đường",
      road_blocked: "Đường bị chặn",
    },
    // console
    queue: "Hàng đợi sự cố",
    filters: "Bộ lọc",
    since: "Từ", until: "Đến",
    all: "Tất cả",
    apply: "Áp dụng",
    sla: "Thời hạn (SLA)",
    elapsed: "Đã trôi qua",
    ack_due: "Hạn tiếp nhận",
    resolve_due: "Hạn giải quyết",
    breached: "quá hạn",
    due_in: "còn {d}",
    overdue_by: "quá {d}",
    done: "xong",
    no_incidents: "Không có sự cố nào khớp bộ lọc",
    select_incident: "Chọn một sự cố để xem chi tiết",
    sla_summary: "SLA 7 ngày qua",
    sla_targets: "Mục tiêu: tiếp nhận {ack}, giải quyết {res}",
    sla_line: "{n} sự cố · tiếp nhận p50 {ack50} / p90 {ack90} · quá hạn: {ab} tiếp nhận, {rb} giải quyết",
    result_count: "{n} sự cố",
    // planner
    planner_query: "Truy vấn",
    start_date: "Từ ngày", end_date: "Đến ngày",
    bin: "Khoảng thời gian",
    bin_15m: "15 phút", bin_1h: "giờ", bin_1d: "ngày",
    show: "Hiển thị",
    volume_by_time: "Lưu lượng theo thời gian và loại phương tiện",
    volume_by_class: "Theo loại phương tiện",
    volume_by_direction: "Theo hướng",
    peak_hours: "Giờ cao điểm (trung bình theo giờ trong ngày)",
    top_hours: "Các giờ đông nhất",
    compare: "So sánh hai giai đoạn",
    period_a: "Giai đoạn A", period_b: "Giai đoạn B",
    change: "Thay đổi",
    export_csv: "Tải CSV", export_parquet: "Tải Parquet",
    quality_flags: "Khoảng có chất lượng dữ liệu không tốt",
    no_flags: "Mọi khoảng đều đạt chất lượng",
    quality: "Chất lượng", coverage: "Độ phủ", bucket: "Khoảng",
    q_ok: "tốt", q_degraded: "suy giảm", q_tampering: "bị can thiệp", q_offline: "ngoại tuyến", q_no_data: "không có dữ liệu", q_sample: "dữ liệu mẫu (demo)",
    flagged_legend: "Cột gạch chéo/xám: khoảng có chất lượng không tốt",
    count: "Số lượng",
    hour_of_day: "Giờ trong ngày",
    mean: "Trung bình",
    select_cameras: "Chọn camera",
    choose_camera: "Chọn ít nhất một camera",
    classes_names: {
      car: "ô tô", motorcycle: "xe máy", bus: "xe buýt", truck: "xe tải", bicycle: "xe đạp", person: "người đi bộ",
    },
    directions_names: { north: "bắc", south: "nam", east: "đông", west: "tây", in: "vào", out: "ra" },
    not_found: "Không tìm thấy",
    fleet_edges: "Máy biên", fleet_cameras: "Camera", fleet_group: "Nhóm", fleet_all_groups: "Tất cả nhóm",
    fleet_edge: "Máy", fleet_version: "Phiên bản", fleet_models: "Mô hình", fleet_model: "Mô hình",
    fleet_config: "Cấu hình (chạy / mong muốn)", fleet_host: "Phần cứng", fleet_last_seen: "Lần cuối",
    fleet_alerts: "Cảnh báo", fleet_ok: "ổn", fleet_fps: "khung/giây", fleet_outbox: "Hàng đợi",
    fleet_actions: "Thao tác", fleet_remove: "Gỡ", fleet_export: "Xuất tệp site",
    fleet_confirm_remove: "Gỡ camera {id}?", fleet_removed: "Đã gỡ camera {id}",
    page_fleet: "Thiết bị",
    fleet_pinned: "ghim", fleet_rollback: "Quay lại", fleet_confirm_rollback: "Quay nhóm {group} về mô hình {model}?",
    fleet_rolled_back: "Nhóm {group} đã quay về mô hình trước",
    page_setup: "Cài đặt camera", setup_line: "Vạch đếm", setup_zone: "Vùng", setup_dir_pos: "Hướng dương",
    setup_dir_neg: "Hướng âm", setup_frame: "Khung hình trực tiếp", setup_id: "Mã", setup_name: "Tên",
    setup_source_kind: "Loại nguồn", setup_source: "Nguồn", setup_loop: "Lặp lại tệp", setup_lat: "Vĩ độ",
    setup_lon: "Kinh độ", setup_rules: "Quy tắc (JSON)", setup_save: "Lưu", setup_add_shape: "Thêm hình",
    setup_clear: "Xoá điểm", setup_reload_frame: "Tải lại khung hình", setup_lines: "Vạch đếm",
    setup_zones: "Vùng", setup_need_id: "Cần nhập mã", setup_need_points: "Cần ít nhất {n} điểm",
    setup_no_frame: "Chưa có khung hình của camera này", setup_bad_json: "JSON không hợp lệ: {detail}",
    setup_saved: "Đã lưu camera {id}", setup_new: "Camera mới",
  },
  en: {
    app_title: "citywatch – traffic operations",
    language: "Language",
    login_title: "Sign in",
    username: "Username",
    password: "Password",
    login: "Sign in",
    logout: "Sign out",
    wrong_login: "Wrong username or password",
    too_many: "Too many attempts. Try again in {s} s.",
    login_failed: "Sign-in failed ({status})",
    session_expired: "Your session has expired, please sign in again",
    nav: "Pages",
    page_map: "Live map",
    page_console: "Police console",
    page_planner: "Planning analytics",
    role_admin: "admin", role_operator: "operator", role_police: "police", role_planner: "planner",
    connecting: "connecting", live: "live", disconnected: "disconnected",
    sound: "Alert sound",
    cameras: "Cameras",
    incidents_open: "Open incidents",
    map_label: "Map of cameras and incidents",
    close: "Close",
    state: "State",
    online: "online", degraded: "degraded", offline: "offline", unknown: "unknown",
    last_bin: "Latest count bin",
    health: "Image health",
    live_frame: "Latest annotated frame",
    frame_alt: "Latest frame of camera {name}",
    frame_unavailable: "No frame: {detail}",
    last_hour: "Volume in the last hour",
    total: "Total",
    no_data: "No data",
    loading: "Loading…",
    error: "Error: {detail}",
    incident: "Incident",
    type: "Type", severity: "Severity", camera: "Camera", started: "Started", ended: "Ended",
    summary: "Summary", classes: "Classes", track_ids: "Track ids", zone: "Zone", line: "Line",
    edge_state: "At the camera", open: "ongoing", closed: "ended",
    workflow: "Workflow",
    wf_new: "new", wf_acknowledged: "acknowledged", wf_assigned: "assigned", wf_resolved: "resolved",
    wf_false_alarm: "false alarm",
    sev_critical: "critical", sev_warning: "warning", sev_info: "info",
    evidence: "Evidence",
    snapshot_alt: "Snapshot of incident {id}",
    clip_alt: "Video clip of incident {id}",
    no_snapshot: "No snapshot",
    note: "Note",
    assignee: "Assign to (officer / unit)",
    act_acknowledge: "Acknowledge", act_assign: "Assign", act_resolve: "Resolve",
    act_false_alarm: "False alarm",
    assignee_needed: "Enter the officer or unit to assign",
    note_needed: "A note is required to close an incident",
    action_done: "Updated: {state}",
    action_conflict: "Not possible: {detail}",
    action_forbidden: "Your role may not do this",
    audit: "Audit trail",
    evidence_views: "Evidence viewed {n} times",
    event_names: { start: "started", update: "updated", end: "ended" },
    audit_actions: {
      acknowledge: "acknowledged", assign: "assigned", resolve: "resolved", false_alarm: "marked false alarm",
      evidence_view: "viewed evidence",
    },
    events: "Events",
    alerts: "Alerts sent",
    delivery_ok: "sent", delivery_failed: "failed",
    acknowledged_by: "Acknowledged by", assigned_to: "Assigned to", resolved_by: "Resolved by",
    new_alert: "New alert: {summary}",
    details_unavailable: "No workflow details from the server yet",
    types: {
      stopped_vehicle: "Stopped vehicle", wrong_way: "Wrong-way driving", congestion: "Congestion",
      intrusion: "Intrusion", loitering: "Loitering", crowding: "Crowding", tampering: "Camera tampering",
      collision: "Collision", vehicle_fallen: "Vehicle fallen", person_down: "Person down", road_blocked: "Road blocked",
    },
    queue: "Incident queue",
    filters: "Filters",
    since: "From", until: "To",
    all: "All",
    apply: "Apply",
    sla: "SLA",
    elapsed: "Elapsed",
    ack_due: "Acknowledge due",
    resolve_due: "Resolve due",
    breached: "breached",
    due_in: "in {d}",
    overdue_by: "{d} over",
    done: "done",
    no_incidents: "No incident matches the filters",
    select_incident: "Select an incident to see its details",
    sla_summary: "SLA, last 7 days",
    sla_targets: "Targets: acknowledge {ack}, resolve {res}",
    sla_line: "{n} incidents · acknowledge p50 {ack50} / p90 {ack90} · breaches: {ab} acknowledge, {rb} resolve",
    result_count: "{n} incidents",
    planner_query: "Query",
    start_date: "From date", end_date: "To date",
    bin: "Bin",
    bin_15m: "15 min", bin_1h: "hour", bin_1d: "day",
    show: "Show",
    volume_by_time: "Volume over time by class",
    volume_by_class: "By class",
    volume_by_direction: "By direction",
    peak_hours: "Peak hours (mean by hour of day)",
    top_hours: "Busiest hours",
    compare: "Compare two periods",
    period_a: "Period A", period_b: "Period B",
    change: "Change",
    export_csv: "Download CSV", export_parquet: "Download Parquet",
    quality_flags: "Bins with poor data quality",
    no_flags: "Every bin is of good quality",
    quality: "Quality", coverage: "Coverage", bucket: "Bin",
    q_ok: "ok", q_degraded: "degraded", q_tampering: "tampering", q_offline: "offline", q_no_data: "no data", q_sample: "sample data (demo)",
    flagged_legend: "Hatched/grey bars: bins of poor data quality",
    count: "Count",
    hour_of_day: "Hour of day",
    mean: "Mean",
    select_cameras: "Choose cameras",
    choose_camera: "Choose at least one camera",
    classes_names: {
      car: "car", motorcycle: "motorcycle", bus: "bus", truck: "truck", bicycle: "bicycle", person: "pedestrian",
    },
    directions_names: { north: "north", south: "south", east: "east", west: "west", in: "in", out: "out" },
    not_found: "Not found",
    fleet_edges: "Edges", fleet_cameras: "Cameras", fleet_group: "Group", fleet_all_groups: "All groups",
    fleet_edge: "Edge", fleet_version: "Version", fleet_models: "Models", fleet_model: "Model",
    fleet_config: "Config (runs / desired)", fleet_host: "Host", fleet_last_seen: "Last seen",
    fleet_alerts: "Alerts", fleet_ok: "ok", fleet_fps: "fps", fleet_outbox: "Outbox",
    fleet_actions: "Actions", fleet_remove: "Remove", fleet_export: "Export site file",
    fleet_confirm_remove: "Remove camera {id}?", fleet_removed: "Camera {id} removed",
    page_fleet: "Fleet",
    fleet_pinned: "pinned", fleet_rollback: "Roll back", fleet_confirm_rollback: "Roll group {group} back to {model}?",
    fleet_rolled_back: "Group {group} rolled back to its previous model",
    page_setup: "Camera setup", setup_line: "Counting line", setup_zone: "Zone", setup_dir_pos: "Positive direction",
    setup_dir_neg: "Negative direction", setup_frame: "Live frame", setup_id: "Id", setup_name: "Name",
    setup_source_kind: "Source kind", setup_source: "Source", setup_loop: "Loop the file", setup_lat: "Latitude",
    setup_lon: "Longitude", setup_rules: "Rules (JSON)", setup_save: "Save", setup_add_shape: "Add shape",
    setup_clear: "Clear points", setup_reload_frame: "Reload frame", setup_lines: "Counting lines",
    setup_zones: "Zones", setup_need_id: "Enter an id", setup_need_points: "At least {n} points are needed",
    setup_no_frame: "No frame from this camera yet", setup_bad_json: "Not valid JSON: {detail}",
    setup_saved: "Camera {id} saved", setup_new: "New camera",
  },
};

export const LANGS = ["vi", "en"];
const LOCALES = { vi: "vi-VN", en: "en-GB" };
let lang = LANGS.includes(localStorage.getItem("citywatch.lang")) ? localStorage.getItem("citywatch.lang") : "vi";
let timeZone = "Asia/Ho_Chi_Minh";
const listeners = new Set();
const cache = new Map(); // Intl formatters are costly to build: one per (locale, options)

export const getLang = () => lang;
export const locale = () => LOCALES[lang];
export const siteZone = () => timeZone;
export function setTimeZone(tz) { timeZone = tz || timeZone; cache.clear(); }

/** The string for key in the current language, with {name} placeholders filled from vars. */
export function t(key, vars) {
  const s = TABLE[lang][key] ?? TABLE.en[key] ?? key;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ""));
}

function named(group, key) { return (TABLE[lang][group] || {})[key] || key; }
export const typeName = (k) => named("types", k);
export const className = (k) => named("classes_names", k);
export const directionName = (k) => named("directions_names", k);
export const eventName = (k) => named("event_names", k);
export const auditName = (k) => named("audit_actions", k);
export const stateName = (k) => t(k || "unknown");
export const workflowName = (k) => t(`wf_${k || "new"}`);
export const severityName = (k) => t(`sev_${k}`);
export const qualityName = (k) => t(`q_${k}`);

export function setLang(next) {
  if (!LANGS.includes(next) || next === lang) return;
  lang = next;
  localStorage.setItem("citywatch.lang", lang);
  cache.clear();
  applyStatic();
  for (const fn of listeners) fn(lang);
}
export function onLangChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function formatter(kind, opts) {
  const key = `${kind}|${JSON.stringify(opts)}`;
  let f = cache.get(key);
  if (!f) {
    f = kind === "n" ? new Intl.NumberFormat(locale(), opts) : new Intl.DateTimeFormat(locale(), { timeZone, ...opts });
    cache.set(key, f);
  }
  return f;
}

/** A date and time in the site zone, e.g. vi-VN "14:03:05 28/11/26", en-GB "28/11/2026, 14:03:05". */
export function fmtDateTime(iso) {
  if (!iso) return "";
  return formatter("d", { dateStyle: "short", timeStyle: "medium" }).format(new Date(iso));
}
export function fmtDate(iso) { return iso ? formatter("d", { dateStyle: "medium" }).format(new Date(iso)) : ""; }
export function fmtTime(iso) { return iso ? formatter("d", { timeStyle: "short" }).format(new Date(iso)) : ""; }
/** A bucket label fitting its size: time only for 15 min, date + hour for hours, date for days. */
export function fmtBucket(iso, bin) {
  const d = new Date(iso);
  if (bin === "1d") return formatter("d", { dateStyle: "short" }).format(d);
  return formatter("d", { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" }).format(d);
}
export function fmtNumber(n, digits = 0) {
  if (n == null || Number.isNaN(n)) return "–";
  return formatter("n", { maximumFractionDigits: digits }).format(n);
}
export function fmtPercent(x, digits = 0) {
  if (x == null) return "–";
  return formatter("n", { style: "percent", maximumFractionDigits: digits }).format(x);
}
/** A duration in seconds as "1 h 02 min" / "3 min 05 s" (units are the same in both languages). */
export function fmtDuration(seconds) {
  if (seconds == null) return "–";
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (x) => String(x).padStart(2, "0");
  if (h) return `${fmtNumber(h)} h ${pad(m)} min`;
  if (m) return `${m} min ${pad(r)} s`;
  return `${r} s`;
}

/** The site zone's offset from UTC at a given instant, in minutes. */
function zoneOffsetMinutes(date) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(date);
  const v = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(+v.year, +v.month - 1, +v.day, +v.hour, +v.minute, +v.second);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
}
/** A wall-clock time in the site zone ("2026-03-01T08:00" from a date/datetime-local input) as ISO 8601 with offset. */
export function siteWallToIso(wall) {
  if (!wall) return null;
  const [d, tm = "00:00"] = wall.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [hh, mi] = tm.split(":").map(Number);
  const guess = new Date(Date.UTC(y, mo - 1, da, hh, mi));
  const off = zoneOffsetMinutes(new Date(guess.getTime() - zoneOffsetMinutes(guess) * 60000));
  const sign = off >= 0 ? "+" : "-";
  const pad = (x) => String(Math.abs(x)).padStart(2, "0");
  return `${d}T${pad(hh)}:${pad(mi)}:00${sign}${pad(Math.trunc(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}
/** Today's date (YYYY-MM-DD) in the site zone, shifted by days. */
export function siteDate(shiftDays = 0) {
  const d = new Date(Date.now() + shiftDays * 86400000);
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
}

/** Translate the static parts of the page (data-i18n attributes). */
export function applyStatic(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.setAttribute("title", t(el.dataset.i18nTitle));
  document.title = t("app_title");
}
