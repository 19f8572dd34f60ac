"""Human interpretation channels (PROTOCOL.md "Interpretation channels").

A room has the floor (everyone who speaks in the meeting) and language channels. An interpreter
goes on air in a channel ("into French"); from then on their microphone is that channel's voice,
not part of the floor. Each participant chooses what they hear: the floor, or a channel, in which
case the media plane withholds the floor's audio from them while the channel has someone on air
(or, with ``duck``, keeps it and the client plays it quietly under the interpreter). Relay is the
same choice made by an interpreter: listen to another channel instead of the floor.

One interpreter is on air per channel. Another one takes over by a handover: request, then the
one on air accepts (the switch is one state change: there is never a moment with two on air, nor
with none) or declines; a request nobody answers lapses after ``handover_timeout_s``.

While an interpreter is on air their speech is recognised in the channel's language like anyone's,
and listeners reading that language may take these captions instead of machine translation.

The state here is pure; :mod:`server.features.channels` turns it into media holds and
``channels`` messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FLOOR = "floor"
#: language channels a room lists at most (every one is in each ``channels`` message, and the
#: list only grows while the room lives): the EU's 24 official languages fit
MAX_CHANNELS_PER_ROOM = 24
#: roles that may go on air and take part in handovers
ON_AIR_ROLES = frozenset({"interpreter"})


@dataclass(frozen=True, slots=True)
class Listening:
    """What one participant hears and which captions they take."""

    channel: str = FLOOR
    #: keep the floor (quietly, client side) under the channel's interpreter
    duck: bool = False
    #: in the languages they read, captions of the channel's interpreter instead of machine
    #: translation of the floor
    interpreter_captions: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "duck": self.duck,
            "interpreter_captions": self.interpreter_captions,
        }


@dataclass(slots=True)
class PendingHandover:
    by: str
    expires_monotonic: float
    timer: asyncio.TimerHandle | None = None


class ChannelError(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class RoomChannels:
    """One room's channels: who is on air where, pending handovers, what everyone hears."""

    def __init__(self, *, max_channels: int = MAX_CHANNELS_PER_ROOM) -> None:
        self.max_channels = max_channels
        #: channel -> the interpreter on air in it
        self.on_air: dict[str, str] = {}
        #: every channel someone went on air in, in order (listed until the room closes); at
        #: most ``max_channels``
        self.known: list[str] = []
        self.requests: dict[str, PendingHandover] = {}
        self.listening: dict[str, Listening] = {}
        #: the holds last given to the media plane, per subscriber
        self.applied_holds: dict[str, frozenset[str]] = {}
        self.lock = asyncio.Lock()

    @property
    def in_use(self) -> bool:
        return bool(self.known) or any(lst.channel != FLOOR for lst in self.listening.values())

    def channel_of(self, participant_id: str) -> str | None:
        """The channel ``participant_id`` is on air in, if any."""
        for channel, pid in self.on_air.items():
            if pid == participant_id:
                return channel
        return None

    def listening_of(self, participant_id: str) -> Listening:
        return self.listening.get(participant_id, Listening())

    # -- state changes (pure; raise ChannelError, change nothing on error) ----------------------
    def go_on_air(self, participant_id: str, channel: str) -> str | None:
        """Put ``participant_id`` on air in ``channel``; returns the channel they left."""
        holder = self.on_air.get(channel)
        if holder == participant_id:
            raise ChannelError("bad_state", f"already on air in {channel}")
        if holder is not None:
            raise ChannelError(
                "channel_busy",
                f"{holder} is on air in {channel}: ask for a handover",
                on_air=holder,
            )
        if channel not in self.known and len(self.known) >= self.max_channels:
            raise ChannelError(
                "too_many_channels",
                f"this room has {len(self.known)} channels, the most it may have",
                max_channels=self.max_channels,
            )
        left = self.go_off_air(participant_id)
        self.on_air[channel] = participant_id
        if channel not in self.known:
            self.known.append(channel)
        return left

    def go_off_air(self, participant_id: str) -> str | None:
        channel = self.channel_of(participant_id)
        if channel is not None:
            del self.on_air[channel]
            self._drop_request(channel)
        return channel

    def request_handover(self, participant_id: str, channel: str, expires_monotonic: float) -> str:
        """Ask the interpreter on air in ``channel`` to hand it over; returns who that is."""
        holder = self.on_air.get(channel)
        if holder is None:
            raise ChannelError("bad_state", f"nobody is on air in {channel}: go on air")
        if holder == participant_id:
            raise ChannelError("bad_state", f"already on air in {channel}")
        pending = self.requests.get(channel)
        if pending is not None and pending.by != participant_id:
            raise ChannelError(
                "channel_busy",
                f"{pending.by} already asked for {channel}",
                requested_by=pending.by,
            )
        self._drop_request(channel)
        self.requests[channel] = PendingHandover(participant_id, expires_monotonic)
        return holder

    def answer_handover(self, participant_id: str, channel: str, accept: bool) -> str:
        """The interpreter on air answers the pending request; returns the requester. Accepted:
        the requester is on air from now on, in one step (never two on air, never none)."""
        if self.on_air.get(channel) != participant_id:
            raise ChannelError("bad_state", f"you are not on air in {channel}")
        pending = self.requests.get(channel)
        if pending is None:
            raise ChannelError("bad_state", f"no handover request for {channel}")
        self._drop_request(channel)
        if accept:
            self.go_off_air(pending.by)  # they may be on air in another channel
            self.on_air[channel] = pending.by
        return pending.by

    def expire(self, channel: str, now_monotonic: float) -> str | None:
        """Drop ``channel``'s request if it lapsed; returns its requester."""
        pending = self.requests.get(channel)
        if pending is None or pending.expires_monotonic > now_monotonic:
            return None
        self._drop_request(channel)
        return pending.by

    def participant_left(self, participant_id: str) -> str | None:
        """Forget a participant; returns the channel they were on air in."""
        self.listening.pop(participant_id, None)
        self.applied_holds.pop(participant_id, None)
        for channel, pending in list(self.requests.items()):
            if pending.by == participant_id:
                self._drop_request(channel)
        return self.go_off_air(participant_id)

    def close(self) -> None:
        for channel in list(self.requests):
            self._drop_request(channel)

    def _drop_request(self, channel: str) -> None:
        pending = self.requests.pop(channel, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    # -- views ---------------------------------------------------------------------------------
    def taken_languages(self, participant_id: str, languages: frozenset[str]) -> frozenset[str]:
        """Of the languages a participant reads, those whose captions come from an interpreter
        on air (the participant asked for that) instead of machine translation."""
        if not self.on_air or not self.listening_of(participant_id).interpreter_captions:
            return frozenset()
        return frozenset(lang for lang in languages if lang in self.on_air)

    def to_wire(self, now_monotonic: float) -> list[dict[str, Any]]:
        rows = []
        for channel in self.known:
            pending = self.requests.get(channel)
            rows.append(
                {
                    "channel": channel,
                    "on_air": self.on_air.get(channel),
                    "requested_by": None if pending is None else pending.by,
                    "expires_in_ms": None
                    if pending is None
                    else max(0, round((pending.expires_monotonic - now_monotonic) * 1000)),
                }
            )
        return rows


def audio_holds(
    participants: Iterable[str], listening: Mapping[str, Listening], on_air: Mapping[str, str]
) -> dict[str, frozenset[str]]:
    """Whose audio each participant must not be sent.

    - Interpreters on air in a channel other than the one a participant listens to: never
      heard (they speak into their channel, not to the floor).
    - A participant listening to a channel with someone else on air: the floor (everyone not on
      air) is withheld, unless they duck it.
    - Everyone else hears the floor, including listeners of a channel nobody is on air in.
    """
    everyone = list(participants)
    voices = set(on_air.values())
    holds: dict[str, frozenset[str]] = {}
    for pid in everyone:
        choice = listening.get(pid, Listening())
        held = {voice for channel, voice in on_air.items() if channel != choice.channel}
        voice = on_air.get(choice.channel)
        if voice is not None and voice != pid and not choice.duck:
            held.update(p for p in everyone if p not in voices)
        held.discard(pid)
        holds[pid] = frozenset(held)
    return holds
