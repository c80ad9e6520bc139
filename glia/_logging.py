"""Structured logging for the ``glia`` command: key-value events on stderr, never on stdout.

Events are JSON lines when stderr is not a terminal (pipes, CI, log collectors) and a readable
console rendering when it is. A module names its logger once, at import::

    log = get_logger("glia.worker")
    log.info("experiment_finished", mean_e2e_s=17.8)   # ... "logger": "glia.worker" ...

The name travels with the logger (structlog's lazy proxy passes it to our factory), so it is
in every event whenever logging is configured, before or after the import.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, cast

import structlog

__all__ = ["configure_logging", "get_logger"]


class _StderrLogger:
    """A structlog logger that writes each rendered event as one line to the *current* stderr.

    Looking ``sys.stderr`` up at every call (instead of binding the stream at configuration
    time) keeps logs flowing through whatever wraps stderr later: rich's live progress display,
    or a test runner capturing output.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        """Write one rendered event."""
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger_factory(*args: Any) -> _StderrLogger:
    return _StderrLogger(args[0] if args and isinstance(args[0], str) else None)


def _add_logger_name(
    logger: Any, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Name the logger in the event (unless the event names one itself)."""
    name = getattr(logger, "name", None)
    if name is not None:
        event.setdefault("logger", name)
    return event


def configure_logging(json: bool | None = None, level: int = logging.INFO) -> None:
    """Send structlog events at ``level`` and above to stderr.

    ``json=True`` renders JSON lines, ``json=False`` the human console format, and ``None``
    (default) picks JSON unless stderr is a terminal. Safe to call more than once.
    """
    if json is None:
        json = not _isatty(sys.stderr)
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(sys.stderr))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "glia") -> structlog.typing.FilteringBoundLogger:
    """The logger called ``name``: every event it logs says ``logger=name``."""
    return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(name))


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
