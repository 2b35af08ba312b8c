"""Keep codes, tokens and passwords out of every log line of our processes.

:func:`install` replaces the logging record factory, so every record, from
any logger (Rasa's structlog output goes through the standard logging module
too), has its message and traceback cut to :data:`LOG_REDACTION_LIMIT` characters
and passed through :func:`accounts.redaction.redact_text` before any handler
formats it.

``python -m supportbot.log_redaction rasa run ...`` and
``python -m supportbot.log_redaction rasa_sdk --actions actions ...`` start
the Rasa server and the action server with it installed (the runner does).
For ``rasa`` it also installs :mod:`supportbot.rasa_fixes` and the signing of
identity claims (:mod:`supportbot.action_claims`).
"""

from __future__ import annotations

import logging
import runpy
import sys
import traceback
from typing import Any, Callable

from accounts.redaction import redact_text

_installed = False

#: Characters of a log message (and of a traceback) that are redacted and kept;
#: the rest is cut, so one huge message costs bounded time and leaks nothing.
LOG_REDACTION_LIMIT = 8192


def redact_capped(text: str, limit: int = LOG_REDACTION_LIMIT) -> str:
    """``text`` cut to ``limit`` characters and redacted, saying how much was left out."""
    if len(text) <= limit:
        return redact_text(text, split_codes=False)
    head = text[:limit]
    if not text[limit].isspace():  # a token cut in two is not recognisable: drop its start
        head = head[: max(head.rfind(c) for c in " \t\r\n") + 1]
    return f"{redact_text(head, split_codes=False)}... [{len(text) - len(head)} characters not logged]"


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as it is
            return record
        redacted = redact_capped(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact_capped("".join(traceback.format_exception(*record.exc_info)))
        return record

    return factory


def install() -> None:
    """Redact every log record created in this process from now on (idempotent)."""
    global _installed
    if not _installed:
        logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
        _installed = True


def main() -> None:
    """Run a module (``rasa`` or ``rasa_sdk``) as ``python -m`` would, with redaction on."""
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m supportbot.log_redaction MODULE [ARGS...]")
    install()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    if module == "rasa":
        from supportbot import action_claims, rasa_fixes

        rasa_fixes.install()  # measured Rasa costs, fixed at run time (see that module)
        action_claims.install()  # action calls carry signed identity claims
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
