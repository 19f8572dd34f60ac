"""Interpreters' tools (PROTOCOL.md "Interpreting"): correct a final caption, the room
glossary, exports of the room's transcript. Only hosts and interpreters may use them; anyone
else gets ``forbidden`` and nothing changes. Each room's transcript (its final captions, in
memory only) and glossary live here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import structlog

from interpret.frames import Translated, Translation
from interpret.glossary import Glossary, entries_json, parse_entries

from .. import outbound, protocol
from ..context import Peer, RoomContext, Sender
from ..outbound import Caption
from ..protocol import ClientMessage, ProtocolError
from ..rooms import Role
from ..settings import InterpretingSettings
from ..transcript import RoomTranscript, TranscriptLine, export_json, export_srt, export_vtt
from . import BaseFeature

log = structlog.get_logger(__name__)


class Retranslator(Protocol):
    """What corrections need of the captions (:class:`server.captions.CaptionService`)."""

    async def translate_glossed(
        self, text: str, source: str, targets: Iterable[str], glossary: Glossary = ()
    ) -> Mapping[str, Translation]: ...

    def glossary_changed(self, room: str, glossary: Glossary) -> None: ...


class Snapshots(Protocol):
    """Where a room's glossary outlives its node (a cluster's Redis:
    :class:`server.cluster.node.ClusterNode`; None on a single node)."""

    def save(self, room: str, kind: str, value: str | None) -> None:
        """Keep ``value`` for ``room`` (None: forget it), soon (not awaited)."""
        ...

    async def load(self, room: str, kind: str) -> str | None: ...


@dataclass(slots=True)
class RoomNotes:
    """What a room's interpreters keep: its transcript and glossary."""

    transcript: RoomTranscript
    glossary: Glossary = ()


def glossary_message(glossary: Glossary, by: str | None) -> str:
    return outbound.Glossary(entries_json(glossary), by).encode()


def corrected_caption(line: TranscriptLine, languages: frozenset[str], by: str) -> Caption:
    """The corrected line as a final ``caption`` (it replaces the one with its id) for a
    client reading ``languages``."""
    return Caption(
        caption_id=line.caption_id,
        participant_id=line.speaker_id,
        lang=line.lang,
        text=line.text,
        final=True,
        stable_chars=len(line.text),
        start_s=line.start_s,
        end_s=line.end_s,
        translations={k: v for k, v in line.translations.items() if k in languages},
        engines={k: v for k, v in line.engines.items() if k in languages},
        untranslated={k: v for k, v in line.untranslated.items() if k in languages},
        corrected_by=by,
        corrected_langs=tuple(
            lang for lang in line.corrected_langs if lang in languages | {line.lang}
        ),
    )


class CorrectionsFeature(BaseFeature):
    """Corrections, the glossary and exports; every room's transcript and glossary."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (
        protocol.Correct,
        protocol.GlossarySet,
        protocol.Export,
    )
    roles: ClassVar[frozenset[Role] | None] = frozenset({"host", "interpreter"})
    forbidden = "only hosts and interpreters may {type}"

    def __init__(
        self,
        *,
        settings: InterpretingSettings,
        retranslator: Retranslator | None,
        clock: Callable[[], float] = time.monotonic,
        snapshots: Snapshots | None = None,
    ) -> None:
        self._settings = settings
        self._retranslator = retranslator
        self._clock = clock
        self._rooms: dict[str, RoomNotes] = {}
        #: a clustered node keeps each room's glossary in Redis: the node that takes a room
        #: over from a dead one restores it (the transcript is not kept: it is lost)
        self._snapshots = snapshots
        #: rooms whose snapshot was looked for since they opened here
        self._restored: set[str] = set()

    def _notes(self, room: RoomContext) -> RoomNotes:
        notes = self._rooms.get(room.name)
        if notes is None:
            transcript = RoomTranscript(
                room.name,
                max_lines=self._settings.transcript_max_lines,
                started_at_unix=room.started_at_unix,
            )
            notes = self._rooms[room.name] = RoomNotes(transcript)
        return notes

    def transcript(self, room: RoomContext) -> RoomTranscript:
        """The room's final captions so far."""
        return self._notes(room).transcript

    def glossary(self, room_name: str) -> Glossary:
        notes = self._rooms.get(room_name)
        return () if notes is None else notes.glossary

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        glossary = self.glossary(room.name)
        if glossary:
            peer.send(glossary_message(glossary, None))

    async def on_peer_added(self, room: RoomContext, peer: Peer) -> None:
        """The room's first joiner here: a glossary its previous node kept is restored (the
        room was taken over from a dead node) and everyone in the room gets it."""
        if self._snapshots is None or room.name in self._restored:
            return
        self._restored.add(room.name)
        if self.glossary(room.name):
            return
        value = await self._snapshots.load(room.name, "glossary")
        if not value:
            return
        try:
            glossary = parse_entries(json.loads(value))
        except ValueError:  # another version's layout: start without it
            log.warning("glossary snapshot unreadable", room=room.name)
            return
        self._notes(room).glossary = glossary
        room.broadcast(glossary_message(glossary, None))
        if self._retranslator is not None:
            self._retranslator.glossary_changed(room.name, glossary)
        log.info("glossary restored", room=room.name, entries=len(glossary))

    async def on_room_closed(self, room: RoomContext) -> None:
        self._rooms.pop(room.name, None)
        self._restored.discard(room.name)
        if self._snapshots is not None:  # the meeting is over: its glossary with it
            self._snapshots.save(room.name, "glossary", None)

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        room, me = sender.room, sender.participant
        settings = self._settings
        match msg:
            case protocol.Correct():
                await self._correct(sender, msg)
            case protocol.GlossarySet(entries=entries):
                if len(entries) > settings.glossary_max_entries:
                    raise ProtocolError(
                        "bad_message",
                        f"entries: at most {settings.glossary_max_entries} entries",
                        msg.type,
                    )
                glossary = parse_entries(e.model_dump() for e in entries)
                self._notes(room).glossary = glossary
                if self._snapshots is not None:
                    self._snapshots.save(room.name, "glossary", json.dumps(entries_json(glossary)))
                room.broadcast(glossary_message(glossary, me.participant_id))
                if self._retranslator is not None:
                    self._retranslator.glossary_changed(room.name, glossary)
                log.info(
                    "glossary set", room=room.name, by=me.participant_id, entries=len(glossary)
                )
            case protocol.Export(format=fmt, lang=lang):
                transcript = self.transcript(room)
                if fmt == "json":
                    names = {
                        pid: c.participant.name for pid, c in room.clients.items() if c.participant
                    }
                    content = export_json(transcript, names)
                    filename = f"{room.name}.json"
                elif lang is None:
                    raise ProtocolError("bad_message", f"lang: required for {fmt}", msg.type)
                else:
                    exporter = export_vtt if fmt == "vtt" else export_srt
                    content = exporter(transcript, lang)
                    filename = f"{room.name}.{lang}.{fmt}"
                export = outbound.Export(fmt, lang, filename, content)
                sender.peer.send(export.encode())

    async def _correct(self, sender: Sender, msg: protocol.Correct) -> None:
        room, me = sender.room, sender.participant
        notes = self._notes(room)
        line = notes.transcript.get(msg.caption_id)
        if line is None:
            raise ProtocolError(
                "unknown_caption", f"no final caption {msg.caption_id} in this room", msg.type
            )
        if msg.lang != line.lang and msg.lang not in line.translations | line.untranslated:
            raise ProtocolError(
                "bad_state", f"caption {msg.caption_id} has no {msg.lang} text", msg.type
            )
        at_s = self._clock() - room.started_monotonic
        notes.transcript.correct(
            line, msg.lang, msg.text, by=me.participant_id, by_name=me.name, at_s=at_s
        )
        changed = {msg.lang}
        if msg.lang == line.lang:
            # the source changed: its machine translations follow it (human ones stay)
            human = set(line.corrected_langs)
            targets = sorted(
                (set(line.translations) | set(line.untranslated)) - human - {line.lang}
            )
            if targets:
                changed.update(targets)
                await self._retranslate(line, targets, notes.glossary)
        for other in list(room.clients.values()):
            reads = other.languages | {line.lang}
            if other.participant is not None and (changed & reads):
                other.send(corrected_caption(line, other.languages, me.participant_id).encode())
        log.info("caption corrected", room=room.name, by=me.participant_id, caption=line.caption_id)

    async def _retranslate(
        self, line: TranscriptLine, targets: list[str], glossary: Glossary
    ) -> None:
        for target in targets:
            line.translations.pop(target, None)
            line.engines.pop(target, None)
        if self._retranslator is None:
            for target in targets:
                line.untranslated[target] = "captions are off on this server"
            return
        result: Mapping[str, Translation] | None
        try:
            async with asyncio.timeout(self._settings.retranslate_timeout_ms / 1000):
                result = await self._retranslator.translate_glossed(
                    line.text, line.lang, targets, glossary
                )
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
