// The meeting UI: pre-join, tiles and layouts, controls and shortcuts, participant list,
// captions, transcript, reconnect state. All protocol work is in protocol.js; this module
// renders its state and events.
import { ParleySession, tabClientId } from "./protocol.js";
import { PreJoin, prefs, savePrefs } from "./prejoin.js";
import { ActiveSpeaker, Tile, icon } from "./tiles.js";
import { CaptionsView } from "./captionsview.js";
import { TranscriptView } from "./transcriptview.js";
import { ChatView } from "./chatview.js";
import { LevelMeter, connectionStats } from "./levels.js";
import { fillLanguageSelect, languageName } from "./languages.js";
import { ChannelsView, channelOf, volumes } from "./channels.js";
import { takeLinkToken } from "./linktoken.js";

const $ = (id) => document.getElementById(id);
const NAME_KEY = "parley.name";
// at once, before anything else: the join link's token leaves the address bar and history
const tokenFor = takeLinkToken();
const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const STATS_INTERVAL_MS = 500;
/** Audio-only fallback: our video pauses after POOR_SAMPLES samples in a row with the server
 * reporting this much loss of it. */
const POOR_FRACTION_LOST = 0.1;
const POOR_SAMPLES = 8; // 4 s at STATS_INTERVAL_MS

function setStatus(text) {
  $("status").textContent = text;
}

function isTyping(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

class RoomView {
  constructor(session, { languages }) {
    this.session = session;
    this.tiles = new Map(); // tile id (participant id, or "<id>:screen") -> Tile
    this.localTile = null;
    this.names = new Map(); // participant id -> name (kept after they leave, for the transcript)
    this.layout = "grid";
    this.active = new ActiveSpeaker();
    this.activeId = null;
    this.poorSamples = 0;
    this.videoPausedForBandwidth = false;
    this.pushToTalk = false;
    this.captions = new CaptionsView({
      container: $("caption-blocks"),
      bar: $("captions"),
      nameOf: (id) => this.nameOf(id),
      languages,
      bilingual: Boolean(prefs().bilingual),
    });
    this.captions.setFontSize(prefs().captionSize || "medium");
    this.transcript = new TranscriptView({
      list: $("transcript-list"),
      downloads: $("panel-transcript").querySelector(".downloads"),
      room: () => this.session.room,
      languages,
      bilingual: Boolean(prefs().bilingual),
    });
    this.chat = new ChatView({
      log: $("chat-log"),
      languages: () => [...this.session.languages, this.session.lang].filter(Boolean),
      selfId: () => this.session.participantId,
      nameOf: (id) => this.nameOf(id),
      onUnread: () => {
        if ($("panel-chat").hidden) {
          const badge = $("chat-unread");
          badge.hidden = false;
          badge.textContent = String(Number(badge.textContent || 0) + 1);
          badge.setAttribute("aria-label", `${badge.textContent} unread`);
        }
      },
    });
    this.localScreenTile = null;
    fillLanguageSelect($("booth-into"), { value: session.lang || languages[0] || "en" });
    this.channels = new ChannelsView({
      session,
      els: {
        hear: $("hear-select"), duck: $("hear-duck"), captions: $("hear-captions"), booth: $("booth"),
        into: $("booth-into"), onAir: $("booth-on-air"), handover: $("booth-handover"),
        request: $("booth-request"), requestText: $("booth-request-text"), accept: $("booth-accept"),
        decline: $("booth-decline"), badge: $("on-air-badge"),
      },
      nameOf: (id) => this.nameOf(id),
      label: (code) => languageName(code),
      onStatus: setStatus,
    });
    $("booth-into").addEventListener("change", () => this.channels.render());
    session.addEventListener("channels", (ev) => {
      this.channels.render(ev.detail.event);
      this.render();
    });
    session.addEventListener("joined", (ev) => this.onJoined(ev.detail));
    session.addEventListener("notice", (ev) => this.showNotice(ev.detail.text));
    session.addEventListener("chat", (ev) => this.chat.add(ev.detail.message, { history: ev.detail.history }));
    session.addEventListener("hand", () => this.render());
    session.addEventListener("transcription", (ev) => {
      if (ev.detail.participantId === session.participantId) this.renderOptOut();
      this.render();
    });
    session.addEventListener("screenstopped", () => this.setLocalScreen(null));
    session.addEventListener("participants", () => this.render());
    session.addEventListener("trackadded", (ev) => {
      const { participantId, kind, source, track } = ev.detail;
      this.tileFor(participantId, source === "screen").setTrack(kind, track);
      this.renderLayout();
    });
    session.addEventListener("trackremoved", (ev) => {
      const { participantId, kind, source, track } = ev.detail;
      const id = source === "screen" ? `${participantId}:screen` : participantId;
      const tile = this.tiles.get(id);
      if (tile && tile.tracks.get(kind) === track) tile.setTrack(kind, null);
      if (tile && tile.isScreen && !tile.tracks.size) {
        tile.el.remove();
        this.tiles.delete(id);
        this.renderLayout();
      }
    });
    session.addEventListener("localmute", () => this.render());
    session.addEventListener("caption", (ev) => this.onCaption(ev.detail));
    session.addEventListener("captionsunavailable", () => this.onCaptionsUnavailable());
    session.addEventListener("reconnecting", (ev) => this.onReconnecting(ev.detail));
    session.addEventListener("error", (ev) => setStatus(`Error: ${ev.detail.message || ev.detail.code}`));
    session.addEventListener("closed", (ev) => this.onClosed(ev.detail));
    this.statsTimer = null;
  }

  nameOf(id) {
    if (id === this.session.participantId) return this.session.name;
    return this.session.participants.get(id)?.name || this.names.get(id) || "Someone";
  }

  onJoined({ reconnected }) {
    const s = this.session;
    this.names.set(s.participantId, s.name);
    if (this.localTile) this.localTile.el.remove();
    this.localTile = new Tile({ id: s.participantId, participantId: s.participantId, name: `${s.name} (you)`, isLocal: true });
    for (const [kind, { track }] of s.local) this.localTile.setTrack(kind, track);
    for (const tile of this.tiles.values()) tile.el.remove();
    this.tiles.clear();
    $("tiles").replaceChildren(this.localTile.el);
    if (this.localScreenTile) $("tiles").append(this.localScreenTile.el);
    $("join-view").hidden = true;
    $("call-view").hidden = false;
    $("room-badge").textContent = s.room;
    $("room-badge").hidden = false;
    $("copy-link").hidden = false;
    $("mic-button").disabled = !s.local.has("audio");
    $("camera-button").disabled = !s.local.has("video");
    $("banner").hidden = true;
    this.setConnection("connected");
    const url = new URL(location.href);
    url.searchParams.set("room", s.room);
    history.replaceState(null, "", url);
    setStatus(reconnected ? "Reconnected." : "");
    this.channels.render();
    if (!reconnected) {
      if (window.matchMedia("(min-width: 900px)").matches) this.openPanel("panel-people");
      this.localMeter = s.local.has("audio") ? new LevelMeter(s.local.get("audio").track) : null;
      this.statsTimer = setInterval(() => this.sampleStats(), STATS_INTERVAL_MS);
    }
    this.render();
  }

  setConnection(state) {
    const el = $("connection");
    el.hidden = false;
    el.dataset.state = state;
    el.textContent = { connected: "Connected", reconnecting: "Reconnecting…" }[state] || state;
  }

  // ---- consent notice and captions -----------------------------------------------------
  showNotice(text) {
    if (text) $("notice-text").textContent = text;
    if (this.captions.consented) return;
    $("notice").hidden = false;
    // Captions may show once the notice is on screen: it always comes first.
    this.captions.consent();
  }

  onCaptionsUnavailable() {
    $("notice").hidden = true;
    $("cc-button").disabled = true;
    $("cc-button").title = "Captions are off on this server";
  }

  renderOptOut() {
    const out = this.session.transcriptionOptOut;
    $("cc-optout").checked = out;
    const button = $("notice-optout");
    button.setAttribute("aria-pressed", String(out));
    button.textContent = out ? "Transcribe me again" : "Don’t transcribe me";
  }

  onCaption({ caption, receivedMs }) {
    if (!this.captions.consented) this.showNotice(); // a server that sent no notice: show ours first
    if (!this.names.has(caption.participant_id)) this.names.set(caption.participant_id, this.nameOf(caption.participant_id));
    this.captions.add(caption, receivedMs);
    if (caption.final) this.transcript.add(caption, this.nameOf(caption.participant_id), receivedMs);
  }

  setLanguages(languages) {
    this.session.setCaptionLanguages(languages);
    this.channels.render();
    this.captions.setLanguages(languages);
    this.transcript.setLanguages(languages);
  }

  // ---- reconnect ---------------------------------------------------------------------------
  onReconnecting({ attempt, delayMs }) {
    this.setConnection("reconnecting");
    const banner = $("banner");
    banner.hidden = false;
    banner.textContent = `Connection lost. Reconnecting (attempt ${attempt})…`;
    setStatus(`Reconnecting in ${Math.round(delayMs / 100) / 10} s…`);
    for (const tile of this.tiles.values()) tile.el.remove();
    this.tiles.clear();
    this.render();
  }

  // ---- tiles, list, controls -------------------------------------------------------------
  tileFor(participantId, screen = false) {
    const id = screen ? `${participantId}:screen` : participantId;
    let tile = this.tiles.get(id);
    if (!tile) {
      const p = this.session.participants.get(participantId);
      tile = new Tile({ id, participantId, name: p ? p.name : "…", isLocal: false, isScreen: screen });
      this.tiles.set(id, tile);
      $("tiles").append(tile.el);
    }
    return tile;
  }

  /** Our own screen share, shown as a tile of its own (not mirrored). */
  setLocalScreen(track) {
    if (this.localScreenTile) this.localScreenTile.el.remove();
    this.localScreenTile = null;
    if (track) {
      const s = this.session;
      this.localScreenTile = new Tile({ id: `${s.participantId}:screen`, participantId: s.participantId, name: `${s.name} (you)`, isLocal: true, isScreen: true });
      this.localScreenTile.setTrack("video", track);
      $("tiles").append(this.localScreenTile.el);
    }
    const button = $("screen-button");
    button.setAttribute("aria-pressed", String(Boolean(track)));
    button.replaceChildren(icon("screen"), document.createTextNode(track ? "Stop sharing" : "Share screen"));
    this.renderLayout();
  }

  mutedKinds(p) {
    const tracks = [...p.tracks.values()];
    return {
      audioMuted: tracks.some((t) => t.kind === "audio" && t.muted),
      videoMuted: tracks.some((t) => t.kind === "video" && t.source !== "screen" && t.muted),
      hand: Boolean(p.hand),
      optOut: Boolean(p.transcriptionOptOut),
      onAir: channelOf(this.session.channels, p.participant_id),
    };
  }

  selfState() {
    const s = this.session;
    return {
      onAir: channelOf(s.channels, s.participantId),
      audioMuted: Boolean(s.local.get("audio")?.muted),
      videoMuted: Boolean(s.local.get("video")?.muted),
      hand: Boolean(s.hand),
      optOut: Boolean(s.transcriptionOptOut),
    };
  }

  render() {
    const s = this.session;
    for (const [id, tile] of this.tiles) {
      if (!s.participants.has(tile.participantId)) {
        tile.el.remove();
        this.tiles.delete(id);
      }
    }
    const loudness = volumes({
      rows: s.channels, listening: s.listening, participantIds: [...s.participants.keys()],
      selfId: s.participantId, duckVolume: s.duckVolume,
    });
    for (const p of s.participants.values()) {
      this.names.set(p.participant_id, p.name);
      const tile = this.tileFor(p.participant_id);
      tile.update({ name: p.name, ...this.mutedKinds(p) });
      tile.setVolume(loudness.get(p.participant_id) ?? 1);
      this.tiles.get(`${p.participant_id}:screen`)?.update({ name: p.name, ...this.mutedKinds(p) });
    }
    const self = this.selfState();
    if (this.localTile) this.localTile.update({ name: `${s.name} (you)`, ...self });
    this.renderControls(self);
    this.renderList(self);
    this.renderLayout();
  }

  renderControls({ audioMuted, videoMuted, hand }) {
    const mic = $("mic-button");
    mic.replaceChildren(icon(audioMuted ? "micOff" : "mic"), document.createTextNode(audioMuted ? "Unmute" : "Mute"));
    mic.setAttribute("aria-pressed", String(audioMuted));
    mic.setAttribute("aria-label", audioMuted ? "Unmute microphone" : "Mute microphone");
    const cam = $("camera-button");
    cam.replaceChildren(icon(videoMuted ? "camOff" : "cam"), document.createTextNode(videoMuted ? "Start video" : "Stop video"));
    cam.setAttribute("aria-pressed", String(videoMuted));
    cam.setAttribute("aria-label", videoMuted ? "Turn camera on" : "Turn camera off");
    const handButton = $("hand-button");
    handButton.setAttribute("aria-pressed", String(hand));
    handButton.replaceChildren(icon("hand"), document.createTextNode(hand ? "Lower hand" : "Raise hand"));
    const leave = $("leave-button");
    if (!leave.querySelector(".icon")) leave.prepend(icon("leave"));
    const screen = $("screen-button");
    if (!screen.querySelector(".icon")) screen.prepend(icon("screen"));
  }

  renderList(self) {
    const s = this.session;
    if (s.participantId === null) return;
    const item = (id, name, { audioMuted, videoMuted, hand, optOut, onAir }) => {
      const li = document.createElement("li");
      li.dataset.participantId = id;
      const label = document.createElement("span");
      label.className = "participant-name";
      label.textContent = name;
      li.append(label);
      if (hand) li.append(icon("hand", "hand raised"));
      if (audioMuted) li.append(icon("micOff", "microphone muted"));
      if (videoMuted) li.append(icon("camOff", "camera off"));
      if (onAir) {
        const tag = document.createElement("span");
        tag.className = "on-air";
        tag.textContent = `On air · ${onAir.toUpperCase()}`;
        li.append(tag);
      }
      if (optOut) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = "not transcribed";
        li.append(tag);
      }
      return li;
    };
    const items = [item(s.participantId, `${s.name} (you)`, self)];
    const others = [...s.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const p of others) items.push(item(p.participant_id, p.name, this.mutedKinds(p)));
    $("participant-list").replaceChildren(...items);
    $("participant-count").textContent = `(${items.length})`;
    const to = $("chat-to");
    const chosen = to.value;
    to.replaceChildren(new Option("Everyone", ""), ...others.map((p) => new Option(p.name, p.participant_id)));
    to.value = others.some((p) => p.participant_id === chosen) ? chosen : "";
  }

  renderLayout() {
    const all = [this.localTile, this.localScreenTile, ...this.tiles.values()].filter(Boolean);
    $("tiles").dataset.count = String(Math.min(all.length, 9));
    const stage = $("stage");
    stage.dataset.layout = this.layout;
    // speaker view features a screen share first, else the active speaker, else the first remote
    const screen = all.find((t) => t.isScreen);
    const featured = screen || this.tiles.get(this.activeId) || (this.activeId === this.session.participantId ? this.localTile : null)
      || [...this.tiles.values()][0] || this.localTile;
    for (const tile of all) tile.el.classList.toggle("featured", this.layout === "speaker" && tile === featured);
  }

  toggleLayout() {
    this.layout = this.layout === "grid" ? "speaker" : "grid";
    const button = $("layout-button");
    button.setAttribute("aria-pressed", String(this.layout === "speaker"));
    button.textContent = this.layout === "speaker" ? "Grid view" : "Speaker view";
    this.renderLayout();
  }

  openPanel(id) {
    const side = $("side");
    const buttons = document.querySelectorAll("#controls [data-panel]");
    const current = buttons.length && [...buttons].find((b) => b.getAttribute("aria-expanded") === "true");
    const closing = current && current.dataset.panel === id;
    for (const b of buttons) b.setAttribute("aria-expanded", String(!closing && b.dataset.panel === id));
    for (const panel of side.querySelectorAll(".panel")) panel.hidden = closing || panel.id !== id;
    side.hidden = Boolean(closing);
    $("call-view").classList.toggle("with-side", !closing);
    if (id === "panel-chat" && !closing) {
      $("chat-unread").hidden = true;
      $("chat-unread").textContent = "";
    }
  }

  // ---- levels: active speaker, speaking outline, audio-only fallback -------------------------
  async sampleStats() {
    const s = this.session;
    if (s.state !== "joined") return;
    let stats;
    try {
      stats = await connectionStats(s.pc);
    } catch {
      return; // the connection closed under us
    }
    const levels = new Map();
    for (const [mid, level] of stats.levels) {
      const remote = s.remoteTracks.get(mid);
      if (remote) levels.set(remote.participantId, Math.max(levels.get(remote.participantId) || 0, level));
    }
    const audio = s.local.get("audio");
    if (this.localMeter && audio && !audio.muted) levels.set(s.participantId, this.localMeter.level() / 4);
    const now = Date.now();
    const active = this.active.update(levels, now);
    const speaking = this.active.speaking(now);
    for (const tile of [this.localTile, ...this.tiles.values()]) {
      if (tile && !tile.isScreen) tile.setSpeaking(speaking.has(tile.participantId));
    }
    if (active !== this.activeId) {
      this.activeId = active;
      this.renderLayout();
    }
    this.checkConnection(stats);
  }

  /**
   * Audio-only fallback: when the server's receiver reports on the video we send say it loses
   * POOR_FRACTION_LOST or more of it for POOR_SAMPLES samples in a row, our camera is paused (a
   * disabled track costs almost nothing) and a banner says so; "Start video" resumes it; the
   * setting turns the automatic pause off. Neither availableOutgoingBitrate (no transport-wide
   * feedback from the SFU: Chromium's estimate sits at its floor, 30-90 kbit/s, on loopback) nor
   * the reports' round-trip time (15 s measured on loopback) is a usable signal here.
   */
  checkConnection({ videoFractionLost, videoRoundTripS, availableOutgoingBitrate }) {
    this.outgoing = { videoFractionLost, videoRoundTripS, availableOutgoingBitrate };
    const video = this.session.local.get("video");
    if (!$("auto-audio-only").checked || !video || video.muted || videoFractionLost === null) {
      this.poorSamples = 0;
      return;
    }
    const poor = videoFractionLost >= POOR_FRACTION_LOST;
    this.poorSamples = poor ? this.poorSamples + 1 : 0;
    if (this.poorSamples >= POOR_SAMPLES) {
      this.poorSamples = 0;
      this.session.setMuted("video", true);
      this.videoPausedForBandwidth = true;
      const banner = $("banner");
      banner.hidden = false;
      banner.textContent = `Poor connection (${Math.round(videoFractionLost * 100)} % of your video lost): `
        + "your video is paused, audio continues. Choose “Start video” to resume.";
    }
  }

  // ---- leaving ---------------------------------------------------------------------------
  onClosed({ code, failure }) {
    clearInterval(this.statsTimer);
    if (this.localMeter) this.localMeter.close();
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    this.tiles.clear();
    $("tiles").replaceChildren();
    $("participant-list").replaceChildren();
    $("call-view").hidden = true;
    $("join-view").hidden = false;
    $("room-badge").hidden = true;
    $("copy-link").hidden = true;
    $("connection").hidden = true;
    $("join-button").disabled = false;
    // a media failure says what failed and what the operator can do (protocol.js MEDIA_FAILURES)
    setStatus(failure ? failure.message : code === 1000 ? "You left the room." : `Disconnected (code ${code}).`);
    if (failure) $("join-error").textContent = failure.message; // by Join, announced (role=alert)
    window.parleyPreJoin?.start();
  }
}

function wireControls() {
  const view = () => window.parleyView;
  const session = () => window.parley;
  const toggleMute = (kind) => {
    const s = session();
    if (!s) return;
    const muted = !s.local.get(kind)?.muted;
    s.setMuted(kind, muted);
    if (kind === "video" && !muted) {
      view().videoPausedForBandwidth = false;
      $("banner").hidden = true;
    }
  };
  $("mic-button").addEventListener("click", () => toggleMute("audio"));
  $("camera-button").addEventListener("click", () => toggleMute("video"));
  $("leave-button").addEventListener("click", () => session()?.leave());
  $("layout-button").addEventListener("click", () => view()?.toggleLayout());
  $("hand-button").addEventListener("click", () => session()?.setHand(!session().hand));
  $("screen-button").addEventListener("click", async () => {
    const s = session();
    if (!s) return;
    if (s.local.has("screen")) {
      s.stopScreen();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0];
      s.shareScreen(track);
      view().setLocalScreen(track);
    } catch (err) {
      setStatus(`Screen sharing: ${err.message || err}`);
    }
  });
  const optOut = (out) => {
    session()?.setTranscriptionOptOut(out);
    view()?.renderOptOut();
  };
  $("notice-optout").addEventListener("click", () => optOut(!session()?.transcriptionOptOut));
  $("cc-optout").addEventListener("change", () => optOut($("cc-optout").checked));
  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text || !session()) return;
    session().sendChat(text, $("chat-to").value || null);
    input.value = "";
    input.focus();
  });
  $("chat-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("cc-button").addEventListener("click", () => {
    const button = $("cc-button");
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    view()?.captions.setEnabled(on);
  });
  for (const button of document.querySelectorAll("#controls [data-panel]")) {
    button.addEventListener("click", () => view()?.openPanel(button.dataset.panel));
  }
  $("notice-ok").addEventListener("click", () => {
    $("notice").hidden = true;
    $("cc-button").focus();
  });
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      setStatus("Link copied.");
    } catch {
      setStatus(location.href);
    }
  });

  // caption settings
  const p = prefs();
  fillLanguageSelect($("cc-lang"), { first: [["", "Original language only"]], value: p.read ?? "" });
  fillLanguageSelect($("cc-lang2"), { first: [["", "None"]], value: p.read2 ?? "" });
  $("cc-bilingual").checked = Boolean(p.bilingual);
  $("cc-size").value = p.captionSize || "medium";
  const languagesChanged = () => {
    const languages = [$("cc-lang").value, $("cc-lang2").value].filter((l, i, all) => l && all.indexOf(l) === i);
    savePrefs({ read: $("cc-lang").value, read2: $("cc-lang2").value });
    view()?.setLanguages(languages);
  };
  $("cc-lang").addEventListener("change", languagesChanged);
  $("cc-lang2").addEventListener("change", languagesChanged);
  $("cc-bilingual").addEventListener("change", () => {
    const on = $("cc-bilingual").checked;
    savePrefs({ bilingual: on });
    view()?.captions.setBilingual(on);
    view()?.transcript.setBilingual(on);
  });
  $("cc-size").addEventListener("change", () => {
    savePrefs({ captionSize: $("cc-size").value });
    view()?.captions.setFontSize($("cc-size").value);
  });

  // keyboard: M mute, V camera, C captions, hold Space to talk while muted
  document.addEventListener("keydown", (ev) => {
    if (!session() || session().state !== "joined" || isTyping(ev.target) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const key = ev.key.toLowerCase();
    if (key === "m" && !ev.repeat) toggleMute("audio");
    else if (key === "v" && !ev.repeat) toggleMute("video");
    else if (key === "c" && !ev.repeat) $("cc-button").click();
    else if (key === " " && !(ev.target instanceof HTMLButtonElement) && !(ev.target instanceof HTMLAnchorElement)) {
      ev.preventDefault();
      const audio = session().local.get("audio");
      if (!ev.repeat && audio && audio.muted) {
        view().pushToTalk = true;
        session().setMuted("audio", false);
        setStatus("Talking (release Space to mute)");
      }
    }
  });
  document.addEventListener("keyup", (ev) => {
    if (ev.key === " " && view()?.pushToTalk) {
      view().pushToTalk = false;
      session().setMuted("audio", true);
      setStatus("Muted");
    }
  });
}

async function join(name, room, prejoin) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  // the join link's token for this room (`parley token`), kept per room so a reload still works
  const token = tokenFor(room);
  const { stream, lang, languages } = await prejoin.take();
  // open mode: `?role=interpreter` joins the booth (with tokens the token's role counts)
  const asked = new URLSearchParams(location.search).get("role");
  const role = ["interpreter", "viewer"].includes(asked) ? asked : null;
  const session = new ParleySession({ url, room, name, localStream: stream, token, lang, languages, role, clientId: tabClientId() });
  window.parley = session; // exposed for tests and debugging
  $("cc-lang").value = languages[0] || "";
  $("cc-lang2").value = languages[1] || "";
  window.parleyView = new RoomView(session, { languages });
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
  const prejoin = new PreJoin();
  window.parleyPreJoin = prejoin;
  $("name-input").value = localStorage.getItem(NAME_KEY) || "";
  $("room-input").value = params.get("room") || "";
  ($("name-input").value ? $("room-input") : $("name-input")).focus();
  if ($("name-input").value && $("room-input").value) $("join-button").focus();
  prejoin.start().catch((err) => setStatus(`Camera/microphone: ${err.message || err}`));

  $("join-form").addEventListener("submit", async (ev) => {
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
      await join(name, room, prejoin);
    } catch (err) {
      $("join-error").textContent = `Could not join: ${err.message || err}`;
      $("join-button").disabled = false;
      setStatus("");
      prejoin.start().catch(() => {});
    }
  });
  wireControls();
}

main();
