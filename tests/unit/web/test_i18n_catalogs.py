"""The interface's message catalogs (web/i18n/<code>.js, issue 13): the six U.N. languages cover
every message of the English catalog with the same placeholders; every key the pages and scripts
use is in the English catalog; no user-visible English is left hard-coded in the HTML."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[3] / "web"
LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
PAGES = ("index.html", "console.html")
#: attributes a reader sees or hears; each needs its data-i18n-<attribute> twin
ATTRIBUTES = ("aria-label", "title", "placeholder")
#: text that is the same in every language: the product's name, file formats, syntax examples
UNTRANSLATED = {"Parley", "WebVTT", "SRT", "TXT", "JSON"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: a message key as the scripts write it: "namespace.name" (t(), setText(), setAttr(), ternaries)
KEY_LITERAL = re.compile(r"""["`]([a-z][a-zA-Z]*\.[a-zA-Z][\w.]*)["`]""")


def catalog(code: str) -> dict[str, str]:
    """A catalog module's object: `export default {...};` whose body is JSON."""
    text = (WEB / "i18n" / f"{code}.js").read_text(encoding="utf-8")
    body = text[text.index("export default") + len("export default") :].strip().rstrip(";")
    messages: dict[str, str] = json.loads(body)
    return messages


@pytest.fixture(scope="module")
def english() -> dict[str, str]:
    return catalog("en")


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalog_covers_every_message(code: str, english: dict[str, str]) -> None:
    messages = catalog(code)
    assert not set(english) - set(messages), f"{code} lacks {sorted(set(english) - set(messages))}"
    assert not set(messages) - set(english), (
        f"{code} has extra {sorted(set(messages) - set(english))}"
    )
    for key, text in messages.items():
        assert text.strip(), (code, key)
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(english[key])), (code, key)


class _Page(HTMLParser):
    """Collects data-i18n* keys, and text or attributes a reader meets without one."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()
        self.bare: list[str] = []
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.in_body_or_title = False

    VOID = {"meta", "link", "input", "br", "img", "hr", "source"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, value in a.items():
            if name.startswith("data-i18n") and name != "data-i18n-params" and value:
                self.keys.add(value)
        for attribute in ATTRIBUTES:
            if a.get(attribute) and f"data-i18n-{attribute}" not in a:
                self.bare.append(f"<{tag} {attribute}={a[attribute]!r}>")
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if not text or not re.search(r"[A-Za-z]", text) or not self.stack:
            return
        tag, attrs = self.stack[-1]
        if tag in ("script", "style", "code") or text in UNTRANSLATED:
            return
        if tag != "title" and not any(t == "body" for t, _ in self.stack):
            return
        if "data-i18n" not in attrs:
            self.bare.append(f"<{tag}>{text}")


@pytest.mark.parametrize("page", PAGES)
def test_html_has_no_hard_coded_english(page: str, english: dict[str, str]) -> None:
    parser = _Page()
    parser.feed((WEB / page).read_text(encoding="utf-8"))
    assert not parser.bare, f"{page}: text without data-i18n: {parser.bare}"
    missing = sorted(parser.keys - set(english))
    assert not missing, f"{page} uses keys the English catalog lacks: {missing}"


def test_keys_used_in_scripts_are_in_the_english_catalog(english: dict[str, str]) -> None:
    namespaces = {key.split(".", 1)[0] for key in english}
    missing = []
    for script in sorted(WEB.glob("*.js")):
        if script.name == "protocol.js":  # the wire protocol: no user-visible text
            continue
        for key in KEY_LITERAL.findall(script.read_text(encoding="utf-8")):
            if key.split(".", 1)[0] in namespaces and key not in english:
                missing.append(f"{script.name}: {key}")
    assert not missing, missing
    # a key built at run time (console.js: `console.confidence.${level}`)
    assert {
        "console.confidence.high",
        "console.confidence.medium",
        "console.confidence.low",
    } <= set(english)


def test_the_servers_notice_is_said_in_the_readers_language() -> None:
    """web/messages.js recognizes every form of the server's default transcription notice, so
    that the page shows it from the catalogs (an operator's own text is shown as it is)."""
    import shutil
    import subprocess

    from server.features.presence import transcription_notice
    from server.settings import RetentionSettings

    node = shutil.which("node")
    if node is None:
        pytest.fail("node not installed")
    texts = [
        transcription_notice(
            RetentionSettings(
                mode=mode, kinds=kinds, max_age_h=24, purge_interval_s=60, max_file_bytes=4096
            )
        )
        for mode, kinds in [
            ("none", []),
            ("jsonl", ["captions"]),
            ("jsonl", ["chat"]),
            ("jsonl", ["captions", "chat"]),
        ]
    ]
    script = (
        f"import({json.dumps(str(WEB / 'messages.js'))}).then((m) => console.log(JSON.stringify("
        f"{json.dumps(texts)}.map((text) => m.noticeMessage(text)))))"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    keys = [found.get("key") for found in json.loads(done.stdout)]
    assert keys == [
        "notice.text",
        "notice.storesCaptions",
        "notice.storesChat",
        "notice.storesBoth",
    ]
