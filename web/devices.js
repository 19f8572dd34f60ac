// Switching camera, microphone and speaker during the call (Settings → Devices): a new
// getUserMedia track replaces ours in place (ParleySession.replaceTrack: no renegotiation), and
// the speaker is every media element's sink (setSinkId, where the browser has it).
import { AUDIO_CONSTRAINTS, VIDEO_CONSTRAINTS } from "./protocol.js";
import { t } from "./i18n.js";

export class DevicesView {
  /**
   * @param {{session: object, camera: HTMLSelectElement, mic: HTMLSelectElement,
   *          speaker: HTMLSelectElement, media: () => HTMLMediaElement[],
   *          onSwitched: (kind: string, track: MediaStreamTrack) => void,
   *          onError: (error: Error) => void}} options
   */
  constructor({ session, camera, mic, speaker, media, onSwitched, onError }) {
    this.session = session;
    this.els = { video: camera, audio: mic, speaker };
    this.media = media;
    this.onSwitched = onSwitched;
    this.onError = onError;
    this.sinkId = "";
    this.canSetSink = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
    for (const kind of ["video", "audio"]) {
      this.els[kind].addEventListener("change", () => this.switchTo(kind, this.els[kind].value));
    }
    speaker.addEventListener("change", () => this.setSink(speaker.value));
    this.onDeviceChange = () => this.refresh();
    navigator.mediaDevices?.addEventListener?.("devicechange", this.onDeviceChange);
  }

  close() {
    navigator.mediaDevices?.removeEventListener?.("devicechange", this.onDeviceChange);
  }

  /** List the devices, the ones in use selected. */
  async refresh() {
    const devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
    const fill = (select, kind, label, current, first = []) => {
      const options = [...first];
      devices.filter((d) => d.kind === kind).forEach((d, i) => {
        if (d.deviceId === "default" && kind === "audiooutput") return; // our "System default"
        options.push(new Option(d.label || t(label, { n: i + 1 }), d.deviceId));
      });
      select.replaceChildren(...options);
      if (current !== undefined) select.value = current;
    };
    for (const [kind, deviceKind, label] of [["video", "videoinput", "devices.camera"], ["audio", "audioinput", "devices.microphone"]]) {
      const entry = this.session.local.get(kind);
      fill(this.els[kind], deviceKind, label, entry?.track.getSettings().deviceId);
      // without a track of this kind from the start there is no m-line to put a new one on
      this.els[kind].disabled = !entry || this.els[kind].options.length < 2;
    }
    fill(this.els.speaker, "audiooutput", "devices.speaker", this.sinkId, [new Option(t("devices.defaultSpeaker"), "")]);
    this.els.speaker.disabled = !this.canSetSink;
  }

  async switchTo(kind, deviceId) {
    try {
      const constraints = kind === "audio"
        ? { audio: { ...AUDIO_CONSTRAINTS, deviceId: { exact: deviceId } } }
        : { video: { ...VIDEO_CONSTRAINTS, deviceId: { exact: deviceId } } };
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      const track = stream.getTracks()[0];
      if (!(await this.session.replaceTrack(kind, track))) {
        track.stop();
        return;
      }
      this.onSwitched(kind, track);
    } catch (err) {
      this.onError(err);
      this.refresh().catch(() => {});
    }
  }

  /** Play everything through `sinkId` ("" = the system's default). */
  async setSink(sinkId) {
    this.sinkId = sinkId;
    await Promise.all(this.media().map((el) => this.apply(el)));
  }

  /** Give a (new) media element the chosen speaker. */
  async apply(el) {
    if (!this.canSetSink || el.sinkId === this.sinkId) return;
    try {
      await el.setSinkId(this.sinkId);
    } catch (err) {
      this.onError(err);
    }
  }
}
