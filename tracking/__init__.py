"""The conversation log: the SQL tracker store and the review index built beside it.

* :mod:`tracking.store` - the tracker store Rasa uses (``endpoints.yml``); the only
  place where conversation events are written.
* :mod:`tracking.conventions` - what counts as a fallback, a hand-off, a support
  request, an operation, a failed action and a verified customer; helpers for
  custom actions to mark operations and support requests.
* :mod:`tracking.summary` - folds events into a per-conversation summary (pure Python).
* :mod:`tracking.schema`, :mod:`tracking.writer`, :mod:`tracking.rebuild` - the
  tables, the incremental writer and the rebuild command
  (``python -m tracking rebuild-index``).

Importing this package (or :mod:`tracking.conventions`) imports neither Rasa nor
SQLAlchemy, so the action server can use the conventions cheaply.
"""
