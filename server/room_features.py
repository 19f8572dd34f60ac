"""What participants do in a room besides media and moderation (PROTOCOL.md "Room features"):
chat, raised hands, the transcription notice and opting out of transcription."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from interpret.frames import Translation

from . import protocol
from .chat import RoomChat, TranslateText
from .protocol import ProtocolError

if TYPE_CHECKING:
    from .settings import RetentionSettings
    from .signaling import ClientConnection, LiveRoom, SignalingServer

TRANSCRIPTION_NOTICE = (
    "This meeting is transcribed and translated by machine while it runs: what you say is "
    "shown to the others as captions, which may contain errors. Captions are not stored. "
    "You can ask not to be transcribed."
)


def transcription_notice(retention: RetentionSettings) -> str:
    """The notice, true to what this server keeps (``[retention]``)."""
    kept = [k for k in ("captions", "chat") if retention.mode != "none" and k in retention.kinds]
    if not kept:
        return TRANSCRIPTION_NOTICE
    what = " and ".join(["final captions" if k == "captions" else "room chat" for k in kept])
    return TRANSCRIPTION_NOTICE.replace(
        "Captions are not stored.",
        f"This server stores {what} for up to {retention.max_age_h:g} hours.",
    )


DEFAULT_CHAT_LANG = "en"


def chat_of(server: SignalingServer, live: LiveRoom) -> RoomChat:
    """The room's chat (made with the room's first joiner)."""
    if live.chat is None:
        captions = server.captions
        translate: TranslateText | None = None
        if captions is not None:

            async def translate(
                text: str, source: str, targets: tuple[str, ...]
            ) -> Mapping[str, Translation]:
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
    """Right after ``joined`` (synchronously, so nothing can come between): the transcription
    notice before any caption, then the chat history."""
    assert client.participant is not None
    if server.captions is not None:
        client.send(
            protocol.encode(
                "notice",
                kind="transcription",
                text=transcription_notice(server.settings.retention),
                machine_generated=True,
            )
        )
        if server.captions.paused:  # no speech worker now: say so (live again is told too)
            client.send(server.captions.status_message())
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
        case protocol.Hand(raised=raised):
            participant.hand_raised = raised
            live.broadcast(protocol.encode("hand", participant_id=pid, raised=raised))
        case protocol.Transcription(opt_out=opt_out):
            participant.transcription_opt_out = opt_out
            if server.captions is not None:
                server.captions.set_opt_out(pid, opt_out)
            live.broadcast(protocol.encode("transcription", participant_id=pid, opt_out=opt_out))
        case _:
            raise ProtocolError("unknown_type", f"unknown message type {msg.type!r}", msg.type)
