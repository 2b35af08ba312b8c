"""Where the conversation log lives, read from the environment when asked.

| variable | default | meaning |
|---|---|---|
| ``TRACKER_DB_URL`` | ``sqlite:///<project root>/var/tracker.db`` | SQLAlchemy URL of the tracker store; ``postgresql://user@host/db`` for PostgreSQL |

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
