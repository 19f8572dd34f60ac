"""Room chat: messages in the room's order, translated for each reader by the captions'
engines (in the speech worker, never on the event loop), kept in memory while the room lives.

:class:`ChatHistory` is the pure part (ids, order, what a joiner may see); :class:`RoomChat`
runs one room's jobs (deliver a message, send a joiner the history) one after another, so that
everybody sees a room's messages in one order and a joiner's history never overlaps what they
are sent live. Chat text is never logged.

The job queue is bounded; overflow policy: **shed translation, then refuse**. A job that starts
with ``shed_translation_queued_jobs`` or more jobs waiting behind it delivers without waiting
for translations (``untranslated``: "translation is busy"), so a backlog drains at once; a
message posted while ``max_queued_jobs`` jobs wait is refused (``rate_limited``: its sender is
told, nobody gets it, it is not kept), and a joiner's history is then sent at once with the
translations made so far. A message that was accepted is always delivered, in order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from interpret.frames import Translated, Translation

from . import outbound, protocol
from .context import Peer, RoomContext

log = structlog.get_logger(__name__)

TRANSLATION_OFF = "translation is off on this server"
TRANSLATION_DOWN = "translation is unavailable just now"
TRANSLATION_TIMED_OUT = "translation timed out"
TRANSLATION_BUSY = "translation is busy"

#: chat jobs (a message to deliver, a joiner's history) a room queues at most
CHAT_MAX_QUEUED_JOBS = 64
#: a job that starts with this many jobs waiting behind it skips translation
CHAT_SHED_TRANSLATION_QUEUED_JOBS = 8


#: translate ``text`` from a language into targets
#: (:meth:`interpret.supervisor.SpeechWorker.translate`)
TranslateText = Callable[[str, str, tuple[str, ...]], Awaitable[Mapping[str, Translation]]]


@dataclass(slots=True)
class ChatMessage:
    seq: int
    message_id: str
    sender_id: str
    sender_name: str
    lang: str
    text: str
    sent_at: float
    #: the recipient of a private message
    to: str | None = None
    #: translations made so far, reused for later readers: lang -> (text, engine)
    translations: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_wire(self, languages: Iterable[str], untranslated: Mapping[str, str]) -> dict[str, Any]:
        """The ``chat`` message's fields for a reader of ``languages`` (PROTOCOL.md)."""
        return self.for_reader(languages, untranslated).fields()

    def for_reader(
        self, languages: Iterable[str], untranslated: Mapping[str, str]
    ) -> outbound.Chat:
        """The ``chat`` message for a reader of ``languages``: the translations made, and why
        the others are missing."""
        wanted = [lang for lang in sorted(set(languages)) if lang != self.lang]
        made = {lang: self.translations[lang] for lang in wanted if lang in self.translations}
        return outbound.Chat(
            message_id=self.message_id,
            sender_id=self.sender_id,
            sender_name=self.sender_name,
            private=self.to is not None,
            lang=self.lang,
            text=self.text,
            translations={lang: text for lang, (text, _) in made.items()},
            engines={lang: engine for lang, (_, engine) in made.items()},
            untranslated={
                lang: untranslated.get(lang, TRANSLATION_DOWN)
                for lang in wanted
                if lang not in made
            },
            sent_at=round(self.sent_at, 3),
            to=self.to,
        )


class ChatHistory:
    """A room's messages in order; only room messages (not private ones) are kept, at most
    ``max_messages`` of the latest."""

    def __init__(self, *, max_messages: int) -> None:
        self._kept: collections.deque[ChatMessage] = collections.deque(maxlen=max_messages)
        self._next_seq = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next message will get (a joiner sees messages before it
        as history and the ones from it live)."""
        return self._next_seq

    def post(
        self, *, sender_id: str, sender_name: str, lang: str, text: str, to: str | None, now: float
    ) -> ChatMessage:
        seq = self._next_seq
        self._next_seq += 1
        message = ChatMessage(seq, f"m{seq}", sender_id, sender_name, lang, text, now, to)
        if to is None and self._kept.maxlen:
            self._kept.append(message)
        return message

    def before(self, seq: int) -> list[ChatMessage]:
        """Kept messages older than ``seq``."""
        return [m for m in self._kept if m.seq < seq]


def reading_languages(client: Peer) -> frozenset[str]:
    """What a client reads chat in: its caption languages and the language it speaks."""
    spoken = client.spoken_lang
    return client.languages | ({spoken} if spoken else frozenset())


class RoomChat:
    """One room's chat: a history and one task that runs the room's jobs in order."""

    def __init__(
        self,
        live: RoomContext,
        *,
        history_max_messages: int,
        translate: TranslateText | None,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
        max_queued_jobs: int = CHAT_MAX_QUEUED_JOBS,
        shed_translation_queued_jobs: int = CHAT_SHED_TRANSLATION_QUEUED_JOBS,
    ) -> None:
        self._live = live
        self._max_queued_jobs = max_queued_jobs
        self._shed_after_jobs = shed_translation_queued_jobs
        #: the running job delivers without translating (see the module docstring)
        self._shedding = False
        self.history = ChatHistory(max_messages=history_max_messages)
        self._translate = translate
        self._timeout_s = timeout_s
        self._clock = clock
        #: participant id -> the first sequence number they receive live
        self._since: dict[str, int] = {}
        self._jobs: collections.deque[Callable[[], Awaitable[None]]] = collections.deque()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued_jobs(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return len(self._jobs)

    @property
    def _full(self) -> bool:
        return len(self._jobs) >= self._max_queued_jobs

    # -- called by the signaling side (synchronously, on the loop) ---------------------------
    def joined(self, client: Peer, participant_id: str) -> None:
        """A participant entered: from now on they get messages live; older room messages
        come as one ``chat_history``."""
        since = self.history.next_seq
        self._since[participant_id] = since
        if not self.history.before(since):
            return
        if self._full:  # at once, with the translations made so far: the order still holds
            languages = reading_languages(client)
            lines = [
                m.for_reader(languages, dict.fromkeys(languages, TRANSLATION_BUSY))
                for m in self.history.before(since)
            ]
            client.send(outbound.ChatHistory(lines).encode())
            return
        self._enqueue(lambda: self._send_history(client, participant_id, since))

    def left(self, participant_id: str) -> None:
        self._since.pop(participant_id, None)

    def post(
        self, *, sender_id: str, sender_name: str, lang: str, text: str, to: str | None
    ) -> ChatMessage:
        """Accept a message for delivery; raises ``rate_limited`` when the queue is full."""
        if self._full:
            raise protocol.ProtocolError(
                "rate_limited",
                "too many chat messages waiting in this room just now",
                "chat",
                retry_after_ms=round(self._timeout_s * 1000),
            )
        message = self.history.post(
            sender_id=sender_id,
            sender_name=sender_name,
            lang=lang,
            text=text,
            to=to,
            now=self._clock(),
        )
        self._enqueue(lambda: self._deliver(message))
        return message

    async def aclose(self) -> None:
        """Stop (the room closed): pending jobs are dropped; idempotent."""
        self._closed = True
        self._jobs.clear()
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass

    # -- jobs --------------------------------------------------------------------------------
    def _enqueue(self, job: Callable[[], Awaitable[None]]) -> None:
        if self._closed:
            return
        self._jobs.append(job)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name=f"chat-{self._live.name}"
            )

    async def _run(self) -> None:
        while self._jobs:
            job = self._jobs.popleft()
            self._shedding = len(self._jobs) >= self._shed_after_jobs
            try:
                await job()
            except Exception:  # boundary: one job failing must not stop the room's chat
                log.exception("chat job failed", room=self._live.name)
            finally:
                self._shedding = False

    def _recipients(self, message: ChatMessage) -> list[Peer]:
        clients = self._live.clients
        if message.to is None:
            ids = [pid for pid in clients if self._since.get(pid, 0) <= message.seq]
        else:
            ids = [pid for pid in (message.sender_id, message.to) if pid in clients]
        return [clients[pid] for pid in ids]

    async def _deliver(self, message: ChatMessage) -> None:
        recipients = self._recipients(message)
        wanted = frozenset().union(*(reading_languages(c) for c in recipients))
        untranslated = await self._translate_into(message, wanted)
        for client in self._recipients(message):  # whoever is still here
            client.send(message.for_reader(reading_languages(client), untranslated).encode())

    async def _send_history(self, client: Peer, participant_id: str, since: int) -> None:
        messages = self.history.before(since)
        languages = reading_languages(client)
        untranslated: dict[str, dict[str, str]] = {}
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        for message in messages:
            left_s = deadline - asyncio.get_running_loop().time()
            untranslated[message.message_id] = await self._translate_into(
                message, languages, timeout_s=left_s
            )
        if self._live.clients.get(participant_id) is not client:
            return  # gone meanwhile
        lines = [m.for_reader(languages, untranslated[m.message_id]) for m in messages]
        client.send(outbound.ChatHistory(lines).encode())

    async def _translate_into(
        self, message: ChatMessage, languages: Iterable[str], *, timeout_s: float | None = None
    ) -> dict[str, str]:
        """Add the translations ``message`` lacks; returns why some could not be made."""
        missing = tuple(
            sorted(
                lang
                for lang in set(languages)
                if lang != message.lang and lang not in message.translations
            )
        )
        if not missing:
            return {}
        if self._translate is None:
            return dict.fromkeys(missing, TRANSLATION_OFF)
        if self._shedding:
            return dict.fromkeys(missing, TRANSLATION_BUSY)
        budget_s = self._timeout_s if timeout_s is None else timeout_s
        if budget_s <= 0:
            return dict.fromkeys(missing, TRANSLATION_TIMED_OUT)
        try:
            async with asyncio.timeout(budget_s):
                result = await self._translate(message.text, message.lang, missing)
        except TimeoutError:
            log.warning("chat translation timed out", room=self._live.name)
            return dict.fromkeys(missing, TRANSLATION_TIMED_OUT)
        except Exception as exc:  # the worker is down or restarting: deliver untranslated
            log.warning("chat translation unavailable", room=self._live.name, error=str(exc))
            return dict.fromkeys(missing, TRANSLATION_DOWN)
        reasons: dict[str, str] = {}
        for lang, translation in result.items():
            if isinstance(translation, Translated):
                message.translations[lang] = (translation.text, translation.engine)
            elif lang in missing:
                reasons[lang] = translation.reason
        return reasons
