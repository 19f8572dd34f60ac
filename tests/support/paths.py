"""Where the tests find the repository and the evaluation set."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def evalset_dir() -> Path:
    """The evaluation set: $PARLEY_EVALSET, else ``shared/evalset`` beside the repository."""
    env = os.environ.get("PARLEY_EVALSET")
    return Path(env) if env else REPO.parent / "shared" / "evalset"


EVALSET = evalset_dir()
