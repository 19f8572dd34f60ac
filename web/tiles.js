// Video tiles (one per participant, one more per screen share), the grid and active-speaker
// layouts, and the choice of the active speaker from audio levels.
import { t, uiLanguage } from "./i18n.js";

export const ICONS = {
  mic: '<path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 6-6.9z"/>',
  micOff: '<path d="M19 11h-2a5 5 0 0 1-.6 2.4l1.5 1.5A7 7 0 0 0 19 11zM15 11V5a3 3 0 0 0-5.9-.8L15 10.1zM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.5 2.6l1.6 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 3.5-1.3l3.2 3.2 1.3-1.3z"/>',
  cam: '<path d="M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11z"/>',
  camOff: '<path d="M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.8L21 17.2zM3.3 2 2 3.3 4.7 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.2 0 .4-.1.5-.2l3.2 3.2 1.3-1.3z"/>',
  hand: '<path d="M21 7a1.5 1.5 0 0 0-3 0v5h-1V4a1.5 1.5 0 0 0-3 0v8h-1V2.5a1.5 1.5 0 0 0-3 0V12H9V5.5a1.5 1.5 0 0 0-3 0v9.3L3.9 12.7a1.5 1.5 0 0 0-2.2 2l4.6 5.4A6 6 0 0 0 10.9 22H15a6 6 0 0 0 6-6z"/>',
  screen: '<path d="M20 3H4a2 2 0 0 0-2 2v11a2 2 0 0 0 2 2h6v2H8v2h8v-2h-2v-2h6a2 2 0 0 0 2-2V5a2 2 0 0 0-2-2zm0 13H4V5h16z"/>',
  leave: '<path d="M12 9c-1.6 0-3.1.3-4.6.7v3.1a1 1 0 0 1-.6.9 11.5 11.5 0 0 0-2.7 1.9 1 1 0 0 1-1.4 0L.3 13.2a1 1 0 0 1 0-1.4A16.9 16.9 0 0 1 12 7c4.5 0 8.7 1.8 11.7 4.8a1 1 0 0 1 0 1.4l-2.4 2.4a1 1 0 0 1-1.4 0 11.3 11.3 0 0 0-2.7-1.9 1 1 0 0 1-.6-.9V9.7C15.1 9.3 13.6 9 12 9z"/>',
};

export function icon(name, label) {
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

export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return (parts.slice(0, 2).map((p) => p[0]).join("") || "?").toUpperCase();
}

/** A tile: one <video> (playing the participant's audio too), a name plate, an avatar. */
export class Tile {
  constructor({ id, participantId, name, isLocal, isScreen = false, baseName = null }) {
    this.id = id;
    this.baseName = baseName; // for the initials when `name` is decorated ("Ada (you)")
    this.participantId = participantId;
    this.isScreen = isScreen;
    this.tracks = new Map(); // kind -> MediaStreamTrack
    this.el = document.createElement("article");
    this.el.className = `tile${isLocal ? " local" : ""}${isScreen ? " screen" : ""}`;
    this.el.dataset.participantId = participantId;
    if (isScreen) this.el.dataset.source = "screen";
    this.video = document.createElement("video");
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = isLocal || isScreen; // never play our own microphone back
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
    this.userVolume = 1; // the reader's own choice for this participant (0..1)
    this.duckVolume = 1; // ducking under an interpreter (channels.js volumes)
    if (!isLocal && !isScreen) {
      // per-person volume, like Meet's and Zoom's
      this.volumeInput = Object.assign(document.createElement("input"), { type: "range", min: "0", max: "100", value: "100" });
      this.volumeInput.className = "tile-volume";
      this.volumeInput.addEventListener("input", () => {
        this.userVolume = Number(this.volumeInput.value) / 100;
        this._applyVolume();
      });
      this.el.append(this.volumeInput);
    }
    this._state = "";
    this._last = null;
    this.update({ name, audioMuted: false, videoMuted: false, hand: false });
  }

  update({ name, audioMuted, videoMuted, hand, onAir = null }) {
    this._last = { name, audioMuted, videoMuted, hand, onAir };
    const label = this.isScreen ? t("tiles.screen", { name }) : name;
    const state = JSON.stringify([label, audioMuted, videoMuted, hand, onAir, this.tracks.has("video"), uiLanguage()]);
    if (state === this._state) return; // unchanged: leave the DOM alone
    this._state = state;
    this.nameEl.textContent = label;
    this.avatar.textContent = initials(this.baseName || name);
    this.el.setAttribute("aria-label", label);
    if (this.volumeInput) this.volumeInput.setAttribute("aria-label", t("tiles.volume", { name }));
    this.badges.replaceChildren();
    if (hand) this.badges.append(icon("hand", t("tiles.hand", { name })));
    if (audioMuted && !this.isScreen) this.badges.append(icon("micOff", t("tiles.micMuted", { name })));
    if (videoMuted && !this.isScreen) this.badges.append(icon("camOff", t("tiles.cameraOff", { name })));
    if (onAir && !this.isScreen) {
      const tag = document.createElement("span");
      tag.className = "on-air";
      tag.textContent = t("channels.onAirTag", { lang: onAir.toUpperCase() });
      this.badges.append(tag);
    }
    this.el.classList.toggle("audio-muted", audioMuted);
    this.el.classList.toggle("hand", Boolean(hand));
    this.el.classList.toggle("no-video", videoMuted || !this.tracks.has("video"));
  }

  setTrack(kind, track) {
    if (track) this.tracks.set(kind, track);
    else this.tracks.delete(kind);
    // A fresh stream each time: media elements do not reliably pick up added tracks.
    this.video.srcObject = this.tracks.size ? new MediaStream([...this.tracks.values()]) : null;
    if (this.tracks.size) this.video.play().catch(() => {}); // autoplay may need a gesture
    this.el.classList.toggle("no-video", !this.tracks.has("video"));
    this._state = "";
  }

  /** Redo the labels (the interface language changed). */
  relabel() {
    this._state = "";
    if (this._last) this.update(this._last);
  }

  /** Playback volume of this participant's audio (ducking under an interpreter). */
  setVolume(volume) {
    this.duckVolume = volume;
    this._applyVolume();
  }

  _applyVolume() {
    const volume = this.userVolume * this.duckVolume;
    if (!this.video.muted && this.video.volume !== volume) this.video.volume = volume;
  }

  setSpeaking(speaking) {
    this.el.classList.toggle("speaking", speaking);
  }
}

/** Speaking threshold on the 0..1 audio level, and how long a speaker stays "active". */
export const SPEAKING_LEVEL = 0.02;
export const ACTIVE_HOLD_MS = 1500;

/**
 * Chooses the active speaker from audio levels (pure): the loudest participant above
 * SPEAKING_LEVEL; the current one keeps the spot until someone else is louder for a sample and
 * they have been quiet for ACTIVE_HOLD_MS (no flapping between two people talking at once).
 */
export class ActiveSpeaker {
  constructor() {
    this.current = null;
    this.lastLoudMs = new Map();
  }

  /** @param {Map<string, number>} levels participant id -> level; returns the active id. */
  update(levels, nowMs) {
    let loudest = null;
    let best = SPEAKING_LEVEL;
    for (const [id, level] of levels) {
      if (level >= SPEAKING_LEVEL) this.lastLoudMs.set(id, nowMs);
      if (level > best) {
        best = level;
        loudest = id;
      }
    }
    const currentQuiet = this.current === null
      || !levels.has(this.current)
      || nowMs - (this.lastLoudMs.get(this.current) || 0) > ACTIVE_HOLD_MS;
    if (loudest !== null && loudest !== this.current && currentQuiet) this.current = loudest;
    if (this.current !== null && !levels.has(this.current)) this.current = loudest;
    return this.current;
  }

  /** Who spoke within the hold time (the "speaking" outline). */
  speaking(nowMs) {
    return new Set([...this.lastLoudMs].filter(([, t]) => nowMs - t <= 400).map(([id]) => id));
  }
}
