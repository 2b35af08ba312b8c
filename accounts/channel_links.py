"""Linking a chat identity (Slack, Telegram, a website visitor without a token) to an account.

A chat channel knows its own user id (Slack user, Telegram chat, web
session), not who that person is. A link says "this channel user acts as
this member of this account" and is made only with a one-time code e-mailed
to the account.

Rules:

* **Who can be linked.** The address typed must be the **primary e-mail of
  an account** that is not closed and whose member with that address is
  active (its owner). The code goes to that primary address and the link
  acts as that member. Addresses of other members are *not* accepted: the
  issue asks for the code to go to the account's primary e-mail, and a
  member who is not the primary contact signs in through the portal (a
  portal token) instead. Unknown, member-only, closed or malformed-but-
  plausible addresses get the **same answer** (:class:`LinkCodeSent`) and
  nothing is sent, so the chat never reveals which addresses exist. Only a
  syntactically invalid address is refused (``invalid_email``), which says
  nothing about accounts.
* **Mail flooding.** At most ``Settings.code_send_limit`` (3) link codes per
  account per code lifetime (10 minutes); further requests get the same
  answer and send nothing (audited as ``suppressed``).
* **Confirming.** :func:`confirm_link` takes the newest pending code of that
  chat identity: single use, 10 minutes, 5 wrong entries void it. Wrong
  codes are counted per chat identity and on one global counter of all
  chats (:func:`accounts.codes.record_source_failure`: growing delays after
  5, at most ``Settings.link_failure_global_cap`` per window), **never** on
  the account's own counters: a stranger guessing cannot lock the owner out
  of step-up or recovery.
* **A member with TFA** must add a code from the authenticator app: a right
  e-mailed code then only marks the code row ``proved_at`` and answers
  ``app_code_required``; :func:`confirm_link_app_code` checks the app's code
  (±1 step, each step once; wrong codes counted like wrong link codes) and
  links. The link records its factors (``authenticators``); a link made with
  the e-mailed code alone stops identifying anyone once the member turns TFA
  on: a linked chat is never stronger than the factor that linked it.
* **On success** any earlier link of the chat identity is revoked (one
  active link per chat identity, also enforced by a partial unique index),
  the new link lives ``Settings.channel_link_ttl_days`` (90), or
  ``widget_link_ttl_hours`` (12) for the website widget (``socketio``), and
  the primary address is told (``channel_linked``: which channel, when, and
  a single-use "this wasn't me: unlink" link, ``secret_report_link`` to
  ``/tfa/not-me?token=...``, see :func:`accounts.tfa_recovery.report_not_me`).
* **Using.** :func:`find_linked_actor` returns the :class:`Actor` of an
  active, unexpired link whose member is still active, whose account is
  not closed and whose factors are still enough; anything else is None.
* **Listing and revoking.** A member sees and revokes their own links;
  owners see and revoke every link of the account. A link the actor may not
  see is ``link_not_found`` (same as a missing one).
* **Staff.** A support lead (the review console) sees every link of an
  account, active or not (:func:`account_links`), and revokes an active one
  (:func:`revoke_link_by_staff`), audited as ``channel_link_revoked`` with the
  lead as actor (``console:<lead e-mail>``). Staff never link anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional, Tuple, Union

import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts import codes
from accounts.db import lock_account, lock_name, read_session
from accounts.deps import Actor, Deps
from accounts.guards import find_member, load_locked_account
from accounts.models import (
    CHANNEL_LENGTH,
    CHANNEL_USER_ID_LENGTH,
    Account,
    ChannelLink,
    Member,
    SecurityReportToken,
    TfaEnrolment,
    VerificationCode,
)
from accounts.operation import OperationContext, run_operation
from accounts.results import (
    ChannelLinked,
    ChannelLinks,
    LinkCodeSent,
    LinkRef,
    LinkRevoked,
    Reason,
    Refused,
    Result,
)
from accounts.security import hash_secret, is_valid_email, normalize_code, normalize_email
from accounts.step_up import enabled_enrolment
from accounts.tfa_recovery import report_link

PURPOSE = "channel_link"
#: The website widget's channel: its links live hours, not days.
WIDGET_CHANNEL = "socketio"
EMAIL_ONLY, EMAIL_AND_APP = "email_code", "email_code+totp"
_CHANNEL_RE = re.compile(r"^[a-z0-9_.-]{1,%d}$" % CHANNEL_LENGTH)


def _check_identity(channel: str, channel_user_id: str) -> Optional[Refused]:
    if not _CHANNEL_RE.match(channel):
        return Refused(reason=Reason.INVALID_REQUEST, details={"field": "channel"})
    if not channel_user_id or len(channel_user_id) > CHANNEL_USER_ID_LENGTH:
        return Refused(reason=Reason.INVALID_REQUEST, details={"field": "channel_user_id",
                                                               "max_length": CHANNEL_USER_ID_LENGTH})
    return None


def failure_source(channel: str, channel_user_id: str) -> str:
    """The failure-counter key of a chat identity (its user id only as a SHA-256)."""
    return f"{PURPOSE}:{channel}:{hash_secret(channel_user_id)}"


def link_ttl(settings: object, channel: str) -> timedelta:
    """How long a new link of ``channel`` lives: hours for the widget, days elsewhere."""
    if channel == WIDGET_CHANNEL:
        return timedelta(hours=settings.widget_link_ttl_hours)  # type: ignore[attr-defined]
    return timedelta(days=settings.channel_link_ttl_days)  # type: ignore[attr-defined]


def _identity_lock(session: Session, channel: str, channel_user_id: str) -> None:
    lock_name(session, f"channel_link:{channel}:{hash_secret(channel_user_id)}")


def _linkable_owner(ctx: OperationContext, address: str) -> Optional[Member]:
    """The active member holding the primary address of a not-closed account, locked; else None."""
    account_id = ctx.session.execute(
        sa.select(Account.id).where(Account.primary_email == address)
    ).scalar_one_or_none()
    if account_id is None:
        return None
    account = lock_account(ctx.session, account_id)
    if account is None or account.status == "closed":
        return None
    member = find_member(ctx.session, account_id, address)
    if member is None or member.status != "active":
        return None
    return member


def request_link(
    deps: Deps, *, channel: str, channel_user_id: str, email: str, idempotency_key: str
) -> Result:
    """E-mail a link code to ``email`` if it is an account's primary address; answer the same either way.

    Args:
        deps: Injected dependencies.
        channel: Channel name (``slack``, ``telegram``, ``web``...; lower case).
        channel_user_id: The channel's id of the person (verified by the channel).
        email: Address typed by the person.
        idempotency_key: Caller's key.

    Returns:
        :class:`LinkCodeSent`, or :class:`Refused` with ``invalid_email`` or
        ``invalid_request`` (details: ``field``).
    """
    channel = channel.strip().lower()
    address = normalize_email(email)

    def body(ctx: OperationContext) -> Result:
        refused = _check_identity(channel, channel_user_id)
        if refused:
            return refused
        if not is_valid_email(address):
            return Refused(reason=Reason.INVALID_EMAIL)
        _identity_lock(ctx.session, channel, channel_user_id)
        member = _linkable_owner(ctx, address)
        answer = LinkCodeSent(expires_in_minutes=deps.settings.code_ttl_minutes)
        if member is None:
            ctx.audit(account_id=None, action="channel_link_requested",
                      details={"channel": channel, "email_sha256": hash_secret(address), "address_known": False})
            return answer
        ctx.account_id = member.account_id
        if not codes.send_allowed(ctx, member.account_id, PURPOSE):
            ctx.audit(account_id=member.account_id, action="channel_link_requested",
                      details={"channel": channel, "address_known": True, "suppressed": "send_limit"})
            return answer
        codes.issue_email_code(
            ctx, account_id=member.account_id, member_id=member.id, recipient_email=address,
            purpose=PURPOSE, channel=channel, channel_user_id=channel_user_id,
        )
        ctx.audit(account_id=member.account_id, action="channel_link_requested",
                  details={"channel": channel, "address_known": True})
        return answer

    return run_operation(
        deps, operation="request_link", idempotency_key=idempotency_key, actor=None,
        actor_label=f"channel:{channel}", params={"channel": channel,
                                                  "channel_user_id_sha256": hash_secret(channel_user_id),
                                                  "email": address},
        body=body,
    )


def _make_link(ctx: OperationContext, account: Account, member: Member, row: VerificationCode, *,
               channel: str, channel_user_id: str, authenticators: str) -> ChannelLinked:
    """Replace the identity's earlier link, store the new one, tell the primary address."""
    settings = ctx.deps.settings
    row.used_at = ctx.now
    replaced = list(ctx.session.execute(
        sa.select(ChannelLink)
        .where(ChannelLink.channel == channel, ChannelLink.channel_user_id == channel_user_id,
               ChannelLink.revoked_at.is_(None))
        .with_for_update()
    ).scalars())
    for old in replaced:
        old.revoked_at = ctx.now
    ctx.session.flush()
    expires_at = ctx.now + link_ttl(settings, channel)
    link = ChannelLink(channel=channel, channel_user_id=channel_user_id, account_id=account.id,
                       member_id=member.id, member_email=member.email, created_at=ctx.now,
                       expires_at=expires_at, authenticators=authenticators)
    ctx.session.add(link)
    ctx.session.flush()
    report_token = ctx.deps.tokens()
    ctx.session.add(SecurityReportToken(
        account_id=account.id, recipient_email=account.primary_email, event="channel_linked",
        token_hash=hash_secret(report_token), created_at=ctx.now, channel_link_id=link.id,
        expires_at=ctx.now + timedelta(days=settings.report_ttl_days),
    ))
    ctx.notify(account_id=account.id, recipient_email=account.primary_email, kind="channel_linked",
               payload={"channel": channel, "member_email": member.email, "linked_at": ctx.now,
                        "expires_at": expires_at, "with_app": authenticators == EMAIL_AND_APP,
                        "secret_report_link": report_link(settings.enrollment_url_base, report_token)})
    ctx.audit(account_id=account.id, action="channel_linked",
              details={"link_id": link.id, "channel": channel, "member_email": member.email,
                       "verification_code_id": row.id, "replaced_link_ids": [o.id for o in replaced],
                       "authenticators": authenticators, "expires_at": expires_at})
    return ChannelLinked(link_id=link.id, channel=channel, account_id=account.id,
                         member_email=member.email, expires_at=expires_at)


def _pending_subject(ctx: OperationContext, channel: str, channel_user_id: str
                     ) -> Union[Tuple[Account, Member, Optional[VerificationCode]], Refused]:
    """Lock the account of the identity's newest pending code (account first), then the code."""
    row = codes.pending_code(ctx, purpose=PURPOSE, channel=channel, channel_user_id=channel_user_id,
                             lock=False)
    if row is None:
        return Refused(reason=Reason.NO_CODE_PENDING)
    ctx.account_id = row.account_id
    account = load_locked_account(ctx.session, row.account_id)
    if isinstance(account, Refused):
        return account
    row = codes.pending_code(ctx, purpose=PURPOSE, channel=channel, channel_user_id=channel_user_id)
    if row is None or row.account_id != account.id:
        return Refused(reason=Reason.NO_CODE_PENDING)
    if account.status == "closed":
        return Refused(reason=Reason.ACCOUNT_CLOSED)
    member = ctx.session.get(Member, row.member_id, populate_existing=True)
    if member is None or member.status != "active":
        return Refused(reason=Reason.NOT_PERMITTED, details={"required_roles": [], "role": None})
    return account, member, row


def _locked_pending_subject(ctx: OperationContext, channel: str, channel_user_id: str
                            ) -> Union[Tuple[Account, Member, Optional[VerificationCode]], Refused]:
    """The chat identity checked and locked, then its pending (account, member, code row), or a refusal."""
    refused = _check_identity(channel, channel_user_id)
    if refused:
        return refused
    _identity_lock(ctx.session, channel, channel_user_id)
    return _pending_subject(ctx, channel, channel_user_id)


def confirm_link(deps: Deps, *, channel: str, channel_user_id: str, code: str, idempotency_key: str) -> Result:
    """Check the e-mailed code of this chat identity and link it to the account's primary member.

    Args:
        deps: Injected dependencies.
        channel: Channel name, as in :func:`request_link`.
        channel_user_id: The channel's id of the person.
        code: As typed.
        idempotency_key: Caller's key.

    Returns:
        :class:`ChannelLinked`, or :class:`Refused` with ``app_code_required``
        (right code, the member has TFA: call :func:`confirm_link_app_code`),
        ``no_code_pending``, ``code_expired``, ``code_invalid`` (details
        ``attempts_left``, ``retry_after_seconds`` once delays apply),
        ``too_many_attempts`` (``retry_after_seconds``), ``account_closed``,
        ``not_permitted`` (the member was disabled meanwhile) or
        ``invalid_request``.
    """
    channel = channel.strip().lower()
    source = failure_source(channel, channel_user_id)

    def body(ctx: OperationContext) -> Result:
        subject = _locked_pending_subject(ctx, channel, channel_user_id)
        if isinstance(subject, Refused):
            return subject
        account, member, row = subject
        if row.proved_at is not None:  # the e-mailed code was already right: the app's code is due
            return Refused(reason=Reason.APP_CODE_REQUIRED)
        refused = codes.source_throttle(ctx, source) or codes.check_email_code(
            ctx, row, code, account_id=account.id, source=source, mark_used=False)
        if refused:
            return refused
        if enabled_enrolment(ctx, member.id) is not None:
            row.proved_at = ctx.now
            return codes.refuse_and_keep(ctx, Refused(reason=Reason.APP_CODE_REQUIRED), account_id=account.id,
                                         details={"verification_code_id": row.id, "channel": channel})
        return _make_link(ctx, account, member, row, channel=channel, channel_user_id=channel_user_id,
                          authenticators=EMAIL_ONLY)

    return run_operation(
        deps, operation="confirm_link", idempotency_key=idempotency_key, actor=None,
        actor_label=f"channel:{channel}",
        params={"channel": channel, "channel_user_id_sha256": hash_secret(channel_user_id)},
        body=body,
    )


def confirm_link_app_code(deps: Deps, *, channel: str, channel_user_id: str, code: str,
                          idempotency_key: str) -> Result:
    """Second step for a member with TFA: check the authenticator app's code and link.

    Args:
        deps: Injected dependencies.
        channel: Channel name, as in :func:`request_link`.
        channel_user_id: The channel's id of the person.
        code: The app's code, as typed.
        idempotency_key: Caller's key.

    Returns:
        :class:`ChannelLinked` (factors ``email_code+totp``), or :class:`Refused`
        with ``no_code_pending`` (no proved link code), ``code_expired``,
        ``code_invalid``, ``code_used`` (that app step was already used),
        ``too_many_attempts``, ``account_closed``, ``not_permitted`` or
        ``invalid_request``.
    """
    channel = channel.strip().lower()
    source = failure_source(channel, channel_user_id)

    def body(ctx: OperationContext) -> Result:
        subject = _locked_pending_subject(ctx, channel, channel_user_id)
        if isinstance(subject, Refused):
            return subject
        account, member, row = subject
        if row.proved_at is None:
            return Refused(reason=Reason.NO_CODE_PENDING)
        if ctx.now >= row.expires_at:
            return Refused(reason=Reason.CODE_EXPIRED, details={"expired_at": row.expires_at})
        enrolment = enabled_enrolment(ctx, member.id)
        if enrolment is None:  # TFA was turned off meanwhile: the e-mailed code was enough
            return _make_link(ctx, account, member, row, channel=channel, channel_user_id=channel_user_id,
                              authenticators=EMAIL_ONLY)
        refused = codes.source_throttle(ctx, source)
        if refused:
            return refused
        step = codes.matching_step(enrolment.secret, code, ctx.now)
        if step is None:
            row.attempts = (row.attempts or 0) + 1
            left = max(0, deps.settings.code_max_attempts - row.attempts)
            if left == 0:
                row.revoked_at = ctx.now
            counter = codes.record_source_failure(ctx, source)
            refused = codes.failure_refusal(ctx, Reason.CODE_INVALID, counter, attempts_left=left)
            return codes.refuse_and_keep(ctx, refused, account_id=account.id,
                                         details={"verification_code_id": row.id, "authenticator": "totp",
                                                  "channel": channel})
        if not codes.accept_step(ctx, enrolment.id, step):
            return Refused(reason=Reason.CODE_USED)
        codes.record_source_success(ctx, source)
        return _make_link(ctx, account, member, row, channel=channel, channel_user_id=channel_user_id,
                          authenticators=EMAIL_AND_APP)

    return run_operation(
        deps, operation="confirm_link_app_code", idempotency_key=idempotency_key, actor=None,
        actor_label=f"channel:{channel}",
        params={"channel": channel, "channel_user_id_sha256": hash_secret(channel_user_id),
                "code_sha256": hash_secret(normalize_code(code))},
        body=body,
    )


def revoke_links_of_account(ctx: OperationContext, account_id: int) -> List[int]:
    """Revoke every active link of an account now (a "this wasn't me" report); return their ids."""
    links = list(ctx.session.execute(
        sa.select(ChannelLink).where(ChannelLink.account_id == account_id, ChannelLink.revoked_at.is_(None))
        .with_for_update()
    ).scalars())
    for link in links:
        link.revoked_at = ctx.now
    return [link.id for link in links]


def _visible_links(session: Session, actor: Actor, member: Member, now: object, *, lock: bool = False) -> sa.Select:
    stmt = sa.select(ChannelLink).where(
        ChannelLink.account_id == actor.account_id,
        ChannelLink.revoked_at.is_(None),
        ChannelLink.expires_at > now,
    )
    if member.role != "owner":
        stmt = stmt.where(ChannelLink.member_id == member.id)
    return stmt.with_for_update() if lock else stmt


def list_links(deps: Deps, actor: Actor) -> Result:
    """List the active links the actor may see (read-only).

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.

    Returns:
        :class:`ChannelLinks` (oldest first), or ``Refused(not_permitted)``
        if the actor is not an active member.
    """
    now = deps.now()
    with read_session(deps.session_factory) as session:
        member = find_member(session, actor.account_id, actor.member_email, lock=False)
        if member is None or member.status != "active":
            return Refused(reason=Reason.NOT_PERMITTED, details={"required_roles": [], "role": None})
        rows = session.execute(_visible_links(session, actor, member, now).order_by(ChannelLink.id)).scalars()
        return ChannelLinks(links=tuple(
            LinkRef(link_id=r.id, channel=r.channel, channel_user_id=r.channel_user_id,
                    member_email=r.member_email, created_at=r.created_at, expires_at=r.expires_at)
            for r in rows
        ))


def revoke_link(deps: Deps, actor: Actor, link_id: int, *, idempotency_key: str) -> Result:
    """Revoke one link the actor may see.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        link_id: From :func:`list_links` or :class:`ChannelLinked`.
        idempotency_key: Caller's key.

    Returns:
        :class:`LinkRevoked`, or :class:`Refused` with ``link_not_found``
        (missing, revoked, expired or not visible to the actor),
        ``account_not_found`` or ``not_permitted``.
    """

    def body(ctx: OperationContext) -> Result:
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        member = find_member(ctx.session, actor.account_id, actor.member_email)
        if member is None or member.status != "active":
            return Refused(reason=Reason.NOT_PERMITTED, details={"required_roles": [], "role": None})
        link = ctx.session.execute(
            _visible_links(ctx.session, actor, member, ctx.now, lock=True).where(ChannelLink.id == link_id)
        ).scalar_one_or_none()
        if link is None:
            return Refused(reason=Reason.LINK_NOT_FOUND, details={"link_id": link_id})
        link.revoked_at = ctx.now
        ctx.audit(account_id=actor.account_id, action="channel_link_revoked",
                  details={"link_id": link.id, "channel": link.channel, "member_email": link.member_email})
        return LinkRevoked(link_id=link.id)

    return run_operation(
        deps, operation="revoke_link", idempotency_key=idempotency_key, actor=actor,
        params={"link_id": link_id}, body=body,
    )


#: Link states shown to staff: usable, revoked, or past ``expires_at``.
LINK_ACTIVE, LINK_REVOKED, LINK_EXPIRED = "active", "revoked", "expired"
#: The largest id an integer primary key holds (PostgreSQL ``integer``); a larger number names no row.
MAX_ROW_ID = 2 ** 31 - 1


@dataclass(frozen=True)
class StaffLinkView:
    """One link of an account as a support lead sees it."""

    link_id: int
    channel: str
    channel_user_id: str
    member_email: str
    created_at: datetime
    expires_at: datetime
    revoked_at: Optional[datetime]
    authenticators: str
    state: str
    #: Why an active link identifies nobody now (member disabled, account closed, made without the app
    #: for a member who has TFA on), else None: :func:`find_linked_actor` would ignore it.
    dormant_because: Optional[str] = None


@dataclass(frozen=True)
class AccountLinksView:
    """Every link of one account (newest first), for the review console."""

    account_id: int
    primary_email: str
    account_status: str
    links: Tuple[StaffLinkView, ...]


def _link_state(link: ChannelLink, now: datetime) -> str:
    if link.revoked_at is not None:
        return LINK_REVOKED
    return LINK_ACTIVE if link.expires_at > now else LINK_EXPIRED


def _dormant_because(session: Session, account: Account, link: ChannelLink) -> Optional[str]:
    """Why an active link acts for nobody now (the conditions of :func:`find_linked_actor`), else None."""
    if account.status == "closed":
        return "account closed"
    member = session.get(Member, link.member_id)
    if member is None or member.status != "active":
        return "member not active"
    if link.authenticators != EMAIL_AND_APP and session.execute(sa.select(sa.exists().where(
            TfaEnrolment.member_id == member.id, TfaEnrolment.enabled.is_(True)))).scalar():
        return "made without the app; the member has turned TFA on"
    return None


def account_links(deps: Deps, account: str) -> Union[AccountLinksView, Refused]:
    """Every chat link of an account, active or not, for staff (read-only).

    Args:
        deps: Injected dependencies.
        account: The account's id or its primary e-mail, as a lead typed it.

    Returns:
        :class:`AccountLinksView`, or ``Refused(account_not_found)`` (details:
        ``account``, what was looked for).
    """
    wanted = account.strip()
    now = deps.now()
    with read_session(deps.session_factory) as session:
        if wanted.isdigit():
            found = session.get(Account, int(wanted)) if len(wanted) <= 10 and 0 < int(wanted) <= MAX_ROW_ID else None
        else:
            found = session.execute(
                sa.select(Account).where(Account.primary_email == normalize_email(wanted))
            ).scalar_one_or_none()
        if found is None:
            return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account": wanted})
        rows = session.execute(
            sa.select(ChannelLink).where(ChannelLink.account_id == found.id).order_by(ChannelLink.id.desc())
        ).scalars()
        links = []
        for r in rows:
            state = _link_state(r, now)
            links.append(StaffLinkView(
                link_id=r.id, channel=r.channel, channel_user_id=r.channel_user_id, member_email=r.member_email,
                created_at=r.created_at, expires_at=r.expires_at, revoked_at=r.revoked_at,
                authenticators=r.authenticators, state=state,
                dormant_because=_dormant_because(session, found, r) if state == LINK_ACTIVE else None))
        return AccountLinksView(account_id=found.id, primary_email=found.primary_email,
                                account_status=found.status, links=tuple(links))


def revoke_link_by_staff(deps: Deps, link_id: int, *, staff: str, idempotency_key: str) -> Result:
    """Revoke an active link of any account on behalf of a support lead (audited with the lead as actor).

    Args:
        deps: Injected dependencies.
        link_id: The link, from :func:`account_links`.
        staff: Who revokes, as written in the audit log (``console:<lead e-mail>``).
        idempotency_key: Caller's key (a repeated form submission replays the result).

    Returns:
        :class:`LinkRevoked`, or ``Refused(link_not_found)`` (missing, already
        revoked or expired; details ``link_id``).
    """

    def body(ctx: OperationContext) -> Result:
        if not 0 < link_id <= MAX_ROW_ID:
            return Refused(reason=Reason.LINK_NOT_FOUND, details={"link_id": link_id})
        account_id = ctx.session.execute(
            sa.select(ChannelLink.account_id).where(ChannelLink.id == link_id)
        ).scalar_one_or_none()
        if account_id is None:
            return Refused(reason=Reason.LINK_NOT_FOUND, details={"link_id": link_id})
        ctx.account_id = account_id
        lock_account(ctx.session, account_id)  # account first, then the link: the order every operation keeps
        link = ctx.session.execute(
            sa.select(ChannelLink).where(ChannelLink.id == link_id, ChannelLink.revoked_at.is_(None),
                                         ChannelLink.expires_at > ctx.now)
            .with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if link is None:
            return Refused(reason=Reason.LINK_NOT_FOUND, details={"link_id": link_id})
        link.revoked_at = ctx.now
        ctx.audit(account_id=account_id, action="channel_link_revoked",
                  details={"link_id": link.id, "channel": link.channel, "member_email": link.member_email,
                           "by": "staff"})
        return LinkRevoked(link_id=link.id)

    return run_operation(
        deps, operation="revoke_link_by_staff", idempotency_key=idempotency_key, actor=None,
        actor_label=staff, params={"link_id": link_id, "staff": staff}, body=body,
    )


def find_linked_actor(deps: Deps, channel: str, channel_user_id: str) -> Optional[Actor]:
    """Return who a chat identity acts as, or None (no, revoked or expired link; member or account
    gone; a link made without the app for a member who has TFA on now).

    Args:
        deps: Injected dependencies.
        channel: Channel name.
        channel_user_id: The channel's id of the person.

    Returns:
        The :class:`Actor` or None.
    """
    channel = channel.strip().lower()
    now = deps.now()
    with read_session(deps.session_factory) as session:
        row = session.execute(
            sa.select(ChannelLink.account_id, Member.email)
            .join(Member, Member.id == ChannelLink.member_id)
            .join(Account, Account.id == ChannelLink.account_id)
            .where(
                ChannelLink.channel == channel,
                ChannelLink.channel_user_id == channel_user_id,
                ChannelLink.revoked_at.is_(None),
                ChannelLink.expires_at > now,
                Member.status == "active",
                Account.status != "closed",
                sa.or_(ChannelLink.authenticators == EMAIL_AND_APP, ~sa.exists().where(
                    TfaEnrolment.member_id == Member.id, TfaEnrolment.enabled.is_(True))),
            )
        ).first()
        return None if row is None else Actor(account_id=row.account_id, member_email=row.email)


def links_of_account(session: Session, account_id: int) -> List[ChannelLink]:
    """Active links of an account (for support tooling and tests)."""
    return list(session.execute(
        sa.select(ChannelLink).where(ChannelLink.account_id == account_id, ChannelLink.revoked_at.is_(None))
        .order_by(ChannelLink.id)
    ).scalars())


__all__ = [
    "request_link", "confirm_link", "confirm_link_app_code", "list_links", "revoke_link", "find_linked_actor",
    "links_of_account", "revoke_links_of_account", "failure_source", "link_ttl", "account_links",
    "revoke_link_by_staff", "AccountLinksView", "StaffLinkView",
]
