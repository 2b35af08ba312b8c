"""Settings of the account domain, read from the environment in one place.

Every setting has a documented default; none of them is a secret, so a default
is safe in every environment. Read them with :meth:`Settings.from_env` when the
application starts (never at import time) and pass the object on.

====================================  ===========================================
Environment variable                  Meaning (default)
====================================  ===========================================
``ACCOUNTS_DB_URL``                   SQLAlchemy URL of the accounts database
                                      (``sqlite:///<project root>/var/accounts.db``)
``ACCOUNTS_GRACE_PERIOD_DAYS``        days between a closure request and the
                                      final closure (14)
``ACCOUNTS_INVITATION_TTL_DAYS``      days an invitation link stays valid (7)
``ACCOUNTS_RESET_TOKEN_TTL_MINUTES``  minutes a password-reset link stays valid
                                      (30)
``ACCOUNTS_RESET_RATE_LIMIT``         password-reset requests accepted per
                                      address and window (3)
``ACCOUNTS_RESET_RATE_WINDOW_MINUTES`` length of that window in minutes (60)
``ACCOUNTS_PORTAL_BASE_URL``          base URL of the customer portal, used to
                                      build e-mailed links
                                      (``https://portal.example.com``; required
                                      with ``MAIL_BACKEND=smtp``)
``ACCOUNTS_ENROLLMENT_BASE_URL``      base URL of the server that serves
                                      ``/tfa/enroll`` and ``/tfa/not-me``
                                      (supportbot's chat page server, or the
                                      portal proxying to it) (the portal URL)
``ACCOUNTS_CODE_TTL_MINUTES``         minutes an e-mailed one-time code is valid
                                      (10)
``ACCOUNTS_CODE_SEND_LIMIT``          codes e-mailed per account and purpose
                                      (step-up: and operation) within one
                                      code lifetime (3)
``ACCOUNTS_FAILURE_THRESHOLD``        failed codes per account and authenticator
                                      before delays start (5)
``ACCOUNTS_FAILURE_BASE_DELAY_SECONDS`` first delay, doubled for each further
                                      failure (30)
``ACCOUNTS_FAILURE_MAX_DELAY_SECONDS`` longest delay (3600)
``ACCOUNTS_STEP_UP_TTL_MINUTES``      minutes a step-up grant stays usable (5)
``ACCOUNTS_CHANNEL_LINK_TTL_DAYS``    days a chat identity stays linked (90)
``ACCOUNTS_ENROLLMENT_TTL_MINUTES``   minutes a TFA enrolment link is valid (15)
``ACCOUNTS_REPORT_TTL_DAYS``          days a "this was not me" link is valid (30)
``ACCOUNTS_TFA_ISSUER``               issuer shown in authenticator apps
                                      (``Example Portal``)
``ACCOUNTS_WIDGET_LINK_TTL_HOURS``    hours a website-widget (``socketio``)
                                      session stays linked (12)
``ACCOUNTS_LINK_FAILURE_GLOBAL_CAP``  wrong link codes accepted from all chats
                                      together per window before every link
                                      confirmation waits for the next (300)
``ACCOUNTS_LINK_FAILURE_WINDOW_MINUTES`` length of that window (60)
``OUTBOX_RETENTION_DAYS``             days a sent or given-up notification is
                                      kept before it is purged (30)
``ACCOUNTS_INVITATIONS_PER_DAY``      invitations one account may send per 24
                                      hours (20)
``ACCOUNTS_SUPPORT_REQUESTS_PER_SENDER`` anonymous support requests per
                                      conversation per hour (3)
``ACCOUNTS_SUPPORT_REQUESTS_PER_ADDRESS`` anonymous support requests per
                                      contact address per hour (3)
``ACCOUNTS_SUPPORT_REQUESTS_ANONYMOUS_PER_HOUR`` anonymous support requests
                                      from everybody per hour (200)
====================================  ===========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

#: Root of the project (the folder holding ``accounts/``).
PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent

#: Default database file, relative to the project root.
DEFAULT_DB_PATH: Path = PROJECT_ROOT / "var" / "accounts.db"

ENV_DB_URL = "ACCOUNTS_DB_URL"


def require_portal_for_real_mail(environ: Optional[Mapping[str, str]] = None) -> None:
    """Refuse ``MAIL_BACKEND=smtp`` without ``ACCOUNTS_PORTAL_BASE_URL``: real mail must not link to the example portal.

    Raises:
        ValueError: Mail really goes out and the portal's URL is not set.
    """
    env = os.environ if environ is None else environ
    if (env.get("MAIL_BACKEND") or "").strip().lower() == "smtp" and not (env.get("ACCOUNTS_PORTAL_BASE_URL") or "").strip():
        raise ValueError("MAIL_BACKEND=smtp sends real e-mail, whose links point to the customer portal: "
                         "set ACCOUNTS_PORTAL_BASE_URL to the portal's URL (https://...)")


def default_db_url() -> str:
    """Return the default SQLite URL (``var/accounts.db`` under the project root)."""
    return f"sqlite:///{DEFAULT_DB_PATH}"


def database_url(environ: Optional[Mapping[str, str]] = None) -> str:
    """Return the database URL from ``ACCOUNTS_DB_URL`` or the default.

    Args:
        environ: Mapping to read from; defaults to ``os.environ``.

    Returns:
        A SQLAlchemy URL string.
    """
    env = os.environ if environ is None else environ
    return env.get(ENV_DB_URL) or default_db_url()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Tunable rules of the account domain.

    Attributes:
        grace_period_days: Days an account stays in ``closing`` before it is closed.
        invitation_ttl_days: Days an invitation token can be accepted.
        reset_token_ttl_minutes: Minutes a password-reset token can be used.
        reset_rate_limit: Reset requests accepted per address within the window.
        reset_rate_window_minutes: Length of the rate-limit window.
        portal_base_url: Base URL for links sent by e-mail.
        enrollment_base_url: Base URL of the TFA enrolment and "not me" pages
            (None: ``portal_base_url``); see :attr:`enrollment_url_base`.
        code_ttl_minutes: Lifetime of an e-mailed one-time code.
        code_send_limit: Codes e-mailed per account and purpose per code lifetime.
        code_max_attempts: Wrong entries after which one e-mailed code is void.
        failure_threshold: Consecutive failures per account and authenticator
            before each further attempt must wait.
        failure_base_delay_seconds: Wait after the threshold, doubled per failure.
        failure_max_delay_seconds: Cap of that wait.
        step_up_ttl_minutes: Lifetime of a step-up grant.
        channel_link_ttl_days: Lifetime of a channel link.
        enrollment_ttl_minutes: Lifetime of a TFA enrolment link.
        report_ttl_days: Lifetime of a "this was not me" link.
        tfa_issuer: Issuer name in ``otpauth://`` URIs.
        widget_link_ttl_hours: Lifetime of a website-widget (``socketio``) link.
        link_failure_global_cap: Wrong link codes from all chats per window.
        link_failure_window_minutes: Length of that window.
        outbox_retention_days: Days sent or given-up notifications are kept.
        invitations_per_day: Invitations per account per 24 hours.
        support_requests_per_sender: Anonymous support requests per conversation per hour.
        support_requests_per_address: Anonymous support requests per contact address per hour.
        support_requests_anonymous_per_hour: Anonymous support requests from everybody per hour.
    """

    grace_period_days: int = 14
    invitation_ttl_days: int = 7
    reset_token_ttl_minutes: int = 30
    reset_rate_limit: int = 3
    reset_rate_window_minutes: int = 60
    portal_base_url: str = "https://portal.example.com"
    enrollment_base_url: Optional[str] = None
    code_ttl_minutes: int = 10
    code_send_limit: int = 3
    code_max_attempts: int = 5
    failure_threshold: int = 5
    failure_base_delay_seconds: int = 30
    failure_max_delay_seconds: int = 3600
    step_up_ttl_minutes: int = 5
    channel_link_ttl_days: int = 90
    enrollment_ttl_minutes: int = 15
    report_ttl_days: int = 30
    tfa_issuer: str = "Example Portal"
    widget_link_ttl_hours: int = 12
    link_failure_global_cap: int = 300
    link_failure_window_minutes: int = 60
    outbox_retention_days: int = 30
    invitations_per_day: int = 20
    support_requests_per_sender: int = 3
    support_requests_per_address: int = 3
    support_requests_anonymous_per_hour: int = 200

    @property
    def enrollment_url_base(self) -> str:
        """Base URL of the ``/tfa/enroll`` and ``/tfa/not-me`` pages."""
        return (self.enrollment_base_url or self.portal_base_url).rstrip("/")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Build settings from environment variables, falling back to defaults.

        Args:
            environ: Mapping to read from; defaults to ``os.environ``.

        Returns:
            The settings.
        """
        env = os.environ if environ is None else environ
        require_portal_for_real_mail(env)
        d = cls()
        return cls(
            grace_period_days=_int(env, "ACCOUNTS_GRACE_PERIOD_DAYS", d.grace_period_days),
            invitation_ttl_days=_int(
                env, "ACCOUNTS_INVITATION_TTL_DAYS", d.invitation_ttl_days
            ),
            reset_token_ttl_minutes=_int(
                env, "ACCOUNTS_RESET_TOKEN_TTL_MINUTES", d.reset_token_ttl_minutes
            ),
            reset_rate_limit=_int(env, "ACCOUNTS_RESET_RATE_LIMIT", d.reset_rate_limit),
            reset_rate_window_minutes=_int(
                env, "ACCOUNTS_RESET_RATE_WINDOW_MINUTES", d.reset_rate_window_minutes
            ),
            portal_base_url=env.get("ACCOUNTS_PORTAL_BASE_URL") or d.portal_base_url,
            enrollment_base_url=env.get("ACCOUNTS_ENROLLMENT_BASE_URL") or None,
            code_ttl_minutes=_int(env, "ACCOUNTS_CODE_TTL_MINUTES", d.code_ttl_minutes),
            code_send_limit=_int(env, "ACCOUNTS_CODE_SEND_LIMIT", d.code_send_limit),
            failure_threshold=_int(env, "ACCOUNTS_FAILURE_THRESHOLD", d.failure_threshold),
            failure_base_delay_seconds=_int(
                env, "ACCOUNTS_FAILURE_BASE_DELAY_SECONDS", d.failure_base_delay_seconds
            ),
            failure_max_delay_seconds=_int(
                env, "ACCOUNTS_FAILURE_MAX_DELAY_SECONDS", d.failure_max_delay_seconds
            ),
            step_up_ttl_minutes=_int(env, "ACCOUNTS_STEP_UP_TTL_MINUTES", d.step_up_ttl_minutes),
            channel_link_ttl_days=_int(env, "ACCOUNTS_CHANNEL_LINK_TTL_DAYS", d.channel_link_ttl_days),
            enrollment_ttl_minutes=_int(env, "ACCOUNTS_ENROLLMENT_TTL_MINUTES", d.enrollment_ttl_minutes),
            report_ttl_days=_int(env, "ACCOUNTS_REPORT_TTL_DAYS", d.report_ttl_days),
            tfa_issuer=env.get("ACCOUNTS_TFA_ISSUER") or d.tfa_issuer,
            widget_link_ttl_hours=_int(env, "ACCOUNTS_WIDGET_LINK_TTL_HOURS", d.widget_link_ttl_hours),
            link_failure_global_cap=_int(env, "ACCOUNTS_LINK_FAILURE_GLOBAL_CAP", d.link_failure_global_cap),
            link_failure_window_minutes=_int(env, "ACCOUNTS_LINK_FAILURE_WINDOW_MINUTES",
                                             d.link_failure_window_minutes),
            outbox_retention_days=_int(env, "OUTBOX_RETENTION_DAYS", d.outbox_retention_days),
            invitations_per_day=_int(env, "ACCOUNTS_INVITATIONS_PER_DAY", d.invitations_per_day),
            support_requests_per_sender=_int(env, "ACCOUNTS_SUPPORT_REQUESTS_PER_SENDER",
                                             d.support_requests_per_sender),
            support_requests_per_address=_int(env, "ACCOUNTS_SUPPORT_REQUESTS_PER_ADDRESS",
                                              d.support_requests_per_address),
            support_requests_anonymous_per_hour=_int(env, "ACCOUNTS_SUPPORT_REQUESTS_ANONYMOUS_PER_HOUR",
                                                     d.support_requests_anonymous_per_hour),
        )
