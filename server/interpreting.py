"""Interpreters' tools (PROTOCOL.md "Interpreting"): correct a final caption, the room glossary,
exports of the room's transcript. Only hosts and interpreters may use them; anyone else gets
``forbidden`` and nothing changes."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog

from interpret.frames import Translated
from interpret.glossary import Glossary, entries_json, parse_entries

from . import protocol
from .protocol import ProtocolError
from .transcript import RoomTranscript, TranscriptLine, export_json, export_srt, export_vtt

if TYPE_CHECKING:
    from .signaling import ClientConnection, LiveRoom

log = structlog.get_logger(__name__)

ALLOWED_ROLES = frozenset({"host", "interpreter"})


def transcript_of(live: LiveRoom, max_lines: int) -> RoomTranscript:
    if live.transcript is None:
        live.transcript = RoomTranscript(
            live.name, max_lines=max_lines, started_at_unix=live.started_at_unix
        )
    return live.transcript


def glossary_message(glossary: Glossary, by: str | None) -> str:
    return protocol.encode("glossary", entries=entries_json(glossary), by=by)


def corrected_message(line: TranscriptLine, languages: frozenset[str], by: str) -> str:
    """The corrected line as a final ``caption`` (replaces the one with its id) for a client
    reading ``languages``."""
    return protocol.encode(
        "caption",
        caption_id=line.caption_id,
        participant_id=line.speaker_id,
        lang=line.lang,
        text=line.text,
        final=True,
        stable_chars=len(line.text),
        start_s=round(line.start_s, 3),
        end_s=round(line.end_s, 3),
        translations={k: v for k, v in line.translations.items() if k in languages},
        engines={k: v for k, v in line.engines.items() if k in languages},
        untranslated={k: v for k, v in line.untranslated.items() if k in languages},
        machine_generated=True,
        corrected=True,
        corrected_langs=[lang for lang in line.corrected_langs if lang in languages | {line.lang}],
        corrected_by=by,
    )


async def handle_interpreter_action(
    client: ClientConnection, msg: protocol.InterpreterAction
) -> None:
    live, me = client.live, client.participant
    if live is None or me is None:
        raise ProtocolError("not_joined", f"{msg.type} needs a joined participant", msg.type)
    if me.role not in ALLOWED_ROLES:
        raise ProtocolError("forbidden", f"only hosts and interpreters may {msg.type}", msg.type)
    settings = client.server.settings.interpreting
    match msg:
        case protocol.Correct():
            await _correct(client, live, msg)
        case protocol.GlossarySet(entries=entries):
            if len(entries) > settings.glossary_max_entries:
                raise ProtocolError(
                    "bad_message",
                    f"entries: at most {settings.glossary_max_entries} entries",
                    msg.type,
                )
            glossary = parse_entries(e.model_dump() for e in entries)
            live.glossary = glossary
            live.broadcast(glossary_message(glossary, me.participant_id))
            if client.server.captions is not None:
                client.server.captions.glossary_changed(live.name, glossary)
            log.info("glossary set", room=live.name, by=me.participant_id, entries=len(glossary))
        case protocol.Export(format=fmt, lang=lang):
            transcript = transcript_of(live, settings.transcript_max_lines)
            if fmt == "json":
                names = {
                    pid: c.participant.name for pid, c in live.clients.items() if c.participant
                }
                content = export_json(transcript, names)
                filename = f"{live.name}.json"
            elif lang is None:
                raise ProtocolError("bad_message", f"lang: required for {fmt}", msg.type)
            else:
                exporter = export_vtt if fmt == "vtt" else export_srt
                content = exporter(transcript, lang)
                filename = f"{live.name}.{lang}.{fmt}"
            client.send(
                protocol.encode("export", format=fmt, lang=lang, filename=filename, content=content)
            )


async def _correct(client: ClientConnection, live: LiveRoom, msg: protocol.Correct) -> None:
    me = client.participant
    assert me is not None
    settings = client.server.settings.interpreting
    line = transcript_of(live, settings.transcript_max_lines).get(msg.caption_id)
    if line is None:
        raise ProtocolError(
            "unknown_caption", f"no final caption {msg.caption_id} in this room", msg.type
        )
    if msg.lang != line.lang and msg.lang not in line.translations | line.untranslated:
        raise ProtocolError(
            "bad_state", f"caption {msg.caption_id} has no {msg.lang} text", msg.type
        )
    assert live.transcript is not None
    at_s = time.monotonic() - live.started_monotonic
    live.transcript.correct(
        line, msg.lang, msg.text, by=me.participant_id, by_name=me.name, at_s=at_s
    )
    changed = {msg.lang}
    captions = client.server.captions
    if msg.lang == line.lang:
        # the source changed: its machine translations follow it (human ones stay)
        human = set(line.corrected_langs)
        targets = sorted((set(line.translations) | set(line.untranslated)) - human - {line.lang})
        if targets:
            changed.update(targets)
            await _retranslate(line, targets, live, captions, settings.retranslate_timeout_ms)
    for other in list(live.clients.values()):
        reads = other.languages | {line.lang}
        if other.participant is not None and (changed & reads):
            other.send(corrected_message(line, other.languages, me.participant_id))
    log.info("caption corrected", room=live.name, by=me.participant_id, caption=line.caption_id)


async def _retranslate(
    line: TranscriptLine, targets: list[str], live: LiveRoom, captions: Any, timeout_ms: int
) -> None:
    for target in targets:
        line.translations.pop(target, None)
        line.engines.pop(target, None)
    if captions is None:
        for target in targets:
            line.untranslated[target] = "captions are off on this server"
        return
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            result = await captions.translate_glossed(line.text, line.lang, targets, live.glossary)
    except TimeoutError:
        result = None
    except Exception as exc:  # the worker is restarting: the correction still goes out
        log.warning("retranslation failed", error=type(exc).__name__)
        result = None
    for target in targets:
        translation = None if result is None else result.get(target)
        if isinstance(translation, Translated):
            line.translations[target] = translation.text
            line.engines[target] = translation.engine
            line.untranslated.pop(target, None)
        else:
            reason = None if translation is None else translation.reason
            line.untranslated[target] = reason or "the correction was not translated"
