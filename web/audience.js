// The audience's side of PROTOCOL.md "Audience" on the watch page: a viewer writes a question or
// a comment (in the page's language) and votes over the small socket /live/<room>/audience; the
// approved questions and the polls are read, in the viewer's language, from the cacheable
// documents /live/<room>/questions.<lang>.json and polls.<lang>.json (a CDN can carry them).
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

/** The socket: `hello` on open; `request` resolves with the server's answer (in order). */
export class AudienceSocket {
  constructor({ room, hello, onWelcome = () => {}, onPush = () => {}, onClose = () => {} }) {
    this.room = room;
    this.hello = hello;
    this.onWelcome = onWelcome;
    this.onPush = onPush;
    this.onClose = onClose;
    /** @type {Array<(answer: any) => void>} */
    this.waiting = [];
    this.ws = null;
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/live/${encodeURIComponent(this.room)}/audience`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", ...this.hello }));
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "welcome") this.onWelcome(message);
      else if (message.type === "accepted" || message.type === "error" || message.type === "export") {
        const resolve = this.waiting.shift();
        if (resolve) resolve(message);
      } else this.onPush(message);
    };
    ws.onclose = (event) => {
      for (const resolve of this.waiting.splice(0)) {
        resolve({ type: "error", code: "closed", message: "not connected" });
      }
      this.ws = null;
      this.onClose(event);
    };
  }

  request(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
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
      setTimeout(() => socket.open(), RECONNECT_MS);
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

  async function fetchDocument(name) {
    const response = await fetch(`/live/${encodeURIComponent(room)}/${name}.${state.lang}.json`, {
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
