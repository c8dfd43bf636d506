// The server API: the session (token in sessionStorage), fetch with the bearer header, the live WebSocket.

const TOKEN_KEY = "citywatch.token";
const USER_KEY = "citywatch.user";

/** Errors of the API, with the HTTP status and the server's `detail`. */
export class ApiError extends Error {
  constructor(status, detail, headers) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || `HTTP ${status}`;
    this.headers = headers;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get user() {
    try { return JSON.parse(sessionStorage.getItem(USER_KEY) || "null"); } catch { return null; }
  },
  save(token, user) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(user));
  },
  saveUser(user) { sessionStorage.setItem(USER_KEY, JSON.stringify(user)); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(USER_KEY); },
};

async function detailOf(res) {
  try {
    const body = await res.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return JSON.stringify(body);
  } catch {
    return res.statusText;
  }
}

/** fetch() of an /api/v1 path with the bearer token; a 401 ends the session (back to the login). */
export async function request(path, { method = "GET", body, form, params, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v == null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, one);
  }
  const headers = {};
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (form) { payload = new URLSearchParams(form); headers["Content-Type"] = "application/x-www-form-urlencoded"; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  const res = await fetch(url, { method, headers, body: payload, signal, cache: "no-store" });
  if (res.status === 401 && token && !path.startsWith("/api/v1/auth/token")) {
    onUnauthorized();
  }
  if (!res.ok) throw new ApiError(res.status, await detailOf(res), res.headers);
  return res;
}

export async function getJson(path, opts) { return (await request(path, opts)).json(); }
export async function postJson(path, body) { return (await request(path, { method: "POST", body })).json(); }
/** A binary resource (an image, a download) as a Blob: <img src> and <a href> cannot send the header. */
export async function getBlob(path, opts) { return (await request(path, opts)).blob(); }

/** Log in (OAuth2 password flow); returns the user. Throws ApiError (401 wrong, 429 with Retry-After). */
export async function login(username, password) {
  const res = await request("/api/v1/auth/token", { method: "POST", form: { username, password } });
  const body = await res.json();
  session.save(body.access_token, body.user);
  return body.user;
}

/**
 * The live WebSocket, reconnecting with back-off. Each message is passed to onMessage; onState gets
 * "connecting" | "live" | "disconnected". The token never goes in the URL (URLs end up in logs): the
 * socket opens without it and the first message sent is {"type": "auth", "token": ...}. A close with
 * code 4401 (bad or expired token) ends the session; 4403 (the role may not) stops; 4429 (too many
 * sockets) retries with back-off.
 */
export class LiveSocket {
  constructor(onMessage, onState) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.stopped = false;
    this.delay = 1000;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  open() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    this.onState("connecting");
    const ws = new WebSocket(`${proto}://${location.host}/api/v1/live/ws`);
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token: session.token || "" }));
      this.delay = 1000;
      this.onState("live");
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onState("disconnected");
      if (ev.code === 4401) { onUnauthorized(); return; }
      if (ev.code === 4403) return; // this role may not see live data: asking again will not help
      if (this.stopped) return;
      this.timer = setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
  }
}
