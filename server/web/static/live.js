// One live WebSocket for the whole app; views subscribe to its messages and connection state.
import { LiveSocket } from "./api.js";
import { t } from "./i18n.js";

const subscribers = new Set();
let socket = null;
let state = "disconnected";

function setState(next) {
  state = next;
  const badge = document.getElementById("conn");
  badge.className = `conn ${next === "live" ? "on" : "off"}`;
  badge.dataset.i18n = next;
  badge.textContent = t(next);
}

export function subscribe(fn) { subscribers.add(fn); return () => subscribers.delete(fn); }
export const connectionState = () => state;

export function startLive() {
  stopLive();
  socket = new LiveSocket((msg) => { for (const fn of subscribers) fn(msg); }, setState);
  socket.start();
}

export function stopLive() {
  if (socket) socket.stop();
  socket = null;
}
