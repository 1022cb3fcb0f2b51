"""Structured logging for every component: JSON lines when not on a terminal, readable otherwise.

Log events name what happened (`producer.batch_sent`); values are counts, ids and durations.
Never pass PII (emails, phones, names, addresses) to a logger.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(verbose: bool = False, json: bool | None = None) -> None:
    if json is None:
        json = os.environ.get("USERPIPELINE_LOG_FORMAT", "").lower() == "json" or not sys.stderr.isatty()
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
