"""A worker remembers cancels of requests it does not serve (yet), each once, boundedly."""

from __future__ import annotations

import pytest

from workers import early_cancels
from workers.early_cancels import EarlyCancels

pytestmark = pytest.mark.unit


def test_a_cancel_is_taken_once() -> None:
    cancels = EarlyCancels()
    cancels.add("req-1")
    assert not cancels.take("req-2")
    assert cancels.take("req-1")
    assert not cancels.take("req-1")


def test_the_oldest_are_forgotten_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early_cancels, "KEPT", 3)
    cancels = EarlyCancels()
    for i in range(5):
        cancels.add(f"req-{i}")
    assert [cancels.take(f"req-{i}") for i in range(5)] == [False, False, True, True, True]
