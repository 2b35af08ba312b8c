"""The helpdesk webhook's token check and the support-request rows, without a server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from accounts.helpdesk_dispatch import SupportRequestDelivery
from console.support import bearer_matches, request_rows

TOKEN = "w" * 32
AT = datetime(2024, 7, 1, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("header, expected", [
    (f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (f"Bearer  {TOKEN} ", True),
    (None, False), ("", False), (f"Basic {TOKEN}", False), (TOKEN, False), (f"Bearer {TOKEN}x", False),
    (f"Bearer {TOKEN[:-1]}", False), ("Bearer ", False), ("Bearer wéé", False),
])
def test_only_the_exact_bearer_token_is_accepted(header, expected):
    assert bearer_matches(header, TOKEN) is expected


def test_no_configured_token_accepts_nothing():
    assert not bearer_matches("Bearer ", "")


def row(**changes) -> SupportRequestDelivery:
    base = dict(id=7, reference="SR-000007", status="open", reason="customer_request", channel="rest",
                created_at=AT, delivery_status="failed", attempts=1, next_attempt_at=None,
                last_error='POST /tickets: HTTP 400 <script>alert("x")</script>', delivered_at=None,
                helpdesk_ticket_id=None, helpdesk_url=None, messages_pending=0, messages_failed=0,
                released_at=None, released_by=None, conversation="anon-abc")
    base.update(changes)
    return SupportRequestDelivery(**base)


def test_a_failed_request_offers_retry_and_release_and_escapes_the_helpdesk_answer():
    html = request_rows([row()], csrf="tok", back="/support-requests")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Retry delivery" in html and "Give back to the assistant" in html
    assert 'href="/conversation?id=anon-abc"' in html and "2024-07-01 09:30 UTC" in html


def test_a_delivered_released_request_offers_neither_and_links_only_http_tickets():
    html = request_rows([row(delivery_status="delivered", last_error=None, helpdesk_ticket_id="1001",
                             helpdesk_url="javascript:alert(1)", released_at=AT, released_by="helpdesk")],
                        csrf="tok", back="/support-requests")
    assert "Retry delivery" not in html and "Give back" not in html
    assert "javascript:" not in html and ">1001<" in html and "by helpdesk" in html
