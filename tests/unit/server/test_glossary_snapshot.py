"""Issue 18: a clustered node keeps each room's glossary in Redis (the corrections feature's
``Snapshots``), so that the node taking a room over from a dead one restores it. Fakes only."""

from __future__ import annotations

import json

from server import protocol
from server.features.corrections import CorrectionsFeature
from server.settings import load_settings

from .fakes import FakeRoom, run, sender


class Store:
    """Snapshots that answer at once (a dict instead of Redis)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.loads = 0

    def save(self, room: str, kind: str, value: str | None) -> None:
        if value is None:
            self.values.pop((room, kind), None)
        else:
            self.values[(room, kind)] = value

    async def load(self, room: str, kind: str) -> str | None:
        self.loads += 1
        return self.values.get((room, kind))


def feature(store: Store) -> CorrectionsFeature:
    settings = load_settings(None)
    return CorrectionsFeature(settings=settings.interpreting, retranslator=None, snapshots=store)


def test_a_glossary_set_is_kept_and_restored_by_the_node_that_takes_the_room_over() -> None:
    store = Store()
    old_node, room = feature(store), FakeRoom()
    host = room.join("Ann", "host")
    entries = [protocol.GlossaryEntry(term="Parley", keep=True)]
    msg = protocol.GlossarySet(type="glossary_set", entries=entries)
    run(old_node.handle(sender(room, host), msg))
    assert json.loads(store.values[("r", "glossary")])[0]["term"] == "Parley"

    # the node died; another one opens the room for the first joiner
    new_node, again = feature(store), FakeRoom()
    ben = again.join("Ben")
    run(new_node.on_peer_added(again, ben))
    assert ben.of_type("glossary")[-1]["entries"][0]["term"] == "Parley"
    assert new_node.glossary("r")[0].term == "Parley"
    cid = again.join("Cid")
    run(new_node.on_peer_added(again, cid))
    assert store.loads == 1  # looked for once per room opening

    # the meeting ends normally: its glossary goes with it
    run(new_node.on_room_closed(again))
    assert store.values == {}


def test_an_unreadable_snapshot_is_ignored() -> None:
    store = Store()
    store.values[("r", "glossary")] = json.dumps([{"term": ""}])
    node, room = feature(store), FakeRoom()
    ann = room.join("Ann")
    run(node.on_peer_added(room, ann))
    assert ann.of_type("glossary") == [] and node.glossary("r") == ()
