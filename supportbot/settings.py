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
| ``LOG_LEVEL`` | ``INFO`` | log level of all processes (never DEBUG in production: Rasa logs message text at DEBUG) |
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
