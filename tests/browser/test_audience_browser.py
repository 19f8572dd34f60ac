"""Issue 16 in real headless Chromium (Debian's), loopback only, real engines: the audience
speaks back. The host joins the room page and gets the moderation link; three viewers on
/watch.html write questions in English, Spanish and French (the English and French ones ask
the same); the moderation page, in Spanish, shows them as two groups, one of two; after
approval each viewer reads both questions in their own language; each viewer's votes count once.
A poll written in English is answered from the Spanish and French pages; its live result shows
both votes. The screenshot goes to the test's tmp dir (docs/screenshots/audience.png with
PARLEY_UPDATE_DOCS=1)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    browser_server_config,
    launched_chromium,
    open_page,
    silent_wav,
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.paths import REPO
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.models]

ROOM = "townhall"
QUESTIONS = {
    "en": "Will the presentation be recorded?",
    "es": "¿Dónde están las diapositivas?",
    "fr": "Est-ce que la présentation sera enregistrée ?",
}
TIMEOUT_MS = 60_000


def new_page(browser: Any, url: str, log: list[str], name: str) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[{name}] pageerror: {e}"))
    page.goto(url)
    return page


def test_questions_moderated_translated_voted_and_a_poll(
    host_netns: Namespace, tmp_path: Path
) -> None:
    log: list[str] = []
    with ServerProcess(tmp_path, browser_server_config(captions=True), netns=host_netns) as server:
        base = server.http_url
        with launched_chromium(host_netns, tmp_path, silent_wav(tmp_path / "mic.wav")) as browser:
            try:
                host = open_page(browser, base, "Hana", ROOM, log)
                wait_until(host, "() => !document.getElementById('moderate-link').hidden")
                link = host.evaluate("() => document.getElementById('moderate-link').href")
                assert "/moderate.html?room=townhall#key=" in link
                path, key = link.split("#", 1)
                moderator = new_page(browser, f"{path}&lang=es#{key}", log, "mod-es")
                wait_until(moderator, "() => window.moderation.role === 'moderator'")
                viewers = {
                    lang: new_page(browser, f"{base}/watch.html?room={ROOM}&lang={lang}", log, lang)
                    for lang in QUESTIONS
                }
                for lang, page in viewers.items():
                    wait_until(page, "() => window.audience.connected")
                    page.get_by_label("Your question or comment").fill(QUESTIONS[lang])
                    page.get_by_role("button", name="Send").click()
                    wait_until(page, "() => window.audience.lastAnswer?.type === 'accepted'")
                # the moderator's queue, in Spanish: two groups, the same question once (×2)
                wait_until(
                    moderator,
                    """() => { const g = window.moderation.groups;
                      return g.length === 2 && g.some((x) => x.count === 2)
                        && g.every((x) => x.items.every((i) => i.translated)); }""",
                    TIMEOUT_MS,
                )
                groups = moderator.evaluate("() => window.moderation.groups")
                print(json.dumps(groups, ensure_ascii=False, indent=1))
                pair = next(g for g in groups if g["count"] == 2)
                assert "presentación" in pair["text"].lower(), pair
                shown = moderator.locator(f'li.group[data-id="{pair["id"]}"]')
                assert "×2" in shown.inner_text()
                shown.get_by_text("Originals").click()  # the originals, one click away
                assert shown.get_by_text(QUESTIONS["fr"]).is_visible()
                for group in groups:
                    moderator.locator(f'li.group[data-id="{group["id"]}"] button.approve').click()
                # every viewer reads both approved questions in their own language
                for lang, page in viewers.items():
                    wait_until(
                        page,
                        f"""() => window.audience.questions.length === 2
                          && window.audience.questions.every((q) => q.lang === {json.dumps(lang)})
                          && document.querySelectorAll('#questions li').length === 2""",
                        TIMEOUT_MS,
                    )
                texts = {
                    lang: page.evaluate("() => window.audience.questions.map((q) => q.text)")
                    for lang, page in viewers.items()
                }
                print(json.dumps(texts, ensure_ascii=False, indent=1))
                assert QUESTIONS["es"] in texts["es"] and QUESTIONS["en"] in texts["en"]
                assert any("présentation" in t for t in texts["fr"])
                assert any("slides" in t for t in texts["en"])
                # each viewer votes for both (clicking twice does nothing more)
                for page in viewers.values():
                    for button in page.locator("#questions button.vote").all():
                        button.click()
                    page.locator("#questions button.vote").first.click(force=True)
                for page in viewers.values():
                    wait_until(
                        page,
                        """() => window.audience.questions.every((q) => q.votes === 3)""",
                        TIMEOUT_MS,
                    )
                # a poll written in English, answered from the Spanish and French pages
                poller = new_page(browser, f"{path}&lang=en#{key}", log, "mod-en")
                wait_until(poller, "() => window.moderation.role === 'moderator'")
                poller.get_by_label("Poll question", exact=True).fill("Did you like the talk?")
                poller.get_by_label("Options (one a line)").fill("Yes\nNo")
                poller.get_by_role("button", name="Start poll").click()
                for lang, option in (("es", 0), ("fr", 1)):
                    page = viewers[lang]
                    wait_until(
                        page,
                        f"""() => window.audience.polls.length === 1
                          && window.audience.polls[0].lang === {json.dumps(lang)}""",
                        TIMEOUT_MS,
                    )
                    page.locator("#polls button.poll-option").nth(option).click()
                wait_until(
                    poller,
                    "() => window.moderation.polls[0]?.total === 2",
                    TIMEOUT_MS,
                )
                for page in viewers.values():
                    wait_until(page, "() => window.audience.polls[0]?.total === 2", TIMEOUT_MS)
                polls = {
                    lang: page.evaluate("() => window.audience.polls[0]")
                    for lang, page in viewers.items()
                }
                print(json.dumps(polls, ensure_ascii=False))
                assert [o["votes"] for o in polls["en"]["options"]] == [1, 1]
                assert polls["es"]["question"] != "Did you like the talk?"
                shot = tmp_path / "audience.png"
                viewers["es"].screenshot(path=str(shot), full_page=True)
                moderator.screenshot(path=str(tmp_path / "moderate.png"), full_page=True)
                if os.environ.get("PARLEY_UPDATE_DOCS") == "1":
                    shutil.copy(shot, REPO / "docs" / "screenshots" / "audience.png")
                    shutil.copy(
                        tmp_path / "moderate.png", REPO / "docs" / "screenshots" / "moderate.png"
                    )
            finally:
                print("\n".join(log[-60:]))
