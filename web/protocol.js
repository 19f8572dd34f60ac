// Parley wire protocol v1 client (see PROTOCOL.md): one WebSocket + one RTCPeerConnection.
// No DOM access here: the UI (room.js) listens to the events this module dispatches.
//
// Events (all CustomEvent; read `event.detail`):
//   "joined"        {participantId, room}
//   "participants"  {participants}          any change of who is here, their tracks or mutes
//   "trackadded"    {participantId, trackId, kind, mid, track}
//   "trackremoved"  {participantId, trackId, kind, mid, track}
//   "localmute"     {kind, muted}
//   "error"         {code, message, ref}    an `error` from the server, or a local failure
//   "closed"        {code, reason}          the socket closed; the session is over

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

/**
 * Ask for camera + microphone; fall back to microphone only, then to nothing (receive only).
 * @param {{audio?: boolean, video?: boolean}} [want]
 * @returns {Promise<MediaStream|null>}
 */
export async function getLocalMedia(want = { audio: true, video: true }) {
  const audio = want.audio ? { ...AUDIO_CONSTRAINTS } : false;
  const video = want.video ? { ...VIDEO_CONSTRAINTS } : false;
  const attempts = [{ audio, video }, { audio, video: false }, { audio: false, video }];
  for (const constraints of attempts) {
    if (!constraints.audio && !constraints.video) continue;
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      console.warn("getUserMedia failed", constraints, err);
    }
  }
  return null;
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
export class ParleySession extends EventTarget {
  /**
   * @param {{url: string, room: string, name: string, localStream?: MediaStream|null,
   *          token?: string|null, WebSocketImpl?: typeof WebSocket}} options
   */
  constructor({ url, room, name, localStream = null, token = null, WebSocketImpl = WebSocket }) {
    super();
    this.url = url;
    this.room = room;
    this.name = name;
    this.token = token; // a room token from the join link (PROTOCOL.md "Access control")
    this.localStream = localStream;
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
    this._slots = {};
    this._pendingSlots = null;
    this._offerChain = Promise.resolve();
  }

  /** Open the socket, say hello, join the room and publish. Resolves once joined. */
  connect() {
    if (this.state !== "new") throw new Error(`connect() in state ${this.state}`);
    this.state = "connecting";
    return new Promise((resolve, reject) => {
      this._joinWaiter = { resolve, reject };
      const ws = new this.WebSocketImpl(this.url);
      this.ws = ws;
      ws.addEventListener("open", () => {
        this._send({ type: "hello", protocol: PROTOCOL_VERSION, client: CLIENT_NAME });
      });
      ws.addEventListener("message", (ev) => this._onMessage(ev.data));
      ws.addEventListener("close", (ev) => this._onClose(ev.code, ev.reason));
      ws.addEventListener("error", () => {
        // The close event follows with the code; nothing else is known here.
      });
    });
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

  /** Leave the room. Resolves when the server has closed the socket (or after a timeout). */
  async leave(timeoutMs = 3000) {
    if (this.state === "closed") return;
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
      participants: [...this.participants.values()].map((p) => ({
        participant_id: p.participant_id,
        name: p.name,
        tracks: [...p.tracks.values()].map((t) => ({ ...t })),
      })),
      remoteTracks: [...this.remoteTracks.values()].map(
        ({ participantId, trackId, kind, mid }) => ({ participantId, trackId, kind, mid })),
      local: [...this.local.entries()].map(([kind, e]) => ({ kind, trackId: e.trackId, muted: e.muted })),
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
    this.state = "closed";
    this.closeCode = code;
    if (this._joinWaiter) {
      this._joinWaiter.reject(new Error(`connection closed (${code}) before joining`));
      this._joinWaiter = null;
    }
    for (const entry of [...this.remoteTracks.values()]) this._removeRemote(entry.mid);
    if (this.pc) this.pc.close();
    for (const { track } of this.local.values()) track.stop();
    this._emit("closed", { code, reason });
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
      const entry = this.local.get(slot.kind);
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
      if (!slot || slot.direction !== "subscribe" || slot.track_id !== entry.trackId) {
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
    const entry = { participantId: slot.participant_id, trackId: slot.track_id, kind: slot.kind, mid, track };
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
  welcome(msg) {
    this.welcome = msg;
    this.pc = this._createPeerConnection(msg.ice_servers || []);
    // publishing with the join puts our publish slots in the first offer (one round trip)
    const join = { type: "join", room: this.room, name: this.name, publish: [...this.local.keys()] };
    if (this.token) join.token = this.token;
    this._send(join);
  },

  joined(msg) {
    this.state = "joined";
    this.participantId = msg.participant_id;
    this.room = msg.room;
    this.participants.clear();
    for (const p of msg.participants || []) this._handlers.participant_joined.call(this, { participant: p }, true);
    if (this._joinWaiter) {
      this._joinWaiter.resolve(this);
      this._joinWaiter = null;
    }
    this._emit("joined", { participantId: this.participantId, room: this.room });
    this._emitParticipants();
  },

  participant_joined(msg, quiet = false) {
    const p = msg.participant;
    const tracks = new Map((p.tracks || []).map((t) => [t.track_id, { ...t }]));
    this.participants.set(p.participant_id, { participant_id: p.participant_id, name: p.name, tracks });
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
      const entry = this.local.get(track.kind);
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

  error(msg) {
    this.lastError = { code: msg.code, message: msg.message, ref: msg.ref ?? null };
    if (this._joinWaiter) { // before `joined` only hello and join were sent: this is about them
      this._joinWaiter.reject(Object.assign(new Error(msg.message), { code: msg.code }));
      this._joinWaiter = null;
    }
    this._emit("error", this.lastError);
  },
};
