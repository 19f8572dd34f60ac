// Parley wire protocol v1 client (see PROTOCOL.md): one WebSocket + one RTCPeerConnection
// (two on a Janus-backed server: `pubPc`, which we offer, sends; PROTOCOL.md "Janus engine").
// No DOM access here: the UI (room.js) listens to the events this module dispatches.
//
// Events (all CustomEvent; read `event.detail`):
//   "joined"        {participantId, room}
//   "participants"  {participants}          any change of who is here, their tracks or mutes
//   "trackadded"    {participantId, trackId, kind, mid, track}
//   "trackremoved"  {participantId, trackId, kind, mid, track}
//   "localmute"     {kind, muted}
//   "error"         {code, message, ref}    an `error` from the server, or a local failure
//   "caption"       {caption, receivedMs}   a `caption` message (interim or final)
//   "notice"        {kind, text}            e.g. the transcription notice (before any caption)
//   "chat"          {message, history}      a `chat` message (history: from `chat_history`)
//   "hand"          {participantId, raised}
//   "transcription" {participantId, optOut}
//   "captionsunavailable" {}                the server has no captions ([captions] off)
//   "captionsstatus" {state}                "paused" (no speech worker is up) or "live" again
//   "reconnecting"  {attempt, delayMs, code} the socket dropped; rejoining (media and captions too)
//   "redirect"      {url, node}             the room lives on another node of the cluster; we
//                                           join it there (PROTOCOL.md "Clusters")
//   "closed"        {code, reason, failure} the socket closed for good; the session is over
//                                           (failure: {code, message} when media could not
//                                           flow, e.g. "ice_failed": see MEDIA_FAILURES)
//   "serverclosing" {reason, flushTimeoutMs} the server announced its shutdown (`server_closing`)
//
// Reconnect: a socket that closes with anything but 1000 (leave), 1008 (protocol violation),
// 1009 (too big), 4001 (removed by a host), 4002 (meeting ended) or 4004 (a viewer's time on
// stage ended) is reopened with backoff (RECONNECT_DELAYS_MS) and the session joins the same
// room again under the same name, with the same local tracks, mutes and caption languages.
// The server removed the old participant when the old socket closed, so nobody sees a ghost;
// our participant_id changes.
//
// Clusters (PROTOCOL.md "Clusters"): a `redirect` during a join sends the session to the room's
// node at once (a new socket, hello, join; at most MAX_REDIRECTS in a row). `joined.cluster`
// lists the live nodes; reconnecting then tries our own server first and each node in turn at
// every backoff step (reconnectPlan), so that a dead node's clients reach a live one.
//
// Media (ICE) failure: a peer connection that never connected in this session is a
// configuration problem (UDP blocked and no TURN relay) that rejoining cannot fix: the session
// leaves once and closes with failure "ice_failed". One that had connected and then failed is
// rejoined after ICE_REJOIN_DELAYS_MS (exponential); after the last, it closes with "ice_lost".
// Either way the others see us join and leave a bounded number of times, never a flicker.

export const PROTOCOL_VERSION = 1;
export const CLIENT_NAME = "parley-web/0.1";

/** Microphone constraints: the server (and its captioning) wants the voice unprocessed. */
export const AUDIO_CONSTRAINTS = Object.freeze({
  echoCancellation: false,
  noiseSuppression: false,
  autoGainControl: false,
});
export const VIDEO_CONSTRAINTS = Object.freeze({ width: { ideal: 640 }, height: { ideal: 480 } });

const ICE_GATHERING_TIMEOUT_MS = 5000;
/** Waits before each reconnect attempt; after the last one the session closes. */
export const RECONNECT_DELAYS_MS = Object.freeze([250, 500, 1000, 2000, 4000, 4000, 8000, 8000]);
/** The steps in a cluster: a dead node's rooms move once its heartbeat expires (3 s by
 * default), so the first seconds are tried every second rather than with a growing wait. */
export const CLUSTER_RECONNECT_DELAYS_MS = Object.freeze(
  [250, 500, 1000, 1000, 1000, 1000, 2000, 4000, 4000, 8000, 8000]);
/** How long a reconnecting socket may take to open before the next attempt. */
const CONNECT_TIMEOUT_MS = 5000;
/** Redirects followed in a row without joining (a loop between nodes is a bug: stop). */
export const MAX_REDIRECTS = 4;

/**
 * Where and when reconnect attempt `attempt` (0-based) goes: our own server first, then each
 * other node the cluster named, all of them at each step of RECONNECT_DELAYS_MS (in a cluster
 * CLUSTER_RECONNECT_DELAYS_MS); null once every step was tried.
 * @param {number} attempt
 * @param {string} homeUrl the socket URL the session started with
 * @param {string[]} nodes the cluster's node URLs from `joined.cluster` (may be empty)
 * @returns {{url: string, delayMs: number}|null}
 */
export function reconnectPlan(attempt, homeUrl, nodes) {
  const urls = [homeUrl, ...nodes.filter((u) => u !== homeUrl)];
  const delays = urls.length > 1 ? CLUSTER_RECONNECT_DELAYS_MS : RECONNECT_DELAYS_MS;
  const step = Math.floor(attempt / urls.length);
  if (step >= delays.length) return null;
  return { url: urls[attempt % urls.length], delayMs: delays[step] };
}

/** Close codes after which reconnecting cannot help. */
// 4001 removed, 4002 meeting ended, 4004 stage ended (PROTOCOL.md "Audience: on stage")
const FINAL_CLOSE_CODES = new Set([1000, 1008, 1009, 4001, 4002, 4004]);
/** How long the peer connection may stay "disconnected" before we rejoin. */
const PC_DISCONNECTED_GRACE_MS = 5000;
/** Waits before each rejoin after media that had connected failed; then the session closes. */
export const ICE_REJOIN_DELAYS_MS = Object.freeze([1000, 2000, 4000, 8000]);
/** Media that stayed connected this long resets the rejoin count. */
const ICE_STABLE_MS = 30_000;

/** Why media could not flow, in words for the user (room.js shows `message`; the catalogs of
 * issue 13 part B can key on `code`). */
export const MEDIA_FAILURES = Object.freeze({
  ice_failed: "Could not connect audio and video: no network path to the media server "
    + "(UDP is probably blocked between you and it). The server's operator can fix this by "
    + "setting up a TURN relay ([turn] in the server configuration).",
  ice_failed_relay: "Could not connect audio and video, not even through the server's TURN relay. "
    + "Ask the server's operator to check the TURN relay ([turn] in the server configuration).",
  ice_lost: "The audio and video connection was lost and could not be restored. If this keeps "
    + "happening, the server's operator can set up a TURN relay ([turn] in the server configuration).",
});

/**
 * Ask for camera + microphone; fall back to microphone only, then to nothing (receive only).
 * @param {{audio?: boolean, video?: boolean, errors?: Error[]}} [want] `errors` collects the
 *   failures of the attempts
 * @returns {Promise<MediaStream|null>}
 */
export async function getLocalMedia(want = { audio: true, video: true }) {
  const audio = want.audio ? { ...AUDIO_CONSTRAINTS, ...deviceConstraint(want.audioDeviceId) } : false;
  const video = want.video ? { ...VIDEO_CONSTRAINTS, ...deviceConstraint(want.videoDeviceId) } : false;
  const attempts = [{ audio, video }, { audio, video: false }, { audio: false, video }];
  for (const constraints of attempts) {
    if (!constraints.audio && !constraints.video) continue;
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      console.warn("getUserMedia failed", constraints, err);
      if (want.errors) want.errors.push(err); // the page says why (web/messages.js)
    }
  }
  return null;
}

function deviceConstraint(deviceId) {
  return deviceId ? { deviceId: { exact: deviceId } } : {};
}

/** Key of a local track in ParleySession.local: "audio", "video" (camera) or "screen". */
function localKey(kind, source) {
  return source === "screen" ? "screen" : kind;
}

/** Resolve once the peer connection has finished gathering ICE candidates (no trickle). */
function iceGatheringComplete(pc, timeoutMs = ICE_GATHERING_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    // Send what we have rather than hang if gathering never completes.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * One participant's session: connect, join a room, publish local media, receive the others'.
 *
 * State readable by the UI and by tests:
 *   state          "new" | "connecting" | "joined" | "closed"
 *   participantId  ours (after "joined")
 *   participants   Map participant_id -> {participant_id, name, tracks: Map track_id -> track}
 *                  (everybody but us; a track is {track_id, kind, muted})
 *   remoteTracks   Map mid -> {participantId, trackId, kind, mid, track}
 *   local          Map kind -> {track, trackId, muted}
 *   pc             the RTCPeerConnection (for getStats)
 */
/** A random id for `join.client_id` (URL-safe, 22 characters). */
export function randomClientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * This tab's client id, kept in `storage` (sessionStorage: a reload keeps it, another tab has its
 * own): in open mode a host's removal refuses it (PROTOCOL.md `join.client_id`).
 */
export function tabClientId(storage = globalThis.sessionStorage) {
  const key = "parley.client_id";
  let id = storage ? storage.getItem(key) : null;
  if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
    id = randomClientId();
    if (storage) storage.setItem(key, id);
  }
  return id;
}

export class ParleySession extends EventTarget {
  /**
   * @param {{url: string, room: string, name: string, localStream?: MediaStream|null,
   *          token?: string|null, lang?: string|null, languages?: string[], reconnect?: boolean,
   *          WebSocketImpl?: typeof WebSocket, stagePass?: string|null}} options
   *   token: a room token (PROTOCOL.md "Access control"); lang: the language we speak (null =
   *   detected); languages: the caption languages we read; stagePass: a viewer invited on stage
   *   joins with the pass its `stage_accept` got (PROTOCOL.md "Audience: on stage")
   */
  constructor({ url, room, name, localStream = null, token = null, lang = null, languages = [], reconnect = true, WebSocketImpl = WebSocket, role = null, clientId = null, stagePass = null }) {
    super();
    this.url = url;
    this.homeUrl = url; // where reconnecting starts (a redirect changes `url`, not this)
    this.nodes = []; // the cluster's node URLs (`joined.cluster.nodes`), tried when ours is gone
    this.node = null; // the cluster node we are on
    this._redirects = 0; // redirects followed since the last `joined`
    this.room = room;
    this.name = name;
    this.role = role; // open mode: "interpreter" or "viewer" instead of participant
    this.token = token; // a room token from the join link (PROTOCOL.md "Access control")
    this.stagePass = stagePass; // a viewer invited on stage (PROTOCOL.md "Audience")
    // our own random id (PROTOCOL.md `join.client_id`): in open mode a host's removal refuses it
    this.clientId = clientId || randomClientId();
    this.localStream = localStream;
    this.lang = lang || null;
    this.languages = [...languages];
    this.reconnectEnabled = reconnect;
    this.WebSocketImpl = WebSocketImpl;
    this.state = "new";
    this.participantId = null;
    this.welcome = null;
    this.participants = new Map();
    this.remoteTracks = new Map();
    this.local = new Map();
    for (const track of localStream ? localStream.getTracks() : []) {
      this.local.set(track.kind, { track, trackId: null, muted: !track.enabled });
    }
    this.pc = null;
    this.ws = null;
    this.closeCode = null;
    this.lastError = null;
    this.captionsAvailable = null; // unknown until the server answers `captions`
    this.notice = null; // the server's transcription notice, once received
    this.hand = false; // our raised hand
    this.transcriptionOptOut = false; // we asked not to be transcribed
    this.myRole = null; // the role the server gave us (joined.role)
    // the room's broadcast to the public (PROTOCOL.md "Broadcast"): on air, watch page
    this.broadcast = { onAir: false, by: null, watchUrl: null, pinned: null };
    this.glossary = []; // the room's glossary entries, as the server stores them
    // interpretation channels (PROTOCOL.md): every channel's state, and what we hear
    this.channels = [];
    this.listening = { channel: "floor", duck: false, interpreter_captions: false };
    this.duckVolume = 0.2;
    this.reconnects = 0; // completed rejoins
    this._attempt = 0;
    this.mediaConnected = false; // ICE connected at least once in this session
    this.iceServers = []; // from `joined` (TURN, when the server has it)
    this._iceRejoins = 0; // rejoins for failed media since media was last stable
    this._rejoinDelayMs = null; // the wait before the next rejoin, when media failure set it
    this._failure = null; // {code, message}: why the session closed, when media failed
    this._leaving = false;
    this._slots = {};
    this._pendingSlots = null;
    this._offerChain = Promise.resolve();
    // Janus engine (PROTOCOL.md "Janus engine"): we offer a second, send-only connection
    this.mediaEngine = "parley";
    this.pubPc = null;
    this._publishRevision = 0;
    this._publishChain = Promise.resolve();
    this._publishAnswered = null; // resolves the outstanding publish_offer
  }

  /** Open the socket, say hello, join the room and publish. Resolves once joined. */
  connect() {
    if (this.state !== "new") throw new Error(`connect() in state ${this.state}`);
    this.state = "connecting";
    return new Promise((resolve, reject) => {
      this._joinWaiter = { resolve, reject };
      this._open();
    });
  }

  _open() {
    const ws = new this.WebSocketImpl(this.url);
    this.ws = ws;
    // reconnecting, a host that vanished (a dead cluster node) may never answer: give up on it
    // and try the next (the first connection keeps the browser's own, longer, patience)
    clearTimeout(this._connectTimer);
    if (this.state === "reconnecting") {
      this._connectTimer = setTimeout(() => {
        if (ws === this.ws && ws.readyState === 0) ws.close();
      }, CONNECT_TIMEOUT_MS);
    }
    // Events of a socket we already replaced are ignored.
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      clearTimeout(this._connectTimer);
      this._send({ type: "hello", protocol: PROTOCOL_VERSION, client: CLIENT_NAME });
    });
    ws.addEventListener("message", (ev) => { if (ws === this.ws) this._onMessage(ev.data); });
    ws.addEventListener("close", (ev) => { if (ws === this.ws) this._onClose(ev.code, ev.reason); });
    ws.addEventListener("error", () => {
      // The close event follows with the code; nothing else is known here.
    });
  }

  /** Interpreters and hosts: correct a final caption's text in `lang` (PROTOCOL.md `correct`). */
  /** Replace the room's glossary (hosts and interpreters; PROTOCOL.md "Room glossary"). */
  setGlossary(entries) {
    this._send({ type: "glossary_set", entries });
  }

  /** Ask for an export of the room's transcript; the answer comes as an `export` event. */
  requestExport(format, lang = null) {
    const msg = { type: "export", format };
    if (lang) msg.lang = lang;
    this._send(msg);
  }

  correctCaption(captionId, lang, text) {
    this._send({ type: "correct", caption_id: captionId, lang, text });
  }

  /** Change the caption languages we read (any time; PROTOCOL.md `captions`). */
  setCaptionLanguages(languages) {
    this.languages = [...languages];
    if (this.state === "joined" && this.captionsAvailable !== false) {
      this._send({ type: "captions", languages: this.languages });
    }
  }

  /** Send a chat message to the room, or privately `to` a participant. */
  sendChat(text, to = null) {
    const msg = { type: "chat", text };
    if (this.lang) msg.lang = this.lang;
    if (to) msg.to = to;
    this._send(msg);
  }

  /** What we hear: "floor" or a language channel (PROTOCOL.md "Interpretation channels"). */
  listen(channel, { duck = false, interpreterCaptions = false } = {}) {
    this.listening = { channel, duck, interpreter_captions: interpreterCaptions };
    if (this.state === "joined") this._sendListen();
  }

  _sendListen() {
    const { channel, duck, interpreter_captions } = this.listening;
    this._send({ type: "listen", channel, duck, interpreter_captions });
  }

  /** Interpreters: go on air into `channel`, leave the air, ask for / answer a handover. */
  onAir(channel) { this._send({ type: "on_air", channel }); }

  offAir() { this._send({ type: "off_air" }); }

  requestHandover(channel) { this._send({ type: "handover_request", channel }); }

  answerHandover(channel, accept) { this._send({ type: "handover_answer", channel, accept }); }

  setHand(raised) {
    this.hand = Boolean(raised);
    this._send({ type: "hand", raised: this.hand });
    this._emit("hand", { participantId: this.participantId, raised: this.hand });
  }

  /** Ask the server not to transcribe us (or to resume). */
  setTranscriptionOptOut(optOut) {
    this.transcriptionOptOut = Boolean(optOut);
    this._send({ type: "transcription", opt_out: this.transcriptionOptOut });
  }

  /** Publish a screen (a video track from getDisplayMedia) beside the camera. */
  shareScreen(track) {
    if (this.local.has("screen")) throw new Error("already sharing a screen");
    this.local.set("screen", { track, trackId: null, muted: false, source: "screen" });
    track.addEventListener("ended", () => this.stopScreen(), { once: true }); // the browser's "Stop sharing"
    if (this.state === "joined") {
      this._send({ type: "publish", kinds: ["video"], source: "screen" });
      if (this.pubPc) this._queuePublishOffer();
    }
  }

  stopScreen() {
    const entry = this.local.get("screen");
    if (!entry) return;
    this.local.delete("screen");
    entry.track.stop();
    if (entry.trackId) this._send({ type: "unpublish", track_id: entry.trackId });
    if (this.pubPc) this._queuePublishOffer();
    this._emit("screenstopped", {});
  }

  /** Drop the connection as a network failure would (for tests and debugging). */
  simulateDrop() {
    if (this.ws) this.ws.close(4000, "simulated drop");
  }

  /** Mute or unmute our own `kind` ("audio" | "video") track and tell the room. */
  setMuted(kind, muted) {
    const entry = this.local.get(kind);
    if (!entry) return false;
    entry.track.enabled = !muted;
    entry.muted = muted;
    if (entry.trackId) {
      this._send({ type: "mute", track_id: entry.trackId, muted });
    } // otherwise sent when the server announces the track (track_published)
    this._emit("localmute", { kind, muted });
    return true;
  }

  /**
   * Switch our camera or microphone (`kind` "video" | "audio") to `track` during the call: the
   * sender's track is replaced in place (same m-line, no renegotiation), the mute state carries
   * over, and the old track is stopped.
   */
  async replaceTrack(kind, track) {
    const entry = this.local.get(kind);
    if (!entry) return false;
    track.enabled = !entry.muted;
    const senders = [this.pc, this.pubPc].flatMap((pc) => (pc ? pc.getSenders() : []));
    const sender = senders.find((s) => s.track === entry.track) || null;
    if (sender) await sender.replaceTrack(track);
    const old = entry.track;
    entry.track = track;
    if (old !== track) old.stop();
    return true;
  }

  /** A host starts (true) or stops (false) broadcasting the room to the public. */
  setBroadcast(onAir) {
    this._send({ type: onAir ? "broadcast_start" : "broadcast_stop" });
  }

  /** A host asks for the room's kept broadcasts (answered by a `recordings` event). */
  requestRecordings() {
    this._send({ type: "recordings" });
  }

  /** Leave the room. Resolves when the server has closed the socket (or after a timeout). */
  async leave(timeoutMs = 3000) {
    if (this.state === "closed") return;
    this._leaving = true;
    if (this._reconnectTimer) {
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._finalClose(1000, "left while reconnecting");
      return;
    }
    const closed = new Promise((resolve) => {
      this.addEventListener("closed", () => resolve(), { once: true });
    });
    if (this.ws && this.ws.readyState === this.WebSocketImpl.OPEN) {
      this._send({ type: "leave" });
    }
    const timer = setTimeout(() => this.ws && this.ws.close(1000, "leave"), timeoutMs);
    await closed;
    clearTimeout(timer);
  }

  /** A plain-JSON snapshot of the state (handy for tests and debugging). */
  snapshot() {
    return {
      state: this.state,
      participantId: this.participantId,
      room: this.room,
      closeCode: this.closeCode,
      lastError: this.lastError,
      reconnects: this.reconnects,
      captionsAvailable: this.captionsAvailable,
      languages: this.languages,
      participants: [...this.participants.values()].map((p) => ({
        participant_id: p.participant_id,
        name: p.name,
        hand: p.hand,
        transcriptionOptOut: p.transcriptionOptOut,
        tracks: [...p.tracks.values()].map((t) => ({ ...t })),
      })),
      remoteTracks: [...this.remoteTracks.values()].map(
        ({ participantId, trackId, kind, source, mid }) => ({ participantId, trackId, kind, source, mid })),
      local: [...this.local.entries()].map(([kind, e]) => ({ kind, trackId: e.trackId, muted: e.muted })),
      hand: this.hand,
      transcriptionOptOut: this.transcriptionOptOut,
      slots: this._slots,
    };
  }

  // ---- internals -------------------------------------------------------------------------

  _send(message) {
    if (!this.ws || this.ws.readyState !== this.WebSocketImpl.OPEN) return;
    this.ws.send(JSON.stringify(message));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _emitParticipants() {
    this._emit("participants", { participants: [...this.participants.values()] });
  }

  _fail(code, message) {
    this.lastError = { code, message, ref: null };
    this._emit("error", this.lastError);
  }

  _onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._fail("client", "server sent a frame that is not JSON");
      return;
    }
    const handler = this._handlers[msg && msg.type];
    if (!handler) return; // newer server -> client types are ignored (PROTOCOL.md, Versioning)
    try {
      handler.call(this, msg);
    } catch (err) {
      console.error("handling", msg.type, err);
      this._fail("client", `handling ${msg.type}: ${err}`);
    }
  }

  _onClose(code, reason) {
    if (this.state === "closed") return;
    const joinedBefore = this.participantId !== null;
    const plan = reconnectPlan(this._attempt, this.homeUrl, this.nodes);
    const retry = this.reconnectEnabled && !this._leaving && joinedBefore && !FINAL_CLOSE_CODES.has(code)
      && plan !== null;
    if (!retry) {
      this._finalClose(code, reason);
      return;
    }
    // Forget this connection's media and room view; keep local tracks for the rejoin.
    this._teardownConnection();
    this.state = "reconnecting";
    const delayMs = this._rejoinDelayMs ?? plan.delayMs;
    this.url = plan.url;
    this._redirects = 0; // a chain of redirects is counted per attempt
    this._rejoinDelayMs = null;
    this._attempt += 1;
    this._emit("reconnecting", { attempt: this._attempt, delayMs, code });
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._open();
    }, delayMs);
  }

  _teardownConnection() {
    for (const entry of [...this.remoteTracks.values()]) this._removeRemote(entry.mid);
    if (this.pc) this.pc.close();
    this.pc = null;
    this._closePublishConnection();
    clearTimeout(this._pcTimer);
    clearTimeout(this._stableTimer);
    this._slots = {};
    this._offerChain = Promise.resolve();
    for (const entry of this.local.values()) entry.trackId = null;
    if (this.participants.size) {
      this.participants.clear();
      this._emitParticipants();
    }
  }

  _finalClose(code, reason) {
    clearTimeout(this._connectTimer);
    this.state = "closed";
    this.closeCode = code;
    if (this._joinWaiter) {
      this._joinWaiter.reject(new Error(`connection closed (${code}) before joining`));
      this._joinWaiter = null;
    }
    this._teardownConnection();
    for (const { track } of this.local.values()) track.stop();
    this._emit("closed", { code, reason, failure: this._failure });
  }

  /** Our peer connection failed (or stayed disconnected): rejoin with backoff, or give up. */
  _onMediaFailed() {
    if (this.state !== "joined") return;
    clearTimeout(this._stableTimer);
    if (!this.mediaConnected || this._iceRejoins >= ICE_REJOIN_DELAYS_MS.length) {
      // never connected: rejoining cannot help (UDP blocked, no TURN); or it kept failing
      const relayed = this.iceServers.some((s) => [s.urls].flat().some((u) => /^turns?:/.test(u)));
      const code = this.mediaConnected ? "ice_lost" : relayed ? "ice_failed_relay" : "ice_failed";
      console.warn(`media failed (${code}) after ${this._iceRejoins} rejoins: giving up`);
      this._failure = { code, message: MEDIA_FAILURES[code] };
      this.lastError = { code, message: MEDIA_FAILURES[code], ref: null };
      this.leave();
      return;
    }
    this._rejoinDelayMs = ICE_REJOIN_DELAYS_MS[this._iceRejoins];
    this._iceRejoins += 1;
    this.simulateDrop();
  }

  // -- Janus engine: the publish connection (PROTOCOL.md "Janus engine") ---------------------
  _createPublishConnection(iceServers) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pubPc && pc.connectionState === "failed") this._onMediaFailed();
    });
    return pc;
  }

  _closePublishConnection() {
    if (this.pubPc) this.pubPc.close();
    this.pubPc = null;
    this._publishChain = Promise.resolve();
    if (this._publishAnswered) this._publishAnswered.resolve(null);
    this._publishAnswered = null;
  }

  /** One publish offer at a time; changes meanwhile go into the next one. */
  _queuePublishOffer() {
    const pc = this.pubPc;
    this._publishChain = this._publishChain
      .then(() => this._publishOffer(pc))
      .catch((err) => {
        if (this.state === "closed" || pc !== this.pubPc) return;
        console.error("publish offer", err);
        this._fail("client", `could not publish: ${err}`);
      });
  }

  async _publishOffer(pc) {
    if (!pc || pc !== this.pubPc || pc.signalingState === "closed") return;
    const sending = new Set([...this.local.values()].map((e) => e.track));
    for (const t of pc.getTransceivers()) {
      // a track we no longer publish (a stopped screen share): its m-line goes inactive
      if (t.direction !== "inactive" && !sending.has(t.sender.track)) {
        await t.sender.replaceTrack(null);
        t.direction = "inactive";
      }
    }
    const sources = {};
    for (const [key, entry] of this.local) {
      let transceiver = pc.getTransceivers().find((t) => t.sender.track === entry.track);
      if (!transceiver) transceiver = pc.addTransceiver(entry.track, { direction: "sendonly" });
      entry.publishTransceiver = transceiver;
      sources[key] = transceiver;
    }
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const bySource = {};
    for (const [key, transceiver] of Object.entries(sources)) {
      bySource[transceiver.mid] = key === "screen" ? "screen" : key === "audio" ? "microphone" : "camera";
    }
    this._publishRevision += 1;
    const revision = this._publishRevision;
    const answered = new Promise((resolve) => { this._publishAnswered = { revision, resolve }; });
    this._send({ type: "publish_offer", sdp: pc.localDescription.sdp, revision, sources: bySource });
    const sdp = await answered;
    if (sdp === null || pc !== this.pubPc) return; // torn down meanwhile
    await pc.setRemoteDescription({ type: "answer", sdp });
  }

  _createPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    pc.addEventListener("track", (ev) => {
      // Fires inside setRemoteDescription, while the offer being applied is _pendingSlots.
      const mid = ev.transceiver.mid;
      const slots = this._pendingSlots || this._slots;
      const slot = slots[mid];
      if (slot && slot.direction === "subscribe") this._setRemote(mid, slot, ev.track);
    });
    // A network blip the socket has not noticed (yet) shows here first: rejoin.
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      clearTimeout(this._pcTimer);
      if (pc.connectionState === "connected") {
        this.mediaConnected = true;
        clearTimeout(this._stableTimer);
        this._stableTimer = setTimeout(() => { if (pc === this.pc) this._iceRejoins = 0; }, ICE_STABLE_MS);
      } else if (pc.connectionState === "failed") this._onMediaFailed();
      else if (pc.connectionState === "disconnected") {
        this._pcTimer = setTimeout(() => { if (pc === this.pc) this._onMediaFailed(); }, PC_DISCONNECTED_GRACE_MS);
      }
    });
    return pc;
  }

  async _handleOffer(msg) {
    const pc = this.pc;
    if (!pc || pc.signalingState === "closed") return;
    const slots = msg.slots || {};
    this._pendingSlots = slots;
    try {
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    } finally {
      this._pendingSlots = null;
    }
    const transceivers = new Map(pc.getTransceivers().map((t) => [t.mid, t]));
    for (const [mid, slot] of Object.entries(slots)) {
      if (slot.direction !== "publish") continue;
      const transceiver = transceivers.get(mid);
      const entry = this.local.get(localKey(slot.kind, slot.source));
      if (!transceiver || !entry) continue;
      if (transceiver.sender.track !== entry.track) await transceiver.sender.replaceTrack(entry.track);
      transceiver.direction = "sendonly";
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await iceGatheringComplete(pc);
    this._slots = slots;
    this._reconcileRemote();
    this._send({ type: "answer", sdp: pc.localDescription.sdp, revision: msg.revision });
  }

  /**
   * Make remoteTracks match the subscribe slots of the offer last answered. Every mid is looked
   * up again: the server reuses an m-line for another participant's track, and a receiver keeps
   * its MediaStreamTrack for life, so whether or not `track` fired, the mid's receiver track now
   * belongs to whoever the slot names.
   */
  _reconcileRemote() {
    if (!this.pc) return;
    for (const [mid, entry] of [...this.remoteTracks]) {
      const slot = this._slots[mid];
      if (!slot || slot.direction !== "subscribe" || slot.track_id !== entry.trackId || (slot.source || null) !== entry.source) {
        this._removeRemote(mid);
      }
    }
    const transceivers = new Map(this.pc.getTransceivers().map((t) => [t.mid, t]));
    for (const [mid, slot] of Object.entries(this._slots)) {
      if (slot.direction !== "subscribe" || this.remoteTracks.has(mid)) continue;
      const transceiver = transceivers.get(mid);
      if (transceiver) this._setRemote(mid, slot, transceiver.receiver.track);
    }
  }

  _setRemote(mid, slot, track) {
    if (!this.participants.has(slot.participant_id)) {
      // An offer sent before its participant left (participant_left came first): no tile for
      // them. (Were an offer ever to name someone before participant_joined, that re-checks.)
      this._removeRemote(mid);
      return;
    }
    const current = this.remoteTracks.get(mid);
    if (current && current.trackId === slot.track_id && current.track === track) return;
    if (current) this._removeRemote(mid);
    const entry = { participantId: slot.participant_id, trackId: slot.track_id, kind: slot.kind, source: slot.source || null, mid, track };
    this.remoteTracks.set(mid, entry);
    this._emit("trackadded", entry);
  }

  _removeRemote(mid) {
    const entry = this.remoteTracks.get(mid);
    if (!entry) return;
    this.remoteTracks.delete(mid);
    this._emit("trackremoved", entry);
  }

  _participantTrack(participantId, trackId) {
    const p = this.participants.get(participantId);
    return p ? p.tracks.get(trackId) : undefined;
  }
}

/** Handlers for server -> client messages, keyed by `type`; `this` is the session. */
ParleySession.prototype._handlers = {
  broadcast(msg) {
    this.broadcast = {
      onAir: Boolean(msg.on_air),
      by: msg.by ?? null,
      watchUrl: msg.watch_url ?? null,
      pinned: msg.pinned ?? null,
    };
    this._emit("broadcast", this.broadcast);
  },
  welcome(msg) {
    this.welcome = msg;
    // the peer connection is made at `joined`: ICE servers (TURN credentials) come only then
    if (this.pc) this.pc.close();
    this.pc = null;
    // publishing with the join puts our publish slots in the first offer (one round trip)
    const join = { type: "join", room: this.room, name: this.name, publish: ["audio", "video"].filter((k) => this.local.has(k)) };
    if (this.token) join.token = this.token;
    if (this.stagePass) join.stage_pass = this.stagePass;
    if (this.lang) join.lang = this.lang;
    if (this.role) join.role = this.role;
    join.client_id = this.clientId;
    this._send(join);
  },

  redirect(msg) {
    // the room lives on another node (PROTOCOL.md "Clusters"): join it there, now
    if (this._redirects >= MAX_REDIRECTS) {
      this._fail("redirect_loop", `sent on ${this._redirects} times without joining`);
      if (this.ws) this.ws.close(4000, "redirect loop");
      return;
    }
    this._redirects += 1;
    const old = this.ws;
    if (this.state === "joined") {
      // our room moved while we were in it: rejoin as after a drop, on the new node
      this._teardownConnection();
      this.state = "reconnecting";
    }
    this.url = msg.url;
    this._emit("redirect", { url: msg.url, node: msg.node });
    this._open(); // the old socket's events are ignored from now on
    if (old) old.close(1000, "redirected");
  },

  joined(msg) {
    const reconnected = this.participantId !== null;
    this._redirects = 0;
    if (msg.cluster) {
      this.node = msg.cluster.node;
      this.nodes = [...(msg.cluster.nodes || [])];
    }
    if (this.pc) this.pc.close();
    this.iceServers = msg.ice_servers || [];
    this.pc = this._createPeerConnection(this.iceServers);
    this.state = "joined";
    this.participantId = msg.participant_id;
    this.myRole = msg.role || null;
    // a host's link to moderate the audience's questions and polls (PROTOCOL.md "Audience")
    this.audience = { moderateUrl: msg.moderate_url ?? null };
    this._emit("audience", this.audience);
    this._attempt = 0;
    if (reconnected) this.reconnects += 1;
    if (this.captionsAvailable !== false) this._send({ type: "captions", languages: this.languages });
    if (reconnected) {
      // what we had asked for before the drop
      if (this.hand) this._send({ type: "hand", raised: true });
      if (this.transcriptionOptOut) this._send({ type: "transcription", opt_out: true });
      if (this.listening.channel !== "floor" || this.listening.interpreter_captions) this._sendListen();
    }
    if (this.local.has("screen")) this._send({ type: "publish", kinds: ["video"], source: "screen" });
    this.mediaEngine = msg.media_engine || "parley";
    this._closePublishConnection();
    if (this.mediaEngine === "janus" && this.local.size) {
      this.pubPc = this._createPublishConnection(this.iceServers);
      this._queuePublishOffer();
    }
    this.room = msg.room;
    this.participants.clear();
    for (const p of msg.participants || []) this._handlers.participant_joined.call(this, { participant: p }, true);
    if (this._joinWaiter) {
      this._joinWaiter.resolve(this);
      this._joinWaiter = null;
    }
    this._emit("joined", { participantId: this.participantId, room: this.room, reconnected });
    this._emitParticipants();
  },

  participant_joined(msg, quiet = false) {
    const p = msg.participant;
    const tracks = new Map((p.tracks || []).map((t) => [t.track_id, { ...t }]));
    this.participants.set(p.participant_id, {
      participant_id: p.participant_id, name: p.name, role: p.role, tracks,
      hand: Boolean(p.hand_raised), transcriptionOptOut: Boolean(p.transcription_opt_out),
    });
    if (quiet) return;
    this._emitParticipants();
    this._reconcileRemote(); // in case an offer already named this participant's tracks
  },

  participant_left(msg) {
    if (!this.participants.delete(msg.participant_id)) return;
    for (const entry of [...this.remoteTracks.values()]) {
      if (entry.participantId === msg.participant_id) this._removeRemote(entry.mid);
    }
    this._emitParticipants();
  },

  track_published(msg) {
    const track = { ...msg.track };
    if (msg.participant_id === this.participantId) {
      const entry = this.local.get(localKey(track.kind, track.source));
      if (!entry) return;
      entry.trackId = track.track_id;
      // A mute chosen before the server knew the track is announced now.
      if (entry.muted !== Boolean(track.muted)) this._send({ type: "mute", track_id: track.track_id, muted: entry.muted });
      return;
    }
    const p = this.participants.get(msg.participant_id);
    if (!p) return;
    p.tracks.set(track.track_id, track);
    this._emitParticipants();
  },

  track_unpublished(msg) {
    if (msg.participant_id === this.participantId) {
      for (const entry of this.local.values()) if (entry.trackId === msg.track_id) entry.trackId = null;
      return;
    }
    const p = this.participants.get(msg.participant_id);
    if (p && p.tracks.delete(msg.track_id)) this._emitParticipants();
  },

  muted(msg) {
    if (msg.participant_id === this.participantId) return; // our own echo; local state is already set
    const track = this._participantTrack(msg.participant_id, msg.track_id);
    if (!track) return;
    track.muted = Boolean(msg.muted);
    this._emitParticipants();
  },

  offer(msg) {
    // At most one offer is outstanding, but keep strict order anyway.
    this._offerChain = this._offerChain
      .then(() => this._handleOffer(msg))
      .catch((err) => {
        if (this.state === "closed") return; // the socket closed under us; nothing to answer
        console.error("offer", err);
        this._fail("client", `could not answer offer ${msg.revision}: ${err}`);
      });
  },

  publish_answer(msg) {
    const answered = this._publishAnswered;
    if (!answered || msg.revision !== answered.revision) return; // an older offer's answer
    this._publishAnswered = null;
    answered.resolve(msg.sdp);
  },

  server_closing(msg) {
    // the socket closes with 1001 next; we reconnect as after any drop, and the UI says why
    this._emit("serverclosing", { reason: msg.reason, flushTimeoutMs: msg.flush_timeout_ms });
  },

  notice(msg) {
    this.notice = { kind: msg.kind, text: msg.text };
    this._emit("notice", this.notice);
  },

  chat(msg, history = false) {
    this._emit("chat", { message: msg, history });
  },

  chat_history(msg) {
    for (const m of msg.messages || []) this._handlers.chat.call(this, m, true);
  },

  hand(msg) {
    if (msg.participant_id === this.participantId) {
      this.hand = Boolean(msg.raised);
    } else {
      const p = this.participants.get(msg.participant_id);
      if (!p) return;
      p.hand = Boolean(msg.raised);
    }
    this._emit("hand", { participantId: msg.participant_id, raised: Boolean(msg.raised) });
    this._emitParticipants();
  },

  transcription(msg) {
    if (msg.participant_id === this.participantId) {
      this.transcriptionOptOut = Boolean(msg.opt_out);
    } else {
      const p = this.participants.get(msg.participant_id);
      if (!p) return;
      p.transcriptionOptOut = Boolean(msg.opt_out);
    }
    this._emit("transcription", { participantId: msg.participant_id, optOut: Boolean(msg.opt_out) });
    this._emitParticipants();
  },

  glossary(msg) {
    this.glossary = msg.entries || [];
    this._emit("glossary", { entries: this.glossary, by: msg.by ?? null });
  },

  recordings(msg) {
    this._emit("recordings", { kept: Boolean(msg.kept), recordings: msg.recordings || [] });
  },

  export(msg) {
    this._emit("export", { format: msg.format, lang: msg.lang ?? null, filename: msg.filename, content: msg.content });
  },

  channels(msg) {
    this.channels = msg.channels || [];
    if (msg.listening) this.listening = { ...msg.listening };
    if (typeof msg.duck_volume === "number") this.duckVolume = msg.duck_volume;
    this._emit("channels", { event: msg.event || null });
  },

  captions_status(msg) {
    this.captionsPaused = msg.state === "paused";
    this._emit("captionsstatus", { state: msg.state });
  },

  caption(msg) {
    this.captionsAvailable = true;
    this._emit("caption", { caption: msg, receivedMs: Date.now() });
  },

  error(msg) {
    if (msg.ref === "captions" && msg.code === "bad_state") {
      this.captionsAvailable = false; // [captions] is off on this server: not an error for the user
      this._emit("captionsunavailable", {});
      return;
    }
    this.lastError = { code: msg.code, message: msg.message, ref: msg.ref ?? null };
    if (msg.ref === "publish_offer" && this._publishAnswered) {
      this._publishAnswered.resolve(null); // refused: nothing published; the next change retries
      this._publishAnswered = null;
    }
    if (this.state === "reconnecting" && msg.ref === "join") {
      // the rejoin was refused (e.g. rate_limited): drop this socket, the next attempt follows
      this._emit("error", this.lastError);
      if (this.ws) this.ws.close(4000, "rejoin refused");
      return;
    }
    if (this._joinWaiter) { // before `joined` only hello and join were sent: this is about them
      this._joinWaiter.reject(Object.assign(new Error(msg.message), { code: msg.code }));
      this._joinWaiter = null;
    }
    this._emit("error", this.lastError);
  },
};
