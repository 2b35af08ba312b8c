"""Where the conversation log lives, read from the environment when asked.

| variable | default | meaning |
|---|---|---|
| ``TRACKER_DB_URL`` | ``sqlite:///<project root>/var/tracker.db`` | SQLAlchemy URL of the tracker store; ``postgresql://user@host/db`` for PostgreSQL |
| ``CONVERSATION_RETENTION_DAYS`` | ``180`` | conversations whose last event is older are removed by the scheduler (:mod:`tracking.retention`) |

A relative SQLite path is taken relative to the project root, so the Rasa
server, the console and the commands agree whatever their working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent

#: Environment variable holding the tracker store's database URL.
ENV_DB_URL = "TRACKER_DB_URL"

#: Default database file (git-ignored: ``var/`` and ``*.db`` are in .gitignore).
DEFAULT_DB_PATH: Path = PROJECT_ROOT / "var" / "tracker.db"


def tracker_db_url(environ: Optional[Mapping[str, str]] = None) -> str:
    """Return the tracker store URL from ``TRACKER_DB_URL`` or the default SQLite file.

    Args:
        environ: Mapping to read from; defaults to ``os.environ``.

    Returns:
        A SQLAlchemy URL; relative SQLite paths are made absolute under the project root.
    """
    env = os.environ if environ is None else environ
    url = (env.get(ENV_DB_URL) or "").strip() or f"sqlite:///{DEFAULT_DB_PATH}"
    return absolute_sqlite_url(url)


def absolute_sqlite_url(url: str) -> str:
    """Make the path of a ``sqlite:///relative.db`` URL absolute under the project root."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path = url[len(prefix):]
    if not path or path == ":memory:" or path.startswith("file:") or Path(path).is_absolute():
        return url
    return prefix + str(PROJECT_ROOT / path)


#: Environment variable holding the conversation retention window in days.
ENV_RETENTION_DAYS = "CONVERSATION_RETENTION_DAYS"

#: Days a conversation is kept after its last event unless configured.
DEFAULT_RETENTION_DAYS = 180


def conversation_retention_days(environ: Optional[Mapping[str, str]] = None) -> int:
    """Days a conversation is kept after its last event (``CONVERSATION_RETENTION_DAYS``, 180).

    Raises:
        ValueError: If the variable is not a positive whole number.
    """
    env = os.environ if environ is None else environ
    raw = (env.get(ENV_RETENTION_DAYS) or "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{ENV_RETENTION_DAYS} must be a positive number of days, got {raw!r}")
    return value
