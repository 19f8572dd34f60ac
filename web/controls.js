// The meeting's controls: buttons, caption settings, copy link, and the keyboard shortcuts (M
// mute, V camera, C captions, hold Space to talk while muted). They act on the current session
// and view (window.parley, window.parleyView), which change at each join.
import { prefs, savePrefs } from "./prejoin.js";
import { fillLanguageSelect } from "./languages.js";
import { onLanguageChange, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

function isTyping(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

/** Wire the controls once; `setStatus(key, params)` writes the status line. */
export function wireControls(setStatus) {
  const view = () => window.parleyView;
  const session = () => window.parley;
  const toggleMute = (kind) => {
    const s = session();
    if (!s) return;
    const muted = !s.local.get(kind)?.muted;
    s.setMuted(kind, muted);
    if (kind === "video" && !muted) {
      view().videoPausedForBandwidth = false;
      $("banner").hidden = true;
    }
  };
  $("mic-button").addEventListener("click", () => toggleMute("audio"));
  $("camera-button").addEventListener("click", () => toggleMute("video"));
  $("leave-button").addEventListener("click", () => session()?.leave());
  $("layout-button").addEventListener("click", () => view()?.toggleLayout());
  $("hand-button").addEventListener("click", () => session()?.setHand(!session().hand));
  $("screen-button").addEventListener("click", async () => {
    const s = session();
    if (!s) return;
    if (s.local.has("screen")) {
      s.stopScreen();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0];
      s.shareScreen(track);
      view().setLocalScreen(track);
    } catch (err) {
      if (err && err.name !== "NotAllowedError") setStatus("status.screenFailed", { error: err.message || String(err) });
    }
  });
  const optOut = (out) => {
    session()?.setTranscriptionOptOut(out);
    view()?.renderOptOut();
  };
  $("notice-optout").addEventListener("click", () => optOut(!session()?.transcriptionOptOut));
  $("cc-optout").addEventListener("change", () => optOut($("cc-optout").checked));
  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text || !session()) return;
    session().sendChat(text, $("chat-to").value || null);
    input.value = "";
    input.focus();
  });
  $("chat-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("cc-button").addEventListener("click", () => {
    const button = $("cc-button");
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    view()?.captions.setEnabled(on);
  });
  for (const button of document.querySelectorAll("#controls [data-panel]")) {
    button.addEventListener("click", () => view()?.openPanel(button.dataset.panel));
  }
  $("notice-ok").addEventListener("click", () => {
    $("notice").hidden = true;
    $("controls").focus(); // the controls region, not one button a Space would press
  });
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      setStatus("status.linkCopied");
    } catch {
      delete $("status").dataset.i18n;
      $("status").textContent = location.href;
    }
  });

  // caption settings
  const p = prefs();
  const fillCaptionLanguages = () => {
    fillLanguageSelect($("cc-lang"), { first: [["", t("lang.originalOnly")]], value: $("cc-lang").value || (p.read ?? "") });
    fillLanguageSelect($("cc-lang2"), { first: [["", t("lang.none")]], value: $("cc-lang2").value || (p.read2 ?? "") });
  };
  fillCaptionLanguages();
  onLanguageChange(fillCaptionLanguages);
  $("cc-bilingual").checked = Boolean(p.bilingual);
  $("cc-size").value = p.captionSize || "medium";
  const languagesChanged = () => {
    const languages = [$("cc-lang").value, $("cc-lang2").value].filter((l, i, all) => l && all.indexOf(l) === i);
    savePrefs({ read: $("cc-lang").value, read2: $("cc-lang2").value });
    view()?.setLanguages(languages);
  };
  $("cc-lang").addEventListener("change", languagesChanged);
  $("cc-lang2").addEventListener("change", languagesChanged);
  $("cc-bilingual").addEventListener("change", () => {
    const on = $("cc-bilingual").checked;
    savePrefs({ bilingual: on });
    view()?.captions.setBilingual(on);
    view()?.transcript.setBilingual(on);
  });
  $("cc-size").addEventListener("change", () => {
    savePrefs({ captionSize: $("cc-size").value });
    view()?.captions.setFontSize($("cc-size").value);
  });

  // keyboard: M mute, V camera, C captions, hold Space to talk while muted. By key position
  // (ev.code), so that they work with any keyboard layout. A handled shortcut is never also a
  // click: Space activates a focused button on keyup and Enter on keydown, so both are stopped.
  // Space is push-to-talk only while muted; unmuted, it still presses the focused button.
  const shortcut = (ev) => session()?.state === "joined" && !isTyping(ev.target)
    && !ev.ctrlKey && !ev.metaKey && !ev.altKey;
  document.addEventListener("keydown", (ev) => {
    if (!shortcut(ev)) return;
    const action = { KeyM: "mute", KeyV: "video", KeyC: "captions", Space: "talk" }[ev.code];
    if (!action) return;
    if (action === "talk") {
      const audio = session().local.get("audio");
      if (view().pushToTalk) ev.preventDefault(); // the key repeats while held
      else if (!ev.repeat && audio && audio.muted) {
        ev.preventDefault();
        view().pushToTalk = true;
        session().setMuted("audio", false);
        setStatus("status.talking");
      }
      return;
    }
    ev.preventDefault();
    if (ev.repeat) return;
    if (action === "mute") toggleMute("audio");
    else if (action === "video") toggleMute("video");
    else if (!$("cc-button").disabled) $("cc-button").click();
  });
  document.addEventListener("keyup", (ev) => {
    if (ev.code !== "Space" || !view()?.pushToTalk) return;
    ev.preventDefault(); // no click on the focused button
    {
      view().pushToTalk = false;
      session().setMuted("audio", true);
      setStatus("status.muted");
    }
  });
}
