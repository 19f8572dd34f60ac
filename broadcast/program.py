"""What the program shows and plays, decided from the room's state. Pure.

- Audio: the floor is the mix of everyone not on air as an interpreter; each interpretation
  channel's rendition is its interpreter on air, or the floor while nobody is on air in it
  (what a participant listening to that channel hears in the room).
- Video: a host-pinned participant, else a shared screen, else the active speaker's camera (the
  loudest floor speaker, with a hold so that a cough does not cut away), else any camera.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

FLOOR = "floor"
#: RMS (0–1 full scale) above which a participant counts as speaking
SPEAKING_RMS = 0.01
#: a new speaker must be the loudest this long before the picture cuts to them
SWITCH_AFTER_S = 0.6


@dataclass(frozen=True, slots=True)
class AudioSource:
    """Whose audio a rendition plays: the floor mix, or one participant (an interpreter)."""

    floor: bool
    participant_id: str | None = None


def floor_members(participants: Iterable[str], on_air: Mapping[str, str]) -> frozenset[str]:
    """The floor: every participant who is not on air in a channel."""
    voices = set(on_air.values())
    return frozenset(p for p in participants if p not in voices)


def audio_plan(channels: Iterable[str], on_air: Mapping[str, str]) -> dict[str, AudioSource]:
    """Rendition key (``"floor"`` or a channel) -> what it plays now."""
    plan = {FLOOR: AudioSource(floor=True)}
    for channel in channels:
        voice = on_air.get(channel)
        plan[channel] = AudioSource(floor=True) if voice is None else AudioSource(False, voice)
    return plan


@dataclass(slots=True)
class ActiveSpeaker:
    """The floor's active speaker from audio levels, with a hold against flapping."""

    switch_after_s: float = SWITCH_AFTER_S
    threshold_rms: float = SPEAKING_RMS
    current: str | None = None
    _candidate: str | None = None
    _candidate_since_s: float = 0.0
    _levels: dict[str, float] = field(default_factory=dict)

    def update(self, levels: Mapping[str, float], floor: Collection[str], now_s: float) -> None:
        """``levels``: each participant's RMS over the last tick; only ``floor`` counts."""
        if self.current is not None and self.current not in floor:
            self.current = None
        heard = {p: v for p, v in levels.items() if p in floor and v >= self.threshold_rms}
        if not heard:
            self._candidate = None
            return
        loudest = max(heard, key=lambda p: heard[p])
        if self.current is None:
            self.current = loudest
            self._candidate = None
            return
        if loudest == self.current:
            self._candidate = None
            return
        if loudest != self._candidate:
            self._candidate, self._candidate_since_s = loudest, now_s
        elif now_s - self._candidate_since_s >= self.switch_after_s:
            self.current, self._candidate = loudest, None


def video_source(
    *,
    pinned: str | None,
    screens: Collection[str],
    cameras: Collection[str],
    active: str | None,
) -> tuple[str, str] | None:
    """(participant_id, ``"camera"`` / ``"screen"``) to show, or None (a slate)."""
    if pinned is not None:
        if pinned in screens:
            return pinned, "screen"
        if pinned in cameras:
            return pinned, "camera"
    if screens:
        return sorted(screens)[0], "screen"
    if active is not None and active in cameras:
        return active, "camera"
    if cameras:
        return sorted(cameras)[0], "camera"
    return None
