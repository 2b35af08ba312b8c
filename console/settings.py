"""Settings of the review console, read from the environment when it starts.

| variable | default | meaning |
|---|---|---|
| ``CONSOLE_HOST`` | ``127.0.0.1`` | interface the console listens on |
| ``CONSOLE_PORT`` | ``8081`` | port of the console |
| ``CONSOLE_SESSION_HOURS`` | ``12`` | a sign-in lasts this long |
| ``CONSOLE_SECURE_COOKIES`` | ``0`` | ``1`` marks cookies ``Secure`` (set it when served over HTTPS) |
| ``CONSOLE_LOW_CONFIDENCE`` | ``0.6`` | NLU confidence below which a message is "low" (inbox default) |
| ``TRACKER_DB_URL`` | ``sqlite:///<project root>/var/tracker.db`` | the tracker database the console reads and writes its tables to |
| ``ACCOUNTS_DB_URL`` | ``sqlite:///<project root>/var/accounts.db`` | the account store: support requests, their delivery and release |
| ``CONVERSATION_RETENTION_DAYS`` | ``180`` | the retention window the conversation list states (the scheduler enforces it) |
| ``HELPDESK_WEBHOOK_TOKEN`` | (none: ``POST /helpdesk/webhook`` answers 503) | Bearer token the helpdesk sends when an agent releases a conversation |
| ``CONSOLE_TRUSTED_PROXIES`` | (none: ``X-Forwarded-For`` is ignored) | comma-separated addresses or networks of the reverse proxies in front of the console; only from them is ``X-Forwarded-For`` believed (sign-in failures are counted per client address) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from accounts.settings import database_url as accounts_db_url
from console.auth import parse_trusted_proxies
from tracking.settings import DEFAULT_RETENTION_DAYS, PROJECT_ROOT, conversation_retention_days, tracker_db_url

#: Shortest helpdesk webhook token accepted (a guessable token would let anyone release conversations).
MIN_WEBHOOK_TOKEN_CHARS = 16


def _flag(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ConsoleSettings:
    """Resolved settings of the console."""

    host: str = "127.0.0.1"
    port: int = 8081
    db_url: str = ""
    session_hours: float = 12.0
    secure_cookies: bool = False
    low_confidence: float = 0.6
    domain_path: Path = PROJECT_ROOT / "domain.yml"
    log_level: str = "INFO"
    accounts_db_url: str = ""
    webhook_token: str = field(default="", repr=False)
    trusted_proxies: tuple = ()
    retention_days: int = DEFAULT_RETENTION_DAYS

    @property
    def local_url(self) -> str:
        """Base URL of the console as seen from this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


def load_console_settings(environ: Optional[Mapping[str, str]] = None) -> ConsoleSettings:
    """Read the console's settings from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    low = float(env.get("CONSOLE_LOW_CONFIDENCE", "0.6"))
    if not 0.0 < low <= 1.0:
        raise ValueError("CONSOLE_LOW_CONFIDENCE must be in (0, 1]")
    hours = float(env.get("CONSOLE_SESSION_HOURS", "12"))
    if hours <= 0:
        raise ValueError("CONSOLE_SESSION_HOURS must be positive")
    webhook_token = (env.get("HELPDESK_WEBHOOK_TOKEN") or "").strip()
    if webhook_token and len(webhook_token) < MIN_WEBHOOK_TOKEN_CHARS:
        raise ValueError(f"HELPDESK_WEBHOOK_TOKEN must have at least {MIN_WEBHOOK_TOKEN_CHARS} characters")
    return ConsoleSettings(
        host=env.get("CONSOLE_HOST", "127.0.0.1"),
        port=int(env.get("CONSOLE_PORT", "8081")),
        db_url=tracker_db_url(env),
        session_hours=hours,
        secure_cookies=_flag(env.get("CONSOLE_SECURE_COOKIES")),
        low_confidence=low,
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        accounts_db_url=accounts_db_url(env),
        webhook_token=webhook_token,
        trusted_proxies=parse_trusted_proxies(env.get("CONSOLE_TRUSTED_PROXIES")),
        retention_days=conversation_retention_days(env),
    )
