// Interpretation channels in the browser (PROTOCOL.md "Interpretation channels"): what to hear
// (the floor or a language channel, ducked or not), the on-air state of each channel, and the
// interpreter's controls (on air, off air, handover). The pure functions come first (unit tests
// in tests/unit/web/channels.test.mjs); ChannelsView renders them.
import { t } from "./i18n.js";

export const FLOOR = "floor";

/** channel -> participant id on air (null when free), from a `channels` message's list. */
export function onAirMap(rows) {
  return new Map((rows || []).map((row) => [row.channel, row.on_air || null]));
}

/** The channel `participantId` is on air in, or null. */
export function channelOf(rows, participantId) {
  for (const row of rows || []) if (row.on_air && row.on_air === participantId) return row.channel;
  return null;
}

/**
 * Volume (0..1) for each remote participant's audio. The server already withholds what we must
 * not hear; only ducking is ours to do: listening to a channel whose interpreter is on air with
 * `duck` on, the floor (everyone not on air) plays at `duckVolume`, the interpreter at full.
 */
export function volumes({ rows, listening, participantIds, selfId, duckVolume }) {
  const out = new Map(participantIds.map((id) => [id, 1]));
  if (!listening || listening.channel === FLOOR || !listening.duck) return out;
  const voice = onAirMap(rows).get(listening.channel);
  if (!voice || voice === selfId) return out;
  const voices = new Set((rows || []).map((row) => row.on_air).filter(Boolean));
  for (const id of participantIds) if (!voices.has(id)) out.set(id, duckVolume);
  return out;
}

/** A short line for an event, for the status bar and screen readers. */
export function describeEvent(event, nameOf, label) {
  if (!event) return "";
  const who = (id) => nameOf(id);
  const channel = label(event.channel);
  switch (event.type) {
    case "on_air": return t("channels.eventOnAir", { name: who(event.participant_id), channel });
    case "off_air": return t("channels.eventOffAir", { channel });
    case "handover_requested": return t("channels.eventRequested", { name: who(event.by), channel });
    case "handover_accepted": return t("channels.eventAccepted", { name: who(event.to), channel });
    case "handover_declined": return t("channels.eventDeclined", { name: who(event.from), channel });
    case "handover_expired": return t("channels.eventExpired", { channel });
    case "handover_withdrawn": return t("channels.eventWithdrawn", { name: who(event.by), channel });
    default: return "";
  }
}

/**
 * The listener's channel picker and, for interpreters, the booth controls. `els`: the DOM
 * elements (select, checkboxes, buttons, containers); `session`: a ParleySession.
 */
export class ChannelsView {
  constructor({ session, els, nameOf, label, onStatus }) {
    this.session = session;
    this.els = els;
    this.nameOf = nameOf;
    this.label = label;
    this.onStatus = onStatus;
    const changed = () => {
      session.listen(els.hear.value, { duck: els.duck.checked, interpreterCaptions: els.captions.checked });
    };
    els.hear.addEventListener("change", changed);
    els.duck.addEventListener("change", changed);
    els.captions.addEventListener("change", changed);
    els.onAir.addEventListener("click", () => {
      const mine = channelOf(session.channels, session.participantId);
      if (mine) session.offAir();
      else session.onAir(els.into.value);
    });
    els.handover.addEventListener("click", () => session.requestHandover(els.into.value));
    els.accept.addEventListener("click", () => this.answer(true));
    els.decline.addEventListener("click", () => this.answer(false));
  }

  answer(accept) {
    const mine = channelOf(this.session.channels, this.session.participantId);
    if (mine) this.session.answerHandover(mine, accept);
  }

  render(event = null) {
    const s = this.session;
    const rows = s.channels;
    const { els } = this;
    // "hear" lists the floor, every known channel, and the reader's languages
    const known = new Set([...rows.map((r) => r.channel), ...s.languages, s.listening.channel].filter((c) => c && c !== FLOOR));
    const onAir = onAirMap(rows);
    const options = [new Option(t("channels.floor"), FLOOR)];
    for (const channel of [...known].sort()) {
      const voice = onAir.get(channel);
      const text = voice
        ? t("channels.withVoice", { channel: this.label(channel), name: this.nameOf(voice) })
        : t("channels.nobody", { channel: this.label(channel) });
      options.push(new Option(text, channel));
    }
    els.hear.replaceChildren(...options);
    els.hear.value = s.listening.channel;
    els.duck.checked = s.listening.duck;
    els.captions.checked = s.listening.interpreter_captions;
    els.duck.disabled = s.listening.channel === FLOOR;

    const booth = s.myRole === "interpreter";
    els.booth.hidden = !booth;
    const mine = channelOf(rows, s.participantId);
    if (booth) {
      els.onAir.textContent = mine ? t("booth.offAir", { channel: this.label(mine) }) : t("booth.onAir");
      els.onAir.setAttribute("aria-pressed", String(Boolean(mine)));
      els.into.disabled = Boolean(mine);
      const target = onAir.get(els.into.value);
      els.handover.hidden = Boolean(mine) || !target || target === s.participantId;
      const pending = mine ? rows.find((r) => r.channel === mine && r.requested_by) : null;
      els.request.hidden = !pending;
      if (pending) els.requestText.textContent = t("channels.eventRequested", { name: this.nameOf(pending.requested_by), channel: this.label(mine) });
    }
    els.badge.hidden = !mine;
    if (mine) els.badge.textContent = t("booth.badge", { lang: mine.toUpperCase() });
    const line = describeEvent(event, this.nameOf, this.label);
    if (line) this.onStatus(line);
  }
}
