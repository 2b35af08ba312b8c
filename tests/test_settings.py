"""Settings: safe defaults, and the HTTP API never listens beyond loopback."""

from supportbot.runner import process_specs
from supportbot.settings import load_settings

import pytest


def test_defaults_listen_on_loopback_only():
    settings = load_settings({})
    assert (settings.rasa_host, settings.action_host, settings.web_host) == ("127.0.0.1",) * 3
    assert (settings.rasa_port, settings.action_port, settings.web_port) == (5005, 5055, 8080)
    assert not settings.enable_api
    rasa_argv = process_specs(settings)[1].argv
    assert "--enable-api" not in rasa_argv


def test_enabling_the_api_binds_rasa_to_loopback_even_if_asked_for_all_interfaces():
    settings = load_settings({"RASA_ENABLE_API": "1", "RASA_API_TOKEN": "t0ken", "RASA_HOST": "0.0.0.0"})
    rasa_argv = process_specs(settings)[1].argv
    assert "--enable-api" in rasa_argv
    assert rasa_argv[rasa_argv.index("--interface") + 1] == "127.0.0.1"


def test_enabling_the_api_without_a_token_is_refused():
    with pytest.raises(SystemExit, match="RASA_API_TOKEN"):
        process_specs(load_settings({"RASA_ENABLE_API": "true"}))


def test_ports_come_from_the_environment():
    settings = load_settings({"RASA_PORT": "6005", "ACTION_PORT": "6055", "WEB_PORT": "9090"})
    assert settings.action_endpoint_url == "http://127.0.0.1:6055/webhook"
    assert settings.rasa_url == "http://127.0.0.1:6005"


def test_each_process_gets_only_the_secrets_it_uses(monkeypatch):
    monkeypatch.setenv("PORTAL_TOKEN_SECRET", "p" * 48)
    monkeypatch.setenv("ACTION_CLAIMS_KEY", "k" * 48)
    secrets_of = {spec.name: {name for name in ("PORTAL_TOKEN_SECRET", "ACTION_CLAIMS_KEY") if name in spec.env}
                  for spec in process_specs(load_settings({}))}
    assert secrets_of == {
        "actions": {"ACTION_CLAIMS_KEY"},
        "rasa": {"PORTAL_TOKEN_SECRET", "ACTION_CLAIMS_KEY"},
        "chat page": {"PORTAL_TOKEN_SECRET"},
        "review console": set(), "mail dispatcher": set(), "helpdesk delivery": set(), "scheduler": set(),
    }
