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
identity claims (:mod:`supportbot.action_claims`). Both servers get a
request-size limit that Sanic applies before reading a body (413 "Request
body exceeds the size limit", no JSON parsed): ``MAX_REQUEST_BYTES`` (64 KB)
for Rasa, whose channels face the internet, ``ACTION_MAX_REQUEST_BYTES``
(16 MB) for the action server, which receives whole conversation trackers.
"""

from __future__ import annotations

import logging
import os
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
#: module run -> (environment variable, default) of its request-size limit
REQUEST_SIZE_LIMITS = {
    "rasa": ("MAX_REQUEST_BYTES", 64 * 1024),
    "rasa_sdk": ("ACTION_MAX_REQUEST_BYTES", 16 * 1024 * 1024),
}


def limit_request_size(module: str) -> None:
    """Tell the Sanic app ``module`` creates its request-size limit (``SANIC_REQUEST_MAX_SIZE``)."""
    if module not in REQUEST_SIZE_LIMITS:
        return
    name, default = REQUEST_SIZE_LIMITS[module]
    value = (os.environ.get(name) or "").strip()
    limit = int(value) if value else default
    if limit <= 0:
        raise SystemExit(f"{name} must be a positive number of bytes")
    os.environ["SANIC_REQUEST_MAX_SIZE"] = str(limit)  # read by Sanic() from SANIC_* variables
    if module == "rasa_sdk":
        _answer_payload_too_large_with_413()


def _answer_payload_too_large_with_413() -> None:
    """rasa_sdk turns every exception into 500: an oversized body gets Sanic's own 413 instead."""
    from rasa_sdk import endpoint
    from sanic import response
    from sanic.exceptions import PayloadTooLarge

    create_app = endpoint.create_app

    def create_app_with_413(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)

        @app.exception(PayloadTooLarge)
        async def too_large(_request: Any, error: PayloadTooLarge) -> Any:
            return response.json({"error": str(error)}, status=413)

        return app

    endpoint.create_app = create_app_with_413


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
    limit_request_size(module)
    if module == "rasa":
        from supportbot import action_claims, rasa_fixes

        rasa_fixes.install()  # measured Rasa costs, fixed at run time (see that module)
        action_claims.install()  # action calls carry signed identity claims
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
