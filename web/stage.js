// On stage (PROTOCOL.md "Audience: on stage"): a moderator invites this viewer to speak. The
// invitation arrives over the audience socket; if the viewer accepts, the page asks for camera
// and microphone, sends `stage_accept`, and joins the room as a participant with the stage pass
// that answer carries (the only room credential a viewer ever gets, for this invitation only).
// While on stage the broadcast stops (the room is live; the stream is seconds behind and would
// echo); when a moderator dismisses the viewer, the invitation lapses, or the viewer leaves, the
// page leaves the room and the stream plays again. The room itself is web/protocol.js's session.

import { ParleySession, getLocalMedia } from "./protocol.js";

/**
 * @param {{room: string, socket: any, lang: string,
 *          stream: {leave: () => void, back: () => void}}} options
 *   socket: the page's AudienceSocket; stream: stops and resumes the watch page's player
 */
export function startStage({ room, socket, lang, stream }) {
  const $ = (id) => document.getElementById(id);
  const state = {
    /** "watching" | "invited" | "joining" | "on_stage" */
    state: "watching",
    invite: /** @type {any} */ (null),
    session: /** @type {ParleySession|null} */ (null),
    /** why the last invitation or stage ended (PROTOCOL.md `stage_ended.reason`, or the page's) */
    ended: /** @type {string|null} */ (null),
    error: /** @type {string|null} */ (null),
    streamStopped: false,
  };
  window.stage = state;
  const invitePanel = $("stage-invite");
  const panel = $("stage");
  const status = $("stage-status");
  const videos = $("stage-videos");
  const self = /** @type {HTMLVideoElement} */ ($("stage-self"));
  const nameInput = /** @type {HTMLInputElement} */ ($("stage-name"));
  /** participant id -> {element, stream} */
  const remote = new Map();
  let lapse = 0;
  if (!invitePanel || !panel) return { onPush() {} };

  function onPush(message) {
    if (message.type === "stage_invite" && state.state === "watching") {
      state.state = "invited";
      state.invite = message;
      state.ended = null;
      state.error = null;
      invitePanel.hidden = false;
      clearTimeout(lapse);
      lapse = setTimeout(() => {
        if (state.state === "invited" && state.invite === message) end("expired");
      }, message.expires_in_ms);
    } else if (message.type === "stage_ended" && state.invite?.invite_id === message.invite_id) {
      end(message.reason);
    }
  }

  async function accept() {
    const invite = state.invite;
    if (!invite || state.state !== "invited") return;
    invitePanel.hidden = true;
    state.state = "joining";
    status.textContent = "Asking for your camera and microphone…";
    const media = await getLocalMedia({ audio: true, video: true, errors: [] });
    if (state.invite !== invite) { // dismissed meanwhile
      media?.getTracks().forEach((t) => t.stop());
      return;
    }
    if (!media) {
      state.error = "no_media"; // refused or no devices: the stage needs them
      end("no_media", { tell: true });
      return;
    }
    const answer = await socket.request({ type: "stage_accept", invite_id: invite.invite_id });
    if (answer.type !== "accepted" || state.invite !== invite) {
      media.getTracks().forEach((t) => t.stop());
      state.error = answer.code || null;
      if (state.invite === invite) end(answer.code || "refused");
      return;
    }
    stream.leave();
    state.streamStopped = true;
    panel.hidden = false;
    self.srcObject = media;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const session = new ParleySession({
      url: `${scheme}://${location.host}/ws`,
      room,
      name: answer.name || nameInput.value.trim() || "Guest",
      localStream: media,
      stagePass: answer.stage_pass,
      lang,
    });
    state.session = session;
    window.parley = session; // the room client, as on the room page (for debugging and tests)
    session.addEventListener("trackadded", (event) => showTrack(event.detail));
    session.addEventListener("trackremoved", (event) => hideTrack(event.detail));
    session.addEventListener("closed", () => {
      // 4004: a moderator ended our time on stage (`stage_ended` may arrive after it)
      if (state.session !== session) return;
      if (session.closeCode === 4004) end("stage_ended");
      else end("closed", { tell: true }); // e.g. media failed: the stage is over for us
    });
    try {
      await session.connect();
      if (state.session !== session) return;
      state.state = "on_stage";
      status.textContent = "You are on stage: the room sees and hears you.";
    } catch (err) {
      state.error = err.code || String(err);
      if (state.session === session) end("join_failed", { tell: true });
    }
  }

  function showTrack({ participantId, track }) {
    let entry = remote.get(participantId);
    if (!entry) {
      const element = document.createElement("video");
      element.autoplay = true;
      element.playsInline = true;
      element.className = "stage-peer";
      element.dataset.participantId = participantId;
      entry = { element, stream: new MediaStream() };
      element.srcObject = entry.stream;
      remote.set(participantId, entry);
      videos.append(element);
    }
    entry.stream.addTrack(track);
  }

  function hideTrack({ participantId, track }) {
    const entry = remote.get(participantId);
    if (!entry) return;
    entry.stream.removeTrack(track);
    if (!entry.stream.getTracks().length) {
      entry.element.remove();
      remote.delete(participantId);
    }
  }

  /** Back to watching: leave the room (if in it) and play the stream again; `tell`: the server
   * does not know yet (`stage_leave`). */
  function end(reason, { tell = false } = {}) {
    const { invite, session } = state;
    state.ended = reason;
    state.invite = null;
    state.session = null;
    state.state = "watching";
    clearTimeout(lapse);
    invitePanel.hidden = true;
    panel.hidden = true;
    if (session) session.leave().catch(() => {}); // its local tracks stop when it closes
    if (tell && invite) socket.request({ type: "stage_leave", invite_id: invite.invite_id });
    if (self.srcObject) {
      self.srcObject.getTracks().forEach((t) => t.stop());
      self.srcObject = null;
    }
    for (const { element } of remote.values()) element.remove();
    remote.clear();
    if (state.streamStopped) {
      state.streamStopped = false;
      stream.back();
    }
  }

  function leave() {
    if (state.invite) end(state.state === "invited" ? "declined" : "left", { tell: true });
  }

  $("stage-accept").addEventListener("click", accept);
  $("stage-decline").addEventListener("click", leave);
  $("stage-leave").addEventListener("click", leave);
  return { onPush };
}
