"""Waiting for something to happen: one polling policy for every test.

`eventually` (async) and `eventually_sync` (for synchronous tests) call a probe until it returns a
truthy value, which they return. A probe that raises one of the `retrying` exceptions (any
`Exception` by default) counts as "not yet"; any other exception propagates at once. Past the
timeout the wait fails with an AssertionError naming what was awaited and what the last probe
said (its error, or the falsy value it returned).

A probe always runs at least once, and a probe that succeeds after the deadline still counts.
`interval=0` polls as fast as the probe answers (the async wait still yields to the event loop
between probes).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_INTERVAL = 0.05
_SHOWN = 500  # characters of the last outcome a failure message shows


class _Polling:
    """The policy both waits share: a deadline, the pause between probes, the last outcome and the
    failure that names them."""

    def __init__(self, what: str, timeout: float, interval: float, retrying: tuple[type[BaseException], ...]) -> None:
        self.what = what
        self.timeout = timeout
        self.interval = interval
        self.retrying = retrying
        self.deadline = float("inf")
        self.last = "the probe never ran"

    def start(self) -> _Polling:
        self.deadline = time.monotonic() + self.timeout
        return self

    def not_yet(self, outcome: object) -> None:
        """Record a probe's falsy value or the exception it raised."""
        if isinstance(outcome, BaseException):
            self.last = f"last error: {outcome!r}"
        else:
            self.last = f"last value: {outcome!r}"

    def pause(self) -> float:
        """Seconds to wait before the next probe; fails the wait once the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            shown = self.last if len(self.last) <= _SHOWN else self.last[:_SHOWN] + "..."
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what} ({shown})")
        return min(self.interval, left)


def eventually_sync(
    probe: Callable[[], T],
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    retrying: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Call `probe` every `interval` seconds until it returns something truthy, and return that."""
    polling = _Polling(what, timeout, interval, retrying).start()
    while True:
        try:
            value = probe()
        except polling.retrying as exc:
            polling.not_yet(exc)
        else:
            if value:
                return value
            polling.not_yet(value)
        time.sleep(polling.pause())


@overload
def eventually(
    probe: Callable[[], Awaitable[T]],
    what: str,
    timeout: float = ...,
    interval: float = ...,
    retrying: tuple[type[BaseException], ...] = ...,
) -> Coroutine[Any, Any, T]: ...


@overload
def eventually(
    probe: Callable[[], T],
    what: str,
    timeout: float = ...,
    interval: float = ...,
    retrying: tuple[type[BaseException], ...] = ...,
) -> Coroutine[Any, Any, T]: ...


def eventually(
    probe: Callable[[], Any],
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    retrying: tuple[type[BaseException], ...] = (Exception,),
) -> Coroutine[Any, Any, Any]:
    """Await `probe` (a coroutine function or a plain function) every `interval` seconds until it
    returns something truthy, and return that: `await eventually(probe, "what")`."""
    return _poll(probe, _Polling(what, timeout, interval, retrying))


async def _poll(probe: Callable[[], Any], polling: _Polling) -> Any:
    polling.start()  # the clock starts when the wait is awaited, not when it was made
    while True:
        try:
            outcome = probe()
            value = await outcome if inspect.isawaitable(outcome) else outcome
        except polling.retrying as exc:
            polling.not_yet(exc)
        else:
            if value:
                return value
            polling.not_yet(value)
        await asyncio.sleep(polling.pause())
