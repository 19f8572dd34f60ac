// The watch page: a room's broadcast as HLS (PROTOCOL.md "Broadcast"), no WebRTC, no account in
// open mode. hls.js where Media Source Extensions exist (switching audio renditions and caption
// tracks), the browser's own HLS otherwise (Safari). A viewer picks what they hear (the floor or
// an interpretation channel) and which captions they read; the page says how far behind live it
// plays. With room tokens, a link's `#token=` (e.g. a `viewer` token) is sent with each request.

import Hls from "./vendor/hls/hls.esm.js";
import { takeLinkToken } from "./linktoken.js";
import { startAudience } from "./audience.js";

const MASTER_POLL_MS = 10_000;
const RETRY_MS = 3_000;

const params = new URLSearchParams(location.search);
const tokenFor = takeLinkToken();
const room = params.get("room") || "";
const token = room ? tokenFor(room) : null;
const src = `/live/${encodeURIComponent(room)}/master.m3u8`;

const video = /** @type {HTMLVideoElement} */ (document.getElementById("watch-video"));
const statusEl = document.getElementById("watch-status");
const audioSelect = /** @type {HTMLSelectElement} */ (document.getElementById("watch-audio"));
const captionSelect = /** @type {HTMLSelectElement} */ (document.getElementById("watch-captions"));
const playButton = document.getElementById("watch-play");

/** State the page shows (and tests read). */
const state = {
  room,
  hls: /** @type {any} */ (null),
  native: false,
  ended: false,
  master: "",
  /** preferred choices, kept across a reload of the master playlist */
  wantAudio: params.get("audio") || "",
  wantCaptions: params.get("captions") || "",
  behindS: /** @type {number|null} */ (null),
  /** the viewer is in the room (web/stage.js): the stream is stopped meanwhile */
  onStage: false,
};
window.watch = state;

document.getElementById("watch-title").textContent = room ? `Live · ${room}` : "Live";

function setStatus(text, live = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("live", live);
}

function headers() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function fetchMaster() {
  const response = await fetch(src, { headers: headers(), cache: "no-store" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.text();
}

function trackKey(track) {
  return track.lang || track.name || "";
}

function fillSelect(select, tracks, current, withOff) {
  select.replaceChildren();
  if (withOff) select.append(new Option("Off", "-1"));
  tracks.forEach((track, index) => {
    select.append(new Option(track.name || track.lang || `Track ${index + 1}`, String(index)));
  });
  select.value = String(current);
  select.disabled = tracks.length === 0;
}

function showTracks() {
  const hls = state.hls;
  if (!hls) return;
  fillSelect(audioSelect, hls.audioTracks, hls.audioTrack, false);
  fillSelect(captionSelect, hls.subtitleTracks, hls.subtitleTrack, true);
}

function applyWishes() {
  const hls = state.hls;
  if (!hls) return;
  if (state.wantAudio) {
    const index = hls.audioTracks.findIndex((t) => trackKey(t) === state.wantAudio);
    if (index >= 0 && index !== hls.audioTrack) hls.audioTrack = index;
  }
  if (state.wantCaptions) {
    const index = hls.subtitleTracks.findIndex((t) => trackKey(t) === state.wantCaptions);
    if (index >= 0) hls.subtitleTrack = index;
  }
  showTracks();
}

audioSelect.addEventListener("change", () => {
  const index = Number(audioSelect.value);
  if (state.hls) {
    state.hls.audioTrack = index;
    state.wantAudio = trackKey(state.hls.audioTracks[index]);
  } else if (video.audioTracks) {
    [...video.audioTracks].forEach((t, i) => (t.enabled = i === index));
  }
});

captionSelect.addEventListener("change", () => {
  const index = Number(captionSelect.value);
  if (state.hls) {
    state.hls.subtitleTrack = index;
    state.hls.subtitleDisplay = index >= 0;
    state.wantCaptions = index >= 0 ? trackKey(state.hls.subtitleTracks[index]) : "";
  } else {
    [...video.textTracks].forEach((t, i) => (t.mode = i === index ? "showing" : "disabled"));
  }
});

playButton.addEventListener("click", () => {
  video.muted = false;
  video.play().then(() => (playButton.hidden = true), () => {});
});

async function play() {
  try {
    await video.play();
    playButton.hidden = true;
  } catch {
    // autoplay with sound refused: start muted and offer the sound
    video.muted = true;
    playButton.hidden = false;
    await video.play().catch(() => {});
  }
}

function startHls() {
  const hls = new Hls({
    enableWorker: false, // the page's CSP allows no blob: worker; segments are small
    // 2.5 s behind the newest segment's end: the captions of what plays are written 1.75 s
    // after its media (broadcast/worker.py CAPTION_WAIT_S) and fetched a playlist poll later
    liveSyncDuration: 2.5,
    // further behind than this (a long stall), it jumps back to live (12 s let a busy
    // machine's player stay 9 s behind: bench/broadcast.py)
    liveMaxLatencyDuration: 6,
    // after a stall, play up to 10 % faster back to 2.5 s behind live (else it stays late)
    maxLiveSyncPlaybackRate: 1.1,
    renderTextTracksNatively: true,
    xhrSetup: token ? (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${token}`) : undefined,
  });
  state.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    applyWishes();
    play();
  });
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, showTracks);
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, showTracks);
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, applyWishes);
  hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, showTracks);
  hls.on(Hls.Events.LEVEL_UPDATED, (_event, data) => {
    if (data.details && !data.details.live) state.ended = true;
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    restart();
  });
  hls.loadSource(src);
  hls.attachMedia(video);
}

function startNative() {
  state.native = true;
  video.src = src; // no custom headers here: token-mode rooms need `[broadcast] public` for Safari
  video.addEventListener("loadedmetadata", () => {
    const audio = video.audioTracks ? [...video.audioTracks] : [];
    fillSelect(audioSelect, audio.map((t) => ({ name: t.label, lang: t.language })), 0, false);
    const texts = [...video.textTracks].filter((t) => t.kind === "subtitles");
    fillSelect(captionSelect, texts.map((t) => ({ name: t.label, lang: t.language })), -1, true);
    play();
  });
}

function restart() {
  if (state.onStage) return;
  if (state.hls) state.hls.destroy();
  state.hls = null;
  state.master = "";
  setStatus("Waiting for the broadcast…");
  setTimeout(load, RETRY_MS);
}

async function load() {
  if (state.onStage) return; // web/stage.js calls backToStream() when the stage ends
  if (!room) {
    setStatus("No room given (watch.html?room=NAME).");
    return;
  }
  try {
    state.master = await fetchMaster();
  } catch {
    setStatus("Waiting for the broadcast to start…");
    setTimeout(load, RETRY_MS);
    return;
  }
  state.ended = false;
  if (Hls.isSupported()) startHls();
  else if (video.canPlayType("application/vnd.apple.mpegurl")) startNative();
  else setStatus("This browser cannot play live streams.");
}

// A channel that goes on air later adds an audio rendition: the master playlist changes, and
// the player loads it again (keeping what the viewer chose).
setInterval(async () => {
  if (!state.hls || state.ended || !state.master) return;
  try {
    const master = await fetchMaster();
    if (master !== state.master && !state.onStage) {
      state.hls.destroy();
      state.hls = null;
      state.master = master;
      startHls();
    }
  } catch {
    // the broadcast ended or the server is away: the player says so
  }
}, MASTER_POLL_MS);

setInterval(() => {
  if (state.ended && (video.ended || video.paused)) {
    setStatus("The broadcast has ended.");
    return;
  }
  let behind = null;
  if (state.hls && Number.isFinite(state.hls.latency)) behind = state.hls.latency;
  else if (state.native && video.seekable.length) {
    behind = video.seekable.end(video.seekable.length - 1) - video.currentTime;
  }
  state.behindS = behind;
  if (behind !== null && !video.paused) setStatus(`live · ${Math.round(behind)} s behind`, true);
}, 1000);

/** On stage (web/stage.js): the stream stops while the viewer is in the room... */
function leaveStream() {
  state.onStage = true;
  if (state.hls) state.hls.destroy();
  state.hls = null;
  state.master = "";
  video.pause();
  video.removeAttribute("src");
  video.load();
  video.hidden = true;
  document.getElementById("watch-controls").hidden = true; // the stream's choices, meanwhile moot
  setStatus("On stage");
}

/** ...and plays again when they are back to watching. */
function backToStream() {
  state.onStage = false;
  video.hidden = false;
  document.getElementById("watch-controls").hidden = false;
  setStatus("Back to the broadcast…");
  load();
}

load();
// questions, polls and the stage (issue 16)
startAudience({ room, token, stream: { leave: leaveStream, back: backToStream } });
