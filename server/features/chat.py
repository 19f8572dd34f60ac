"""Room chat as a feature (PROTOCOL.md "Chat"): ``chat`` in, each room's :class:`RoomChat`
(order, history, translation; :mod:`server.chat`) created with its first joiner and closed
with the room."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, Protocol

from interpret.frames import Translation
from interpret.glossary import Glossary

from .. import protocol
from ..chat import RoomChat, TranslateText
from ..context import Peer, RoomContext, Sender
from ..protocol import ClientMessage, ProtocolError
from ..settings import ChatSettings
from . import BaseFeature

#: the language of a message whose sender said none (neither ``chat.lang`` nor ``join.lang``)
DEFAULT_CHAT_LANG = "en"


class ChatTranslator(Protocol):
    """What chat needs of the captions' engines (:class:`server.captions.CaptionService`)."""

    async def translate_text(
        self, text: str, source: str, targets: tuple[str, ...]
    ) -> Mapping[str, Translation]: ...

    async def translate_glossed(
        self, text: str, source: str, targets: Iterable[str], glossary: Glossary = ()
    ) -> Mapping[str, Translation]: ...


class Recorder(Protocol):
    """What outlives a room (:class:`server.retention.Retention`)."""

    def record(
        self, room: str, kind: Literal["captions", "chat"], fields: Mapping[str, Any]
    ) -> None: ...


class ChatFeature(BaseFeature):
    """Each room's chat; joiners get its history, room messages may be retained."""

    messages: ClassVar[tuple[type[ClientMessage], ...]] = (protocol.Chat,)

    def __init__(
        self,
        *,
        settings: ChatSettings,
        translator: ChatTranslator | None,
        glossary: Callable[[str], Glossary],
        retention: Recorder | None,
    ) -> None:
        self._settings = settings
        self._translator = translator
        #: a room's glossary (its terms are rendered in chat as in captions)
        self._glossary = glossary
        self._retention = retention
        self._chats: dict[str, RoomChat] = {}

    def chat(self, room: RoomContext) -> RoomChat:
        """The room's chat (made with the room's first joiner)."""
        chat = self._chats.get(room.name)
        if chat is None:
            chat = self._chats[room.name] = RoomChat(
                room,
                history_max_messages=self._settings.history_max_messages,
                translate=self._translate_for(room.name),
                timeout_s=self._settings.translate_timeout_ms / 1000,
            )
        return chat

    def _translate_for(self, room_name: str) -> TranslateText | None:
        translator = self._translator
        if translator is None:
            return None

        async def translate(
            text: str, source: str, targets: tuple[str, ...]
        ) -> Mapping[str, Translation]:
            glossary = self._glossary(room_name)
            if glossary:
                return await translator.translate_glossed(text, source, targets, glossary)
            return await translator.translate_text(text, source, targets)

        return translate

    def on_joined(self, room: RoomContext, peer: Peer) -> None:
        assert peer.participant is not None
        self.chat(room).joined(peer, peer.participant.participant_id)

    async def on_left(self, room: RoomContext, participant_id: str) -> None:
        chat = self._chats.get(room.name)
        if chat is not None:
            chat.left(participant_id)

    async def on_room_closed(self, room: RoomContext) -> None:
        chat = self._chats.pop(room.name, None)
        if chat is not None:
            await chat.aclose()

    async def handle(self, sender: Sender, msg: ClientMessage) -> None:
        assert isinstance(msg, protocol.Chat)
        room, me = sender.room, sender.participant
        pid, text, to = me.participant_id, msg.text, msg.to
        if not text.strip():
            raise ProtocolError("bad_message", "text: must not be only whitespace", "chat")
        if to == pid:
            raise ProtocolError("bad_message", "to: cannot send to yourself", "chat")
        if to is not None and to not in room.clients:
            raise ProtocolError("unknown_participant", f"{to} is not in the room", "chat")
        message = self.chat(room).post(
            sender_id=pid,
            sender_name=me.name,
            lang=msg.lang or sender.peer.spoken_lang or DEFAULT_CHAT_LANG,
            text=text,
            to=to,
        )
        if to is None and self._retention is not None:  # private messages are never kept
            self._retention.record(
                room.name,
                "chat",
                {
                    "message_id": message.message_id,
                    "from": pid,
                    "from_name": me.name,
                    "lang": message.lang,
                    "text": message.text,
                },
            )
