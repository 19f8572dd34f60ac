// The meeting UI: pre-join, tiles and layouts, controls and shortcuts, participant list,
// captions, transcript, reconnect state. All protocol work is in protocol.js; this module
// renders its state and events.
import { ParleySession, tabClientId } from "./protocol.js";
import { PreJoin, prefs } from "./prejoin.js";
import { ActiveSpeaker, Tile, icon } from "./tiles.js";
import { CaptionsView } from "./captionsview.js";
import { TranscriptView } from "./transcriptview.js";
import { ChatView } from "./chatview.js";
import { LevelMeter, connectionStats } from "./levels.js";
import { fillLanguageSelect, languageName } from "./languages.js";
import { ChannelsView, channelOf, volumes } from "./channels.js";
import { takeLinkToken } from "./linktoken.js";
import { DevicesView } from "./devices.js";
import { wireControls } from "./controls.js";
import { bindLanguagePicker, onLanguageChange, setAttr, setText, t, translatePage, uiLanguage } from "./i18n.js";
import { joinErrorKey, noticeMessage } from "./messages.js";
import { startAudience } from "./audience.js";

/** Catalog keys of the media failures protocol.js reports (MEDIA_FAILURES codes). */
const MEDIA_FAILURE_KEYS = { ice_failed: "left.iceFailed", ice_failed_relay: "left.iceFailedRelay", ice_lost: "left.iceLost" };

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
/** "You are muted" hint: this level (0..1, LevelMeter) on the muted microphone for this many
 * samples in a row (1 s at STATS_INTERVAL_MS). */
const MUTED_TALK_LEVEL = 0.12;
const MUTED_TALK_SAMPLES = 2;
const TOAST_MS = 4000;

/** The status line: a message key and its params (redone when the interface language changes). */
function setStatus(key, params) {
  if (!key) {
    delete $("status").dataset.i18n;
    $("status").textContent = "";
    return;
  }
  setText($("status"), key, params);
}

/** A label span and an icon on a control button. */
function setButton(button, iconName, key) {
  let label = button.querySelector(".label");
  if (!label) {
    label = document.createElement("span");
    label.className = "label";
    button.replaceChildren(label);
  }
  if (button.dataset.icon !== iconName) {
    button.querySelector(".icon")?.remove();
    button.prepend(icon(iconName));
    button.dataset.icon = iconName;
  }
  if (label.dataset.i18n !== key) setText(label, key);
}

/** Someone who only watches (the interpreter console, a viewer): publishes nothing. */
/** A soft two-note chime for notices (off unless the setting is on). */
function chime() {
  try {
    const ctx = new AudioContext();
    const gain = ctx.createGain();
    gain.gain.value = 0.05;
    gain.connect(ctx.destination);
    [660, 880].forEach((hz, i) => {
      const osc = ctx.createOscillator();
      osc.frequency.value = hz;
      osc.connect(gain);
      osc.start(ctx.currentTime + i * 0.12);
      osc.stop(ctx.currentTime + i * 0.12 + 0.1);
    });
    setTimeout(() => ctx.close(), 600);
  } catch {
    // no audio output: the visual notice is enough
  }
}

function isObserver(p) {
  return (p.role === "viewer" || p.role === "interpreter") && !(p.tracks && p.tracks.size);
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
          setAttr(badge, "aria-label", "chat.unread", { count: badge.textContent });
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
      onStatus: (text) => {
        delete $("status").dataset.i18n; // built from messages already (channels.js)
        $("status").textContent = text;
      },
    });
    $("booth-into").addEventListener("change", () => this.channels.render());
    this.devices = new DevicesView({
      session,
      camera: $("room-camera"), mic: $("room-mic"), speaker: $("room-speaker"),
      media: () => [...this.tiles.values()].map((tile) => tile.video),
      onSwitched: (kind, track) => this.onDeviceSwitched(kind, track),
      onError: (err) => setStatus("status.deviceFailed", { error: err.message || String(err) }),
    });
    session.addEventListener("channels", (ev) => {
      this.channels.render(ev.detail.event);
      this.render();
    });
    session.addEventListener("joined", (ev) => this.onJoined(ev.detail));
    session.addEventListener("joined", () => this.renderBroadcast());
    session.addEventListener("joined", () => this.startAudience());
    session.addEventListener("broadcast", () => this.renderBroadcast());
    session.addEventListener("audience", () => {
      const link = $("moderate-link"); // a host's moderation page (issue 16)
      link.href = session.audience.moderateUrl || "#";
      link.hidden = !session.audience.moderateUrl;
    });
    $("broadcast-button").addEventListener("click", () => {
      session.setBroadcast(!session.broadcast.onAir);
    });
    session.addEventListener("notice", (ev) => this.showNotice(ev.detail.text));
    session.addEventListener("serverclosing", () => { this.serverClosing = true; });
    session.addEventListener("chat", (ev) => this.chat.add(ev.detail.message, { history: ev.detail.history }));
    session.addEventListener("hand", (ev) => {
      const { participantId, raised } = ev.detail || {};
      if (raised && participantId && participantId !== session.participantId) this.toast("notify.hand", { name: this.nameOf(participantId) });
      this.render();
    });
    session.addEventListener("transcription", (ev) => {
      if (ev.detail.participantId === session.participantId) this.renderOptOut();
      this.render();
    });
    session.addEventListener("screenstopped", () => this.setLocalScreen(null));
    session.addEventListener("participants", () => {
      this.noticeArrivals();
      this.render();
    });
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
    session.addEventListener("error", (ev) => setStatus("status.error", { message: ev.detail.message || ev.detail.code }));
    session.addEventListener("closed", (ev) => this.onClosed(ev.detail));
    this.statsTimer = null;
  }

  nameOf(id) {
    if (id === this.session.participantId) return this.session.name;
    const p = this.session.participants.get(id);
    if (p) return this.displayName(p);
    return this.names.get(id) || t("room.someone");
  }

  /** A participant's name, with "(2)" etc. when others here have the same name (joined earlier). */
  displayName(p) {
    const s = this.session;
    // in joining order: those here before us, us, those who came after (the same on every page)
    const all = [...s.participants.values()];
    const before = all.filter((o) => this.here?.has(o.participant_id));
    const after = all.filter((o) => !this.here?.has(o.participant_id));
    const order = [...before, { participant_id: s.participantId, name: s.name }, ...after];
    const same = order.filter((o) => o.name === p.name);
    if (same.length < 2) return p.name;
    return t("room.sameName", { name: p.name, n: same.findIndex((o) => o.participant_id === p.participant_id) + 1 });
  }

  youName() {
    return t("room.you", { name: this.session.name });
  }

  /** The room's audience questions and polls in the chat panel (issue 16): participants
   * ask and vote as viewers do, over the same socket and documents (web/audience.js). */
  startAudience() {
    if (this.audience || !$("audience")) return;
    this.audience = startAudience({
      room: this.session.room,
      token: this.session.token,
      lang: this.session.lang || uiLanguage(), // what they write in (and read the lists in)
      say: (key, params) => t(`audience.${key}`, params),
    });
  }

  onJoined({ reconnected }) {
    const s = this.session;
    this.names.set(s.participantId, s.name);
    if (this.localTile) this.localTile.el.remove();
    this.localTile = new Tile({ id: s.participantId, participantId: s.participantId, name: this.youName(), baseName: s.name, isLocal: true });
    for (const [kind, { track }] of s.local) this.localTile.setTrack(kind, track);
    for (const tile of this.tiles.values()) tile.el.remove();
    this.tiles.clear();
    $("tiles").replaceChildren(this.localTile.el);
    if (this.localScreenTile) $("tiles").append(this.localScreenTile.el);
    $("join-view").hidden = true;
    $("left-view").hidden = true;
    $("call-view").hidden = false;
    $("room-badge").textContent = s.room;
    $("room-badge").hidden = false;
    $("copy-link").hidden = false;
    $("mic-button").disabled = !s.local.has("audio");
    $("camera-button").disabled = !s.local.has("video");
    for (const [kind, button] of [["audio", $("mic-button")], ["video", $("camera-button")]]) {
      if (s.local.has(kind)) {
        button.removeAttribute("title");
        button.removeAttribute("data-i18n-title");
      } else {
        setAttr(button, "title", window.parleyPreJoin?.mediaProblem || (kind === "audio" ? "controls.noMic" : "controls.noCamera"));
      }
    }
    $("banner").hidden = true;
    this.setConnection("connected");
    const url = new URL(location.href);
    url.searchParams.set("room", s.room);
    history.replaceState(null, "", url);
    this.serverClosing = false;
    this.known = new Set(s.participants.keys());
    this.here = new Set(s.participants.keys()); // who was in the room before us
    setStatus(reconnected ? "status.reconnected" : "");
    this.channels.render();
    if (!reconnected) {
      if (window.matchMedia("(min-width: 900px)").matches) this.openPanel("panel-people");
      this.meterAudio(s.local.get("audio")?.track || null);
      this.statsTimer = setInterval(() => this.sampleStats(), STATS_INTERVAL_MS);
    }
    this.devices.refresh().catch(() => {});
    this.render();
  }

  /** Our camera or microphone was switched (Settings → Devices): show and meter the new one. */
  onDeviceSwitched(kind, track) {
    this.localTile?.setTrack(kind, track);
    if (kind === "audio") this.meterAudio(track);
    this.devices.refresh().catch(() => {});
    this.render();
  }

  /** Level meters on our microphone: the speaking outline, and the "you are muted" hint (on a
   * clone: a muted track is disabled, silent, while the clone still hears the room). */
  meterAudio(track) {
    this.localMeter?.close();
    this.mutedMeter?.close();
    this.mutedClone?.stop();
    this.localMeter = track ? new LevelMeter(track) : null;
    this.mutedClone = track ? track.clone() : null;
    if (this.mutedClone) this.mutedClone.enabled = true;
    this.mutedMeter = this.mutedClone ? new LevelMeter(this.mutedClone) : null;
    this.mutedLoudSamples = 0;
  }

  /** The interface language changed: redo what render() builds from messages. */
  relabel() {
    for (const tile of [this.localTile, this.localScreenTile, ...this.tiles.values()]) if (tile) tile.relabel();
    this.channels.render();
    this.captions.render();
    this.transcript.render();
    this.devices.refresh().catch(() => {});
    this.render();
  }

  /** Join and leave notices: who appeared or went since the last participants event. */
  noticeArrivals() {
    const now = new Set(this.session.participants.keys());
    if (this.known && this.session.state === "joined") {
      for (const id of now) if (!this.known.has(id)) this.toast("notify.joined", { name: this.nameOf(id) });
      for (const id of this.known) if (!now.has(id)) this.toast("notify.left", { name: this.names.get(id) || t("room.someone") });
    }
    if (this.known) this.known = now;
  }

  /** A short visual notice (and a soft tone when the setting is on); gone after TOAST_MS. */
  toast(key, params) {
    const item = document.createElement("div");
    item.className = "toast";
    setText(item, key, params);
    $("toasts").append(item);
    while ($("toasts").children.length > 3) $("toasts").firstElementChild.remove();
    setTimeout(() => item.remove(), TOAST_MS);
    if ($("notify-sound").checked) chime();
  }

  setConnection(state) {
    const el = $("connection");
    el.hidden = false;
    el.dataset.state = state;
    setText(el, state === "connected" ? "connection.connected" : "connection.reconnecting");
  }

  // ---- consent notice and captions -----------------------------------------------------
  showNotice(text) {
    if (text) {
      const { key, params, raw } = noticeMessage(text);
      if (key) {
        setText($("notice-text"), key, params);
        $("notice-text").removeAttribute("lang");
      } else {
        delete $("notice-text").dataset.i18n;
        $("notice-text").textContent = raw;
        $("notice-text").lang = "en"; // the operator's own text
      }
    }
    if (this.captions.consented) return;
    $("notice").hidden = false;
    // Captions may show once the notice is on screen: it always comes first.
    this.captions.consent();
  }

  /** No speech worker is up (paused) or one is again (live): say so on the CC button, and once
   * as a toast at each change. */
  onCaptionsStatus(state) {
    const paused = state === "paused";
    if (paused) setAttr($("cc-button"), "title", "captions.paused");
    else {
      $("cc-button").removeAttribute("title");
      $("cc-button").removeAttribute("data-i18n-title");
    }
    $("cc-button").classList.toggle("paused", paused);
    this.toast(paused ? "captions.paused" : "captions.resumed");
  }

  onCaptionsUnavailable() {
    $("notice").hidden = true;
    $("cc-button").disabled = true;
    setAttr($("cc-button"), "title", "captions.offOnServer");
  }

  renderOptOut() {
    const out = this.session.transcriptionOptOut;
    $("cc-optout").checked = out;
    const button = $("notice-optout");
    button.setAttribute("aria-pressed", String(out));
    setText(button, out ? "notice.optIn" : "notice.optOut");
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
    this.known = null; // the room is read afresh on rejoin: no "joined" toasts for everybody
    this.setConnection("reconnecting");
    const banner = $("banner");
    banner.hidden = false;
    if (this.serverClosing) setText(banner, "banner.restarting", { attempt });
    else setText(banner, "banner.reconnecting", { attempt });
    setStatus("status.reconnectingIn", { seconds: (Math.round(delayMs / 100) / 10).toLocaleString() });
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
      tile = new Tile({ id, participantId, name: p ? this.displayName(p) : "…", isLocal: false, isScreen: screen });
      this.devices.apply(tile.video);
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
      this.localScreenTile = new Tile({ id: `${s.participantId}:screen`, participantId: s.participantId, name: this.youName(), baseName: s.name, isLocal: true, isScreen: true });
      this.localScreenTile.setTrack("video", track);
      $("tiles").append(this.localScreenTile.el);
    }
    const button = $("screen-button");
    button.setAttribute("aria-pressed", String(Boolean(track)));
    setButton(button, "screen", track ? "controls.stopSharing" : "controls.shareScreen");
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
      if (isObserver(p)) {
        // a console or a viewer: in the list, never a camera-less tile
        this.tiles.get(p.participant_id)?.el.remove();
        this.tiles.delete(p.participant_id);
        continue;
      }
      const tile = this.tileFor(p.participant_id);
      const shown = this.displayName(p);
      tile.update({ name: shown, ...this.mutedKinds(p) });
      tile.setVolume(loudness.get(p.participant_id) ?? 1);
      this.tiles.get(`${p.participant_id}:screen`)?.update({ name: shown, ...this.mutedKinds(p) });
    }
    const self = this.selfState();
    if (this.localTile) this.localTile.update({ name: this.youName(), ...self });
    this.renderControls(self);
    this.renderList(self);
    this.renderLayout();
  }

  /** "On air to the public" for everyone while the room is broadcast (a link to the watch
   * page); hosts get the button that starts and stops it. */
  renderBroadcast() {
    const { onAir, watchUrl } = this.session.broadcast;
    const badge = $("broadcast-badge");
    badge.hidden = !onAir;
    if (watchUrl) badge.href = watchUrl;
    const button = $("broadcast-button");
    button.hidden = this.session.myRole !== "host";
    const key = onAir ? "broadcast.stop" : "broadcast.start";
    button.dataset.i18n = key;
    button.textContent = t(key);
    button.setAttribute("aria-pressed", String(onAir));
  }

  renderControls({ audioMuted, videoMuted, hand }) {
    const mic = $("mic-button");
    setButton(mic, audioMuted ? "micOff" : "mic", audioMuted ? "controls.unmute" : "controls.mute");
    mic.setAttribute("aria-pressed", String(audioMuted));
    setAttr(mic, "aria-label", audioMuted ? "controls.unmuteLabel" : "controls.muteLabel");
    const cam = $("camera-button");
    setButton(cam, videoMuted ? "camOff" : "cam", videoMuted ? "controls.startVideo" : "controls.stopVideo");
    cam.setAttribute("aria-pressed", String(videoMuted));
    setAttr(cam, "aria-label", videoMuted ? "controls.cameraOnLabel" : "controls.cameraOffLabel");
    const handButton = $("hand-button");
    handButton.setAttribute("aria-pressed", String(hand));
    setButton(handButton, "hand", hand ? "controls.lowerHand" : "controls.raiseHand");
    setButton($("leave-button"), "leave", "controls.leave");
    const screen = $("screen-button");
    if (!screen.querySelector(".icon")) setButton(screen, "screen", this.session.local.has("screen") ? "controls.stopSharing" : "controls.shareScreen");
    if (!audioMuted) $("muted-hint").hidden = true;
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
      if (hand) li.append(icon("hand", t("people.hand")));
      if (audioMuted) li.append(icon("micOff", t("people.micMuted")));
      if (videoMuted) li.append(icon("camOff", t("people.cameraOff")));
      if (onAir) {
        const tag = document.createElement("span");
        tag.className = "on-air";
        tag.textContent = t("channels.onAirTag", { lang: onAir.toUpperCase() });
        li.append(tag);
      }
      if (optOut) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = t("people.notTranscribed");
        li.append(tag);
      }
      return li;
    };
    const items = [item(s.participantId, this.youName(), self)];
    const others = [...s.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const p of others) items.push(item(p.participant_id, this.displayName(p), this.mutedKinds(p)));
    $("participant-list").replaceChildren(...items);
    $("participant-count").textContent = `(${items.length})`;
    const to = $("chat-to");
    const chosen = to.value;
    to.replaceChildren(new Option(t("chat.everyone"), ""), ...others.map((p) => new Option(this.displayName(p), p.participant_id)));
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
    setText(button, this.layout === "speaker" ? "controls.gridView" : "controls.speakerView");
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
    this.checkTalkingMuted(audio);
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
      setText(banner, "banner.poorConnection", { percent: Math.round(videoFractionLost * 100) });
    }
  }

  /**
   * The "you are muted" hint: our microphone picks up speech while muted (the track is disabled,
   * but the level meter reads the device) for MUTED_TALK_SAMPLES samples in a row.
   */
  checkTalkingMuted(audio) {
    const hint = $("muted-hint");
    if (!this.mutedMeter || !audio || !audio.muted || this.pushToTalk) {
      this.mutedLoudSamples = 0;
      hint.hidden = true;
      return;
    }
    const loud = this.mutedMeter.level() >= MUTED_TALK_LEVEL;
    this.mutedLoudSamples = loud ? (this.mutedLoudSamples || 0) + 1 : 0;
    if (this.mutedLoudSamples >= MUTED_TALK_SAMPLES) hint.hidden = false;
  }

  // ---- leaving ---------------------------------------------------------------------------
  onClosed({ code, failure }) {
    clearInterval(this.statsTimer);
    this.meterAudio(null);
    this.devices.close();
    $("muted-hint").hidden = true;
    this.captions.close();
    for (const tile of [this.localTile, this.localScreenTile, ...this.tiles.values()]) {
      if (tile) tile.video.srcObject = null;
    }
    this.tiles.clear();
    $("tiles").replaceChildren();
    $("participant-list").replaceChildren();
    $("call-view").hidden = true;
    $("room-badge").hidden = true;
    $("copy-link").hidden = true;
    $("connection").hidden = true;
    $("on-air-badge").hidden = true;
    $("join-button").disabled = false;
    // The session stopped our tracks; the preview stays off until the user asks (Rejoin or
    // "Change…"), so that leaving turns the camera light off.
    setStatus("");
    const left = $("left-view");
    const heading = $("left-heading");
    const text = $("left-text");
    text.removeAttribute("role");
    setText(text, "left.text");
    if (failure) {
      // a media failure says what failed and what the operator can do (protocol.js
      // MEDIA_FAILURES), announced (role=alert) and in the status line
      const key = MEDIA_FAILURE_KEYS[failure.code] || "left.iceFailed";
      setText(heading, "left.mediaHeading");
      setText(text, key);
      text.setAttribute("role", "alert");
      setStatus(key);
    } else if (code === 1000) setText(heading, "left.heading");
    else if (code === 4001) setText(heading, "left.removed");
    else if (code === 4002) setText(heading, "left.ended");
    else setText(heading, "left.disconnected", { code });
    left.hidden = false;
    $("rejoin-button").focus();
  }
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
  window.parleyView?.captions.close?.();
  window.parleyView = new RoomView(session, { languages });
  setStatus("status.connecting");
  try {
    await session.connect();
  } catch (err) {
    if (session.ws) session.ws.close();
    throw Object.assign(err, { closeCode: session.closeCode ?? null });
  }
  return session;
}

function main() {
  const params = new URLSearchParams(location.search);
  const prejoin = new PreJoin();
  window.parleyPreJoin = prejoin;
  if (params.get("role") === "interpreter") {
    // an interpreter's first look: the booth, and the language they interpret into
    setText($("join-heading"), "prejoin.interpreterHeading");
    setText(document.querySelector("label[for='speak-select']"), "prejoin.interpretInto");
  }
  bindLanguagePicker($("ui-lang"));
  bindLanguagePicker($("room-ui-lang"));
  onLanguageChange(() => {
    translatePage(document);
    window.parleyView?.relabel();
  });
  $("name-input").value = localStorage.getItem(NAME_KEY) || "";
  $("room-input").value = params.get("room") || "";
  ($("name-input").value ? $("room-input") : $("name-input")).focus();
  if ($("name-input").value && $("room-input").value) $("join-button").focus();
  prejoin.start().catch((err) => setStatus("status.mediaFailed", { error: err.message || String(err) }));

  const showError = (key, params) => {
    if (key) setText($("join-error"), key, params);
    else {
      delete $("join-error").dataset.i18n;
      $("join-error").textContent = "";
    }
  };
  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("name-input").value.trim();
    const room = $("room-input").value.trim();
    showError("");
    if (!name || !ROOM_PATTERN.test(room)) {
      showError("join.invalid");
      return;
    }
    localStorage.setItem(NAME_KEY, name);
    $("join-button").disabled = true;
    try {
      await join(name, room, prejoin);
    } catch (err) {
      const { key, params: values } = joinErrorKey(err, err.closeCode ?? null);
      showError(key, values);
      $("join-button").disabled = false;
      setStatus("");
      prejoin.start().catch(() => {});
    }
  });
  // after leaving: Rejoin asks for the devices again and joins with the same choices
  $("rejoin-button").addEventListener("click", () => {
    $("left-view").hidden = true;
    $("join-view").hidden = false;
    prejoin.start().catch(() => {});
    $("join-form").requestSubmit();
  });
  $("left-home").addEventListener("click", () => {
    $("left-view").hidden = true;
    $("join-view").hidden = false;
    prejoin.start().catch(() => {});
    $("join-button").focus();
  });
  wireControls(setStatus);
}

main();
