"""The loop shared by the delivery workers (mail dispatcher, helpdesk delivery)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

logger = logging.getLogger(__name__)


def run_rounds(
    name: str,
    one_round: Callable[[], Any],
    empty_report: Callable[[], Any],
    *,
    stop: threading.Event,
    interval: float,
    batch: int,
    peer_unavailable: Callable[[Any], bool],
    log: logging.Logger = logger,
) -> None:
    """Run delivery rounds until ``stop`` is set.

    A full batch is followed by the next round at once; otherwise, or while the
    peer (SMTP server, helpdesk) is unavailable, the loop waits ``interval``
    seconds. A failed round (the database is unreachable, say) is logged and
    retried after the interval, so a passing outage never stops delivery.

    Args:
        name: What runs, for the log (``dispatcher``, ``helpdesk delivery``).
        one_round: Delivers one batch and returns its report (with ``handled``
            and ``summary()``).
        empty_report: The report of a round that failed.
        stop: Set it (e.g. from a signal handler) to end the loop after the current row.
        interval: Seconds between rounds when idle.
        batch: Rows per round.
        peer_unavailable: Whether a report says the peer could not be reached.
        log: Logger of the worker's module.
    """
    while not stop.is_set():
        try:
            report = one_round()
        except Exception:  # noqa: BLE001 - logged; the next round tries again
            log.exception("%s round failed; retrying in %g s", name, interval)
            report = empty_report()
        if report.handled:
            log.info("%s round: %s", name, report.summary())
        if report.handled >= batch and not peer_unavailable(report):
            continue
        stop.wait(interval)
    log.info("%s stopped", name)
