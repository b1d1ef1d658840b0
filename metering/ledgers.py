"""Settling metered cost into the budget ledgers the edge reserves against (NATS KV, CAS only).

For every ledger a batch of usage events names, one compare-and-set: events at or below the
ledger's `applied_seq` (their usage-stream sequence) were settled before and are skipped; the others
(in order of stream sequence, then index in their message: a worker's message holds a batch of
events) release their reservation and, if they are the copy of their request that ClickHouse stores
(`counts`), add their cost to the ledger's period. A crossed soft budget is published as a
`BudgetAlert` once per period (JetStream, de-duplicated by ledger and period) before the CAS that
records it, so a crash in between cannot lose it.

`applied_seq` names a whole message: every batch handed to `settle` holds whole messages, so the
events of one message that touch a ledger are settled in the same write, and a ledger written
before messages held several events reads the same. The same message twice in one batch (a
redelivery while it was held) is settled once.

The consumer calls `settle` before inserting the batch into ClickHouse, and acks only after both;
see metering/consumer.py for why that order makes settling exact.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections.abc import Iterable, Sequence

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from llmgw.bus import ensure_alerts_stream
from llmgw.contracts import MSG_ID_HEADER, BudgetAlert, BudgetLedger, LedgerKind, LedgerRef, Subjects, UsageEvent, encode_json
from llmgw.kv import open_bucket

log = structlog.get_logger()

CONCURRENCY = 64  # ledgers settled at once
MAX_CONFLICTS = 100  # CAS retries on one ledger before the batch is given up (and retried later)
CACHE_LIMIT = 50_000  # ledgers whose last written revision is remembered (saves a read per batch)

_ledger_decoder = msgspec.json.Decoder(BudgetLedger)


class LedgerItem(msgspec.Struct, frozen=True):
    """One usage event as one ledger sees it."""

    seq: int  # usage-stream sequence of the event's message
    request_id: str
    cost: float
    model_group: str
    ref: LedgerRef
    counts: bool  # this message is the copy of its request that ClickHouse stores: its cost counts
    index: int = 0  # the event's place in its message (a worker's batch)


class Pending(msgspec.Struct, frozen=True):
    """A soft-budget alert the next write of a ledger records (`soft_alerted_period`)."""

    alert: BudgetAlert
    msg_id: str


def parse_ledger_key(key: str) -> tuple[str, str, str | None]:
    """(kind, id, model) of a budgets-bucket key made by `records.ledger_key`."""
    kind, _, rest = key.partition(".")
    ident, _, model = rest.partition(".")
    if kind not in (LedgerKind.KEY, LedgerKind.KEY_MODEL):
        ident = _kv_id(ident)
    return kind, ident, (_kv_id(model) if model else None)


def _kv_id(encoded: str) -> str:
    return base64.urlsafe_b64decode(encoded[1:].encode()).decode()


def ledger_items(batch: Iterable[tuple[int, int, UsageEvent, bool]]) -> dict[str, list[LedgerItem]]:
    """Group a batch of (seq, index, event, counts) by the ledgers the events name, in (seq, index)
    order."""
    grouped: dict[str, list[LedgerItem]] = {}
    for seq, index, event, counts in sorted(batch, key=lambda b: (b[0], b[1])):
        for key, ref in event.ledgers.items():
            item = LedgerItem(seq, event.request_id, event.cost, event.model_group, ref, counts, index)
            grouped.setdefault(key, []).append(item)
    return grouped


def apply_items(
    ledger: BudgetLedger | None, items: Sequence[LedgerItem], now: float, key: str
) -> tuple[BudgetLedger | None, Pending | None]:
    """The ledger after `items` (in (seq, index) order; None if nothing changes) and the soft alert
    to publish, if any."""
    current = ledger or BudgetLedger()
    spent, period = current.spent, current.period
    last = (current.applied_seq, sys.maxsize)  # every event of the message at applied_seq is settled
    model_spend = dict(current.model_spend)
    reservations = dict(current.reservations)
    changed = ledger is None
    last_ref: LedgerRef | None = None
    for item in items:
        if (item.seq, item.index) <= last:
            continue  # settled before (a redelivery, a restart), or a second copy in this batch
        last = (item.seq, item.index)
        changed = True
        reservations.pop(item.request_id, None)
        if item.ref.period > period:
            spent, model_spend, period = 0.0, {}, item.ref.period
        if item.ref.period == period:
            last_ref = item.ref
            if item.counts:
                spent += item.cost
                model_spend[item.model_group] = model_spend.get(item.model_group, 0.0) + item.cost
    expired = [rid for rid, r in reservations.items() if r.expires_at <= now]
    for rid in expired:
        del reservations[rid]
    if not changed and not expired:
        return None, None
    pending = None
    alerted = current.soft_alerted_period
    if last_ref is not None and last_ref.soft_budget is not None and spent >= last_ref.soft_budget and alerted != period:
        kind, ident, _ = parse_ledger_key(key)
        alert = BudgetAlert(
            kind=kind,
            id=ident,
            spent=spent,
            soft_budget=last_ref.soft_budget,
            max_budget=last_ref.max_budget,
            period=period,
            ts=now,
        )
        pending = Pending(alert, f"budget-alert.{key}.{period}")
        alerted = period
    updated = BudgetLedger(
        spent=spent,
        period=period,
        reservations=reservations,
        model_spend=model_spend,
        applied_seq=last[0],
        soft_alerted_period=alerted,
        updated_at=now,
    )
    return updated, pending


class LedgerSettler:
    """Settles batches into the budgets bucket; raises if KV (or the alerts stream) fails."""

    def __init__(self, js: JetStreamContext, subjects: Subjects, alerts_max_age: float) -> None:
        self._js = js
        self._subjects = subjects
        self._alerts_max_age = alerts_max_age
        self._kv: KeyValue | None = None
        self._cache: dict[str, tuple[int, BudgetLedger | None]] = {}  # key -> (revision, value) last written

    async def setup(self) -> None:
        """Open (or create) the budgets bucket and declare the alerts stream (idempotent)."""
        self._kv = await open_bucket(self._js, self._subjects.budgets_bucket)
        await ensure_alerts_stream(self._js, self._subjects, self._alerts_max_age)

    async def settle(self, batch: Sequence[tuple[int, int, UsageEvent, bool]]) -> int:
        """Settle a batch of (stream seq, index in message, event, counts) holding whole messages;
        return how many ledgers were written."""
        grouped = ledger_items(batch)
        if not grouped:
            return 0
        if self._kv is None:
            await self.setup()
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        limit = asyncio.Semaphore(CONCURRENCY)
        now = time.time()

        async def one(key: str, items: list[LedgerItem]) -> bool:
            async with limit:
                return await self._settle_ledger(key, items, now)

        results = await asyncio.gather(*(one(k, v) for k, v in grouped.items()), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            self._kv = None  # reopen before the retry (the bucket may have been recreated)
            raise failures[0]
        return sum(1 for r in results if r)

    async def _settle_ledger(self, key: str, items: list[LedgerItem], now: float) -> bool:
        kv = self._kv
        if kv is None:  # (settle opens the bucket before it calls this)
            raise RuntimeError("the budgets bucket is not open")
        cached = self._cache.pop(key, None)
        for _ in range(MAX_CONFLICTS):
            if cached is None:
                revision, ledger = await _read(kv, key)
            else:
                revision, ledger = cached
            updated, pending = apply_items(ledger, items, now, key)
            if updated is None:
                if revision:
                    self._cache[key] = (revision, ledger)
                return False
            if pending is not None and cached is not None:
                cached = None  # alert only on what the bucket holds now, not on a remembered copy
                continue
            if pending is not None:
                await self._publish_alert(pending)
            try:
                if revision:
                    new_revision = await kv.update(key, msgspec.json.encode(updated), last=revision)
                else:
                    new_revision = await kv.create(key, msgspec.json.encode(updated))
            except KeyWrongLastSequenceError:
                cached = None  # an edge (or another settler) wrote first: read again and redo
                continue
            self._cache[key] = (new_revision, updated)
            return True
        raise RuntimeError(f"ledger {key}: gave up after {MAX_CONFLICTS} conflicting writes")

    async def _publish_alert(self, pending: Pending) -> None:
        alert = pending.alert
        await self._js.publish(
            self._subjects.budget_alert(alert.kind), encode_json(alert), headers={MSG_ID_HEADER: pending.msg_id}
        )
        log.info(
            "budget_soft_alert",
            kind=alert.kind,
            id=alert.id,
            spent=alert.spent,
            soft_budget=alert.soft_budget,
            period=alert.period,
        )


async def _read(kv: KeyValue, key: str) -> tuple[int, BudgetLedger | None]:
    """(revision, ledger) of a key; (0, None) when absent. A value that does not decode is
    replaced (logged): a ledger nobody can read would stop settling for good."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # absent or deleted: `create` writes it (over a delete marker too)
        return 0, None
    revision = entry.revision or 0
    try:
        return revision, _ledger_decoder.decode(entry.value or b"")
    except msgspec.DecodeError as exc:
        log.error("ledger_undecodable", key=key, error=str(exc))
        return revision, None
