// The audience's side of PROTOCOL.md "Audience" on the watch page: a viewer writes a question or
// a comment (in the page's language) and votes over the small socket /live/<room>/audience; the
// approved questions and the polls are read, in the viewer's language, from the cacheable
// documents /live/<room>/questions.<lang>.json and polls.<lang>.json (a CDN can carry them).
// In a cluster the socket follows `redirect` to the room's node, and reconnects through the
// nodes `welcome.cluster` named when that node dies (PROTOCOL.md "Clusters").
// AudienceSocket has no DOM; startAudience is the page's glue.

import { startStage } from "./stage.js";

const DOCUMENT_POLL_MS = 2000;
const RECONNECT_MS = 3000;
const VIEWER_KEY = "parley.viewer";

/** This browser's random viewer id (kept across visits: one vote per viewer). */
export function viewerId(storage = globalThis.localStorage) {
  let id = storage?.getItem(VIEWER_KEY);
  if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    storage?.setItem(VIEWER_KEY, id);
  }
  return id;
}

/** Redirects followed in a row without a `welcome` (a loop between nodes is a bug: stop). */
export const MAX_AUDIENCE_REDIRECTS = 4;

/** The audience socket of `room` on the server this page came from. */
export function homeAudienceUrl(room, loc = globalThis.location) {
  const scheme = loc.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${loc.host}/live/${encodeURIComponent(room)}/audience`;
}

/** Where reconnecting attempt `attempt` (0, 1, ...) goes: our own server first, then each
 * node `welcome.cluster.nodes` named, in turn (PROTOCOL.md "Clusters": a live node sends the
 * socket on to the room's node). */
export function audienceReconnectUrl(attempt, homeUrl, nodes) {
  const urls = [homeUrl, ...nodes.filter((u) => u !== homeUrl)];
  return urls[attempt % urls.length];
}

/** The HTTP base of the node whose audience socket is `socketUrl` (its documents are under
 * it): `wss://h/node/a/live/r/audience` -> `https://h/node/a`. */
export function documentBase(socketUrl, room) {
  const suffix = `/live/${encodeURIComponent(room)}/audience`;
  const http = socketUrl.replace(/^ws(s?):/, "http$1:");
  return http.endsWith(suffix) ? http.slice(0, -suffix.length) : http;
}

/** The socket: `hello` on open; `request` resolves with the server's answer (in order). In a
 * cluster, `redirect` sends it to the room's node at once (a new socket, the same `hello`), and
 * `reconnect()` tries our own server and then the nodes the last `welcome` named. */
export class AudienceSocket {
  constructor({
    room, hello, url = null, onWelcome = () => {}, onPush = () => {}, onClose = () => {},
    WebSocketImpl = globalThis.WebSocket,
  }) {
    this.room = room;
    this.hello = hello;
    this.onWelcome = onWelcome;
    this.onPush = onPush;
    this.onClose = onClose;
    this.WebSocketImpl = WebSocketImpl;
    /** @type {Array<(answer: any) => void>} */
    this.waiting = [];
    this.ws = null;
    this.homeUrl = url || homeAudienceUrl(room);
    this.url = this.homeUrl; // the socket now (a redirect changes it)
    this.welcomedUrl = null; // the socket whose node welcomed us (its documents are there)
    this.nodes = []; // every live node's audience socket of this room (`welcome.cluster`)
    this.node = null;
    this.redirects = 0;
    this.attempt = 0;
  }

  open(url = this.url) {
    this.url = url;
    const ws = new this.WebSocketImpl(url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", ...this.hello }));
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "redirect") this.follow(message);
      else if (message.type === "welcome") {
        this.redirects = 0;
        this.attempt = 0;
        this.welcomedUrl = url;
        this.node = message.cluster?.node ?? null;
        this.nodes = [...(message.cluster?.nodes || [])];
        this.onWelcome(message);
      } else if (message.type === "accepted" || message.type === "error" || message.type === "export") {
        const resolve = this.waiting.shift();
        if (resolve) resolve(message);
      } else this.onPush(message);
    };
    ws.onclose = (event) => {
      this.dropWaiting();
      this.ws = null;
      this.onClose(event);
    };
  }

  /** `redirect {url}`: the room's audience is on another node: go there now. */
  follow(message) {
    const old = this.ws;
    if (!old) return;
    if (this.redirects >= MAX_AUDIENCE_REDIRECTS) {
      old.close(4000, "redirect loop"); // onClose: the page reconnects later, from home
      return;
    }
    this.redirects += 1;
    old.onclose = null; // the old socket's close is not ours to report
    old.close(1000, "redirected");
    this.dropWaiting();
    this.open(message.url);
  }

  /** After a close: our own server, then each node of the cluster in turn. */
  reconnect() {
    const url = audienceReconnectUrl(this.attempt, this.homeUrl, this.nodes);
    this.attempt += 1;
    this.redirects = 0;
    this.open(url);
  }

  dropWaiting() {
    for (const resolve of this.waiting.splice(0)) {
      resolve({ type: "error", code: "closed", message: "not connected" });
    }
  }

  request(message) {
    if (!this.ws || this.ws.readyState !== this.WebSocketImpl.OPEN) {
      return Promise.resolve({ type: "error", code: "closed", message: "not connected" });
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.ws.send(JSON.stringify(message));
    });
  }
}

/** What the page says, in English (the room page says it in its reader's language: web/i18n's
 * catalogs have each under `audience.<key>`). */
const ENGLISH = {
  accepted: "Sent: a moderator will see it.",
  too_long: "That is too long.",
  empty: "Write something first.",
  bad_text: "That text has characters that are not allowed.",
  rate_limited: "Too many at once: try again in a moment.",
  duplicate: "You sent this already.",
  banned: "A moderator blocked questions from you for this event.",
  queue_full: "The moderators have too many questions waiting: try again later.",
  closed: "Not connected: try again in a moment.",
  answering: "answering now",
  answered: "answered",
  asked: "asked {count}×",
  translatedFrom: "translated from {lang}",
  vote: "Vote for this question ({votes} votes)",
  pollClosed: "{question} (closed)",
};

function english(key, params = {}) {
  return (ENGLISH[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

/** Questions and polls on the watch page (elements from watch.html), and in the room page's
 * chat panel (the same ids, web/index.html); `stream` stops and resumes the watch page's
 * player while the viewer is on stage (web/stage.js); `say(key, params)` words the messages. */
export function startAudience({ room, token, lang = null, stream = { leave() {}, back() {} }, say = english }) {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const pageLang = (lang || params.get("lang") || navigator.language || "en").slice(0, 2).toLowerCase();
  const state = {
    room,
    lang: pageLang,
    viewerId: viewerId(),
    connected: false,
    node: /** @type {string|null} */ (null),
    socketUrl: /** @type {string|null} */ (null),
    languages: [],
    questions: [],
    comments: [],
    polls: [],
    voted: new Set(),
    pollVotes: /** @type {Record<string, number>} */ ({}),
    lastAnswer: /** @type {any} */ (null),
  };
  window.audience = state;
  const section = $("audience");
  if (!section || !room) return state;
  const form = $("ask-form");
  const text = /** @type {HTMLTextAreaElement} */ ($("ask-text"));
  const kind = /** @type {HTMLSelectElement} */ ($("ask-kind"));
  const status = $("ask-status");
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let stage = { onPush(_message) {} };

  const socket = new AudienceSocket({
    room,
    hello: { viewer_id: state.viewerId, lang: pageLang, token: token || undefined },
    onWelcome(welcome) {
      state.connected = true;
      state.node = socket.node; // in a cluster: the room's node, whose socket welcomed us
      state.socketUrl = socket.welcomedUrl;
      state.languages = welcome.languages;
      if (!welcome.languages.includes(state.lang)) state.lang = welcome.pivot;
      section.hidden = false;
      refresh();
    },
    onPush(message) {
      stage.onPush(message); // stage_invite, stage_ended
    },
    onClose() {
      state.connected = false;
      setTimeout(() => socket.reconnect(), RECONNECT_MS);
    },
  });
  socket.open();
  stage = startStage({ room, socket, lang: pageLang, stream });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await socket.request({ type: "ask", kind: kind.value, text: text.value, lang: pageLang });
    state.lastAnswer = answer;
    const known = answer.type === "accepted" ? "accepted" : answer.code in ENGLISH ? answer.code : null;
    status.textContent = known ? say(known) : answer.message;
    if (answer.type === "accepted") text.value = "";
  });

  async function vote(id) {
    const answer = await socket.request({ type: "vote", id });
    if (answer.type === "accepted" || answer.code === "already_voted") state.voted.add(id);
    render();
    refresh();
  }

  async function pollVote(pollId, option) {
    const answer = await socket.request({ type: "poll_vote", poll_id: pollId, option });
    if (answer.type === "accepted") state.pollVotes[pollId] = option;
    render();
    refresh();
  }

  function render() {
    const list = $("questions");
    list.replaceChildren(
      ...state.questions.map((q) => {
        const li = document.createElement("li");
        li.className = `question ${q.status}`;
        li.dataset.id = q.id;
        const p = document.createElement("p");
        p.className = "question-text";
        p.lang = q.lang;
        p.textContent = q.text;
        const meta = document.createElement("span");
        meta.className = "question-meta";
        const bits = [];
        if (q.status === "live") bits.push(say("answering"));
        if (q.status === "answered") bits.push(say("answered"));
        if (q.asked > 1) bits.push(say("asked", { count: q.asked }));
        if (q.lang !== q.original_lang) bits.push(say("translatedFrom", { lang: q.original_lang }));
        meta.textContent = bits.join(" · ");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "vote";
        button.textContent = `▲ ${q.votes}`;
        button.setAttribute("aria-label", say("vote", { votes: q.votes }));
        button.disabled = state.voted.has(q.id);
        button.addEventListener("click", () => vote(q.id));
        li.append(button, p, meta);
        return li;
      }),
    );
    const polls = $("polls");
    polls.replaceChildren(
      ...state.polls.map((poll) => {
        const box = document.createElement("fieldset");
        box.className = "poll";
        box.dataset.id = poll.id;
        const legend = document.createElement("legend");
        legend.textContent = poll.closed ? say("pollClosed", { question: poll.question }) : poll.question;
        box.append(legend);
        poll.options.forEach((option, index) => {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "poll-option";
          button.textContent = `${option.text} · ${option.votes}`;
          button.disabled = poll.closed;
          button.setAttribute("aria-pressed", String(state.pollVotes[poll.id] === index));
          button.addEventListener("click", () => pollVote(poll.id, index));
          box.append(button);
        });
        return box;
      }),
    );
  }

  /** The documents of the node whose socket welcomed us (in a cluster the room's node: no
   * 307 per poll, and no dependence on this page's node being alive); with a token, only on
   * this page's origin (a cross-origin Authorization header needs a preflight, which the
   * server does not answer: through one front, e.g. nginx, every node is this origin). */
  function documentsFrom() {
    if (!socket.welcomedUrl) return "";
    const base = documentBase(socket.welcomedUrl, room);
    return token && new URL(base).origin !== location.origin ? "" : base;
  }

  async function fetchDocument(name) {
    const path = `/live/${encodeURIComponent(room)}/${name}.${state.lang}.json`;
    const response = await fetch(`${documentsFrom()}${path}`, {
      headers,
      cache: "no-cache", // revalidate with the ETag: 304 when nothing changed
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  async function refresh() {
    if (!state.languages.length) return;
    try {
      const [questions, polls] = await Promise.all([fetchDocument("questions"), fetchDocument("polls")]);
      state.questions = questions.questions;
      state.comments = questions.comments;
      state.polls = polls.polls;
      render();
    } catch {
      // the room ended or the server is away: the socket reconnects, reading resumes
    }
  }
  setInterval(refresh, DOCUMENT_POLL_MS);
  return state;
}
