"""Structured logging for every component: JSON lines when not on a terminal, readable otherwise.

Log events name what happened (`producer.batch_sent`); values are counts, ids and durations.
Never pass PII (emails, phones, names, addresses) to a logger.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(verbose: bool = False, json: bool | None = None, level: int | None = None) -> None:
    """Configure structlog and the standard library's logging (level: DEBUG if verbose, else INFO)."""
    if json is None:
        json = os.environ.get("USERPIPELINE_LOG_FORMAT", "").lower() == "json" or not sys.stderr.isatty()
    level = level if level is not None else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    for noisy in ("httpx", "httpcore", "cassandra", "py4j", "kafka"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
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
