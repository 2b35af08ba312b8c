"""Account domain of the support assistant: models, rules and operations.

Pure Python on SQLAlchemy: nothing here imports Rasa, Sanic or a chat channel,
and nothing connects to a database at import time. Typical use::

    from accounts.db import make_session_factory
    from accounts.deps import Actor, Deps
    from accounts.settings import Settings
    from accounts import closing

    deps = Deps(session_factory=make_session_factory(), settings=Settings.from_env())
    result = closing.request_closure(deps, Actor(42, "owner@example.com"),
                                     idempotency_key="conv-123:turn-7")

One module per capability: :mod:`accounts.closing`, :mod:`accounts.currency`,
:mod:`accounts.members`, :mod:`accounts.business`,
:mod:`accounts.password_reset`, :mod:`accounts.support_requests`,
:mod:`accounts.step_up`, :mod:`accounts.channel_links`,
:mod:`accounts.tfa_recovery` (second factors in :mod:`accounts.codes`);
demo data in :mod:`accounts.demo`. See ``accounts/README.md``.
"""
