"""Loggers ``flowcore``, ``flowcore.FlowRunner``, ``flowcore.TaskRunner``, ``flowcore.<task>``.

One stream handler on the ``flowcore`` logger, configured from ``config.logging``
(level, format, datefmt). Context attributes (``flow_name``, ``flow_run_id``,
``task_name``, ``task_slug``, ``task_run_id`` and ``config.logging.log_attributes``) are
added to records by a filter on that handler, so only records that are emitted pay for
them. Mapped children log through a child logger named ``flowcore.<name>[i]`` that is not
registered with :mod:`logging`, so a map of 100,000 items does not leave 100,000 loggers
behind.
"""

from __future__ import annotations

import logging
import sys

from flowcore import configuration
from flowcore.utilities import context as _context

__all__ = ["configure_logging", "get_logger", "get_child_logger"]

_CONTEXT_ATTRIBUTES = ("flow_name", "flow_run_id", "task_name", "task_slug", "task_run_id")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        data = _context.current()
        extra = configuration.config.get_path("logging.log_attributes", []) or []
        for name in (*_CONTEXT_ATTRIBUTES, *extra):
            if not hasattr(record, name):
                setattr(record, name, data.get(name))
        return True


def configure_logging(testing: bool = False) -> logging.Logger:
    """(Re)configure the ``flowcore`` logger from ``flowcore.config.logging``."""
    settings = configuration.config.logging
    logger = logging.getLogger("flowcore")
    for handler in [h for h in logger.handlers if getattr(h, "_flowcore", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._flowcore = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(settings.format, settings.datefmt))
    handler.addFilter(_ContextFilter())
    logger.addHandler(handler)
    logger.setLevel(str(settings.level).upper())
    logger.propagate = False
    for name in settings.get("extra_loggers") or []:
        extra = logging.getLogger(name)
        extra.addHandler(handler)
        extra.setLevel(str(settings.level).upper())
    return logger


def get_logger(name: str | None = None) -> logging.Logger:
    """``flowcore`` or ``flowcore.<name>``."""
    return logging.getLogger("flowcore" if name is None else f"flowcore.{name}")


def get_child_logger(parent: logging.Logger, full_name: str) -> logging.Logger:
    """An unregistered logger named ``flowcore.<full_name>`` whose records go to ``parent``."""
    logger = logging.Logger(f"flowcore.{full_name}")
    logger.parent = parent
    return logger


configure_logging()
