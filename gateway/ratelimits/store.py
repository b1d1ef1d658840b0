"""The ratelimits KV bucket seen from one edge: a watched copy of every window, and changes
written by compare-and-set, batched per scope.

Changes to one scope's window made on this edge queue up while a write of that scope is in
flight, and the next write carries all of them (group commit): one edge has at most one
compare-and-set in flight per scope, so its own requests never fight over the revision, and a
busy scope costs one KV round trip per batch, not per request.

Across edges the compare-and-set decides. The edge that lost re-reads the window: from its
watched copy when the watch already delivered the winning write (usual: it is sent before the
refusal of the losing one), else with one KV get. Without that, the winner, which knows its own
revision, would write again while the loser fetches, and a loser could starve.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from gateway.errors import GatewayError
from gateway.ratelimits.window import EMPTY, RateWindow
from llmgw.kv import WatchedMap, open_bucket

log = structlog.get_logger()

T = TypeVar("T")

CAS_ATTEMPTS = 50
WATCH_CATCH_UP = 0.02  # seconds to wait for the watch to deliver a winning write before a KV get

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RateWindow)
_LAST_SEQUENCE = re.compile(r"wrong last sequence: (\d+)")

# change(window, now, fresh) -> (window to write, or None when this change writes nothing; result).
# `fresh`: the window was read from KV just now. It may raise GatewayError (that request's answer)
# or Stale (decide again on a fresh read). Changes are pure: a lost compare-and-set reruns them.
Change = Callable[[RateWindow, float, bool], tuple[RateWindow | None, Any]]


class Unchecked(Exception):
    """The limits could not be read or written (NATS down, KV error, endless contention)."""


class Stale(Exception):
    """The watched copy may be behind: decide on a fresh read."""


class _Pending:
    __slots__ = ("abandoned", "change", "future")

    def __init__(self, change: Change, future: asyncio.Future) -> None:
        self.change = change
        self.future = future
        self.abandoned = False


class WindowStore:
    def __init__(self, js: JetStreamContext, bucket: str, kv_timeout: float) -> None:
        self.js = js
        self.bucket = bucket
        self.kv_timeout = kv_timeout
        self.windows: WatchedMap[RateWindow] = None  # type: ignore[assignment]  # set in start()
        self._pending: dict[str, list[_Pending]] = {}
        self._writers: dict[str, asyncio.Task] = {}

    async def start(self) -> None:
        kv = await open_bucket(self.js, self.bucket)
        self.windows = WatchedMap(kv, _decoder, "ratelimits")
        await self.windows.start()

    async def stop(self) -> None:
        if self._writers:
            await asyncio.wait(list(self._writers.values()), timeout=self.kv_timeout)
        if self.windows is not None:
            await self.windows.stop()

    async def apply(self, key: str, change: Change, orphaned: Callable[[Any], object] | None = None) -> Any:
        """Apply `change` to a scope's window (with whatever else is queued for it) and return its
        result. If the caller is cancelled after its change was written, `orphaned(result)` is
        called, so what it took can be given back."""
        pending = _Pending(change, asyncio.get_running_loop().create_future())
        self._pending.setdefault(key, []).append(pending)
        if key not in self._writers:
            self._writers[key] = asyncio.create_task(self._write_all(key), name=f"ratelimit:{key}")
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            pending.abandoned = True  # not written yet: it never will be
            if orphaned is not None:
                pending.future.add_done_callback(lambda f: _orphan(f, orphaned))
            raise

    async def _write_all(self, key: str) -> None:
        """Write the scope's queued changes, a batch at a time, until none are left."""
        try:
            while batch := [p for p in self._pending.pop(key, []) if not p.abandoned]:
                try:
                    await self._commit(key, batch)
                except Exception as exc:
                    failure = exc if isinstance(exc, Unchecked) else Unchecked(str(exc) or type(exc).__name__)
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(failure)
        finally:
            self._writers.pop(key, None)

    async def _commit(self, key: str, batch: list[_Pending]) -> None:
        window = self.windows.items.get(key)
        revision = self.windows.revisions.get(key, 0)
        fresh = False
        for _ in range(CAS_ATTEMPTS):
            try:
                new, outcomes = _run(batch, window or EMPTY, time.time(), fresh)
            except Stale:
                window, revision = await self._read(key)
                fresh = True
                continue
            if new is not None:
                data = _encoder.encode(new)
                try:
                    revision = await self._kv(self.windows.kv.update(key, data, last=revision))
                except KeyWrongLastSequenceError as exc:
                    window, revision = await self._latest(key, exc)
                    fresh = True
                    continue
                self.windows.apply(key, revision, "PUT", data)
            for p, (ok, outcome) in zip(batch, outcomes, strict=True):
                if p.future.done():
                    continue
                if ok:
                    p.future.set_result(outcome)
                else:
                    p.future.set_exception(outcome)
            return
        raise Unchecked(f"rate window {key} stayed busy for {CAS_ATTEMPTS} attempts")

    async def _latest(self, key: str, conflict: KeyWrongLastSequenceError) -> tuple[RateWindow | None, int]:
        """The window as another edge just wrote it: from the watch if it has it, else from KV."""
        match = _LAST_SEQUENCE.search(str(conflict.description or ""))
        if match:
            winner = int(match.group(1))
            try:
                await self.windows.caught_up(key, winner, timeout=WATCH_CATCH_UP)
            except TimeoutError:
                pass
            held = self.windows.revisions.get(key, 0)
            if held >= winner and key in self.windows.items:
                return self.windows.items[key], held
        return await self._read(key)

    async def _read(self, key: str) -> tuple[RateWindow | None, int]:
        try:
            entry = await self._kv(self.windows.kv.get(key))
        except KeyNotFoundError as exc:  # never written, or deleted: the next write names the tombstone
            tombstone = getattr(exc.entry, "revision", None)
            return None, tombstone or self.windows.revisions.get(key, 0)
        revision = entry.revision or 0
        try:
            return _decoder.decode(entry.value or b""), revision
        except msgspec.MsgspecError:
            log.error("rate_window_undecodable", scope_key=key)
            return None, revision  # overwritten by the next write

    async def _kv(self, call: Awaitable[T]) -> T:
        """One KV call, bounded in time; any failure but a lost compare-and-set or a missing key
        means the limits cannot be checked."""
        try:
            return await asyncio.wait_for(call, self.kv_timeout)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            raise
        except Exception as exc:
            raise Unchecked(str(exc) or type(exc).__name__) from exc


def _run(batch: list[_Pending], window: RateWindow, now: float, fresh: bool) -> tuple[RateWindow | None, list]:
    """Apply a batch's changes in order: (window to write or None, [(ok, result or error)])."""
    outcomes: list[tuple[bool, Any]] = []
    changed = False
    for p in batch:
        try:
            new, result = p.change(window, now, fresh)
        except GatewayError as exc:
            outcomes.append((False, exc))
            continue
        if new is not None:
            window, changed = new, True
        outcomes.append((True, result))
    return (window if changed else None), outcomes


def _orphan(future: asyncio.Future, orphaned: Callable[[Any], object]) -> None:
    if not future.cancelled() and future.exception() is None:
        orphaned(future.result())
