// The pre-join page: name and room, camera and microphone choice with a live preview and a
// microphone level meter, the language spoken and the caption language(s).
import { getLocalMedia } from "./protocol.js";
import { LevelMeter } from "./levels.js";
import { fillLanguageSelect, preferredLanguage } from "./languages.js";
import { onLanguageChange, setText, t } from "./i18n.js";
import { mediaErrorKey } from "./messages.js";

const $ = (id) => document.getElementById(id);
const PREFS_KEY = "parley.prefs";

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
  } catch {
    return {};
  }
}

export function savePrefs(changes) {
  localStorage.setItem(PREFS_KEY, JSON.stringify({ ...loadPrefs(), ...changes }));
}

export function prefs() {
  return loadPrefs();
}

/** The pre-join form: owns the preview stream until the user joins (then hands it over). */
export class PreJoin {
  constructor() {
    this.stream = null;
    this.meter = null;
    this.meterTimer = null;
    this.startedAtMs = null; // when the current microphone started (for tests of latency)
    const p = loadPrefs();
    const here = preferredLanguage();
    this.mediaProblem = null; // message key: why we have less than camera + microphone
    const fillLanguages = (first) => {
      const value = (id, saved) => (first ? saved : $(id).value);
      fillLanguageSelect($("speak-select"), { first: [["", t("lang.detect")]], value: value("speak-select", p.speak ?? here) });
      fillLanguageSelect($("read-select"), { first: [["", t("lang.originalOnly")]], value: value("read-select", p.read ?? here) });
      fillLanguageSelect($("read2-select"), { first: [["", t("lang.none")]], value: value("read2-select", p.read2 ?? "") });
    };
    fillLanguages(true);
    onLanguageChange(() => {
      fillLanguages(false);
      if (this.stream !== undefined) this.listDevices().catch(() => {});
    });
    $("camera-select").addEventListener("change", () => this.start());
    $("mic-select").addEventListener("change", () => this.start());
  }

  /** (Re)start the preview with the selected devices. */
  start() {
    const previous = this.ready || Promise.resolve();
    this.ready = previous.catch(() => {}).then(() => this._start());
    return this.ready;
  }

  async _start() {
    this.stop();
    const videoDeviceId = $("camera-select").value || undefined;
    const audioDeviceId = $("mic-select").value || undefined;
    const want = { audio: audioDeviceId !== "none", video: videoDeviceId !== "none" };
    const errors = [];
    const stream = want.audio || want.video
      ? await getLocalMedia({ ...want, errors, audioDeviceId: want.audio ? audioDeviceId : undefined, videoDeviceId: want.video ? videoDeviceId : undefined })
      : null;
    this.stream = stream;
    const complete = stream && (!want.audio || stream.getAudioTracks().length) && (!want.video || stream.getVideoTracks().length);
    this.showMediaProblem(complete ? [] : errors, want);
    this.startedAtMs = Date.now();
    window.parleyMicStartedMs = this.startedAtMs; // exposed for latency tests
    const video = $("preview-video");
    const hasVideo = Boolean(stream && stream.getVideoTracks().length);
    video.srcObject = hasVideo ? new MediaStream(stream.getVideoTracks()) : null;
    if (hasVideo) video.play().catch(() => {});
    $("preview-empty").hidden = hasVideo;
    const audio = stream && stream.getAudioTracks()[0];
    if (audio) {
      this.meter = new LevelMeter(audio);
      this.meterTimer = setInterval(() => { $("mic-level").value = this.meter.level(); }, 100);
    }
    await this.listDevices();
  }

  async listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current, noneLabel) => {
      const options = devices.filter((d) => d.kind === kind)
        .map((d, i) => new Option(d.label || t(kind === "videoinput" ? "devices.camera" : "devices.microphone", { n: i + 1 }), d.deviceId));
      options.push(new Option(noneLabel, "none"));
      select.replaceChildren(...options);
      if (current) select.value = current;
    };
    const videoTrack = this.stream && this.stream.getVideoTracks()[0];
    const audioTrack = this.stream && this.stream.getAudioTracks()[0];
    const cam = $("camera-select").value === "none" ? "none" : videoTrack?.getSettings().deviceId;
    const mic = $("mic-select").value === "none" ? "none" : audioTrack?.getSettings().deviceId;
    fill($("camera-select"), "videoinput", cam, t("devices.noCamera"));
    fill($("mic-select"), "audioinput", mic, t("devices.noMicrophone"));
  }

  /** Say why camera or microphone are missing, and how to get them (null: nothing to say). */
  showMediaProblem(errors, want) {
    const key = mediaErrorKey(errors, want);
    this.mediaProblem = key;
    const el = $("media-error");
    el.hidden = !key;
    if (key) setText(el, key);
    setText($("preview-empty"), key === "media.blocked" ? "prejoin.cameraBlocked" : "prejoin.cameraOff");
  }

  /** The choices, and the preview stream (now owned by the caller). */
  async take() {
    await (this.ready || Promise.resolve()).catch(() => {});
    clearInterval(this.meterTimer);
    if (this.meter) this.meter.close();
    this.meter = null;
    $("preview-video").srcObject = null;
    const stream = this.stream;
    this.stream = null;
    const speak = $("speak-select").value;
    const read = $("read-select").value;
    const read2 = $("read2-select").value;
    savePrefs({ speak, read, read2 });
    const languages = [read, read2].filter((l, i, all) => l && all.indexOf(l) === i);
    return { stream, lang: speak || null, languages };
  }

  stop() {
    clearInterval(this.meterTimer);
    if (this.meter) this.meter.close();
    this.meter = null;
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
  }
}
