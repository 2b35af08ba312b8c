"""The account store as the actions see it: one lazily built set of dependencies.

Nothing connects at import time: the engine is created on the first call,
from ``ACCOUNTS_DB_URL`` (see accounts/settings.py). Domain calls are
synchronous, so actions run them in a worker thread and never block the
action server's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Optional, TypeVar

from accounts.db import make_session_factory
from accounts.deps import Deps
from accounts.settings import Settings

T = TypeVar("T")

_lock = threading.Lock()
_deps: Optional[Deps] = None


def account_deps() -> Deps:
    """The dependencies of the account domain for this process (built once)."""
    global _deps
    with _lock:
        if _deps is None:
            _deps = Deps(session_factory=make_session_factory(), settings=Settings.from_env())
        return _deps


def use_deps(deps: Optional[Deps]) -> None:
    """Replace the process's dependencies (tests hand in their own database)."""
    global _deps
    with _lock:
        _deps = deps


async def call_domain(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a domain function with this process's dependencies in a worker thread."""
    deps = account_deps()
    return await asyncio.to_thread(function, deps, *args, **kwargs)
