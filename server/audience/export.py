"""After the event: every question, comment and poll with originals, translations, times, votes
and moderation outcome, as JSON and CSV (pure)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .board import AudienceBoard
from .polls import PollBook


def export_records(room: str, board: AudienceBoard, polls: PollBook) -> dict[str, Any]:
    return {
        "room": room,
        "languages": list(board.languages),
        "items": [item.to_export() for item in board.items.values()],
        "polls": [poll.to_export() for poll in polls.polls.values()],
    }


def export_json(records: dict[str, Any]) -> str:
    return json.dumps(records, ensure_ascii=False, indent=1)


def export_csv(records: dict[str, Any]) -> str:
    """One row per question, comment and poll option; translations as ``text_<lang>``."""
    languages = records["languages"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "id", "kind", "group", "name", "lang", "text",
            *[f"text_{lang}" for lang in languages],
            "submitted_at", "decided_at", "status", "votes", "banned",
        ]
    )  # fmt: skip
    for item in records["items"]:
        writer.writerow(
            [
                item["id"], item["kind"], item["group"], item["name"] or "", item["lang"],
                item["text"], *[item["translations"].get(lang, "") for lang in languages],
                item["submitted_at"], item["decided_at"] or "", item["status"], item["votes"],
                item["banned"],
            ]
        )  # fmt: skip
    for poll in records["polls"]:
        for index, option in enumerate(poll["options"]):
            translated = [
                poll["translations"].get(lang, {}).get("options", [""] * (index + 1))[index]
                for lang in languages
            ]
            writer.writerow(
                [
                    f"{poll['id']}.{index}", "poll_option", poll["id"], "", poll["lang"],
                    f"{poll['question']} — {option}", *translated,
                    poll["created_at"], poll["closed_at"] or "", "closed" if poll["closed_at"]
                    else "open", poll["counts"][index], False,
                ]
            )  # fmt: skip
    return out.getvalue()
