"""Logging: structlog for Parley's own events, the standard library's records (aiortc,
interpret, media) rendered the same way, one line per event on stderr.

With ``[logging] format = "json"`` every line is one JSON object (``event``, ``level``,
``timestamp``, ``logger`` and the event's fields: ``room`` and ``participant`` ids where they
apply). Caption and chat text are never logged: no call site passes them, and
tests/acceptance/test_operations_e2e.py greps the logs of a captioned meeting for the spoken words.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

from .settings import Settings

#: these log every packet at debug level; they stay at warning unless asked for
NOISY_LOGGERS = ("aiortc", "aioice", "websockets")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.logging.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.logging.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # the standard library's records go through the same processors and renderer
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # the speech worker (a child process) renders its records the same way
    os.environ["PARLEY_WORKER_LOG_FORMAT"] = settings.logging.format
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
