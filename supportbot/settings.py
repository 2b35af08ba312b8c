"""Every setting of the assistant, read from environment variables.

Each setting has a documented default that is safe on a developer's machine:
everything on loopback, stores embedded. Read settings through
:func:`load_settings` at start-up, never at import time, so tests can set the
environment first.

| variable | default | meaning |
|---|---|---|
| ``RASA_HOST`` | ``127.0.0.1`` | interface of the Rasa server (channels) |
| ``RASA_PORT`` | ``5005`` | port of the Rasa server |
| ``RASA_ENABLE_API`` | ``0`` | ``1`` turns on Rasa's HTTP API; it is then bound to 127.0.0.1 only |
| ``RASA_API_TOKEN`` | (none) | token for the HTTP API; required when the API is on |
| ``ACTION_HOST`` | ``127.0.0.1`` | interface of the action server (it has no authentication: keep it private) |
| ``ACTION_PORT`` | ``5055`` | port of the action server |
| ``ACTION_ENDPOINT_URL`` | ``http://{ACTION_HOST}:{ACTION_PORT}/webhook`` | where Rasa calls the actions |
| ``WEB_HOST`` | ``127.0.0.1`` | interface of the chat page server |
| ``WEB_PORT`` | ``8080`` | port of the chat page server |
| ``RASA_MODEL`` | ``models/assistant.tar.gz`` | trained model the server loads |
| ``SUPPORT_CONTACT`` | ``the Contact support form in the portal's Help section`` | how customers reach a person, quoted by the assistant |
| ``PORTAL_TOKEN_SECRET`` | (none; ``make run`` creates a development one in ``var/``) | HMAC secret shared with the portal; portal tokens signed with it identify customers (supportbot/portal_token.py) |
| ``PORTAL_TOKEN_ISSUER`` | ``portal`` | expected ``iss`` claim of portal tokens |
| ``ACCOUNTS_DB_URL`` | ``sqlite:///<project root>/var/accounts.db`` | the account store (accounts/README.md lists its other settings) |
| ``OUTBOX_RETENTION_DAYS`` | ``30`` | days a sent or given-up notification stays in the account store before ``python -m accounts purge-outbox`` (``accounts.dispatch.purge_old_notifications``) deletes it; its codes and links are removed at delivery already |
| ``MAIL_BACKEND`` | ``file`` | how the mail dispatcher delivers notifications: ``file`` writes ``.eml`` files (development), ``smtp`` sends them (accounts/README.md, "Mail") |
| ``MAIL_DIR`` | ``<project root>/var/mail`` | folder of the ``file`` backend |
| ``MAIL_FROM`` | ``Customer Support <no-reply@example.com>`` | From address of notifications; its domain is the Message-ID domain |
| ``SMTP_HOST`` | ``127.0.0.1`` | SMTP server of the ``smtp`` backend |
| ``SMTP_PORT`` | ``587`` | its port |
| ``SMTP_STARTTLS`` | ``1`` | ``1`` upgrades with STARTTLS and verifies the certificate; ``0`` talks in clear (then a login is only allowed on loopback) |
| ``SMTP_USERNAME`` | (none: no login) | SMTP login name |
| ``SMTP_PASSWORD`` | (none) | SMTP password; required with ``SMTP_USERNAME`` |
| ``SMTP_TIMEOUT`` | ``10`` | seconds for connecting and for each SMTP command |
| ``HELPDESK_URL`` | (none: support requests stay pending, visible to support leads) | base URL of the helpdesk API the support requests are delivered to (accounts/README.md, "Helpdesk delivery") |
| ``HELPDESK_TOKEN`` | (none; required with ``HELPDESK_URL``) | Bearer token of the helpdesk API |
| ``HELPDESK_KIND`` | ``generic`` | ``generic`` (the documented JSON API) or ``zendesk`` (Zendesk Tickets API) |
| ``HELPDESK_TIMEOUT`` | ``10`` | seconds for connecting to the helpdesk and for its answer |
| ``MAX_MESSAGE_CHARS`` | ``2000`` | longest message the channels accept |
| ``MAX_REQUEST_BYTES`` | ``65536`` | largest request body the Rasa server reads; larger ones get 413 before any JSON is parsed (supportbot/log_redaction.py) |
| ``ACTION_MAX_REQUEST_BYTES`` | ``16777216`` | largest request body the action server reads (Rasa sends it whole conversation trackers) |
| ``WIDGET_ALLOWED_ORIGINS`` | ``http://127.0.0.1:{WEB_PORT},http://localhost:{WEB_PORT}`` | comma-separated origins of the pages allowed to open the widget's Socket.IO connection (channels/socketio.py) |
| ``WIDGET_SOCKET_URL`` | the Rasa server's URL (``http://127.0.0.1:{RASA_PORT}``) | where the widget page's browser reaches Rasa's Socket.IO endpoint |
| ``WIDGET_DEMO_LOGIN`` | ``0`` | ``1`` lets the widget page issue a portal token for any account typed in: local demos only; it runs only with the development ``PORTAL_TOKEN_SECRET`` of ``var/`` and a loopback ``WEB_HOST`` (supportbot/portal_token.py) |
| ``WIDGET_SESSION_HOURS`` | ``12`` | how long an anonymous widget visitor's signed session key lasts; the conversation id is a digest of it (channels/widget_tickets.py) |
| ``CHAT_MESSAGES_PER_MINUTE`` | ``30`` | messages per minute one widget connection or one REST sender may send; over it the customer is asked to slow down (channels/rate_limit.py); ``0``: no limit |
| ``CHAT_ADDRESS_MESSAGES_PER_MINUTE`` | ``0`` (no limit) | messages per minute from one client address on the REST channel; off by default because the chat page relays all its visitors from one address: set it (e.g. ``300``) where clients call the REST channel directly |
| ``SLACK_BOT_TOKEN`` | (none: Slack off, its webhook answers 503) | Slack bot token (``xoxb-...``) |
| ``SLACK_SIGNING_SECRET`` | (none: Slack off) | Slack app's signing secret; every request's signature is checked with it |
| ``SLACK_API_BASE_URL`` | ``https://slack.com/api/`` | Slack Web API base URL |
| ``TELEGRAM_BOT_TOKEN`` | (none: Telegram off, its webhook answers 503) | Telegram bot token from @BotFather |
| ``TELEGRAM_WEBHOOK_SECRET`` | (none: Telegram off) | secret Telegram must send in ``X-Telegram-Bot-Api-Secret-Token`` (32-256 of ``A-Z a-z 0-9 _ -``; start-up refuses a shorter one) |
| ``TELEGRAM_BOT_USERNAME`` | (none) | the bot's @username, removed from commands such as ``/start@name`` |
| ``TELEGRAM_WEBHOOK_URL`` | (none: not registered) | public HTTPS URL of ``/webhooks/telegram/webhook``; when set, the webhook (with its secret) is registered at start-up |
| ``TELEGRAM_API_BASE_URL`` | ``https://api.telegram.org`` | Telegram Bot API base URL |
| ``REDIS_URL`` | (none: each Rasa process keeps its own) | Redis shared by every Rasa instance (``redis://host:6379/0``): Rasa's conversation lock store (supportbot/lock_store.py) and the Slack and Telegram retry de-duplication (channels/dedup.py); needed with several Rasa instances. While it is unreachable the Slack and Telegram webhooks answer 503 so the platforms retry later |
| ``TICKET_LOCK_LIFETIME`` | ``10`` (Rasa's own default: 60) | seconds a conversation's lock ticket lives; an instance killed while handling a message blocks that conversation this long at most, and a turn must end within it. ``endpoints.yml`` names our lock store class (supportbot/lock_store.py: Redis with ``REDIS_URL``, else in memory) because ``${REDIS_URL}`` fails there when unset |
| ``SANIC_WORKERS`` | ``1`` | Sanic worker processes per Rasa instance (Rasa's own variable); more than 1 needs ``REDIS_URL`` (the lock store refuses to start without it) and the widget's Socket.IO on websocket-only transport; the cluster scales by instances instead (docs/deployment.md) |
| ``CLUSTER_PORT`` | a free port | nginx front port of ``make run-cluster`` (supportbot/cluster.py, docs/deployment.md) |
| ``CLUSTER_RASA_INSTANCES`` | ``2`` | Rasa instances ``make run-cluster`` starts |
| ``CLUSTER_ACTION_SERVERS`` | ``2`` | action servers ``make run-cluster`` starts |
| ``NGINX_BINARY`` | ``/usr/sbin/nginx`` | the nginx ``make run-cluster`` runs as its child (Debian's package; scripts/ensure_debian_package.sh installs it) |
| ``HANDOFF_TIMEOUT_MINUTES`` | ``30`` | how long a conversation handed to a person stays paused for the bot when nobody releases it (only with ``HELPDESK_URL``) |
| ``HELPDESK_WEBHOOK_TOKEN`` | (none: the webhook answers 503) | Bearer token (16+ characters) the helpdesk sends to the console's ``POST /helpdesk/webhook`` to give a conversation back to the assistant (accounts/README.md, "Releasing a handed-over conversation") |
| ``LOG_LEVEL`` | ``INFO`` | log level of all processes (never DEBUG in production: Rasa logs message text at DEBUG) |
| ``TRACKER_DB_URL`` | ``sqlite:///<project root>/var/tracker.db`` | database of the conversation log (tracker store, review index, review console); ``postgresql://user@host:5432/db`` for PostgreSQL |
| ``TRACKER_CACHE_EVENTS`` | ``10000`` | events (about 2 KB each) of recent conversations each Rasa process keeps in memory, checked against the database before each use (tracking/cache.py, docs/performance.md); ``0`` turns the cache off |
| ``CONSOLE_HOST`` | ``127.0.0.1`` | interface of the review console |
| ``CONSOLE_PORT`` | ``8081`` | port of the review console |
| ``CONSOLE_SESSION_HOURS`` | ``12`` | how long a support lead's sign-in lasts |
| ``CONSOLE_SECURE_COOKIES`` | ``0`` | ``1`` marks the console's cookies ``Secure`` (set it when the console is served over HTTPS) |
| ``CONSOLE_LOW_CONFIDENCE`` | ``0.6`` | NLU confidence below which the console calls a message "low" (NLU inbox default) |
| ``TFA_FORM_KEY`` | random per process | key (32+ bytes) signing the form tokens of the ``/tfa/enroll`` and ``/tfa/not-me`` pages (supportbot/tfa_enrollment.py); set it when several chat page processes serve them |
| ``BENCH_QUICK`` | ``0`` | ``1`` makes ``make bench`` one short repetition (developing the harness; figures not for quoting; docs/benchmarks.md) |
| ``BENCH_LOG_LEVEL`` | ``WARNING`` | log level of the Rasa and action servers that ``make bench`` starts |
| ``DEMO_DATA`` | ``0`` | ``1`` loads the demo accounts (published TOTP secret and recovery codes) at start-up into an account store other than the default SQLite file, which always gets them (accounts/demo.py) |
| ``ACTION_CLAIMS_KEY`` | (none; ``make run`` creates a development one in ``var/``) | HMAC key (32+ bytes) of the identity claims the Rasa processes pass to the action servers, which refuse unsigned or altered claims (supportbot/action_claims.py); set it on the Rasa and action server processes only |
| ``CONSOLE_TRUSTED_PROXIES`` | (none: ``X-Forwarded-For`` is ignored) | addresses or networks (comma-separated) of the reverse proxies in front of the review console; only from them is ``X-Forwarded-For`` believed when sign-in failures are counted per address (console/auth.py) |
| ``CONVERSATION_RETENTION_DAYS`` | ``180`` | conversations whose last message is older are removed (tracker store, review index, console tags and notes) by the scheduler, in batches (tracking/retention.py); the console states it |
| ``SCHEDULER_TICK_SECONDS`` | ``60`` | seconds between two looks of the scheduler at its due jobs (supportbot/scheduler.py, docs/deployment.md "Scheduled jobs") |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one deployment."""

    rasa_host: str
    rasa_port: int
    enable_api: bool
    api_token: Optional[str]
    action_host: str
    action_port: int
    action_endpoint_url: str
    web_host: str
    web_port: int
    model_path: Path
    support_contact: str
    log_level: str

    @property
    def rasa_url(self) -> str:
        """Base URL of the Rasa server as seen from this machine."""
        host = LOOPBACK if self.rasa_host in ("0.0.0.0", "") else self.rasa_host
        return f"http://{host}:{self.rasa_port}"

    @property
    def rasa_interface(self) -> str:
        """Interface the Rasa server binds: loopback whenever the HTTP API is on."""
        return LOOPBACK if self.enable_api else self.rasa_host


def _flag(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Read the settings from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    action_host = env.get("ACTION_HOST", LOOPBACK)
    action_port = int(env.get("ACTION_PORT", "5055"))
    model = Path(env.get("RASA_MODEL", "models/assistant.tar.gz"))
    return Settings(
        rasa_host=env.get("RASA_HOST", LOOPBACK),
        rasa_port=int(env.get("RASA_PORT", "5005")),
        enable_api=_flag(env.get("RASA_ENABLE_API")),
        api_token=env.get("RASA_API_TOKEN") or None,
        action_host=action_host,
        action_port=action_port,
        action_endpoint_url=env.get(
            "ACTION_ENDPOINT_URL", f"http://{action_host}:{action_port}/webhook"
        ),
        web_host=env.get("WEB_HOST", LOOPBACK),
        web_port=int(env.get("WEB_PORT", "8080")),
        model_path=model if model.is_absolute() else PROJECT_ROOT / model,
        support_contact=env.get(
            "SUPPORT_CONTACT",
            "the Contact support form in the portal's Help section",
        ),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
    )
