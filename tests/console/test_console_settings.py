"""The console's settings and its place among the assistant's processes."""

from __future__ import annotations

import pytest

from console.settings import load_console_settings
from supportbot.runner import process_specs
from supportbot.settings import PROJECT_ROOT, load_settings
from tracking.settings import tracker_db_url


def test_defaults_keep_the_console_and_its_data_on_this_machine():
    settings = load_console_settings({})
    assert (settings.host, settings.port, settings.local_url) == ("127.0.0.1", 8081, "http://127.0.0.1:8081")
    assert settings.db_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"
    assert not settings.secure_cookies


def test_a_relative_sqlite_path_is_under_the_project_and_postgresql_urls_pass_through():
    assert tracker_db_url({"TRACKER_DB_URL": "sqlite:///var/other.db"}) == f"sqlite:///{PROJECT_ROOT / 'var' / 'other.db'}"
    url = "postgresql://review@db.internal:5432/assistant"
    assert tracker_db_url({"TRACKER_DB_URL": url}) == url


def test_nonsense_settings_are_refused():
    with pytest.raises(ValueError, match="CONSOLE_LOW_CONFIDENCE"):
        load_console_settings({"CONSOLE_LOW_CONFIDENCE": "7"})


def test_the_runner_starts_the_console_and_waits_for_its_health_check(monkeypatch):
    monkeypatch.setenv("CONSOLE_PORT", "9181")
    console = next(spec for spec in process_specs(load_settings({})) if spec.name == "review console")
    assert console.argv[-3:] == ["-m", "console", "serve"]
    assert console.health_url == "http://127.0.0.1:9181/healthz"


def test_the_helpdesk_webhook_token_is_off_by_default_never_shown_and_not_guessable():
    assert load_console_settings({}).webhook_token == ""
    settings = load_console_settings({"HELPDESK_WEBHOOK_TOKEN": "w" * 32, "ACCOUNTS_DB_URL": "sqlite:///x.db"})
    assert settings.webhook_token == "w" * 32 and "w" * 32 not in repr(settings)
    assert settings.accounts_db_url == "sqlite:///x.db"
    with pytest.raises(ValueError, match="HELPDESK_WEBHOOK_TOKEN"):
        load_console_settings({"HELPDESK_WEBHOOK_TOKEN": "short"})
