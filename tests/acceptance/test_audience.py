"""The audience speaks back (issue 16), through the real server: viewers write questions over
/live/<room>/audience in English, Spanish and French; the moderator reads them in Spanish,
the same question in two languages as one group (compared through the real engines' English);
approved questions reach each language's cacheable document translated once per language;
votes count once per viewer; a poll in English is answered from Spanish and French; abuse gets
its documented answer (PROTOCOL.md "Audience") without slowing anybody else."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.app import App
from tests.support.app import started_app, ws_url
from tests.support.origin import ws_origin
from tests.support.raw import RawClient

ROOM = "town"
SAME_EN = "Will the presentation be recorded?"
SAME_FR = "Est-ce que la présentation sera enregistrée ?"
OTHER_ES = "¿Dónde están las diapositivas?"


class Viewer:
    """One audience socket: ``hello`` sent; ``call`` sends a message and returns its answer."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome

    @classmethod
    async def open(
        cls, app: App, lang: str, *, viewer_id: str | None = None, source: str = "127.0.0.1",
        **hello: Any,
    ) -> Viewer:  # fmt: skip
        url = f"ws://127.0.0.1:{app.port}/live/{ROOM}/audience"
        ws = await connect(url, origin=ws_origin(url), local_addr=(source, 0))
        viewer_id = viewer_id or secrets.token_urlsafe(12)
        await ws.send(json.dumps({"type": "hello", "viewer_id": viewer_id, "lang": lang, **hello}))
        return cls(ws, json.loads(await ws.recv()))

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(message))
        while True:
            answer: dict[str, Any] = json.loads(await self.ws.recv())
            if answer["type"] != "queue":
                return answer

    async def queue(self, predicate: Any, timeout_s: float = 30.0) -> dict[str, Any]:
        """The moderator's pushed queue, once ``predicate`` holds."""
        last: Any = None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    message = json.loads(await self.ws.recv())
                    if message["type"] == "queue":
                        last = message
                        if predicate(message):
                            return message
        except TimeoutError:
            raise AssertionError(json.dumps(last, ensure_ascii=False, indent=1)) from None


def document(app: App, name: str, etag: str | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{app.port}/live/{ROOM}/{name}")
    if etag:
        request.add_header("If-None-Match", etag)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), None


async def read_document(app: App, name: str, predicate: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        _, _, body = await asyncio.to_thread(document, app, name)
        if body is not None and predicate(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.3)


async def host_link(app: App) -> tuple[RawClient, str]:
    host = await RawClient.connect(ws_url(app))
    await host.send({"type": "join", "room": ROOM, "name": "Hana", "lang": "en"})
    link = (await host.recv("joined"))["moderate_url"]
    assert link.startswith(f"/moderate.html?room={ROOM}#key=")
    return host, link.split("#key=", 1)[1]


@pytest.mark.models
async def test_questions_grouped_translated_once_and_voted(captioning_app: App) -> None:
    app = captioning_app
    host, key = await host_link(app)
    moderator = await Viewer.open(app, "es", moderator_key=key)
    assert moderator.welcome["role"] == "moderator"
    assert moderator.welcome["languages"] == ["en", "es", "fr", "pt"]
    en, es, fr = [await Viewer.open(app, lang) for lang in ("en", "es", "fr")]
    ids = {}
    for viewer, text in ((en, SAME_EN), (es, OTHER_ES), (fr, SAME_FR)):
        answer = await viewer.call({"type": "ask", "text": text})
        assert answer["type"] == "accepted", answer
        ids[viewer.welcome["viewer_id"]] = answer["id"]
    queue = await moderator.queue(
        lambda q: (
            len(q["groups"]) == 2 and all(i["translated"] for g in q["groups"] for i in g["items"])
        )
    )
    print(json.dumps(queue["groups"], ensure_ascii=False, indent=1))
    same = next(g for g in queue["groups"] if g["count"] == 2)
    assert {i["lang"] for i in same["items"]} == {"en", "fr"}
    assert {i["original"] for i in same["items"]} == {SAME_EN, SAME_FR}
    assert "presentación" in same["text"].lower(), same  # in the moderator's Spanish
    (alone,) = [g for g in queue["groups"] if g["count"] == 1]
    assert alone["text"] == OTHER_ES
    calls_before = app.audience.translate_calls if app.audience else 0
    for group in queue["groups"]:
        answer = await moderator.call({"type": "moderate", "id": group["id"], "action": "approve"})
        assert answer["type"] == "accepted", answer
    docs = {}
    for lang in ("en", "es", "fr"):
        docs[lang] = await read_document(
            app,
            f"questions.{lang}.json",
            lambda d, lang=lang: (
                len(d["questions"]) == 2 and all(q["lang"] == lang for q in d["questions"])
            ),
        )
    print(json.dumps(docs, ensure_ascii=False, indent=1))
    assert any(q["asked"] == 2 for q in docs["es"]["questions"])
    assert any("présentation" in q["text"] for q in docs["fr"]["questions"])
    assert any("slides" in q["text"] for q in docs["en"]["questions"])
    # translated once per language, not per reader: many reads add no translation
    calls = app.audience.translate_calls if app.audience else 0
    for _ in range(20):
        await asyncio.to_thread(document, app, "questions.pt.json")
    assert app.audience is not None and app.audience.translate_calls == calls
    assert calls - calls_before <= 2 * 4  # 2 groups' items × at most the 4 languages
    # the cacheable form
    status, headers, _ = await asyncio.to_thread(document, app, "questions.es.json")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=1" and headers["ETag"]
    status, _, _ = await asyncio.to_thread(document, app, "questions.es.json", headers["ETag"])
    assert status == 304
    # every viewer votes for both questions; twice is refused; each counts once
    for viewer in (en, es, fr):
        for question in docs["es"]["questions"]:
            assert (await viewer.call({"type": "vote", "id": question["id"]}))["type"] == "accepted"
        again = await viewer.call({"type": "vote", "id": docs["es"]["questions"][0]["id"]})
        assert again["code"] == "already_voted"
    final = await read_document(
        app, "questions.fr.json", lambda d: all(q["votes"] == 3 for q in d["questions"])
    )
    assert len(final["questions"]) == 2
    # a poll in English, answered in Spanish and French
    poll = await moderator.call(
        {
            "type": "poll_create",
            "question": "Did you like the talk?",
            "options": ["Yes", "No"],
            "lang": "en",
        }
    )
    assert poll["type"] == "accepted", poll
    es_poll = await read_document(
        app, "polls.es.json", lambda d: d["polls"] and d["polls"][0]["lang"] == "es"
    )
    print(json.dumps(es_poll, ensure_ascii=False))
    assert es_poll["polls"][0]["question"] != "Did you like the talk?"
    await es.call({"type": "poll_vote", "poll_id": poll["id"], "option": 0})
    await fr.call({"type": "poll_vote", "poll_id": poll["id"], "option": 1})
    live = await read_document(app, "polls.fr.json", lambda d: d["polls"][0]["total"] == 2)
    assert [o["votes"] for o in live["polls"][0]["options"]] == [1, 1]
    exported = await moderator.call({"type": "export"})
    records = json.loads(exported["json"])
    assert len(records["items"]) == 3 and records["polls"][0]["counts"] == [1, 1]
    for viewer in (moderator, en, es, fr):
        await viewer.ws.close()
    await host.close()


async def test_abuse_gets_documented_answers_and_slows_nobody(app: App) -> None:
    host, key = await host_link(app)
    moderator = await Viewer.open(app, "en", moderator_key=key)
    spammer = await Viewer.open(app, "en")
    bystander = await Viewer.open(app, "es", source="127.0.0.2")
    big = await spammer.call({"type": "ask", "text": "x" * 501})
    assert big["code"] == "too_long" and big["ref"] == "ask"
    assert (await spammer.call({"type": "ask", "text": " \n "}))["code"] == "empty"
    assert (await spammer.call({"type": "ask", "text": "hi\x1b[31m"}))["code"] == "bad_text"
    huge = await spammer.call({"type": "ask", "text": "y" * 30_000})
    assert huge["code"] == "bad_message"
    # 1,000 questions from one client: 5 accepted (its minute's allowance), the rest refused
    # with retry_after_ms; the socket's own message rate refuses the burst's excess too
    codes: dict[str, int] = {}
    started = time.monotonic()
    for n in range(1000):
        answer = await spammer.call({"type": "ask", "text": f"question number {n}"})
        key_ = answer.get("code", answer["type"])
        codes[key_] = codes.get(key_, 0) + 1
        if n % 100 == 0:  # meanwhile a viewer elsewhere is answered at once
            t0 = time.monotonic()
            ok = await bystander.call({"type": "ask", "text": f"Una pregunta {n}"})
            assert ok["type"] in ("accepted",) or ok["code"] == "rate_limited", ok
            assert time.monotonic() - t0 < 0.5
            status, _, _ = await asyncio.to_thread(document, app, "questions.es.json")
            assert status == 200
    print(codes, f"{time.monotonic() - started:.2f} s")
    assert codes["accepted"] == 5 and sum(codes.values()) == 1000
    assert set(codes) <= {"accepted", "rate_limited"}
    # banned: the viewer and its address, even with a new viewer id on a new socket
    queue = await moderator.queue(lambda q: q["groups"])
    spam = next(g for g in queue["groups"] if g["items"][0]["original"].startswith("question"))
    assert (await moderator.call({"type": "ban", "id": spam["id"]}))["type"] == "accepted"
    await spammer.ws.close()
    evader = await Viewer.open(app, "en")
    assert (await evader.call({"type": "ask", "text": "I am back"}))["code"] == "banned"
    assert (await evader.call({"type": "ask", "text": "again"}))["code"] == "banned"
    # a viewer may not moderate
    assert (await bystander.call({"type": "moderate", "id": spam["id"], "action": "approve"}))[
        "code"
    ] == "forbidden"
    # the room's own participants were not slowed: the host's socket answers at once
    t0 = time.monotonic()
    await host.send({"type": "chat", "text": "still here"})
    await host.recv("chat")
    assert time.monotonic() - t0 < 0.5
    for viewer in (moderator, evader, bystander):
        await viewer.ws.close()
    await host.close()


async def test_no_room_no_socket_and_documents_404() -> None:
    app = await started_app()
    try:
        url = f"ws://127.0.0.1:{app.port}/live/nowhere/audience"
        async with connect(url, origin=ws_origin(url)) as ws:
            with pytest.raises(Exception):  # noqa: B017, PT011
                await ws.recv()
            assert ws.close_code == 4404
        status, _, _ = await asyncio.to_thread(
            lambda: document_at(app, "/live/nowhere/questions.en.json")
        )
        assert status == 404
    finally:
        await app.stop()


def document_at(app: App, path: str) -> tuple[int, None, None]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.port}{path}", timeout=5) as r:
            return r.status, None, None
    except urllib.error.HTTPError as exc:
        return exc.code, None, None


async def test_export_only_under_retention(tmp_path: Path) -> None:
    """When the room ends its audience is written (JSON + CSV) only with ``"audience"`` in
    ``[retention] kinds``; the purge deletes it with the room's other records."""
    kept = await started_app(
        server={"data_dir": str(tmp_path / "kept")},
        retention={"mode": "jsonl", "kinds": ["audience"]},
    )
    off = await started_app(server={"data_dir": str(tmp_path / "off")})
    try:
        for app in (kept, off):
            host, key = await host_link(app)
            viewer = await Viewer.open(app, "en")
            assert (await viewer.call({"type": "ask", "text": "Kept or not?"}))["type"] == (
                "accepted"
            )
            moderator = await Viewer.open(app, "en", moderator_key=key)
            poll = await moderator.call(
                {"type": "poll_create", "question": "Yes?", "options": ["Yes", "No"], "lang": "en"}
            )
            await viewer.call({"type": "poll_vote", "poll_id": poll["id"], "option": 1})
            await moderator.call({"type": "poll_close", "poll_id": poll["id"]})
            await host.close()
            await asyncio.sleep(0.5)  # the room closes; the sockets are closed with it
            with pytest.raises(ConnectionClosed):
                await viewer.ws.recv()
        files = sorted((tmp_path / "kept" / "transcripts" / ROOM).iterdir())
        assert [f.suffix for f in files] == [".csv", ".json"], files
        records = json.loads(files[1].read_text())
        assert records["items"][0]["text"] == "Kept or not?"
        assert records["polls"][0]["counts"] == [0, 1] and records["polls"][0]["closed_at"]
        assert "Kept or not?" in files[0].read_text()
        assert not (tmp_path / "off" / "transcripts").exists()
        assert kept.retention.purge(now_s=time.time() + 10 * 365 * 86400) == 2
    finally:
        await kept.stop()
        await off.stop()


async def test_token_mode_named_viewers_and_host_tokens_moderate() -> None:
    """Token mode: a viewer token names its viewer; a host token moderates; without a token
    the socket is closed 4403 and the documents answer 403."""
    secret = "0123456789abcdef" * 4
    app = await started_app(auth={"secret": secret})

    def token(role: str, name: str | None = None) -> str:
        now = time.time()
        claims = {"room": ROOM, "role": role, "nbf": now - 1, "exp": now + 600}
        if name:
            claims["name"] = name
        return jwt.encode(claims, secret, algorithm="HS256")

    try:
        host = await RawClient.connect(ws_url(app))
        await host.send({"type": "join", "room": ROOM, "name": "H", "token": token("host")})
        await host.recv("joined")
        url = f"ws://127.0.0.1:{app.port}/live/{ROOM}/audience"
        async with connect(url, origin=ws_origin(url)) as ws:
            await ws.send(json.dumps({"type": "hello", "viewer_id": "anon-0001", "lang": "en"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4403
        vera = await Viewer.open(app, "en", token=token("viewer", "Vera"))
        assert (vera.welcome["role"], vera.welcome["name"]) == ("viewer", "Vera")
        anonymous = await Viewer.open(app, "en", token=token("viewer"))
        assert anonymous.welcome["name"] is None
        moderator = await Viewer.open(app, "en", token=token("host", "Hana"))
        assert moderator.welcome["role"] == "moderator"
        assert (await vera.call({"type": "ask", "text": "Named?"}))["type"] == "accepted"
        queue = await moderator.queue(lambda q: q["groups"])
        assert queue["groups"][0]["items"][0]["name"] == "Vera"
        status, _, _ = await asyncio.to_thread(document, app, "questions.en.json")
        assert status == 403
        for viewer in (vera, anonymous, moderator):
            await viewer.ws.close()
        await host.close()
    finally:
        await app.stop()
