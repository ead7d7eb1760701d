"""The per-address request budget: a fixed window, a bounded table of addresses."""

from __future__ import annotations

from src.rate_limit import ClientRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_its_limit_then_the_seconds_left_in_its_window() -> None:
    clock = Clock()
    limiter = ClientRateLimit(window_seconds=60, clock=clock)
    assert [limiter.retry_after("a", 3) for _ in range(3)] == [None, None, None]
    clock.now += 20.5
    assert limiter.retry_after("a", 3) == 40
    assert limiter.retry_after("b", 3) is None, "another address has a budget of its own"


def test_a_new_window_starts_a_new_budget() -> None:
    clock = Clock()
    limiter = ClientRateLimit(window_seconds=60, clock=clock)
    for _ in range(5):
        limiter.retry_after("a", 1)
    clock.now += 60
    assert limiter.retry_after("a", 1) is None


def test_the_table_forgets_the_oldest_windows_past_its_bound() -> None:
    clock = Clock()
    limiter = ClientRateLimit(window_seconds=60, max_clients=2, clock=clock)
    limiter.retry_after("first", 1)
    clock.now += 1
    limiter.retry_after("second", 1)
    limiter.retry_after("second", 1)
    limiter.retry_after("third", 1)
    assert list(limiter._windows) == ["second", "third"]
    assert limiter.retry_after("second", 1) is not None, "a recent window is kept"
