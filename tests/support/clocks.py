"""A clock the mailer tests inject, so retries and backoff run without waiting."""

from __future__ import annotations


class FakeClock:
    """A Unix-time clock that only moves when told to."""

    def __init__(self, start: float = 1_795_800_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
