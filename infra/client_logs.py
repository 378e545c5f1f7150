"""One line, not a traceback, for what the Kafka client logs about its own connections.

kafka-python logs connection trouble it then retries itself (a socket closed under a pending read at
shutdown, a broker restart) with ``log.exception``; our loops report each retry once in their own words.
A full traceback there reads like a crash of ours, so below DEBUG its records keep their message and
the exception's type and text, on one line. ``--verbose`` keeps the tracebacks.
"""

from __future__ import annotations

import logging

CLIENT_LOGGERS = ("kafka",)


class OneLineClientErrors(logging.Filter):
    """A handler filter: a client record's exception folded into its message (never dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.split(".", 1)[0] in CLIENT_LOGGERS:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def condense_client_errors(root: logging.Logger | None = None) -> None:
    """Install :class:`OneLineClientErrors` on every handler of ``root`` unless it logs at DEBUG."""
    root = root or logging.getLogger()
    if root.getEffectiveLevel() <= logging.DEBUG:
        return
    for handler in root.handlers:
        if not any(isinstance(f, OneLineClientErrors) for f in handler.filters):
            handler.addFilter(OneLineClientErrors())
