"""The memory of handled event ids: a redelivery is refused, the memory stays bounded."""

from __future__ import annotations

from channels.dedup import RecentIds


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_handled_once_within_its_ttl_and_again_after_it():
    clock = FakeClock()
    seen = RecentIds(ttl_seconds=60, clock=clock)
    assert seen.first_time("Ev1")
    clock.now += 59
    assert not seen.first_time("Ev1")
    clock.now += 2
    assert seen.first_time("Ev1")


def test_when_full_the_oldest_ids_are_forgotten_first():
    clock = FakeClock()
    seen = RecentIds(ttl_seconds=60, max_entries=3, clock=clock)
    for key in ("a", "b", "c", "d"):
        clock.now += 1
        assert seen.first_time(key)
    assert len(seen) == 3
    assert "a" not in seen
    assert not seen.first_time("d")
