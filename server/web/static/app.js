// citywatch operations app: login, role-based pages (live map, police console, planner), language.
import { ApiError, getJson, login, session, setUnauthorizedHandler } from "./api.js";
import { h, fill, toast } from "./dom.js";
import { applyStatic, getLang, onLangChange, setLang, setTimeZone, t } from "./i18n.js";
import { startLive, stopLive, subscribe } from "./live.js";
import { canSee, pagesFor } from "./roles.js";
import { enableSound } from "./sound.js";

const views = {};   // page -> controller {show(), hide()} (created on first visit)
let site = null;
let user = null;
let current = null;

const LOADERS = {
  map: () => import("./map.js").then((m) => m.createMapView),
  console: () => import("./console.js").then((m) => m.createConsoleView),
  planner: () => import("./planner.js").then((m) => m.createPlannerView),
  fleet: () => import("./fleet.js").then((m) => m.createFleetView),
  setup: () => import("./setup.js").then((m) => m.createSetupView),
};

function ctx() {
  return { site, user, subscribe };
}

async function loadSite() {
  site = await getJson("/api/v1/site");
  setTimeZone(site.timezone);
  document.getElementById("site-name").textContent = `citywatch · ${site.name}`;
}

function showLogin(message) {
  stopLive();
  for (const v of Object.values(views)) v.destroy?.();
  for (const k of Object.keys(views)) delete views[k];
  current = null;
  user = null;
  for (const el of document.querySelectorAll(".view")) el.hidden = true;
  for (const id of ["nav", "conn", "sound-toggle", "user", "logout"]) document.getElementById(id).hidden = true;
  document.getElementById("login-view").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("login-password").value = "";
  document.getElementById("login-username").focus();
  if (location.hash) history.replaceState(null, "", location.pathname);
}

function renderUser() {
  const el = document.getElementById("user");
  fill(el, h("span", { class: "who" }, user.display_name || user.username), " ",
    h("span", { class: "role", dataset: { role: user.role } }, t(`role_${user.role}`)));
}

async function enterApp() {
  document.getElementById("login-view").hidden = true;
  const pages = pagesFor(user.role);
  for (const a of document.querySelectorAll("#nav a")) {
    // Pages of other roles are removed from the navigation, not only hidden.
    a.hidden = !pages.includes(a.dataset.page);
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("user").hidden = false;
  const liveRole = canSee(user.role, "map") || canSee(user.role, "console");
  document.getElementById("conn").hidden = !liveRole;
  document.getElementById("sound-toggle").hidden = !liveRole;
  renderUser();
  if (!site) await loadSite();
  if (liveRole) startLive();
  await route();
}

async function route() {
  if (!user) return;
  const pages = pagesFor(user.role);
  let page = location.hash.replace(/^#\/?/, "").split("?")[0];
  if (!pages.includes(page)) {
    page = pages[0];
    history.replaceState(null, "", `#${page}`);
  }
  if (current === page) return;
  if (current && views[current]) views[current].hide();
  for (const el of document.querySelectorAll(".view")) el.hidden = el.id !== `view-${page}`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  current = page;
  if (!views[page]) {
    const create = await LOADERS[page]();
    views[page] = create(document.getElementById(`view-${page}`), ctx());
  }
  views[page].show();
}

async function onLogin(ev) {
  ev.preventDefault();
  const err = document.getElementById("login-error");
  err.textContent = "";
  const username = document.getElementById("login-username").value.trim();
  const password = document.getElementById("login-password").value;
  try {
    user = await login(username, password);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) err.textContent = t("wrong_login");
    else if (e instanceof ApiError && e.status === 429) err.textContent = t("too_many", { s: e.headers?.get("Retry-After") || "60" });
    else err.textContent = t("login_failed", { status: e instanceof ApiError ? e.status : e.message });
    return;
  }
  await enterApp();
}

function logout() {
  session.clear();
  showLogin();
}

async function start() {
  applyStatic();
  const sel = document.getElementById("lang");
  sel.value = getLang();
  sel.addEventListener("change", () => setLang(sel.value));
  onLangChange(() => { if (user) renderUser(); });
  document.getElementById("login-form").addEventListener("submit", onLogin);
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("sound").addEventListener("change", (e) => enableSound(e.target.checked));
  window.addEventListener("hashchange", () => route().catch(reportError));
  setUnauthorizedHandler(() => {
    if (!session.token) return;
    session.clear();
    showLogin(t("session_expired"));
  });
  if (!session.token) { showLogin(); return; }
  try {
    user = await getJson("/api/v1/auth/me");
    session.saveUser(user);
  } catch (e) {
    session.clear();
    showLogin(e instanceof ApiError && e.status === 401 ? t("session_expired") : "");
    return;
  }
  await enterApp();
}

function reportError(e) {
  console.warn(e);
  toast(t("error", { detail: e instanceof ApiError ? e.detail : e.message }), "error");
}

start().catch(reportError);
