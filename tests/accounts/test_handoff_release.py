"""Releasing a handed-over conversation (accounts.support_requests.release_support_request).

Each test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.helpdesk_dispatch import list_support_requests
from accounts.models import SupportRequest
from accounts.support_requests import (
    UnknownSupportRequest,
    is_released,
    parse_reference,
    release_support_request,
)
from tests.accounts.conftest import World
from tests.accounts.test_helpdesk import open_request


def test_release_is_stored_audited_once_and_idempotent(world: World):
    ident = open_request(world)
    assert not is_released(world.deps, ident)

    first = release_support_request(world.deps, ident, released_by="console:lead@example.com")
    assert not first.already_released and first.reference == f"SR-{ident:06d}"
    assert is_released(world.deps, ident)
    stored = world.get(SupportRequest, ident)
    assert stored.released_by == "console:lead@example.com"
    assert stored.released_at == world.clock()
    assert stored.status == "open"

    world.clock.now += timedelta(minutes=5)
    again = release_support_request(world.deps, ident, released_by="helpdesk", resolve=True,
                                    via="helpdesk_webhook")
    assert again.already_released
    assert (again.released_by, again.released_at) == ("console:lead@example.com", first.released_at)
    assert again.status == "resolved"
    audits = world.audits(action="support_request_released")
    assert len(audits) == 1
    assert audits[0].actor == "console:lead@example.com"
    assert audits[0].details["support_request_id"] == ident


def test_unknown_request_is_refused_and_nothing_is_written(world: World):
    open_request(world)
    with pytest.raises(UnknownSupportRequest):
        release_support_request(world.deps, 999999, released_by="helpdesk")
    assert world.audits(action="support_request_released") == []
    assert not is_released(world.deps, 999999)


def test_leads_list_shows_release_and_conversation_and_filters(world: World):
    first, second = open_request(world, 1), open_request(world, 2)
    release_support_request(world.deps, first, released_by="helpdesk")
    rows = {r.id: r for r in list_support_requests(world.deps)}
    assert rows[first].released_by == "helpdesk" and rows[first].conversation == "conv-1"
    assert rows[second].released_at is None and rows[second].conversation == "conv-2"
    assert [r.id for r in list_support_requests(world.deps, conversation="conv-2")] == [second]
    assert list_support_requests(world.deps, delivery_status="failed") == []
    assert {r.id for r in list_support_requests(world.deps, delivery_status="pending")} == {first, second}


@pytest.mark.parametrize("value, expected", [
    (42, 42), ("42", 42), ("SR-000042", 42), ("sr-42", 42), (" SR-000042 ", 42),
    (0, None), (-1, None), ("SR-", None), ("42; drop", None), (True, None), (None, None), (4.2, None),
])
def test_references_are_parsed_strictly(value, expected):
    assert parse_reference(value) == expected
