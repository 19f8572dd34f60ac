"""Room chat (PROTOCOL.md "Room features")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import protocol
from .chat import RoomChat, TextTranslationResult, TranslateText
from .protocol import ProtocolError

if TYPE_CHECKING:
    from .signaling import ClientConnection, LiveRoom, SignalingServer

DEFAULT_CHAT_LANG = "en"


def chat_of(server: SignalingServer, live: LiveRoom) -> RoomChat:
    """The room's chat (made with the room's first joiner)."""
    if live.chat is None:
        captions = server.captions
        translate: TranslateText | None = None
        if captions is not None:

            async def translate(
                text: str, source: str, targets: tuple[str, ...]
            ) -> TextTranslationResult:
                # the room's glossary renders its terms in chat as in captions
                if live.glossary:
                    return await captions.translate_glossed(text, source, targets, live.glossary)
                return await captions.translate_text(text, source, targets)

        live.chat = RoomChat(
            live,
            history_max_messages=server.settings.chat.history_max_messages,
            translate=translate,
            timeout_s=server.settings.chat.translate_timeout_ms / 1000,
        )
    return live.chat


def on_joined(server: SignalingServer, live: LiveRoom, client: ClientConnection) -> None:
    """Right after ``joined`` (synchronously, so nothing can come between): the chat
    history."""
    assert client.participant is not None
    chat_of(server, live).joined(client, client.participant.participant_id)


def on_left(live: LiveRoom, participant_id: str) -> None:
    if live.chat is not None:
        live.chat.left(participant_id)


async def on_room_closed(live: LiveRoom) -> None:
    """The room is gone: so is its chat."""
    if live.chat is not None:
        await live.chat.aclose()


async def handle(client: ClientConnection, msg: protocol.RoomFeature) -> None:
    live, participant = client.live, client.participant
    if live is None or participant is None:
        raise ProtocolError("not_joined", f"{msg.type} needs a joined participant", msg.type)
    server, pid = client.server, participant.participant_id
    match msg:
        case protocol.Chat(text=text, lang=lang, to=to):
            if not text.strip():
                raise ProtocolError("bad_message", "text: must not be only whitespace", "chat")
            if to == pid:
                raise ProtocolError("bad_message", "to: cannot send to yourself", "chat")
            if to is not None and to not in live.clients:
                raise ProtocolError("unknown_participant", f"{to} is not in the room", "chat")
            message = chat_of(server, live).post(
                sender_id=pid,
                sender_name=participant.name,
                lang=lang or client.spoken_lang or DEFAULT_CHAT_LANG,
                text=text,
                to=to,
            )
            if to is None and server.retention is not None:  # private messages are never kept
                server.retention.record(
                    live.name,
                    "chat",
                    {
                        "message_id": message.message_id,
                        "from": pid,
                        "from_name": participant.name,
                        "lang": message.lang,
                        "text": message.text,
                    },
                )
        case _:
            raise ProtocolError("unknown_type", f"unknown message type {msg.type!r}", msg.type)
