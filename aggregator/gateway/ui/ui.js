// The operator page: one workflow's status, kept current through the gateway's
// event stream, and lists of ids to click through. Everything shown from the
// server goes in as text (textContent), never as markup.

import { EventStreamParser, readEventStream } from "./sse.js";

const KEY_STORE = "status-aggregator.api-key"; // sessionStorage: gone with the tab's session
const RECENT_STORE = "status-aggregator.recent"; // localStorage: ids only
const RECENT_MAX = 10;
const IN_FLIGHT_EVERY_MS = 3000;
const IN_FLIGHT_MAX = 100; // the gateway's default max_batch
const RETRY_FIRST_MS = 1000; // until the server says otherwise with "retry:"
const RETRY_MAX_MS = 30000;
// No byte (not even a heartbeat) for this long: the connection is taken for dead.
const SILENCE_MS = 45000;
const PROBLEM_JSON = /^application\/(problem\+)?json/;

const $ = (id) => document.getElementById(id);

// --- small helpers ---------------------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

/** The id as one path segment: "." and ".." must not be read as dot-segments. */
function segment(id) {
  const encoded = encodeURIComponent(id);
  return encoded === "." || encoded === ".." ? encoded.replaceAll(".", "%2E") : encoded;
}

// Relative: the page works behind a proxy that mounts the gateway under a prefix.
const workflowUrl = (id, tail) => `workflows/${segment(id)}/${tail}`;

const idLink = (id) => {
  const link = element("a", id);
  link.href = `#${encodeURIComponent(id)}`;
  return link;
};

function storage(kind) {
  try {
    return window[kind];
  } catch {
    return null; // storage refused by the browser's settings
  }
}

function apiKey() {
  return storage("sessionStorage")?.getItem(KEY_STORE) ?? null;
}

function apiHeaders(extra = {}) {
  const key = apiKey();
  return key === null ? { ...extra } : { ...extra, "X-API-Key": key };
}

async function readProblem(response) {
  const fallback = { title: `HTTP ${response.status}`, detail: response.statusText || "" };
  if (!PROBLEM_JSON.test(response.headers.get("Content-Type") ?? "")) return fallback;
  try {
    const body = await response.json();
    return {
      title: typeof body.title === "string" ? body.title : fallback.title,
      detail: typeof body.detail === "string" ? body.detail : "",
      type: typeof body.type === "string" ? body.type : "",
    };
  } catch {
    return fallback;
  }
}

const humanise = (word) => String(word).replaceAll("_", " ");
const seconds = (ms) => Math.round(ms / 1000);

/** A time as the reader's clock shows it: the time of day, with the date if not today. */
function when(iso) {
  if (!iso) return "unknown";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const time = date.toLocaleTimeString([], { hour12: false });
  return date.toDateString() === new Date().toDateString()
    ? time
    : `${date.toLocaleDateString()} ${time}`;
}

// --- the stream status line and the problem box ----------------------------------

function say(state, text) {
  const line = $("stream");
  line.dataset.state = state;
  line.textContent = text;
}

function showProblem(problem) {
  $("problem-title").textContent = problem.title;
  $("problem-detail").textContent = problem.detail;
  $("problem").hidden = false;
}

function clearProblem() {
  $("problem").hidden = true;
}

// --- rendering a status ----------------------------------------------------------

const OUTCOME_TEXT = { ok: "ok", not_found: "no record", unavailable: "unavailable", invalid: "invalid" };
const GOOD = new Set(["delivered"]);
const BAD = new Set(["payment_failed", "cancelled", "compensated", "compensating", "unknown"]);
// Shown in their own rows: the rest of a participant's view is listed after them.
const SHOWN_APART = new Set(["workflow_id", "state", "version", "updated_at"]);

const tone = (status) => (GOOD.has(status) ? "good" : BAD.has(status) ? "bad" : "neutral");

/** The source badge: live, cache, stale 12 s, or missing: why. */
function sourceBadge(part, extraMs) {
  if (part.source === null || part.source === undefined) {
    const why = part.error ? humanise(part.error.kind) : humanise(part.outcome);
    return { text: `missing: ${why}`, tone: "bad" };
  }
  if (part.source === "stale") {
    return { text: `stale ${seconds((part.age_ms ?? 0) + extraMs)} s`, tone: "warn" };
  }
  return { text: part.source, tone: "good" };
}

function badge(text, tone, className) {
  const node = element("span", text, `badge ${className}`);
  node.dataset.tone = tone;
  return node;
}

function row(list, term, value) {
  const wrap = element("div");
  const detail = element("dd");
  detail.append(value);
  wrap.append(element("dt", term), detail);
  list.append(wrap);
}

/** One value of a participant's view, as text: an object as "key value, ...". */
function viewText(value) {
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return value.map(viewText).join(", ");
  return Object.entries(value)
    .map(([key, inner]) => `${humanise(key)} ${viewText(inner)}`)
    .join(", ");
}

/** A list (the items of an order, say) one entry a line; anything else as text. */
function viewValue(value) {
  if (!Array.isArray(value)) return viewText(value);
  if (value.length === 0) return "none";
  const list = element("ul", null, "view-list");
  list.append(...value.map((item) => element("li", viewText(item))));
  return list;
}

function card(name, part) {
  const article = element("article", null, "card");
  article.dataset.participant = name;
  const headingId = `card-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  article.setAttribute("aria-labelledby", headingId);
  const heading = element("h4", name);
  heading.id = headingId;
  const badges = element("p", null, "badges");
  const outcome = OUTCOME_TEXT[part.outcome] ?? humanise(part.outcome);
  const outcomeTone = part.outcome === "ok" ? "good" : part.outcome === "not_found" ? "quiet" : "bad";
  badges.append(badge(outcome, outcomeTone, "outcome"));
  const source = sourceBadge(part, 0);
  const sourceNode = badge(source.text, source.tone, "source");
  if (part.source === "stale") sourceNode.dataset.staleAgeMs = String(part.age_ms ?? 0);
  badges.append(" ", sourceNode);
  const facts = element("dl", null, "facts");
  row(facts, "State", String(part.state ?? "none"));
  row(facts, "Version", String(part.version ?? "none"));
  row(facts, "Updated", when(part.updated_at));
  for (const [field, value] of Object.entries(part.view ?? {})) {
    if (!SHOWN_APART.has(field)) row(facts, humanise(field), viewValue(value));
  }
  article.append(heading, badges, facts);
  if (part.error) {
    const error = element("p", null, "error");
    error.append(element("strong", "Error: "), `${humanise(part.error.kind)}: ${part.error.detail}`);
    article.append(error);
  }
  return article;
}

let renderedAt = 0; // when the status on screen arrived (performance.now())

function render(status) {
  renderedAt = performance.now();
  $("workflow-heading").textContent = status.workflow_id;
  const statusNode = $("status");
  statusNode.textContent = status.status; // the API's word, as logs and the CLI say it
  statusNode.dataset.tone = tone(status.status);
  const complete = $("complete");
  complete.replaceChildren(badge(status.complete ? "yes" : "no", status.complete ? "good" : "warn", "flag"));
  if (!status.complete) complete.append(" ", element("span", "some parts are missing or stale", "note"));
  $("derived-from").textContent = status.derived_from.length ? status.derived_from.join(", ") : "none";
  $("since").textContent = when(status.since);
  $("definition").textContent = status.workflow;
  $("generated-at").textContent = when(status.generated_at);

  const anomalies = $("anomalies");
  anomalies.replaceChildren();
  for (const anomaly of status.anomalies) {
    const item = element("li", null, "anomaly");
    item.append(element("strong", anomaly.code), ` ${anomaly.message}`);
    if (anomaly.participants.length) item.append(` (${anomaly.participants.join(", ")})`);
    if (!anomaly.confirmed) item.append(" ", badge("unconfirmed", "warn", "confirmation"));
    anomalies.append(item);
  }
  if (!status.anomalies.length) anomalies.append(element("li", "none", "note"));

  $("cards").replaceChildren(
    ...Object.entries(status.participants).map(([name, part]) => card(name, part)),
  );

  const timeline = $("timeline");
  timeline.replaceChildren(
    ...status.timeline.map((step) => element("li", `${step.participant} ${step.state}, ${when(step.at)}`)),
  );
  if (!status.timeline.length) timeline.append(element("li", "nothing to show yet", "note"));
  $("workflow").hidden = false;
}

// A stale part's age keeps growing while no new event comes: count it on screen.
function tickStaleAges() {
  const since = performance.now() - renderedAt;
  for (const node of document.querySelectorAll(".source[data-stale-age-ms]")) {
    node.textContent = `stale ${seconds(Number(node.dataset.staleAgeMs) + since)} s`;
  }
}

// --- the API key ------------------------------------------------------------------

let onKey = () => {}; // what to do again once a key is given

/** A request was refused (401): ask for a key; `sent` is the key it carried, if any. */
function askForKey(sent, problem) {
  const form = $("key-form");
  const note = $("key-note");
  if (sent !== null) {
    if (apiKey() === sent) storage("sessionStorage")?.removeItem(KEY_STORE);
    note.textContent = `That key was refused: ${problem.detail || problem.title}. Enter another.`;
    note.dataset.tone = "bad";
  } else if (form.hidden) {
    note.textContent =
      "This gateway needs an API key. It is kept for this browser session only, and sent as X-API-Key.";
    note.dataset.tone = "neutral";
  }
  $("forget-key").hidden = apiKey() === null;
  form.hidden = false;
  $("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  const input = $("api-key");
  const key = input.value.trim();
  if (!key) return;
  storage("sessionStorage")?.setItem(KEY_STORE, key);
  input.value = "";
  $("key-form").hidden = true;
  $("forget-key").hidden = false;
  onKey();
}

function forgetKey() {
  storage("sessionStorage")?.removeItem(KEY_STORE);
  $("forget-key").hidden = true;
}

// --- watching one workflow through its event stream --------------------------------

class Watch {
  constructor(id) {
    this.id = id;
    this.stopped = false;
    this.lastEventId = null;
    this.retryMs = RETRY_FIRST_MS;
    this.failures = 0; // consecutive: the backoff doubles with each
    this.connection = null; // the AbortController of the request under way
    this.wake = null; // ends a wait early when stopped
  }

  stop() {
    this.stopped = true;
    this.connection?.abort();
    this.wake?.();
  }

  async run() {
    while (!this.stopped) {
      const end = await this.connect();
      if (this.stopped || end.kind !== "dropped") return;
      await this.waitBeforeRetry(end);
    }
  }

  async connect() {
    const connection = new AbortController();
    this.connection = connection;
    const headers = apiHeaders({ Accept: "text/event-stream" });
    if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
    const sent = headers["X-API-Key"] ?? null;
    if (this.failures === 0) say("connecting", `connecting to the events of ${this.id}…`);
    else say("down", "stream down, reconnecting…");
    let response;
    try {
      response = await fetch(workflowUrl(this.id, "events"), {
        headers,
        signal: connection.signal,
        cache: "no-store",
        redirect: "error", // the key is never carried to where a redirect points
      });
    } catch {
      return { kind: "dropped", reason: "the gateway cannot be reached" };
    }
    if (response.status === 204) {
      // The gateway says the last event this page had was the final one.
      say("final", `final: ${this.id} is over; nothing more will change`);
      return { kind: "final" };
    }
    if (!response.ok) return this.refused(response, sent);
    return this.read(response, connection);
  }

  async refused(response, sent) {
    const problem = await readProblem(response);
    if (this.stopped) return { kind: "stopped" };
    if (response.status === 401) {
      say("waiting", `waiting for an API key to watch ${this.id}`);
      askForKey(sent, problem);
      return { kind: "refused" };
    }
    if (response.status < 500) {
      // 400 (a bad id), 404 (no participant knows it) and the like: asking again
      // would get the same answer.
      $("workflow").hidden = true;
      showProblem(problem);
      say("refused", `not watching ${this.id}: ${problem.title}`);
      return { kind: "refused" };
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    return {
      kind: "dropped",
      reason: problem.title,
      atLeastMs: Number.isFinite(retryAfter) ? retryAfter * 1000 : 0,
    };
  }

  async read(response, connection) {
    let final = false;
    let silence = null;
    const listen = () => {
      clearTimeout(silence);
      silence = setTimeout(() => connection.abort(), SILENCE_MS);
    };
    const parser = new EventStreamParser((event) => {
      // A chunk read just before this watch was stopped must not paint over the next.
      if (this.stopped) return;
      if (event.type !== "status" && event.type !== "final") return;
      let status;
      try {
        status = JSON.parse(event.data);
      } catch {
        console.warn("an event whose data is not JSON was ignored");
        return;
      }
      this.failures = 0;
      clearProblem();
      render(status);
      remember(this.id);
      if (event.type === "final") {
        final = true;
        say("final", `final: ${this.id} is ${status.status}; the stream has ended`);
        connection.abort(); // the server ends it too; nothing more will come
      } else {
        say("live", "live: updates as the workflow changes");
      }
    });
    const reader = {
      push: (text) => {
        listen();
        parser.push(text);
      },
    };
    listen();
    try {
      await readEventStream(response, reader, connection.signal);
    } catch {
      // broken off: told apart below
    } finally {
      clearTimeout(silence);
      if (parser.lastEventId !== null) this.lastEventId = parser.lastEventId;
      if (parser.retry !== null) this.retryMs = parser.retry;
    }
    if (final) return { kind: "final" };
    if (this.stopped) return { kind: "stopped" };
    return { kind: "dropped", reason: "the stream was cut" };
  }

  waitBeforeRetry(end) {
    const backoff = Math.min(RETRY_MAX_MS, this.retryMs * 2 ** this.failures);
    const jittered = backoff * (0.8 + 0.4 * Math.random()); // pages do not come back in step
    const delay = Math.max(end.atLeastMs ?? 0, jittered);
    this.failures += 1;
    const until = performance.now() + delay;
    return new Promise((resolve) => {
      let timer = null;
      const done = () => {
        clearInterval(timer);
        this.wake = null;
        resolve();
      };
      const tick = () => {
        const left = Math.ceil((until - performance.now()) / 1000);
        if (left <= 0 || this.stopped) {
          done();
          return;
        }
        say("down", `stream down, retrying in ${left} s (${end.reason})`);
      };
      this.wake = done;
      timer = setInterval(tick, 200);
      tick();
    });
  }
}

let watch = null;

function show(id) {
  watch?.stop();
  clearProblem();
  $("workflow").hidden = true;
  $("workflow-id").value = id;
  watch = new Watch(id);
  watch.run();
}

function idFromHash() {
  if (location.hash.length < 2) return null;
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return null; // a malformed hash: nothing to show
  }
}

function lookUp(event) {
  event.preventDefault();
  const id = $("workflow-id").value.trim();
  if (!id) return;
  if (idFromHash() === id) show(id); // same hash: no hashchange, look again all the same
  else location.hash = encodeURIComponent(id);
}

// --- recently viewed ---------------------------------------------------------------

function recentIds() {
  try {
    const ids = JSON.parse(storage("localStorage")?.getItem(RECENT_STORE) ?? "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

function remember(id) {
  const ids = recentIds();
  if (ids[0] === id) return;
  const kept = [id, ...ids.filter((other) => other !== id)].slice(0, RECENT_MAX);
  storage("localStorage")?.setItem(RECENT_STORE, JSON.stringify(kept));
  showRecent();
}

function showRecent() {
  const ids = recentIds();
  $("recent").replaceChildren(...ids.map((id) => {
    const item = element("li");
    item.append(idLink(id));
    return item;
  }));
  $("recent-empty").hidden = ids.length > 0;
}

// --- orders in flight: ids given to the page, their statuses by batch ----------------

/** A same-origin path (starting with one "/"), or null. */
function samePath(value) {
  if (!value || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) {
    return null;
  }
  const url = new URL(value, location.origin);
  return url.origin === location.origin ? url.pathname + url.search : null;
}

async function inFlightIds(given, idsUrl) {
  const ids = [...given];
  if (idsUrl !== null) {
    // Any path of this origin, maybe not the gateway's: it never gets the key.
    const response = await fetch(idsUrl, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
    if (!response.ok) throw new Error(`${idsUrl} answered HTTP ${response.status}`);
    const listed = await response.json();
    if (!Array.isArray(listed)) throw new Error(`${idsUrl} did not answer a list of ids`);
    ids.push(...listed.filter((id) => typeof id === "string"));
  }
  return [...new Set(ids)].slice(0, IN_FLIGHT_MAX);
}

function inFlightItem(result) {
  const item = element("li");
  const said = element("span", null, "said");
  item.append(idLink(result.workflow_id), " ", said);
  const status = result.status;
  if (result.problem) {
    // 404 and 503 entries carry a status too ("unknown"): the problem says it better.
    said.append(element("span", result.problem.title, "note"));
  } else if (status) {
    said.append(badge(status.status, tone(status.status), "status"));
    if (!status.complete) said.append(" ", badge("incomplete", "warn", "flag"));
    if (status.anomalies.length) {
      const count = status.anomalies.length;
      said.append(" ", badge(`${count} ${count === 1 ? "anomaly" : "anomalies"}`, "bad", "flag"));
    }
  }
  return item;
}

async function refreshInFlight(given, idsUrl) {
  const note = $("in-flight-note");
  const sent = apiKey();
  try {
    const ids = await inFlightIds(given, idsUrl);
    if (!ids.length) {
      $("in-flight").replaceChildren();
      note.textContent = "No orders in flight.";
      return;
    }
    const response = await fetch("workflows/status:batch", {
      method: "POST",
      headers: apiHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify({ ids }),
      cache: "no-store",
      redirect: "error",
    });
    if (!response.ok) {
      const problem = await readProblem(response);
      if (response.status === 401) askForKey(sent, problem);
      note.textContent = `${problem.title}: ${problem.detail}`;
      return;
    }
    const { results } = await response.json();
    $("in-flight").replaceChildren(...results.map(inFlightItem));
    note.textContent = `${results.length} shown, refreshed every ${IN_FLIGHT_EVERY_MS / 1000} s.`;
  } catch (error) {
    note.textContent = `Cannot list them now: ${error.message}`;
  }
}

function startInFlight() {
  const params = new URLSearchParams(location.search);
  const given = (params.get("ids") ?? "").split(",").map((id) => id.trim()).filter(Boolean);
  const rawUrl = params.get("ids_url");
  const idsUrl = samePath(rawUrl);
  if (!given.length && rawUrl === null) return () => {};
  $("in-flight-section").hidden = false;
  if (rawUrl !== null && idsUrl === null) {
    $("in-flight-note").textContent = "ids_url must be a path on this gateway, starting with /.";
    if (!given.length) return () => {};
  }
  const refresh = async () => {
    await refreshInFlight(given, idsUrl);
    setTimeout(refresh, IN_FLIGHT_EVERY_MS); // after the last answer: never two at once
  };
  refresh();
  return () => refreshInFlight(given, idsUrl);
}

// --- start ---------------------------------------------------------------------------

function start() {
  $("lookup").addEventListener("submit", lookUp);
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  // The hash names the workflow shown: the skip link moves the focus, not the hash.
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    $("main").focus();
  });
  $("forget-key").hidden = apiKey() === null;
  window.addEventListener("hashchange", () => {
    const id = idFromHash();
    if (id !== null) show(id);
  });
  showRecent();
  const refreshNow = startInFlight();
  onKey = () => {
    if (watch !== null) show(watch.id);
    refreshNow();
  };
  setInterval(tickStaleAges, 1000);
  const id = idFromHash();
  if (id !== null) show(id);
  else $("workflow-id").focus();
}

start();
