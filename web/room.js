// The room UI: join form, video tiles, participant list, mute and leave controls.
// All protocol work is in protocol.js; this module only renders its state and events.
import { ParleySession, getLocalMedia } from "./protocol.js";

const $ = (id) => document.getElementById(id);
const NAME_KEY = "parley.name";
const TOKEN_KEY = "parley.token";
const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const ICONS = {
  mic: '<path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 6-6.9z"/>',
  micOff: '<path d="M19 11h-2a5 5 0 0 1-.6 2.4l1.5 1.5A7 7 0 0 0 19 11zM15 11V5a3 3 0 0 0-5.9-.8L15 10.1zM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.5 2.6l1.6 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 3.5-1.3l3.2 3.2 1.3-1.3z"/>',
  cam: '<path d="M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11z"/>',
  camOff: '<path d="M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.8L21 17.2zM3.3 2 2 3.3 4.7 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.2 0 .4-.1.5-.2l3.2 3.2 1.3-1.3z"/>',
  leave: '<path d="M12 9c-1.6 0-3.1.3-4.6.7v3.1a1 1 0 0 1-.6.9 11.5 11.5 0 0 0-2.7 1.9 1 1 0 0 1-1.4 0L.3 13.2a1 1 0 0 1 0-1.4A16.9 16.9 0 0 1 12 7c4.5 0 8.7 1.8 11.7 4.8a1 1 0 0 1 0 1.4l-2.4 2.4a1 1 0 0 1-1.4 0 11.3 11.3 0 0 0-2.7-1.9 1 1 0 0 1-.6-.9V9.7C15.1 9.3 13.6 9 12 9z"/>',
};

function icon(name, label) {
  const span = document.createElement("span");
  span.className = `icon icon-${name}`;
  span.innerHTML = `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">${ICONS[name]}</svg>`;
  if (label) {
    span.setAttribute("role", "img");
    span.setAttribute("aria-label", label);
    span.title = label;
  }
  return span;
}

function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return (parts.slice(0, 2).map((p) => p[0]).join("") || "?").toUpperCase();
}

function setStatus(text) {
  $("status").textContent = text;
}

/** A tile: one <video> (playing the participant's audio too), a name plate, an avatar. */
class Tile {
  constructor({ id, name, isLocal }) {
    this.id = id;
    this.tracks = new Map(); // kind -> MediaStreamTrack
    this.el = document.createElement("article");
    this.el.className = `tile${isLocal ? " local" : ""}`;
    this.el.dataset.participantId = id;
    this.video = document.createElement("video");
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = isLocal; // never play our own microphone back
    this.avatar = document.createElement("div");
    this.avatar.className = "avatar";
    this.avatar.setAttribute("aria-hidden", "true");
    this.plate = document.createElement("div");
    this.plate.className = "nameplate";
    this.nameEl = document.createElement("span");
    this.nameEl.className = "name";
    this.badges = document.createElement("span");
    this.badges.className = "badges";
    this.plate.append(this.nameEl, this.badges);
    this.el.append(this.video, this.avatar, this.plate);
    this.update({ name, audioMuted: false, videoMuted: false });
  }

  update({ name, audioMuted, videoMuted }) {
    this.nameEl.textContent = name;
    this.avatar.textContent = initials(name.replace(/ \(you\)$/, ""));
    this.el.setAttribute("aria-label", name);
    this.badges.replaceChildren();
    if (audioMuted) this.badges.append(icon("micOff", `${name}: microphone muted`));
    if (videoMuted) this.badges.append(icon("camOff", `${name}: camera off`));
    this.el.classList.toggle("audio-muted", audioMuted);
    this.el.classList.toggle("no-video", videoMuted || !this.tracks.has("video"));
  }

  setTrack(kind, track) {
    if (track) this.tracks.set(kind, track);
    else this.tracks.delete(kind);
    // A fresh stream each time: media elements do not reliably pick up added tracks.
    this.video.srcObject = this.tracks.size ? new MediaStream([...this.tracks.values()]) : null;
    if (this.tracks.size) this.video.play().catch(() => {}); // autoplay may need a gesture
    this.el.classList.toggle("no-video", !this.tracks.has("video"));
  }
}

class RoomView {
  constructor(session) {
    this.session = session;
    this.tiles = new Map(); // participant id -> Tile
    this.localTile = null;
    session.addEventListener("joined", () => this.onJoined());
    session.addEventListener("participants", () => this.render());
    session.addEventListener("trackadded", (ev) => this.tileFor(ev.detail.participantId).setTrack(ev.detail.kind, ev.detail.track));
    session.addEventListener("trackremoved", (ev) => {
      const tile = this.tiles.get(ev.detail.participantId);
      if (tile && tile.tracks.get(ev.detail.kind) === ev.detail.track) tile.setTrack(ev.detail.kind, null);
    });
    session.addEventListener("localmute", () => this.render());
    session.addEventListener("error", (ev) => setStatus(`Error: ${ev.detail.message || ev.detail.code}`));
    session.addEventListener("closed", (ev) => this.onClosed(ev.detail));
  }

  onJoined() {
    const s = this.session;
    this.localTile = new Tile({ id: s.participantId, name: `${s.name} (you)`, isLocal: true });
    for (const [kind, { track }] of s.local) this.localTile.setTrack(kind, track);
    $("tiles").replaceChildren(this.localTile.el);
    $("join-view").hidden = true;
    $("call-view").hidden = false;
    $("room-badge").textContent = s.room;
    $("room-badge").hidden = false;
    $("copy-link").hidden = false;
    $("mic-button").disabled = !s.local.has("audio");
    $("camera-button").disabled = !s.local.has("video");
    const url = new URL(location.href);
    url.searchParams.set("room", s.room);
    url.searchParams.delete("token"); // the room link people copy must not carry our token
    history.replaceState(null, "", url);
    setStatus("Connected");
    this.render();
  }

  tileFor(id) {
    let tile = this.tiles.get(id);
    if (!tile) {
      const p = this.session.participants.get(id);
      tile = new Tile({ id, name: p ? p.name : "…", isLocal: false });
      this.tiles.set(id, tile);
      $("tiles").append(tile.el);
    }
    return tile;
  }

  render() {
    const s = this.session;
    if (s.state !== "joined") return;
    const mutedKinds = (p) => {
      const tracks = [...p.tracks.values()];
      return {
        audioMuted: tracks.some((t) => t.kind === "audio" && t.muted),
        videoMuted: tracks.some((t) => t.kind === "video" && t.muted),
      };
    };
    for (const [id, tile] of this.tiles) {
      if (!s.participants.has(id)) {
        tile.el.remove();
        this.tiles.delete(id);
      }
    }
    for (const p of s.participants.values()) this.tileFor(p.participant_id).update({ name: p.name, ...mutedKinds(p) });
    const self = {
      audioMuted: Boolean(s.local.get("audio")?.muted),
      videoMuted: Boolean(s.local.get("video")?.muted),
    };
    if (this.localTile) this.localTile.update({ name: `${s.name} (you)`, ...self });
    this.renderControls(self);
    this.renderList(self, mutedKinds);
    const count = s.participants.size + 1;
    $("tiles").dataset.count = String(Math.min(count, 9));
  }

  renderControls({ audioMuted, videoMuted }) {
    const mic = $("mic-button");
    mic.replaceChildren(icon(audioMuted ? "micOff" : "mic"), document.createTextNode(audioMuted ? "Unmute" : "Mute"));
    mic.setAttribute("aria-pressed", String(audioMuted));
    mic.setAttribute("aria-label", audioMuted ? "Unmute microphone" : "Mute microphone");
    const cam = $("camera-button");
    cam.replaceChildren(icon(videoMuted ? "camOff" : "cam"), document.createTextNode(videoMuted ? "Start video" : "Stop video"));
    cam.setAttribute("aria-pressed", String(videoMuted));
    cam.setAttribute("aria-label", videoMuted ? "Turn camera on" : "Turn camera off");
    const leave = $("leave-button");
    if (!leave.querySelector(".icon")) leave.prepend(icon("leave"));
  }

  renderList(self, mutedKinds) {
    const s = this.session;
    const item = (id, name, { audioMuted, videoMuted }) => {
      const li = document.createElement("li");
      li.dataset.participantId = id;
      const label = document.createElement("span");
      label.className = "participant-name";
      label.textContent = name;
      li.append(label);
      if (audioMuted) li.append(icon("micOff", "microphone muted"));
      if (videoMuted) li.append(icon("camOff", "camera off"));
      return li;
    };
    const items = [item(s.participantId, `${s.name} (you)`, self)];
    const others = [...s.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const p of others) items.push(item(p.participant_id, p.name, mutedKinds(p)));
    $("participant-list").replaceChildren(...items);
    $("participant-count").textContent = `(${items.length})`;
  }

  onClosed({ code }) {
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    this.tiles.clear();
    $("tiles").replaceChildren();
    $("participant-list").replaceChildren();
    $("call-view").hidden = true;
    $("join-view").hidden = false;
    $("room-badge").hidden = true;
    $("copy-link").hidden = true;
    $("join-button").disabled = false;
    setStatus(code === 1000 ? "You left the room." : `Disconnected (code ${code}).`);
  }
}

async function join(name, room) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  setStatus("Starting camera and microphone…");
  const localStream = await getLocalMedia();
  // a token from the join link (`parley token`), kept for this tab so a reload still works
  const token = new URLSearchParams(location.search).get("token") || sessionStorage.getItem(TOKEN_KEY);
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  const session = new ParleySession({ url, room, name, localStream, token });
  window.parley = session; // exposed for tests and debugging
  new RoomView(session);
  setStatus("Connecting…");
  try {
    await session.connect();
  } catch (err) {
    if (session.ws) session.ws.close();
    throw err;
  }
  return session;
}

function main() {
  const params = new URLSearchParams(location.search);
  const form = $("join-form");
  $("name-input").value = localStorage.getItem(NAME_KEY) || "";
  $("room-input").value = params.get("room") || "";
  ($("name-input").value ? $("room-input") : $("name-input")).focus();
  if ($("name-input").value && $("room-input").value) $("join-button").focus();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("name-input").value.trim();
    const room = $("room-input").value.trim();
    $("join-error").textContent = "";
    if (!name || !ROOM_PATTERN.test(room)) {
      $("join-error").textContent = "Enter a name and a room of letters, digits, _ or -.";
      return;
    }
    localStorage.setItem(NAME_KEY, name);
    $("join-button").disabled = true;
    try {
      await join(name, room);
    } catch (err) {
      $("join-error").textContent = `Could not join: ${err.message || err}`;
      $("join-button").disabled = false;
      setStatus("");
    }
  });

  $("mic-button").addEventListener("click", () => {
    const s = window.parley;
    if (s) s.setMuted("audio", !s.local.get("audio")?.muted);
  });
  $("camera-button").addEventListener("click", () => {
    const s = window.parley;
    if (s) s.setMuted("video", !s.local.get("video")?.muted);
  });
  $("leave-button").addEventListener("click", () => {
    if (window.parley) window.parley.leave();
  });
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      setStatus("Link copied.");
    } catch {
      setStatus(location.href);
    }
  });
}

main();
