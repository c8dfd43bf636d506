// What each role may see and do. The server enforces the same rules (403); the page only hides.

export const PAGES = ["map", "console", "planner", "fleet", "setup"];

const PAGE_ROLES = {
  map: ["admin", "operator", "police"],
  console: ["admin", "police"],
  planner: ["admin", "planner"],
  fleet: ["admin", "operator"],
  setup: ["admin"],
};

const ACTION_ROLES = {
  acknowledge: ["admin", "operator", "police"],
  assign: ["admin", "police"],
  resolve: ["admin", "police"],
  false_alarm: ["admin", "police"],
};

// Workflow transitions offered from each state (the server answers 409 to anything else).
const NEXT = {
  new: ["acknowledge", "assign", "resolve", "false_alarm"],
  acknowledged: ["assign", "resolve", "false_alarm"],
  assigned: ["assign", "resolve", "false_alarm"],
  resolved: [],
  false_alarm: [],
};

export const ACTION_PATH = { acknowledge: "acknowledge", assign: "assign", resolve: "resolve", false_alarm: "false-alarm" };

export const pagesFor = (role) => PAGES.filter((p) => PAGE_ROLES[p].includes(role));
export const canSee = (role, page) => (PAGE_ROLES[page] || []).includes(role);
export const canDo = (role, action) => (ACTION_ROLES[action] || []).includes(role);
export const canSeeEvidence = (role) => role !== "planner";
/** The actions this role may take on an incident in this workflow state. */
export const actionsFor = (role, state) => (NEXT[state || "new"] || []).filter((a) => canDo(role, a));
