// Audience moderation (PROTOCOL.md "Audience"): a host's link (`moderate.html?room=R#key=…`,
// sent to hosts when they join) or a host token opens the room's audience socket as a moderator.
// The queue arrives pushed, in the moderator's language, grouped; each group is approved,
// dismissed, answered live or marked answered; a viewer is banned for the rest of the event.
// Polls are written here in the moderator's language; the export downloads JSON and CSV. "Invite
// on stage" asks a question's author into the room (PROTOCOL.md "Audience: on stage"); the stage
// list shows who is invited or on stage, each with "Dismiss".

import { AudienceSocket, viewerId } from "./audience.js";
import { takeLinkToken } from "./linktoken.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.get("room") || "";
const hash = new URLSearchParams(location.hash.slice(1));
const key = hash.get("key") || sessionStorage.getItem(`parley.moderate.${room}`) || "";
if (hash.get("key")) {
  sessionStorage.setItem(`parley.moderate.${room}`, hash.get("key"));
  history.replaceState(null, "", location.pathname + location.search);
}
const token = key ? null : takeLinkToken()(room);
const lang = (params.get("lang") || navigator.language || "en").slice(0, 2).toLowerCase();

const state = {
  room, lang, role: "", groups: [], polls: [], stage: [], lastAnswer: /** @type {any} */ (null),
};
window.moderation = state;
$("mod-title").textContent = `Audience · ${room}`;

const socket = new AudienceSocket({
  room,
  hello: { viewer_id: viewerId(), lang, moderator_key: key || undefined, token: token || undefined },
  onWelcome(welcome) {
    state.role = welcome.role;
    $("mod-status").textContent =
      welcome.role === "moderator" ? `Moderating in ${lang}` : "This link does not moderate this room.";
  },
  onPush(message) {
    if (message.type !== "queue") return;
    state.groups = message.groups;
    state.polls = message.polls;
    state.stage = message.stage || [];
    render();
  },
  onClose() {
    $("mod-status").textContent = "Disconnected; reconnecting…";
    setTimeout(() => socket.reconnect(), 3000); // home, then the cluster's nodes
  },
});
socket.open();

async function act(message) {
  state.lastAnswer = await socket.request(message);
  if (state.lastAnswer.type === "error") $("mod-status").textContent = state.lastAnswer.message;
}

function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

function render() {
  $("groups").replaceChildren(
    ...state.groups.map((group) => {
      const li = document.createElement("li");
      li.className = `question group ${group.status}`;
      li.dataset.id = group.id;
      li.dataset.count = String(group.count);
      const text = document.createElement("p");
      text.className = "question-text";
      text.textContent = group.text;
      const meta = document.createElement("span");
      meta.className = "question-meta";
      const langs = [...new Set(group.items.map((i) => i.lang))].join(", ");
      meta.textContent = `${group.kind} · ${group.status} · ×${group.count} (${langs}) · ▲ ${group.votes}`;
      const originals = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = "Originals";
      originals.append(summary);
      for (const item of group.items) {
        const p = document.createElement("p");
        p.className = "original";
        p.lang = item.lang;
        p.textContent = `[${item.lang}] ${item.original}${item.banned ? " (banned)" : ""}`;
        originals.append(
          p,
          button("Ban", () => act({ type: "ban", id: item.id }), "ban"),
          button("Invite on stage", () => act({ type: "stage_invite", id: item.id }), "invite"),
        );
      }
      const actions = document.createElement("div");
      actions.className = "actions";
      actions.append(
        button("Approve", () => act({ type: "moderate", id: group.id, action: "approve" }), "approve"),
        button("Dismiss", () => act({ type: "moderate", id: group.id, action: "dismiss" }), "dismiss"),
        button("Answer live", () => act({ type: "moderate", id: group.id, action: "live" }), "live"),
        button("Answered", () => act({ type: "moderate", id: group.id, action: "answered" }), "answered"),
        // the group's first asker; the others' buttons are under "Originals"
        button("Invite on stage", () => act({ type: "stage_invite", id: group.items[0].id }), "invite"),
      );
      li.append(text, meta, originals, actions);
      return li;
    }),
  );
  const STAGE_STATES = { invited: "invited", accepted: "joining", on_stage: "on stage" };
  $("stage-list").replaceChildren(
    ...state.stage.map((invitation) => {
      const li = document.createElement("li");
      li.dataset.inviteId = invitation.invite_id;
      li.dataset.state = invitation.state;
      const label = document.createElement("span");
      label.textContent = `${invitation.name || "Anonymous viewer"} · ${STAGE_STATES[invitation.state]}`;
      li.append(label, button("Dismiss", () => act({ type: "stage_dismiss", invite_id: invitation.invite_id }), "dismiss-stage"));
      return li;
    }),
  );
  $("mod-polls").replaceChildren(
    ...state.polls.map((poll) => {
      const box = document.createElement("fieldset");
      box.className = "poll";
      box.dataset.id = poll.id;
      const legend = document.createElement("legend");
      legend.textContent = `${poll.question} (${poll.total} votes${poll.closed ? ", closed" : ""})`;
      box.append(legend);
      for (const option of poll.options) {
        const span = document.createElement("span");
        span.className = "poll-result";
        span.textContent = `${option.text}: ${option.votes}`;
        box.append(span);
      }
      if (!poll.closed) box.append(button("Close", () => act({ type: "poll_close", poll_id: poll.id })));
      return box;
    }),
  );
}

$("poll-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const options = $("poll-options").value.split("\n").map((s) => s.trim()).filter(Boolean);
  act({ type: "poll_create", question: $("poll-question").value, options, lang }).then(() => {
    if (state.lastAnswer.type === "accepted") {
      $("poll-question").value = "";
      $("poll-options").value = "";
    }
  });
});

$("export").addEventListener("click", async () => {
  const answer = await socket.request({ type: "export" });
  if (answer.type !== "export") return;
  const links = ["json", "csv"].map((kind) => {
    const a = document.createElement("a");
    const type = kind === "json" ? "application/json" : "text/csv";
    a.href = URL.createObjectURL(new Blob([answer[kind]], { type }));
    a.download = `audience-${room}.${kind}`;
    a.textContent = `audience-${room}.${kind}`;
    return a;
  });
  $("export-links").replaceChildren(links[0], " ", links[1]);
});
