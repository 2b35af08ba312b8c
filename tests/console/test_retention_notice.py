"""The conversation list tells support leads how long conversations are kept."""

from __future__ import annotations

import re

from console import queries, views
from console.app import prepare_database
from console.settings import load_console_settings
from tracking.db import make_engine, read_transaction


def test_the_conversation_list_states_the_configured_retention_window(tmp_path) -> None:
    settings = load_console_settings({"CONVERSATION_RETENTION_DAYS": "30",
                                      "TRACKER_DB_URL": f"sqlite:///{tmp_path / 't.db'}"})
    engine = make_engine(settings.db_url)
    try:
        prepare_database(engine)
        with read_transaction(engine) as conn:
            result = queries.list_conversations(conn, queries.Filters())
        page = str(views.conversations_page(result=result, filters=queries.Filters(), errors=[],
                                            sort=queries.DEFAULT_SORT, choices={"channels": [], "intents": [],
                                                                               "tags": [], "operations": []},
                                            email="lead@example.com", csrf="x",
                                            retention_days=settings.retention_days))
    finally:
        engine.dispose()
    notice = re.search(r'<p class="lede" id="retention">(.*?)</p>', page)
    assert notice is not None
    assert re.sub(r"<[^>]+>", "", notice.group(1)).startswith("Conversations are kept for 30 days after their last")


def test_the_default_window_is_180_days() -> None:
    assert load_console_settings({}).retention_days == 180
