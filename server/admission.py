"""Who may join a room, decided without I/O (PROTOCOL.md "Joining": a refused join changes
nothing). The checks run in the documented order: the backoff after failed credentials, token,
password, a removed seat, a viewer asking to publish, join rate (:meth:`Admission.check`, before
the membership lock); then lock, capacity, the password again, rooms per server and new rooms
per address, lobby (:meth:`Admission.decide`, under it). Credentials come before the room's join
rate, so that guessing passwords slows the guesser down and never the room's participants.

Pure: clocks are injected; :mod:`server.membership` acts on the answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from . import protocol
from .auth import AuthError, Grant, TokenVerifier, password_matches
from .limits import ExpiringSet, FailureBackoff, KeyedLimiter, retry_after_ms
from .protocol import ProtocolError
from .rooms import JoinRefusedError, Role, Room, RoomRegistry
from .settings import Settings

#: errors that mean a credential was wrong (they start the backoff; the room's bucket is kept)
CREDENTIAL_FAILURES = frozenset({"token_invalid", "wrong_password", "stage_pass_invalid"})


class StagePasses(Protocol):
    """Who holds a stage pass (:class:`server.audience.service.AudienceService`: a viewer a
    moderator invited on stage, PROTOCOL.md "Audience: on stage")."""

    def redeem_stage_pass(self, room: str, stage_pass: str) -> Grant | None:
        """The pass's grant (a participant's seat), or None when it is not valid."""
        ...


@dataclass(frozen=True, slots=True)
class Seat:
    """What a joiner's credentials hold: the token's seat (one token, one seat), what a host's
    removal refuses (the seat, else the client's own id), the token's expiry (unix s)."""

    token_seat: str | None = None
    removal_key: str | None = None
    expires_s: float | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """A join that passed the checks before the lock."""

    room: str
    name: str
    role: Role
    seat: Seat
    #: a stage pass's join: a moderator invited it, so it passes the room's lock and lobby
    invited: bool = False


class Admission:
    """The doors' rules: credentials and their backoff, removed seats, join and room-creation
    rates. Raises :class:`ProtocolError` with the documented code; changes no room."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: RoomRegistry,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        #: unix time, for token expiries
        self.wall_clock = wall_clock
        self.auth_mode = settings.auth_mode()
        #: checks room tokens; None when no key is configured (open mode, tokens refused)
        self.verifier = (
            TokenVerifier.from_settings(settings.auth) if settings.auth.has_token_key() else None
        )
        limits = settings.limits
        self.join_limiter = KeyedLimiter(
            rate_per_s=limits.joins_per_room_per_s, burst=limits.join_burst
        )
        #: rooms created per client address (a token bucket a minute wide)
        self.room_creation_limiter = KeyedLimiter(
            rate_per_s=limits.rooms_created_per_address_per_minute / 60,
            burst=limits.rooms_created_per_address_per_minute,
        )
        #: failed credentials, keyed ``conn:<id>`` and ``addr:<address>``
        self.credential_failures = FailureBackoff(
            free_failures=limits.credential_failures_free,
            base_s=limits.credential_backoff_base_ms / 1000,
            max_s=limits.credential_backoff_max_s,
        )
        #: seats a host removed, ``<room>\n<seat>``, until the token (or the open-mode ban)
        #: ends; kept here, not in the room, so that emptying the room does not forgive them
        self.removed_seats = ExpiringSet()
        #: redeems stage passes (None: the audience is off; set by the composition root)
        self.stage_passes: StagePasses | None = None

    def check(
        self, msg: protocol.Join, *, connection_id: str, address: str, charge: bool = True
    ) -> Ticket:
        """The checks before the membership lock, in order; charges the room's join rate
        (unless ``charge`` is False: the caller does, :meth:`charge_join`)."""
        keys = (f"conn:{connection_id}", f"addr:{address}")
        now = self.clock()
        wait_s = max(self.credential_failures.wait_s(key, now) for key in keys)
        if wait_s > 0:
            raise ProtocolError(
                "rate_limited",
                "too many failed credentials; retry later",
                "join",
                retry_after_ms=retry_after_ms(wait_s),
            )
        try:
            name, role, grant = self._identify(msg)
            if grant is None:
                self.check_password(msg.room, self.registry.get(msg.room), msg.password)
        except ProtocolError as exc:
            if exc.code in CREDENTIAL_FAILURES:
                for key in keys:
                    self.credential_failures.failed(key, now)
            raise
        for key in keys:
            self.credential_failures.succeeded(key)
        seat = _seat(msg, grant)
        if seat.removal_key is not None and self.removed_seats.contains(
            f"{msg.room}\n{seat.removal_key}", self.wall_clock()
        ):
            raise ProtocolError("removed", "a host removed you from this room", "join")
        if role == "viewer" and msg.publish:
            raise ProtocolError("forbidden", "viewers cannot publish", "join")
        if len(set(msg.publish)) != len(msg.publish):
            raise ProtocolError("bad_message", "publish: kinds must be distinct", "join")
        if charge:
            self.charge_join(msg.room)
        role = "participant" if role is None else role
        return Ticket(msg.room, name, role, seat, invited=msg.stage_pass is not None)

    def charge_join(self, room: str) -> None:
        """The room's join rate (the last check of :meth:`check`; a cluster node charges it
        only once it knows the room lives here: a redirected join is not this room's)."""
        wait_s = self.join_limiter.take(room, self.clock())
        if wait_s > 0:
            raise ProtocolError(
                "rate_limited",
                f"too many joins into room {room!r}; retry later",
                "join",
                retry_after_ms=retry_after_ms(wait_s),
            )

    def decide(
        self, ticket: Ticket, password: str | None, *, address: str, live_rooms: int
    ) -> Literal["enter", "lobby"]:
        """The checks under the membership lock: lock and capacity, the password again (the
        room may have got one meanwhile), rooms per server and new rooms per address."""
        state = self.registry.get(ticket.room)
        try:
            decision = self.registry.admission(ticket.room, ticket.role, invited=ticket.invited)
        except JoinRefusedError as exc:
            raise ProtocolError(exc.code, exc.message, "join") from None
        if ticket.seat.token_seat is None:
            self.check_password(ticket.room, state, password)
        if state is None:
            self._check_room_creation(address, live_rooms)
        return decision

    def check_password(self, room: str, state: Room | None, given: str | None) -> None:
        expected = state.password if state is not None and state.password else None
        expected = expected or self.settings.auth.room_passwords.get(room)
        if expected is None:
            return
        if given is None:
            raise ProtocolError("password_required", f"room {room!r} needs a password", "join")
        if not password_matches(expected, given):
            raise ProtocolError("wrong_password", "wrong password", "join")

    def has_password(self, room: Room) -> bool:
        """A host's password or a configured one."""
        return bool(room.password or self.settings.auth.room_passwords.get(room.name))

    def refuse(self, room: str, seat: Seat) -> None:
        """A host removed this seat: refused until its token expires (open mode:
        ``open_mode_removal_s``)."""
        if seat.removal_key is None:
            return
        now = self.wall_clock()
        expires_s = (
            seat.expires_s
            if seat.expires_s is not None
            else now + self.settings.auth.open_mode_removal_s
        )
        self.removed_seats.add(f"{room}\n{seat.removal_key}", expires_s=expires_s, now_s=now)

    def _identify(self, msg: protocol.Join) -> tuple[str, Role | None, Grant | None]:
        """(display name, role or None = open-mode default, the token's grant if one was
        given). A stage pass comes first (a token beside it is not looked at)."""
        if msg.stage_pass is not None:
            grant = None
            if self.stage_passes is not None:
                grant = self.stage_passes.redeem_stage_pass(msg.room, msg.stage_pass)
            if grant is None:
                raise ProtocolError(
                    "stage_pass_invalid",
                    "this stage pass is not valid (ended, expired, or for another room)",
                    "join",
                )
            return grant.name or msg.name, grant.role, grant
        if msg.token is not None:
            if self.verifier is None:
                raise ProtocolError(
                    "token_invalid", "this server has no key to check tokens with", "join"
                )
            try:
                grant = self.verifier.verify(msg.token, msg.room)
            except AuthError as exc:
                raise ProtocolError(exc.code, exc.message, "join") from None
            return grant.name or msg.name, grant.role, grant
        if self.auth_mode == "token":
            raise ProtocolError("token_required", "this server needs a room token", "join")
        return msg.name, msg.role, None

    def _check_room_creation(self, address: str, live_rooms: int) -> None:
        """The join would create a room: refuse past ``max_rooms`` or past the address's
        ``rooms_created_per_address_per_minute``."""
        limits = self.settings.limits
        if live_rooms >= limits.max_rooms:
            raise ProtocolError(
                "too_many_rooms", f"this server holds {limits.max_rooms} rooms already", "join"
            )
        wait_s = self.room_creation_limiter.take(address, self.clock())
        if wait_s > 0:
            raise ProtocolError(
                "rate_limited",
                "too many new rooms from your address; retry later",
                "join",
                retry_after_ms=retry_after_ms(wait_s),
            )


def _seat(msg: protocol.Join, grant: Grant | None) -> Seat:
    """The token's seat, or (open mode) the client's own id as what a removal refuses."""
    if grant is not None:
        return Seat(token_seat=grant.seat, removal_key=grant.seat, expires_s=grant.expires_s)
    return Seat(removal_key=None if msg.client_id is None else f"client:{msg.client_id}")
