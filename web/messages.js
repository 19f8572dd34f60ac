// Plain words for what went wrong, with the next step: message keys (web/i18n/*.js) for a failed
// join, a camera or microphone that could not be opened, and the server's transcription notice.
// Pure functions (unit tests in tests/unit/web/i18n.test.mjs).

/** Join refusals the page says in the reader's language (PROTOCOL.md `error` codes). */
const JOIN_ERRORS = Object.freeze({
  room_full: "join.roomFull",
  token_required: "join.tokenRequired",
  token_invalid: "join.tokenInvalid",
  token_expired: "join.tokenExpired",
  token_not_yet_valid: "join.tokenInvalid",
  token_wrong_room: "join.tokenWrongRoom",
  room_locked: "join.roomLocked",
  rate_limited: "join.rateLimited",
  removed: "join.removed",
  too_many_rooms: "join.tooManyRooms",
  lobby_denied: "join.lobbyDenied",
  lobby_closed: "join.lobbyClosed",
});

/**
 * The message for a join that failed: `err` from ParleySession.connect() (a server `error` has
 * `code`), `closeCode` the session's close code when the socket closed before joining.
 * @returns {{key: string, params?: object}}
 */
export function joinErrorKey(err, closeCode = null) {
  const code = err && err.code;
  if (code && JOIN_ERRORS[code]) return { key: JOIN_ERRORS[code] };
  if (code) return { key: "join.refused", params: { message: err.message || code } };
  // closed before `joined`: nothing answered (1006), the server was going away (1001), or it
  // refused the connection while starting (503 -> 1006)
  if (closeCode === 1008) return { key: "join.protocol" };
  if (closeCode !== null) return { key: "join.unreachable" };
  return { key: "join.failed", params: { message: (err && err.message) || String(err) } };
}

/**
 * Why getUserMedia gave us less than we asked for. `errors`: the DOMExceptions of the attempts
 * (web/protocol.js getLocalMedia); `want`: what was asked. Null when nothing went wrong.
 */
export function mediaErrorKey(errors, want = { audio: true, video: true }) {
  const names = new Set((errors || []).map((e) => e && e.name));
  if (!names.size) return null;
  if (names.has("NotAllowedError") || names.has("SecurityError")) return "media.blocked";
  if (names.has("NotReadableError") || names.has("AbortError")) return "media.busy";
  if (names.has("NotFoundError") || names.has("OverconstrainedError")) {
    return want.video && want.audio ? "media.notFound" : want.video ? "media.noCamera" : "media.noMic";
  }
  return "media.failed";
}

/** The server's default notice (server/features/presence.py TRANSCRIPTION_NOTICE), recognized. */
const DEFAULT_NOTICE = /^This meeting is transcribed and translated by machine while it runs: what you say is shown to the others as captions, which may contain errors\. (Captions are not stored\.|This server stores (final captions|room chat|final captions and room chat) for up to ([\d.]+) hours\.) You can ask not to be transcribed\.$/;

/**
 * The transcription notice in the reader's language: {key, params} when it is the server's
 * default text (with or without retention), else {raw} (the operator's own words, shown as is).
 */
export function noticeMessage(text) {
  const m = DEFAULT_NOTICE.exec(text || "");
  if (!m) return { raw: text };
  if (!m[2]) return { key: "notice.text" };
  const what = { "final captions": "notice.storesCaptions", "room chat": "notice.storesChat" }[m[2]] || "notice.storesBoth";
  return { key: what, params: { hours: m[3] } };
}
