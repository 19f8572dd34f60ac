"""``python -m broadcast JOB.json``: one broadcast worker (started by the server, which passes
the room's broadcaster secret in ``PARLEY_BROADCAST_SECRET``). SIGTERM ends the broadcast
cleanly (EXT-X-ENDLIST); exit status 0 when it ended, 1 when it could not join."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from .worker import BroadcastWorker, load_job

SECRET_ENV = "PARLEY_BROADCAST_SECRET"


async def main(job_path: Path) -> int:
    secret = os.environ.pop(SECRET_ENV, "")
    worker = BroadcastWorker(load_job(job_path), secret)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop_requested.set)
    return await worker.run()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        format="broadcast %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiortc/aioice log SDP and candidates at INFO
    for noisy in ("aiortc", "aioice", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.exit(asyncio.run(main(Path(sys.argv[1]))))
